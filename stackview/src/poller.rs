//! The task that samples every tier once a second while someone is watching, and publishes
//! the snapshot of the last two samples for the handlers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use tokio::sync::{Notify, watch};
use tokio::time::MissedTickBehavior;

use crate::collect::{Collector, Sample};
use crate::snapshot::{Snapshot, snapshot};

/// How often every tier is sampled.
pub const PERIOD: Duration = Duration::from_secs(1);

/// With nobody asking for a snapshot this long, the poller stops sampling (and so stops adding
/// its own reads to the services' counters) until someone asks again.
const IDLE_AFTER: Duration = Duration::from_secs(60);

/// A snapshot, serialised once for every viewer.
#[derive(Debug)]
pub struct Published {
    pub generation: u64,
    pub taken: Instant,
    pub json: Bytes,
}

impl Published {
    fn new(snapshot: &Snapshot, taken: Instant) -> Self {
        let json = serde_json::to_vec(snapshot).unwrap_or_else(|error| {
            tracing::error!(%error, "cannot serialise the snapshot");
            b"{}".to_vec()
        });
        Self {
            generation: snapshot.generation,
            taken,
            json: json.into(),
        }
    }

    /// Before the first sample: generation 0, no tiers.
    pub fn nothing_yet() -> Self {
        Self::new(&Snapshot::nothing_yet(), Instant::now())
    }
}

/// When the view was last looked at, and the bell that wakes an idle poller.
#[derive(Debug, Default)]
pub struct Viewers {
    last_seen: Mutex<Option<Instant>>,
    wake: Notify,
}

impl Viewers {
    /// Someone is looking: keep sampling, or start again.
    pub fn seen(&self) {
        *self.last_seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        self.wake.notify_one();
    }

    fn idle(&self) -> bool {
        self.last_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none_or(|seen| seen.elapsed() > IDLE_AFTER)
    }
}

/// Samples until every receiver of `publish` is gone (the router was dropped).
pub async fn run(
    mut collector: Collector,
    publish: watch::Sender<Arc<Published>>,
    viewers: Arc<Viewers>,
) {
    let mut ticks = tokio::time::interval(PERIOD);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut generation = 0;
    let mut previous: Option<Sample> = None;
    loop {
        if viewers.idle() {
            // Rates across the pause would be averages over minutes: start afresh.
            previous = None;
            tokio::select! {
                () = publish.closed() => return,
                () = viewers.wake.notified() => ticks.reset_immediately(),
            }
        }
        tokio::select! {
            () = publish.closed() => return,
            _ = ticks.tick() => {}
        }
        let sample = collector.sample().await;
        generation += 1;
        let snapshot = snapshot(generation, previous.as_ref(), &sample);
        publish.send_replace(Arc::new(Published::new(&snapshot, sample.taken)));
        previous = Some(sample);
    }
}
