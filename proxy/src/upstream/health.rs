//! Active health checks: every interval, `GET <path>` on each backend of a pool; a 2xx or 3xx
//! within the timeout is a success. Passive checks (the proxy's own traffic) live in
//! [`super::pool::Backend::record_passive`].

use std::sync::Weak;

use http::{Request, header};

use super::pool::Pool;
use crate::body;

pub async fn check_loop(pool: Weak<Pool>) {
    loop {
        let Some(interval) = pool
            .upgrade()
            .and_then(|p| p.settings.health.as_ref().map(|h| h.interval))
        else {
            return;
        };
        tokio::time::sleep(interval).await;
        let Some(pool) = pool.upgrade() else { return };
        let Some(health) = pool.settings.health.clone() else {
            return;
        };
        // Concurrently, so one hanging backend does not delay the others' checks.
        let mut checks = tokio::task::JoinSet::new();
        for backend in pool.backends().iter() {
            let pool = pool.clone();
            let backend = backend.clone();
            let path = health.path.clone();
            let health = health.clone();
            checks.spawn(async move {
                let request = Request::get(format!("http://{}{path}", backend.addr))
                    .header(header::USER_AGENT, "leanstack-proxy health check")
                    .body(body::empty())
                    .expect("a valid request");
                let ok = match tokio::time::timeout(health.timeout, pool.client.request(request))
                    .await
                {
                    Ok(Ok(response)) => {
                        let status = response.status();
                        status.is_success() || status.is_redirection()
                    }
                    _ => false,
                };
                backend.record_check(ok, health.rise, health.fall);
            });
        }
        while checks.join_next().await.is_some() {}
    }
}
