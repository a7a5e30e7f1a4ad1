//! The shared cache end to end: storing, keys, freshness, conditional requests, revalidation,
//! coalescing, stale-while-revalidate, stale-if-error, HEAD, the memory bound and big objects.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use common::{Origin, Reply, Seen, TestProxy, client, config_toml, get, get_with};

/// Answers `<path> #<nth>` with the given Cache-Control, so a test sees which fetch it got.
fn counting(cache_control: &'static str) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |seen| Reply::ok(format!("{} #{}", seen.target, seen.nth)).cache(cache_control)
}

/// A proxy in front of `origin` that serves nothing stale unless a response allows it.
async fn without_grace(origin: &Origin) -> TestProxy {
    let mut config = common::config_for(&[origin]);
    config.cache.default_grace = Duration::ZERO;
    TestProxy::start(config).await
}

#[tokio::test]
async fn miss_then_hit_with_age() {
    let origin = Origin::start(counting("max-age=60")).await;
    let proxy = TestProxy::for_origins(&[&origin]).await;
    let (_, cache, body) = get(&proxy.url("/a")).await;
    assert_eq!((cache.as_str(), body.as_str()), ("MISS", "/a #1"));
    let response = client().get(proxy.url("/a")).send().await.unwrap();
    assert_eq!(common::x_cache(&response), "HIT");
    assert!(
        response.headers()["age"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            <= 1
    );
    assert_eq!(response.text().await.unwrap(), "/a #1");
    assert_eq!(origin.count("/a"), 1);
}

#[tokio::test]
async fn age_from_the_origin_counts_against_freshness() {
    let origin = Origin::start(|seen: &Seen| {
        Reply::ok(format!("#{}", seen.nth))
            .cache("max-age=10")
            .header("age", "30")
    })
    .await;
    let proxy = TestProxy::for_origins(&[&origin]).await;
    let response = client().get(proxy.url("/old")).send().await.unwrap();
    assert_eq!(response.headers()["age"], "30");
    // Already older than its lifetime: stale at once, and with no validator it is refetched.
    let (_, cache, body) = get(&proxy.url("/old")).await;
    assert_ne!(cache, "HIT");
    assert_eq!(body, "#2");
}

#[tokio::test]
async fn uncacheable_answers_are_passed_not_stored() {
    let origin = Origin::start(|seen: &Seen| {
        let reply = Reply::ok(format!("#{}", seen.nth));
        match seen.target.as_str() {
            "/no-store" => reply.cache("no-store"),
            "/private" => reply.cache("private, max-age=60"),
            "/cookie" => reply.cache("max-age=60").header("set-cookie", "a=b"),
            "/vary-star" => reply.cache("max-age=60").header("vary", "*"),
            "/error" => Reply::status(500),
            _ => reply.cache("max-age=60"),
        }
    })
    .await;
    let proxy = TestProxy::for_origins(&[&origin]).await;
    for path in ["/no-store", "/private", "/cookie", "/vary-star"] {
        let (_, first, _) = get(&proxy.url(path)).await;
        let (_, second, body) = get(&proxy.url(path)).await;
        assert_eq!(
            (first.as_str(), second.as_str(), body.as_str()),
            ("PASS", "PASS", "#2"),
            "{path}"
        );
    }
    let (status, _, _) = get(&proxy.url("/error")).await;
    assert_eq!(status, 500);
    get(&proxy.url("/error")).await;
    assert_eq!(origin.count("/error"), 2);
    // POST is never cached.
    let response = client().post(proxy.url("/post")).send().await.unwrap();
    assert_eq!(common::x_cache(&response), "PASS");
}

#[tokio::test]
async fn authorization_requests_are_stored_only_when_the_answer_allows() {
    let origin = Origin::start(|seen: &Seen| {
        let reply = Reply::ok(format!("#{}", seen.nth));
        if seen.target == "/shared" {
            reply.cache("public, max-age=60")
        } else {
            reply.cache("max-age=60")
        }
    })
    .await;
    let proxy = TestProxy::for_origins(&[&origin]).await;
    for _ in 0..2 {
        client()
            .get(proxy.url("/mine"))
            .bearer_auth("t")
            .send()
            .await
            .unwrap();
        client()
            .get(proxy.url("/shared"))
            .bearer_auth("t")
            .send()
            .await
            .unwrap();
    }
    assert_eq!(origin.count("/mine"), 2);
    assert_eq!(origin.count("/shared"), 1);
}

#[tokio::test]
async fn vary_keeps_one_variant_per_header_value() {
    let origin = Origin::start(|seen: &Seen| {
        let language = seen
            .headers
            .get("accept-language")
            .map_or("none", |v| v.to_str().unwrap());
        Reply::ok(format!("{language} #{}", seen.nth))
            .cache("max-age=60")
            .header("vary", "Accept-Language")
    })
    .await;
    let proxy = TestProxy::for_origins(&[&origin]).await;
    let fetch = |language: &'static str| {
        let url = proxy.url("/v");
        async move {
            let response = get_with(url, "accept-language", language).await;
            (common::x_cache(&response), response.text().await.unwrap())
        }
    };
    assert_eq!(fetch("en").await, ("MISS".into(), "en #1".into()));
    assert_eq!(fetch("fr").await, ("MISS".into(), "fr #2".into()));
    assert_eq!(fetch("en").await, ("HIT".into(), "en #1".into()));
    assert_eq!(fetch("fr").await, ("HIT".into(), "fr #2".into()));
}

#[tokio::test]
async fn key_normalisation_drops_and_sorts_query_parameters_and_rewrites() {
    let origin = Origin::start(|seen: &Seen| {
        Reply::ok(format!("{} #{}", seen.target, seen.nth)).cache("max-age=60")
    })
    .await;
    let config = config_toml(
        r#"
        [pools.app]
        backends = ["{o}"]
        [[routes]]
        pool = "app"
        drop_query = ["utm_*", "fbclid"]
        sort_query = true
        rewrite = [{ from = "^/old/(.*)$", to = "/new/$1" }]
        "#,
        &[("o", &origin)],
    );
    let proxy = TestProxy::start(config).await;
    let (_, cache, body) = get(&proxy.url("/p?b=2&a=1&utm_source=x")).await;
    assert_eq!((cache.as_str(), body.as_str()), ("MISS", "/p?a=1&b=2 #1"));
    let (_, cache, _) = get(&proxy.url("/p?a=1&fbclid=zz&b=2")).await;
    assert_eq!(cache, "HIT");
    let (_, cache, body) = get(&proxy.url("/old/page")).await;
    assert_eq!((cache.as_str(), body.as_str()), ("MISS", "/new/page #1"));
    let (_, cache, _) = get(&proxy.url("/new/page")).await;
    assert_eq!(cache, "HIT");
}

#[tokio::test]
async fn head_is_served_from_the_cached_get_and_fills_it() {
    let origin = Origin::start(counting("max-age=60")).await;
    let proxy = TestProxy::for_origins(&[&origin]).await;
    let head = client().head(proxy.url("/h")).send().await.unwrap();
    assert_eq!(common::x_cache(&head), "MISS");
    assert_eq!(head.headers()["content-length"], "5");
    assert_eq!(head.text().await.unwrap(), "");
    common::eventually(Duration::from_secs(5), "HEAD filled the cache", || async {
        get(&proxy.url("/h")).await.1 == "HIT"
    })
    .await;
    let head = client().head(proxy.url("/h")).send().await.unwrap();
    assert_eq!(common::x_cache(&head), "HIT");
    assert_eq!(head.headers()["content-length"], "5");
    assert_eq!(origin.count("/h"), 1);
    assert!(origin.seen().iter().all(|s| s.method == "GET"));
}

#[tokio::test]
async fn client_conditional_requests_get_304_from_the_cache() {
    let origin = Origin::start(|_: &Seen| {
        Reply::ok("body")
            .cache("max-age=60")
            .header("etag", "\"v1\"")
            .header("last-modified", "Wed, 21 Oct 2015 07:28:00 GMT")
    })
    .await;
    let proxy = TestProxy::for_origins(&[&origin]).await;
    get(&proxy.url("/c")).await;
    let response = get_with(proxy.url("/c"), "if-none-match", "W/\"v1\", \"v0\"").await;
    assert_eq!(response.status(), 304);
    assert_eq!(common::x_cache(&response), "HIT");
    assert_eq!(response.headers()["etag"], "\"v1\"");
    let response = get_with(proxy.url("/c"), "if-none-match", "\"v2\"").await;
    assert_eq!(response.status(), 200);
    let response = get_with(
        proxy.url("/c"),
        "if-modified-since",
        "Thu, 22 Oct 2015 07:28:00 GMT",
    )
    .await;
    assert_eq!(response.status(), 304);
    let response = get_with(
        proxy.url("/c"),
        "if-modified-since",
        "Tue, 20 Oct 2015 07:28:00 GMT",
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        origin.count("/c"),
        1,
        "the origin never saw the conditionals"
    );
}

#[tokio::test]
async fn stale_entries_are_revalidated_with_etag_and_refreshed_on_304() {
    let origin = Origin::start(|seen: &Seen| {
        if seen.revalidates("\"v1\"") {
            // Fresh long after the refresh, so the last check below cannot race the clock.
            Reply::status(304)
                .cache("max-age=60")
                .header("etag", "\"v1\"")
                .header("x-round", &seen.nth.to_string())
        } else {
            Reply::ok("full body")
                .cache("max-age=1")
                .header("etag", "\"v1\"")
                .header("x-round", &seen.nth.to_string())
        }
    })
    .await;
    let proxy = without_grace(&origin).await;
    let (_, cache, _) = get(&proxy.url("/r")).await;
    assert_eq!(cache, "MISS");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = client().get(proxy.url("/r")).send().await.unwrap();
    assert_eq!(common::x_cache(&response), "HIT", "revalidated");
    assert_eq!(
        response.headers()["x-round"],
        "2",
        "headers updated from the 304"
    );
    assert_eq!(response.text().await.unwrap(), "full body");
    let seen = origin.seen();
    assert_eq!(seen[1].headers["if-none-match"], "\"v1\"");
    // Fresh again after the 304.
    let (_, cache, _) = get(&proxy.url("/r")).await;
    assert_eq!(cache, "HIT");
    assert_eq!(origin.count("/r"), 2);
    let metrics = proxy.metrics().await;
    assert_eq!(
        common::sample(
            &metrics,
            "proxy_cache_revalidations_total{result=\"not_modified\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
}

/// Whichever way an answer is made (a miss, a hit, a 304 to the client, a hit after the
/// backend refreshed the object with a 304, with a Via of its own or without), it has one
/// X-Cache and one Age, and this proxy's Via once, after the backend's.
#[tokio::test]
async fn answers_carry_x_cache_age_and_this_proxys_via_once() {
    let origin = Origin::start(|seen: &Seen| {
        if seen.revalidates("\"v1\"") {
            let reply = Reply::status(304)
                .cache("max-age=60")
                .header("etag", "\"v1\"");
            if seen.target == "/new-via" {
                reply.header("via", "1.1 app-revalidated")
            } else {
                reply
            }
        } else {
            Reply::ok("body")
                .cache("max-age=1")
                .header("etag", "\"v1\"")
                .header("via", "1.1 app")
        }
    })
    .await;
    let proxy = without_grace(&origin).await;
    let fetch = |path: &str, condition: Option<&'static str>| {
        let mut request = client().get(proxy.url(path));
        if let Some(etag) = condition {
            request = request.header("if-none-match", etag);
        }
        async move { request.send().await.unwrap() }
    };
    let fields = |response: &reqwest::Response, name: &str| -> Vec<String> {
        response
            .headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    };
    let ours = "1.1 leanstack-proxy";
    for path in ["/new-via", "/same-via"] {
        let miss = fetch(path, None).await;
        assert_eq!(fields(&miss, "x-cache"), ["MISS"]);
        assert_eq!(fields(&miss, "via"), ["1.1 app", ours]);
        for _ in 0..2 {
            let hit = fetch(path, None).await;
            assert_eq!(fields(&hit, "x-cache"), ["HIT"]);
            assert_eq!(fields(&hit, "via"), ["1.1 app", ours]);
            assert_eq!(fields(&hit, "age").len(), 1);
        }
        let not_modified = fetch(path, Some("\"v1\"")).await;
        assert_eq!(not_modified.status(), 304);
        assert_eq!(fields(&not_modified, "x-cache"), ["HIT"]);
        assert_eq!(fields(&not_modified, "via"), [ours]);
        assert_eq!(fields(&not_modified, "age").len(), 1);
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for (path, backend_via) in [
        ("/new-via", "1.1 app-revalidated"),
        ("/same-via", "1.1 app"),
    ] {
        for _ in 0..2 {
            let refreshed = fetch(path, None).await;
            assert_eq!(fields(&refreshed, "x-cache"), ["HIT"], "{path}");
            assert_eq!(fields(&refreshed, "via"), [backend_via, ours], "{path}");
            assert_eq!(fields(&refreshed, "age").len(), 1, "{path}");
            assert_eq!(refreshed.text().await.unwrap(), "body");
        }
        assert_eq!(origin.count(path), 2, "{path}");
    }
}

#[tokio::test]
async fn concurrent_misses_make_one_backend_request() {
    let origin = Origin::start(|seen: &Seen| {
        Reply::ok(format!("#{}", seen.nth))
            .cache("max-age=60")
            .delay(Duration::from_millis(300))
    })
    .await;
    let proxy = TestProxy::for_origins(&[&origin]).await;
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let url = proxy.url("/hot");
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for request in requests {
        let (status, cache, body) = request.await.unwrap();
        assert_eq!((status, body.as_str()), (200, "#1"));
        statuses.push(cache);
    }
    assert_eq!(origin.count("/hot"), 1);
    assert_eq!(
        statuses.iter().filter(|s| *s == "MISS").count(),
        1,
        "{statuses:?}"
    );
    let metrics = proxy.metrics().await;
    assert_eq!(
        common::sample(&metrics, "proxy_cache_coalesced_total"),
        Some(19.0)
    );
}

#[tokio::test]
async fn an_uncacheable_answer_releases_waiting_requests_at_once() {
    let origin = Origin::start(|seen: &Seen| {
        Reply::ok(format!("#{}", seen.nth))
            .cache("private")
            .delay(Duration::from_millis(400))
    })
    .await;
    let proxy = TestProxy::for_origins(&[&origin]).await;
    let started = Instant::now();
    let requests: Vec<_> = (0..8)
        .map(|_| {
            let url = proxy.url("/me");
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    for request in requests {
        let (status, cache, _) = request.await.unwrap();
        assert_eq!((status, cache.as_str()), (200, "PASS"));
    }
    // Serialised, eight requests would take 3.2 s; released together, about two delays.
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(origin.count("/me"), 8);
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_and_refreshes_in_the_background() {
    let origin = Origin::start(|seen: &Seen| {
        // The refreshed object stays fresh, so the last check below cannot race the clock.
        let lifetime = if seen.nth == 1 {
            "max-age=1"
        } else {
            "max-age=60"
        };
        Reply::ok(format!("{} #{}", seen.target, seen.nth))
            .cache(&format!("{lifetime}, stale-while-revalidate=30"))
    })
    .await;
    let proxy = TestProxy::for_origins(&[&origin]).await;
    get(&proxy.url("/swr")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, cache, body) = get(&proxy.url("/swr")).await;
    assert_eq!((cache.as_str(), body.as_str()), ("STALE", "/swr #1"));
    common::eventually(Duration::from_secs(5), "background refresh", || async {
        origin.count("/swr") == 2
    })
    .await;
    common::eventually(
        Duration::from_secs(5),
        "refreshed object served",
        || async { get(&proxy.url("/swr")).await == (200, "HIT".into(), "/swr #2".into()) },
    )
    .await;
}

#[tokio::test]
async fn default_grace_applies_to_answers_with_a_lifetime() {
    let origin = Origin::start(counting("max-age=1")).await;
    let mut config = common::config_for(&[&origin]);
    config.cache.default_grace = Duration::from_secs(30);
    let proxy = TestProxy::start(config).await;
    get(&proxy.url("/g")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, cache, _) = get(&proxy.url("/g")).await;
    assert_eq!(cache, "STALE");
}

#[tokio::test]
async fn stale_if_error_serves_stale_when_the_origin_is_stopped_or_failing() {
    let failing = Arc::new(AtomicU16::new(200));
    let status = failing.clone();
    let origin = Origin::start(move |seen: &Seen| match status.load(Ordering::Relaxed) {
        200 => Reply::ok(format!("#{}", seen.nth)).cache("max-age=1, stale-if-error=60"),
        code => Reply::status(code),
    })
    .await;
    let proxy = without_grace(&origin).await;
    get(&proxy.url("/sie")).await;
    get(&proxy.url("/other")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    failing.store(503, Ordering::Relaxed);
    let (status, cache, body) = get(&proxy.url("/sie")).await;
    assert_eq!(
        (status, cache.as_str(), body.as_str()),
        (200, "STALE", "#1")
    );
    origin.stop().await;
    let (status, cache, body) = get(&proxy.url("/other")).await;
    assert_eq!(
        (status, cache.as_str(), body.as_str()),
        (200, "STALE", "#1")
    );
    let (status, _, _) = get(&proxy.url("/never-cached")).await;
    assert!(status == 502 || status == 503, "{status}");
}

#[tokio::test]
async fn must_revalidate_forbids_serving_stale_on_error() {
    let origin = Origin::start(counting("max-age=1, must-revalidate")).await;
    let proxy = TestProxy::for_origins(&[&origin]).await;
    get(&proxy.url("/strict")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    origin.stop().await;
    let (status, _, _) = get(&proxy.url("/strict")).await;
    assert!(status == 502 || status == 503, "{status}");
}

#[tokio::test]
async fn bypass_cookie_skips_the_cache_and_other_cookies_are_stripped() {
    let origin = Origin::start(|seen: &Seen| {
        let cookie = seen
            .headers
            .get("cookie")
            .map_or("none", |v| v.to_str().unwrap());
        Reply::ok(format!("cookie={cookie} #{}", seen.nth)).cache("max-age=60")
    })
    .await;
    let config = config_toml(
        r#"
        [pools.app]
        backends = ["{o}"]
        [[routes]]
        pool = "app"
        bypass_cookies = ["leanstack_session"]
        strip_cookies = true
        "#,
        &[("o", &origin)],
    );
    let proxy = TestProxy::start(config).await;
    let with_cookie = |cookie: &'static str| {
        let url = proxy.url("/page");
        async move {
            let response = get_with(url, "cookie", cookie).await;
            (common::x_cache(&response), response.text().await.unwrap())
        }
    };
    assert_eq!(
        with_cookie("theme=dark").await,
        ("MISS".into(), "cookie=none #1".into())
    );
    assert_eq!(
        with_cookie("theme=light").await,
        ("HIT".into(), "cookie=none #1".into())
    );
    assert_eq!(
        with_cookie("leanstack_session=abc").await,
        ("BYPASS".into(), "cookie=leanstack_session=abc #2".into())
    );
}

#[tokio::test]
async fn ttl_override_and_uncached_routes() {
    let origin = Origin::start(counting("max-age=0")).await;
    let config = config_toml(
        r#"
        [pools.app]
        backends = ["{o}"]
        [[routes]]
        path_prefix = "/live/"
        pool = "app"
        cache = false
        [[routes]]
        pool = "app"
        ttl = "1h"
        "#,
        &[("o", &origin)],
    );
    let proxy = TestProxy::start(config).await;
    get(&proxy.url("/page")).await;
    assert_eq!(get(&proxy.url("/page")).await.1, "HIT");
    get(&proxy.url("/live/x")).await;
    assert_eq!(get(&proxy.url("/live/x")).await.1, "PASS");
}

#[tokio::test]
async fn big_objects_stream_through_unstored_and_the_store_stays_within_memory() {
    let origin = Origin::start(|seen: &Seen| {
        let size = if seen.target.starts_with("/big") {
            300_000
        } else {
            20_000
        };
        Reply::ok(vec![b'x'; size]).cache("max-age=60")
    })
    .await;
    let config = config_toml(
        r#"
        [cache]
        max_memory = "200KiB"
        max_object_size = "50KiB"
        [pools.app]
        backends = ["{o}"]
        "#,
        &[("o", &origin)],
    );
    let proxy = TestProxy::start(config).await;
    for _ in 0..2 {
        let (status, cache, body) = get(&proxy.url("/big")).await;
        assert_eq!((status, cache.as_str(), body.len()), (200, "MISS", 300_000));
    }
    assert_eq!(origin.count("/big"), 2);
    for i in 0..30 {
        let (_, _, body) = get(&proxy.url(&format!("/small/{i}"))).await;
        assert_eq!(body.len(), 20_000);
    }
    let status = proxy.status().await;
    assert!(
        status["store"]["bytes"].as_u64().unwrap() <= 200 * 1024,
        "{status}"
    );
    let metrics = proxy.metrics().await;
    assert!(
        common::sample(&metrics, "proxy_cache_evictions_total").unwrap() > 0.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn waiting_requests_give_up_after_the_coalesce_timeout() {
    let origin = Origin::start(|seen: &Seen| {
        let delay = if seen.nth == 1 { 1500 } else { 0 };
        Reply::ok(format!("#{}", seen.nth))
            .cache("max-age=60")
            .delay(Duration::from_millis(delay))
    })
    .await;
    let mut config = common::config_for(&[&origin]);
    config.cache.coalesce_timeout = Duration::from_millis(100);
    let proxy = TestProxy::start(config).await;
    let leader = {
        let url = proxy.url("/slow");
        tokio::spawn(async move { get(&url).await })
    };
    common::eventually(Duration::from_secs(5), "leader asked", || async {
        origin.count("/slow") == 1
    })
    .await;
    // Had it waited for the leader it would have been served the leader's "#1".
    let (status, _, body) = get(&proxy.url("/slow")).await;
    assert_eq!((status, body.as_str()), (200, "#2"));
    assert!(!leader.is_finished());
    assert_eq!(leader.await.unwrap().2, "#1");
}

#[tokio::test]
async fn an_object_that_became_uncacheable_is_dropped() {
    let private = Arc::new(AtomicU16::new(0));
    let flag = private.clone();
    let origin = Origin::start(move |seen: &Seen| {
        let reply = Reply::ok(format!("#{}", seen.nth));
        if flag.load(Ordering::Relaxed) == 1 {
            reply.cache("no-store")
        } else {
            reply.cache("max-age=1").header("etag", "\"v1\"")
        }
    })
    .await;
    let proxy = without_grace(&origin).await;
    assert_eq!(get(&proxy.url("/u")).await.2, "#1");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    private.store(1, Ordering::Relaxed);
    assert_eq!(
        get(&proxy.url("/u")).await,
        (200, "PASS".into(), "#2".into())
    );
    assert_eq!(
        get(&proxy.url("/u")).await,
        (200, "PASS".into(), "#3".into())
    );
    assert_eq!(proxy.status().await["store"]["objects"], 0);
}
