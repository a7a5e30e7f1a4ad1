//! The cache node server.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// What the node needs to run.
#[derive(Debug, Clone, Default)]
pub struct Config {}

/// Serves until `shutdown` resolves, then stops gracefully.
pub async fn run(
    listener: TcpListener,
    _config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let registry = Arc::new(Registry::default());
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || service::metrics::respond(registry.clone())),
        );
    tracing::info!(addr = %listener.local_addr()?, "cache listening");
    service::http::serve(listener, router, shutdown, service::http::DEFAULT_GRACE).await
}
