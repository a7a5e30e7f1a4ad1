//! The proxy's Prometheus metrics, all named `proxy_*`, in a registry owned by one instance.

use std::net::SocketAddr;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// How a response was produced, reported in `X-Cache` and the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from the cache (fresh, or revalidated with a 304).
    Hit,
    /// Fetched from a backend on a cacheable route.
    Miss,
    /// Served from the cache past its freshness (stale-while-revalidate or stale-if-error).
    Stale,
    /// Not cacheable: a method other than GET/HEAD, an uncached route, or an answer the
    /// backend marked uncacheable.
    Pass,
    /// Skipped the cache on purpose: the request carried a bypass cookie.
    Bypass,
}

impl CacheStatus {
    pub const ALL: [Self; 5] = [Self::Hit, Self::Miss, Self::Stale, Self::Pass, Self::Bypass];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Stale => "STALE",
            Self::Pass => "PASS",
            Self::Bypass => "BYPASS",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

type Labels = Vec<(&'static str, String)>;

fn latency_histogram() -> Histogram {
    // 100 µs to ~13 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

/// What became of a request sent to a backend: the status class of its answer, or why there
/// was none.
pub const BACKEND_OUTCOMES: [&str; 9] = [
    "1xx",
    "2xx",
    "3xx",
    "4xx",
    "5xx",
    "connect_error",
    "no_response",
    "timeout",
    "invalid_response",
];

/// One backend's `proxy_backend_requests_total` series and its pool's latency histogram.
#[derive(Debug, Clone)]
pub struct BackendCounters {
    outcomes: Vec<Counter>,
    seconds: Histogram,
    connections: Counter,
}

impl BackendCounters {
    /// Counts one request; `outcome` is one of [`BACKEND_OUTCOMES`].
    pub fn record(&self, outcome: &str, elapsed: Duration) {
        if let Some(index) = BACKEND_OUTCOMES.iter().position(|o| *o == outcome) {
            self.outcomes[index].inc();
        }
        self.seconds.observe(elapsed.as_secs_f64());
    }

    pub fn connection_opened(&self) {
        self.connections.inc();
    }
}

#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    requests: [Counter; 5],
    durations: [Histogram; 5],
    pub response_bytes: Counter,
    backend_requests: Family<Labels, Counter>,
    backend_seconds: Family<Labels, Histogram>,
    backend_connections: Family<Labels, Counter>,
    pub backend_up: Family<Labels, Gauge>,
    pub retries: Counter,
    pub coalesced: Counter,
    pub revalidations: Family<Labels, Counter>,
    pub store_bytes: Gauge,
    pub store_objects: Gauge,
    pub evictions: Counter,
    pub purged: Counter,
    pub soft_purged: Counter,
    pub reloads: Family<Labels, Counter>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("proxy");
        let by_status: Family<Labels, Counter> = Family::default();
        registry.register(
            "requests",
            "Client requests by cache status (HIT, MISS, STALE, PASS, BYPASS); hit ratio = HIT / all",
            by_status.clone(),
        );
        let duration_family: Family<Labels, Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "request_duration_seconds",
            "Time from request to response head, by cache status",
            duration_family.clone(),
        );
        let label = |s: CacheStatus| vec![("cache_status", s.as_str().to_owned())];
        let requests = CacheStatus::ALL.map(|s| by_status.get_or_create(&label(s)).clone());
        let durations = CacheStatus::ALL.map(|s| duration_family.get_or_create(&label(s)).clone());

        let response_bytes = Counter::default();
        registry.register(
            "response_body_bytes",
            "Body bytes sent to clients",
            response_bytes.clone(),
        );
        let backend_requests = Family::default();
        registry.register(
            "backend_requests",
            "Requests sent to backends, by pool, backend and outcome (status class or error)",
            backend_requests.clone(),
        );
        let backend_seconds = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "backend_response_seconds",
            "Time from sending a request to a backend to its response head, by pool",
            backend_seconds.clone(),
        );
        let backend_connections = Family::default();
        registry.register(
            "backend_connections_opened",
            "Connections opened to a backend for client requests, by pool and backend; far fewer \
             than the backend's requests when keep-alive works",
            backend_connections.clone(),
        );
        let backend_up = Family::default();
        registry.register(
            "backend_up",
            "1 when the backend takes requests, 0 when health checks or ejection took it out",
            backend_up.clone(),
        );
        let retries = Counter::default();
        registry.register(
            "backend_retries",
            "Idempotent requests sent again: to another backend, or on a new connection after a \
             kept-alive one failed",
            retries.clone(),
        );
        let coalesced = Counter::default();
        registry.register(
            "cache_coalesced",
            "Requests that waited for another request's backend fetch instead of making their own",
            coalesced.clone(),
        );
        let revalidations = Family::default();
        registry.register(
            "cache_revalidations",
            "Conditional requests for stale objects, by result (not_modified, replaced, failed)",
            revalidations.clone(),
        );
        let store_bytes = Gauge::default();
        registry.register(
            "cache_store_bytes",
            "Bytes held by the cache store",
            store_bytes.clone(),
        );
        let store_objects = Gauge::default();
        registry.register(
            "cache_store_objects",
            "Objects held by the cache store",
            store_objects.clone(),
        );
        let evictions = Counter::default();
        registry.register(
            "cache_evictions",
            "Objects evicted to stay within max_memory",
            evictions.clone(),
        );
        let purged = Counter::default();
        registry.register(
            "cache_purged",
            "Objects removed by PURGE or tag purges",
            purged.clone(),
        );
        let soft_purged = Counter::default();
        registry.register(
            "cache_soft_purged",
            "Objects marked stale by soft purges (PURGE or tag purges with Soft-Purge: 1)",
            soft_purged.clone(),
        );
        let reloads = Family::default();
        registry.register(
            "config_reloads",
            "Policy reloads, by result (ok, refused)",
            reloads.clone(),
        );
        Self {
            registry,
            requests,
            durations,
            response_bytes,
            backend_requests,
            backend_seconds,
            backend_connections,
            backend_up,
            retries,
            coalesced,
            revalidations,
            store_bytes,
            store_objects,
            evictions,
            purged,
            soft_purged,
            reloads,
        }
    }

    pub fn request(&self, status: CacheStatus, elapsed: Duration) {
        self.requests[status.index()].inc();
        self.durations[status.index()].observe(elapsed.as_secs_f64());
    }

    /// The request counters of one backend, resolved once per backend so that counting a
    /// request allocates nothing.
    pub fn backend_counters(&self, pool: &str, backend: SocketAddr) -> BackendCounters {
        let outcomes = BACKEND_OUTCOMES
            .iter()
            .map(|outcome| {
                self.backend_requests
                    .get_or_create(&vec![
                        ("pool", pool.to_owned()),
                        ("backend", backend.to_string()),
                        ("outcome", (*outcome).to_owned()),
                    ])
                    .clone()
            })
            .collect();
        let seconds = self
            .backend_seconds
            .get_or_create(&vec![("pool", pool.to_owned())])
            .clone();
        let connections = self
            .backend_connections
            .get_or_create(&vec![
                ("pool", pool.to_owned()),
                ("backend", backend.to_string()),
            ])
            .clone();
        BackendCounters {
            outcomes,
            seconds,
            connections,
        }
    }

    pub fn labelled(family: &Family<Labels, Counter>, key: &'static str, value: &str) {
        family.get_or_create(&vec![(key, value.to_owned())]).inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
