//! Where every finished request is counted: HDR histograms of latency (overall, per kind of
//! page, per second of the run) and the tallies the report is made of.
//!
//! Two clocks per request: *latency* runs from when the request was due (its scheduled time in
//! an open-loop run) to its last byte, *service time* from when it was actually sent. When the
//! generator had to hold a request back — the target stalled and every slot was busy — the wait
//! is in the latency and not in the service time; the gap between the two is coordinated
//! omission made visible.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::exchange::Outcome;
use crate::workload::{PageKind, Planned, Visitor};

/// Longest latency a histogram holds exactly; longer ones are counted at this value.
const HIGHEST_MICROS: u64 = 3_600 * 1_000_000;

/// Latency histogram in microseconds, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_MICROS, 3).expect("constant bounds are valid")
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// One finished request.
#[derive(Debug)]
pub struct Sample<'a> {
    pub planned: &'a Planned,
    /// When it was due (its scheduled time in an open loop, its send in a closed loop).
    pub due: Instant,
    /// When it was handed to the HTTP client.
    pub sent: Instant,
    /// When its answer's last byte arrived (or it failed).
    pub done: Instant,
    pub outcome: &'a Outcome,
}

/// Counts for one kind of request from one kind of visitor.
#[derive(Debug, Clone)]
pub struct KindTotals {
    pub requests: u64,
    pub errors: u64,
    pub latency: Histogram<u64>,
}

/// Counts for one second of the run (by the time requests finished; `due` by the time they
/// were due).
#[derive(Debug, Clone)]
pub struct SecondTotals {
    pub due: u64,
    pub completed: u64,
    pub errors: u64,
    pub latency: Histogram<u64>,
}

impl SecondTotals {
    fn new() -> Self {
        SecondTotals {
            due: 0,
            completed: 0,
            errors: 0,
            // Two digits are plenty for a chart and keep a long run's seconds small.
            latency: Histogram::new_with_bounds(1, HIGHEST_MICROS, 2)
                .expect("constant bounds are valid"),
        }
    }
}

/// Everything counted so far.
#[derive(Debug, Clone)]
pub struct Totals {
    pub completed: u64,
    pub errors: u64,
    pub latency: Histogram<u64>,
    pub service_time: Histogram<u64>,
    /// By kind and whether the visitor was logged in.
    pub kinds: BTreeMap<(PageKind, bool), KindTotals>,
    /// HTTP status codes, and failures by name.
    pub statuses: BTreeMap<String, u64>,
    /// `X-Cache` values.
    pub cache_statuses: BTreeMap<String, u64>,
    /// Requests that reached each app instance (`X-Served-By`).
    pub served_by: BTreeMap<String, u64>,
    /// Page reads answered (not failed).
    pub page_reads: u64,
    /// Page reads that carried a `Server-Timing` `db` entry of their own (reached an app).
    pub page_reads_timed: u64,
    /// Page reads whose app made at least one database query.
    pub page_reads_with_db: u64,
    /// Database queries named in `Server-Timing`, all requests.
    pub db_queries: u64,
    pub seconds: Vec<SecondTotals>,
}

impl Totals {
    fn new() -> Self {
        Totals {
            completed: 0,
            errors: 0,
            latency: latency_histogram(),
            service_time: latency_histogram(),
            kinds: BTreeMap::new(),
            statuses: BTreeMap::new(),
            cache_statuses: BTreeMap::new(),
            served_by: BTreeMap::new(),
            page_reads: 0,
            page_reads_timed: 0,
            page_reads_with_db: 0,
            db_queries: 0,
            seconds: Vec::new(),
        }
    }

    fn second(&mut self, index: usize) -> &mut SecondTotals {
        if self.seconds.len() <= index {
            self.seconds.resize_with(index + 1, SecondTotals::new);
        }
        &mut self.seconds[index]
    }

    fn add(&mut self, start: Instant, sample: &Sample<'_>) {
        // A request sent late counts from when it was due; one sent a little early (the
        // dispatcher wakes a timer tick ahead) from when it was sent.
        let latency = micros(
            sample
                .done
                .saturating_duration_since(sample.due.min(sample.sent)),
        );
        let service_time = micros(sample.done.saturating_duration_since(sample.sent));
        let outcome = sample.outcome;
        let error = outcome.is_error();
        self.completed += 1;
        self.errors += u64::from(error);
        self.latency.saturating_record(latency);
        self.service_time.saturating_record(service_time);

        let logged_in = matches!(sample.planned.visitor, Visitor::LoggedIn(_));
        let kind = self
            .kinds
            .entry((sample.planned.kind, logged_in))
            .or_insert_with(|| KindTotals {
                requests: 0,
                errors: 0,
                latency: latency_histogram(),
            });
        kind.requests += 1;
        kind.errors += u64::from(error);
        kind.latency.saturating_record(latency);

        let status = match outcome.result {
            Ok(code) => code.to_string(),
            Err(failure) => failure.name().to_owned(),
        };
        *self.statuses.entry(status).or_default() += 1;
        if let Some(cache_status) = &outcome.cache_status {
            *self.cache_statuses.entry(cache_status.clone()).or_default() += 1;
        }
        if let Some(instance) = &outcome.served_by {
            *self.served_by.entry(instance.clone()).or_default() += 1;
        }
        let queries = outcome.db_queries.unwrap_or(0);
        self.db_queries += u64::from(queries);
        if sample.planned.kind.is_page_read() && outcome.result.is_ok() {
            self.page_reads += 1;
            self.page_reads_timed += u64::from(outcome.db_queries.is_some());
            self.page_reads_with_db += u64::from(queries > 0);
        }

        let due_second = sample.due.saturating_duration_since(start).as_secs() as usize;
        self.second(due_second).due += 1;
        let done_second = sample.done.saturating_duration_since(start).as_secs() as usize;
        let second = self.second(done_second);
        second.completed += 1;
        second.errors += u64::from(error);
        second.latency.saturating_record(latency);
    }
}

/// Collects samples from every request task.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    started: AtomicU64,
    totals: Mutex<Totals>,
}

/// A glance at a run in progress.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub started: u64,
    pub completed: u64,
    pub errors: u64,
    /// p99 latency of the last complete second, if any.
    pub recent_p99: Option<Duration>,
}

impl Recorder {
    /// A recorder whose second 0 starts at `start`.
    pub fn new(start: Instant) -> Self {
        Recorder {
            start,
            started: AtomicU64::new(0),
            totals: Mutex::new(Totals::new()),
        }
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    /// Counts a request as sent (for the in-flight number of the progress display).
    pub fn sent(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record(&self, sample: &Sample<'_>) {
        self.lock().add(self.start, sample);
    }

    pub fn progress(&self) -> Progress {
        let totals = self.lock();
        let elapsed = self.start.elapsed().as_secs() as usize;
        let recent_p99 = elapsed
            .checked_sub(1)
            .and_then(|last| totals.seconds.get(last))
            .filter(|second| second.completed > 0)
            .map(|second| Duration::from_micros(second.latency.value_at_quantile(0.99)));
        Progress {
            started: self.started.load(Ordering::Relaxed),
            completed: totals.completed,
            errors: totals.errors,
            recent_p99,
        }
    }

    /// The totals so far.
    pub fn totals(&self) -> Totals {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Totals> {
        // A panic while holding the lock cannot leave the counts half-updated in a way that
        // matters for a report, so a poisoned lock is still read.
        self.totals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
