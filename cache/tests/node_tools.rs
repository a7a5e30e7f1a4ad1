//! The node against the tools users already have: memcached's conformance suite
//! (`memccapable`), `memcaslap`, `redis-cli`, `redis-benchmark`, and the `cache healthcheck`
//! subcommand.
//! `scripts/test` installs the Debian packages these come from.

mod node_support;

use std::process::Output;
use std::time::Duration;

use node_support::TestNode;
use tokio::process::Command;

/// Runs a tool to completion, failing the test if it does not finish within `limit`.
async fn run(command: &mut Command, limit: Duration) -> Output {
    let program = format!("{:?}", command.as_std().get_program());
    let child = command.kill_on_drop(true).output();
    tokio::time::timeout(limit, child)
        .await
        .unwrap_or_else(|_| panic!("{program} did not finish within {limit:?}"))
        .unwrap_or_else(|error| {
            panic!("cannot run {program} ({error}); run ./scripts/test to install it")
        })
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memccapable_passes_every_ascii_test() {
    let node = TestNode::start().await;
    let output = run(
        Command::new("memccapable")
            .args(["-a", "-t", "5", "-h", "127.0.0.1", "-p"])
            .arg(node.memcache.port().to_string()),
        Duration::from_secs(120),
    )
    .await;
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("[pass]"), "{report}");
    assert!(!report.contains("[FAIL]"), "{report}");
}

/// memcaslap, the load generator `bench/cache-node.sh` uses: its keys start with control bytes
/// (0x10), which memcached accepts, so the node must too — else every request is an error and
/// the benchmark measures nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcaslap_runs_gets_and_sets_without_errors() {
    let node = TestNode::start().await;
    let output = run(
        Command::new("memcaslap")
            .args(["-x", "2000", "-T", "1", "-c", "4", "-X", "100", "-s"])
            .arg(node.memcache.to_string()),
        Duration::from_secs(60),
    )
    .await;
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    assert!(!report.contains("ERROR"), "{report}");
    let count = |name: &str| -> u64 {
        report
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {report}"))
    };
    assert_eq!(count("cmd_get:"), 1800, "{report}");
    assert_eq!(count("cmd_set:"), 200, "{report}");
    assert_eq!(count("get_misses:"), 0, "{report}");
    let mut mc = node.raw_memcache().await;
    mc.send("stats\r\n").await;
    let mut hits = None;
    loop {
        let line = mc.line().await;
        if line == "END" {
            break;
        }
        if let Some(value) = line.strip_prefix("STAT get_hits ") {
            hits = value.parse::<u64>().ok();
        }
    }
    assert_eq!(hits, Some(1800), "the node served every get");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_benchmark_runs_set_and_get() {
    let node = TestNode::start().await;
    let output = run(
        Command::new("redis-benchmark")
            .args(["-h", "127.0.0.1", "-q", "-n", "1000", "-t", "set,get", "-p"])
            .arg(node.resp.port().to_string()),
        Duration::from_secs(60),
    )
    .await;
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    assert!(
        report.contains("SET: ") && report.contains("GET: "),
        "{report}"
    );
    assert!(!report.to_lowercase().contains("error"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_works_unmodified() {
    let node = TestNode::start().await;
    let port = node.resp.port().to_string();
    let cli = |args: &[&str]| {
        let mut command = Command::new("redis-cli");
        command.args(["-h", "127.0.0.1", "-p", &port]).args(args);
        command
    };
    let set = run(
        &mut cli(&["SET", "greeting", "hello"]),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&set.stdout).trim(),
        "OK",
        "{}",
        text(&set)
    );
    let get = run(&mut cli(&["GET", "greeting"]), Duration::from_secs(10)).await;
    assert_eq!(String::from_utf8_lossy(&get.stdout).trim(), "hello");
    // -3 makes redis-cli open with HELLO 3.
    let resp3 = run(
        &mut cli(&["-3", "GET", "greeting"]),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&resp3.stdout).trim(),
        "hello",
        "{}",
        text(&resp3)
    );
    let info = run(&mut cli(&["INFO", "keyspace"]), Duration::from_secs(10)).await;
    assert!(String::from_utf8_lossy(&info.stdout).contains("db0:keys=1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healthcheck_subcommand_reports_whether_the_node_answers() {
    let node = TestNode::start().await;
    let healthcheck = |addr: String| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cache"));
        command.args(["--listen", &addr, "healthcheck"]);
        command
    };
    let up = run(
        &mut healthcheck(node.resp.to_string()),
        Duration::from_secs(10),
    )
    .await;
    assert!(up.status.success(), "{}", text(&up));
    let addr = node.resp.to_string();
    node.shutdown().await.unwrap();
    let down = run(&mut healthcheck(addr), Duration::from_secs(10)).await;
    assert!(!down.status.success(), "{}", text(&down));
}
