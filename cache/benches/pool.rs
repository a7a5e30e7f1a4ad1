//! What the pool costs on top of the network: `Pool::get` of a small struct through placement,
//! breaker and postcard over three nodes, against plain `GET`s of the same bytes on one direct
//! `redis` multiplexed connection to one node. Same concurrency, same key set, all hits.
//!
//! A third side, the pool over that one node alone, does the same server work as the direct
//! connection, so its ratio is the pool's own cost with no difference in server processes.
//!
//! Run by `bench/cache-pool`, which starts the nodes pinned to one core and this program pinned
//! to the other:
//!
//! ```text
//! pool-bench NODE1 NODE2 NODE3 [--seconds S] [--concurrency C] [--rounds R]
//! ```
//!
//! Prints one line per run and the median ratios to the direct connection over the rounds.

use std::time::{Duration, Instant};

use cache::pool::{NodeSource, Pool, PoolConfig};
use prometheus_client::registry::Registry;
use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};

const KEYS: usize = 10_000;
const TTL: Duration = Duration::from_secs(3600);

/// A blog post summary, the kind of value the app caches.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Post {
    id: u64,
    title: String,
    author: String,
    excerpt: String,
    published_at: i64,
}

fn post(id: u64) -> Post {
    Post {
        id,
        title: format!("Scaling a blog, part {id}"),
        author: "leanstack".to_owned(),
        excerpt: "Every app server sees every cache node; keys spread by hashing. ".repeat(3),
        published_at: 1_700_000_000 + id as i64,
    }
}

fn key(i: usize) -> String {
    format!("post:{i}")
}

struct Args {
    nodes: Vec<String>,
    seconds: u64,
    concurrency: usize,
    rounds: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        nodes: Vec::new(),
        seconds: 5,
        concurrency: 32,
        rounds: 3,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            iter.next()
                .and_then(|v| v.parse().ok())
                .ok_or(format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--seconds" => args.seconds = number("--seconds")?,
            "--concurrency" => args.concurrency = number("--concurrency")? as usize,
            "--rounds" => args.rounds = number("--rounds")? as usize,
            // `cargo bench` passes --bench to every bench target.
            "--bench" => {}
            node => args.nodes.push(node.to_owned()),
        }
    }
    if args.nodes.len() != 3 {
        return Err(
            "usage: pool-bench NODE1 NODE2 NODE3 [--seconds S] [--concurrency C] [--rounds R]"
                .into(),
        );
    }
    Ok(args)
}

/// Requests per second and latency percentiles of one run.
#[derive(Debug, Clone, Copy)]
struct Run {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    /// This process's CPU time per request: the client's own cost, which other processes on a
    /// busy machine hardly disturb (unlike throughput and latency).
    cpu_per_request: Duration,
    /// This process's CPU time over the wall time: near 1 means the client thread is what
    /// limits throughput; well below 1, it is waiting for the nodes (or for a CPU).
    client_busy: f64,
    /// How often the client thread went to sleep (waiting for replies) per request: the fewer,
    /// the more replies each wake-up and each system call carry.
    sleeps_per_request: f64,
}

/// CPU time (user + system) this process has used, from `/proc/self/stat` (Linux; clock ticks
/// of 10 ms, fine over runs of seconds).
fn process_cpu() -> Duration {
    const TICKS_PER_SECOND: u64 = 100; // USER_HZ, 100 on every Linux platform we run on
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces; fields after its closing ')' are plain.
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|f| f.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
}

/// How many times the client thread has gone to sleep: `voluntary_ctxt_switches` of the main
/// thread, which runs the whole (current-thread) runtime.
fn client_sleeps() -> u64 {
    std::fs::read_to_string("/proc/thread-self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0)
}

/// Runs `op(i)` from `concurrency` tasks for `duration`, over keys chosen round-robin.
async fn measure<F, Fut>(concurrency: usize, duration: Duration, op: F) -> Run
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let start = Instant::now();
    let cpu_before = process_cpu();
    let sleeps_before = client_sleeps();
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = task * 7919;
                while start.elapsed() < duration {
                    let began = Instant::now();
                    op(i % KEYS).await;
                    latencies.push(began.elapsed());
                    i += 1;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("bench task"));
    }
    let elapsed = start.elapsed();
    let cpu = process_cpu().saturating_sub(cpu_before);
    let sleeps = client_sleeps().saturating_sub(sleeps_before);
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    Run {
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        cpu_per_request: cpu / u32::try_from(latencies.len()).unwrap_or(u32::MAX),
        client_busy: cpu.as_secs_f64() / elapsed.as_secs_f64(),
        sleeps_per_request: sleeps as f64 / latencies.len() as f64,
    }
}

/// What one run measures.
#[derive(Debug, Clone, Copy)]
enum Side {
    /// `Pool::get` over all three nodes: the issue's comparison.
    PoolOfThree,
    /// `Pool::get` over the direct connection's node alone: the same server work as `Direct`,
    /// so the difference is the pool's own cost (placement, breaker, timeout, decoding).
    PoolOfOne,
    /// `GET` on one multiplexed connection to one node.
    Direct,
}

const SIDES: [Side; 3] = [Side::PoolOfThree, Side::PoolOfOne, Side::Direct];

fn pool_over(nodes: &[String]) -> Pool {
    let mut config = PoolConfig::new(NodeSource::Static(nodes.to_vec()));
    // The bench measures overhead, not failures: a generous timeout keeps a noisy machine from
    // opening breakers mid-run.
    config.op_timeout = Duration::from_secs(1);
    Pool::new(config, &mut Registry::default())
}

fn measure_pool(pool: &Pool, args: &Args) -> impl Future<Output = Run> {
    let pool = pool.clone();
    measure(
        args.concurrency,
        Duration::from_secs(args.seconds),
        move |i| {
            let pool = pool.clone();
            async move {
                let post: Option<Post> = pool.get(&key(i)).await;
                assert!(post.is_some(), "bench keys are all hits");
            }
        },
    )
}

fn measure_direct(
    direct: &MultiplexedConnection,
    prefix: &str,
    args: &Args,
) -> impl Future<Output = Run> {
    let direct = direct.clone();
    let prefix = prefix.to_owned();
    measure(
        args.concurrency,
        Duration::from_secs(args.seconds),
        move |i| {
            let mut direct = direct.clone();
            let stored = format!("{prefix}{}", key(i));
            async move {
                let bytes: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(stored)
                    .query_async(&mut direct)
                    .await
                    .expect("direct GET");
                assert!(bytes.is_some(), "bench keys are all hits");
            }
        },
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let pool_of_three = pool_over(&args.nodes);
    let pool_of_one = pool_over(&args.nodes[..1]);
    for i in 0..KEYS {
        pool_of_three.set(&key(i), &post(i as u64), TTL).await;
    }

    // Copy every stored entry onto the first node, so that the direct connection (and the
    // one-node pool) read the very bytes the three-node pool reads: same payload, all hits.
    let mut direct: MultiplexedConnection =
        redis::Client::open(format!("redis://{}", args.nodes[0]))?
            .get_multiplexed_async_connection()
            .await?;
    let prefix = PoolConfig::new(NodeSource::Static(Vec::new())).versioned_prefix();
    for node in &args.nodes[1..] {
        let mut conn = redis::Client::open(format!("redis://{node}"))?
            .get_multiplexed_async_connection()
            .await?;
        for i in 0..KEYS {
            let stored = format!("{prefix}{}", key(i));
            let bytes: Option<Vec<u8>> = redis::cmd("GET")
                .arg(&stored)
                .query_async(&mut conn)
                .await?;
            if let Some(bytes) = bytes {
                let _: () = redis::cmd("SET")
                    .arg(&stored)
                    .arg(bytes)
                    .query_async(&mut direct)
                    .await?;
            }
        }
    }
    let dbsize: usize = redis::cmd("DBSIZE").query_async(&mut direct).await?;
    if dbsize < KEYS {
        return Err(format!("the first node holds {dbsize} of {KEYS} keys").into());
    }

    let mut ratios: Vec<[f64; 6]> = Vec::new();
    for round in 0..args.rounds {
        // Rotate which side goes first, so that drift on a shared machine hits all alike.
        let mut runs = [None; 3];
        for turn in 0..SIDES.len() {
            let index = (round + turn) % SIDES.len();
            let run = match SIDES[index] {
                Side::PoolOfThree => measure_pool(&pool_of_three, &args).await,
                Side::PoolOfOne => measure_pool(&pool_of_one, &args).await,
                Side::Direct => measure_direct(&direct, &prefix, &args).await,
            };
            println!(
                "round {} {:<12} {:>9.0} req/s  p50 {:>6} µs  p99 {:>6} µs  client CPU {:>5.2} µs/req  \
                 busy {:>3.0}%  sleeps {:.3}/req",
                round + 1,
                format!("{:?}", SIDES[index]),
                run.per_second,
                run.p50.as_micros(),
                run.p99.as_micros(),
                run.cpu_per_request.as_secs_f64() * 1e6,
                run.client_busy * 100.0,
                run.sleeps_per_request,
            );
            runs[index] = Some(run);
        }
        let [three, one, direct] = runs.map(|run| run.expect("every side ran this round"));
        ratios.push([
            three.per_second / direct.per_second,
            three.p99.as_secs_f64() / direct.p99.as_secs_f64(),
            one.per_second / direct.per_second,
            one.p99.as_secs_f64() / direct.p99.as_secs_f64(),
            three.cpu_per_request.as_secs_f64() / direct.cpu_per_request.as_secs_f64(),
            one.cpu_per_request.as_secs_f64() / direct.cpu_per_request.as_secs_f64(),
        ]);
    }
    let median = |column: usize| {
        let mut values: Vec<f64> = ratios.iter().map(|r| r[column]).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    println!("ratios to Direct, median of {} rounds:", args.rounds);
    println!(
        "  PoolOfThree: throughput {:.3}  p99 {:.3}  client CPU per request {:.3}",
        median(0),
        median(1),
        median(4)
    );
    println!(
        "  PoolOfOne:   throughput {:.3}  p99 {:.3}  client CPU per request {:.3}",
        median(2),
        median(3),
        median(5)
    );
    Ok(())
}
