//! The caching reverse proxy and load balancer in front of the app servers (the Varnish/Squid
//! role).
//!
//! A request goes through the phases of [`handle`]: check, route, policy, cache lookup,
//! upstream, store, respond. The parts, one module per concern:
//!
//! - [`config`]: the TOML policy, its validation and its plain-words description;
//! - [`server`]: the accept loop, limits, graceful shutdown and reloads;
//! - [`framing`]: spots requests with both Content-Length and Transfer-Encoding;
//! - [`deadline`]: header-read and first-byte deadlines on one timer per connection;
//! - [`cache`]: keys, RFC 9111 freshness, the memory-bounded store, coalescing, revalidation,
//!   purging;
//! - [`upstream`]: backend pools, balancing, health checks, the backend client;
//! - [`admin`]: `/metrics`, `/status` and the purge endpoints behind an ACL;
//! - [`allocator`]: mimalloc as the binary's allocator, on its fast paths.

pub mod admin;
pub mod allocator;
pub mod body;
pub mod cache;
pub mod config;
pub mod deadline;
pub mod framing;
pub mod handle;
pub mod headers;
pub mod metrics;
pub mod server;
pub mod state;
pub mod upstream;

use std::future::Future;

use tokio::net::TcpListener;

pub use config::Config;
pub use server::{Proxy, ReloadHandle};

/// Proxies on `listener` with `config` until `shutdown` resolves (no admin listener; use
/// [`Proxy`] for that and for reloads).
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    Proxy::new(config)
        .await
        .serve(listener, None, shutdown)
        .await
}
