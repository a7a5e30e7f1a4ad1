//! The admin listener: purge by URL and by tag, the ACL, /metrics and /status.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use common::{Origin, Reply, Seen, TestProxy, client, config_toml, get};

fn tagged() -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    |seen| {
        let tags = match seen.target.as_str() {
            "/posts/42" => "post-42 front tag-rust",
            "/" => "front",
            "/tags/rust" => "tag-rust",
            _ => "other",
        };
        Reply::ok(format!("{} #{}", seen.target, seen.nth))
            .cache("max-age=600")
            .header("surrogate-key", tags)
    }
}

async fn purge_tags(proxy: &TestProxy, tags: &str) -> reqwest::Response {
    client()
        .post(proxy.admin_url("/purge"))
        .header("surrogate-key", tags)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn purge_by_tag_removes_every_object_carrying_a_tag() {
    let origin = Origin::start(tagged()).await;
    let proxy = TestProxy::for_origins(&[&origin]).await;
    for path in ["/posts/42", "/", "/tags/rust", "/about"] {
        get(&proxy.url(path)).await;
        assert_eq!(get(&proxy.url(path)).await.1, "HIT", "{path}");
    }
    let response = purge_tags(&proxy, "post-42 author-7").await;
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["purged"], 1);
    assert_eq!(get(&proxy.url("/posts/42")).await.1, "MISS");
    assert_eq!(get(&proxy.url("/")).await.1, "HIT");
    let answer: serde_json::Value = purge_tags(&proxy, "front").await.json().await.unwrap();
    assert_eq!(
        answer["purged"], 2,
        "the front page and the post (re-fetched, still tagged)"
    );
    assert_eq!(get(&proxy.url("/")).await.1, "MISS");
    assert_eq!(get(&proxy.url("/tags/rust")).await.1, "HIT");
    assert_eq!(get(&proxy.url("/about")).await.1, "HIT");
    let response = client()
        .post(proxy.admin_url("/purge"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400, "no tags named");
}

#[tokio::test]
async fn purge_one_url_with_its_host() {
    let origin = Origin::start(tagged()).await;
    let config = config_toml(
        r#"
        [pools.app]
        backends = ["{o}"]
        [[routes]]
        pool = "app"
        drop_query = ["utm_*"]
        "#,
        &[("o", &origin)],
    );
    let proxy = TestProxy::start(config).await;
    get(&proxy.url("/about?utm_source=x")).await;
    get(&proxy.url("/tags/rust")).await;
    let purge = |path: &str, host: String| {
        client()
            .request(
                reqwest::Method::from_bytes(b"PURGE").unwrap(),
                proxy.admin_url(path),
            )
            .header("host", host)
            .send()
    };
    let response = purge("/about?utm_source=y", proxy.addr.to_string())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["purged"], 1);
    assert_eq!(get(&proxy.url("/about")).await.1, "MISS");
    assert_eq!(get(&proxy.url("/tags/rust")).await.1, "HIT");
    let answer: serde_json::Value = purge("/tags/rust", "other.example".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["purged"], 0, "another host's object");
}

#[tokio::test]
async fn purges_from_outside_the_acl_get_403() {
    let origin = Origin::start(tagged()).await;
    let config = config_toml(
        r#"
        [admin]
        allow = ["10.0.0.0/8", "192.168.0.0/16"]
        [pools.app]
        backends = ["{o}"]
        "#,
        &[("o", &origin)],
    );
    let proxy = TestProxy::start(config).await;
    get(&proxy.url("/posts/42")).await;
    assert_eq!(purge_tags(&proxy, "post-42").await.status(), 403);
    let response = client()
        .request(
            reqwest::Method::from_bytes(b"PURGE").unwrap(),
            proxy.admin_url("/posts/42"),
        )
        .header("host", proxy.addr.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(get(&proxy.url("/posts/42")).await.1, "HIT", "still cached");
    // Metrics and status stay readable.
    assert!(proxy.metrics().await.contains("proxy_requests_total"));
}

#[tokio::test]
async fn metrics_and_status_report_traffic_backends_and_store() {
    let origin = Origin::start(tagged()).await;
    let proxy = TestProxy::for_origins(&[&origin]).await;
    get(&proxy.url("/a")).await;
    get(&proxy.url("/a")).await;
    get(&proxy.url("/a")).await;
    let metrics = proxy.metrics().await;
    let backend = origin.backend();
    for (prefix, value) in [
        ("proxy_requests_total{cache_status=\"HIT\"}", 2.0),
        ("proxy_requests_total{cache_status=\"MISS\"}", 1.0),
        (
            "proxy_request_duration_seconds_count{cache_status=\"HIT\"}",
            2.0,
        ),
        (
            &format!(
                "proxy_backend_requests_total{{pool=\"default\",backend=\"{backend}\",outcome=\"2xx\"}}"
            ),
            1.0,
        ),
        (
            &format!("proxy_backend_up{{pool=\"default\",backend=\"{backend}\"}}"),
            1.0,
        ),
        ("proxy_cache_store_objects", 1.0),
        ("proxy_cache_evictions_total", 0.0),
    ] {
        assert_eq!(
            common::sample(&metrics, prefix),
            Some(value),
            "{prefix}\n{metrics}"
        );
    }
    assert!(common::sample(&metrics, "proxy_cache_store_bytes").unwrap() > 0.0);
    assert!(common::sample(&metrics, "proxy_response_body_bytes_total").unwrap() > 0.0);
    assert!(metrics.contains("proxy_backend_response_seconds_bucket"));
    let status = proxy.status().await;
    assert_eq!(status["pools"][0]["name"], "default");
    assert_eq!(
        status["pools"][0]["backends"][0]["address"],
        backend.as_str()
    );
    assert_eq!(status["pools"][0]["backends"][0]["healthy"], true);
    assert_eq!(status["store"]["objects"], 1);
}

/// Answers `#n` tagged `post-42` with a long lifetime and grace, an ETag per version, and
/// `status` instead while it is not 200.
fn versioned(status: Arc<AtomicU16>) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |seen| match status.load(Ordering::Relaxed) {
        200 => Reply::ok(format!("#{}", seen.nth))
            .cache("max-age=600, stale-while-revalidate=600, stale-if-error=600")
            .header("etag", &format!("\"v{}\"", seen.nth))
            .header("surrogate-key", "post-42"),
        code => Reply::status(code),
    }
}

async fn purge_tags_softly(proxy: &TestProxy, header: &str) -> serde_json::Value {
    let response = client()
        .post(proxy.admin_url("/purge"))
        .header("surrogate-key", "post-42")
        .header(header, "1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn soft_purge_by_tag_sends_the_next_request_to_the_origin_and_keeps_the_copy_for_errors() {
    let status = Arc::new(AtomicU16::new(200));
    let origin = Origin::start(versioned(status.clone())).await;
    let proxy = TestProxy::for_origins(&[&origin]).await;
    let url = proxy.url("/posts/42");
    assert_eq!(get(&url).await, (200, "MISS".into(), "#1".into()));
    assert_eq!(get(&url).await, (200, "HIT".into(), "#1".into()));

    let answer = purge_tags_softly(&proxy, "soft-purge").await;
    assert_eq!(answer["purged"], 1);
    assert_eq!(answer["soft"], true);
    assert_eq!(proxy.status().await["store"]["objects"], 1, "kept");
    // Not served stale-while-revalidate despite its grace: the writer must see the new page.
    assert_eq!(get(&url).await, (200, "MISS".into(), "#2".into()));
    assert_eq!(
        origin.seen()[1].headers["if-none-match"],
        "\"v1\"",
        "revalidated with the stored validator"
    );
    assert_eq!(get(&url).await, (200, "HIT".into(), "#2".into()));

    // Fastly's header works too; the soft-purged copy stands in for a failing origin only.
    let answer = purge_tags_softly(&proxy, "fastly-soft-purge").await;
    assert_eq!(answer["purged"], 1);
    status.store(503, Ordering::Relaxed);
    assert_eq!(get(&url).await, (200, "STALE".into(), "#2".into()));
    assert_eq!(origin.count("/posts/42"), 3, "the 503 was asked for");
    let metrics = proxy.metrics().await;
    assert_eq!(
        common::sample(&metrics, "proxy_cache_soft_purged_total"),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        common::sample(&metrics, "proxy_cache_purged_total"),
        Some(0.0)
    );

    // Hard purges still remove: with the origin failing there is nothing left to serve.
    let answer: serde_json::Value = purge_tags(&proxy, "post-42").await.json().await.unwrap();
    assert_eq!(
        (answer["purged"].clone(), answer["soft"].clone()),
        (1.into(), false.into())
    );
    assert_eq!(get(&url).await.0, 503);
    assert_eq!(proxy.status().await["store"]["objects"], 0);
}

#[tokio::test]
async fn soft_purge_of_one_url_revalidates_and_serves_stale_with_the_origin_stopped() {
    let origin = Origin::start(|seen: &Seen| {
        let reply = if seen.revalidates("\"same\"") {
            Reply::status(304)
        } else {
            Reply::ok(format!("#{}", seen.nth))
        };
        reply
            .cache("max-age=600, stale-while-revalidate=600, stale-if-error=600")
            .header("etag", "\"same\"")
    })
    .await;
    let proxy = TestProxy::for_origins(&[&origin]).await;
    let url = proxy.url("/about");
    let soft_purge = || {
        client()
            .request(
                reqwest::Method::from_bytes(b"PURGE").unwrap(),
                proxy.admin_url("/about"),
            )
            .header("host", proxy.addr.to_string())
            .header("soft-purge", "1")
            .send()
    };
    assert_eq!(get(&url).await, (200, "MISS".into(), "#1".into()));
    let answer: serde_json::Value = soft_purge().await.unwrap().json().await.unwrap();
    assert_eq!(
        (answer["purged"].clone(), answer["soft"].clone()),
        (1.into(), true.into())
    );
    // Unchanged at the origin: a 304 makes the stored copy fresh again.
    assert_eq!(get(&url).await, (200, "HIT".into(), "#1".into()));
    assert_eq!(origin.count("/about"), 2);
    assert_eq!(get(&url).await, (200, "HIT".into(), "#1".into()));
    assert_eq!(origin.count("/about"), 2, "fresh after the 304");

    soft_purge().await.unwrap();
    origin.stop().await;
    assert_eq!(get(&url).await, (200, "STALE".into(), "#1".into()));
}
