//! The `observability` compose profile's files (deploy/observability/): Prometheus scrapes
//! every service where docker-compose.yml runs it, Grafana is provisioned with that Prometheus
//! and the dashboard, and every metric the dashboard — or the live view — reads exists in the
//! services' real `/metrics` output.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use promql_parser::parser::Expr;
use promql_parser::util::{ExprVisitor, walk_expr};
use serde_json::Value;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn observability(path: &str) -> PathBuf {
    repository().join("deploy/observability").join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A YAML file as JSON, with aliases resolved and `<<` merge keys applied.
fn yaml(path: &Path) -> Value {
    let mut value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
    value.apply_merge().unwrap();
    serde_json::to_value(value).unwrap()
}

fn dashboard() -> Value {
    let path = observability("grafana/dashboards/leanstack.json");
    serde_json::from_str(&read(&path))
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

/// Every PromQL expression of the dashboard, with its panel's title.
fn expressions(dashboard: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or_default().to_owned();
            let expr = target["expr"].as_str().unwrap_or_default().to_owned();
            found.push((title, expr));
        }
    }
    found
}

/// The metric names a PromQL expression reads, from its syntax tree; an expression Prometheus
/// would refuse is an error. Grafana's `$__rate_interval` is given a value first.
fn metric_names(expr: &str) -> Result<BTreeSet<String>, String> {
    struct Selectors(BTreeSet<String>);
    impl ExprVisitor for Selectors {
        type Error = std::convert::Infallible;
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Self::Error> {
            let selector = match expr {
                Expr::VectorSelector(selector) => Some(selector),
                Expr::MatrixSelector(matrix) => Some(&matrix.vs),
                _ => None,
            };
            if let Some(name) = selector.and_then(|selector| selector.name.clone()) {
                self.0.insert(name);
            }
            Ok(true)
        }
    }
    let expr = promql_parser::parser::parse(&expr.replace("$__rate_interval", "1m"))?;
    let mut selectors = Selectors(BTreeSet::new());
    let Ok(_) = walk_expr(&mut selectors, &expr);
    Ok(selectors.0)
}

#[test]
fn promql_metric_names_come_from_the_syntax_tree() {
    let names = metric_names(
        r#"sum by (le, instance) (rate(app_http_request_duration_seconds_bucket{status=~"5..", x="a}b"}[$__rate_interval])) / sum(up) > bool 0"#,
    )
    .unwrap();
    assert_eq!(
        names,
        BTreeSet::from([
            "app_http_request_duration_seconds_bucket".to_owned(),
            "up".to_owned()
        ])
    );
    assert!(
        metric_names("rate(app_db_queries_total)").is_err(),
        "rate needs a range"
    );
    assert!(metric_names("sum(rate(x[1m])").is_err());
}

#[test]
fn prometheus_scrapes_every_service_where_compose_runs_it() {
    let prometheus = yaml(&observability("prometheus.yml"));
    let compose = yaml(&repository().join("docker-compose.yml"));
    let services = compose["services"].as_object().expect("compose services");
    let proxy_policy = proxy::Config::load(&repository().join("deploy/proxy.toml"))
        .expect("deploy/proxy.toml is valid");

    let mut jobs = BTreeSet::new();
    for job in prometheus["scrape_configs"]
        .as_array()
        .expect("scrape_configs")
    {
        let name = job["job_name"].as_str().expect("a job name");
        jobs.insert(name.to_owned());
        for target in job["static_configs"][0]["targets"].as_array().unwrap() {
            let target = target.as_str().unwrap();
            if name == "prometheus" {
                assert_eq!(target, "localhost:9090");
                continue;
            }
            let (host, port) = target.rsplit_once(':').unwrap();
            let service = services
                .get(host)
                .unwrap_or_else(|| panic!("{target}: no `{host}` service in docker-compose.yml"));
            let listens = if host == "proxy" {
                proxy_policy
                    .admin_listen
                    .is_some_and(|addr| addr.port().to_string() == port)
            } else {
                // Its command line or environment names the port it listens on.
                service.to_string().contains(&format!(":{port}"))
            };
            assert!(
                listens,
                "{target}: `{host}` does not listen on {port}: {service:#}"
            );
        }
        assert!(
            job["relabel_configs"].is_null() || job["relabel_configs"].is_array(),
            "{name}: relabel_configs is a list (YAML aliases resolved)"
        );
    }
    assert_eq!(
        jobs,
        BTreeSet::from(["proxy", "app", "cache", "doorbell", "prometheus"].map(str::to_owned))
    );
    for app in ["app-1", "app-2", "app-3"] {
        assert!(services.contains_key(app), "{app} in docker-compose.yml");
    }
}

#[test]
fn grafana_is_provisioned_with_prometheus_and_the_dashboard() {
    let datasources = yaml(&observability(
        "grafana/provisioning/datasources/prometheus.yml",
    ));
    let datasource = &datasources["datasources"][0];
    assert_eq!(datasource["type"], "prometheus");
    assert_eq!(datasource["url"], "http://prometheus:9090");
    let uid = datasource["uid"].as_str().unwrap();

    let providers = yaml(&observability(
        "grafana/provisioning/dashboards/leanstack.yml",
    ));
    let provider = &providers["providers"][0];
    assert_eq!(provider["type"], "file");
    assert_eq!(
        provider["options"]["path"], "/var/lib/grafana/dashboards",
        "where the compose file mounts deploy/observability/grafana/dashboards"
    );

    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "leanstack-tiers");
    let panels = dashboard["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap();
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "{title}: duplicate id"
        );
        let grid = &panel["gridPos"];
        let (x, y, w, h) = ["x", "y", "w", "h"]
            .map(|k| grid[k].as_u64().unwrap())
            .into();
        assert!(x + w <= 24, "{title}: wider than the grid");
        for column in x..x + w {
            for row in y..y + h {
                assert!(
                    cells.insert((column, row)),
                    "{title}: overlaps another panel"
                );
            }
        }
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], uid,
            "{title}: the provisioned data source"
        );
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], uid, "{title}");
            assert!(
                target["expr"].as_str().is_some_and(|e| !e.is_empty()),
                "{title}"
            );
        }
    }
    let titles: Vec<&str> = panels
        .iter()
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for tier in ["Proxy", "App", "Cache", "Database", "Doorbell"] {
        assert!(
            titles.iter().any(|t| t.contains(tier)),
            "a row for the {tier} tier: {titles:?}"
        );
    }
}

/// Every metric name on a `/metrics` page: its samples, and the names its `# TYPE` lines
/// promise (a labelled family shows no sample until its first event).
fn names_on(page: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in page.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let mut words = declared.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|suffix| format!("{name}{suffix}")));
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let end = line
                .find(|c: char| c == '{' || c.is_whitespace())
                .unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_metric_read_exists_in_the_services_output() {
    let stack = common::Stack::start().await;
    // Events that make every labelled family show its first series.
    assert!(stack.load(50, 4).await > 0);
    stack.ring_nobody_home().await;
    stack.forged_webhook().await;

    // Prometheus's own series for each target.
    let mut exposed = BTreeSet::from(["up".to_owned()]);
    for url in stack.metrics_urls() {
        let page = reqwest::get(&url).await.unwrap().text().await.unwrap();
        let names = names_on(&page);
        assert!(!names.is_empty(), "{url} shows no metrics");
        exposed.extend(names);
    }

    let dashboard = dashboard();
    for (title, expr) in expressions(&dashboard) {
        let names =
            metric_names(&expr).unwrap_or_else(|e| panic!("panel `{title}`: `{expr}`: {e}"));
        assert!(!names.is_empty(), "{title}: `{expr}` reads no metric");
        for name in names {
            assert!(
                exposed.contains(&name),
                "panel `{title}` reads `{name}`, which no service exposes"
            );
        }
    }

    use stackview::names::{app, doorbell, proxy};
    for name in [
        proxy::REQUESTS,
        proxy::BACKEND_REQUESTS,
        proxy::STORE_OBJECTS,
        proxy::STORE_BYTES,
        app::REQUESTS,
        app::DB_QUERIES,
        app::DB_ERRORS,
        app::POOL_HITS,
        app::POOL_MISSES,
        app::POOL_ERRORS,
        doorbell::CALL_OUTCOMES,
        doorbell::WEBHOOKS_REFUSED,
    ] {
        assert!(
            exposed.contains(name),
            "the live view reads `{name}`, which no service exposes"
        );
    }
}
