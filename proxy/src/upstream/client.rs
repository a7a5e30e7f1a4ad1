//! Sending one request to a pool: pick a backend, take one of its kept-alive connections or open
//! one (`connection.rs`), wait for the response head within the first-byte timeout, and retry an
//! idempotent request once when the first try could not connect or got no answer: on another
//! backend when the pool has one, else on a new connection when a kept-alive one failed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, header};

use super::connection::{self, BackendBody};
use super::pool::{Backend, Pool};
use crate::body::{self, ProxyBody};
use crate::metrics::Metrics;

/// What to send a backend, minus the body.
#[derive(Debug)]
pub struct UpstreamRequest {
    pub method: Method,
    /// Origin-form target: `/path?query`.
    pub target: String,
    pub headers: HeaderMap,
}

/// The request body: bytes can be sent again, a stream only once.
#[derive(Debug)]
pub enum UpstreamBody {
    Bytes(Bytes),
    Stream(ProxyBody),
}

/// Why no backend response could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("no healthy backend")]
    NoBackend,
    #[error("cannot connect to the backend")]
    Connect,
    #[error("the backend closed the connection without answering")]
    NoResponse,
    #[error("the backend did not answer in time")]
    Timeout,
    #[error("the backend sent an invalid response")]
    Protocol,
}

impl UpstreamError {
    pub fn status(self) -> StatusCode {
        match self {
            Self::NoBackend => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Connect | Self::NoResponse | Self::Protocol => StatusCode::BAD_GATEWAY,
        }
    }

    /// Whether the request surely did not reach the application, so that resending it
    /// elsewhere is safe for an idempotent method.
    fn retryable(self) -> bool {
        matches!(self, Self::Connect | Self::NoResponse)
    }

    fn label(self) -> &'static str {
        match self {
            Self::NoBackend => "no_backend",
            Self::Connect => "connect_error",
            Self::NoResponse => "no_response",
            Self::Timeout => "timeout",
            Self::Protocol => "invalid_response",
        }
    }

    /// What a failed exchange on an established connection means for the client.
    pub(super) fn from_hyper(error: &hyper::Error) -> Self {
        if error.is_incomplete_message() || error.is_canceled() || error.is_closed() {
            Self::NoResponse
        } else {
            Self::Protocol
        }
    }
}

/// Makes a request's headers again, for a retry.
pub type HeadersAgain<'a> = &'a (dyn Fn() -> HeaderMap + Sync);

/// A backend's response head, with who sent it and how long it took.
#[derive(Debug)]
pub struct Upstream {
    pub response: Response<BackendBody>,
    pub backend: SocketAddr,
    pub elapsed: Duration,
}

/// Sends `request` to a backend of `pool`, retrying once as described above.
///
/// The first try hands `request`'s headers to hyper, which does not give them back. A retry
/// gets its own from `headers_again`, built only when a retry happens, from the client's headers
/// that the caller keeps (for Vary and storability on a miss, for this on a pass): nothing is
/// copied in case of a retry. Without it, or for a streamed body or a method that is not
/// idempotent, there is no retry.
pub async fn send(
    pool: &Pool,
    request: UpstreamRequest,
    body: UpstreamBody,
    headers_again: Option<HeadersAgain<'_>>,
    metrics: &Metrics,
) -> Result<Upstream, UpstreamError> {
    let started = Instant::now();
    let UpstreamRequest {
        method,
        target,
        headers,
    } = request;
    let target = Uri::try_from(target).map_err(|_| UpstreamError::Protocol)?;
    let (first_body, body_again) = match body {
        UpstreamBody::Bytes(bytes) => (body::full(bytes.clone()), Some(bytes)),
        UpstreamBody::Stream(stream) => (stream, None),
    };
    let answered = |response, backend: &Backend| Upstream {
        response,
        backend: backend.addr,
        elapsed: started.elapsed(),
    };
    let mut backend = pool.pick(&[]).ok_or(UpstreamError::NoBackend)?;
    let first = outgoing(&backend, &method, &target, headers, first_body);
    let retry = match attempt(pool, &backend, first, metrics).await {
        (Ok(response), _) => return Ok(answered(response, &backend)),
        (Err(error), reused) => {
            let idempotent = matches!(method, Method::GET | Method::HEAD);
            let again = headers_again.zip(body_again);
            let Some((headers_again, body_again)) =
                again.filter(|_| idempotent && error.retryable())
            else {
                return Err(error);
            };
            if let Some(other) = pool.pick(&[backend.addr]) {
                tracing::info!(pool = %pool.name, backend = %backend.addr, %error, "retrying on another backend");
                backend = other;
            } else if reused && error == UpstreamError::NoResponse {
                // The backend closed a kept-alive connection as the request went out on it (a
                // keep-alive timeout of its own): a new connection is not that race.
                tracing::info!(pool = %pool.name, backend = %backend.addr, "retrying on a new connection");
            } else {
                return Err(error);
            }
            metrics.retries.inc();
            outgoing(
                &backend,
                &method,
                &target,
                headers_again(),
                body::full(body_again),
            )
        }
    };
    let (result, _) = attempt(pool, &backend, retry, metrics).await;
    result.map(|response| answered(response, &backend))
}

/// The request as a backend gets it: origin-form target, and a Host even when the client sent
/// none (HTTP/1.0), as HTTP/1.1 requires.
fn outgoing(
    backend: &Backend,
    method: &Method,
    target: &Uri,
    mut headers: HeaderMap,
    body: ProxyBody,
) -> Request<ProxyBody> {
    if !headers.contains_key(header::HOST)
        && let Some(host) = &backend.host
    {
        headers.insert(header::HOST, host.clone());
    }
    let mut outgoing = Request::new(body);
    *outgoing.method_mut() = method.clone();
    *outgoing.uri_mut() = target.clone();
    *outgoing.headers_mut() = headers;
    outgoing
}

/// One try on one backend; says whether it went out on a kept-alive connection.
async fn attempt(
    pool: &Pool,
    backend: &Arc<Backend>,
    outgoing: Request<ProxyBody>,
    metrics: &Metrics,
) -> (Result<Response<BackendBody>, UpstreamError>, bool) {
    let _in_flight = backend.begin_request();
    let started = Instant::now();
    let counters = backend
        .counters
        .get_or_init(|| metrics.backend_counters(&pool.name, backend.addr));
    let settings = &pool.settings;
    let connection::Exchange { result, reused } =
        connection::exchange(backend, outgoing, settings, Some(counters)).await;
    let ok = result
        .as_ref()
        .is_ok_and(|response| !response.status().is_server_error());
    backend.record_passive(ok, settings);
    let outcome = match &result {
        Ok(response) => status_class(response.status()),
        Err(error) => error.label(),
    };
    counters.record(outcome, started.elapsed());
    (result, reused)
}

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
