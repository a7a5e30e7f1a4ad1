//! The admin listener: `/healthz`, `/metrics` (Prometheus), `/status` (JSON), and the purges —
//! `PURGE <path>` with the site's Host for one URL, `POST /purge` with a `Surrogate-Key` header
//! listing tags. Either is soft with `Soft-Purge: 1` (or Fastly's `Fastly-Soft-Purge: 1`): the
//! objects are marked stale instead of removed. Purges are allowed only from the configured
//! CIDRs; others get 403.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::cache::store::PurgeMode;
use crate::cache::{key, purge};
use crate::state::Shared;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/purge", post(purge_tags))
        .fallback(purge_url)
        .with_state(shared)
}

/// Hard, or soft when the request says `Soft-Purge: 1` or `Fastly-Soft-Purge: 1`.
fn purge_mode(headers: &HeaderMap) -> PurgeMode {
    let soft = [purge::SOFT_PURGE, purge::FASTLY_SOFT_PURGE]
        .iter()
        .any(|name| {
            headers
                .get(name)
                .is_some_and(|v| v.as_bytes().trim_ascii() == b"1")
        });
    if soft {
        PurgeMode::Soft
    } else {
        PurgeMode::Hard
    }
}

/// Counts purged objects under the mode's metric.
fn count(shared: &Shared, mode: PurgeMode, objects: usize) {
    let counter = match mode {
        PurgeMode::Hard => &shared.metrics.purged,
        PurgeMode::Soft => &shared.metrics.soft_purged,
    };
    counter.inc_by(objects as u64);
}

/// Refuses peers outside the ACL.
fn allowed(shared: &Shared, peer: SocketAddr) -> Result<(), Box<Response>> {
    let ip = peer.ip().to_canonical();
    if shared
        .policy()
        .config
        .admin
        .allow
        .iter()
        .any(|net| net.contains(&ip))
    {
        Ok(())
    } else {
        tracing::warn!(%peer, "purge refused by the admin ACL");
        Err(Box::new(
            (
                StatusCode::FORBIDDEN,
                "purging is not allowed from this address\n",
            )
                .into_response(),
        ))
    }
}

async fn purge_tags(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = allowed(&shared, peer) {
        return *refused;
    }
    let tags = purge::tags(&headers);
    if tags.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            "name the tags to purge in a Surrogate-Key header, separated by spaces\n",
        )
            .into_response();
    }
    let mode = purge_mode(&headers);
    let purged = shared.store.purge_tags(&tags, mode);
    count(&shared, mode, purged);
    let soft = mode == PurgeMode::Soft;
    tracing::info!(%peer, ?tags, purged, soft, "purged by tag");
    Json(json!({ "purged": purged, "tags": tags, "soft": soft })).into_response()
}

async fn purge_url(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if method.as_str() != "PURGE" {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    if let Err(refused) = allowed(&shared, peer) {
        return *refused;
    }
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return (
            StatusCode::BAD_REQUEST,
            "PURGE needs the site's Host header\n",
        )
            .into_response();
    };
    let policy = shared.policy();
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut primary = key::Primary::for_host(host, target.len());
    // Normalised the way the cached request was, so `?utm_source=x` variants go too.
    primary.push_target(target, policy.route(primary.host_name(), uri.path()));
    let (host, target) = (primary.host(), primary.target());
    let mode = purge_mode(&headers);
    let purged = shared.store.purge(primary.as_str(), mode);
    count(&shared, mode, purged);
    let soft = mode == PurgeMode::Soft;
    tracing::info!(%peer, %host, %target, purged, soft, "purged URL");
    Json(json!({ "purged": purged, "soft": soft })).into_response()
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let stats = shared.store.stats();
    let m = &shared.metrics;
    m.store_bytes
        .set(i64::try_from(stats.bytes).unwrap_or(i64::MAX));
    m.store_objects
        .set(i64::try_from(stats.objects).unwrap_or(i64::MAX));
    // Rebuilt at each scrape so that backends gone after a reload or DNS change disappear.
    m.backend_up.clear();
    let now = std::time::Instant::now();
    for pool in shared.policy().pools.values() {
        for backend in pool.backends().iter() {
            m.backend_up
                .get_or_create(&vec![
                    ("pool", pool.name.clone()),
                    ("backend", backend.addr.to_string()),
                ])
                .set(i64::from(backend.is_available(now)));
        }
    }
    (
        [(header::CONTENT_TYPE, service::metrics::CONTENT_TYPE)],
        service::metrics::render(&m.registry),
    )
        .into_response()
}

async fn status(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let policy = shared.policy();
    let now = std::time::Instant::now();
    let mut pools: Vec<_> = policy
        .pools
        .values()
        .map(|pool| {
            let backends: Vec<_> = pool
                .backends()
                .iter()
                .map(|b| {
                    json!({
                        "address": b.addr.to_string(),
                        "healthy": b.is_available(now),
                        "outstanding": b.outstanding(),
                    })
                })
                .collect();
            json!({ "name": pool.name, "backends": backends })
        })
        .collect();
    pools.sort_by_key(|p| p["name"].as_str().map(str::to_owned));
    Json(json!({
        "pools": pools,
        "store": shared.store.stats(),
        "routes": policy.config.routes.len(),
    }))
}
