//! Node discovery by DNS: a name that resolves to one address per cache node (a Docker Compose
//! service scaled to N, a Kubernetes headless service), resolved again every `refresh`.

use std::sync::Weak;
use std::time::Duration;

use super::Inner;

/// Starts the resolver task; it ends when the last handle on the pool is dropped.
pub(super) fn spawn(pool: Weak<Inner>, name: String, port: u16, refresh: Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::error!(%name, "cache pool DNS discovery needs a Tokio runtime; cache disabled");
        return;
    };
    runtime.spawn(async move {
        let mut first = true;
        let mut interval = tokio::time::interval(refresh);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let resolved = resolve(&name, port).await;
            let Some(pool) = pool.upgrade() else {
                return;
            };
            match resolved {
                Ok(nodes) => {
                    if nodes != pool.node_names() {
                        tracing::info!(%name, ?nodes, "cache nodes changed");
                        // Nodes found after the first answer may be coming back: flush them.
                        pool.set_members(nodes, !first);
                    }
                    first = false;
                }
                // Keep the nodes we know: a DNS hiccup must not empty the cache.
                Err(error) => tracing::warn!(%name, %error, "cannot resolve cache nodes"),
            }
        }
    });
}

/// Every address `name` resolves to, as sorted `ip:port` node names.
async fn resolve(name: &str, port: u16) -> std::io::Result<Vec<String>> {
    let mut nodes: Vec<String> = tokio::net::lookup_host((name, port))
        .await?
        .map(|addr| addr.to_string())
        .collect();
    nodes.sort();
    nodes.dedup();
    Ok(nodes)
}
