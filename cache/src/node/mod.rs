//! The cache node: one memory-bounded [`store`] served over two protocols.
//!
//! - [`resp`]: RESP2/RESP3, so `redis-cli`, `redis-benchmark` and Redis client libraries work.
//! - [`memcache`]: the memcached text protocol and its meta commands.
//!
//! Both listeners go through the same [`server`] accept loop (connection limit, graceful
//! shutdown) and the same [`connection`] loop (buffered reads, one write per batch of pipelined
//! replies); each protocol only turns request bytes into reply bytes.

mod connection;
mod expiry;
mod glob;
mod memcache;
mod metrics;
mod resp;
mod server;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::metrics::Metrics;
use self::store::Store;

/// The version the node reports (INFO `redis_version`, memcached `version`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The sockets the node serves; bind them first (port 0 in tests) so their addresses are known.
#[derive(Debug)]
pub struct Listeners {
    /// RESP2/RESP3 clients (Redis's port, 6379).
    pub resp: TcpListener,
    /// memcached text and meta protocol clients (memcached's port, 11211).
    pub memcache: Option<TcpListener>,
    /// HTTP `/metrics` (Prometheus) and `/healthz`.
    pub metrics: Option<TcpListener>,
}

/// What the node needs to run. The defaults are memcached's.
#[derive(Clone, Debug)]
pub struct Config {
    /// Bytes the store may use for items and its own structures (memcached `-m`).
    pub max_memory: u64,
    /// The largest key + value accepted (memcached `-I`).
    pub max_item_size: usize,
    /// Connections over all protocols; more are refused with the protocol's error.
    pub max_connections: usize,
    /// Close a connection that sends nothing for this long.
    pub idle_timeout: Option<Duration>,
    /// When set, RESP clients must AUTH with it (Redis `requirepass`).
    pub requirepass: Option<String>,
    /// How often the background task reclaims expired items.
    pub expiry_interval: Duration,
    /// How long open connections may finish after shutdown is asked.
    pub shutdown_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_memory: 64 * 1024 * 1024,
            max_item_size: 1024 * 1024,
            max_connections: 1024,
            idle_timeout: None,
            requirepass: None,
            expiry_interval: Duration::from_millis(100),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// What every connection shares: the store, the configuration and the counters.
#[derive(Debug)]
struct Node {
    store: Store,
    config: Config,
    started: Instant,
    clients: ClientCounters,
    metrics: Metrics,
}

#[derive(Debug, Default)]
struct ClientCounters {
    next_id: AtomicU64,
    connected: AtomicU64,
    total: AtomicU64,
    rejected: AtomicU64,
    commands: AtomicU64,
}

impl Node {
    fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    fn new_client_id(&self) -> u64 {
        self.clients.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }
}

#[cfg(test)]
impl Node {
    /// A node for tests that drive a protocol session directly, without sockets.
    fn for_tests(config: Config) -> Arc<Self> {
        Arc::new(Self {
            store: Store::new(config.max_memory, config.max_item_size),
            metrics: Metrics::default(),
            started: Instant::now(),
            clients: ClientCounters::default(),
            config,
        })
    }
}

/// Serves until `shutdown` resolves, then stops accepting, lets open connections finish the
/// requests they have sent (for at most `config.shutdown_grace`) and returns.
pub async fn run(
    listeners: Listeners,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let node = Arc::new(Node {
        store: Store::new(config.max_memory, config.max_item_size),
        metrics: Metrics::default(),
        started: Instant::now(),
        clients: ClientCounters::default(),
        config,
    });
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let connection_slots = Arc::new(Semaphore::new(node.config.max_connections));

    tracing::info!(addr = %listeners.resp.local_addr()?, "RESP listening");
    tasks.spawn(server::accept(
        listeners.resp,
        resp::Protocol,
        node.clone(),
        connection_slots.clone(),
        stop.clone(),
        tasks.clone(),
    ));
    if let Some(listener) = listeners.memcache {
        tracing::info!(addr = %listener.local_addr()?, "memcached protocol listening");
        tasks.spawn(server::accept(
            listener,
            memcache::Protocol,
            node.clone(),
            connection_slots,
            stop.clone(),
            tasks.clone(),
        ));
    }
    if let Some(listener) = listeners.metrics {
        tracing::info!(addr = %listener.local_addr()?, "metrics listening");
        tasks.spawn(metrics::serve(listener, node.clone(), stop.clone()));
    }
    tasks.spawn(expiry::run(node.clone(), stop.clone()));

    shutdown.await;
    tracing::info!("cache node shutting down");
    stop.cancel();
    tasks.close();
    if tokio::time::timeout(node.config.shutdown_grace, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the grace period; leaving them");
    }
    Ok(())
}

/// Properties every protocol session must have, whatever bytes arrive and however TCP splits
/// them.
#[cfg(test)]
mod session_properties {
    use bytes::BytesMut;
    use proptest::prelude::*;

    use super::connection::{Flow, Session};
    use super::server::Protocol;
    use super::{Config, Node};

    /// Feeds `chunks` to a fresh session one after another, as reads from a socket would;
    /// returns everything it answered.
    fn replies<P: Protocol>(protocol: P, chunks: &[&[u8]]) -> Vec<u8> {
        let node = Node::for_tests(Config {
            max_item_size: 4096,
            ..Config::default()
        });
        let mut session = protocol.session(node, "127.0.0.1:1".parse().unwrap());
        let (mut input, mut output) = (BytesMut::new(), Vec::new());
        for chunk in chunks {
            input.extend_from_slice(chunk);
            loop {
                match session.serve(&mut input, &mut output) {
                    Flow::OutputFull => continue,
                    Flow::NeedInput => break,
                    Flow::Close => return output,
                }
            }
        }
        output
    }

    /// Cuts `bytes` at the given points.
    fn split<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut pieces = Vec::new();
        let mut from = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            pieces.push(&bytes[from..cut]);
            from = cut;
        }
        pieces
    }

    fn resp_request() -> impl Strategy<Value = Vec<u8>> {
        let command = prop::sample::select(vec![
            "SET", "GET", "DEL", "INCR", "APPEND", "MGET", "EXPIRE", "TTL", "GETEX", "PING",
            "ECHO", "SETRANGE", "GETRANGE", "STRLEN", "EXISTS", "nosuch",
        ]);
        let arg = prop::collection::vec(
            prop::sample::select(vec![
                &b"k"[..],
                b"k2",
                b"1",
                b"-5",
                b"EX",
                b"10",
                b"\r\n",
                b"",
            ]),
            0..4,
        );
        (command, arg).prop_map(|(command, args)| {
            let mut out =
                format!("*{}\r\n${}\r\n{command}\r\n", args.len() + 1, command.len()).into_bytes();
            for arg in args {
                out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
                out.extend_from_slice(arg);
                out.extend_from_slice(b"\r\n");
            }
            out
        })
    }

    /// (No `gets`: CAS values depend on the shard a key hashes to, and each node seeds its
    /// hasher at random.)
    fn memcache_request() -> impl Strategy<Value = Vec<u8>> {
        prop::sample::select(vec![
            &b"set k 1 0 5\r\nhello\r\n"[..],
            b"add k 0 0 1\r\nx\r\n",
            b"append k 0 0 2\r\n!!\r\n",
            b"get k k2\r\n",
            b"incr n 5\r\n",
            b"set n 0 0 1\r\n7\r\n",
            b"decr n 100 noreply\r\n",
            b"delete k\r\n",
            b"touch k 10\r\n",
            b"set big 0 0 5000\r\n",
            b"ms m 2 T10 F3\r\nhi\r\n",
            b"mg m v f t s k O9\r\n",
            b"ma n D2 v\r\n",
            b"md m q\r\n",
            b"mn\r\n",
            b"bogus\r\n",
            b"set k 0 0 1\r\nxyz\r\n",
        ])
        .prop_map(<[u8]>::to_vec)
    }

    proptest! {
        #[test]
        fn resp_sessions_survive_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            replies(super::resp::Protocol, &[&bytes]);
        }

        #[test]
        fn memcache_sessions_survive_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            replies(super::memcache::Protocol, &[&bytes]);
        }

        #[test]
        fn memcache_sessions_survive_garbage_after_a_command(
            command in memcache_request(),
            bytes in prop::collection::vec(any::<u8>(), 0..100),
        ) {
            replies(super::memcache::Protocol, &[&command, &bytes]);
        }

        #[test]
        fn resp_requests_split_anywhere_get_the_same_replies(
            requests in prop::collection::vec(resp_request(), 1..8),
            cuts in prop::collection::vec(any::<usize>(), 0..6),
        ) {
            let whole = requests.concat();
            let expected = replies(super::resp::Protocol, &[&whole]);
            prop_assert_eq!(replies(super::resp::Protocol, &split(&whole, &cuts)), expected);
        }

        #[test]
        fn memcache_requests_split_anywhere_get_the_same_replies(
            requests in prop::collection::vec(memcache_request(), 1..8),
            cuts in prop::collection::vec(any::<usize>(), 0..6),
        ) {
            let whole = requests.concat();
            let expected = replies(super::memcache::Protocol, &[&whole]);
            prop_assert_eq!(replies(super::memcache::Protocol, &split(&whole, &cuts)), expected);
        }
    }
}
