//! Prometheus `/metrics` over a registry owned by one service instance, and ([`scrape`]) reading
//! such a page back, for the tools that watch the services (the live view, the load generator).
//!
//! Each service builds its own [`Registry`] rather than using a process-global recorder, so that
//! tests running several instances in one process (three cache nodes, two app servers) read each
//! instance's own numbers.

pub mod scrape;

use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

/// The content type Prometheus expects for the text exposition format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Renders `registry` in the OpenMetrics text format.
pub fn render(registry: &Registry) -> String {
    let mut body = String::new();
    encode(&mut body, registry).expect("writing to a String cannot fail");
    body
}

/// An axum handler body: `get(move || metrics::respond(registry.clone()))`.
pub async fn respond(registry: Arc<Registry>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        render(&registry),
    )
        .into_response()
}
