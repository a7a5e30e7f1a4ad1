//! What each tier did during the run, from its own numbers read before and after: the proxy's
//! `/metrics` (requests by cache status), each app's `/metrics` (database queries, and its
//! cache pool's hits and misses per node) and each cache node (`INFO stats` over RESP, as
//! redis-server answers too, or its Prometheus `/metrics`).
//!
//! Every source is optional and a failing one is reported, never fatal: a load test against a
//! deployment whose admin ports are closed still runs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use url::Url;

use crate::config::TierConfig;
use service::metrics::scrape::Page;

/// How long one scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// How many changed series of each endpoint the report lists.
const CHANGED_ROWS: usize = 40;

/// One reading of every configured source.
#[derive(Debug, Clone)]
pub struct Reading {
    proxy: Option<(Url, Result<Page, String>)>,
    apps: Vec<(Url, Result<Page, String>)>,
    nodes: Vec<(String, Result<Hits, String>)>,
}

/// A cache's hit and miss counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Hits {
    pub hits: f64,
    pub misses: f64,
}

impl Hits {
    fn since(self, before: Hits) -> Hits {
        Hits {
            hits: self.hits - before.hits,
            misses: self.misses - before.misses,
        }
    }

    /// hits / (hits + misses), when there were any.
    pub fn ratio(self) -> Option<f64> {
        let total = self.hits + self.misses;
        (total > 0.0).then(|| self.hits / total)
    }
}

/// The per-tier part of the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TierReport {
    pub proxy: Option<ProxyTier>,
    pub apps: Vec<AppTier>,
    /// Cache nodes as their clients (the apps' pools) saw them.
    pub pool_nodes: Vec<CacheNodeTier>,
    /// Cache nodes as they counted themselves.
    pub cache_nodes: Vec<CacheNodeTier>,
    /// Sources that could not be read.
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProxyTier {
    pub url: String,
    /// The family the statuses were read from, e.g. `proxy_requests_total`.
    pub family: Option<String>,
    /// Requests during the run by cache status.
    pub by_cache_status: BTreeMap<String, f64>,
    /// HIT / all, as the proxy defines its hit ratio (when it counted any request).
    pub hit_ratio: Option<f64>,
    /// (HIT + STALE) / all: answered from the cache, fresh or within grace.
    pub served_from_cache: Option<f64>,
    pub changed: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AppTier {
    pub url: String,
    /// Database queries during the run, when the app counts them.
    pub db_queries: Option<f64>,
    pub db_queries_per_second: Option<f64>,
    pub changed: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CacheNodeTier {
    pub node: String,
    pub hits: f64,
    pub misses: f64,
    pub hit_ratio: Option<f64>,
}

impl CacheNodeTier {
    fn new(node: String, hits: Hits) -> Self {
        CacheNodeTier {
            node,
            hits: hits.hits,
            misses: hits.misses,
            hit_ratio: hits.ratio(),
        }
    }
}

/// Reads every configured source once.
pub async fn read(client: &reqwest::Client, config: &TierConfig) -> Reading {
    let proxy = match &config.proxy_admin {
        Some(admin) => {
            let url = admin.join("/metrics").unwrap_or_else(|_| admin.clone());
            let snapshot = scrape(client, &url).await;
            Some((url, snapshot))
        }
        None => None,
    };
    let apps = futures::future::join_all(
        config
            .app_metrics
            .iter()
            .map(|url| async move { (url.clone(), scrape(client, url).await) }),
    )
    .await;
    let nodes = futures::future::join_all(
        config
            .cache_nodes
            .iter()
            .map(|node| async move { (node.clone(), node_hits(client, node).await) }),
    )
    .await;
    Reading { proxy, apps, nodes }
}

async fn scrape(client: &reqwest::Client, url: &Url) -> Result<Page, String> {
    let response = client
        .get(url.clone())
        .timeout(SCRAPE_TIMEOUT)
        .send()
        .await
        .map_err(|error| format!("{url}: {error}"))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    let text = response
        .text()
        .await
        .map_err(|error| format!("{url}: {error}"))?;
    Page::parse(&text).map_err(|error| format!("{url}: not Prometheus text: {error}"))
}

/// A cache node's counters: `http://…` is its Prometheus page (`cache_hits_total`,
/// `cache_misses_total`), anything else a RESP address asked `INFO stats`.
async fn node_hits(client: &reqwest::Client, node: &str) -> Result<Hits, String> {
    if node.starts_with("http://") || node.starts_with("https://") {
        let url = Url::parse(node).map_err(|error| format!("{node}: {error}"))?;
        let snapshot = scrape(client, &url).await?;
        return Ok(Hits {
            hits: snapshot.total("cache_hits_total"),
            misses: snapshot.total("cache_misses_total"),
        });
    }
    let info = tokio::time::timeout(SCRAPE_TIMEOUT, info_stats(node))
        .await
        .map_err(|_| format!("{node}: INFO timed out"))?
        .map_err(|error| format!("{node}: {error}"))?;
    parse_info_hits(&info)
        .ok_or_else(|| format!("{node}: INFO has no keyspace_hits/keyspace_misses"))
}

async fn info_stats(node: &str) -> redis::RedisResult<String> {
    let client = redis::Client::open(format!("redis://{node}"))?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut connection)
        .await
}

fn parse_info_hits(info: &str) -> Option<Hits> {
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.trim().strip_prefix(name)?.strip_prefix(':'))
            .and_then(|value| value.trim().parse::<f64>().ok())
    };
    Some(Hits {
        hits: field("keyspace_hits")?,
        misses: field("keyspace_misses")?,
    })
}

impl Reading {
    /// What happened between `before` and `self`, over a run of `seconds`.
    pub fn since(&self, before: &Reading, seconds: f64) -> TierReport {
        let mut report = TierReport::default();
        let mut problem = |error: &String| report.problems.push(error.clone());

        let mut proxy = None;
        if let (Some((url, after)), Some((_, earlier))) = (&self.proxy, &before.proxy) {
            match (earlier, after) {
                (Ok(earlier), Ok(after)) => proxy = Some(proxy_tier(url, &after.since(earlier))),
                (Err(error), _) | (_, Err(error)) => problem(error),
            }
        }

        let mut apps = Vec::new();
        let mut pool: BTreeMap<String, Hits> = BTreeMap::new();
        for ((url, after), (_, earlier)) in self.apps.iter().zip(&before.apps) {
            match (earlier, after) {
                (Ok(earlier), Ok(after)) => {
                    let run = after.since(earlier);
                    for (node, hits) in pool_hits(&run) {
                        let total = pool.entry(node).or_default();
                        total.hits += hits.hits;
                        total.misses += hits.misses;
                    }
                    apps.push(app_tier(url, &run, seconds));
                }
                (Err(error), _) | (_, Err(error)) => problem(error),
            }
        }

        let mut cache_nodes = Vec::new();
        for ((node, after), (_, earlier)) in self.nodes.iter().zip(&before.nodes) {
            match (earlier, after) {
                (Ok(earlier), Ok(after)) => {
                    cache_nodes.push(CacheNodeTier::new(node.clone(), after.since(*earlier)));
                }
                (Err(error), _) | (_, Err(error)) => problem(error),
            }
        }

        report.proxy = proxy;
        report.apps = apps;
        report.pool_nodes = pool
            .into_iter()
            .map(|(node, hits)| CacheNodeTier::new(node, hits))
            .collect();
        report.cache_nodes = cache_nodes;
        report
    }
}

/// The family of the proxy's request counter that carries the cache status: the proxy names
/// its families `proxy_…`; the one counting requests with a `cache_status` label is preferred.
fn cache_status_family(run: &Page) -> Option<(String, &'static str)> {
    let candidates: Vec<&str> = run
        .names()
        .filter(|name| name.starts_with("proxy_") && name.ends_with("_total"))
        .collect();
    ["cache_status", "cache", "status"]
        .into_iter()
        .find_map(|label| {
            let with_label = candidates.iter().filter(|name| run.has_label(name, label));
            let mut with_label: Vec<&&str> = with_label.collect();
            with_label.sort_by_key(|name| !name.contains("request"));
            with_label.first().map(|name| ((**name).to_owned(), label))
        })
}

fn proxy_tier(url: &Url, run: &Page) -> ProxyTier {
    let family = cache_status_family(run);
    let by_cache_status: BTreeMap<String, f64> = family
        .as_ref()
        .map(|(name, label)| {
            run.sum_by(name, label)
                .into_iter()
                .map(|(status, count)| (status.to_ascii_uppercase(), count))
                .collect()
        })
        .unwrap_or_default();
    let total: f64 = by_cache_status.values().sum();
    let count = |status: &str| by_cache_status.get(status).copied().unwrap_or(0.0);
    let share = |part: f64| (total > 0.0).then(|| part / total);
    let hit_ratio = share(count("HIT"));
    let served_from_cache = share(count("HIT") + count("STALE"));
    ProxyTier {
        url: url.to_string(),
        family: family.map(|(name, _)| name),
        by_cache_status,
        hit_ratio,
        served_from_cache,
        changed: run.nonzero().into_iter().take(CHANGED_ROWS).collect(),
    }
}

fn app_tier(url: &Url, run: &Page, seconds: f64) -> AppTier {
    // The app counts queries in a family whose name says so (`…db_queries_total`).
    let query_families: Vec<&str> = run
        .names()
        .filter(|name| {
            (name.contains("db_queries") || name.contains("database_queries"))
                && name.ends_with("_total")
        })
        .collect();
    let db_queries = (!query_families.is_empty()).then(|| {
        query_families
            .iter()
            .map(|name| run.total(name))
            .sum::<f64>()
    });
    AppTier {
        url: url.to_string(),
        db_queries,
        db_queries_per_second: db_queries
            .filter(|_| seconds > 0.0)
            .map(|queries| queries / seconds),
        changed: run.nonzero().into_iter().take(CHANGED_ROWS).collect(),
    }
}

/// The app's cache pool counts hits and misses per node (`cache_pool_hits_total{node=…}`).
fn pool_hits(run: &Page) -> BTreeMap<String, Hits> {
    let mut nodes: BTreeMap<String, Hits> = BTreeMap::new();
    for (node, hits) in run.sum_by("cache_pool_hits_total", "node") {
        nodes.entry(node).or_default().hits += hits;
    }
    for (node, misses) in run.sum_by("cache_pool_misses_total", "node") {
        nodes.entry(node).or_default().misses += misses;
    }
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keyspace_hits_from_info() {
        let info =
            "# Stats\r\ntotal_connections_received:3\r\nkeyspace_hits:42\r\nkeyspace_misses:8\r\n";
        assert_eq!(
            parse_info_hits(info),
            Some(Hits {
                hits: 42.0,
                misses: 8.0
            })
        );
        assert_eq!(parse_info_hits("# Stats\r\n"), None);
    }

    #[test]
    fn the_proxy_hit_ratio_is_hits_over_all_and_stale_answers_count_as_served_from_cache() {
        let run = Page::parse(
            "proxy_requests_total{cache_status=\"hit\",route=\"app\"} 70\n\
             proxy_requests_total{cache_status=\"stale\",route=\"app\"} 10\n\
             proxy_requests_total{cache_status=\"miss\",route=\"app\"} 15\n\
             proxy_requests_total{cache_status=\"pass\",route=\"app\"} 5\n\
             proxy_bytes_total{direction=\"out\"} 1000\n",
        )
        .unwrap();
        let tier = proxy_tier(&Url::parse("http://admin/metrics").unwrap(), &run);
        assert_eq!(tier.family.as_deref(), Some("proxy_requests_total"));
        assert_eq!(tier.by_cache_status["HIT"], 70.0);
        assert_eq!(tier.hit_ratio, Some(0.7));
        assert_eq!(tier.served_from_cache, Some(0.8));
    }

    /// The `prometheus-parse` crate this once used dropped every sample whose label value held
    /// a `}`, so the app's requests to `/posts/{slug}` vanished from the report.
    #[test]
    fn app_counters_under_route_patterns_with_braces_are_kept() {
        let run = Page::parse(
            "app_http_requests_total{method=\"GET\",route=\"/posts/{slug}\",status=\"200\"} 40\n\
             app_http_requests_total{method=\"GET\",route=\"/\",status=\"200\"} 10\n\
             app_db_queries_total 7\n",
        )
        .unwrap();
        let tier = app_tier(&Url::parse("http://app/metrics").unwrap(), &run, 1.0);
        assert_eq!(tier.db_queries, Some(7.0));
        assert_eq!(
            tier.changed[0],
            (
                "app_http_requests_total{method=\"GET\",route=\"/posts/{slug}\",status=\"200\"}"
                    .to_owned(),
                40.0
            )
        );
    }

    #[test]
    fn pool_hits_are_summed_per_node() {
        let run = Page::parse(
            "cache_pool_hits_total{node=\"a\"} 9\ncache_pool_misses_total{node=\"a\"} 1\n\
             cache_pool_misses_total{node=\"b\"} 4\n",
        )
        .unwrap();
        let nodes = pool_hits(&run);
        assert_eq!(nodes["a"].ratio(), Some(0.9));
        assert_eq!(nodes["b"].ratio(), Some(0.0));
    }
}
