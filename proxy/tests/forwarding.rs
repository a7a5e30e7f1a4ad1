//! Load balancing and forwarding: round robin, least outstanding, retry on another backend,
//! kept-alive backend connections, timeouts, broken backends, and the headers an intermediary adds and removes.

mod common;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Origin, Reply, TestProxy, client, config_toml, get, raw};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn named(name: &'static str) -> impl Fn(&common::Seen) -> Reply + Send + Sync + 'static {
    move |_| Reply::ok(name).cache("no-store")
}

#[tokio::test]
async fn round_robin_spreads_requests_evenly() {
    let a = Origin::start(named("a")).await;
    let b = Origin::start(named("b")).await;
    let c = Origin::start(named("c")).await;
    let proxy = TestProxy::for_origins(&[&a, &b, &c]).await;
    for _ in 0..30 {
        let (status, cache, _) = get(&proxy.url("/page")).await;
        assert_eq!((status, cache.as_str()), (200, "PASS"));
    }
    assert_eq!(
        (a.count("/page"), b.count("/page"), c.count("/page")),
        (10, 10, 10)
    );
}

#[tokio::test]
async fn least_outstanding_avoids_the_busy_backend() {
    let slow = Origin::start(|seen: &common::Seen| {
        // Held past the test's end, so `slow` stays busy however slowly the test runs.
        let delay = if seen.target == "/slow" { 60_000 } else { 0 };
        Reply::ok("slow")
            .cache("no-store")
            .delay(Duration::from_millis(delay))
    })
    .await;
    let fast = Origin::start(named("fast")).await;
    let config = config_toml(
        r#"
        [pools.app]
        backends = ["{slow}", "{fast}"]
        balance = "least_outstanding"
        "#,
        &[("slow", &slow), ("fast", &fast)],
    );
    let proxy = TestProxy::start(config).await;
    // Occupy the slow backend with a long request. One at a time, as concurrent requests for one
    // URL are coalesced into one; a tie may send the first to `fast`, which answers it at once.
    for sent in 1.. {
        let request = tokio::spawn(client().get(proxy.url("/slow")).send());
        common::eventually(Duration::from_secs(5), "held or answered", || async {
            slow.count("/slow") == 1 || request.is_finished()
        })
        .await;
        if slow.count("/slow") == 1 {
            break;
        }
        assert!(sent < 3, "{sent} requests for /slow, none sent to slow");
    }
    for _ in 0..10 {
        let (_, _, body) = get(&proxy.url("/quick")).await;
        assert_eq!(body, "fast");
    }
    assert_eq!(slow.count("/quick"), 0);
}

#[tokio::test]
async fn idempotent_request_is_retried_on_another_backend() {
    let up = Origin::start(named("up")).await;
    // A port with nothing listening: connections are refused.
    let dead = testkit::bind_port_0().await;
    let dead_addr = dead.local_addr().unwrap().to_string();
    drop(dead);
    let config = proxy::Config::for_backends(vec![dead_addr, up.backend()]);
    let proxy = TestProxy::start(config).await;
    for _ in 0..4 {
        let (status, _, body) = get(&proxy.url("/x")).await;
        assert_eq!((status, body.as_str()), (200, "up"));
    }
    let metrics = proxy.metrics().await;
    assert!(
        common::sample(&metrics, "proxy_backend_retries_total").unwrap() >= 1.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn backend_that_closes_without_answering_is_retried_for_get_only() {
    let (rude_addr, _) = backend_keeping_heads_without_answering().await;
    let good = Origin::start(named("good")).await;
    let mut config = proxy::Config::for_backends(vec![rude_addr, good.backend()]);
    // Keep the rude backend in rotation for the POSTs below.
    config.pools.get_mut("default").unwrap().eject_after = 100;
    let proxy = TestProxy::start(config).await;
    for _ in 0..4 {
        let (status, _, body) = get(&proxy.url("/y")).await;
        assert_eq!((status, body.as_str()), (200, "good"));
    }
    // A POST that reached the rude backend is not resent: the client learns of the failure.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(post_form(&proxy).await);
    }
    assert!(statuses.contains(&502), "{statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");
}

/// A backend that reads each request head, keeps it, and closes without answering.
async fn backend_keeping_heads_without_answering() -> (String, Arc<Mutex<Vec<String>>>) {
    let heads = Arc::new(Mutex::new(Vec::new()));
    let kept = heads.clone();
    let addr = raw_backend(move |mut stream| {
        let kept = kept.clone();
        async move {
            let mut buf = vec![0u8; 8192];
            let n = stream.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_lowercase();
            kept.lock().unwrap().push(head);
        }
    })
    .await;
    (addr, heads)
}

#[tokio::test]
async fn a_retried_request_carries_what_the_first_try_carried() {
    let (rude, first_tries) = backend_keeping_heads_without_answering().await;
    // Every object is stale at once, so each GET of /stale revalidates it.
    let good = Origin::start(|seen: &common::Seen| {
        let reply = if seen.revalidates("\"v1\"") {
            Reply::status(304)
        } else {
            Reply::ok("body")
        };
        reply.cache("max-age=0").header("etag", "\"v1\"")
    })
    .await;
    let config: proxy::Config = format!(
        r#"
        [cache]
        default_grace = "0s"
        [pools.app]
        backends = ["{rude}", "{good}"]
        eject_after = 100
        [[routes]]
        path_prefix = "/live/"
        pool = "app"
        cache = false
        [[routes]]
        pool = "app"
        "#,
        good = good.backend()
    )
    .parse()
    .unwrap();
    let proxy = TestProxy::start(config).await;
    // Round robin sends first tries to the rude backend too, on either route.
    for path in ["/live/a", "/live/b", "/stale", "/stale", "/stale", "/stale"] {
        let response = common::get_with(proxy.url(path), "x-trace", "7").await;
        assert_eq!(response.status(), 200, "{path}");
    }
    let first_tries = first_tries.lock().unwrap().clone();
    let retried = |path: &str, also: &str| {
        first_tries
            .iter()
            .any(|head| head.starts_with(&format!("get {path}")) && head.contains(also))
    };
    assert!(retried("/live/", "x-trace: 7"), "{first_tries:?}");
    assert!(
        retried("/stale", "if-none-match: \"v1\""),
        "{first_tries:?}"
    );
    // What the good backend got on each retry is what the rude one got first.
    for seen in good.seen() {
        for name in [
            "x-trace",
            "x-forwarded-for",
            "x-forwarded-proto",
            "via",
            "host",
        ] {
            assert!(seen.headers.contains_key(name), "{name} in {seen:?}");
        }
        if seen.target == "/stale" && seen.nth > 1 {
            assert!(seen.revalidates("\"v1\""), "{seen:?}");
        }
    }
    let metrics = proxy.metrics().await;
    let retries = common::sample(&metrics, "proxy_backend_retries_total").unwrap();
    assert_eq!(retries, first_tries.len() as f64, "{metrics}");
}

#[tokio::test]
async fn backend_connections_are_kept_alive_between_requests() {
    let origin = Origin::start(|seen: &common::Seen| {
        if seen.target.starts_with("/cached") {
            Reply::ok("cached").cache("max-age=60")
        } else {
            Reply::ok("passed").cache("no-store")
        }
    })
    .await;
    let proxy = TestProxy::for_origins(&[&origin]).await;
    // One client after another: passes, misses (bodies read into the cache) and a POST.
    for i in 0..10 {
        let (status, _, body) = get(&proxy.url(&format!("/page{i}"))).await;
        assert_eq!((status, body.as_str()), (200, "passed"));
        let (status, _, body) = get(&proxy.url(&format!("/cached{i}"))).await;
        assert_eq!((status, body.as_str()), (200, "cached"));
    }
    assert_eq!(post_form(&proxy).await, 200);
    assert_eq!(origin.seen().len(), 21);
    assert_retries_and_connections(&proxy, 0.0, 1.0).await;

    // Eight at a time need at most eight connections, however many requests they make.
    let mut clients = Vec::new();
    for c in 0..8 {
        let url = proxy.url(&format!("/page{c}"));
        clients.push(tokio::spawn(async move {
            for _ in 0..10 {
                assert_eq!(get(&url).await.0, 200);
            }
        }));
    }
    for each in clients {
        each.await.unwrap();
    }
    let metrics = proxy.metrics().await;
    let opened = common::sample(&metrics, "proxy_backend_connections_opened_total");
    assert!(opened.is_some_and(|n| n <= 9.0), "{metrics}");
}

/// POSTs a small form through the proxy; the status the client got.
async fn post_form(proxy: &TestProxy) -> u16 {
    let response = client()
        .post(proxy.url("/form"))
        .body("a=1")
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

/// Asserts how many retries and new backend connections the proxy has counted.
async fn assert_retries_and_connections(proxy: &TestProxy, retries: f64, opened: f64) {
    let metrics = proxy.metrics().await;
    let counted = (
        common::sample(&metrics, "proxy_backend_retries_total"),
        common::sample(&metrics, "proxy_backend_connections_opened_total"),
    );
    assert_eq!(counted, (Some(retries), Some(opened)), "{metrics}");
}

/// A backend whose first connection answers one request with keep-alive, then reads the next
/// request on it and closes without answering (its keep-alive timeout firing as the request
/// arrives); later connections answer every request.
async fn backend_closing_its_first_kept_alive_connection() -> String {
    let listener = testkit::bind_port_0().await;
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((mut stream, _)) = listener.accept().await {
            let answers = if first { 1 } else { usize::MAX };
            first = false;
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                for _ in 0..answers {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let reply =
                        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncache-control: no-store\r\n\r\nok";
                    if stream.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
                let _ = stream.read(&mut buf).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_kept_alive_connection_closed_under_a_get_is_retried_on_a_new_one() {
    let proxy = TestProxy::start(proxy::Config::for_backends(vec![
        backend_closing_its_first_kept_alive_connection().await,
    ]))
    .await;
    for _ in 0..3 {
        let (status, _, body) = get(&proxy.url("/z")).await;
        assert_eq!((status, body.as_str()), (200, "ok"));
    }
    assert_retries_and_connections(&proxy, 1.0, 2.0).await;
}

/// A backend speaking raw bytes: `serve` gets each connection, in a task of its own.
async fn raw_backend<F, Served>(serve: F) -> String
where
    F: Fn(tokio::net::TcpStream) -> Served + Send + 'static,
    Served: Future<Output = ()> + Send + 'static,
{
    let listener = testkit::bind_port_0().await;
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    addr
}

#[tokio::test]
async fn a_connection_whose_response_said_close_is_not_reused() {
    // A backend that says `Connection: close` and then keeps the socket open: the proxy must go
    // by what it said, not wait to see the close.
    let addr = raw_backend(|mut stream| async move {
        let mut buf = vec![0u8; 8192];
        if matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {
            let reply = "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\
                         cache-control: no-store\r\n\r\nok";
            let _ = stream.write_all(reply.as_bytes()).await;
        }
        let _ = stream.read(&mut buf).await;
    })
    .await;
    let proxy = TestProxy::start(proxy::Config::for_backends(vec![addr])).await;
    for _ in 0..3 {
        let (status, _, body) = get(&proxy.url("/z")).await;
        assert_eq!((status, body.as_str()), (200, "ok"));
    }
    assert_retries_and_connections(&proxy, 0.0, 3.0).await;
}

#[tokio::test]
async fn an_idle_connection_the_backend_closed_is_not_reused() {
    // A backend that closes every connection right after its first response, without saying so
    // (as a keep-alive timeout of zero would).
    let closed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let closes = closed.clone();
    let addr = raw_backend(move |mut stream| {
        let closes = closes.clone();
        async move {
            let mut buf = vec![0u8; 8192];
            if matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {
                let reply =
                    "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncache-control: no-store\r\n\r\nok";
                let _ = stream.write_all(reply.as_bytes()).await;
            }
            drop(stream);
            closes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    })
    .await;
    let proxy = TestProxy::start(proxy::Config::for_backends(vec![addr])).await;
    for round in 1..=3 {
        let (status, _, body) = get(&proxy.url("/z")).await;
        assert_eq!((status, body.as_str()), (200, "ok"));
        common::eventually(Duration::from_secs(5), "the backend closed", || async {
            closed.load(std::sync::atomic::Ordering::SeqCst) >= round
        })
        .await;
    }
    // Each request found the previous connection closed before using it: no request was sent
    // on a dead connection, so none needed a retry.
    assert_retries_and_connections(&proxy, 0.0, 3.0).await;
}

#[tokio::test]
async fn a_post_on_a_kept_alive_connection_that_closes_is_not_resent() {
    let proxy = TestProxy::start(proxy::Config::for_backends(vec![
        backend_closing_its_first_kept_alive_connection().await,
    ]))
    .await;
    assert_eq!(get(&proxy.url("/z")).await.0, 200);
    assert_eq!(post_form(&proxy).await, 502);
    // The next request gets a new connection.
    assert_eq!(get(&proxy.url("/z")).await.0, 200);
}

/// An origin answering `body` (uncacheable) after `delay_ms(target)` milliseconds, behind a
/// proxy whose first-byte timeout is one second.
async fn under_a_1s_first_byte_timeout(
    body: &'static str,
    delay_ms: fn(&str) -> u64,
) -> (Origin, TestProxy) {
    let origin = Origin::start(move |seen: &common::Seen| {
        Reply::ok(body)
            .cache("no-store")
            .delay(Duration::from_millis(delay_ms(&seen.target)))
    })
    .await;
    let config = config_toml(
        r#"
        [pools.app]
        backends = ["{o}"]
        first_byte_timeout = "1s"
        "#,
        &[("o", &origin)],
    );
    let proxy = TestProxy::start(config).await;
    (origin, proxy)
}

#[tokio::test]
async fn hanging_backend_gives_504_and_garbage_gives_502_for_that_request_only() {
    let (_hang, proxy) = under_a_1s_first_byte_timeout("late", |target| match target {
        "/hang" => 5000,
        _ => 0,
    })
    .await;
    let (status, _, _) = get(&proxy.url("/hang")).await;
    assert_eq!(status, 504);
    let (status, _, body) = get(&proxy.url("/fine")).await;
    assert_eq!((status, body.as_str()), (200, "late"));

    let garbage = testkit::bind_port_0().await;
    let garbage_addr = garbage.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = garbage.accept().await {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(b"SPDY/9 banana\r\n\x00\x01\x02\r\n\r\n")
                .await;
        }
    });
    let proxy = TestProxy::start(proxy::Config::for_backends(vec![garbage_addr])).await;
    let (status, _, _) = get(&proxy.url("/any")).await;
    assert_eq!(status, 502);
    let (status, _, _) = get(&proxy.url("/any")).await;
    assert_eq!(status, 502, "the proxy goes on answering");
}

/// A kept-alive connection's first-byte timer is armed once and only moved later by each
/// exchange (src/upstream/deadline.rs): going off for an earlier exchange's deadline must not cut
/// off a later one, and a hang on a reused connection is still cut off in time.
#[tokio::test]
async fn each_exchange_on_a_kept_alive_connection_gets_the_whole_first_byte_timeout() {
    let (_origin, proxy) = under_a_1s_first_byte_timeout("ok", |target| match target {
        "/slow" => 600,
        "/hang" => 5000,
        _ => 0,
    })
    .await;
    // 600 ms each, one after another: the second and third run past the deadline of the first.
    for _ in 0..3 {
        assert_eq!(get(&proxy.url("/slow")).await.0, 200);
    }
    let started = std::time::Instant::now();
    assert_eq!(get(&proxy.url("/hang")).await.0, 504);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // All four went out on the one connection.
    assert_retries_and_connections(&proxy, 0.0, 1.0).await;
}

#[tokio::test]
async fn forwarded_headers_via_and_hop_by_hop() {
    let origin = Origin::start(|_: &common::Seen| {
        Reply::ok("hi")
            .cache("no-store")
            .header("connection", "x-internal")
            .header("x-internal", "secret")
            .header("surrogate-key", "post-1")
    })
    .await;
    let proxy = TestProxy::for_origins(&[&origin]).await;
    let response = client()
        .get(proxy.url("/h"))
        .header("x-forwarded-for", "203.0.113.7")
        .header("connection", "x-drop-me")
        .header("x-drop-me", "1")
        .header("keep-alive", "timeout=5")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("x-internal").is_none());
    assert!(response.headers().get("surrogate-key").is_none());
    assert_eq!(response.headers()["via"], "1.1 leanstack-proxy");
    assert_eq!(common::x_cache(&response), "PASS");
    let seen = &origin.seen()[0];
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-forwarded-host"], proxy.addr.to_string());
    assert_eq!(seen.headers["via"], "1.1 leanstack-proxy");
    assert!(seen.headers.get("x-drop-me").is_none());
    assert!(seen.headers.get("keep-alive").is_none());
}

#[tokio::test]
async fn post_bodies_stream_through_and_unrouted_paths_get_404() {
    let origin = Origin::start(|seen: &common::Seen| {
        Reply::ok(format!(
            "{} {} {}",
            seen.method,
            seen.target,
            seen.body.len()
        ))
    })
    .await;
    let config = config_toml(
        r#"
        [pools.app]
        backends = ["{o}"]
        [[routes]]
        path_prefix = "/api/"
        pool = "app"
        "#,
        &[("o", &origin)],
    );
    let proxy = TestProxy::start(config).await;
    let response = client()
        .post(proxy.url("/api/items?x=1"))
        .body(vec![b'z'; 200_000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(common::x_cache(&response), "PASS");
    assert_eq!(response.text().await.unwrap(), "POST /api/items?x=1 200000");
    let (status, _, body) = get(&proxy.url("/elsewhere")).await;
    assert_eq!(status, 404);
    assert!(body.contains("no route"), "{body}");
    // Keep-alive connections to the client survive across requests.
    let (text, closed) = raw(
        proxy.addr,
        b"GET /api/a HTTP/1.1\r\nHost: x\r\n\r\nGET /api/b HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_millis(500),
    )
    .await;
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text}");
    assert!(!closed);
}

#[tokio::test]
async fn backend_names_are_resolved() {
    let origin = Origin::start(named("by name")).await;
    let text = format!(
        "[pools.app]\nbackends = [\"localhost:{}\"]\ndns_refresh = \"100ms\"\n",
        origin.addr.port()
    );
    let proxy = TestProxy::start(text.parse().unwrap()).await;
    for _ in 0..4 {
        assert_eq!(get(&proxy.url("/n")).await.2, "by name");
    }
}

#[tokio::test]
async fn backend_that_stalls_mid_body_is_cut_off_after_the_idle_timeout() {
    let stall = testkit::bind_port_0().await;
    let stall_addr = stall.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = stall.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nCache-Control: no-store\r\n\r\nabc")
                    .await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    let text = format!("[pools.app]\nbackends = [\"{stall_addr}\"]\nidle_timeout = \"300ms\"\n");
    let proxy = TestProxy::start(text.parse().unwrap()).await;
    let started = std::time::Instant::now();
    let response = client().get(proxy.url("/s")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.bytes().await.is_err(),
        "a truncated body is an error"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
