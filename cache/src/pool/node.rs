//! One cache node as the pool sees it: a lazily (re)connected multiplexed RESP connection, the
//! node's circuit breaker, and its metrics.
//!
//! Every operation is bounded by the operation timeout and turned into `None` on any failure:
//! the pool fails open, it never hands a cache error to the caller. On an established connection
//! the bound is the connection's own response timeout (set to the operation timeout), so the
//! common path arms one timer, not two; only connecting (and flushing) runs under a timer of ours.
//!
//! A timeout is not a lost connection: a slow answer is a miss and a failure for the breaker,
//! but the connection is kept, so a node that was merely slow is not flushed afterwards.
//!
//! **Rejoin rule.** While a node is unreachable the pool drops writes and, worse, deletes — so
//! when it comes back it may hold values the database has since changed. Whenever this pool has
//! lost the node (the connection broke, or the breaker opened), the first thing it sends after
//! regaining it is `FLUSHALL`; only if that succeeds does traffic resume. A node restarted empty
//! loses nothing by it; a node that was merely partitioned away loses its stale values. (A
//! single failed delete that does not open the breaker is not covered: the TTL bounds that
//! staleness.) Nodes must therefore be dedicated to the pool.

use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};

use super::breaker::{Breaker, Transition};
use super::config::BreakerConfig;
use super::metrics::NodeMetrics;

#[derive(Debug)]
pub(super) struct Node {
    /// `host:port`, as in the configuration; also its name for placement and in metrics.
    name: String,
    op_timeout: Duration,
    breaker: Breaker,
    pub(super) metrics: NodeMetrics,
    /// The connection every request clones (a multiplexed connection pipelines them all).
    current: RwLock<Option<Connection>>,
    /// Held while connecting and flushing, so that one task does it while the others wait.
    connecting: tokio::sync::Mutex<()>,
    /// Set when this pool lost the node; cleared by a successful `FLUSHALL`.
    needs_flush: AtomicBool,
    next_connection_id: AtomicU64,
}

#[derive(Debug, Clone)]
struct Connection {
    id: u64,
    redis: MultiplexedConnection,
}

/// Why an operation gave no answer.
#[derive(Debug)]
enum Failure {
    Redis(redis::RedisError),
    Timeout,
}

impl Node {
    /// `rejoining`: the node is new to an already running pool, so it may hold stale values
    /// (it could have been in the pool before); flush it before use.
    pub(super) fn new(
        name: String,
        op_timeout: Duration,
        breaker: BreakerConfig,
        metrics: NodeMetrics,
        rejoining: bool,
    ) -> Self {
        Node {
            name,
            op_timeout,
            breaker: Breaker::new(breaker, metrics.breaker_state.clone()),
            metrics,
            current: RwLock::new(None),
            connecting: tokio::sync::Mutex::new(()),
            needs_flush: AtomicBool::new(rejoining),
            next_connection_id: AtomicU64::new(0),
        }
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// Runs one command on the node, or returns `None` if the breaker is open, the node is
    /// unreachable, slow, or answers with an error.
    pub(super) async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Option<T> {
        if !self.breaker.permit() {
            self.metrics.skipped.inc();
            return None;
        }
        let (connection_id, attempt) = match self.ready_connection() {
            Some(mut connection) => (
                Some(connection.id),
                cmd.query_async(&mut connection.redis).await,
            ),
            // Rare and large (connect, flush): boxed, so the common path's future stays small.
            None => Box::pin(self.connect_and_query(cmd)).await,
        };
        let failure = match attempt {
            Ok(value) => {
                if self.breaker.on_success() == Transition::Closed {
                    tracing::info!(node = %self.name, "cache node is back");
                }
                return Some(value);
            }
            Err(error) if error.is_timeout() => Failure::Timeout,
            Err(error) => Failure::Redis(error),
        };
        self.metrics.errors.inc();
        if let Failure::Redis(error) = &failure
            && is_broken(error)
        {
            self.forget_connection(connection_id);
        }
        if self.breaker.on_failure() == Transition::Opened {
            self.needs_flush.store(true, Ordering::Release);
            tracing::warn!(node = %self.name, ?failure, "cache node failing; skipping it");
        } else {
            tracing::debug!(node = %self.name, ?failure, "cache operation failed");
        }
        None
    }

    /// The connection to use as it is: one is up and no flush is pending.
    fn ready_connection(&self) -> Option<Connection> {
        if self.needs_flush.load(Ordering::Acquire) {
            return None;
        }
        self.read_current()
    }

    /// Connects (and flushes a rejoining node) first, then runs `cmd`, all within the operation
    /// timeout. Also the ID of the connection used, if there was one.
    async fn connect_and_query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> (Option<u64>, redis::RedisResult<T>) {
        let mut connection_id = None;
        let attempt = tokio::time::timeout(self.op_timeout, async {
            let mut connection = self.connection().await?;
            connection_id = Some(connection.id);
            cmd.query_async(&mut connection.redis).await
        })
        .await
        .unwrap_or_else(|_elapsed| Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()));
        (connection_id, attempt)
    }

    /// The current connection, connecting (and flushing a rejoining node) first if needed.
    async fn connection(&self) -> redis::RedisResult<Connection> {
        if let Some(connection) = self.ready_connection() {
            return Ok(connection);
        }
        let _connecting = self.connecting.lock().await;
        let connection = match self.read_current() {
            Some(connection) => connection,
            None => {
                let redis = self.connect().await?;
                let id = self.next_connection_id.fetch_add(1, Ordering::Relaxed);
                if id > 0 {
                    // We had this node and lost it: whatever it holds may predate missed deletes.
                    self.needs_flush.store(true, Ordering::Release);
                }
                let connection = Connection { id, redis };
                *self.write_current() = Some(connection.clone());
                connection
            }
        };
        if self.needs_flush.load(Ordering::Acquire) {
            let mut redis = connection.redis.clone();
            if let Err(error) = redis::cmd("FLUSHALL").query_async::<()>(&mut redis).await {
                if is_broken(&error) {
                    self.forget_connection(Some(connection.id));
                }
                return Err(error);
            }
            self.needs_flush.store(false, Ordering::Release);
            self.metrics.flushes.inc();
            tracing::info!(node = %self.name, "flushed rejoining cache node");
        }
        Ok(connection)
    }

    async fn connect(&self) -> redis::RedisResult<MultiplexedConnection> {
        let (host, port) = self
            .name
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host, port.parse().ok()?)))
            .ok_or_else(|| {
                redis::RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "cache node is not host:port",
                ))
            })?;
        let info = ConnectionAddr::Tcp(host.to_owned(), port)
            .into_connection_info()?
            // One round trip less per connect; the node does not need to know our name.
            .set_redis_settings(RedisConnectionInfo::default().set_skip_set_lib_name());
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.op_timeout))
            .set_response_timeout(Some(self.op_timeout));
        redis::Client::open(info)?
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    /// Drops the connection `id` so that the next operation reconnects — unless another task
    /// already replaced it.
    fn forget_connection(&self, id: Option<u64>) {
        let mut current = self.write_current();
        if id.is_some() && current.as_ref().map(|c| c.id) == id {
            *current = None;
        }
    }

    fn read_current(&self) -> Option<Connection> {
        // The slot holds a plain value: a panic elsewhere cannot leave it half-written.
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn write_current(&self) -> std::sync::RwLockWriteGuard<'_, Option<Connection>> {
        self.current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Whether `error` means the connection is unusable (rather than one command failing). A
/// timeout is an I/O error to the `redis` crate but says nothing about the connection: taking it
/// for a broken one would reconnect, and so flush a node that was only slow.
fn is_broken(error: &redis::RedisError) -> bool {
    !error.is_timeout()
        && (error.is_unrecoverable_error() || error.is_io_error() || error.is_connection_dropped())
}
