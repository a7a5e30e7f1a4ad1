//! What the end-to-end tests share: a scripted origin server with request records, a proxy on
//! port 0 with its admin listener, and raw-socket helpers.

#![allow(dead_code)] // each test binary uses its own subset

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use proxy::{Config, Proxy, ReloadHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// One request the origin received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    /// Path and query.
    pub target: String,
    pub headers: HeaderMap,
    /// How many requests for this path (without query) the origin had seen, this one included.
    pub nth: usize,
    pub body: Vec<u8>,
}

impl Seen {
    /// Whether this is a revalidation of the representation tagged `etag`.
    pub fn revalidates(&self, etag: &str) -> bool {
        self.headers
            .get("if-none-match")
            .is_some_and(|value| value == etag)
    }
}

/// What the origin answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Reply {
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    pub fn status(status: u16) -> Self {
        Self {
            status,
            ..Self::ok(format!("status {status}"))
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn cache(self, directives: &str) -> Self {
        self.header("cache-control", directives)
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Script = dyn Fn(&Seen) -> Reply + Send + Sync;

/// A real HTTP server on loopback that answers by a script and records what it was asked.
pub struct Origin {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Origin {
    pub async fn start(script: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Self {
        let listener = testkit::bind_port_0().await;
        Self::start_on(listener, script).await
    }

    pub async fn start_on(
        listener: tokio::net::TcpListener,
        script: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let counts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let script: Arc<Script> = Arc::new(script);
        let records = seen.clone();
        let router = axum::Router::new().fallback(move |request: Request| {
            let records = records.clone();
            let counts = counts.clone();
            let script = script.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX)
                    .await
                    .map(|b| b.to_vec())
                    .unwrap_or_default();
                let nth = {
                    let mut counts = counts.lock().unwrap();
                    let count = counts.entry(parts.uri.path().to_owned()).or_default();
                    *count += 1;
                    *count
                };
                let seen = Seen {
                    method: parts.method,
                    target: parts
                        .uri
                        .path_and_query()
                        .map_or("/".to_owned(), |pq| pq.to_string()),
                    headers: parts.headers,
                    nth,
                    body,
                };
                records.lock().unwrap().push(seen.clone());
                let reply = script(&seen);
                if !reply.delay.is_zero() {
                    tokio::time::sleep(reply.delay).await;
                }
                let mut response = Response::new(Body::from(reply.body));
                *response.status_mut() = StatusCode::from_u16(reply.status).unwrap();
                for (name, value) in reply.headers {
                    response.headers_mut().append(
                        axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                        value.parse().unwrap(),
                    );
                }
                Ok::<_, Infallible>(response)
            }
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(service::http::serve(
            listener,
            router,
            async move {
                let _ = stopped.await;
            },
            Duration::from_secs(1),
        ));
        Self {
            addr,
            seen,
            stop: Some(stop),
            task,
        }
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// How many requests for `path` (query ignored) arrived.
    pub fn count(&self, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.target.split('?').next() == Some(path))
            .count()
    }

    pub fn backend(&self) -> String {
        self.addr.to_string()
    }

    /// Stops answering: the listener closes, so new connections are refused.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// A proxy on port 0 with an admin listener.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub reloads: ReloadHandle,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestProxy {
    pub async fn start(config: Config) -> Self {
        let listener = testkit::bind_port_0().await;
        let admin = testkit::bind_port_0().await;
        let addr = listener.local_addr().unwrap();
        let admin_addr = admin.local_addr().unwrap();
        let proxy = Proxy::new(config).await;
        let reloads = proxy.reload_handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(proxy.serve(listener, Some(admin), async move {
            let _ = stopped.await;
        }));
        testkit::wait_for_http(&format!("http://{admin_addr}/healthz")).await;
        Self {
            addr,
            admin: admin_addr,
            reloads,
            stop: Some(stop),
            task,
        }
    }

    /// A proxy in front of `origins` with the defaults, like `proxy --backend a,b`.
    pub async fn for_origins(origins: &[&Origin]) -> Self {
        Self::start(config_for(origins)).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(self.admin_url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn status(&self) -> serde_json::Value {
        reqwest::get(self.admin_url("/status"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap().unwrap();
    }
}

pub fn config_for(origins: &[&Origin]) -> Config {
    Config::for_backends(origins.iter().map(|o| o.backend()).collect())
}

/// A config from TOML with `{name}` placeholders replaced by origin addresses.
pub fn config_toml(toml: &str, origins: &[(&str, &Origin)]) -> Config {
    let mut text = toml.to_owned();
    for (name, origin) in origins {
        text = text.replace(&format!("{{{name}}}"), &origin.backend());
    }
    text.parse()
        .unwrap_or_else(|e| panic!("test config invalid: {e}\n{text}"))
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A GET's status, X-Cache and body.
pub async fn get(url: &str) -> (u16, String, String) {
    let response = client().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let cache = x_cache(&response);
    (status, cache, response.text().await.unwrap())
}

/// A GET carrying one request header (a conditional, a cookie, a Vary'd header…).
pub async fn get_with(url: impl reqwest::IntoUrl, name: &str, value: &str) -> reqwest::Response {
    client().get(url).header(name, value).send().await.unwrap()
}

pub fn x_cache(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-cache")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Sends raw bytes and reads until the server closes or `timeout` passes; returns what came
/// back and whether the server closed the connection.
pub async fn raw(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> (String, bool) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let closed = loop {
        match tokio::time::timeout(timeout, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// The value of a Prometheus sample line starting with `prefix` (name and labels).
pub fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// Polls `check` until it holds, failing after `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: not true within {within:?}");
}
