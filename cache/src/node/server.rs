//! The accept loop both protocols share: a connection limit over all listeners, one task per
//! connection, and a stop that ends accepting at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Node;
use super::connection::{self, Session};

/// A wire protocol: how to start a session for a new connection.
pub(super) trait Protocol: Copy + Send + Sync + 'static {
    type Session: Session;

    /// The protocol's reply to a client over `--max-connections`, sent before closing.
    const TOO_MANY_CONNECTIONS: &'static [u8];

    fn session(self, node: Arc<Node>, peer: SocketAddr) -> Self::Session;
}

pub(super) async fn accept<P: Protocol>(
    listener: TcpListener,
    protocol: P,
    node: Arc<Node>,
    slots: Arc<Semaphore>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let (mut stream, peer) = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    // Typically EMFILE: give open connections a moment to close some.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            node.clients.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "connection refused: max connections reached");
            tasks.spawn(async move {
                let _ = stream.write_all(P::TOO_MANY_CONNECTIONS).await;
                let _ = stream.shutdown().await;
            });
            continue;
        };
        // Replies are written in batches already; Nagle would only delay the last one.
        let _ = stream.set_nodelay(true);
        let session = protocol.session(node.clone(), peer);
        let node = node.clone();
        let stop = stop.clone();
        tasks.spawn(async move {
            node.clients.connected.fetch_add(1, Ordering::Relaxed);
            node.clients.total.fetch_add(1, Ordering::Relaxed);
            let idle_timeout = node.config.idle_timeout;
            connection::serve(stream, session, idle_timeout, stop).await;
            node.clients.connected.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
}
