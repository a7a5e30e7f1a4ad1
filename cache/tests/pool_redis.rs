//! The pool against real `redis-server` processes: it must work with Redis nodes exactly as with
//! ours.

mod pool_support;

use std::convert::Infallible;
use std::time::Duration;

use cache::pool::Outcome;
use pool_support::{RedisServer, eventually, key_on, metric, pool, pool_with, raw};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Post {
    id: u64,
    title: String,
}

fn post(id: u64) -> Post {
    Post {
        id,
        title: format!("post {id}"),
    }
}

#[tokio::test]
async fn every_operation_works_against_redis_server() {
    let redis = RedisServer::start().await;
    let (pool, _registry) = pool(&[redis.name()]);
    let ttl = Duration::from_secs(60);

    pool.set("post:1", &post(1), ttl).await;
    assert_eq!(pool.get::<Post>("post:1").await, Some(post(1)));
    assert_eq!(pool.get::<Post>("post:2").await, None);

    // Stored under the versioned prefix, with a TTL no longer than asked and at most 10% shorter.
    let mut conn = raw(&redis.name()).await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg("leanstack:v1:post:1")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((53_000..=60_000).contains(&pttl), "PTTL {pttl}");

    let keys: Vec<String> = (1..=3).map(|i| format!("post:{i}")).collect();
    pool.set("post:3", &post(3), ttl).await;
    assert_eq!(
        pool.get_many::<Post, _>(&keys).await,
        vec![Some(post(1)), None, Some(post(3))]
    );

    pool.delete_many(&keys).await;
    assert_eq!(
        pool.get_many::<Post, _>(&keys).await,
        vec![None, None, None]
    );

    let (loaded, lookup) = pool
        .get_or_load_timed("post:4", ttl, || async {
            Ok::<_, Infallible>(Some(post(4)))
        })
        .await;
    assert_eq!(
        (loaded, lookup.outcome),
        (Ok(Some(post(4))), Outcome::Loaded)
    );
    let (cached, lookup) = pool
        .get_or_load_timed("post:4", ttl, || async {
            Ok::<_, Infallible>(Some(post(0)))
        })
        .await;
    assert_eq!((cached, lookup.outcome), (Ok(Some(post(4))), Outcome::Hit));
}

/// A node that stalls (not down: the connection stays up) opens its breaker; the deletes sent
/// meanwhile are skipped, so when it answers again it still holds the old values — and the pool
/// must flush it before reading from it.
#[tokio::test]
async fn a_stalled_node_is_skipped_then_flushed_before_reuse() {
    let redis = RedisServer::start().await;
    let nodes = [redis.name()];
    let (pool, registry) = pool_with(&nodes, |config| {
        config.op_timeout = Duration::from_millis(100);
        config.breaker.open_for = Duration::from_millis(500);
    });
    let prefix = "leanstack:v1:";
    let ttl = Duration::from_secs(60);
    pool.set("post:1", &post(1), ttl).await;
    assert_eq!(pool.get::<Post>("post:1").await, Some(post(1)));

    let mut admin = raw(&redis.name()).await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("ALL")
        .query_async(&mut admin)
        .await
        .unwrap();
    // Timeouts open the breaker; then the node costs nothing.
    for _ in 0..3 {
        assert_eq!(pool.get::<Post>("post:1").await, None);
    }
    assert_eq!(
        metric(
            &registry,
            &format!("cache_pool_breaker_state{{node=\"{}\"}}", nodes[0])
        ),
        Some(2.0)
    );
    let skipped = std::time::Instant::now();
    assert_eq!(pool.get::<Post>("post:1").await, None);
    assert!(
        skipped.elapsed() < Duration::from_millis(100),
        "an open breaker does not wait"
    );
    // The database changed; this invalidation cannot reach the node.
    pool.delete("post:1").await;

    let probe = key_on(&nodes, &nodes[0], "probe", prefix);
    eventually("the node serves again", || async {
        pool.set(&probe, &1u8, ttl).await;
        pool.get::<u8>(&probe).await == Some(1)
    })
    .await;
    assert_eq!(pool.get::<Post>("post:1").await, None, "stale value served");
    let flushes = format!("cache_pool_flushes_total{{node=\"{}\"}}", nodes[0]);
    assert_eq!(metric(&registry, &flushes), Some(1.0));
}

/// A node slower than the operation timeout, but still connected, costs the late request a miss
/// and nothing else: a timeout is not a lost connection, so the node is not flushed afterwards
/// and keeps serving what it holds. (The `redis` crate reports its response timeout as an I/O
/// error; the pool once took that for a broken connection, reconnected, and flushed the node —
/// under load, a healthy node's whole contents.)
#[tokio::test]
async fn a_slow_answer_is_a_miss_and_the_node_keeps_its_data() {
    let redis = RedisServer::start().await;
    let nodes = [redis.name()];
    // The tests' default 1 s operation timeout: longer than the `redis` crate's own default
    // response timeout (500 ms), which is what used to fire first.
    let (pool, registry) = pool(&nodes);
    let ttl = Duration::from_secs(60);
    pool.set("post:1", &post(1), ttl).await;

    // Well past the one-second timeout, so the GET sent next times out even if it goes out late;
    // short of two, so no three GETs in a row time out, which would open the breaker and have the
    // node flushed.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1700)
        .arg("ALL")
        .query_async(&mut raw(&redis.name()).await)
        .await
        .unwrap();
    assert_eq!(
        pool.get::<Post>("post:1").await,
        None,
        "a timeout is a miss"
    );
    let errors = format!("cache_pool_errors_total{{node=\"{}\"}}", nodes[0]);
    assert_eq!(metric(&registry, &errors), Some(1.0));

    eventually("the value is served again after the pause", || async {
        pool.get::<Post>("post:1").await == Some(post(1))
    })
    .await;
    let flushes = format!("cache_pool_flushes_total{{node=\"{}\"}}", nodes[0]);
    assert_eq!(metric(&registry, &flushes), Some(0.0));
}
