//! Sending one request to a pool: pick a backend, connect (kept-alive connections come from
//! hyper-util's pool), wait for the response head within the first-byte timeout, and retry an
//! idempotent request once on another backend when the first could not connect or got no answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::Scheme;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::pool::{Backend, Pool};
use crate::body::{self, ProxyBody};
use crate::metrics::Metrics;

pub type HttpClient = Client<HttpConnector, ProxyBody>;

pub fn build(settings: &crate::config::PoolSettings) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(settings.connect_timeout));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(settings.idle_timeout)
        .pool_max_idle_per_host(1024)
        .build(connector)
}

/// What to send a backend, minus the body. [`send`] copies the headers only when a retry on
/// another backend may need them again.
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

    fn classify(error: &hyper_util::client::legacy::Error) -> Self {
        if error.is_connect() {
            return Self::Connect;
        }
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            if let Some(hyper) = cause.downcast_ref::<hyper::Error>() {
                if hyper.is_incomplete_message() || hyper.is_canceled() || hyper.is_closed() {
                    return Self::NoResponse;
                }
                return Self::Protocol;
            }
            source = cause.source();
        }
        Self::Protocol
    }
}

/// A backend's response head, with who sent it and how long it took.
#[derive(Debug)]
pub struct Upstream {
    pub response: Response<Incoming>,
    pub backend: SocketAddr,
    pub elapsed: Duration,
}

/// Sends `request` to a backend of `pool`, retrying once on another backend as described above.
pub async fn send(
    pool: &Pool,
    request: UpstreamRequest,
    body: UpstreamBody,
    metrics: &Metrics,
) -> Result<Upstream, UpstreamError> {
    let started = Instant::now();
    let idempotent = matches!(request.method, Method::GET | Method::HEAD);
    let UpstreamRequest {
        method,
        target,
        mut headers,
    } = request;
    let mut first_backend = None;
    let mut body = Some(body);
    loop {
        let backend = pool
            .pick(first_backend.as_slice())
            .ok_or(UpstreamError::NoBackend)?;
        let is_first = first_backend.is_none();
        first_backend = Some(backend.addr);
        let this_body = match body.take().expect("a body for each attempt") {
            UpstreamBody::Bytes(bytes) => {
                body = Some(UpstreamBody::Bytes(bytes.clone()));
                body::full(bytes)
            }
            UpstreamBody::Stream(stream) => stream,
        };
        // The headers are copied only when a retry could need them again.
        let may_retry = idempotent && is_first && pool.backend_count() > 1;
        let these_headers = if may_retry {
            headers.clone()
        } else {
            std::mem::take(&mut headers)
        };
        let outgoing = outgoing(&backend, &method, &target, these_headers, this_body)?;
        match attempt(pool, &backend, outgoing, metrics).await {
            Ok(response) => {
                return Ok(Upstream {
                    response,
                    backend: backend.addr,
                    elapsed: started.elapsed(),
                });
            }
            Err(error) if error.retryable() && may_retry && body.is_some() => {
                tracing::info!(pool = %pool.name, backend = %backend.addr, %error, "retrying on another backend");
                metrics.retries.inc();
            }
            Err(error) => return Err(error),
        }
    }
}

fn outgoing(
    backend: &Backend,
    method: &Method,
    target: &str,
    headers: HeaderMap,
    body: ProxyBody,
) -> Result<Request<ProxyBody>, UpstreamError> {
    let authority = backend.authority.clone().ok_or(UpstreamError::Protocol)?;
    let uri = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(authority)
        .path_and_query(target)
        .build()
        .map_err(|_| UpstreamError::Protocol)?;
    let mut outgoing = Request::new(body);
    *outgoing.method_mut() = method.clone();
    *outgoing.uri_mut() = uri;
    *outgoing.headers_mut() = headers;
    Ok(outgoing)
}

async fn attempt(
    pool: &Pool,
    backend: &Arc<Backend>,
    outgoing: Request<ProxyBody>,
    metrics: &Metrics,
) -> Result<Response<Incoming>, UpstreamError> {
    let _in_flight = backend.begin_request();
    let started = Instant::now();
    let result = match tokio::time::timeout(
        pool.settings.first_byte_timeout,
        pool.client.request(outgoing),
    )
    .await
    {
        Err(_elapsed) => Err(UpstreamError::Timeout),
        Ok(Err(error)) => {
            tracing::debug!(backend = %backend.addr, error = ?error, "backend request failed");
            Err(UpstreamError::classify(&error))
        }
        Ok(Ok(response)) => Ok(response),
    };
    let ok = result
        .as_ref()
        .is_ok_and(|response| !response.status().is_server_error());
    backend.record_passive(ok, &pool.settings);
    let outcome = match &result {
        Ok(response) => status_class(response.status()),
        Err(error) => error.label(),
    };
    backend
        .counters
        .get_or_init(|| metrics.backend_counters(&pool.name, backend.addr))
        .record(outcome, started.elapsed());
    result
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
