//! The load generator against the real tiers: a fresh PostgreSQL database, migrated and seeded
//! with the app's own functions, a real cache node, app instances on port 0 and, for the whole
//! path, the proxy in front of them. What the report says is checked against the database and
//! the tiers' own counters.

use std::future::pending;
use std::time::Duration;

use app::seed::SeedConfig;
use cache::pool::PoolConfig;
use clap::Parser;
use loadtest::{Config, Report};
use sqlx::PgPool;
use testkit::{Spawned, TestDatabase};

const SEEDED: SeedConfig = SeedConfig {
    users: 5,
    posts: 40,
    comments: 60,
    seed: 7,
};

/// A seeded database, one cache node and app instances sharing them.
struct Stack {
    _database: TestDatabase,
    pool: PgPool,
    node: Spawned<std::io::Error>,
    apps: Vec<Spawned<std::io::Error>>,
}

impl Stack {
    /// Starts `instances` app servers; they send purges to `proxy_admin_url` when given.
    async fn start(instances: &[&str], proxy_admin_url: Option<String>) -> Stack {
        let database = testkit::fresh_database().await;
        let pool = database.pool().await;
        app::MIGRATOR.run(&pool).await.expect("migrations apply");
        app::seed::seed(&pool, SEEDED).await.expect("seeding works");
        let node = testkit::spawn(|listener, shutdown| {
            cache::node::run(
                cache::node::Listeners {
                    resp: listener,
                    memcache: None,
                    metrics: None,
                },
                cache::node::Config::default(),
                shutdown,
            )
        })
        .await;
        let mut apps = Vec::new();
        for instance in instances {
            let mut cache = PoolConfig::from_nodes_arg(&node.addr.to_string()).expect("one node");
            // A loaded test machine must not turn a slow cache answer into a miss.
            cache.op_timeout = Duration::from_secs(2);
            let config = app::Config {
                database: pool.clone(),
                cache,
                instance_name: (*instance).to_owned(),
                proxy_admin_url: proxy_admin_url.clone(),
            };
            let spawned = testkit::spawn(|listener, shutdown| app::run(listener, config, shutdown))
                .await
                .ready("/healthz")
                .await;
            apps.push(spawned);
        }
        Stack {
            _database: database,
            pool,
            node,
            apps,
        }
    }

    /// The load generator's flags for reading every tier's numbers.
    fn tier_flags(&self) -> Vec<String> {
        let mut flags = vec!["--cache-node".to_owned(), self.node.addr.to_string()];
        for app in &self.apps {
            flags.extend(["--metrics".to_owned(), format!("{}/metrics", app.url())]);
        }
        flags
    }

    async fn comments_in_database(&self) -> u64 {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM comments")
            .fetch_one(&self.pool)
            .await
            .expect("comments can be counted");
        u64::try_from(count).expect("a count is not negative")
    }
}

/// A closed-loop run of `requests` with a logged-in share large enough to post comments.
async fn load(target: &str, requests: u64, extra: Vec<String>) -> Report {
    let dir = tempfile::TempDir::new().unwrap();
    let mut argv: Vec<String> = [
        "loadtest",
        "--target",
        target,
        "--no-progress",
        "--users",
        "4",
        "--logged-in-share",
        "0.2",
        "--comment-share",
        "0.2",
        "--accounts",
        "2",
    ]
    .map(str::to_owned)
    .into();
    argv.extend(["--requests".into(), requests.to_string()]);
    argv.extend([
        "--report-html".into(),
        dir.path().join("report.html").display().to_string(),
    ]);
    argv.extend(extra);
    let config = Config::try_parse_from(argv).expect("the test's flags parse");
    let report = loadtest::run(config, pending())
        .await
        .expect("the run works");
    assert_eq!(report.requests, requests);
    assert_eq!(report.errors, 0, "{report}");
    assert!(report.notes.is_empty(), "{:?}", report.notes);
    assert!(
        report.tiers.problems.is_empty(),
        "{:?}",
        report.tiers.problems
    );
    report
}

fn comments_posted(report: &Report) -> u64 {
    report
        .kinds
        .iter()
        .filter(|row| row.kind.name() == "comment")
        .map(|row| row.requests)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drives_the_app_through_its_forms_api_and_cache_pool() {
    let stack = Stack::start(&["app-1"], None).await;
    let requests = 400;
    let report = load(&stack.apps[0].url(), requests, stack.tier_flags()).await;

    // Every comment the report counts is in the database.
    let posted = comments_posted(&report);
    assert!(posted > 0, "{report}");
    assert_eq!(
        stack.comments_in_database().await,
        u64::from(SEEDED.comments) + posted
    );

    // No proxy: every answer came from the one instance.
    assert_eq!(report.balance.by_instance["app-1"], requests);
    // The cache pool spares the database most page reads…
    let db = &report.database;
    assert!(db.reached_database > 0, "{report}");
    assert!(db.reached_database < db.page_reads, "{report}");
    // …and the app's own count covers at least the queries its headers named.
    let app_queries = report.tiers.apps[0]
        .db_queries
        .expect("the app counts queries");
    assert!(app_queries >= db.queries as f64, "{report}");
    // The node answered INFO, and the pool's view of it agrees there were hits.
    assert!(report.tiers.cache_nodes[0].hits > 0.0, "{report}");
    assert!(
        report.tiers.pool_nodes[0]
            .hit_ratio
            .is_some_and(|ratio| ratio > 0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drives_the_whole_path_through_the_proxy() {
    let admin = testkit::bind_port_0().await;
    let admin_url = format!("http://{}", admin.local_addr().unwrap());
    let stack = Stack::start(&["app-1", "app-2"], Some(admin_url.clone())).await;
    let mut config =
        proxy::Config::for_backends(stack.apps.iter().map(|app| app.addr.to_string()).collect());
    // The demo policy: logged-in readers skip the cache.
    config.routes[0].bypass_cookies = vec!["leanstack_session".into()];
    let listener = testkit::bind_port_0().await;
    let target = format!("http://{}", listener.local_addr().unwrap());
    let proxy = proxy::Proxy::new(config).await;
    tokio::spawn(proxy.serve(listener, Some(admin), pending()));
    testkit::wait_for_http(&format!("{admin_url}/metrics")).await;

    let mut flags = stack.tier_flags();
    flags.extend(["--proxy-admin".to_owned(), admin_url]);
    let requests = 600;
    let report = load(&target, requests, flags).await;

    // The proxy answered most anonymous reads from its cache, and said so both ways.
    let proxy = report.tiers.proxy.as_ref().expect("the proxy was read");
    assert_eq!(proxy.family.as_deref(), Some("proxy_requests_total"));
    assert!(proxy.hit_ratio.is_some_and(|ratio| ratio > 0.3), "{report}");
    let seen_hits = report.cache_statuses.get("HIT").copied().unwrap_or(0);
    assert!(seen_hits > 0, "{report}");
    assert!(
        proxy.by_cache_status.get("BYPASS").copied().unwrap_or(0.0) > 0.0,
        "logged-in users bypass the cache: {report}"
    );
    // Both instances took requests; the cache's hits reached neither.
    assert_eq!(
        report.balance.by_instance.keys().collect::<Vec<_>>(),
        ["app-1", "app-2"]
    );
    let reached_apps: u64 = report.balance.by_instance.values().sum();
    assert_eq!(
        reached_apps + seen_hits + report.cache_statuses.get("STALE").copied().unwrap_or(0),
        requests
    );
    // Fewer page reads reached the database than reached an app.
    let db = &report.database;
    assert!(db.reached_database < db.reached_app, "{report}");
    let posted = comments_posted(&report);
    assert_eq!(
        stack.comments_in_database().await,
        u64::from(SEEDED.comments) + posted
    );
}
