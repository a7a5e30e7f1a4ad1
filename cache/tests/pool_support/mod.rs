//! What the pool tests share: cache nodes to talk to (in-process `cache::node`s and real
//! `redis-server` processes), a TCP forwarder that can cut a node off without stopping it, and
//! a pool configured for a busy test machine.
#![allow(dead_code)] // each test binary uses its own subset

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache::pool::{BreakerConfig, NodeSource, Pool, PoolConfig};
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// How long a test waits for something that should happen promptly.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A pool over `addrs` with an operation timeout generous enough for a loaded CI machine and a
/// short breaker cool-down, plus its registry (to read metrics from).
pub fn pool(addrs: &[String]) -> (Pool, Registry) {
    pool_with(addrs, |_| {})
}

pub fn pool_with(addrs: &[String], adjust: impl FnOnce(&mut PoolConfig)) -> (Pool, Registry) {
    let mut config = PoolConfig::new(NodeSource::Static(addrs.to_vec()));
    config.op_timeout = Duration::from_secs(1);
    config.breaker = BreakerConfig {
        failure_threshold: 3,
        open_for: Duration::from_millis(100),
    };
    adjust(&mut config);
    let mut registry = Registry::default();
    let pool = Pool::new(config, &mut registry);
    (pool, registry)
}

/// The value of one sample line of `registry`, e.g. `cache_pool_coalesced_total`.
pub fn metric(registry: &Registry, sample: &str) -> Option<f64> {
    service::metrics::render(registry).lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == sample).then(|| value.parse().ok())?
    })
}

/// Polls `condition` until it holds, failing the test after [`DEADLINE`].
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !condition().await {
        assert!(start.elapsed() < DEADLINE, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A raw connection to a node, to look behind the pool's back.
pub async fn raw(addr: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{addr}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// A key (without the pool's prefix) that the pool places on node `addr`.
pub fn key_on(pool_nodes: &[String], addr: &str, name: &str, prefix: &str) -> String {
    let placement = cache::pool::rendezvous::Rendezvous::new(pool_nodes);
    let index = pool_nodes.iter().position(|n| n == addr).unwrap();
    (0..)
        .map(|i| format!("{name}-{i}"))
        .find(|key| placement.node_for(format!("{prefix}{key}").as_bytes()) == Some(index))
        .unwrap()
}

/// A `cache::node` served in-process on loopback.
pub struct CacheNode {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl CacheNode {
    pub async fn start() -> CacheNode {
        CacheNode::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// Starts a node on `addr` — the address of a node stopped a moment ago, to restart it.
    pub async fn start_on(addr: SocketAddr) -> CacheNode {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let config = cache::node::Config {
            shutdown_grace: Duration::from_millis(100),
            ..Default::default()
        };
        let listeners = cache::node::Listeners {
            resp: listener,
            memcache: None,
            metrics: None,
        };
        let task = tokio::spawn(cache::node::run(listeners, config, async {
            let _ = stopped.await;
        }));
        CacheNode {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn name(&self) -> String {
        self.addr.to_string()
    }

    /// Stops the node (its data is gone) and waits until it no longer listens.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for CacheNode {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A private `redis-server` on a free loopback port, killed on drop.
pub struct RedisServer {
    pub port: u16,
    child: tokio::process::Child,
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed (scripts/test installs it)");
        let server = RedisServer { port, child };
        let client = redis::Client::open(format!("redis://{}", server.name())).unwrap();
        eventually("redis-server answers PING", || {
            let client = client.clone();
            async move {
                match client.get_multiplexed_async_connection().await {
                    Ok(mut conn) => redis::cmd("PING")
                        .query_async::<String>(&mut conn)
                        .await
                        .is_ok(),
                    Err(_) => false,
                }
            }
        })
        .await;
        server
    }

    pub fn name(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub async fn stop(&mut self) {
        self.child.kill().await.unwrap();
    }
}

/// A TCP forwarder in front of a node: [`Forwarder::cut`] drops every connection and refuses
/// new ones (a network partition — the node keeps its data), [`Forwarder::restore`] heals it.
pub struct Forwarder {
    pub addr: SocketAddr,
    open: Arc<watch::Sender<bool>>,
}

impl Forwarder {
    pub async fn start(target: SocketAddr) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(watch::Sender::new(true));
        let accepting = open.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut open = accepting.subscribe();
                if !*open.borrow_and_update() {
                    continue; // dropping `client` closes it
                }
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = open.wait_for(|open| !open) => {}
                    }
                });
            }
        });
        Forwarder { addr, open }
    }

    pub fn name(&self) -> String {
        self.addr.to_string()
    }

    pub fn cut(&self) {
        self.open.send_replace(false);
    }

    pub fn restore(&self) {
        self.open.send_replace(true);
    }
}
