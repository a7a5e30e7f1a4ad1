//! One poll of every tier: the raw, cumulative counters each service reports right now.
//! Rates come later, from the difference between two of these ([`crate::snapshot`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::Value;

use crate::names;
use crate::sources::Sources;
use service::metrics::scrape::Page;

/// How long one source may take to answer; a poll must fit in the one-second refresh.
const READ_TIMEOUT: Duration = Duration::from_millis(800);

/// The counters of one service, or why they could not be read.
pub type Reading<T> = Result<T, String>;

/// Everything one poll read.
#[derive(Debug)]
pub struct Sample {
    /// When the poll started.
    pub taken: Instant,
    /// How long reading every tier took.
    pub took: Duration,
    pub proxy: Option<Reading<ProxyReading>>,
    pub apps: Vec<Member<AppReading>>,
    pub doorbell: Option<Member<DoorbellReading>>,
    pub caches: Vec<Member<CacheReading>>,
    pub database: Option<Reading<DatabaseReading>>,
}

/// One instance of a tier.
#[derive(Debug)]
pub struct Member<T> {
    pub name: String,
    pub address: String,
    /// Whether the proxy sends it requests (health checks, ejection), when the proxy lists it.
    pub in_rotation: Option<bool>,
    /// Requests the proxy has in flight to it.
    pub outstanding: Option<u64>,
    pub reading: Reading<T>,
}

#[derive(Debug, Default)]
pub struct ProxyReading {
    pub requests_by_status: BTreeMap<String, f64>,
    /// Keyed by the backend's `ip:port`.
    pub backends: BTreeMap<String, BackendCounts>,
    pub store_objects: f64,
    pub store_bytes: f64,
    pub pools: Vec<Pool>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct BackendCounts {
    pub requests: f64,
    pub errors: f64,
}

/// A pool as the proxy's `/status` lists it.
#[derive(Debug, Clone)]
pub struct Pool {
    pub name: String,
    pub backends: Vec<PoolBackend>,
}

#[derive(Debug, Clone)]
pub struct PoolBackend {
    pub address: String,
    pub healthy: bool,
    pub outstanding: u64,
}

#[derive(Debug, Default)]
pub struct AppReading {
    pub requests: f64,
    pub server_errors: f64,
    pub db_queries: f64,
    pub db_errors: f64,
    /// The app's cache pool, by node address.
    pub cache_ops: BTreeMap<String, CacheOps>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct CacheOps {
    pub hits: f64,
    pub misses: f64,
    pub errors: f64,
}

#[derive(Debug, Default)]
pub struct DoorbellReading {
    pub calls: f64,
    pub doors_opened: f64,
    pub steps: f64,
    pub refused: f64,
}

#[derive(Debug, Default)]
pub struct CacheReading {
    pub hits: f64,
    pub misses: f64,
    pub commands: f64,
    pub used_memory: f64,
    pub connected_clients: f64,
    pub keys: f64,
}

#[derive(Debug, Default)]
pub struct DatabaseReading {
    pub transactions: f64,
    pub rows_read: f64,
    pub connections: f64,
}

/// Reads every source; keeps what is worth keeping between polls (cache node connections,
/// app instance names, the last pools the proxy listed).
#[derive(Debug)]
pub struct Collector {
    sources: Sources,
    http: reqwest::Client,
    caches: Vec<CacheNode>,
    /// App base URL → the instance name it answers with (`X-Served-By`).
    app_names: HashMap<String, String>,
    /// Still used while the proxy is down, so its backends do not vanish from the view.
    last_pools: Vec<Pool>,
    /// Numbers the cache nodes known by IP address (`cache-3`), never reused.
    cache_numbers: usize,
}

impl Collector {
    pub fn new(sources: Sources) -> Self {
        let http = reqwest::Client::builder()
            .timeout(READ_TIMEOUT)
            .build()
            .unwrap_or_default();
        let caches: Vec<CacheNode> = sources
            .cache_nodes
            .iter()
            .enumerate()
            .map(|(index, address)| CacheNode::new(index, address))
            .collect();
        Self {
            cache_numbers: caches.len(),
            sources,
            http,
            caches,
            app_names: HashMap::new(),
            last_pools: Vec::new(),
        }
    }

    pub async fn sample(&mut self) -> Sample {
        let taken = Instant::now();
        let proxy = match &self.sources.proxy_admin {
            Some(url) => Some(read_proxy(&self.http, url).await),
            None => None,
        };
        if let Some(Ok(proxy)) = &proxy {
            self.last_pools.clone_from(&proxy.pools);
        }
        let pool = |name: &str| self.last_pools.iter().find(|pool| pool.name == name);

        let mut app_targets: Vec<Target> = pool(&self.sources.app_pool)
            .map(|pool| pool.backends.iter().map(Target::listed).collect())
            .unwrap_or_default();
        app_targets.extend(self.sources.apps.iter().map(|url| Target::given(url)));
        let doorbell_target = match &self.sources.doorbell {
            Some(url) => Some(Target::given(url)),
            None => pool(&self.sources.doorbell_pool)
                .and_then(|pool| pool.backends.first())
                .map(Target::listed),
        };

        let Self {
            http,
            caches,
            app_names,
            sources,
            ..
        } = self;
        let apps = join_all(app_targets.into_iter().map(|target| {
            let known = app_names.get(&target.url).cloned();
            read_app(http, target, known)
        }));
        let doorbell = async {
            match doorbell_target {
                Some(target) => Some(read_doorbell(http, target).await),
                None => None,
            }
        };
        let cache_readings = join_all(caches.iter_mut().map(CacheNode::read));
        let database = async {
            match &sources.database {
                Some(pool) => Some(read_database(pool).await),
                None => None,
            }
        };
        let (apps, doorbell, caches, database) =
            tokio::join!(apps, doorbell, cache_readings, database);
        for app in &apps {
            if app.name != app.address {
                app_names.insert(base_url(&app.address), app.name.clone());
            }
        }
        if self.sources.cache_nodes.is_empty() {
            self.discover_cache_nodes(&apps);
        }
        Sample {
            taken,
            took: taken.elapsed(),
            proxy,
            apps,
            doorbell,
            caches,
            database,
        }
    }

    /// Without configured cache nodes, reads the nodes the apps' pools use (they label their
    /// counters with each node's address), so a pool that finds its nodes by DNS is followed
    /// as it grows and shrinks. Read from the next poll on.
    fn discover_cache_nodes(&mut self, apps: &[Member<AppReading>]) {
        let readings: Vec<&AppReading> = apps
            .iter()
            .filter_map(|app| app.reading.as_ref().ok())
            .collect();
        if readings.is_empty() {
            // No app could say: keep the nodes known so far.
            return;
        }
        let used: BTreeSet<&String> = readings
            .iter()
            .flat_map(|app| app.cache_ops.keys())
            .collect();
        self.caches.retain(|node| used.contains(&node.address));
        for address in used {
            if !self.caches.iter().any(|node| &node.address == address) {
                self.caches
                    .push(CacheNode::new(self.cache_numbers, address));
                self.cache_numbers += 1;
            }
        }
    }
}

/// An HTTP service to read, as the proxy listed it or as configured.
#[derive(Debug)]
struct Target {
    /// `http://host:port`.
    url: String,
    address: String,
    in_rotation: Option<bool>,
    outstanding: Option<u64>,
}

impl Target {
    fn listed(backend: &PoolBackend) -> Self {
        Self {
            url: base_url(&backend.address),
            address: backend.address.clone(),
            in_rotation: Some(backend.healthy),
            outstanding: Some(backend.outstanding),
        }
    }

    fn given(url: &str) -> Self {
        let url = url.trim_end_matches('/').to_owned();
        let address = url
            .split_once("://")
            .map_or(url.as_str(), |(_, rest)| rest)
            .to_owned();
        Self {
            url,
            address,
            in_rotation: None,
            outstanding: None,
        }
    }

    fn member<T>(self, name: String, reading: Reading<T>) -> Member<T> {
        Member {
            name,
            address: self.address,
            in_rotation: self.in_rotation,
            outstanding: self.outstanding,
            reading,
        }
    }
}

fn base_url(address: &str) -> String {
    if address.contains("://") {
        address.trim_end_matches('/').to_owned()
    } else {
        format!("http://{address}")
    }
}

async fn fetch(http: &reqwest::Client, url: String) -> Result<reqwest::Response, String> {
    let response = http.get(url).send().await.map_err(|error| {
        if error.is_timeout() {
            format!("no answer within {READ_TIMEOUT:?}")
        } else if error.is_connect() {
            "cannot connect".to_owned()
        } else {
            error.to_string()
        }
    })?;
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(format!("answered {}", response.status()))
    }
}

async fn fetch_text(http: &reqwest::Client, url: String) -> Result<String, String> {
    fetch(http, url)
        .await?
        .text()
        .await
        .map_err(|error| error.to_string())
}

async fn read_metrics(http: &reqwest::Client, url: String) -> Reading<Page> {
    Page::parse(&fetch_text(http, url).await?)
}

async fn read_proxy(http: &reqwest::Client, admin: &str) -> Reading<ProxyReading> {
    use names::proxy as n;
    let admin = admin.trim_end_matches('/');
    let (page, status) = tokio::join!(
        read_metrics(http, format!("{admin}{}", n::METRICS_PATH)),
        fetch_text(http, format!("{admin}{}", n::STATUS_PATH)),
    );
    let page = page?;
    let status: Value = serde_json::from_str(&status?)
        .map_err(|error| format!("unreadable {}: {error}", n::STATUS_PATH))?;
    let mut backends: BTreeMap<String, BackendCounts> = BTreeMap::new();
    for series in page.series(n::BACKEND_REQUESTS) {
        let Some(backend) = series.label(n::BACKEND) else {
            continue;
        };
        let counts = backends.entry(backend.to_owned()).or_default();
        counts.requests += series.value;
        let answered = series
            .label(n::OUTCOME)
            .is_some_and(|outcome| n::ANSWERED.contains(&outcome));
        if !answered {
            counts.errors += series.value;
        }
    }
    Ok(ProxyReading {
        requests_by_status: page.sum_by(n::REQUESTS, n::CACHE_STATUS),
        backends,
        store_objects: page.total(n::STORE_OBJECTS),
        store_bytes: page.total(n::STORE_BYTES),
        pools: parse_pools(&status),
    })
}

fn parse_pools(status: &Value) -> Vec<Pool> {
    use names::proxy as n;
    let Some(pools) = status[n::POOLS].as_array() else {
        return Vec::new();
    };
    pools
        .iter()
        .map(|pool| Pool {
            name: pool[n::POOL_NAME].as_str().unwrap_or_default().to_owned(),
            backends: pool[n::POOL_BACKENDS]
                .as_array()
                .map(|backends| {
                    backends
                        .iter()
                        .map(|backend| PoolBackend {
                            address: backend[n::BACKEND_ADDRESS]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                            healthy: backend[n::BACKEND_HEALTHY].as_bool().unwrap_or(false),
                            outstanding: backend[n::BACKEND_OUTSTANDING].as_u64().unwrap_or(0),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

async fn read_app(
    http: &reqwest::Client,
    target: Target,
    known_name: Option<String>,
) -> Member<AppReading> {
    use names::app as n;
    let metrics = read_metrics(http, format!("{}{}", target.url, n::METRICS_PATH));
    let name = async {
        match known_name {
            Some(name) => Some(name),
            None => fetch(http, format!("{}{}", target.url, n::NAME_PATH))
                .await
                .ok()
                .and_then(|response| {
                    let name = response.headers().get(n::SERVED_BY)?.to_str().ok()?;
                    Some(name.to_owned())
                }),
        }
    };
    let (page, name) = tokio::join!(metrics, name);
    let reading = page.map(|page| {
        let pool = |family| page.sum_by(family, n::NODE);
        let (hits, misses, errors) = (
            pool(n::POOL_HITS),
            pool(n::POOL_MISSES),
            pool(n::POOL_ERRORS),
        );
        let mut cache_ops: BTreeMap<String, CacheOps> = BTreeMap::new();
        for (node, value) in hits {
            cache_ops.entry(node).or_default().hits = value;
        }
        for (node, value) in misses {
            cache_ops.entry(node).or_default().misses = value;
        }
        for (node, value) in errors {
            cache_ops.entry(node).or_default().errors = value;
        }
        AppReading {
            requests: page.total(n::REQUESTS),
            server_errors: page.sum_where(n::REQUESTS, |series| {
                series.label(n::STATUS).is_some_and(|s| s.starts_with('5'))
            }),
            db_queries: page.total(n::DB_QUERIES),
            db_errors: page.total(n::DB_ERRORS),
            cache_ops,
        }
    });
    let name = name.unwrap_or_else(|| target.address.clone());
    target.member(name, reading)
}

async fn read_doorbell(http: &reqwest::Client, target: Target) -> Member<DoorbellReading> {
    use names::doorbell as n;
    let reading = read_metrics(http, format!("{}{}", target.url, n::METRICS_PATH))
        .await
        .map(|page| {
            let outcomes = page.sum_by(n::CALL_OUTCOMES, n::OUTCOME);
            let outcome = |name: &str| outcomes.get(name).copied().unwrap_or(0.0);
            DoorbellReading {
                calls: n::CALL_STARTS.iter().map(|name| outcome(name)).sum(),
                doors_opened: outcome(n::DOOR_OPENED),
                steps: outcomes.values().sum(),
                refused: page.total(n::WEBHOOKS_REFUSED),
            }
        });
    target.member("doorbell".to_owned(), reading)
}

async fn read_database(pool: &sqlx::PgPool) -> Reading<DatabaseReading> {
    let query = sqlx::query_as::<_, (i64, i64, i64, i32)>(names::postgres::STATS_QUERY);
    let (commits, rollbacks, rows, backends) =
        tokio::time::timeout(READ_TIMEOUT, query.fetch_one(pool))
            .await
            .map_err(|_| format!("no answer within {READ_TIMEOUT:?}"))?
            .map_err(|error| error.to_string())?;
    Ok(DatabaseReading {
        transactions: (commits + rollbacks) as f64,
        rows_read: rows as f64,
        connections: f64::from(backends),
    })
}

/// A cache node, asked `INFO` over one kept RESP connection.
#[derive(Debug)]
struct CacheNode {
    name: String,
    address: String,
    client: Result<redis::Client, String>,
    connection: Option<redis::aio::MultiplexedConnection>,
}

impl CacheNode {
    fn new(index: usize, address: &str) -> Self {
        let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
        // Compose names (`cache-1:6379`) read well; bare IPs are numbered instead.
        let name = if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
            format!("cache-{}", index + 1)
        } else {
            host.to_owned()
        };
        Self {
            name,
            address: address.to_owned(),
            client: redis::Client::open(format!("redis://{address}"))
                .map_err(|error| error.to_string()),
            connection: None,
        }
    }

    async fn read(&mut self) -> Member<CacheReading> {
        let reading = tokio::time::timeout(READ_TIMEOUT, self.info())
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {READ_TIMEOUT:?}")))
            .and_then(|info| parse_info(&info));
        if reading.is_err() {
            // Reconnect next time: the node may have restarted.
            self.connection = None;
        }
        Member {
            name: self.name.clone(),
            address: self.address.clone(),
            in_rotation: None,
            outstanding: None,
            reading,
        }
    }

    async fn info(&mut self) -> Result<String, String> {
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => {
                let client = self.client.as_ref().map_err(Clone::clone)?;
                let connection = client
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(|error| describe(&error))?;
                self.connection.insert(connection)
            }
        };
        redis::cmd("INFO")
            .query_async(connection)
            .await
            .map_err(|error| describe(&error))
    }
}

/// The same words for the same failures as over HTTP.
fn describe(error: &redis::RedisError) -> String {
    if error.is_connection_refusal() {
        "cannot connect".to_owned()
    } else if error.is_timeout() {
        format!("no answer within {READ_TIMEOUT:?}")
    } else {
        error.to_string()
    }
}

/// The fields of an `INFO` reply the view shows.
fn parse_info(info: &str) -> Reading<CacheReading> {
    use names::cache as n;
    let fields: HashMap<&str, &str> = info
        .lines()
        .filter_map(|line| line.trim().split_once(':'))
        .collect();
    let number = |name: &str| fields.get(name).and_then(|value| value.parse::<f64>().ok());
    let required = |name: &str| number(name).ok_or_else(|| format!("INFO has no {name}"));
    let keys = fields
        .get(n::KEYSPACE_DB)
        .and_then(|db| {
            db.split(',')
                .find_map(|pair| pair.strip_prefix(n::KEYS)?.strip_prefix('='))
        })
        .and_then(|keys| keys.parse().ok())
        .unwrap_or(0.0);
    Ok(CacheReading {
        hits: required(n::HITS)?,
        misses: required(n::MISSES)?,
        commands: required(n::COMMANDS)?,
        used_memory: number(n::USED_MEMORY).unwrap_or(0.0),
        connected_clients: number(n::CONNECTED_CLIENTS).unwrap_or(0.0),
        keys,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{Target, parse_info, parse_pools};

    #[test]
    fn reads_redis_info_fields() {
        let info = "# Clients\r\nconnected_clients:3\r\n\r\n# Memory\r\nused_memory:2048\r\n\r\n\
                    # Stats\r\ntotal_commands_processed:120\r\nkeyspace_hits:90\r\n\
                    keyspace_misses:10\r\n\r\n# Keyspace\r\ndb0:keys=12,expires=3,avg_ttl=0";
        let reading = parse_info(info).unwrap();
        assert_eq!(reading.hits, 90.0);
        assert_eq!(reading.misses, 10.0);
        assert_eq!(reading.commands, 120.0);
        assert_eq!(reading.used_memory, 2048.0);
        assert_eq!(reading.connected_clients, 3.0);
        assert_eq!(reading.keys, 12.0);
    }

    #[test]
    fn an_info_reply_without_the_counters_is_an_error() {
        let error = parse_info("# Server\r\nredis_version:7.0.0").unwrap_err();
        assert!(error.contains("keyspace_hits"), "{error}");
    }

    #[test]
    fn reads_the_pools_of_the_proxy_status() {
        let status = json!({
            "pools": [
                {"name": "app", "backends": [
                    {"address": "10.0.0.2:3000", "healthy": true, "outstanding": 2},
                    {"address": "10.0.0.3:3000", "healthy": false, "outstanding": 0},
                ]},
                {"name": "doorbell", "backends": [{"address": "10.0.0.9:8090", "healthy": true}]},
            ],
            "routes": 2,
        });
        let pools = parse_pools(&status);
        assert_eq!(pools.len(), 2);
        assert_eq!(pools[0].backends[1].address, "10.0.0.3:3000");
        assert!(!pools[0].backends[1].healthy);
        assert_eq!(pools[0].backends[0].outstanding, 2);
        assert!(parse_pools(&json!({"unexpected": true})).is_empty());
    }

    #[test]
    fn configured_urls_become_targets() {
        let target = Target::given("http://app-1:3000/");
        assert_eq!(target.url, "http://app-1:3000");
        assert_eq!(target.address, "app-1:3000");
    }
}
