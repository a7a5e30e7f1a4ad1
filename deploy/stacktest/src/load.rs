//! A steady background load through the proxy, for the failure drills: it counts what a user
//! would see (failed requests, stale answers) and what the tiers did (which app instance
//! answered; whether the app had to query the database).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::task::JoinSet;

use crate::site::{Page, Site};

/// One URL of the load, fetched as an anonymous reader (cacheable by the proxy) or with a
/// session cookie (passed through to an app server every time).
#[derive(Debug, Clone)]
pub struct Target {
    pub path: String,
    pub bypass: bool,
}

/// What the load saw over one phase of a drill.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub sent: u64,
    /// Transport errors and 5xx answers.
    pub failed: u64,
    /// Answers the proxy marked `X-Cache: STALE`.
    pub stale: u64,
    /// The app's cache-pool lookups for the requests passed through to it: hits and misses.
    /// (Answers from the proxy's cache repeat the headers of the answer they copy, so only
    /// passed-through requests say what the pool did now.)
    pub pool_hits: u64,
    pub pool_misses: u64,
    pub statuses: BTreeMap<u16, u64>,
    /// Answers by `X-Served-By` among those passed through to an app server.
    pub served_by: BTreeMap<String, u64>,
    /// The first few failures, to print.
    pub failures: Vec<String>,
}

impl Tally {
    fn record(&mut self, target: &Target, outcome: anyhow::Result<Page>) {
        self.sent += 1;
        let page = match outcome {
            Ok(page) => page,
            Err(error) => return self.fail(format!("{}: {error:#}", target.path)),
        };
        *self.statuses.entry(page.status).or_default() += 1;
        if page.x_cache.as_deref() == Some("STALE") {
            self.stale += 1;
        }
        if target.bypass {
            if let Some((hits, misses)) = page.pool_lookups {
                self.pool_hits += u64::from(hits);
                self.pool_misses += u64::from(misses);
            }
            if let Some(instance) = page.served_by {
                *self.served_by.entry(instance).or_default() += 1;
            }
        }
        if page.status >= 500 {
            self.fail(format!("{}: status {}", target.path, page.status));
        }
    }

    fn fail(&mut self, what: String) {
        self.failed += 1;
        if self.failures.len() < 5 {
            self.failures.push(what);
        }
    }

    /// The app's cache-pool hit ratio over the passed-through requests (1 when there were none).
    pub fn pool_hit_ratio(&self) -> f64 {
        let lookups = self.pool_hits + self.pool_misses;
        if lookups == 0 {
            1.0
        } else {
            self.pool_hits as f64 / lookups as f64
        }
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {}, failed {}, served stale {}, statuses {:?}",
            self.sent, self.failed, self.stale, self.statuses
        )?;
        if !self.served_by.is_empty() {
            write!(f, ", passed through to {:?}", self.served_by)?;
        }
        if self.pool_hits + self.pool_misses > 0 {
            write!(
                f,
                ", pool hit ratio {:.0}% ({} hits, {} misses)",
                self.pool_hit_ratio() * 100.0,
                self.pool_hits,
                self.pool_misses
            )?;
        }
        if !self.failures.is_empty() {
            write!(f, ", first failures {:?}", self.failures)?;
        }
        Ok(())
    }
}

/// A running load: `workers` loops over the targets, each pausing `pace` between requests.
pub struct SteadyLoad {
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    workers: JoinSet<()>,
}

impl SteadyLoad {
    pub fn start(site: &Site, targets: Vec<Target>, workers: usize, pace: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let targets = Arc::new(targets);
        let mut set = JoinSet::new();
        for worker in 0..workers {
            let (stop, tally, site, targets) =
                (stop.clone(), tally.clone(), site.clone(), targets.clone());
            set.spawn(async move {
                for target in targets.iter().cycle().skip(worker) {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let outcome = if target.bypass {
                        site.get_bypassing_cache(&target.path).await
                    } else {
                        site.get(&target.path).await
                    };
                    tally.lock().await.record(target, outcome);
                    tokio::time::sleep(pace).await;
                }
            });
        }
        Self {
            stop,
            tally,
            workers: set,
        }
    }

    /// The counts since the last call, starting the next phase from zero.
    pub async fn take(&self) -> Tally {
        std::mem::take(&mut *self.tally.lock().await)
    }

    /// Stops the workers and returns the counts of the last phase.
    pub async fn stop(mut self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        while self.workers.join_next().await.is_some() {}
        self.take().await
    }
}
