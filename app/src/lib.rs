//! The MVC blog served by each app server: axum + askama + sqlx over PostgreSQL, with
//! cache-aside through the cache pool.
//!
//! Where to start reading:
//!
//! - [`router`]: every URL the app answers, and the middleware around them.
//! - [`controllers`]: the handlers, thin — request in, data through [`caching::Cache`], view out.
//! - [`models`]: the SQL; [`views`] and `templates/`: the HTML.
//! - [`caching`]: cache keys and TTLs, invalidation on write, purges sent to the proxy, and the
//!   `Cache-Control`/`ETag`/`Surrogate-Key` contract with it.
//! - [`timing`]: the `Server-Timing` and `X-Served-By` headers that show learners what each tier
//!   did for a page.

pub mod assets;
pub mod caching;
pub mod controllers;
pub mod error;
pub mod markdown;
pub mod metrics;
pub mod models;
pub mod seed;
pub mod timing;
pub mod views;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use prometheus_client::registry::Registry;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::caching::{Cache, Purger};
use crate::controllers::{AppState, api, auth, comments, posts, search};
use crate::error::AppError;
use crate::models::Db;

/// The migrations in `app/migrations/`, compiled in. Applied by `app migrate` (and by tests),
/// never by `app serve`: with several replicas, schema changes are a deliberate one-shot step.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Largest request body accepted (a post's Markdown is at most 100 kB; form encoding can
/// triple it). Larger bodies get a 413 page.
pub const MAX_BODY_BYTES: usize = 512 * 1024;

/// What the app needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The PostgreSQL pool (`PgPoolOptions::connect_lazy` in `main`, so the app starts — and
    /// answers 503 — while the database is down).
    pub database: PgPool,
    /// The cache nodes (`PoolConfig::from_nodes_arg("cache-1:6379,…")`; no nodes disables it).
    pub cache: cache::pool::PoolConfig,
    /// The `X-Served-By` value: which app server answered.
    pub instance_name: String,
    /// The proxy's admin endpoint (`http://proxy:9080`) for purges, if there is a proxy.
    pub proxy_admin_url: Option<String>,
}

/// Every route of the app, with its middleware.
pub fn router(state: AppState, instance_name: &str, registry: &mut Registry) -> Router {
    let http_metrics = metrics::HttpMetrics::new(registry);
    let instance =
        HeaderValue::from_str(instance_name).unwrap_or_else(|_| HeaderValue::from_static("app"));
    Router::new()
        .route("/", get(posts::front))
        .route("/posts/new", get(posts::new_form).post(posts::create))
        .route("/posts/{slug}", get(posts::show))
        .route("/posts/{slug}/comments", post(comments::create))
        .route("/tags/{tag}", get(posts::tag))
        .route("/authors/{username}", get(posts::author))
        .route("/search", get(search::search))
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/signup", get(auth::signup_form).post(auth::signup))
        .route("/logout", post(auth::logout))
        .route("/api/posts", get(api::posts))
        .route("/api/posts/{slug}", get(api::post))
        .route("/api/tags/{tag}", get(api::tag))
        .route("/api/authors/{username}", get(api::author))
        .route("/api/search", get(api::search))
        .route("/assets/{file}", get(assets::serve))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route_layer(from_fn_with_state(http_metrics, metrics::middleware))
        .fallback(|| async { AppError::NotFound })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(from_fn_with_state(instance, timing::middleware))
        .with_state(state)
}

/// `/readyz`: 200 when the database answers, 503 otherwise (take this replica out of the
/// proxy's rotation; `/healthz` only says the process is alive).
#[tracing::instrument(skip_all)]
async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.db.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(error) => {
            tracing::warn!(%error, "not ready: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
        }
    }
}

/// Serves until `shutdown` resolves, then stops gracefully.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut registry = Registry::default();
    // The live view of the whole stack, at /stack: this app knows the database and, through the
    // proxy's /status, the other app servers, the doorbell and (from their metrics) the cache
    // nodes.
    let mut stack_sources = stackview::Sources::new().database(config.database.clone());
    if let Some(url) = &config.proxy_admin_url {
        stack_sources = stack_sources.proxy_admin(url.clone());
    }
    let state = AppState {
        db: Db::new(config.database, &mut registry),
        cache: Cache::new(cache::pool::Pool::new(config.cache, &mut registry)),
        purger: Purger::new(config.proxy_admin_url.as_deref()),
    };
    let mut router = router(state, &config.instance_name, &mut registry);
    let registry = Arc::new(registry);
    router = router
        .route(
            "/metrics",
            get(move || service::metrics::respond(registry.clone())),
        )
        .merge(stackview::router(stack_sources));
    tracing::info!(
        addr = %listener.local_addr()?,
        instance = %config.instance_name,
        "app listening"
    );
    service::http::serve(listener, router, shutdown, service::http::DEFAULT_GRACE).await
}
