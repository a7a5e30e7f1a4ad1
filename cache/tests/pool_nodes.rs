//! The pool over three real `cache::node`s served in-process on loopback: sharing between app
//! servers, fail-open when a node dies, single-flight, rejoin flushing, schema versions.

mod pool_support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache::pool::{NodeSource, Outcome, Pool, PoolConfig};
use pool_support::{
    CacheNode, DEADLINE, Forwarder, eventually, key_on, metric, pool, pool_with, raw,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

const TTL: Duration = Duration::from_secs(60);
const PREFIX: &str = "leanstack:v1:";

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

async fn three_nodes() -> (Vec<CacheNode>, Vec<String>) {
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(CacheNode::start().await);
    }
    let names = nodes.iter().map(CacheNode::name).collect();
    (nodes, names)
}

/// Reads `post:{id}` through the cache, "loading from the database" on a miss.
async fn read_post(pool: &Pool, id: u64) -> (Result<Option<Post>, Infallible>, Outcome) {
    let (result, lookup) = pool
        .get_or_load_timed(&format!("post:{id}"), TTL, || async { Ok(Some(post(id))) })
        .await;
    (result, lookup.outcome)
}

/// Reads posts `ids` and returns how many were cache hits; panics if any answer is wrong.
async fn hits(pool: &Pool, ids: std::ops::Range<u64>) -> usize {
    let mut hits = 0;
    for id in ids {
        let (result, outcome) = read_post(pool, id).await;
        assert_eq!(result, Ok(Some(post(id))), "post {id}");
        hits += usize::from(outcome == Outcome::Hit);
    }
    hits
}

#[tokio::test]
async fn what_one_app_loads_another_finds() {
    let (_nodes, names) = three_nodes().await;
    let (app1, registry) = pool(&names);
    let (app2, _) = pool(&names);

    assert_eq!(hits(&app1, 0..300).await, 0);
    assert_eq!(
        hits(&app2, 0..300).await,
        300,
        "app-2 found all of app-1's loads"
    );

    // The keys are spread over all three nodes.
    for name in &names {
        let size: usize = redis::cmd("DBSIZE")
            .query_async(&mut raw(name).await)
            .await
            .unwrap();
        assert!(
            (60..=140).contains(&size),
            "{name} holds {size} of 300 keys"
        );
        let hits = metric(
            &registry,
            &format!("cache_pool_hits_total{{node=\"{name}\"}}"),
        );
        let misses = metric(
            &registry,
            &format!("cache_pool_misses_total{{node=\"{name}\"}}"),
        );
        assert_eq!(hits, Some(0.0), "app-1 only missed");
        assert_eq!(misses, Some(size as f64));
    }
    assert_eq!(
        metric(&registry, "cache_pool_loads_total{result=\"Found\"}"),
        Some(300.0)
    );

    // get_many: one MGET per node, answers in the order asked.
    let keys: Vec<String> = (295..305).map(|id| format!("post:{id}")).collect();
    let expected: Vec<Option<Post>> = (295..305).map(|id| (id < 300).then(|| post(id))).collect();
    assert_eq!(app2.get_many::<Post, _>(&keys).await, expected);

    // Invalidation reaches every node.
    app2.delete_many(&keys).await;
    assert_eq!(app1.get_many::<Post, _>(&keys).await, vec![None; 10]);
    app1.delete("post:0").await;
    assert_eq!(app2.get::<Post>("post:0").await, None);
}

#[tokio::test]
async fn a_node_killed_mid_test_costs_only_misses_until_it_returns() {
    let (mut nodes, names) = three_nodes().await;
    let (pool, registry) = pool(&names);
    let dead = names[1].clone();
    let on_dead = (0..300).filter(|&id| owner(&names, id) == dead).count();
    assert_eq!(hits(&pool, 0..300).await, 0);
    assert_eq!(hits(&pool, 0..300).await, 300);

    nodes[1].stop().await;
    // Every answer is still right (checked in `hits`); the dead node's keys are loaded again.
    assert_eq!(hits(&pool, 0..300).await, 300 - on_dead);
    let breaker = format!("cache_pool_breaker_state{{node=\"{dead}\"}}");
    assert_eq!(metric(&registry, &breaker), Some(2.0), "breaker open");
    let errors = format!("cache_pool_errors_total{{node=\"{dead}\"}}");
    let skipped = format!("cache_pool_skipped_total{{node=\"{dead}\"}}");
    assert!(metric(&registry, &errors).unwrap() >= 3.0);
    assert!(
        metric(&registry, &skipped).unwrap() > 0.0,
        "the open breaker skipped the node"
    );

    nodes[1] = CacheNode::start_on(dead.parse().unwrap()).await;
    eventually("the hit ratio recovers", || async {
        hits(&pool, 0..300).await == 300
    })
    .await;
    assert_eq!(metric(&registry, &breaker), Some(0.0), "breaker closed");
}

fn owner(names: &[String], id: u64) -> String {
    names[placement_index(names, &format!("post:{id}"))].clone()
}

#[tokio::test]
async fn a_node_restarted_empty_is_used_again() {
    let (mut nodes, names) = three_nodes().await;
    let (pool, _registry) = pool(&names);
    let key = key_on(&names, &names[2], "post", PREFIX);
    let other = key_on(&names, &names[0], "post", PREFIX);
    pool.set(&key, &post(1), TTL).await;
    pool.set(&other, &post(2), TTL).await;

    nodes[2].stop().await;
    nodes[2] = CacheNode::start_on(names[2].parse().unwrap()).await;

    // The pool's connection broke under it; the first use finds out, then it reconnects.
    eventually("the restarted node takes writes again", || async {
        pool.set(&key, &post(3), TTL).await;
        pool.get::<Post>(&key).await == Some(post(3))
    })
    .await;
    assert_eq!(
        pool.get::<Post>(&other).await,
        Some(post(2)),
        "other nodes kept theirs"
    );
}

#[tokio::test]
async fn a_node_that_comes_back_holding_old_data_is_flushed_first() {
    let (nodes, _) = three_nodes().await;
    let forwarder = Forwarder::start(nodes[1].addr).await;
    let names = vec![nodes[0].name(), forwarder.name(), nodes[2].name()];
    let (app1, registry) = pool(&names);
    let (app2, _) = pool(&names);
    let key = key_on(&names, &names[1], "post", PREFIX);
    app1.set(&key, &post(1), TTL).await;
    assert_eq!(app2.get::<Post>(&key).await, Some(post(1)));

    // Partition: the node keeps running with its data, but app-1 cannot reach it, so the
    // invalidation after a database write is lost.
    forwarder.cut();
    for _ in 0..3 {
        assert_eq!(app1.get::<Post>(&key).await, None);
    }
    app1.delete(&key).await;
    forwarder.restore();

    let probe = key_on(&names, &names[1], "probe", PREFIX);
    eventually("app-1 uses the node again", || async {
        app1.set(&probe, &1u8, TTL).await;
        app1.get::<u8>(&probe).await == Some(1)
    })
    .await;
    let flushes = format!("cache_pool_flushes_total{{node=\"{}\"}}", names[1]);
    assert_eq!(metric(&registry, &flushes), Some(1.0));
    assert_eq!(
        app1.get::<Post>(&key).await,
        None,
        "app-1 read a stale value"
    );
    assert_eq!(
        app2.get::<Post>(&key).await,
        None,
        "app-2 read a stale value"
    );
}

#[tokio::test]
async fn a_thousand_concurrent_misses_run_the_loader_once() {
    let (_nodes, names) = three_nodes().await;
    // A thousand GETs queue on one connection: on a busy machine the last could pass the usual
    // one-second timeout, open the breaker and skip the store this test checks.
    let (pool, registry) = pool_with(&names, |c| c.op_timeout = Duration::from_secs(10));
    let loads = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());

    let callers: Vec<_> = (0..1000)
        .map(|_| {
            let (pool, loads, release) = (pool.clone(), loads.clone(), release.clone());
            tokio::spawn(async move {
                pool.get_or_load("post:hot", TTL, || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    release.notified().await; // the "database" answers when told
                    Ok::<_, Infallible>(Some(post(7)))
                })
                .await
            })
        })
        .collect();
    // Hold the one load until the 999 others are waiting for it.
    eventually("999 callers wait on the first one's load", || async {
        metric(&registry, "cache_pool_coalesced_total") == Some(999.0)
    })
    .await;
    release.notify_one();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), Ok(Some(post(7))));
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(
        pool.get::<Post>("post:hot").await,
        Some(post(7)),
        "and stored it"
    );
}

#[tokio::test]
async fn not_found_is_cached_briefly_and_errors_not_at_all() {
    let (_nodes, names) = three_nodes().await;
    let (pool, _registry) = pool_with(&names, |config| {
        config.negative_ttl = Duration::from_secs(5);
    });
    let loads = AtomicUsize::new(0);
    let missing = || async {
        loads.fetch_add(1, Ordering::SeqCst);
        Ok::<Option<Post>, Infallible>(None)
    };
    let (first, lookup) = pool.get_or_load_timed("post:404", TTL, missing).await;
    assert_eq!((first, lookup.outcome), (Ok(None), Outcome::Loaded));
    let (second, lookup) = pool.get_or_load_timed("post:404", TTL, missing).await;
    assert_eq!((second, lookup.outcome), (Ok(None), Outcome::NotFoundHit));
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    let owner = &names[placement_index(&names, "post:404")];
    let pttl: i64 = redis::cmd("PTTL")
        .arg(format!("{PREFIX}post:404"))
        .query_async(&mut raw(owner).await)
        .await
        .unwrap();
    assert!((1..=5_000).contains(&pttl), "negative TTL {pttl} ms");

    let failing = || async {
        loads.fetch_add(1, Ordering::SeqCst);
        Err::<Option<Post>, &str>("database down")
    };
    assert_eq!(
        pool.get_or_load("post:500", TTL, failing).await,
        Err("database down")
    );
    assert_eq!(
        pool.get_or_load("post:500", TTL, failing).await,
        Err("database down")
    );
    assert_eq!(loads.load(Ordering::SeqCst), 3, "errors are not cached");
}

fn placement_index(names: &[String], key: &str) -> usize {
    cache::pool::rendezvous::Rendezvous::new(names)
        .node_for(format!("{PREFIX}{key}").as_bytes())
        .unwrap()
}

#[tokio::test]
async fn a_hot_key_near_expiry_is_refreshed_early() {
    let (_nodes, names) = three_nodes().await;
    // β so large that any remaining TTL is "near expiry" for a load that took a millisecond.
    let (pool, registry) = pool_with(&names, |config| config.early_refresh_beta = 1e9);
    let slow_load = |version: u64| async move {
        tokio::time::sleep(Duration::from_millis(2)).await; // a database read takes time
        Ok::<_, Infallible>(Some(post(version)))
    };
    let (_, lookup) = pool.get_or_load_timed("post:1", TTL, || slow_load(1)).await;
    assert_eq!(lookup.outcome, Outcome::Loaded);
    let (value, lookup) = pool.get_or_load_timed("post:1", TTL, || slow_load(2)).await;
    assert_eq!(
        (value, lookup.outcome),
        (Ok(Some(post(2))), Outcome::Refreshed)
    );
    assert_eq!(pool.get::<Post>("post:1").await, Some(post(2)));
    assert_eq!(
        metric(&registry, "cache_pool_early_refreshes_total"),
        Some(1.0)
    );

    // With β = 0 the same entry is simply a hit.
    let (calm, _) = pool_with(&names, |config| config.early_refresh_beta = 0.0);
    let (_, lookup) = calm.get_or_load_timed("post:1", TTL, || slow_load(3)).await;
    assert_eq!(lookup.outcome, Outcome::Hit);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PostV2 {
    id: u64,
    title: String,
    tags: Vec<String>,
}

#[tokio::test]
async fn the_schema_version_keeps_old_bytes_from_new_structs() {
    let (_nodes, names) = three_nodes().await;
    let (old_app, _) = pool(&names);
    let (new_app, _) = pool_with(&names, |config| config.schema_version = 2);
    old_app.set("post:1", &post(1), TTL).await;

    // The new deploy does not see the old bytes at all…
    assert_eq!(new_app.get::<PostV2>("post:1").await, None);
    let v2 = PostV2 {
        id: 1,
        title: "post 1".into(),
        tags: vec!["rust".into()],
    };
    let loaded = new_app
        .get_or_load("post:1", TTL, || async {
            Ok::<_, Infallible>(Some(v2.clone()))
        })
        .await;
    assert_eq!(loaded, Ok(Some(v2.clone())));
    // …and the old one, still running during a rolling deploy, keeps its own.
    assert_eq!(old_app.get::<Post>("post:1").await, Some(post(1)));

    // Bytes that do not decode (a schema bump forgotten) are a miss, never an error.
    let key = format!("{PREFIX}post:1");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(b"\x01\x02garbage".as_slice())
        .query_async(&mut raw(&names[placement_index(&names, "post:1")]).await)
        .await
        .unwrap();
    assert_eq!(old_app.get::<Post>("post:1").await, None);
    assert_eq!(
        old_app.get::<PostV2>("post:1").await,
        None,
        "another type under the same key is a miss too"
    );
    let (reloaded, outcome) = read_post(&old_app, 1).await;
    assert_eq!((reloaded, outcome), (Ok(Some(post(1))), Outcome::Loaded));
}

#[tokio::test]
async fn nodes_can_come_from_dns() {
    let node = CacheNode::start().await;
    let mut config = PoolConfig::new(NodeSource::Dns {
        name: "127.0.0.1".into(),
        port: node.addr.port(),
        refresh: Duration::from_millis(50),
    });
    config.op_timeout = DEADLINE;
    let pool = Pool::new(config, &mut Default::default());
    eventually("the name is resolved", || async {
        pool.nodes() == [node.name()]
    })
    .await;
    pool.set("post:1", &post(1), TTL).await;
    assert_eq!(pool.get::<Post>("post:1").await, Some(post(1)));
}

#[tokio::test]
async fn a_disabled_pool_always_loads() {
    let pool = Pool::disabled();
    pool.set("post:1", &post(1), TTL).await;
    assert_eq!(pool.get::<Post>("post:1").await, None);
    let (value, outcome) = read_post(&pool, 1).await;
    assert_eq!((value, outcome), (Ok(Some(post(1))), Outcome::Loaded));
    let (_, outcome) = read_post(&pool, 1).await;
    assert_eq!(outcome, Outcome::Loaded);
}
