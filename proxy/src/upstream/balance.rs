//! Choosing the backend for one request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::pool::Backend;
use crate::config::Balance;

/// Picks an available backend not in `exclude` (the ones a retry already tried), or `None` when
/// every backend is down or excluded.
pub fn pick(
    balance: Balance,
    backends: &[Arc<Backend>],
    cursor: &AtomicUsize,
    exclude: &[SocketAddr],
    now: Instant,
) -> Option<Arc<Backend>> {
    let n = backends.len();
    if n == 0 {
        return None;
    }
    // Both policies walk the ring from a rotating start, so least-outstanding breaks ties the
    // round-robin way instead of always favouring the first backend.
    let start = cursor.fetch_add(1, Ordering::Relaxed);
    let candidates = (0..n)
        .map(|i| &backends[(start + i) % n])
        .filter(|b| b.is_available(now) && !exclude.contains(&b.addr));
    match balance {
        Balance::RoundRobin => candidates.into_iter().next().cloned(),
        Balance::LeastOutstanding => candidates.min_by_key(|b| b.outstanding()).cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(n: u16) -> Vec<Arc<Backend>> {
        (0..n)
            .map(|i| Arc::new(Backend::new(SocketAddr::from(([127, 0, 0, 1], 1000 + i)))))
            .collect()
    }

    #[test]
    fn round_robin_cycles_and_skips_excluded() {
        let all = backends(3);
        let cursor = AtomicUsize::new(0);
        let now = Instant::now();
        let picked: Vec<u16> = (0..6)
            .map(|_| {
                pick(Balance::RoundRobin, &all, &cursor, &[], now)
                    .unwrap()
                    .addr
                    .port()
            })
            .collect();
        assert_eq!(picked, [1000, 1001, 1002, 1000, 1001, 1002]);
        let exclude = [all[0].addr, all[1].addr];
        for _ in 0..3 {
            let b = pick(Balance::RoundRobin, &all, &cursor, &exclude, now).unwrap();
            assert_eq!(b.addr.port(), 1002);
        }
        let exclude = [all[0].addr, all[1].addr, all[2].addr];
        assert!(pick(Balance::RoundRobin, &all, &cursor, &exclude, now).is_none());
    }

    #[test]
    fn least_outstanding_prefers_the_idle_backend() {
        let all = backends(3);
        let cursor = AtomicUsize::new(0);
        let _busy0 = all[0].begin_request();
        let _busy1 = all[1].begin_request();
        let _busy1b = all[1].begin_request();
        for _ in 0..4 {
            let b = pick(
                Balance::LeastOutstanding,
                &all,
                &cursor,
                &[],
                Instant::now(),
            )
            .unwrap();
            assert_eq!(b.addr, all[2].addr);
        }
    }
}
