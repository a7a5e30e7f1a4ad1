//! Every name the live view reads from the other services, in one place: metric families,
//! label names and values, JSON fields, `INFO` fields and `pg_stat_database` columns. When a
//! service renames something, this is the file to change (the tests scrape the real services
//! and fail when a name here no longer exists).

/// The proxy's admin listener (`proxy/src/admin.rs`, `proxy/src/metrics.rs`).
pub mod proxy {
    /// `GET` on the admin listener: pools and their backends as JSON.
    pub const STATUS_PATH: &str = "/status";
    pub const METRICS_PATH: &str = "/metrics";

    /// Client requests, labelled [`CACHE_STATUS`].
    pub const REQUESTS: &str = "proxy_requests_total";
    pub const CACHE_STATUS: &str = "cache_status";
    /// The statuses that were answered from the cache: the "served from cache" ratio is these
    /// over all requests.
    pub const FROM_CACHE: [&str; 2] = ["HIT", "STALE"];

    /// Requests sent to backends, labelled [`POOL`], [`BACKEND`] (`ip:port`) and [`OUTCOME`]
    /// (`2xx`…`5xx`, or an error kind such as `connect`/`timeout`).
    pub const BACKEND_REQUESTS: &str = "proxy_backend_requests_total";
    pub const POOL: &str = "pool";
    pub const BACKEND: &str = "backend";
    pub const OUTCOME: &str = "outcome";
    /// Outcomes that were answers rather than failures; everything else counts as an error
    /// except 5xx, which is also an error.
    pub const ANSWERED: [&str; 4] = ["1xx", "2xx", "3xx", "4xx"];

    pub const STORE_OBJECTS: &str = "proxy_cache_store_objects";
    pub const STORE_BYTES: &str = "proxy_cache_store_bytes";

    /// `/status` JSON: `{"pools": [{"name", "backends": [{"address", "healthy", "outstanding"}]}]}`.
    pub const POOLS: &str = "pools";
    pub const POOL_NAME: &str = "name";
    pub const POOL_BACKENDS: &str = "backends";
    pub const BACKEND_ADDRESS: &str = "address";
    pub const BACKEND_HEALTHY: &str = "healthy";
    pub const BACKEND_OUTSTANDING: &str = "outstanding";
}

/// An app instance's `/metrics` (`app/src/metrics.rs`, `app/src/models/mod.rs`,
/// `cache/src/pool/metrics.rs`).
pub mod app {
    pub const METRICS_PATH: &str = "/metrics";
    /// Asked once per address to learn the instance's name from [`SERVED_BY`].
    pub const NAME_PATH: &str = "/healthz";
    /// The header naming the instance that answered (`app/src/timing.rs`).
    pub const SERVED_BY: &str = "x-served-by";

    /// Requests answered, labelled [`STATUS`] (the numeric HTTP status).
    pub const REQUESTS: &str = "app_http_requests_total";
    pub const STATUS: &str = "status";
    pub const DB_QUERIES: &str = "app_db_queries_total";
    pub const DB_ERRORS: &str = "app_db_errors_total";

    /// The app's cache pool, per node, labelled [`NODE`] with the node's address as the app
    /// was given it (`cache-1:6379`).
    pub const POOL_HITS: &str = "cache_pool_hits_total";
    pub const POOL_MISSES: &str = "cache_pool_misses_total";
    pub const POOL_ERRORS: &str = "cache_pool_errors_total";
    pub const NODE: &str = "node";
}

/// The doorbell's `/metrics` (`doorbell/src/lib.rs`).
pub mod doorbell {
    pub const METRICS_PATH: &str = "/metrics";
    /// Call steps, labelled [`OUTCOME`].
    pub const CALL_OUTCOMES: &str = "doorbell_call_outcomes_total";
    pub const OUTCOME: &str = "outcome";
    /// The outcomes that start a call: the caller heard the menu or was turned away.
    pub const CALL_STARTS: [&str; 2] = ["menu", "rejected"];
    pub const DOOR_OPENED: &str = "door-opened";
    pub const WEBHOOKS_REFUSED: &str = "doorbell_webhooks_refused_total";
}

/// A cache node's `INFO` reply over RESP (`cache/src/node/resp/cmd/server.rs`), with Redis's
/// field names, so the view works against redis-server too.
pub mod cache {
    pub const HITS: &str = "keyspace_hits";
    pub const MISSES: &str = "keyspace_misses";
    pub const COMMANDS: &str = "total_commands_processed";
    pub const USED_MEMORY: &str = "used_memory";
    pub const CONNECTED_CLIENTS: &str = "connected_clients";
    /// `db0:keys=12,expires=3,avg_ttl=0`.
    pub const KEYSPACE_DB: &str = "db0";
    pub const KEYS: &str = "keys";
}

/// PostgreSQL's statistics view for the current database.
pub mod postgres {
    pub const STATS_QUERY: &str = "SELECT xact_commit, xact_rollback, tup_returned, numbackends \
         FROM pg_stat_database WHERE datname = current_database()";
}
