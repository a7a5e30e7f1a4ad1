//! Whole runs of the load generator over real HTTP on loopback, against the scripted site of
//! `support`, which counts what it served so each test compares the report with the truth.
//! Assertions are on counts (proportions within binomial tolerances, exact totals), never on
//! how fast anything was.

mod support;

use std::future::pending;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Parser;
use loadtest::{Config, Error, Report};
use support::{POSTS, Site, slug};
use tempfile::TempDir;
use testkit::Spawned;

/// `site` served on port 0, and a directory for the reports of the runs against it.
async fn scripted(site: Site) -> (Arc<Site>, Spawned<std::io::Error>, TempDir) {
    let site = Arc::new(site);
    let server = support::serve(site.clone()).await;
    (site, server, TempDir::new().unwrap())
}

/// A run against `url` with the report written under `dir`, plus `args`.
async fn run(url: &str, dir: &TempDir, args: &[&str]) -> Result<Report, Error> {
    let html = dir.path().join("report.html");
    let mut argv = vec![
        "loadtest".to_owned(),
        "--target".into(),
        url.to_owned(),
        "--no-progress".into(),
        "--report-html".into(),
        html.display().to_string(),
    ];
    argv.extend(args.iter().map(|arg| (*arg).to_owned()));
    let config = Config::try_parse_from(argv).expect("the test's flags parse");
    loadtest::run(config, pending()).await
}

/// Asserts `count` of `total` draws is within five standard deviations of share `p`.
fn assert_share(what: &str, count: u64, total: u64, p: f64) {
    let expected = p * total as f64;
    let sigma = (total as f64 * p * (1.0 - p)).sqrt();
    assert!(
        (count as f64 - expected).abs() <= 5.0 * sigma + 1.0,
        "{what}: {count} of {total}, expected about {expected:.0} (±{:.0})",
        5.0 * sigma
    );
}

fn sum_where(reads: &std::collections::BTreeMap<String, u64>, keep: impl Fn(&str) -> bool) -> u64 {
    reads
        .iter()
        .filter(|(path, _)| keep(path))
        .map(|(_, count)| count)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mix_follows_the_configured_proportions() {
    let (site, server, dir) = scripted(Site::default()).await;
    let accounts = 4;
    let report = run(
        &server.url(),
        &dir,
        &[
            "--users",
            "8",
            "--requests",
            "4000",
            "--accounts",
            "4",
            "--comment-share",
            "0",
        ],
    )
    .await
    .unwrap();
    assert_eq!((report.requests, report.errors), (4000, 0));

    let anonymous = site.reads(false);
    let logged_in = site.reads(true);
    // Each account read one post page while learning the comment form.
    let logged_in_total = sum_where(&logged_in, |_| true) - accounts;
    let total = sum_where(&anonymous, |_| true) + logged_in_total;
    assert_eq!(total, 4000, "the site saw every request");
    assert_share("logged-in", logged_in_total, total, 0.05);
    let front = sum_where(&anonymous, |p| p == "/") + sum_where(&logged_in, |p| p == "/");
    assert_share("front page", front, total, 0.15);
    let tags = sum_where(&anonymous, |p| p.starts_with("/tags/"))
        + sum_where(&logged_in, |p| p.starts_with("/tags/"));
    assert_share("tag pages", tags, total, 0.10);
    assert_share("post pages", total - front - tags, total, 0.75);

    let reported_logged_in: u64 = report
        .kinds
        .iter()
        .filter(|row| row.logged_in)
        .map(|row| row.requests)
        .sum();
    assert_eq!(reported_logged_in, logged_in_total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_popularity_is_zipf_skewed_in_the_order_the_site_lists_posts() {
    let (site, server, dir) = scripted(Site::default()).await;
    let draws = 6000;
    let report = run(
        &server.url(),
        &dir,
        &[
            "--users",
            "8",
            "--requests",
            "6000",
            "--logged-in-share",
            "0",
            "--front-share",
            "0",
            "--tag-share",
            "0",
        ],
    )
    .await
    .unwrap();
    assert_eq!(report.requests, draws);

    let reads = site.reads(false);
    let count = |rank: usize| {
        reads
            .get(&format!("/posts/{}", slug(rank)))
            .copied()
            .unwrap_or(0)
    };
    let harmonic: f64 = (1..=POSTS).map(|k| (k as f64).powf(-1.1)).sum();
    for rank in [0, 1, 2, 9] {
        let p = ((rank + 1) as f64).powf(-1.1) / harmonic;
        assert_share(&format!("rank {rank}"), count(rank), draws, p);
    }
    // The skew: the top 10% of posts draw about half of the reads.
    let top: u64 = (0..POSTS / 10).map(count).sum();
    assert!(
        top * 2 > draws * 9 / 10,
        "top 10% drew only {top} of {draws}"
    );
    assert!(count(0) > count(5) && count(5) > count(50));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_in_users_sign_up_through_the_forms_and_post_comments() {
    let (site, server, dir) = scripted(Site::default()).await;
    let args = [
        "--users",
        "4",
        "--requests",
        "400",
        "--accounts",
        "3",
        "--logged-in-share",
        "1",
        "--comment-share",
        "0.25",
    ];
    let report = run(&server.url(), &dir, &args).await.unwrap();
    assert_eq!(report.errors, 0, "{report}");
    assert!(report.notes.is_empty(), "{:?}", report.notes);
    assert_eq!(site.signups.load(Ordering::Relaxed), 3);
    assert_eq!(site.refused.load(Ordering::Relaxed), 0);
    let comments = site.comments.load(Ordering::Relaxed);
    assert_share("comments", comments, 400, 0.25);
    let reported = report
        .kinds
        .iter()
        .find(|row| row.kind.name() == "comment")
        .map_or(0, |row| row.requests);
    assert_eq!(reported, comments);
    assert!(
        site.reads(false).is_empty(),
        "every read carried the session"
    );

    // The accounts exist now: a second run logs them in instead.
    let report = run(&server.url(), &dir, &args).await.unwrap();
    assert_eq!(report.errors, 0);
    assert_eq!(site.signups.load(Ordering::Relaxed), 3);
    assert_eq!(site.logins.load(Ordering::Relaxed), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_schedules_rate_times_duration_requests() {
    let (site, server, dir) = scripted(Site::default()).await;
    let report = run(
        &server.url(),
        &dir,
        &[
            "--rate",
            "400",
            "--duration",
            "1500ms",
            "--logged-in-share",
            "0",
        ],
    )
    .await
    .unwrap();
    assert_eq!(report.requests, 600);
    assert_eq!(sum_where(&site.reads(false), |_| true), 600);
    let due: Vec<u64> = report.timeline.iter().map(|second| second.due).collect();
    assert_eq!(due[..2], [400, 200], "due per second: {due:?}");
    assert!(due[2..].iter().all(|&n| n == 0));

    let report = run(
        &server.url(),
        &dir,
        &[
            "--rate",
            "1000",
            "--requests",
            "50",
            "--duration",
            "10s",
            "--logged-in-share",
            "0",
        ],
    )
    .await
    .unwrap();
    assert_eq!(report.requests, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_latency_includes_time_spent_behind_a_stalled_server() {
    let site = Site::default();
    site.stall_post_read(20, Duration::from_millis(500));
    let (_, server, dir) = scripted(site).await;
    // One request at a time: while the stalled one is out, the requests due meanwhile cannot
    // be sent — the situation in which a naive generator omits them from its numbers.
    let report = run(
        &server.url(),
        &dir,
        &[
            "--rate",
            "200",
            "--requests",
            "200",
            "--max-in-flight",
            "1",
            "--logged-in-share",
            "0",
            "--front-share",
            "0",
            "--tag-share",
            "0",
        ],
    )
    .await
    .unwrap();
    assert_eq!((report.requests, report.errors), (200, 0));
    // About 100 requests were due during the 500 ms stall; those due in its first half waited
    // at least 250 ms, which is a quarter of the run: the p90 latency must show it.
    assert!(report.latency.p90_ms >= 250.0, "{report}");
    // Counting from the actual send, only the stalled request itself was slow.
    assert!(
        report.service_time.p90_ms * 2.0 < report.latency.p90_ms,
        "{report}"
    );
    assert!(report.service_time.max_ms >= 500.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_stops_at_the_request_bound_or_the_duration_bound() {
    let (site, server, dir) = scripted(Site::default()).await;
    let report = run(
        &server.url(),
        &dir,
        &[
            "--users",
            "8",
            "--requests",
            "123",
            "--logged-in-share",
            "0",
        ],
    )
    .await
    .unwrap();
    assert_eq!(report.requests, 123);
    assert_eq!(sum_where(&site.reads(false), |_| true), 123);

    let report = run(
        &server.url(),
        &dir,
        &[
            "--users",
            "2",
            "--duration",
            "300ms",
            "--logged-in-share",
            "0",
        ],
    )
    .await
    .unwrap();
    assert!(report.requests > 0);
    assert!(report.elapsed_seconds >= 0.3);
    assert_eq!(
        sum_where(&site.reads(false), |_| true),
        123 + report.requests
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_files_hold_the_run_and_every_tier() {
    let (_, server, dir) = scripted(Site::default()).await;
    let url = server.url();
    let json_path = dir.path().join("report.json");
    let report = run(
        &url,
        &dir,
        &[
            "--users",
            "4",
            "--requests",
            "500",
            "--report-json",
            json_path.to_str().unwrap(),
            "--proxy-admin",
            &url,
            "--metrics",
            &format!("{url}/app/metrics"),
            "--cache-node",
            &format!("{url}/cache/metrics"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(report.requests, 500);

    // The proxy's own count during the run matches what the generator saw in X-Cache.
    let proxy = report.tiers.proxy.as_ref().expect("the proxy was read");
    assert_eq!(proxy.family.as_deref(), Some("proxy_requests_total"));
    let seen_hits = report.cache_statuses["HIT"];
    assert_eq!(proxy.by_cache_status["HIT"], seen_hits as f64);
    let proxy_total: f64 = proxy.by_cache_status.values().sum();
    assert_eq!(proxy.hit_ratio, Some(seen_hits as f64 / proxy_total));

    // Only answers an app built count per instance and for the database.
    let built = report.cache_statuses["MISS"] + report.cache_statuses["PASS"];
    let per_instance: u64 = report.balance.by_instance.values().sum();
    assert!(built > 0);
    assert_eq!(per_instance, built);
    assert_eq!(
        report.balance.by_instance.keys().collect::<Vec<_>>(),
        ["app-1", "app-2"]
    );
    let db = &report.database;
    assert!(db.reached_database > 0 && db.reached_database <= built);
    assert_eq!(db.queries, 2 * db.reached_database);
    assert_eq!(report.tiers.apps[0].db_queries, Some(db.queries as f64));
    assert_eq!(report.tiers.pool_nodes[0].hit_ratio, Some(0.75));
    assert_eq!(report.tiers.cache_nodes[0].hit_ratio, Some(0.9));
    assert!(
        report.tiers.problems.is_empty(),
        "{:?}",
        report.tiers.problems
    );

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(json["requests"], 500);
    assert_eq!(json["database"]["reached_database"], db.reached_database);
    assert_eq!(
        json["tiers"]["proxy"]["by_cache_status"]["HIT"],
        seen_hits as f64
    );

    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 2);
    for expected in [
        "Requests per second",
        "<td>500</td>",
        "app-1",
        "proxy_requests_total",
        "75.0%",
        "90.0%",
        &format!("{:.2} ms", report.latency.p99_ms),
    ] {
        assert!(html.contains(expected), "the HTML report lacks {expected}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_error_and_unreadable_tiers_only_a_note() {
    let empty = support::serve(Arc::new(Site::empty())).await;
    let dir = TempDir::new().unwrap();
    let error = run(&empty.url(), &dir, &["--requests", "10"])
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Discovery { .. }), "{error}");
    assert!(error.to_string().contains("listed no posts"), "{error}");

    let site = support::serve(Arc::new(Site::default())).await;
    let error = run(
        &site.url(),
        &dir,
        &["--front-share", "0.9", "--tag-share", "0.5"],
    )
    .await
    .unwrap_err();
    assert!(matches!(error, Error::Config(_)), "{error}");

    // A closed port for the proxy's admin listener: the run goes on and says what it missed.
    let closed = testkit::bind_port_0().await;
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let report = run(
        &site.url(),
        &dir,
        &[
            "--requests",
            "20",
            "--logged-in-share",
            "0",
            "--proxy-admin",
            &closed_url,
        ],
    )
    .await
    .unwrap();
    assert_eq!(report.requests, 20);
    assert!(report.tiers.proxy.is_none());
    assert_eq!(
        report.tiers.problems.len(),
        1,
        "{:?}",
        report.tiers.problems
    );
}
