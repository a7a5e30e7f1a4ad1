//! The node's memcached side through real TCP, as raw text.

mod node_support;

use node_support::TestNode;

#[tokio::test]
async fn storage_commands_follow_memcached() {
    let node = TestNode::start().await;
    let mut mc = node.raw_memcache().await;
    assert_eq!(mc.ask("set k 42 0 5\r\nhello\r\n").await, "STORED");
    mc.send("get k\r\n").await;
    assert_eq!(mc.lines(3).await, ["VALUE k 42 5", "hello", "END"]);
    assert_eq!(mc.ask("add k 0 0 1\r\nx\r\n").await, "NOT_STORED");
    assert_eq!(mc.ask("add n 0 0 1\r\nx\r\n").await, "STORED");
    assert_eq!(mc.ask("replace missing 0 0 1\r\nx\r\n").await, "NOT_STORED");
    assert_eq!(mc.ask("replace n 7 0 1\r\ny\r\n").await, "STORED");
    assert_eq!(mc.ask("append k 0 0 6\r\n world\r\n").await, "STORED");
    assert_eq!(mc.ask("prepend k 0 0 2\r\n> \r\n").await, "STORED");
    assert_eq!(mc.ask("append missing 0 0 1\r\nx\r\n").await, "NOT_STORED");
    mc.send("get k n missing\r\n").await;
    assert_eq!(
        mc.lines(5).await,
        ["VALUE k 42 13", "> hello world", "VALUE n 7 1", "y", "END"]
    );

    mc.send("gets k\r\n").await;
    let header = mc.line().await;
    let cas: u64 = header.rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(mc.lines(2).await, ["> hello world", "END"]);
    assert_eq!(
        mc.ask(&format!("cas k 1 0 3 {}\r\nnew\r\n", cas + 1)).await,
        "EXISTS"
    );
    assert_eq!(
        mc.ask(&format!("cas k 1 0 3 {cas}\r\nnew\r\n")).await,
        "STORED"
    );
    assert_eq!(
        mc.ask(&format!("cas k 1 0 3 {cas}\r\nnew\r\n")).await,
        "EXISTS"
    );
    assert_eq!(mc.ask("cas missing 0 0 1 1\r\nx\r\n").await, "NOT_FOUND");

    assert_eq!(mc.ask("delete k\r\n").await, "DELETED");
    assert_eq!(mc.ask("delete k\r\n").await, "NOT_FOUND");
    assert_eq!(mc.ask("get k\r\n").await, "END");
}

#[tokio::test]
async fn incr_and_decr_follow_the_64_bit_rules() {
    let node = TestNode::start().await;
    let mut mc = node.raw_memcache().await;
    assert_eq!(mc.ask("incr n 1\r\n").await, "NOT_FOUND");
    assert_eq!(mc.ask("set n 5 0 2\r\n10\r\n").await, "STORED");
    assert_eq!(mc.ask("incr n 5\r\n").await, "15");
    assert_eq!(mc.ask("decr n 100\r\n").await, "0", "decr stops at zero");
    assert_eq!(
        mc.ask("set n 0 0 20\r\n18446744073709551615\r\n").await,
        "STORED"
    );
    assert_eq!(mc.ask("incr n 2\r\n").await, "1", "incr wraps around");
    assert_eq!(
        mc.ask("incr n -1\r\n").await,
        "CLIENT_ERROR invalid numeric delta argument"
    );
    assert_eq!(mc.ask("set t 0 0 3\r\nabc\r\n").await, "STORED");
    assert_eq!(
        mc.ask("incr t 1\r\n").await,
        "CLIENT_ERROR cannot increment or decrement non-numeric value"
    );
    mc.send("get n\r\n").await;
    assert_eq!(mc.lines(3).await, ["VALUE n 0 1", "1", "END"], "flags kept");
}

#[tokio::test]
async fn exptimes_touch_and_gat_follow_memcached() {
    let node = TestNode::start().await;
    let mut mc = node.raw_memcache().await;
    assert_eq!(mc.ask("set gone 0 -1 1\r\nx\r\n").await, "STORED");
    assert_eq!(mc.ask("get gone\r\n").await, "END", "negative exptime");
    assert_eq!(mc.ask("set old 0 1000000000 1\r\nx\r\n").await, "STORED");
    assert_eq!(
        mc.ask("get old\r\n").await,
        "END",
        "absolute time in the past"
    );
    let future = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1000;
    assert_eq!(
        mc.ask(&format!("set abs 0 {future} 1\r\nx\r\n")).await,
        "STORED"
    );
    let mut resp = node.redis().await;
    let ttl: i64 = redis::cmd("TTL")
        .arg("abs")
        .query_async(&mut resp)
        .await
        .unwrap();
    assert!((999..=1000).contains(&ttl), "{ttl}");

    assert_eq!(mc.ask("touch abs 0\r\n").await, "TOUCHED");
    let ttl: i64 = redis::cmd("TTL")
        .arg("abs")
        .query_async(&mut resp)
        .await
        .unwrap();
    assert_eq!(ttl, -1);
    assert_eq!(mc.ask("touch missing 10\r\n").await, "NOT_FOUND");
    mc.send("gats 100 abs\r\n").await;
    let header = mc.line().await;
    assert!(header.starts_with("VALUE abs 0 1 "), "{header}");
    assert_eq!(mc.lines(2).await, ["x", "END"]);
    let ttl: i64 = redis::cmd("TTL")
        .arg("abs")
        .query_async(&mut resp)
        .await
        .unwrap();
    assert_eq!(ttl, 100);
    mc.send("gat -1 abs\r\n").await;
    assert_eq!(mc.lines(3).await, ["VALUE abs 0 1", "x", "END"]);
    assert_eq!(mc.ask("get abs\r\n").await, "END");
}

#[tokio::test]
async fn noreply_flush_version_verbosity_and_stats() {
    let node = TestNode::start().await;
    let mut mc = node.raw_memcache().await;
    mc.send("set a 0 0 1 noreply\r\n1\r\nset b 0 0 1 noreply\r\n2\r\ndelete b noreply\r\n")
        .await;
    mc.send("incr a 1 noreply\r\nget a b\r\n").await;
    assert_eq!(mc.lines(3).await, ["VALUE a 0 1", "2", "END"]);
    assert!(mc.ask("version\r\n").await.starts_with("VERSION "));
    assert_eq!(mc.ask("verbosity 1\r\n").await, "OK");
    mc.send("stats\r\n").await;
    let mut stats = Vec::new();
    loop {
        let line = mc.line().await;
        if line == "END" {
            break;
        }
        stats.push(line);
    }
    for expected in ["STAT curr_items 1", "STAT get_hits 1", "STAT get_misses 1"] {
        assert!(
            stats.iter().any(|line| line == expected),
            "{expected}: {stats:?}"
        );
    }
    assert!(
        stats
            .iter()
            .any(|line| line == "STAT limit_maxbytes 67108864")
    );
    mc.send("stats settings\r\n").await;
    assert_eq!(mc.line().await, "STAT maxbytes 67108864");
    while mc.line().await != "END" {}
    for sub in ["items", "slabs"] {
        mc.send(format!("stats {sub}\r\n")).await;
        while mc.line().await != "END" {}
    }
    assert_eq!(mc.ask("flush_all\r\n").await, "OK");
    assert_eq!(mc.ask("get a\r\n").await, "END");
    assert_eq!(mc.ask("set a 0 0 1\r\n1\r\n").await, "STORED");
    assert_eq!(mc.ask("flush_all 100\r\n").await, "OK");
    assert_eq!(
        mc.ask("get a\r\n").await,
        "VALUE a 0 1",
        "a delayed flush waits"
    );
}

#[tokio::test]
async fn bad_input_gets_errors_and_the_connection_goes_on() {
    let node = TestNode::with(cache::node::Config {
        max_item_size: 1024,
        ..node_support::config()
    })
    .await;
    let mut mc = node.raw_memcache().await;
    assert_eq!(mc.ask("bogus\r\n").await, "ERROR");
    assert_eq!(mc.ask("\r\n").await, "ERROR");
    assert_eq!(
        mc.ask("set k 0 0\r\n").await,
        "CLIENT_ERROR bad command line format"
    );
    assert_eq!(
        mc.ask("set k x 0 1\r\n").await,
        "CLIENT_ERROR bad command line format"
    );
    let long_key = "k".repeat(251);
    assert_eq!(
        mc.ask(&format!("get {long_key}\r\n")).await,
        "CLIENT_ERROR bad command line format"
    );
    // As in memcached: the declared length plus CRLF is taken as the block, and what follows
    // is read as the next command.
    mc.send("set k 0 0 1\r\nxyz\r\n").await;
    assert_eq!(mc.lines(2).await, ["CLIENT_ERROR bad data chunk", "ERROR"]);

    assert_eq!(
        mc.ask("set k 0 0 1 ignored\r\nv\r\n").await,
        "STORED",
        "a last token other than noreply is ignored, as by memcached"
    );
    let big = "b".repeat(5000);
    assert_eq!(
        mc.ask(&format!("set k 0 0 5000\r\n{big}\r\n")).await,
        "SERVER_ERROR object too large for cache"
    );
    assert_eq!(
        mc.ask("get k\r\n").await,
        "END",
        "a failed set drops the old value"
    );
    // A refused block arriving in pieces is skipped as it comes.
    mc.send("set k 0 0 3000\r\n").await;
    assert_eq!(mc.line().await, "SERVER_ERROR object too large for cache");
    mc.send("a".repeat(1500)).await;
    mc.send(format!("{}\r\nset k 0 0 2\r\nok\r\n", "a".repeat(1500)))
        .await;
    assert_eq!(mc.line().await, "STORED");
    // A 4 GiB claim is refused at once, not waited for.
    assert_eq!(
        mc.ask("set huge 0 0 4294967296\r\n").await,
        "SERVER_ERROR object too large for cache"
    );
}

#[tokio::test]
async fn requests_split_into_single_bytes_are_answered_as_whole_ones() {
    let node = TestNode::start().await;
    let mut mc = node.raw_memcache().await;
    mc.send_bytewise(b"set k 3 0 4\r\nab\r\n\r\nget k\r\n")
        .await;
    assert_eq!(mc.lines(2).await, ["STORED", "VALUE k 3 4"]);
    assert_eq!(mc.data(4).await, b"ab\r\n");
    assert_eq!(mc.line().await, "END");
}

#[tokio::test]
async fn both_protocols_share_one_store() {
    let node = TestNode::start().await;
    let mut mc = node.raw_memcache().await;
    let mut resp = node.redis().await;
    let _: () = redis::cmd("SET")
        .arg("shared")
        .arg("from-resp")
        .query_async(&mut resp)
        .await
        .unwrap();
    mc.send("get shared\r\n").await;
    assert_eq!(mc.lines(3).await, ["VALUE shared 0 9", "from-resp", "END"]);
    assert_eq!(mc.ask("set shared 0 0 8\r\nfrom-mc!\r\n").await, "STORED");
    let value: String = redis::cmd("GET")
        .arg("shared")
        .query_async(&mut resp)
        .await
        .unwrap();
    assert_eq!(value, "from-mc!");
}

#[tokio::test]
async fn meta_get_set_delete_and_flags() {
    let node = TestNode::start().await;
    let mut mc = node.raw_memcache().await;
    assert_eq!(mc.ask("ms foo 2 T0 F5\r\nhi\r\n").await, "HD");
    mc.send("mg foo v f s t k O123\r\n").await;
    assert_eq!(mc.lines(2).await, ["VA 2 f5 s2 t-1 kfoo O123", "hi"]);
    assert_eq!(mc.ask("mg foo h\r\n").await, "HD h1");
    assert_eq!(mc.ask("mg foo\r\n").await, "HD");
    assert_eq!(mc.ask("mg missing v\r\n").await, "EN");
    assert_eq!(
        mc.ask("mg missing v q k\r\nmn\r\n").await,
        "MN",
        "q hides the miss"
    );

    let cas_line = mc.ask("mg foo c\r\n").await;
    let cas: u64 = cas_line.strip_prefix("HD c").unwrap().parse().unwrap();
    assert_eq!(
        mc.ask(&format!("ms foo 1 C{}\r\nx\r\n", cas + 1)).await,
        "EX"
    );
    assert_eq!(mc.ask(&format!("ms foo 1 C{cas}\r\nx\r\n")).await, "HD");
    assert_eq!(
        mc.ask("ms foo 1 E777 c\r\nx\r\n").await,
        "HD c777",
        "client-chosen CAS"
    );
    assert_eq!(mc.ask("ms foo 1 C777\r\nx\r\n").await, "HD");
    assert_eq!(
        mc.ask("ms foo 1 ME\r\ny\r\n").await,
        "NS",
        "add of an existing key"
    );
    assert_eq!(
        mc.ask("ms new 1 MR\r\ny\r\n").await,
        "NS",
        "replace of a missing key"
    );
    assert_eq!(mc.ask("ms foo 2 MA\r\nzz\r\n").await, "HD");
    mc.send("mg foo v\r\n").await;
    assert_eq!(mc.lines(2).await, ["VA 3", "xzz"]);
    assert_eq!(
        mc.ask("ms foo 1 q\r\nq\r\nmn\r\n").await,
        "MN",
        "q hides HD"
    );
    assert_eq!(mc.ask("mg foo T100 t\r\n").await, "HD t100");

    assert_eq!(mc.ask("md foo q\r\nmd foo\r\n").await, "NF");
    assert_eq!(mc.ask("md foo q\r\nmn\r\n").await, "MN");

    // base64 keys: binary keys over a text protocol.
    assert_eq!(mc.ask("ms AAEC 1 b\r\nv\r\n").await, "HD");
    mc.send("mg AAEC b k v\r\n").await;
    assert_eq!(mc.lines(2).await, ["VA 1 b kAAEC", "v"]);
    assert_eq!(mc.ask("mg foo Z\r\n").await, "CLIENT_ERROR invalid flag");
    // A refused ms still has its data block skipped, not read as commands.
    mc.send("ms foo 2 MX\r\nhi\r\nmn\r\n").await;
    assert_eq!(
        mc.lines(2).await,
        ["CLIENT_ERROR invalid mode for ms M token", "MN"]
    );
    mc.send("ms foo 3\r\nabcde\r\n").await;
    assert_eq!(mc.lines(2).await, ["CLIENT_ERROR bad data chunk", "ERROR"]);
    let debug = mc.ask("me AAEC b\r\n").await;
    assert!(debug.starts_with("ME AAEC exp=-1 la="), "{debug}");
    assert_eq!(mc.ask("me missing\r\n").await, "EN");
}

#[tokio::test]
async fn meta_arithmetic() {
    let node = TestNode::start().await;
    let mut mc = node.raw_memcache().await;
    assert_eq!(mc.ask("ma n\r\n").await, "NF");
    mc.send("ma n N0 J10 v\r\n").await;
    assert_eq!(mc.lines(2).await, ["VA 2", "10"]);
    mc.send("ma n D5 v\r\n").await;
    assert_eq!(mc.lines(2).await, ["VA 2", "15"]);
    mc.send("ma n MD D20 v t\r\n").await;
    assert_eq!(mc.lines(2).await, ["VA 1 t-1", "0"]);
    assert_eq!(mc.ask("ma n q\r\nmn\r\n").await, "MN");
    assert_eq!(mc.ask("ma n C1\r\n").await, "EX");
    assert_eq!(mc.ask("ma n E4242 c\r\n").await, "HD c4242");
    assert_eq!(mc.ask("ms t 1\r\nx\r\nma t\r\n").await, "HD");
    assert_eq!(
        mc.line().await,
        "CLIENT_ERROR cannot increment or decrement non-numeric value"
    );
}

/// Parses a meta response line into its code and flags.
fn meta_flags(line: &str) -> (String, Vec<String>) {
    let mut parts = line.split(' ');
    let code = parts.next().unwrap().to_owned();
    (code, parts.map(str::to_owned).collect())
}

fn flag(flags: &[String], name: char) -> Option<&str> {
    flags.iter().find_map(|f| f.strip_prefix(name))
}

#[tokio::test]
async fn meta_stale_while_revalidate_gives_one_reader_the_win() {
    let node = TestNode::start().await;
    let mut mc = node.raw_memcache().await;

    // N: a miss creates a placeholder, and only its first reader wins.
    let (code, flags) = meta_flags(&mc.ask("mg needwin s c v N30 t\r\n").await);
    assert_eq!(code, "VA");
    assert_eq!(mc.data(0).await, b"");
    assert!(
        flags.contains(&"W".into()) && !flags.contains(&"Z".into()),
        "{flags:?}"
    );
    assert_eq!(flag(&flags, 's'), Some("0"));
    let ttl: i64 = flag(&flags, 't').unwrap().parse().unwrap();
    assert!((1..=30).contains(&ttl), "{ttl}");
    let cas = flag(&flags, 'c').unwrap().to_owned();
    let (_, flags) = meta_flags(&mc.ask("mg needwin s t c N30\r\n").await);
    assert!(
        flags.contains(&"Z".into()) && !flags.contains(&"W".into()),
        "{flags:?}"
    );
    assert_eq!(mc.ask("ms needwin 2 C5000 T120\r\nnu\r\n").await, "EX");
    assert_eq!(
        mc.ask(&format!("ms needwin 2 C{cas} T120\r\nmu\r\n")).await,
        "HD"
    );
    mc.send("mg needwin s v N30\r\n").await;
    assert_eq!(
        mc.lines(2).await,
        ["VA 2 s2", "mu"],
        "no W or Z once recomputed"
    );

    // R: a TTL below the token makes the next reader win.
    let (_, flags) = meta_flags(&mc.ask("mg needwin t R130\r\n").await);
    assert!(flags.contains(&"W".into()), "{flags:?}");
    let (_, flags) = meta_flags(&mc.ask("mg needwin t R130\r\n").await);
    assert!(flags.contains(&"Z".into()), "{flags:?}");

    // md I: the item stays, stale, with a new CAS; its first reader wins.
    assert_eq!(mc.ask("set toinv 0 0 3\r\nmoo\r\n").await, "STORED");
    let old_cas = meta_flags(&mc.ask("mg toinv c\r\n").await).1[0].clone();
    assert_eq!(mc.ask("md toinv I T30\r\n").await, "HD");
    mc.send("mg toinv s t c v\r\n").await;
    let (code, flags) = meta_flags(&mc.line().await);
    assert_eq!(mc.data(3).await, b"moo", "a stale value is still served");
    assert_eq!(code, "VA");
    assert!(
        flags.contains(&"W".into()) && flags.contains(&"X".into()),
        "{flags:?}"
    );
    assert_ne!(
        format!("c{}", flag(&flags, 'c').unwrap()),
        old_cas,
        "invalidation bumps CAS"
    );
    let ttl: i64 = flag(&flags, 't').unwrap().parse().unwrap();
    assert!((1..=30).contains(&ttl), "{ttl}");
    let cas = flag(&flags, 'c').unwrap().to_owned();
    let (_, flags) = meta_flags(&mc.ask("mg toinv t\r\n").await);
    assert!(
        flags.contains(&"X".into()) && flags.contains(&"Z".into()),
        "{flags:?}"
    );
    assert_eq!(
        mc.ask(&format!("ms toinv 1 T90 C{cas}\r\ng\r\n")).await,
        "HD"
    );
    mc.send("mg toinv v\r\n").await;
    assert_eq!(
        mc.lines(2).await,
        ["VA 1", "g"],
        "fresh again: no W, X or Z"
    );
}

/// The CAS the reply line carries in its `c` flag.
fn cas_of(line: &str) -> u64 {
    let (_, flags) = meta_flags(line);
    flag(&flags, 'c').unwrap().parse().unwrap()
}

#[tokio::test]
async fn meta_set_with_i_stores_a_late_writer_s_value_as_stale() {
    // Replies as memcached 1.6 gives them (checked side by side against memcached 1.6.18).
    let node = TestNode::start().await;
    let mut mc = node.raw_memcache().await;
    let first = cas_of(&mc.ask("ms k 2 c\r\nv1\r\n").await);
    let second = cas_of(&mc.ask("ms k 2 c T100 F1\r\nv2\r\n").await);

    // A CAS older than the item's, with I: stored, marked stale, under the item's TTL (not
    // the T given) and with a new CAS; its first reader is told to recompute it.
    let stale = cas_of(
        &mc.ask(&format!("ms k 3 C{first} I T5 F7 c\r\nold\r\n"))
            .await,
    );
    assert!(stale != first && stale != second, "a new CAS");
    mc.send("mg k c t f v\r\n").await;
    let (code, flags) = meta_flags(&mc.line().await);
    assert_eq!(mc.data(3).await, b"old");
    assert_eq!(code, "VA");
    let ttl: i64 = flag(&flags, 't').unwrap().parse().unwrap();
    assert!((95..=100).contains(&ttl), "the item's TTL is kept: {ttl}");
    assert_eq!(
        [&flags[1], &flags[3], &flags[4], &flags[5]],
        [&format!("c{stale}"), "f7", "X", "W"]
    );
    mc.send("mg k v\r\n").await;
    assert_eq!(
        mc.lines(2).await,
        ["VA 3 Z X", "old"],
        "memcached's flag order"
    );

    // A newer CAS is refused, with I or not; the item's own CAS stores a fresh value.
    assert_eq!(
        mc.ask(&format!("ms k 3 C{} I\r\nnew\r\n", stale + 1000))
            .await,
        "EX"
    );
    assert_eq!(mc.ask(&format!("ms k 3 C{stale} I\r\neql\r\n")).await, "HD");
    mc.send("mg k v\r\n").await;
    assert_eq!(mc.lines(2).await, ["VA 3", "eql"], "fresh: no X, W or Z");
    // I without C is a plain set; a missing key is NF; append and add are not CAS stores.
    assert_eq!(mc.ask("ms k 3 I\r\nnoc\r\n").await, "HD");
    assert_eq!(mc.ask("ms missing 3 C1 I\r\nabc\r\n").await, "NF");
    assert_eq!(mc.ask("ms k 1 C1 I MA\r\nx\r\n").await, "EX");
    assert_eq!(mc.ask("ms k 1 C1 I ME\r\nx\r\n").await, "NS");
    assert_eq!(
        mc.ask("ms added 1 C1 ME\r\nx\r\n").await,
        "HD",
        "add ignores C"
    );
    // With E, the stale item takes the client's CAS.
    assert_eq!(mc.ask("ms k 3 C1 I E9999 c\r\nold\r\n").await, "HD c9999");
    assert_eq!(mc.ask("mg k c\r\n").await, "HD c9999 X W");

    // A win already sent stays sent when a late writer's value is stored stale.
    let old = cas_of(&mc.ask("ms u 2 c\r\nv1\r\n").await);
    assert_eq!(mc.ask("ms u 2\r\nv2\r\n").await, "HD");
    assert_eq!(mc.ask("md u I\r\n").await, "HD");
    assert_eq!(mc.ask("mg u\r\n").await, "HD X W");
    assert_eq!(mc.ask(&format!("ms u 3 C{old} I\r\nold\r\n")).await, "HD");
    assert_eq!(mc.ask("mg u\r\n").await, "HD Z X");
}

#[tokio::test]
async fn meta_delete_with_e_sets_the_new_cas() {
    let node = TestNode::start().await;
    let mut mc = node.raw_memcache().await;
    // I with E: stale under the client's CAS, so its recomputed value can be stored with it.
    assert_eq!(mc.ask("ms b 2\r\nv1\r\n").await, "HD");
    assert_eq!(mc.ask("md b I E500\r\n").await, "HD");
    mc.send("mg b c v\r\n").await;
    assert_eq!(mc.lines(2).await, ["VA 2 c500 X W", "v1"]);
    assert_eq!(mc.ask("ms b 2 C500\r\nv2\r\n").await, "HD");
    // x with E: the emptied item takes it; a plain delete just deletes.
    assert_eq!(mc.ask("ms d 2\r\nv1\r\n").await, "HD");
    assert_eq!(mc.ask("md d x E700\r\n").await, "HD");
    mc.send("mg d c s v\r\n").await;
    assert_eq!(mc.lines(2).await, ["VA 0 c700 s0", ""]);
    assert_eq!(mc.ask("md d E800\r\n").await, "HD");
    assert_eq!(mc.ask("mg d v\r\n").await, "EN");
    assert_eq!(mc.ask("md b E1 I C1\r\n").await, "EX", "C still guards");
    assert_eq!(
        mc.ask("md b Efoo I\r\n").await,
        "CLIENT_ERROR bad command line format"
    );

    // Marking stale forgets a win sent before (as memcached does), so the next reader
    // recomputes the value rather than everyone waiting on a recompute already done.
    assert_eq!(mc.ask("ms w 2 T10\r\nv1\r\n").await, "HD");
    assert_eq!(mc.ask("mg w R30\r\n").await, "HD W");
    assert_eq!(mc.ask("md w I\r\n").await, "HD");
    assert_eq!(mc.ask("mg w\r\n").await, "HD X W");
    assert_eq!(mc.ask("mg w\r\n").await, "HD Z X");
}
