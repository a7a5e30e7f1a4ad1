//! Request metrics by route: `app_http_requests_total{method, route, status}`,
//! `app_http_request_duration_seconds{route}`, and `app_http_requests_reaching_db_total{route}`
//! (requests that made at least one database query: the cache's misses as the database sees
//! them). Routes are the router's patterns
//! (`/posts/{slug}`), never raw paths, so label sets stay bounded. Database and cache-pool
//! metrics are registered by [`crate::models::Db`] and the pool itself.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::timing;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

/// The HTTP metrics of one app instance.
#[derive(Debug)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabel, Histogram>,
    reaching_db: Family<RouteLabel, Counter>,
}

impl HttpMetrics {
    pub fn new(registry: &mut Registry) -> Arc<Self> {
        let metrics = HttpMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(|| {
                // 100 µs to ~1.6 s.
                Histogram::new(exponential_buckets(0.0001, 2.0, 15))
            }),
            reaching_db: Family::default(),
        };
        registry.register(
            "app_http_requests",
            "HTTP requests answered",
            metrics.requests.clone(),
        );
        registry.register(
            "app_http_request_duration_seconds",
            "Time to answer an HTTP request",
            metrics.duration.clone(),
        );
        registry.register(
            "app_http_requests_reaching_db",
            "HTTP requests that made at least one database query",
            metrics.reaching_db.clone(),
        );
        Arc::new(metrics)
    }
}

/// Middleware: counts and times every request under its route pattern.
pub async fn middleware(
    State(metrics): State<Arc<HttpMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let response = next.run(request).await;
    let label = RouteLabel {
        route: route.clone(),
    };
    metrics
        .duration
        .get_or_create(&label)
        .observe(started.elapsed().as_secs_f64());
    if timing::current_db_queries() > 0 {
        metrics.reaching_db.get_or_create(&label).inc();
    }
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}
