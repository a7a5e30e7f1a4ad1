//! What a [`Pool`](super::Pool) needs to know: where the nodes are, and how patient to be with them.

use std::time::Duration;

/// Configuration of a [`Pool`](super::Pool). Start from [`PoolConfig::from_nodes_arg`] or
/// [`PoolConfig::new`] and adjust fields; every field has a sensible default.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Where the cache nodes are.
    pub nodes: NodeSource,
    /// Longest wait for one cache operation (connect included) before it counts as a failure and
    /// the caller gets a miss. A cache slower than the database is worse than no cache.
    pub op_timeout: Duration,
    /// When to stop sending requests to a failing node, and when to try it again.
    pub breaker: BreakerConfig,
    /// Prepended to every key (`{key_prefix}:v{schema_version}:{key}`), so several applications
    /// can share one pool.
    pub key_prefix: String,
    /// Bump it whenever the shape of a cached type changes: a deploy then reads and writes new
    /// keys and never decodes old bytes as the new struct.
    pub schema_version: u32,
    /// Stored TTLs are shortened by a random fraction up to this (0.1 = up to 10%), so that
    /// values loaded together do not all expire together.
    pub ttl_jitter: f64,
    /// How long `get_or_load` remembers "not found" (capped by the call's TTL).
    pub negative_ttl: Duration,
    /// The XFetch β: how eagerly `get_or_load` refreshes a hot key before it expires. 1.0 is the
    /// paper's default; higher refreshes earlier; 0 turns early refresh off.
    pub early_refresh_beta: f64,
}

/// Where the cache nodes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeSource {
    /// A fixed list of `host:port` addresses. An empty list is a disabled cache.
    Static(Vec<String>),
    /// Every address a DNS name resolves to, each a node at `port`, re-resolved every `refresh`:
    /// `docker compose --scale cache=N` and Kubernetes headless services both publish their
    /// members this way.
    Dns {
        /// The name to resolve.
        name: String,
        /// The port every node listens on.
        port: u16,
        /// How often to resolve again.
        refresh: Duration,
    },
}

/// The per-node circuit breaker: after `failure_threshold` consecutive failures the node is
/// skipped (its keys are misses, its writes dropped) for `open_for`; then one request probes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures (errors or timeouts) that open the breaker.
    pub failure_threshold: u32,
    /// How long an open breaker skips the node before letting one probe through.
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 3,
            open_for: Duration::from_secs(1),
        }
    }
}

/// The default DNS refresh interval for `dns+NAME:PORT`.
pub const DEFAULT_DNS_REFRESH: Duration = Duration::from_secs(5);

/// A `--cache-nodes` value that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodesArgError {
    /// An entry is not `host:port`.
    #[error("cache node {0:?} is not host:port")]
    NotHostPort(String),
    /// The port is not a number from 1 to 65535.
    #[error("cache node {0:?} has an invalid port")]
    BadPort(String),
    /// `dns+` was combined with other entries.
    #[error("dns+NAME:PORT must be the only entry, got {0:?}")]
    DnsNotAlone(String),
}

impl PoolConfig {
    /// A configuration with the defaults: 50 ms operation timeout, breaker open after 3 failures
    /// for 1 s, prefix `leanstack` schema 1, 10% TTL jitter, 10 s negative TTL, β = 1.
    pub fn new(nodes: NodeSource) -> Self {
        PoolConfig {
            nodes,
            op_timeout: Duration::from_millis(50),
            breaker: BreakerConfig::default(),
            key_prefix: "leanstack".to_owned(),
            schema_version: 1,
            ttl_jitter: 0.1,
            negative_ttl: Duration::from_secs(10),
            early_refresh_beta: 1.0,
        }
    }

    /// Parses the `--cache-nodes` syntax, defaults for everything else:
    ///
    /// - `cache-1:6379,cache-2:6379` — a static list of `host:port` (spaces around commas allowed);
    /// - `dns+cache:6379` — every address `cache` resolves to, port 6379, re-resolved every 5 s;
    ///   `dns+cache:6379@30s` sets the refresh interval (in seconds, `s` optional);
    /// - the empty string — no nodes: a disabled cache (every get misses).
    pub fn from_nodes_arg(arg: &str) -> Result<Self, NodesArgError> {
        parse_nodes(arg).map(PoolConfig::new)
    }

    /// The prefix every stored key starts with: `{key_prefix}:v{schema_version}:`.
    pub fn versioned_prefix(&self) -> String {
        format!("{}:v{}:", self.key_prefix, self.schema_version)
    }
}

fn parse_nodes(arg: &str) -> Result<NodeSource, NodesArgError> {
    let entries: Vec<&str> = arg
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    if let Some(dns) = entries.iter().find_map(|e| e.strip_prefix("dns+")) {
        if entries.len() > 1 {
            return Err(NodesArgError::DnsNotAlone(arg.to_owned()));
        }
        let (target, refresh) = match dns.split_once('@') {
            Some((target, secs)) => {
                let secs: u64 = secs
                    .trim_end_matches('s')
                    .parse()
                    .map_err(|_| NodesArgError::NotHostPort(dns.to_owned()))?;
                (target, Duration::from_secs(secs.max(1)))
            }
            None => (dns, DEFAULT_DNS_REFRESH),
        };
        let (name, port) = split_host_port(target)?;
        return Ok(NodeSource::Dns {
            name: name.to_owned(),
            port,
            refresh,
        });
    }
    entries
        .into_iter()
        .map(|entry| split_host_port(entry).map(|_| entry.to_owned()))
        .collect::<Result<_, _>>()
        .map(NodeSource::Static)
}

fn split_host_port(entry: &str) -> Result<(&str, u16), NodesArgError> {
    let (host, port) = entry
        .rsplit_once(':')
        .filter(|(host, _)| !host.is_empty())
        .ok_or_else(|| NodesArgError::NotHostPort(entry.to_owned()))?;
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok((host, port)),
        _ => Err(NodesArgError::BadPort(entry.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_list_with_spaces() {
        let config = PoolConfig::from_nodes_arg("cache-1:6379, cache-2:6380").unwrap();
        assert_eq!(
            config.nodes,
            NodeSource::Static(vec!["cache-1:6379".into(), "cache-2:6380".into()])
        );
    }

    #[test]
    fn empty_is_disabled() {
        let config = PoolConfig::from_nodes_arg("").unwrap();
        assert_eq!(config.nodes, NodeSource::Static(vec![]));
    }

    #[test]
    fn dns_with_and_without_refresh() {
        assert_eq!(
            PoolConfig::from_nodes_arg("dns+cache:6379").unwrap().nodes,
            NodeSource::Dns {
                name: "cache".into(),
                port: 6379,
                refresh: DEFAULT_DNS_REFRESH
            }
        );
        assert_eq!(
            PoolConfig::from_nodes_arg("dns+cache:6379@30s")
                .unwrap()
                .nodes,
            NodeSource::Dns {
                name: "cache".into(),
                port: 6379,
                refresh: Duration::from_secs(30)
            }
        );
    }

    #[test]
    fn bad_entries_are_explained() {
        assert_eq!(
            PoolConfig::from_nodes_arg("cache-1").unwrap_err(),
            NodesArgError::NotHostPort("cache-1".into())
        );
        assert_eq!(
            PoolConfig::from_nodes_arg("cache-1:http").unwrap_err(),
            NodesArgError::BadPort("cache-1:http".into())
        );
        assert!(matches!(
            PoolConfig::from_nodes_arg("dns+cache:6379,cache-2:6379"),
            Err(NodesArgError::DnsNotAlone(_))
        ));
    }

    #[test]
    fn versioned_prefix_carries_schema() {
        let mut config = PoolConfig::from_nodes_arg("a:1").unwrap();
        config.schema_version = 7;
        assert_eq!(config.versioned_prefix(), "leanstack:v7:");
    }
}
