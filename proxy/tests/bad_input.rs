//! Malformed and hostile requests, sent as raw bytes: each gets its 4xx and, where RFC 9112
//! says so, a closed connection — and the proxy goes on serving.

mod common;

use std::time::Duration;

use common::{Origin, Reply, Seen, TestProxy, get, raw};

const WAIT: Duration = Duration::from_millis(1500);

async fn setup() -> (Origin, TestProxy) {
    let origin = Origin::start(|seen: &Seen| {
        Reply::ok(format!("{} {}", seen.target, seen.body.len())).cache("no-store")
    })
    .await;
    let proxy = TestProxy::for_origins(&[&origin]).await;
    (origin, proxy)
}

fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or_default()
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_400_and_closed() {
    let (origin, proxy) = setup().await;
    // The chunked body ends at "0\r\n\r\n"; a front end trusting Content-Length would see the
    // smuggled GET as part of this body, a back end trusting the chunks as a second request.
    let attack = b"POST /front HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n\
0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    // Transfer-Encoding first, and on the second request of a kept-alive connection.
    let second = b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n\
POST /front HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n\
0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    for (stream, responses) in [(&attack[..], 1), (&second[..], 2)] {
        let (response, closed) = raw(proxy.addr, stream, WAIT).await;
        assert!(
            closed,
            "RFC 9112 §6.1: close after a request with both: {response}"
        );
        assert_eq!(
            response.matches("HTTP/1.1 ").count(),
            responses,
            "{response}"
        );
        let last = response.rsplit("HTTP/1.1 ").next().unwrap_or_default();
        assert!(last.starts_with("400"), "{response}");
        assert!(
            last.to_ascii_lowercase().contains("connection: close"),
            "{response}"
        );
    }
    assert_eq!(
        origin.count("/front"),
        0,
        "refused before any backend request"
    );
    assert_eq!(
        origin.count("/smuggled"),
        0,
        "the follow-up is not processed"
    );
    assert_eq!(origin.count("/first"), 1);
    // A body that merely contains such a head is a body, not a request.
    let carrier = b"POST /carrier HTTP/1.1\r\nHost: x\r\nContent-Length: 66\r\n\r\n\
GET /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n\
GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (response, _) = raw(proxy.addr, carrier, WAIT).await;
    assert_eq!(response.matches("HTTP/1.1 200").count(), 2, "{response}");
    assert_eq!(origin.count("/after"), 1);
    let carried = origin
        .seen()
        .into_iter()
        .find(|s| s.target == "/carrier")
        .unwrap();
    assert_eq!(carried.body.len(), 66);
}

#[tokio::test]
async fn duplicate_content_length_is_400_and_closed() {
    let (origin, proxy) = setup().await;
    let (response, closed) = raw(
        proxy.addr,
        b"POST /dup HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        WAIT,
    )
    .await;
    assert!(status_line(&response).contains(" 400"), "{response}");
    assert!(closed);
    assert_eq!(origin.count("/dup"), 0);
}

#[tokio::test]
async fn obs_fold_is_400() {
    let (origin, proxy) = setup().await;
    let (response, closed) = raw(
        proxy.addr,
        b"GET /fold HTTP/1.1\r\nHost: x\r\nX-Folded: one\r\n two\r\n\r\n",
        WAIT,
    )
    .await;
    assert!(status_line(&response).contains(" 400"), "{response}");
    assert!(closed);
    assert_eq!(origin.count("/fold"), 0);
}

#[tokio::test]
async fn oversized_headers_are_431_and_long_targets_414() {
    let (origin, proxy) = setup().await;
    let huge = format!(
        "GET /big HTTP/1.1\r\nHost: x\r\nX-Huge: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let (response, closed) = raw(proxy.addr, huge.as_bytes(), WAIT).await;
    assert!(
        status_line(&response).contains(" 431"),
        "{}",
        status_line(&response)
    );
    assert!(closed);
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "p".repeat(10 * 1024));
    let (response, closed) = raw(proxy.addr, long.as_bytes(), WAIT).await;
    assert!(
        status_line(&response).contains(" 414"),
        "{}",
        status_line(&response)
    );
    assert!(closed);
    assert_eq!(origin.seen().len(), 0);
}

#[tokio::test]
async fn missing_or_repeated_host_and_garbage_are_400() {
    let (origin, proxy) = setup().await;
    for request in [
        &b"GET /nohost HTTP/1.1\r\n\r\n"[..],
        b"GET /twohosts HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"BLAH\x00\x01 / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header Name: x\r\n\r\n",
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    ] {
        let (response, closed) = raw(proxy.addr, request, WAIT).await;
        let line = status_line(&response);
        assert!(
            line.contains(" 400") || line.contains(" 405"),
            "{:?}: {response}",
            String::from_utf8_lossy(request)
        );
        assert!(closed, "{:?}", String::from_utf8_lossy(request));
    }
    assert_eq!(origin.seen().len(), 0);
    // HTTP/1.0 may omit Host.
    let (response, _) = raw(proxy.addr, b"GET /old HTTP/1.0\r\n\r\n", WAIT).await;
    assert!(status_line(&response).contains(" 200"), "{response}");
    // And the proxy is fine.
    assert_eq!(get(&proxy.url("/after")).await.0, 200);
}

/// An origin answering "done" (uncacheable) behind a proxy whose header-read timeout is 300 ms.
async fn under_a_300ms_header_read_timeout() -> (Origin, TestProxy) {
    let origin = Origin::start(|_: &Seen| Reply::ok("done").cache("no-store")).await;
    let config = common::config_toml(
        r#"
        [limits]
        header_read_timeout = "300ms"
        [pools.app]
        backends = ["{o}"]
        "#,
        &[("o", &origin)],
    );
    let proxy = TestProxy::start(config).await;
    (origin, proxy)
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let (_origin, proxy) = under_a_300ms_header_read_timeout().await;
    let started = std::time::Instant::now();
    let (_, closed) = raw(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow:",
        Duration::from_secs(5),
    )
    .await;
    assert!(closed);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// The header-read deadline moves with each request on a kept-alive connection, on a timer
/// armed once per connection (src/deadline.rs): the timer going off for an earlier request's
/// deadline must not cut off a client that is within its time for the current one.
#[tokio::test]
async fn a_kept_alive_client_gets_the_whole_header_read_timeout_for_each_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (origin, proxy) = under_a_300ms_header_read_timeout().await;
    let mut client = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    // Eight requests 100 ms apart on one connection: 800 ms in all, each within 300 ms of the
    // one before.
    for n in 0..8 {
        client
            .write_all(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut response = Vec::new();
        while !response.ends_with(b"done") {
            let mut buf = [0u8; 4096];
            let read = client.read(&mut buf).await.unwrap();
            assert!(read > 0, "request {n}: connection closed");
            response.extend_from_slice(&buf[..read]);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(origin.count("/again"), 8);
}

#[tokio::test]
async fn a_body_on_get_is_not_forwarded() {
    let (origin, proxy) = setup().await;
    let (response, _) = raw(
        proxy.addr,
        b"GET /with-body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        WAIT,
    )
    .await;
    assert!(status_line(&response).contains(" 200"), "{response}");
    let seen = origin
        .seen()
        .into_iter()
        .find(|s| s.target == "/with-body")
        .unwrap();
    assert_eq!(seen.body.len(), 0);
    assert!(seen.headers.get("content-length").is_none_or(|v| v == "0"));
}
