//! Starting a cache node in-process on port 0 for the node_* tests, and talking to it: the
//! `redis` crate for RESP, a raw text client for memcached.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A node serving RESP, memcached and metrics on loopback ports of its own.
pub struct TestNode {
    pub resp: SocketAddr,
    pub memcache: SocketAddr,
    pub metrics: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// The configuration tests start from: the defaults, with a short shutdown grace.
pub fn config() -> cache::node::Config {
    cache::node::Config {
        shutdown_grace: Duration::from_secs(2),
        expiry_interval: Duration::from_millis(20),
        ..Default::default()
    }
}

impl TestNode {
    pub async fn start() -> Self {
        Self::with(config()).await
    }

    pub async fn with(config: cache::node::Config) -> Self {
        let resp = testkit::bind_port_0().await;
        let memcache = testkit::bind_port_0().await;
        let metrics = testkit::bind_port_0().await;
        let (resp_addr, memcache_addr, metrics_addr) = (
            resp.local_addr().unwrap(),
            memcache.local_addr().unwrap(),
            metrics.local_addr().unwrap(),
        );
        let listeners = cache::node::Listeners {
            resp,
            memcache: Some(memcache),
            metrics: Some(metrics),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(cache::node::run(listeners, config, async {
            let _ = stopped.await;
        }));
        Self {
            resp: resp_addr,
            memcache: memcache_addr,
            metrics: metrics_addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A RESP2 connection through the `redis` crate.
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        self.redis_with("").await
    }

    /// A RESP3 connection (the client sends HELLO 3).
    pub async fn redis3(&self) -> redis::aio::MultiplexedConnection {
        self.redis_with("?protocol=resp3").await
    }

    async fn redis_with(&self, query: &str) -> redis::aio::MultiplexedConnection {
        redis::Client::open(format!("redis://{}/{query}", self.resp))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    pub async fn raw_resp(&self) -> Raw {
        Raw::connect(self.resp).await
    }

    pub async fn raw_memcache(&self) -> Raw {
        Raw::connect(self.memcache).await
    }

    /// Asks the node to stop and waits for `run` to return.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().unwrap().await.unwrap()
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// How long a test waits for a reply before failing.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A plain TCP client: write bytes, read lines.
pub struct Raw {
    stream: BufReader<TcpStream>,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream: BufReader::new(stream),
        }
    }

    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream
            .get_mut()
            .write_all(bytes.as_ref())
            .await
            .unwrap();
    }

    /// Writes `bytes` one at a time, each in its own TCP packet.
    pub async fn send_bytewise(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.stream.get_mut().write_all(&[*byte]).await.unwrap();
            self.stream.get_mut().flush().await.unwrap();
        }
    }

    /// The next line, without its CRLF.
    pub async fn line(&mut self) -> String {
        let mut line = String::new();
        let read = tokio::time::timeout(REPLY_TIMEOUT, self.stream.read_line(&mut line))
            .await
            .expect("no reply in time")
            .unwrap();
        assert!(read > 0, "the connection closed");
        line.trim_end_matches("\r\n").to_owned()
    }

    /// The next `n` lines.
    pub async fn lines(&mut self, n: usize) -> Vec<String> {
        let mut lines = Vec::with_capacity(n);
        for _ in 0..n {
            lines.push(self.line().await);
        }
        lines
    }

    /// `len` bytes of data followed by CRLF.
    pub async fn data(&mut self, len: usize) -> Vec<u8> {
        let mut data = vec![0; len + 2];
        tokio::time::timeout(REPLY_TIMEOUT, self.stream.read_exact(&mut data))
            .await
            .expect("no data in time")
            .unwrap();
        assert_eq!(&data[len..], b"\r\n");
        data.truncate(len);
        data
    }

    /// Sends `request` and returns the one-line reply.
    pub async fn ask(&mut self, request: &str) -> String {
        self.send(request).await;
        self.line().await
    }

    /// Whether the server closed the connection (reads EOF) within the reply timeout.
    pub async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(
            tokio::time::timeout(REPLY_TIMEOUT, self.stream.read_to_end(&mut rest)).await,
            Ok(Ok(_))
        )
    }
}

/// Polls `check` until it holds, failing the test after `limit`. For what the node does on its
/// own schedule (active expiry), where there is no event to wait on.
pub async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
