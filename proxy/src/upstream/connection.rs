//! HTTP/1 connections to one backend, kept alive between requests and driven by the request
//! that holds them.
//!
//! Why not hyper-util's pooled client: it runs each backend connection as a task of its own, so
//! every proxied request crossed tasks several times (the request handed to the connection's
//! task, the response head and each body chunk handed back, and one more task spawned per
//! response to put the connection back). Here the task serving the client polls the backend
//! connection itself, from writing the request to reading the last byte of the response; an idle
//! connection waits in its backend's [`IdleConnections`], polled by no one. proxy/README.md has
//! the measured difference.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::client::UpstreamError;
use super::pool::Backend;
use crate::body::ProxyBody;
use crate::config::PoolSettings;
use crate::deadline::Deadline;
use crate::metrics::BackendCounters;

/// At most this many idle connections are kept per backend; more are closed after their
/// response.
const MAX_IDLE_PER_BACKEND: usize = 1024;

/// One open connection: the handle requests go in by, and the state machine that moves the
/// bytes, which does nothing unless its holder polls it.
struct BackendConnection {
    sender: http1::SendRequest<ProxyBody>,
    driver: http1::Connection<TokioIo<TcpStream>, ProxyBody>,
    idle_since: Instant,
    first_byte: Deadline,
}

impl BackendConnection {
    /// Boxed: a connection is moved between the idle list, the exchange and the body, and
    /// moving a pointer is cheaper than moving its buffers' bookkeeping.
    async fn open(addr: SocketAddr, settings: &PoolSettings) -> Result<Box<Self>, UpstreamError> {
        let connect = TcpStream::connect(addr);
        let stream = match tokio::time::timeout(settings.connect_timeout, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(backend = %addr, %error, "cannot connect");
                return Err(UpstreamError::Connect);
            }
            Err(_elapsed) => return Err(UpstreamError::Connect),
        };
        let _ = stream.set_nodelay(true);
        let (sender, driver) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| UpstreamError::Connect)?;
        Ok(Box::new(Self {
            sender,
            driver,
            idle_since: Instant::now(),
            first_byte: Deadline::new(Instant::now() + settings.first_byte_timeout),
        }))
    }

    /// Moves whatever bytes can move; `Ready` once the connection has ended, by error or close.
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.driver).poll(cx).map(|_| ())
    }

    /// Whether another request can go on this connection now. One poll with a no-op waker
    /// lets it finish the last exchange and read a close (or anything else) the backend sent
    /// while nobody was polling.
    fn reusable(&mut self) -> bool {
        self.drive(&mut Context::from_waker(Waker::noop()))
            .is_pending()
            && self.sender.is_ready()
    }

    /// Whether an idle connection may still be used: idle for less than `idle_timeout`, and
    /// reusable.
    fn still_good(&mut self, idle_timeout: Duration) -> bool {
        self.idle_since.elapsed() < idle_timeout && self.reusable()
    }
}

/// A backend's idle connections, the most recently used last.
#[derive(Default)]
pub struct IdleConnections {
    #[expect(
        clippy::vec_box,
        reason = "connections move in and out of the list; boxed, each move is a pointer's"
    )]
    list: Mutex<Vec<Box<BackendConnection>>>,
}

impl std::fmt::Debug for IdleConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = self.list.lock().map_or(0, |list| list.len());
        f.debug_struct("IdleConnections")
            .field("idle", &idle)
            .finish()
    }
}

impl IdleConnections {
    /// The most recently used connection that is still good: it is the likeliest to be open
    /// at the backend's end too.
    fn take(&self, idle_timeout: Duration) -> Option<Box<BackendConnection>> {
        let mut list = self.list.lock().expect("not poisoned");
        while let Some(mut connection) = list.pop() {
            if connection.still_good(idle_timeout) {
                return Some(connection);
            }
        }
        None
    }

    /// Keeps `connection` for a later request. Whether it is still usable (the backend may
    /// have said `Connection: close`) is asked when it is taken: asking here too cost a poll of
    /// the connection per request, 1% of a pass-through's instructions.
    fn put(&self, mut connection: Box<BackendConnection>) {
        connection.idle_since = Instant::now();
        let mut list = self.list.lock().expect("not poisoned");
        if list.len() < MAX_IDLE_PER_BACKEND {
            list.push(connection);
        }
    }

    /// Closes connections idle for `idle_timeout` or closed by the backend, so that a quiet
    /// backend's sockets do not linger until the next request.
    pub fn sweep(&self, idle_timeout: Duration) {
        self.list
            .lock()
            .expect("not poisoned")
            .retain_mut(|connection| connection.still_good(idle_timeout));
    }
}

/// A backend's response body. Reading it also drives the connection it arrives on; once it
/// has been read to the end, the connection goes back to its backend's idle list. Dropped
/// earlier, the connection is closed, as a half-read response cannot be skipped.
pub struct BackendBody {
    incoming: Incoming,
    /// `None` once the connection has ended or gone back to the idle list.
    connection: Option<(Box<BackendConnection>, Arc<Backend>)>,
}

impl std::fmt::Debug for BackendBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendBody")
            .field("incoming", &self.incoming)
            .field("connection_held", &self.connection.is_some())
            .finish()
    }
}

impl BackendBody {
    fn release(&mut self) {
        if let Some((connection, backend)) = self.connection.take() {
            backend.idle.put(connection);
        }
    }
}

impl Body for BackendBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        // The body first: asking for it is what lets the connection read it, so this order
        // usually gets the frame in one go instead of a wake-up later.
        let mut polled = Pin::new(&mut this.incoming).poll_frame(cx);
        if polled.is_pending() {
            if let Some((connection, _)) = &mut this.connection
                && connection.drive(cx).is_ready()
            {
                this.connection = None;
            }
            polled = Pin::new(&mut this.incoming).poll_frame(cx);
        }
        let frame = std::task::ready!(polled);
        if frame.is_none() || this.incoming.is_end_stream() {
            this.release();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

impl Drop for BackendBody {
    fn drop(&mut self) {
        // hyper stops reading a body of known length after its last frame, without asking
        // for the end: complete is complete, however it was noticed.
        if self.incoming.is_end_stream() {
            self.release();
        }
    }
}

/// The outcome of one exchange, with whether it went out on a connection that had served
/// before (which the backend may have closed in the same instant it was reused) or on one
/// opened for it.
pub struct Exchange {
    pub result: Result<Response<BackendBody>, UpstreamError>,
    pub reused: bool,
}

/// Sends `request` (origin-form target, Host set) on a connection to `backend`, an idle one if
/// there is one, and drives that connection until the response head has arrived, for at most
/// the pool's first-byte timeout.
/// Opening a connection is counted in `counters` when given (health checks are not counted).
pub async fn exchange(
    backend: &Arc<Backend>,
    request: Request<ProxyBody>,
    settings: &PoolSettings,
    counters: Option<&BackendCounters>,
) -> Exchange {
    let (mut connection, reused) = match backend.idle.take(settings.idle_timeout) {
        Some(connection) => (connection, true),
        // Boxed, so that the rare connecting state does not make every exchange's future larger.
        None => match Box::pin(BackendConnection::open(backend.addr, settings)).await {
            Ok(connection) => {
                if let Some(counters) = counters {
                    counters.connection_opened();
                }
                (connection, false)
            }
            Err(error) => {
                return Exchange {
                    result: Err(error),
                    reused: false,
                };
            }
        },
    };
    connection
        .first_byte
        .set(Instant::now() + settings.first_byte_timeout);
    let mut head = pin!(connection.sender.send_request(request));
    let mut driver_ended = false;
    let head = std::future::poll_fn(|cx| {
        if !driver_ended {
            driver_ended = connection.drive(cx).is_ready();
        }
        if let Poll::Ready(head) = head.as_mut().poll(cx) {
            return Poll::Ready(Some(head));
        }
        connection.first_byte.poll_passed(cx).map(|()| None)
    })
    .await;
    let result = match head {
        Some(Ok(response)) => Ok(response.map(|incoming| BackendBody {
            incoming,
            connection: (!driver_ended).then(|| (connection, backend.clone())),
        })),
        Some(Err(error)) => {
            tracing::debug!(backend = %backend.addr, %error, reused, "backend exchange failed");
            Err(UpstreamError::from_hyper(&error))
        }
        // The connection is dropped, and with it the request: closed, not reused.
        None => Err(UpstreamError::Timeout),
    };
    Exchange { result, reused }
}
