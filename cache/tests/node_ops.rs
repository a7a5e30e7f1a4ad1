//! Running the node: metrics, health, connection limits, idle timeout, graceful shutdown.

mod node_support;

use std::time::Duration;

use node_support::{TestNode, config};

#[tokio::test]
async fn metrics_and_healthz_report_the_store() {
    let node = TestNode::start().await;
    let mut mc = node.raw_memcache().await;
    assert_eq!(mc.ask("set k 0 0 1\r\nv\r\n").await, "STORED");
    mc.send("get k\r\n").await;
    mc.lines(3).await;
    assert_eq!(mc.ask("get missing\r\n").await, "END");

    let base = format!("http://{}", node.metrics);
    let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert!(health.status().is_success());
    let body = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        "cache_hits_total 1",
        "cache_misses_total 1",
        "cache_items 1",
        "cache_evictions_total 0",
        "cache_expirations_total 0",
        "cache_max_memory_bytes 67108864",
        "cache_connections 1",
        "cache_command_duration_seconds_count 3",
    ] {
        assert!(
            body.contains(expected),
            "/metrics lacks {expected}:\n{body}"
        );
    }
    assert!(body.contains("cache_memory_bytes "));
}

#[tokio::test]
async fn connections_over_the_limit_get_the_protocols_error() {
    let node = TestNode::with(cache::node::Config {
        max_connections: 2,
        ..config()
    })
    .await;
    let mut first = node.raw_resp().await;
    let mut second = node.raw_memcache().await;
    // Both are in once they have been answered.
    assert_eq!(first.ask("PING\r\n").await, "+PONG");
    assert_eq!(second.ask("mn\r\n").await, "MN");
    let mut refused = node.raw_resp().await;
    assert_eq!(refused.line().await, "-ERR max number of clients reached");
    assert!(refused.closed().await);
    let mut refused = node.raw_memcache().await;
    assert_eq!(
        refused.line().await,
        "SERVER_ERROR Too many open connections"
    );

    drop(first);
    // The slot frees once the node has seen the close.
    node_support::eventually(Duration::from_secs(5), async || {
        let mut again = node.raw_resp().await;
        again.send("PING\r\n").await;
        again.line().await == "+PONG"
    })
    .await;
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let node = TestNode::with(cache::node::Config {
        idle_timeout: Some(Duration::from_millis(200)),
        ..config()
    })
    .await;
    let mut idle = node.raw_resp().await;
    assert_eq!(idle.ask("PING\r\n").await, "+PONG");
    assert!(idle.closed().await);
}

#[tokio::test]
async fn shutdown_answers_what_was_sent_then_stops_listening() {
    let node = TestNode::start().await;
    let resp = node.resp;
    let mut client = node.raw_resp().await;
    assert_eq!(client.ask("SET k v\r\n").await, "+OK");
    tokio::time::timeout(Duration::from_secs(5), node.shutdown())
        .await
        .expect("run returns after shutdown")
        .unwrap();
    assert!(client.closed().await);
    assert!(tokio::net::TcpStream::connect(resp).await.is_err());
}
