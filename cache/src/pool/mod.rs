//! The client pool: every app server sees every cache node, and keys are spread over the nodes
//! by consistent hashing — so a value app-1 stored after a database read is found by app-2.
//!
//! ```no_run
//! # async fn demo() -> Result<(), std::convert::Infallible> {
//! use std::time::Duration;
//! use cache::pool::{Pool, PoolConfig};
//!
//! let mut registry = prometheus_client::registry::Registry::default();
//! let pool = Pool::new(PoolConfig::from_nodes_arg("cache-1:6379,cache-2:6379").unwrap(), &mut registry);
//! // Cache-aside: the closure (the database read) runs only on a miss, once per key per process.
//! let title: Option<String> = pool
//!     .get_or_load("post:42:title", Duration::from_secs(60), || async {
//!         Ok::<_, std::convert::Infallible>(Some("Hello".to_owned()))
//!     })
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! How a request flows:
//!
//! 1. the key gets the prefix `{key_prefix}:v{schema_version}:` ([`PoolConfig`]);
//! 2. [`rendezvous`] hashing picks the node;
//! 3. the node's circuit breaker decides whether to try it at all ([`BreakerConfig`]);
//! 4. one command (`GET`, `MGET`, `SET … PX`, `DEL`) goes over that node's multiplexed
//!    connection, bounded by `op_timeout`;
//! 5. bytes are decoded with postcard; anything that fails along the way is a miss.
//!
//! The pool **fails open**: no method returns a cache error. A dead node's keys are misses and
//! its writes are dropped until it answers again — and then it is flushed before use, see the
//! rejoin rule below.

mod breaker;
mod config;
mod discovery;
mod entry;
mod flight;
mod metrics;
mod node;
pub mod rendezvous;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::future::join_all;
use prometheus_client::registry::Registry;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use config::{BreakerConfig, DEFAULT_DNS_REFRESH, NodeSource, NodesArgError, PoolConfig};

use entry::Entry;
use flight::{Flights, Role};
use metrics::{LoadResult, Metrics};
use node::Node;
use rendezvous::Rendezvous;

/// A handle on the cache pool. Cheap to clone (an `Arc` inside); share one per process.
#[derive(Debug, Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: PoolConfig,
    /// `{key_prefix}:v{schema_version}:`
    prefix: String,
    members: RwLock<Arc<Members>>,
    flights: Flights,
    metrics: Metrics,
}

/// The nodes currently in the pool. Replaced as a whole when DNS says the membership changed.
#[derive(Debug, Default)]
struct Members {
    placement: Rendezvous,
    /// In the order the placement's indices refer to.
    nodes: Vec<Arc<Node>>,
}

/// How a [`Pool::get_or_load_timed`] call was answered, for `Server-Timing` headers and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookup {
    /// Where the value came from.
    pub outcome: Outcome,
    /// Time spent talking to the cache (the read, and the write after a load).
    pub cache_time: Duration,
    /// Time spent in the loader, or waiting for another caller's loader; zero on a hit.
    pub load_time: Duration,
}

/// Where a [`Pool::get_or_load_timed`] value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Found in the cache.
    Hit,
    /// The cache remembered that the loader found nothing (negative caching).
    NotFoundHit,
    /// Missed; this caller ran the loader (and stored its result).
    Loaded,
    /// Found, but close enough to expiry that this caller refreshed it early (XFetch).
    Refreshed,
    /// Missed; another caller in this process was already loading the key, and this one
    /// waited for its result (single-flight).
    Shared,
}

impl Outcome {
    /// A short lowercase name: `hit`, `not-found-hit`, `loaded`, `refreshed`, `shared`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::NotFoundHit => "not-found-hit",
            Outcome::Loaded => "loaded",
            Outcome::Refreshed => "refreshed",
            Outcome::Shared => "shared",
        }
    }

    /// Whether the answer came from the cache without running a loader.
    pub fn is_hit(self) -> bool {
        matches!(self, Outcome::Hit | Outcome::NotFoundHit)
    }
}

impl Pool {
    /// A pool over `config.nodes`, with its metrics (`cache_pool_*`) registered in `registry`.
    ///
    /// Never fails and never waits: nodes are connected on first use, and a node that is down
    /// is just a source of misses. With [`NodeSource::Dns`] the name is resolved in the
    /// background (it must be called inside a Tokio runtime); until the first answer every key
    /// is a miss.
    pub fn new(config: PoolConfig, registry: &mut Registry) -> Pool {
        let metrics = Metrics::new();
        metrics.register(registry);
        let pool = Pool {
            inner: Arc::new(Inner {
                prefix: config.versioned_prefix(),
                members: RwLock::new(Arc::default()),
                flights: Flights::default(),
                metrics,
                config,
            }),
        };
        match &pool.inner.config.nodes {
            NodeSource::Static(names) => pool.inner.set_members(names.clone(), false),
            NodeSource::Dns {
                name,
                port,
                refresh,
            } => discovery::spawn(Arc::downgrade(&pool.inner), name.clone(), *port, *refresh),
        }
        pool
    }

    /// A pool without nodes: every get is a miss, every set and delete does nothing, and
    /// `get_or_load` always runs the loader (still single-flight).
    pub fn disabled() -> Pool {
        Pool::new(
            PoolConfig::new(NodeSource::Static(Vec::new())),
            &mut Registry::default(),
        )
    }

    /// The `host:port` of every node in the pool now, sorted.
    pub fn nodes(&self) -> Vec<String> {
        self.inner.node_names()
    }

    /// The value stored under `key`, or `None` if it is absent, expired, undecodable as `T`,
    /// a cached "not found", or its node is unreachable.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.inner
            .fetch::<T>(&self.inner.stored_key(key))
            .await
            .and_then(|entry| entry.value)
    }

    /// Stores `value` under `key` for `ttl` (shortened by the configured jitter). Best effort:
    /// if the node is unreachable the value is simply not cached.
    pub async fn set<T: Serialize>(&self, key: &str, value: &T, ttl: Duration) {
        self.inner
            .store(
                &self.inner.stored_key(key),
                Some(value),
                ttl,
                Duration::ZERO,
            )
            .await;
    }

    /// The values of several keys, in the order of `keys`: one `MGET` per node, all nodes
    /// queried concurrently.
    pub async fn get_many<T: DeserializeOwned, K: AsRef<str>>(&self, keys: &[K]) -> Vec<Option<T>> {
        let batches = self.inner.per_node_commands("MGET", keys);
        let replies = join_all(
            batches
                .iter()
                .map(|(node, _, mget)| node.query::<Vec<Option<Vec<u8>>>>(mget)),
        )
        .await;
        let mut results: Vec<Option<T>> =
            std::iter::repeat_with(|| None).take(keys.len()).collect();
        for ((node, positions, _), reply) in batches.iter().zip(replies) {
            let Some(values) = reply.filter(|values| values.len() == positions.len()) else {
                continue;
            };
            for (&position, bytes) in positions.iter().zip(values) {
                results[position] = node_value::<T>(node, bytes).and_then(|entry| entry.value);
            }
        }
        results
    }

    /// Removes `key` from its node (invalidation after a write to the database).
    pub async fn delete(&self, key: &str) {
        self.delete_many(&[key]).await;
    }

    /// Removes several keys: one `DEL` per node, all nodes concurrently.
    pub async fn delete_many<K: AsRef<str>>(&self, keys: &[K]) {
        let batches = self.inner.per_node_commands("DEL", keys);
        join_all(batches.iter().map(|(node, _, del)| node.query::<()>(del))).await;
    }

    /// Cache-aside: the cached value of `key`, or else the loader's, which is then cached for
    /// `ttl`. The loader returns `Ok(None)` for "not found", which is cached for the configured
    /// negative TTL; its errors are returned and not cached.
    ///
    /// Concurrent misses of one key in this process run the loader once (the others wait for
    /// it and get a clone of its result), and a hot key is reloaded by one caller shortly before
    /// it expires (XFetch), so a popular key never sends a stampede to the database.
    ///
    /// `T` and `E` are `Clone` because every waiting caller gets its own copy of the one result;
    /// wrap an error type that is not (`sqlx::Error`) in an `Arc`.
    pub async fn get_or_load<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        load: F,
    ) -> Result<Option<T>, E>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        self.get_or_load_timed(key, ttl, load).await.0
    }

    /// [`Pool::get_or_load`], also telling how the value was obtained and where the time went.
    pub async fn get_or_load_timed<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        load: F,
    ) -> (Result<Option<T>, E>, Lookup)
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        let inner = &self.inner;
        let stored_key = inner.stored_key(key);
        let started = Instant::now();
        let cached = inner.fetch::<T>(&stored_key).await;
        let mut cache_time = started.elapsed();
        let refreshing = match cached {
            Some(entry) if entry.should_refresh_early(inner.config.early_refresh_beta) => {
                inner.metrics.early_refresh();
                true
            }
            Some(entry) => {
                let outcome = match entry.value {
                    Some(_) => Outcome::Hit,
                    None => Outcome::NotFoundHit,
                };
                let lookup = Lookup {
                    outcome,
                    cache_time,
                    load_time: Duration::ZERO,
                };
                return (Ok(entry.value), lookup);
            }
            None => false,
        };

        let waiting = Instant::now();
        let leader = loop {
            match inner.flights.join::<T, E>(&stored_key) {
                Role::Leader(leader) => break Some(leader),
                Role::Alone => break None,
                Role::Follower(receiver) => {
                    inner.metrics.coalesced();
                    if let Some(result) = flight::wait(receiver).await {
                        let lookup = Lookup {
                            outcome: Outcome::Shared,
                            cache_time,
                            load_time: waiting.elapsed(),
                        };
                        return (result, lookup);
                    }
                    // The leader was cancelled before it finished: try to lead.
                }
            }
        };

        let loading = Instant::now();
        let result = load().await;
        let load_time = loading.elapsed();
        inner.metrics.loaded(
            match &result {
                Ok(Some(_)) => LoadResult::Found,
                Ok(None) => LoadResult::NotFound,
                Err(_) => LoadResult::Error,
            },
            load_time.as_secs_f64(),
        );
        if let Some(leader) = &leader {
            leader.publish(result.clone());
        }
        if let Ok(value) = &result {
            let ttl = match value {
                Some(_) => ttl,
                None => ttl.min(inner.config.negative_ttl),
            };
            let storing = Instant::now();
            inner
                .store(&stored_key, value.as_ref(), ttl, load_time)
                .await;
            cache_time += storing.elapsed();
        }
        // Only now may a new flight start: until the value is stored, late misses must join
        // this one rather than load again.
        drop(leader);
        let outcome = if refreshing {
            Outcome::Refreshed
        } else {
            Outcome::Loaded
        };
        let lookup = Lookup {
            outcome,
            cache_time,
            load_time,
        };
        (result, lookup)
    }
}

impl Inner {
    fn stored_key(&self, key: &str) -> String {
        let mut stored = String::with_capacity(self.prefix.len() + key.len());
        stored.push_str(&self.prefix);
        stored.push_str(key);
        stored
    }

    fn node_names(&self) -> Vec<String> {
        self.members()
            .nodes
            .iter()
            .map(|node| node.name().to_owned())
            .collect()
    }

    fn members(&self) -> Arc<Members> {
        // Members are replaced whole, never mutated: a poisoned lock still holds a valid Arc.
        self.members
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Replaces the nodes with `names`, keeping the connections and breakers of nodes that stay.
    /// `rejoining`: new names may be nodes that were away, so they are flushed before use.
    fn set_members(&self, mut names: Vec<String>, rejoining: bool) {
        names.sort();
        names.dedup();
        let current = self.members();
        let nodes: Vec<Arc<Node>> = names
            .iter()
            .map(|name| {
                current
                    .nodes
                    .iter()
                    .find(|node| node.name() == name)
                    .cloned()
                    .unwrap_or_else(|| {
                        Arc::new(Node::new(
                            name.clone(),
                            self.config.op_timeout,
                            self.config.breaker,
                            self.metrics.node(name),
                            rejoining,
                        ))
                    })
            })
            .collect();
        let members = Arc::new(Members {
            placement: Rendezvous::new(&names),
            nodes,
        });
        *self
            .members
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = members;
    }

    /// `command key…` for each node that owns some of `keys`, with the positions in `keys` of
    /// the keys it carries.
    fn per_node_commands<K: AsRef<str>>(
        &self,
        command: &str,
        keys: &[K],
    ) -> Vec<(Arc<Node>, Vec<usize>, redis::Cmd)> {
        let stored_keys: Vec<String> = keys
            .iter()
            .map(|key| self.stored_key(key.as_ref()))
            .collect();
        self.members()
            .group_by_node(&stored_keys)
            .into_iter()
            .map(|(node, positions)| {
                let mut cmd = redis::cmd(command);
                for &position in &positions {
                    cmd.arg(&stored_keys[position]);
                }
                (node.clone(), positions, cmd)
            })
            .collect()
    }

    async fn fetch<T: DeserializeOwned>(&self, stored_key: &str) -> Option<Entry<T>> {
        let members = self.members();
        let node = members.route(stored_key)?;
        let bytes = node
            .query::<Option<Vec<u8>>>(redis::cmd("GET").arg(stored_key))
            .await?;
        node_value(node, bytes)
    }

    async fn store<T: Serialize>(
        &self,
        stored_key: &str,
        value: Option<&T>,
        ttl: Duration,
        load_time: Duration,
    ) {
        let ttl = self.jittered(ttl);
        let ttl_ms = entry::millis(ttl);
        if ttl_ms == 0 {
            return;
        }
        let Some(bytes) = Entry::new(value, ttl, load_time).encode() else {
            tracing::warn!(key = stored_key, "value cannot be serialised; not cached");
            return;
        };
        let members = self.members();
        let Some(node) = members.route(stored_key) else {
            return;
        };
        node.query::<()>(
            redis::cmd("SET")
                .arg(stored_key)
                .arg(bytes)
                .arg("PX")
                .arg(ttl_ms),
        )
        .await;
    }

    /// `ttl` shortened by a random fraction up to `ttl_jitter`.
    fn jittered(&self, ttl: Duration) -> Duration {
        let jitter = self.config.ttl_jitter.clamp(0.0, 1.0);
        ttl.mul_f64(1.0 - jitter * rand::random::<f64>())
    }
}

impl Members {
    fn route(&self, stored_key: &str) -> Option<&Arc<Node>> {
        self.nodes
            .get(self.placement.node_for(stored_key.as_bytes())?)
    }

    /// The positions of `stored_keys` grouped by the node that owns them.
    fn group_by_node(&self, stored_keys: &[String]) -> Vec<(&Arc<Node>, Vec<usize>)> {
        let mut by_node: HashMap<usize, Vec<usize>> = HashMap::new();
        for (position, key) in stored_keys.iter().enumerate() {
            if let Some(index) = self.placement.node_for(key.as_bytes()) {
                by_node.entry(index).or_default().push(position);
            }
        }
        by_node
            .into_iter()
            .filter_map(|(index, positions)| Some((self.nodes.get(index)?, positions)))
            .collect()
    }
}

/// Decodes what a node returned for one key, counting the hit or miss on that node.
fn node_value<T: DeserializeOwned>(node: &Node, bytes: Option<Vec<u8>>) -> Option<Entry<T>> {
    let entry = bytes.and_then(|bytes| Entry::<T>::decode(&bytes));
    match entry {
        Some(_) => node.metrics.hits.inc(),
        None => node.metrics.misses.inc(),
    };
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_many_batches_are_one_per_node_and_cover_every_key_once() {
        let pool = Pool::new(
            PoolConfig::from_nodes_arg("a:1,b:1,c:1").unwrap(),
            &mut Registry::default(),
        );
        let members = pool.inner.members();
        let keys: Vec<String> = (0..100)
            .map(|i| pool.inner.stored_key(&format!("k{i}")))
            .collect();
        let batches = members.group_by_node(&keys);
        assert_eq!(batches.len(), 3, "one batch per node");
        let mut seen = vec![0; keys.len()];
        for (node, positions) in &batches {
            for &position in positions {
                seen[position] += 1;
                let owner = members.route(&keys[position]).unwrap();
                assert_eq!(owner.name(), node.name());
            }
        }
        assert!(seen.iter().all(|&n| n == 1));
    }
}
