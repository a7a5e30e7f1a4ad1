//! Time as the store sees it, and the background task that reclaims expired items.
//!
//! Expired items are removed when someone asks for them, but an item nobody asks for again would
//! hold its memory until evicted; so every `expiry_interval` this task samples each shard and
//! removes what has expired, sampling again while a sample is mostly expired (as Redis does).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use super::Node;

/// Slots checked per shard per round.
const SAMPLE: usize = 64;

/// Unix time in milliseconds.
pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

pub(super) async fn run(node: Arc<Node>, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(node.config.expiry_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let removed = node.store.expire_some(now_ms(), SAMPLE);
        if removed > 0 {
            tracing::trace!(removed, "expired items reclaimed");
        }
    }
}
