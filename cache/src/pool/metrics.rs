//! The pool's Prometheus metrics, registered under `cache_pool_` in the registry the app passes
//! to [`Pool::new`](super::Pool::new).

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabel {
    node: String,
}

/// How a `get_or_load` loader call ended.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub(super) enum LoadResult {
    Found,
    NotFound,
    Error,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoadLabel {
    result: LoadResult,
}

/// All metric families of one pool.
#[derive(Debug, Clone)]
pub(super) struct Metrics {
    hits: Family<NodeLabel, Counter>,
    misses: Family<NodeLabel, Counter>,
    errors: Family<NodeLabel, Counter>,
    skipped: Family<NodeLabel, Counter>,
    flushes: Family<NodeLabel, Counter>,
    breaker_state: Family<NodeLabel, Gauge>,
    loads: Family<LoadLabel, Counter>,
    load_seconds: Family<LoadLabel, Histogram, fn() -> Histogram>,
    coalesced: Counter,
    early_refreshes: Counter,
}

fn load_histogram() -> Histogram {
    // 100 µs … ~3.3 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl Metrics {
    pub(super) fn new() -> Self {
        Metrics {
            hits: Family::default(),
            misses: Family::default(),
            errors: Family::default(),
            skipped: Family::default(),
            flushes: Family::default(),
            breaker_state: Family::default(),
            loads: Family::default(),
            load_seconds: Family::new_with_constructor(load_histogram),
            coalesced: Counter::default(),
            early_refreshes: Counter::default(),
        }
    }

    pub(super) fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("cache_pool");
        registry.register("hits", "Keys found on a node", self.hits.clone());
        registry.register("misses", "Keys a node did not have", self.misses.clone());
        registry.register(
            "errors",
            "Operations on a node that failed or timed out (the caller saw a miss)",
            self.errors.clone(),
        );
        registry.register(
            "skipped",
            "Operations not sent because the node's breaker was open",
            self.skipped.clone(),
        );
        registry.register(
            "flushes",
            "Nodes flushed on rejoin, so that they never serve values from before they went away",
            self.flushes.clone(),
        );
        registry.register(
            "breaker_state",
            "Per-node circuit breaker: 0 closed, 1 half-open, 2 open",
            self.breaker_state.clone(),
        );
        registry.register(
            "loads",
            "get_or_load loader calls, by result",
            self.loads.clone(),
        );
        registry.register(
            "load_seconds",
            "Time get_or_load loaders took (the database read a hit saves)",
            self.load_seconds.clone(),
        );
        registry.register(
            "coalesced",
            "get_or_load callers that waited for another caller's load of the same key",
            self.coalesced.clone(),
        );
        registry.register(
            "early_refreshes",
            "get_or_load hits refreshed before expiry (XFetch)",
            self.early_refreshes.clone(),
        );
    }

    /// The counters of one node, resolved once so the hot path does not look labels up.
    pub(super) fn node(&self, node: &str) -> NodeMetrics {
        let label = NodeLabel {
            node: node.to_owned(),
        };
        NodeMetrics {
            hits: self.hits.get_or_create(&label).clone(),
            misses: self.misses.get_or_create(&label).clone(),
            errors: self.errors.get_or_create(&label).clone(),
            skipped: self.skipped.get_or_create(&label).clone(),
            flushes: self.flushes.get_or_create(&label).clone(),
            breaker_state: self.breaker_state.get_or_create(&label).clone(),
        }
    }

    pub(super) fn loaded(&self, result: LoadResult, seconds: f64) {
        let label = LoadLabel { result };
        self.loads.get_or_create(&label).inc();
        self.load_seconds.get_or_create(&label).observe(seconds);
    }

    pub(super) fn coalesced(&self) {
        self.coalesced.inc();
    }

    pub(super) fn early_refresh(&self) {
        self.early_refreshes.inc();
    }
}

/// One node's counters (cheap clones of the family members).
#[derive(Debug, Clone)]
pub(super) struct NodeMetrics {
    pub(super) hits: Counter,
    pub(super) misses: Counter,
    pub(super) errors: Counter,
    pub(super) skipped: Counter,
    pub(super) flushes: Counter,
    pub(super) breaker_state: Gauge,
}
