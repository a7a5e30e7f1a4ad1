//! The `observability` profile against the live stack: Prometheus scrapes every service, and
//! every query of the Grafana dashboard evaluates against what it scraped. Grafana itself is not
//! started: it has no Debian package to build a stand-in image from (deploy/README.md).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use tokio::time::sleep;

use crate::compose::Compose;

/// The dashboard the profile provisions into Grafana.
const DASHBOARD: &str = "deploy/observability/grafana/dashboards/leanstack.json";
/// Long enough for Prometheus (scrape_interval 5s) to find every target up and scrape it thrice.
const SCRAPES: Duration = Duration::from_secs(90);
/// What Grafana substitutes for `$__rate_interval` at a 5 s scrape interval (4 × the interval).
const RATE_INTERVAL: &str = "20s";
/// The tiers, by metric prefix; each must have at least one dashboard panel showing data.
const TIERS: &[&str] = &["proxy_", "app_", "cache_pool_", "cache_", "doorbell_"];

pub async fn prometheus_sees_every_tier(compose: &Compose, prometheus: &str) -> Result<String> {
    compose.run(&["--profile", "observability", "up", "-d", "prometheus"])?;
    compose.wait_healthy(&["prometheus"], Duration::from_secs(60))?;
    let api = Api {
        client: reqwest::Client::new(),
        base: prometheus.to_owned(),
    };
    let deadline = Instant::now() + SCRAPES;
    let targets = loop {
        let (up, down) = api.targets().await?;
        if down.is_empty() && !up.is_empty() {
            break up;
        }
        if Instant::now() > deadline {
            bail!(
                "targets not scraped within {SCRAPES:?}: {}",
                down.join(", ")
            );
        }
        sleep(Duration::from_secs(1)).await;
    };

    // Rates need two samples in their window: wait until every target has been scraped that
    // often, so that a query without data means nothing of its kind happened.
    let scraped_enough = format!("min(count_over_time(up[{RATE_INTERVAL}])) >= 3");
    while !api.query(&scraped_enough).await? {
        if Instant::now() > deadline {
            bail!("Prometheus did not scrape every target 3 times within {SCRAPES:?}");
        }
        sleep(Duration::from_secs(1)).await;
    }

    let exprs = dashboard_queries(&std::fs::read(compose.root().join(DASHBOARD))?)?;
    let mut empty = Vec::new();
    let mut tiers_without_data: BTreeSet<&str> = TIERS.iter().copied().collect();
    for expr in &exprs {
        if api.query(expr).await? {
            tiers_without_data.retain(|tier| tier_of(expr) != Some(tier));
        } else {
            empty.push(expr.clone());
        }
    }
    ensure!(
        tiers_without_data.is_empty(),
        "no dashboard panel of {tiers_without_data:?} shows data; empty queries: {empty:#?}"
    );
    Ok(format!(
        "{} targets up ({}); all {} dashboard queries evaluate, {} with data{}",
        targets.len(),
        targets.join(" "),
        exprs.len(),
        exprs.len() - empty.len(),
        if empty.is_empty() {
            String::new()
        } else {
            format!(" (nothing of the kind happened for: {})", empty.join("; "))
        }
    ))
}

/// The tier whose metrics a query reads: the longest prefix of [`TIERS`] its first metric has.
fn tier_of(expr: &str) -> Option<&'static str> {
    TIERS
        .iter()
        .filter_map(|tier| expr.find(tier).map(|at| (at, tier.len(), *tier)))
        .min_by_key(|&(at, len, _)| (at, std::cmp::Reverse(len)))
        .map(|(_, _, tier)| tier)
}

/// Every PromQL expression of the dashboard's panels, nested rows included, as Grafana sends it.
fn dashboard_queries(json: &[u8]) -> Result<Vec<String>> {
    fn collect(panels: &Value, into: &mut Vec<String>) {
        for panel in panels.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    into.push(expr.replace("$__rate_interval", RATE_INTERVAL));
                }
            }
            collect(&panel["panels"], into);
        }
    }
    let dashboard: Value = serde_json::from_slice(json).context("parsing the dashboard")?;
    let mut exprs = Vec::new();
    collect(&dashboard["panels"], &mut exprs);
    ensure!(!exprs.is_empty(), "the dashboard has no queries");
    Ok(exprs)
}

/// Prometheus's HTTP API.
struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    /// The scrape targets that are up (by job and instance), and those that are not, with why.
    async fn targets(&self) -> Result<(Vec<String>, Vec<String>)> {
        let body: Value = self
            .client
            .get(format!("{}/api/v1/targets", self.base))
            .send()
            .await?
            .json()
            .await?;
        let (mut up, mut down) = (Vec::new(), Vec::new());
        for target in body["data"]["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = format!(
                "{}/{}",
                target["labels"]["job"].as_str().unwrap_or("?"),
                target["labels"]["instance"].as_str().unwrap_or("?")
            );
            match target["health"].as_str() {
                Some("up") => up.push(name),
                health => down.push(format!(
                    "{name} {} {}",
                    health.unwrap_or("?"),
                    target["lastError"].as_str().unwrap_or("")
                )),
            }
        }
        Ok((up, down))
    }

    /// Evaluates an instant query: whether it returned any sample; an error reply fails.
    async fn query(&self, expr: &str) -> Result<bool> {
        let body: Value = self
            .client
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", expr)])
            .send()
            .await?
            .json()
            .await?;
        ensure!(
            body["status"] == "success",
            "Prometheus refused the dashboard query {expr}: {}",
            body["error"]
        );
        Ok(body["data"]["result"]
            .as_array()
            .is_some_and(|result| !result.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_belongs_to_the_tier_of_its_first_metric() {
        assert_eq!(
            tier_of("sum(rate(cache_pool_hits_total[20s]))"),
            Some("cache_pool_")
        );
        assert_eq!(tier_of("cache_items"), Some("cache_"));
        assert_eq!(
            tier_of("sum(rate(app_db_queries_total[1m])) / sum(rate(proxy_requests_total[1m]))"),
            Some("app_")
        );
        assert_eq!(tier_of("sum(up) / count(up)"), None);
    }

    #[test]
    fn every_panel_query_is_found_with_grafana_variables_replaced() {
        let dashboard = br#"{"panels": [
            {"targets": [{"expr": "rate(proxy_requests_total[$__rate_interval])"}]},
            {"type": "row", "panels": [{"targets": [{"expr": "cache_items"}, {"refId": "B"}]}]}
        ]}"#;
        assert_eq!(
            dashboard_queries(dashboard).unwrap(),
            ["rate(proxy_requests_total[20s])", "cache_items"]
        );
    }
}
