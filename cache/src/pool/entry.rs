//! What the pool stores under a key: the value (or "not found") in postcard, with what XFetch
//! needs to refresh it early — when it expires and how long it took to load.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The stored envelope. `value: None` is a cached "not found" (negative caching).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Entry<T> {
    /// Wall-clock expiry, milliseconds since the Unix epoch (shared by all app servers).
    pub(super) expires_at_ms: u64,
    /// How long the loader took, in microseconds: XFetch's Δ. Zero for values stored with `set`.
    pub(super) load_us: u32,
    pub(super) value: Option<T>,
}

impl<T: Serialize> Entry<T> {
    pub(super) fn encode(&self) -> Option<Vec<u8>> {
        postcard::to_stdvec(self).ok()
    }
}

impl<T: DeserializeOwned> Entry<T> {
    /// Decodes stored bytes; anything that is not exactly an `Entry<T>` (another type, another
    /// struct version, garbage) is `None` — a miss, never an error.
    pub(super) fn decode(bytes: &[u8]) -> Option<Self> {
        match postcard::take_from_bytes::<Entry<T>>(bytes) {
            Ok((entry, [])) => Some(entry),
            _ => None,
        }
    }
}

impl<T> Entry<T> {
    pub(super) fn new(value: Option<T>, ttl: Duration, load_time: Duration) -> Self {
        Entry {
            expires_at_ms: now_ms().saturating_add(millis(ttl)),
            load_us: u32::try_from(load_time.as_micros()).unwrap_or(u32::MAX),
            value,
        }
    }

    /// XFetch (Vattani, Chierichetti, Lowenstein, "Optimal Probabilistic Cache Stampede
    /// Prevention", VLDB 2015): refresh now if `now − Δ·β·ln(r) ≥ expiry`, r uniform in (0, 1].
    /// The closer to expiry and the slower the load, the likelier — so one request refreshes a
    /// hot key shortly before it expires, instead of all of them at once after.
    pub(super) fn should_refresh_early(&self, beta: f64) -> bool {
        if beta <= 0.0 || self.load_us == 0 {
            return false;
        }
        let r: f64 = 1.0 - rand::random::<f64>(); // (0, 1]
        let head_start_ms = -(self.load_us as f64 / 1000.0) * beta * r.ln();
        now_ms() as f64 + head_start_ms >= self.expires_at_ms as f64
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}

pub(super) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Old {
        id: u32,
        title: String,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct New {
        id: u32,
        title: String,
        views: u64,
    }

    #[test]
    fn round_trip() {
        let entry = Entry::new(
            Some(Old {
                id: 1,
                title: "a".into(),
            }),
            Duration::from_secs(60),
            Duration::ZERO,
        );
        let decoded = Entry::<Old>::decode(&entry.encode().unwrap()).unwrap();
        assert_eq!(decoded.value, entry.value);
    }

    #[test]
    fn other_shapes_and_garbage_are_misses() {
        let entry = Entry::new(
            Some(Old {
                id: 1,
                title: "a".into(),
            }),
            Duration::from_secs(60),
            Duration::ZERO,
        );
        assert!(Entry::<New>::decode(&entry.encode().unwrap()).is_none());
        assert!(Entry::<Old>::decode(b"\xff\xff\xff").is_none());
        assert!(Entry::<Old>::decode(b"").is_none());
    }

    #[test]
    fn early_refresh_only_near_expiry() {
        let far = Entry::new(
            Some(1u8),
            Duration::from_secs(3600),
            Duration::from_millis(5),
        );
        assert!((0..1000).all(|_| !far.should_refresh_early(1.0)));
        let expired = Entry::new(Some(1u8), Duration::ZERO, Duration::from_millis(5));
        assert!(expired.should_refresh_early(1.0));
        assert!(!expired.should_refresh_early(0.0), "β = 0 turns it off");
    }
}
