//! What each tier did for one request, told to the browser: every response carries
//! `X-Served-By: <instance>` and `Server-Timing: cache;dur=…, db;dur=…;desc="N queries",
//! render;dur=…`, so a learner's developer tools show whether a page came from the cache pool or
//! cost database queries.
//!
//! The numbers are gathered in a task-local [`RequestTimings`] that the middleware installs
//! around each request; the model layer, the cache wrapper and the views add to it through
//! [`db`], [`cache()`] and [`render`]. Work done outside a request (seeding, migrations) is simply
//! not recorded.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

tokio::task_local! {
    static CURRENT: Arc<RequestTimings>;
}

/// Time spent per tier during one request, in microseconds.
#[derive(Debug, Default)]
pub struct RequestTimings {
    db_queries: AtomicU32,
    db_micros: AtomicU64,
    cache_micros: AtomicU64,
    cache_hits: AtomicU32,
    cache_misses: AtomicU32,
    render_micros: AtomicU64,
}

impl RequestTimings {
    /// How many database queries the request has made so far.
    pub fn db_queries(&self) -> u32 {
        self.db_queries.load(Ordering::Relaxed)
    }

    fn header_value(&self) -> String {
        let ms = |micros: &AtomicU64| micros.load(Ordering::Relaxed) as f64 / 1000.0;
        let count = |counter: &AtomicU32, one: &str, many: &str| {
            let n = counter.load(Ordering::Relaxed);
            format!("{n} {}", if n == 1 { one } else { many })
        };
        format!(
            "cache;dur={:.3};desc=\"{}, {}\", db;dur={:.3};desc=\"{}\", render;dur={:.3}",
            ms(&self.cache_micros),
            count(&self.cache_hits, "hit", "hits"),
            count(&self.cache_misses, "miss", "misses"),
            ms(&self.db_micros),
            count(&self.db_queries, "query", "queries"),
            ms(&self.render_micros),
        )
    }
}

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

fn with_current(record: impl FnOnce(&RequestTimings)) {
    let _outside_a_request = CURRENT.try_with(|timings| record(timings));
}

/// How many database queries the current request has made so far (0 outside a request).
pub fn current_db_queries() -> u32 {
    CURRENT
        .try_with(|timings| timings.db_queries())
        .unwrap_or(0)
}

/// Runs one database query, counting it and its time against the current request.
pub async fn db<T>(query: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let result = query.await;
    let elapsed = micros(started.elapsed());
    with_current(|timings| {
        timings.db_queries.fetch_add(1, Ordering::Relaxed);
        timings.db_micros.fetch_add(elapsed, Ordering::Relaxed);
    });
    result
}

/// Counts a cache-aside lookup as a hit or a miss.
pub fn cache_lookup(hit: bool) {
    with_current(|timings| {
        let counter = if hit {
            &timings.cache_hits
        } else {
            &timings.cache_misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
    });
}

/// Runs a cache-pool operation. Database time spent inside it (a cache-aside loader running on
/// a miss) is reported as `db`, not as `cache`.
pub async fn cache<T>(operation: impl Future<Output = T>) -> T {
    let db_before = CURRENT
        .try_with(|timings| timings.db_micros.load(Ordering::Relaxed))
        .unwrap_or(0);
    let started = Instant::now();
    let result = operation.await;
    let elapsed = micros(started.elapsed());
    with_current(|timings| {
        let db_during = timings.db_micros.load(Ordering::Relaxed) - db_before;
        timings
            .cache_micros
            .fetch_add(elapsed.saturating_sub(db_during), Ordering::Relaxed);
    });
    result
}

/// Renders a view, counting the time as `render`.
pub fn render<T>(view: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = view();
    let elapsed = micros(started.elapsed());
    with_current(|timings| {
        timings.render_micros.fetch_add(elapsed, Ordering::Relaxed);
    });
    result
}

/// Middleware: gathers the request's timings and writes the two headers on the response.
pub async fn middleware(
    State(instance): State<HeaderValue>,
    request: Request,
    next: Next,
) -> Response {
    let timings = Arc::new(RequestTimings::default());
    let mut response = CURRENT.scope(timings.clone(), next.run(request)).await;
    let headers = response.headers_mut();
    headers.insert("x-served-by", instance);
    if let Ok(value) = HeaderValue::from_str(&timings.header_value()) {
        headers.insert("server-timing", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queries_inside_a_cache_operation_count_as_db_time() {
        let timings = Arc::new(RequestTimings::default());
        CURRENT
            .scope(timings.clone(), async {
                cache(async {
                    db(tokio::time::sleep(Duration::from_millis(20))).await;
                })
                .await;
                cache_lookup(false);
            })
            .await;
        assert_eq!(timings.db_queries(), 1);
        assert!(timings.db_micros.load(Ordering::Relaxed) >= 20_000);
        assert!(timings.cache_micros.load(Ordering::Relaxed) < 20_000);
        let header = timings.header_value();
        assert!(header.contains("desc=\"0 hits, 1 miss\""), "{header}");
        assert!(header.contains("desc=\"1 query\""), "{header}");
    }

    #[tokio::test]
    async fn work_outside_a_request_is_not_recorded() {
        assert_eq!(db(async { 7 }).await, 7);
        assert_eq!(render(|| 8), 8);
    }
}
