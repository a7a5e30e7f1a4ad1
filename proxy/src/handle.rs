//! One client request through the proxy's phases, in order:
//!
//! 1. **check** — refuse what is malformed (no Host, two Hosts, an overlong target, CONNECT);
//! 2. **route** — host and path prefix pick a route, and with it a pool and a policy;
//! 3. **policy** — pass uncacheable methods and routes, bypass on a session cookie, strip cookies,
//!    rewrite and normalise the target into the cache key;
//! 4. **cache lookup** — fresh: HIT; within grace: STALE and refresh in the background; stale or
//!    missing: go on, joining a concurrent fetch of the same key if there is one;
//! 5. **upstream** — ask the pool (with validators when a stale copy exists);
//! 6. **store** — a 304 refreshes the stored copy, a storable answer is stored as it streams to
//!    the client, a failure falls back to a stale copy (stale-if-error);
//! 7. **respond** — Age, X-Cache and Via, one access log line, the metrics.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version, header,
};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::body::{self, BoxError, ProxyBody};
use crate::cache::coalesce::{Coalescer, Flight, Outcome, Role};
use crate::cache::freshness::{self, Exchange};
use crate::cache::store::{PurgeMode, Usable};
use crate::cache::{CachedObject, key, purge, revalidate};
use crate::config::Limits;
use crate::framing::AmbiguousFraming;
use crate::headers::{self, Peer};
use crate::metrics::CacheStatus;
use crate::state::{Policy, Shared};
use crate::upstream::client::HeadersAgain;
use crate::upstream::{Pool, UpstreamBody, UpstreamRequest, client};

/// A response and how it was produced.
#[derive(Debug)]
struct Served {
    response: Response<ProxyBody>,
    status: CacheStatus,
    /// Time the backend took to send the response head, when one was asked.
    upstream: Option<Duration>,
    /// Copied from a stored object's headers, which already hold X-Cache and this proxy's Via
    /// ([`CachedObject::answer_form`]).
    answer_form: bool,
}

impl Served {
    /// A short plain-text error. `close` asks hyper to close the connection after it, as RFC 9112
    /// wants after a request whose framing cannot be trusted.
    fn error(status: StatusCode, message: &str, cache: CacheStatus, close: bool) -> Self {
        let mut response = Response::new(body::full(format!("{message}\n")));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if close {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        Self {
            response,
            status: cache,
            upstream: None,
            answer_form: false,
        }
    }

    fn with_upstream(mut self, elapsed: Duration) -> Self {
        self.upstream = Some(elapsed);
        self
    }
}

/// Serves one client request from `peer`.
pub async fn handle(
    shared: Arc<Shared>,
    peer: Peer,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let policy = shared.policy();
    let log = AccessLog::new(peer.addr, &request);
    let served = match reject_bad_input(&request, &policy.config.limits) {
        Some(rejected) => rejected,
        None => serve(&shared, policy, peer, request).await,
    };
    let Served {
        mut response,
        status,
        upstream,
        answer_form,
    } = served;
    let headers = response.headers_mut();
    // An answer copied from a stored object already says X-Cache: HIT and has this proxy's Via.
    if !answer_form || status != CacheStatus::Hit {
        headers.insert(headers::X_CACHE, HeaderValue::from_static(status.as_str()));
    }
    if !answer_form {
        headers::append_via(headers);
    }
    shared.metrics.request(status, started.elapsed());
    if let Some(length) = response.body().size_hint().exact() {
        shared.metrics.response_bytes.inc_by(length);
    }
    log.write(&response, status, upstream);
    response
}

fn reject_bad_input(request: &Request<Incoming>, limits: &Limits) -> Option<Served> {
    let bad = |status, message| Some(Served::error(status, message, CacheStatus::Pass, true));
    let uri = request.uri();
    let target_length = uri.path_and_query().map_or(0, |pq| pq.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    if target_length > limits.max_uri_bytes {
        return bad(StatusCode::URI_TOO_LONG, "request target too long");
    }
    // RFC 9112 §6.1: a request with both may be an attempt to smuggle another in its body.
    if request.extensions().get::<AmbiguousFraming>().is_some() {
        return bad(
            StatusCode::BAD_REQUEST,
            "both Content-Length and Transfer-Encoding",
        );
    }
    let hosts = request.headers().get_all(header::HOST).iter().count();
    if hosts > 1 {
        return bad(StatusCode::BAD_REQUEST, "more than one Host header");
    }
    // RFC 9112 §3.2: an HTTP/1.1 request without Host is answered 400.
    if hosts == 0 && request.version() == Version::HTTP_11 && uri.authority().is_none() {
        return bad(StatusCode::BAD_REQUEST, "missing Host header");
    }
    if request.method() == Method::CONNECT {
        return bad(StatusCode::METHOD_NOT_ALLOWED, "CONNECT is not supported");
    }
    None
}

async fn serve(
    shared: &Arc<Shared>,
    policy: Arc<Policy>,
    peer: Peer,
    request: Request<Incoming>,
) -> Served {
    let (parts, incoming) = request.into_parts();
    let host_header = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.authority().map(|authority| authority.as_str()));
    let raw_target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut primary = key::Primary::for_host(host_header.unwrap_or_default(), raw_target.len());
    let Some(route) = policy.route(primary.host_name(), parts.uri.path()) else {
        return Served::error(
            StatusCode::NOT_FOUND,
            "no route for this host and path",
            CacheStatus::Pass,
            false,
        );
    };
    let pool = policy.pools[&route.pool].clone();
    primary.push_target(raw_target, Some(route));
    let idempotent = matches!(parts.method, Method::GET | Method::HEAD);
    let bypass = headers::has_cookie(&parts.headers, &route.bypass_cookies);
    if !(route.cache && idempotent) || bypass {
        // Content-Length goes with the body, which `pass` does not send on GET or HEAD.
        let forwarded_host = host_value(&parts.headers, host_header);
        let client = parts.headers;
        let forward = || {
            headers::forward_request(&client, &peer, forwarded_host.as_ref(), |name| {
                idempotent && name == header::CONTENT_LENGTH
            })
        };
        let status = if bypass {
            CacheStatus::Bypass
        } else {
            CacheStatus::Pass
        };
        // The client's headers stay for a retry to build its own from; only GET and HEAD are
        // retried.
        let headers_again: Option<HeadersAgain<'_>> = idempotent.then_some(&forward);
        let headers = forward();
        let upstream = UpstreamRequest {
            method: parts.method,
            target: primary.target().to_owned(),
            headers,
        };
        return pass(shared, &pool, upstream, headers_again, incoming, status).await;
    }
    let is_head = parts.method == Method::HEAD;
    // A fresh hit, the common case, is answered here: it needs none of the state that a miss
    // carries through fetch and store.
    let found = shared.store.lookup(primary.as_str(), &parts.headers);
    if let Some(object) = &found
        && matches!(object.usable(Instant::now()), Usable::Fresh)
    {
        return cached_response(&parts.headers, is_head, object, CacheStatus::Hit);
    }
    let lookup = Arc::new(Lookup {
        shared: shared.clone(),
        primary,
        ttl: route.ttl,
        strip_cookies: route.strip_cookies,
        policy,
        pool,
        peer,
        forwarded_host: host_value(&parts.headers, host_header),
        is_head,
        client: parts.headers,
    });
    lookup.serve(found).await
}

/// `host` (the client's Host, or else the target's authority) as a header value: a copy of the
/// client's own field when it came from there, which shares its bytes.
fn host_value(client: &HeaderMap, host: Option<&str>) -> Option<HeaderValue> {
    let host = host?;
    match client.get(header::HOST) {
        Some(value) if value.as_bytes() == host.as_bytes() => Some(value.clone()),
        _ => HeaderValue::from_str(host).ok(),
    }
}

/// Forwards a request the cache does not handle, streaming both ways.
async fn pass(
    shared: &Shared,
    pool: &Pool,
    upstream: UpstreamRequest,
    headers_again: Option<HeadersAgain<'_>>,
    incoming: Incoming,
    status: CacheStatus,
) -> Served {
    let body = if matches!(upstream.method, Method::GET | Method::HEAD) {
        // A body on GET has no meaning (RFC 9110 §9.3.1); not sending one keeps it retryable.
        UpstreamBody::Bytes(Bytes::new())
    } else {
        UpstreamBody::Stream(body::stream(incoming))
    };
    match client::send(pool, upstream, body, headers_again, &shared.metrics).await {
        Ok(answer) => {
            let (mut parts, incoming) = answer.response.into_parts();
            client_facing(&mut parts.headers);
            let body = body::stream(body::IdleTimeout::new(pool.settings.idle_timeout, incoming));
            Served {
                response: Response::from_parts(parts, body),
                status,
                upstream: Some(answer.elapsed),
                answer_form: false,
            }
        }
        Err(error) => Served::error(error.status(), &error.to_string(), status, false),
    }
}

/// Removes what a client must not see from a backend's response headers.
fn client_facing(headers: &mut HeaderMap) {
    headers::remove_hop_by_hop(headers, |name| name == purge::SURROGATE_KEY);
}

/// What a cacheable request's fetch does not forward: the backend is sent no body (see `pass`),
/// and the cache wants whole representations to store (it answers the client's conditions
/// itself).
static NOT_SENT_ON_A_MISS: [HeaderName; 7] = [
    header::CONTENT_LENGTH,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_MATCH,
    header::IF_UNMODIFIED_SINCE,
    header::IF_RANGE,
    header::RANGE,
];

/// A cacheable request on its way through lookup, fetch and store.
#[derive(Debug)]
struct Lookup {
    shared: Arc<Shared>,
    policy: Arc<Policy>,
    pool: Arc<Pool>,
    primary: key::Primary,
    ttl: Option<Duration>,
    /// The client's request headers (for Vary, conditionals and storability).
    client: HeaderMap,
    peer: Peer,
    /// The client's Host, for X-Forwarded-Host.
    forwarded_host: Option<HeaderValue>,
    strip_cookies: bool,
    is_head: bool,
}

impl Lookup {
    /// The headers to send the backend, with `validators` when revalidating; built only on a
    /// miss, so a hit copies no headers.
    fn upstream_headers(&self, validators: Option<&HeaderMap>) -> HeaderMap {
        let mut headers = headers::forward_request(
            &self.client,
            &self.peer,
            self.forwarded_host.as_ref(),
            |name| {
                NOT_SENT_ON_A_MISS.contains(name) || (self.strip_cookies && name == header::COOKIE)
            },
        );
        if let Some(validators) = validators {
            headers.extend(validators.clone());
        }
        headers
    }

    /// `found`: what the store held for this request when it arrived.
    async fn serve(self: Arc<Self>, mut found: Option<Arc<CachedObject>>) -> Served {
        let mut stale = None;
        let mut just_stored = false;
        // A follower looks again after its leader stored; a few rounds cover the rare case of
        // another variant or an eviction in between.
        for round in 0..3 {
            if round > 0 {
                found = self
                    .shared
                    .store
                    .lookup(self.primary.as_str(), &self.client);
            }
            if let Some(object) = found.take() {
                match object.usable(Instant::now()) {
                    // What a leader has just fetched or validated is served as is, even a
                    // no-cache object, which is stale the moment it is stored.
                    _ if just_stored => return self.cached_response(&object, CacheStatus::Hit),
                    Usable::Fresh => return self.cached_response(&object, CacheStatus::Hit),
                    Usable::StaleWhileRevalidate => {
                        self.clone().refresh_in_background(object.clone());
                        return self.cached_response(&object, CacheStatus::Stale);
                    }
                    Usable::Stale => stale = Some(object),
                }
            }
            match self.shared.coalescer.join(self.primary.as_str()) {
                Role::Leader(flight) => return self.fetch(Some(flight), stale).await,
                Role::Alone => return self.fetch(None, stale).await,
                Role::Follower(receiver) => {
                    self.shared.metrics.coalesced.inc();
                    let timeout = self.policy.config.cache.coalesce_timeout;
                    match Coalescer::wait(receiver, timeout).await {
                        Outcome::Stored => just_stored = true,
                        // Uncacheable, failed or timed out: everyone asks for themselves, at once.
                        _ => return self.fetch(None, stale).await,
                    }
                }
            }
        }
        self.fetch(None, stale).await
    }

    /// stale-while-revalidate: one background refresh per key, the client already answered.
    fn refresh_in_background(self: Arc<Self>, object: Arc<CachedObject>) {
        // Only a leader refreshes: one refresh per key, however many requests see it stale.
        let Role::Leader(flight) = self.shared.coalescer.join(self.primary.as_str()) else {
            return;
        };
        tokio::spawn(async move {
            let served = self.fetch(Some(flight), Some(object)).await;
            drain(served.response.into_body()).await;
        });
    }

    async fn fetch(
        self: &Arc<Self>,
        flight: Option<Flight>,
        stale: Option<Arc<CachedObject>>,
    ) -> Served {
        let shared = &self.shared;
        let validators = stale.as_deref().and_then(revalidate::validators);
        let headers = || self.upstream_headers(validators.as_ref());
        let request = UpstreamRequest {
            // HEAD is answered from (and fills) the GET object.
            method: Method::GET,
            target: self.primary.target().to_owned(),
            headers: headers(),
        };
        let request_time = SystemTime::now();
        let result = client::send(
            &self.pool,
            request,
            UpstreamBody::Bytes(Bytes::new()),
            Some(&headers),
            &shared.metrics,
        )
        .await;
        let on_error = |elapsed: Option<Duration>| {
            let object = stale
                .as_ref()
                .filter(|o| o.usable_on_error(Instant::now()))?;
            crate::metrics::Metrics::labelled(&shared.metrics.revalidations, "result", "failed");
            let served = self.cached_response(object, CacheStatus::Stale);
            Some(match elapsed {
                Some(elapsed) => served.with_upstream(elapsed),
                None => served,
            })
        };
        let answer = match result {
            Ok(answer) => answer,
            Err(error) => {
                return on_error(None).unwrap_or_else(|| {
                    Served::error(error.status(), &error.to_string(), CacheStatus::Miss, false)
                });
            }
        };
        let status = answer.response.status();
        if status.is_server_error()
            && let Some(served) = on_error(Some(answer.elapsed))
        {
            return served;
        }
        let response_time = SystemTime::now();
        if let (StatusCode::NOT_MODIFIED, Some(stale)) = (status, &stale) {
            return self
                .refreshed(
                    stale,
                    answer.response.headers(),
                    request_time,
                    response_time,
                    flight,
                )
                .with_upstream(answer.elapsed);
        }
        if stale.is_some() {
            crate::metrics::Metrics::labelled(&shared.metrics.revalidations, "result", "replaced");
        }
        let (mut parts, incoming) = answer.response.into_parts();
        let cache = &self.policy.config.cache;
        let freshness = freshness::evaluate(
            &Exchange {
                request: &self.client,
                status,
                response: &parts.headers,
                request_time,
                response_time,
            },
            self.ttl,
            cache,
        );
        // Read before `client_facing` removes Surrogate-Key; only an answer to store needs them.
        let tags = if freshness.is_some() {
            purge::tags(&parts.headers)
        } else {
            Vec::new()
        };
        client_facing(&mut parts.headers);
        let idle = self.pool.settings.idle_timeout;
        let incoming = body::stream(body::IdleTimeout::new(idle, incoming));
        let too_big = || content_length(&parts.headers).is_some_and(|n| n > cache.max_object_size);
        let (body, cache_status) = match freshness {
            None => {
                if stale.is_some() && !status.is_server_error() {
                    // The resource is no longer cacheable: its old copy must not be served either.
                    shared.store.purge(self.primary.as_str(), PurgeMode::Hard);
                }
                if let Some(flight) = flight {
                    // An error page says nothing about the resource: waiters retry on their own,
                    // and the key is not marked uncacheable.
                    flight.finish(if status.is_server_error() {
                        Outcome::Failed
                    } else {
                        Outcome::Uncacheable
                    });
                }
                (incoming, CacheStatus::Pass)
            }
            Some(_) if too_big() => {
                // Streamed through; remembered as uncacheable so nobody waits on it.
                if let Some(flight) = flight {
                    flight.finish(Outcome::Uncacheable);
                }
                (incoming, CacheStatus::Miss)
            }
            Some(freshness) => {
                let age = freshness.initial_age.as_secs();
                parts.headers.insert(header::AGE, HeaderValue::from(age));
                let stored_headers = parts.headers.clone();
                let pending = PendingObject {
                    lookup: self.clone(),
                    object: Some(CachedObject {
                        status,
                        vary: key::vary_names(&stored_headers),
                        headers: CachedObject::answer_form(stored_headers),
                        body: Bytes::new(),
                        stored_at: Instant::now(),
                        freshness,
                        tags,
                        soft_purged: OnceLock::new(),
                    }),
                    flight,
                };
                let limit = usize::try_from(cache.max_object_size).unwrap_or(usize::MAX);
                let body = StoreOnEnd {
                    expected: content_length(&parts.headers),
                    inner: incoming,
                    chunks: Vec::new(),
                    size: 0,
                    limit,
                    pending: Some(pending),
                };
                (body::stream(body), CacheStatus::Miss)
            }
        };
        let body = if self.is_head {
            // The client wants no body, but the store wants the whole object.
            tokio::spawn(drain(body));
            body::empty()
        } else {
            body
        };
        Served {
            response: Response::from_parts(parts, body),
            status: cache_status,
            upstream: Some(answer.elapsed),
            answer_form: false,
        }
    }

    /// A backend said 304 to our validators: the stored body is still good, with the 304's
    /// headers and a new lifetime.
    fn refreshed(
        &self,
        stale: &CachedObject,
        not_modified: &HeaderMap,
        request_time: SystemTime,
        response_time: SystemTime,
        flight: Option<Flight>,
    ) -> Served {
        let shared = &self.shared;
        crate::metrics::Metrics::labelled(&shared.metrics.revalidations, "result", "not_modified");
        let mut headers = revalidate::merge_not_modified(&stale.backend_headers(), not_modified);
        client_facing(&mut headers);
        let freshness = freshness::evaluate(
            &Exchange {
                request: &self.client,
                status: stale.status,
                response: &headers,
                request_time,
                response_time,
            },
            self.ttl,
            &self.policy.config.cache,
        );
        let object = CachedObject {
            status: stale.status,
            vary: stale.vary.clone(),
            headers: CachedObject::answer_form(headers),
            body: stale.body.clone(),
            stored_at: Instant::now(),
            freshness: freshness.clone().unwrap_or_else(|| stale.freshness.clone()),
            tags: stale.tags.clone(),
            soft_purged: OnceLock::new(),
        };
        match freshness {
            Some(_) => {
                let object = shared
                    .store
                    .insert(self.primary.as_str(), &self.client, object);
                if let Some(flight) = flight {
                    flight.finish(Outcome::Stored);
                }
                self.cached_response(&object, CacheStatus::Hit)
            }
            None => {
                // The backend now forbids storing it: forget the old copy too.
                shared.store.purge(self.primary.as_str(), PurgeMode::Hard);
                if let Some(flight) = flight {
                    flight.finish(Outcome::Uncacheable);
                }
                self.cached_response(&object, CacheStatus::Pass)
            }
        }
    }

    fn cached_response(&self, object: &CachedObject, status: CacheStatus) -> Served {
        cached_response(&self.client, self.is_head, object, status)
    }
}

/// A response from a stored object, or a 304 when it satisfies the client's conditions.
fn cached_response(
    client: &HeaderMap,
    is_head: bool,
    object: &CachedObject,
    status: CacheStatus,
) -> Served {
    let not_modified = revalidate::client_not_modified(client, object);
    let mut response = if not_modified {
        let mut response = Response::new(body::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        *response.headers_mut() = revalidate::not_modified_headers(object);
        response
    } else {
        let body = if is_head {
            body::empty()
        } else {
            body::full(object.body.clone())
        };
        let mut response = Response::new(body);
        *response.status_mut() = object.status;
        *response.headers_mut() = object.headers.clone();
        response
    };
    let age = object.age(Instant::now()).as_secs();
    response
        .headers_mut()
        .insert(header::AGE, HeaderValue::from(age));
    Served {
        response,
        status,
        upstream: None,
        answer_form: !not_modified,
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

async fn drain(mut body: ProxyBody) {
    while let Some(Ok(_)) = body.frame().await {}
}

/// A storable answer waiting for its body.
#[derive(Debug)]
struct PendingObject {
    lookup: Arc<Lookup>,
    object: Option<CachedObject>,
    flight: Option<Flight>,
}

impl PendingObject {
    fn store(mut self, body: Bytes) {
        let Some(mut object) = self.object.take() else {
            return;
        };
        object.body = body;
        let lookup = &self.lookup;
        lookup
            .shared
            .store
            .insert(lookup.primary.as_str(), &lookup.client, object);
        if let Some(flight) = self.flight.take() {
            flight.finish(Outcome::Stored);
        }
    }

    fn give_up(mut self) {
        if let Some(flight) = self.flight.take() {
            flight.finish(Outcome::Uncacheable);
        }
    }
}

/// Streams a backend body to the client while keeping a copy, and stores the object when the
/// body ends — unless it grew past `limit`, in which case the copy is dropped and the rest
/// streams through. If the body fails or the client goes away, nothing is stored and the flight
/// (if any) reports failure, so waiting requests fetch for themselves.
struct StoreOnEnd {
    inner: ProxyBody,
    /// The declared length: hyper stops polling a body once it has written that much.
    expected: Option<u64>,
    chunks: Vec<Bytes>,
    size: usize,
    limit: usize,
    pending: Option<PendingObject>,
}

impl StoreOnEnd {
    fn finish(&mut self) {
        if let Some(pending) = self.pending.take() {
            let body = match self.chunks.len() {
                0 => Bytes::new(),
                1 => self.chunks.pop().expect("one chunk"),
                _ => {
                    let mut whole = BytesMut::with_capacity(self.size);
                    for chunk in self.chunks.drain(..) {
                        whole.extend_from_slice(&chunk);
                    }
                    whole.freeze()
                }
            };
            pending.store(body);
        }
    }
}

impl Body for StoreOnEnd {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let (Some(data), true) = (frame.data_ref(), this.pending.is_some()) {
                    this.size += data.len();
                    if this.size > this.limit {
                        this.chunks.clear();
                        if let Some(pending) = this.pending.take() {
                            pending.give_up();
                        }
                    } else {
                        this.chunks.push(data.clone());
                    }
                }
                // hyper stops polling once the body has sent its declared length or says it
                // has ended, so store now rather than wait for a poll that will not come.
                if this.inner.is_end_stream() || this.expected == Some(this.size as u64) {
                    this.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(error)) => {
                this.pending = None;
                Poll::Ready(Some(Err(error)))
            }
            None => {
                this.finish();
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The fields of one access log line, taken before the request is consumed.
struct AccessLog {
    enabled: bool,
    peer: SocketAddr,
    request_line: String,
    referer: String,
    agent: String,
}

impl AccessLog {
    fn new(peer: SocketAddr, request: &Request<Incoming>) -> Self {
        let enabled = tracing::enabled!(target: "proxy::access", tracing::Level::INFO);
        if !enabled {
            return Self {
                enabled,
                peer,
                request_line: String::new(),
                referer: String::new(),
                agent: String::new(),
            };
        }
        let field = |name| {
            request
                .headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        };
        Self {
            enabled,
            peer,
            request_line: format!(
                "{} {} {:?}",
                request.method(),
                request.uri(),
                request.version()
            ),
            referer: field(header::REFERER),
            agent: field(header::USER_AGENT),
        }
    }

    /// Combined log format, then the cache status and the backend's time to first byte.
    fn write(
        &self,
        response: &Response<ProxyBody>,
        cache: CacheStatus,
        upstream: Option<Duration>,
    ) {
        if !self.enabled {
            return;
        }
        let bytes = response
            .body()
            .size_hint()
            .exact()
            .map_or_else(|| "-".to_owned(), |n| n.to_string());
        let upstream =
            upstream.map_or_else(|| "-".to_owned(), |d| format!("{:.3}", d.as_secs_f64()));
        tracing::info!(
            target: "proxy::access",
            "{} - - [{}] \"{}\" {} {} \"{}\" \"{}\" {} {}",
            self.peer.ip(),
            chrono::Utc::now().format("%d/%b/%Y:%H:%M:%S %z"),
            self.request_line,
            response.status().as_u16(),
            bytes,
            self.referer,
            self.agent,
            cache.as_str(),
            upstream,
        );
    }
}
