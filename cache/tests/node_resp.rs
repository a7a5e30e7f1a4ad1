//! The node's RESP side through real TCP: the `redis` crate as client, raw bytes for what a
//! client library would never send.

mod node_support;

use std::time::Duration;

use node_support::{TestNode, eventually};
use redis::Value;
use redis::aio::MultiplexedConnection;

async fn query<T: redis::FromRedisValue>(con: &mut MultiplexedConnection, args: &[&str]) -> T {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query_async(con)
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// The error a command gets, as the client library reports it.
async fn error_of(con: &mut MultiplexedConnection, args: &[&str]) -> String {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    match cmd.query_async::<Value>(con).await {
        Ok(value) => panic!("{args:?} succeeded with {value:?}"),
        Err(error) => format!(
            "{} {}",
            error.code().unwrap_or("?"),
            error.detail().unwrap_or("")
        ),
    }
}

#[tokio::test]
async fn the_pool_commands_work_over_resp2_and_resp3() {
    let node = TestNode::start().await;
    for mut con in [node.redis().await, node.redis3().await] {
        assert_eq!(query::<String>(&mut con, &["PING"]).await, "PONG");
        let _: () = query(&mut con, &["SET", "a", "1", "PX", "60000"]).await;
        let _: () = query(&mut con, &["SET", "b", "2"]).await;
        let values: Vec<Option<String>> = query(&mut con, &["MGET", "a", "nope", "b"]).await;
        assert_eq!(values, [Some("1".into()), None, Some("2".into())]);
        assert_eq!(
            query::<Option<String>>(&mut con, &["GET", "nope"]).await,
            None
        );
        assert_eq!(query::<i64>(&mut con, &["DEL", "a", "b", "nope"]).await, 2);
        assert_eq!(query::<i64>(&mut con, &["EXISTS", "a"]).await, 0);
        let _: () = query(&mut con, &["SET", "c", "3"]).await;
        let _: () = query(&mut con, &["FLUSHDB"]).await;
        assert_eq!(query::<i64>(&mut con, &["DBSIZE"]).await, 0);
    }
}

#[tokio::test]
async fn resp3_replies_use_resp3_types() {
    let node = TestNode::start().await;
    let mut con = node.redis3().await;
    assert_eq!(
        query::<Value>(&mut con, &["GET", "missing"]).await,
        Value::Nil
    );
    let hello: Value = query(&mut con, &["HELLO", "3"]).await;
    let Value::Map(fields) = hello else {
        panic!("HELLO 3 answered {hello:?}")
    };
    assert!(fields.contains(&(Value::BulkString(b"proto".to_vec()), Value::Int(3))));
}

#[tokio::test]
async fn set_options_behave_as_in_redis() {
    let node = TestNode::start().await;
    let mut con = node.redis().await;
    let set = |args: &'static [&'static str]| args;
    assert_eq!(
        query::<Value>(&mut con, set(&["SET", "k", "v1", "NX"])).await,
        Value::Okay
    );
    assert_eq!(
        query::<Value>(&mut con, set(&["SET", "k", "v2", "NX"])).await,
        Value::Nil
    );
    assert_eq!(
        query::<Value>(&mut con, set(&["SET", "other", "v", "XX"])).await,
        Value::Nil
    );
    assert_eq!(
        query::<Option<String>>(&mut con, &["SET", "k", "v3", "XX", "GET"]).await,
        Some("v1".into())
    );
    let _: () = query(&mut con, &["SET", "k", "v4", "EX", "100"]).await;
    let ttl: i64 = query(&mut con, &["TTL", "k"]).await;
    assert!((99..=100).contains(&ttl), "{ttl}");
    let _: () = query(&mut con, &["SET", "k", "v5", "KEEPTTL"]).await;
    assert!(query::<i64>(&mut con, &["PTTL", "k"]).await > 98_000);
    let _: () = query(&mut con, &["SET", "k", "v6"]).await;
    assert_eq!(query::<i64>(&mut con, &["TTL", "k"]).await, -1);
    assert_eq!(query::<i64>(&mut con, &["TTL", "missing"]).await, -2);
    let _: () = query(&mut con, &["SET", "k", "v", "PXAT", "1000"]).await;
    assert_eq!(
        query::<i64>(&mut con, &["EXISTS", "k"]).await,
        0,
        "PXAT in the past"
    );
    assert_eq!(
        error_of(&mut con, &["SET", "k", "v", "EX", "0"]).await,
        "ERR invalid expire time in 'set' command"
    );
    assert_eq!(
        error_of(&mut con, &["SET", "k", "v", "NX", "XX"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        error_of(&mut con, &["SET", "k", "v", "EX", "1", "PX", "1"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        error_of(&mut con, &["SET", "k", "v", "EX", "x"]).await,
        "ERR value is not an integer or out of range"
    );

    assert_eq!(query::<i64>(&mut con, &["SETNX", "n", "1"]).await, 1);
    assert_eq!(query::<i64>(&mut con, &["SETNX", "n", "2"]).await, 0);
    let _: () = query(&mut con, &["SETEX", "s", "10", "v"]).await;
    assert!(query::<i64>(&mut con, &["PTTL", "s"]).await > 9000);
    let _: () = query(&mut con, &["PSETEX", "p", "10000", "v"]).await;
    assert!(query::<i64>(&mut con, &["PTTL", "p"]).await > 9000);
    assert_eq!(
        query::<Option<String>>(&mut con, &["GETEX", "p", "PERSIST"]).await,
        Some("v".into())
    );
    assert_eq!(query::<i64>(&mut con, &["TTL", "p"]).await, -1);
    assert_eq!(
        query::<Option<String>>(&mut con, &["GETDEL", "p"]).await,
        Some("v".into())
    );
    assert_eq!(
        query::<Option<String>>(&mut con, &["GETDEL", "p"]).await,
        None
    );
    let _: () = query(&mut con, &["MSET", "m1", "a", "m2", "b"]).await;
    assert_eq!(
        query::<i64>(&mut con, &["MSETNX", "m2", "x", "m3", "y"]).await,
        0
    );
    assert_eq!(query::<i64>(&mut con, &["EXISTS", "m3"]).await, 0);
    assert_eq!(
        query::<i64>(&mut con, &["MSETNX", "m3", "x", "m4", "y"]).await,
        1
    );
    assert_eq!(
        error_of(&mut con, &["MSET", "a", "1", "b"]).await,
        "ERR wrong number of arguments for 'mset' command"
    );
}

#[tokio::test]
async fn expire_options_follow_redis() {
    let node = TestNode::start().await;
    let mut con = node.redis().await;
    let _: () = query(&mut con, &["SET", "k", "v"]).await;
    assert_eq!(
        query::<i64>(&mut con, &["EXPIRE", "k", "100", "XX"]).await,
        0
    );
    assert_eq!(
        query::<i64>(&mut con, &["EXPIRE", "k", "100", "GT"]).await,
        0
    );
    assert_eq!(
        query::<i64>(&mut con, &["EXPIRE", "k", "100", "NX"]).await,
        1
    );
    assert_eq!(
        query::<i64>(&mut con, &["EXPIRE", "k", "200", "NX"]).await,
        0
    );
    assert_eq!(
        query::<i64>(&mut con, &["EXPIRE", "k", "50", "GT"]).await,
        0
    );
    assert_eq!(
        query::<i64>(&mut con, &["EXPIRE", "k", "50", "LT"]).await,
        1
    );
    assert_eq!(query::<i64>(&mut con, &["TTL", "k"]).await, 50);
    assert_eq!(query::<i64>(&mut con, &["PEXPIRE", "k", "70000"]).await, 1);
    assert_eq!(query::<i64>(&mut con, &["TTL", "k"]).await, 70);
    assert_eq!(query::<i64>(&mut con, &["PERSIST", "k"]).await, 1);
    assert_eq!(query::<i64>(&mut con, &["PERSIST", "k"]).await, 0);
    let far = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1000)
        .to_string();
    assert_eq!(query::<i64>(&mut con, &["EXPIREAT", "k", &far]).await, 1);
    assert!((999..=1000).contains(&query::<i64>(&mut con, &["TTL", "k"]).await));
    assert_eq!(query::<i64>(&mut con, &["PEXPIREAT", "k", "1"]).await, 1);
    assert_eq!(
        query::<i64>(&mut con, &["EXISTS", "k"]).await,
        0,
        "a past time deletes"
    );
    assert_eq!(
        query::<i64>(&mut con, &["EXPIRE", "missing", "10"]).await,
        0
    );
    assert_eq!(
        error_of(&mut con, &["EXPIRE", "k", "10", "NX", "XX"]).await,
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    );
    assert_eq!(
        query::<String>(&mut con, &["TYPE", "missing"]).await,
        "none"
    );
    let _: () = query(&mut con, &["SET", "k", "v"]).await;
    assert_eq!(query::<String>(&mut con, &["TYPE", "k"]).await, "string");
    assert_eq!(
        query::<i64>(&mut con, &["TOUCH", "k", "missing", "k"]).await,
        2
    );
}

#[tokio::test]
async fn counters_and_string_edits_follow_redis() {
    let node = TestNode::start().await;
    let mut con = node.redis().await;
    assert_eq!(query::<i64>(&mut con, &["INCR", "n"]).await, 1);
    assert_eq!(query::<i64>(&mut con, &["INCRBY", "n", "41"]).await, 42);
    assert_eq!(query::<i64>(&mut con, &["DECRBY", "n", "2"]).await, 40);
    assert_eq!(query::<i64>(&mut con, &["DECR", "n"]).await, 39);
    let _: () = query(&mut con, &["SET", "big", &i64::MAX.to_string()]).await;
    assert_eq!(
        error_of(&mut con, &["INCR", "big"]).await,
        "ERR increment or decrement would overflow"
    );
    let _: () = query(&mut con, &["SET", "text", "abc"]).await;
    assert_eq!(
        error_of(&mut con, &["DECRBY", "n", &i64::MIN.to_string()]).await,
        "ERR decrement would overflow"
    );
    assert_eq!(
        error_of(&mut con, &["INCR", "text"]).await,
        "ERR value is not an integer or out of range"
    );
    let _: () = query(&mut con, &["SET", "f", "10.5"]).await;
    assert_eq!(
        query::<String>(&mut con, &["INCRBYFLOAT", "f", "0.1"]).await,
        "10.6"
    );
    assert_eq!(
        error_of(&mut con, &["INCRBYFLOAT", "text", "1"]).await,
        "ERR value is not a valid float"
    );
    let _: () = query(&mut con, &["SET", "ttl", "1", "EX", "100"]).await;
    let _: i64 = query(&mut con, &["INCR", "ttl"]).await;
    assert!(
        query::<i64>(&mut con, &["TTL", "ttl"]).await > 0,
        "INCR keeps the TTL"
    );

    assert_eq!(query::<i64>(&mut con, &["APPEND", "s", "Hello"]).await, 5);
    assert_eq!(query::<i64>(&mut con, &["APPEND", "s", " World"]).await, 11);
    assert_eq!(query::<i64>(&mut con, &["STRLEN", "s"]).await, 11);
    assert_eq!(query::<i64>(&mut con, &["STRLEN", "missing"]).await, 0);
    assert_eq!(
        query::<String>(&mut con, &["GETRANGE", "s", "0", "4"]).await,
        "Hello"
    );
    assert_eq!(
        query::<String>(&mut con, &["GETRANGE", "s", "-5", "-1"]).await,
        "World"
    );
    assert_eq!(
        query::<i64>(&mut con, &["SETRANGE", "s", "6", "Redis"]).await,
        11
    );
    assert_eq!(
        query::<String>(&mut con, &["GET", "s"]).await,
        "Hello Redis"
    );
    assert_eq!(
        query::<i64>(&mut con, &["SETRANGE", "pad", "3", "x"]).await,
        4
    );
    assert_eq!(
        query::<Vec<u8>>(&mut con, &["GET", "pad"]).await,
        b"\0\0\0x"
    );
    assert_eq!(
        error_of(&mut con, &["SETRANGE", "pad", "-1", "x"]).await,
        "ERR offset is out of range"
    );
}

#[tokio::test]
async fn scan_and_keys_find_every_key() {
    let node = TestNode::start().await;
    let mut con = node.redis().await;
    for i in 0..300 {
        let _: () = query(&mut con, &["SET", &format!("user:{i}"), "v"]).await;
        let _: () = query(&mut con, &["SET", &format!("post:{i}"), "v"]).await;
    }
    let mut found = std::collections::BTreeSet::new();
    let mut cursor = "0".to_owned();
    loop {
        let (next, keys): (String, Vec<String>) = query(
            &mut con,
            &["SCAN", &cursor, "MATCH", "user:*", "COUNT", "50"],
        )
        .await;
        found.extend(keys);
        if next == "0" {
            break;
        }
        cursor = next;
    }
    assert_eq!(found.len(), 300);
    assert!(found.iter().all(|key| key.starts_with("user:")));
    let keys: Vec<String> = query(&mut con, &["KEYS", "post:1?"]).await;
    assert_eq!(keys.len(), 10);
    assert_eq!(
        error_of(&mut con, &["SCAN", "x"]).await,
        "ERR invalid cursor"
    );
}

#[tokio::test]
async fn errors_are_worded_as_redis_words_them() {
    let node = TestNode::start().await;
    let mut con = node.redis().await;
    assert_eq!(
        error_of(&mut con, &["NOSUCH", "a"]).await,
        "ERR unknown command 'NOSUCH', with args beginning with: 'a' "
    );
    assert_eq!(
        error_of(&mut con, &["GET"]).await,
        "ERR wrong number of arguments for 'get' command"
    );
    assert_eq!(
        error_of(&mut con, &["SELECT", "1"]).await,
        "ERR DB index is out of range"
    );
    let _: () = query(&mut con, &["SELECT", "0"]).await;
    assert_eq!(
        error_of(&mut con, &["AUTH", "pw"]).await,
        "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
    );
    // The connection is still fine after each error.
    assert_eq!(
        query::<String>(&mut con, &["ECHO", "still here"]).await,
        "still here"
    );
}

#[tokio::test]
async fn a_password_is_required_when_configured() {
    let node = TestNode::with(cache::node::Config {
        requirepass: Some("secret".into()),
        ..node_support::config()
    })
    .await;
    let mut raw = node.raw_resp().await;
    assert_eq!(
        raw.ask("GET k\r\n").await,
        "-NOAUTH Authentication required."
    );
    assert_eq!(
        raw.ask("AUTH wrong\r\n").await,
        "-WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(raw.ask("AUTH secret\r\n").await, "+OK");
    assert_eq!(raw.ask("GET k\r\n").await, "$-1");

    let client = redis::Client::open(format!("redis://:secret@{}/", node.resp)).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    assert_eq!(query::<String>(&mut con, &["PING"]).await, "PONG");
}

#[tokio::test]
async fn client_commands_name_and_describe_the_connection() {
    let node = TestNode::start().await;
    let mut raw = node.raw_resp().await;
    let id = raw.ask("CLIENT ID\r\n").await;
    assert!(id.starts_with(':'));
    assert_eq!(raw.ask("CLIENT GETNAME\r\n").await, "$-1");
    assert_eq!(raw.ask("CLIENT SETNAME worker-1\r\n").await, "+OK");
    assert_eq!(raw.ask("CLIENT SETINFO LIB-NAME mylib\r\n").await, "+OK");
    raw.send("CLIENT GETNAME\r\n").await;
    assert_eq!(raw.lines(2).await, ["$8", "worker-1"]);
    raw.send("CLIENT INFO\r\n").await;
    let _len = raw.line().await;
    let info = raw.line().await;
    assert_eq!(
        raw.line().await,
        "",
        "the info line ends in a newline of its own"
    );
    assert!(info.contains(&format!("id={}", &id[1..])), "{info}");
    assert!(
        info.contains("name=worker-1 ") && info.contains("lib-name=mylib "),
        "{info}"
    );
    assert_eq!(
        raw.ask("*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$10\r\nwith space\r\n")
            .await,
        "-ERR Client names cannot contain spaces, newlines or special characters."
    );
    assert_eq!(raw.ask("QUIT\r\n").await, "+OK");
    assert!(raw.closed().await);
}

#[tokio::test]
async fn info_reports_hits_misses_memory_and_keyspace() {
    let node = TestNode::start().await;
    let mut con = node.redis().await;
    let _: () = query(&mut con, &["SET", "a", "1", "EX", "100"]).await;
    let _: () = query(&mut con, &["SET", "b", "1"]).await;
    let _: Option<String> = query(&mut con, &["GET", "a"]).await;
    let _: Option<String> = query(&mut con, &["GET", "nope"]).await;
    let info: String = query(&mut con, &["INFO"]).await;
    for expected in [
        "keyspace_hits:1",
        "keyspace_misses:1",
        "evicted_keys:0",
        "expired_keys:0",
        "db0:keys=2,expires=1,avg_ttl=0",
        "maxmemory:67108864",
        "connected_clients:1",
    ] {
        assert!(info.contains(expected), "INFO lacks {expected}:\n{info}");
    }
    let memory: String = query(&mut con, &["INFO", "memory"]).await;
    assert!(memory.starts_with("# Memory") && !memory.contains("# Stats"));
    let config: Vec<String> = query(&mut con, &["CONFIG", "GET", "save"]).await;
    assert_eq!(config, ["save", ""]);
    let count: i64 = query(&mut con, &["COMMAND", "COUNT"]).await;
    assert!(count > 40, "{count} commands");
}

#[tokio::test]
async fn binary_keys_and_values_round_trip() {
    let node = TestNode::start().await;
    let mut con = node.redis().await;
    let key: Vec<u8> = (0..=255).collect();
    let value: Vec<u8> = (0..=255).rev().cycle().take(10_000).collect();
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(&value)
        .query_async(&mut con)
        .await
        .unwrap();
    let read: Vec<u8> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(read, value);
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let node = TestNode::start().await;
    let mut con = node.redis().await;
    let mut pipe = redis::pipe();
    for i in 0..2000 {
        pipe.cmd("SET").arg(format!("k{i}")).arg(i).ignore();
        pipe.cmd("GET").arg(format!("k{i}"));
    }
    let values: Vec<i64> = pipe.query_async(&mut con).await.unwrap();
    assert_eq!(values, (0..2000).collect::<Vec<i64>>());

    // The same over one raw write: one reply per request, in order.
    let mut raw = node.raw_resp().await;
    let batch: String = (0..100).map(|i| format!("ECHO m{i}\r\n")).collect();
    raw.send(batch).await;
    for i in 0..100 {
        assert_eq!(raw.lines(2).await[1], format!("m{i}"));
    }
}

#[tokio::test]
async fn a_value_over_the_item_limit_gets_an_error_and_the_connection_goes_on() {
    let node = TestNode::with(cache::node::Config {
        max_item_size: 1024,
        ..node_support::config()
    })
    .await;
    let mut con = node.redis().await;
    let big = "x".repeat(2000);
    assert_eq!(
        error_of(&mut con, &["SET", "k", &big]).await,
        "ERR object too large for cache"
    );
    let _: () = query(&mut con, &["SET", "k", &"x".repeat(1000)]).await;
    assert_eq!(
        error_of(&mut con, &["APPEND", "k", &"y".repeat(100)]).await,
        "ERR object too large for cache"
    );
    assert_eq!(query::<i64>(&mut con, &["STRLEN", "k"]).await, 1000);
}

#[tokio::test]
async fn a_bulk_claiming_4_gib_is_refused_without_waiting_for_it() {
    let node = TestNode::start().await;
    let mut raw = node.raw_resp().await;
    raw.send("*2\r\n$3\r\nGET\r\n$4294967296\r\n").await;
    assert_eq!(raw.line().await, "-ERR Protocol error: invalid bulk length");
    assert!(raw.closed().await);
    let mut raw = node.raw_resp().await;
    raw.send("*4294967296\r\n").await;
    assert_eq!(
        raw.line().await,
        "-ERR Protocol error: invalid multibulk length"
    );
    let mut other = node.redis().await;
    assert_eq!(query::<String>(&mut other, &["PING"]).await, "PONG");
}

#[tokio::test]
async fn malformed_frames_get_protocol_errors() {
    let node = TestNode::start().await;
    let mut raw = node.raw_resp().await;
    raw.send("*1\r\n+PING\r\n").await;
    assert_eq!(
        raw.line().await,
        "-ERR Protocol error: expected '$', got '+'"
    );
    assert!(raw.closed().await);
    let mut raw = node.raw_resp().await;
    raw.send(vec![b'a'; 70 * 1024]).await;
    assert_eq!(
        raw.line().await,
        "-ERR Protocol error: too big inline request"
    );
}

#[tokio::test]
async fn frames_split_into_single_bytes_are_answered_as_whole_ones() {
    let node = TestNode::start().await;
    let mut raw = node.raw_resp().await;
    raw.send_bytewise(
        b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n",
    )
    .await;
    assert_eq!(raw.lines(2).await, ["+OK", "$5"]);
    assert_eq!(raw.data(5).await, b"va\r\nl");
}

#[tokio::test]
async fn an_abrupt_disconnect_mid_frame_disturbs_no_one() {
    let node = TestNode::start().await;
    let mut con = node.redis().await;
    let _: () = query(&mut con, &["SET", "k", "kept"]).await;
    for _ in 0..20 {
        let mut raw = node.raw_resp().await;
        raw.send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nhalf").await;
        drop(raw);
    }
    assert_eq!(query::<String>(&mut con, &["GET", "k"]).await, "kept");
}

#[tokio::test]
async fn expired_keys_are_reclaimed_without_being_read() {
    let node = TestNode::start().await;
    let mut con = node.redis().await;
    for i in 0..500 {
        let _: () = query(&mut con, &["SET", &format!("k{i}"), "v", "PX", "30"]).await;
    }
    let _: () = query(&mut con, &["SET", "stays", "v"]).await;
    eventually(Duration::from_secs(10), async || {
        query::<i64>(&mut con, &["DBSIZE"]).await == 1
    })
    .await;
    let info: String = query(&mut con, &["INFO", "stats"]).await;
    assert!(info.contains("expired_keys:500"), "{info}");
}

#[tokio::test]
async fn memory_stays_within_max_memory_by_evicting() {
    let max_memory = 1024 * 1024;
    let node = TestNode::with(cache::node::Config {
        max_memory,
        max_item_size: 16 * 1024,
        ..node_support::config()
    })
    .await;
    let mut con = node.redis().await;
    let value = "v".repeat(1000);
    for chunk in 0..20 {
        let mut pipe = redis::pipe();
        for i in 0..500 {
            pipe.cmd("SET")
                .arg(format!("k{chunk}:{i}"))
                .arg(&value)
                .ignore();
        }
        let _: () = pipe.query_async(&mut con).await.unwrap();
    }
    let info: String = query(&mut con, &["INFO"]).await;
    let field = |name: &str| -> u64 {
        info.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}:")))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(field("used_memory") <= max_memory, "{info}");
    assert!(field("evicted_keys") > 5000, "{info}");
    let kept: i64 = query(&mut con, &["DBSIZE"]).await;
    assert!(kept > 500, "only {kept} items in 1 MiB");
}

/// MSETNX from several connections at once over overlapping key sets: in every round exactly one
/// call wins, and every key holds the winner's value — or, for the one key the winner left out,
/// nothing. (Checking each key and then setting each would let two calls both see "absent" and
/// both write.) Multi-threaded, so the connections' commands really run in parallel; the
/// clients start each round together, so that their calls overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn msetnx_is_atomic_across_shards_under_concurrent_writers() {
    const CLIENTS: usize = 4;
    const ROUNDS: usize = 150;
    // Many keys per call: the longer each call takes, the more the clients' calls overlap.
    const KEYS: usize = 1000;
    let node = TestNode::start().await;
    let key = |round: usize, index: usize| format!("round{round}:key{index}");
    let round_start = std::sync::Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let mut writers = Vec::new();
    for client in 0..CLIENTS {
        let mut con = node.redis().await;
        let round_start = round_start.clone();
        writers.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for round in 0..ROUNDS {
                // Client `client` leaves out key `client` and starts at a different key, so the
                // sets overlap without being equal and the calls write in different orders.
                let mut msetnx = redis::cmd("MSETNX");
                for offset in 0..KEYS {
                    let index = (client + offset) % KEYS;
                    if index != client {
                        msetnx.arg(key(round, index)).arg(client);
                    }
                }
                round_start.wait().await;
                won.push(msetnx.query_async::<i64>(&mut con).await.unwrap());
            }
            won
        }));
    }
    let mut results = Vec::new();
    for writer in writers {
        results.push(writer.await.unwrap());
    }
    let mut con = node.redis().await;
    for round in 0..ROUNDS {
        let winners: Vec<usize> = (results.iter().enumerate())
            .filter(|(_, won)| won[round] == 1)
            .map(|(client, _)| client)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let winner = winners[0];
        let mut mget = redis::cmd("MGET");
        for index in 0..KEYS {
            mget.arg(key(round, index));
        }
        let values: Vec<Option<usize>> = mget.query_async(&mut con).await.unwrap();
        for (index, value) in values.into_iter().enumerate() {
            let expected = (index != winner).then_some(winner);
            assert_eq!(value, expected, "round {round}, key {index}");
        }
    }
}
