//! Serving an axum router the way every leanstack HTTP service does: HTTP/1.1 and HTTP/2 on one
//! listener, the peer's address available to handlers as `ConnectInfo<SocketAddr>`, and a
//! shutdown that stops accepting at once, lets in-flight requests finish for a bounded grace
//! period, then cuts off whatever is left.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulConnection, GracefulShutdown};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// How long in-flight requests may run after shutdown is asked before they are cut off.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` resolves, then drains as described above.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let builder = auto::Builder::new(TokioExecutor::new());
    accept_until(listener, shutdown, grace, move |stream, peer| {
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned()
    })
    .await
}

/// The accept loop under every leanstack server: hands each accepted connection to
/// `connection` (which wraps it in a hyper connection serving it) until `shutdown` resolves,
/// then stops accepting, lets open connections finish for at most `grace`, and cuts off the rest.
///
/// Returns once every connection has closed or been cut off; accept errors (for instance running
/// out of file descriptors) are logged and the loop goes on, so they never end the service.
pub async fn accept_until<C>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    mut connection: impl FnMut(TcpStream, SocketAddr) -> C,
) -> std::io::Result<()>
where
    C: GracefulConnection + Send + 'static,
    C::Error: std::fmt::Display,
{
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    // Typically EMFILE: give in-flight connections a moment to close some.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let served = graceful.watch(connection(stream, peer));
        connections.spawn(async move {
            if let Err(error) = served.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    tracing::info!(
        in_flight = connections.len(),
        "stopped accepting; draining connections"
    );
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "connections still open after the grace period; closing them"
        );
        connections.abort_all();
    }
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// The peer address of a request served by [`serve`].
pub fn peer(request: &axum::extract::Request) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0)
}
