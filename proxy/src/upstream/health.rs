//! Active health checks: every interval, `GET <path>` on each backend of a pool; a 2xx or 3xx
//! within the timeout is a success. Passive checks (the proxy's own traffic) live in
//! [`super::pool::Backend::record_passive`].

use std::sync::{Arc, Weak};
use std::time::Duration;

use http::{Request, header};
use http_body_util::BodyExt;

use super::UpstreamError;
use super::connection;
use super::pool::{Backend, Pool};
use crate::body;

pub async fn check_loop(pool: Weak<Pool>) {
    let interval = |pool: &Pool| pool.settings.health.as_ref().map(|h| h.interval);
    super::pool::while_alive(pool, interval, Duration::ZERO, check_all).await;
}

/// Checks every backend of `pool` once, concurrently, so one hanging backend does not delay the
/// others' checks.
async fn check_all(pool: &Arc<Pool>) {
    let Some(health) = pool.settings.health.clone() else {
        return;
    };
    let mut checks = tokio::task::JoinSet::new();
    for backend in pool.backends().iter() {
        let pool = pool.clone();
        let backend = backend.clone();
        let health = health.clone();
        checks.spawn(async move {
            let ok = tokio::time::timeout(health.timeout, check(&pool, &backend, &health.path))
                .await
                .unwrap_or(false);
            backend.record_check(ok, health.rise, health.fall);
        });
    }
    while checks.join_next().await.is_some() {}
}

/// One check, on a kept-alive connection like the proxy's own requests (and, like them, once
/// more on a new connection when a kept-alive one was closed under it).
async fn check(pool: &Pool, backend: &Arc<Backend>, path: &str) -> bool {
    let request = || {
        let mut request = Request::get(path)
            .header(header::USER_AGENT, "leanstack-proxy health check")
            .body(body::empty())
            .ok()?;
        if let Some(host) = &backend.host {
            request.headers_mut().insert(header::HOST, host.clone());
        }
        Some(request)
    };
    let Some(first) = request() else { return false };
    let mut exchange = connection::exchange(backend, first, &pool.settings, None).await;
    if exchange.reused
        && exchange.result.as_ref().err() == Some(&UpstreamError::NoResponse)
        && let Some(again) = request()
    {
        exchange = connection::exchange(backend, again, &pool.settings, None).await;
    }
    let Ok(response) = exchange.result else {
        return false;
    };
    let status = response.status();
    // Read to the end, so that the connection can be used again.
    response.into_body().collect().await.is_ok() && (status.is_success() || status.is_redirection())
}
