//! `/stack.json` against the real services: every tier read, numbers that follow the traffic,
//! and tiers that cannot be reached drawn as down without breaking anything.

mod common;

use std::time::Duration;

use common::{APPS, CACHE_NODES, Stack, serve_view, snapshot_until};
use serde_json::Value;
use stackview::Sources;

const PATIENCE: Duration = Duration::from_secs(20);

fn up(tier: &Value) -> bool {
    tier["up"] == true
}

fn every_tier_up(snapshot: &Value) -> bool {
    let all_up = |tiers: &Value| tiers.as_array().is_some_and(|tiers| tiers.iter().all(up));
    ["proxy", "doorbell", "database"]
        .iter()
        .all(|tier| up(&snapshot[tier]))
        && all_up(&snapshot["apps"])
        && all_up(&snapshot["caches"])
}

fn number(tier: &Value, field: &str) -> f64 {
    tier["numbers"][field].as_f64().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_tier_is_read_and_its_numbers_follow_the_traffic() {
    let stack = Stack::start().await;
    let view = serve_view(stack.sources()).await;

    // Every tier up, the doorbell found through the proxy, as soon as each answers: one read
    // slower than the view's timeout, while the stack is starting, is a tier seen down once, not
    // a failure.
    let first = snapshot_until(&view, PATIENCE, |s| {
        s["generation"].as_u64() >= Some(2) && every_tier_up(s)
    })
    .await;
    let apps = first["apps"].as_array().unwrap();
    assert_eq!(apps.len(), APPS, "the apps the proxy lists: {first:#}");
    let mut names: Vec<&str> = apps.iter().map(|a| a["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["app-1", "app-2"], "named by their X-Served-By");
    for app in apps {
        assert_eq!(app["in_rotation"], true, "{app:#}");
    }
    let caches = first["caches"].as_array().unwrap();
    assert_eq!(caches.len(), CACHE_NODES);
    assert_eq!(caches[0]["name"], "cache-1");
    let database = &first["database"];
    assert!(number(database, "connections") >= 1.0, "{database:#}");

    // The same post, anonymously, many times: one MISS, then HITs.
    let post = format!("{}/posts/{}", stack.proxy.url(), stack.slugs[0]);
    const READS: usize = 20;
    for _ in 0..READS {
        let response = reqwest::get(&post).await.unwrap();
        assert_eq!(response.status(), 200);
        // Read to the end: a MISS whose client goes away mid-body is not stored.
        response.bytes().await.unwrap();
    }
    stack.ring().await;
    let after = snapshot_until(&view, PATIENCE, |s| {
        number(&s["proxy"], "requests_total") >= (READS + 1) as f64
            && number(&s["doorbell"], "calls_total") >= 1.0
    })
    .await;
    let proxy = &after["proxy"]["numbers"];
    assert_eq!(proxy["requests_total"], (READS + 1) as f64, "{proxy:#}");
    let from_cache = proxy["served_from_cache_total"].as_f64().unwrap();
    let expected = (READS - 1) as f64 / (READS + 1) as f64;
    assert!(
        (from_cache - expected).abs() < 1e-9,
        "{READS} reads of one page, one of them a MISS, and one uncacheable call: {proxy:#}"
    );
    let doorbell = &after["doorbell"]["numbers"];
    assert_eq!(doorbell["calls_total"], 1.0, "{doorbell:#}");

    // A steady load: every arrow carries traffic while it runs.
    let load = stack.load(400, 8);
    let watch = snapshot_until(&view, PATIENCE, |s| {
        number(&s["proxy"], "requests_per_sec") > 0.0
            && s["apps"]
                .as_array()
                .is_some_and(|apps| apps.iter().all(|a| number(a, "proxied_per_sec") > 0.0))
            && s["caches"]
                .as_array()
                .is_some_and(|caches| caches.iter().any(|c| number(c, "app_ops_per_sec") > 0.0))
    });
    let (answered, during) = tokio::join!(load, watch);
    eprintln!(
        "reading every tier took {} ms idle, {} ms under load",
        first["poll_ms"], during["poll_ms"]
    );
    assert_eq!(answered, 400, "every request of the load answered 200");
    // Each app counts at least what the proxy sent it (and the proxy's health checks too).
    let settled = snapshot_until(&view, PATIENCE, |s| {
        s["apps"].as_array().is_some_and(|apps| {
            apps.iter().all(|a| {
                number(a, "proxied_total") > 0.0
                    && number(a, "requests_total") >= number(a, "proxied_total")
            })
        })
    })
    .await;
    for app in settled["apps"].as_array().unwrap() {
        assert!(
            number(app, "requests_total") >= number(app, "proxied_total"),
            "{app:#}"
        );
    }
    let proxy = &during["proxy"]["numbers"];
    assert!(
        proxy["by_cache_status_per_sec"]["BYPASS"]
            .as_f64()
            .is_some(),
        "requests with a session cookie skip the cache: {proxy:#}"
    );
}

#[tokio::test]
async fn tiers_that_cannot_be_reached_are_drawn_down() {
    // Ports nobody listens on: bound, then released.
    let closed = || async {
        let listener = testkit::bind_port_0().await;
        listener.local_addr().unwrap()
    };
    let (admin, node) = (closed().await, closed().await);
    let database = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy(&format!("postgres://nobody@{}/nothing", closed().await))
        .unwrap();
    let sources = Sources::new()
        .proxy_admin(format!("http://{admin}"))
        .cache_nodes([node.to_string()])
        .apps([format!("http://{}", closed().await)])
        .database(database);
    let view = serve_view(sources).await;

    let page = reqwest::get(format!("{}/stack", view.url())).await.unwrap();
    assert_eq!(
        page.status(),
        200,
        "the page is served whatever the tiers do"
    );
    let snapshot = snapshot_until(&view, PATIENCE, |s| s["generation"].as_u64() >= Some(1)).await;
    for tier in [
        &snapshot["proxy"],
        &snapshot["caches"][0],
        &snapshot["apps"][0],
        &snapshot["database"],
    ] {
        assert_eq!(tier["up"], false, "{tier:#}");
        assert!(
            tier["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{tier:#}"
        );
        assert!(tier["numbers"].is_null(), "{tier:#}");
    }
    for tier in [
        &snapshot["proxy"],
        &snapshot["caches"][0],
        &snapshot["apps"][0],
    ] {
        assert_eq!(tier["error"], "cannot connect", "said plainly: {tier:#}");
    }
    assert!(
        snapshot["doorbell"].is_null(),
        "no doorbell source, no doorbell box"
    );
}

#[tokio::test]
async fn a_node_that_stops_goes_down_and_the_others_stay_up() {
    let stack = Stack::start().await;
    let view = serve_view(stack.sources()).await;
    snapshot_until(&view, PATIENCE, |s| {
        s["caches"]
            .as_array()
            .is_some_and(|caches| caches.len() == CACHE_NODES && caches.iter().all(up))
    })
    .await;
    let mut caches = stack.caches;
    let stopped = caches.remove(1);
    stopped.resp.shutdown().await;
    let after = snapshot_until(&view, PATIENCE, |s| s["caches"][1]["up"] == false).await;
    assert!(
        up(&after["caches"][0]) && up(&after["caches"][2]),
        "{after:#}"
    );
    assert!(up(&after["proxy"]), "{after:#}");
}

/// Three app instances each mounting the view must not poll the stack forever: the poller
/// samples only while someone asks for the page or the numbers.
#[tokio::test]
async fn nothing_is_polled_until_someone_looks() {
    let stack = Stack::start().await;
    let node = stack.caches[0].resp.addr;
    let commands = || async move {
        let client = redis::Client::open(format!("redis://{node}")).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query_async(&mut connection)
            .await
            .unwrap();
        info.lines()
            .find_map(|line| line.trim().strip_prefix("total_commands_processed:"))
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let router = stackview::router(stack.sources());
    let before = commands().await;
    // What asking costs: a connection's setup commands and the INFO itself.
    let asking = commands().await - before;
    // Longer than the poll period: an eager poller would have asked INFO by now.
    tokio::time::sleep(stackview::poller::PERIOD * 2).await;
    let idle = commands().await;
    assert_eq!(
        idle - before,
        2 * asking,
        "only this test's own questions ran while nobody looked"
    );

    let view = testkit::spawn(|listener, shutdown| {
        service::http::serve(listener, router, shutdown, Duration::from_secs(1))
    })
    .await;
    let first = snapshot_until(&view, PATIENCE, |s| s["generation"].as_u64() >= Some(1)).await;
    assert_eq!(first["caches"][0]["up"], true, "{first:#}");
    assert!(
        commands().await > idle + asking,
        "the view asked the node for INFO"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cache_nodes_are_found_through_the_apps_when_not_named() {
    let stack = Stack::start().await;
    let mut sources = stack.sources();
    sources.cache_nodes.clear();
    let view = serve_view(sources).await;
    let found = snapshot_until(&view, PATIENCE, |s| {
        s["caches"]
            .as_array()
            .is_some_and(|caches| caches.len() == CACHE_NODES && caches.iter().all(up))
    })
    .await;
    let mut found: Vec<&str> = found["caches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| node["address"].as_str().unwrap())
        .collect();
    found.sort_unstable();
    let mut expected: Vec<String> = stack
        .caches
        .iter()
        .map(|node| node.resp.addr.to_string())
        .collect();
    expected.sort_unstable();
    assert_eq!(found, expected);
}

#[tokio::test]
async fn the_page_needs_nothing_from_elsewhere() {
    let view = serve_view(Sources::new()).await;
    let response = reqwest::get(format!("{}/stack", view.url())).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();
    let external: Vec<&str> = page
        .match_indices("://")
        .map(|(at, _)| &page[at.saturating_sub(12)..(at + 30).min(page.len())])
        .filter(|context| !context.contains("http://www.w3.org/2000/svg"))
        .collect();
    assert!(
        external.is_empty(),
        "no CDN, no fonts, no scripts from elsewhere: {external:?}"
    );
    assert!(
        page.contains("stack.json"),
        "it reads its numbers from beside itself"
    );
}
