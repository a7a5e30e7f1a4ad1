//! What the pool costs on top of the network: `Pool::get` of a small struct through placement,
//! breaker and postcard over three nodes, against plain `GET`s of the same bytes on one direct
//! `redis` multiplexed connection to one node. Same key set, all hits.
//!
//! A third side, the pool over that one node alone, does the same server work as the direct
//! connection, so its ratio is the pool's own cost with no difference in server processes.
//!
//! Each round measures every side twice, in a rotating order:
//!
//! - **closed loop**: `--concurrency` tasks each send a request as soon as their last one is
//!   answered. This finds each side's maximum throughput, and the client's CPU per request.
//! - **fixed rate** (open loop): requests leave on an absolute schedule at the same rate for
//!   every side — `--rate` requests per second, or `--load` times the slowest side's
//!   closed-loop throughput in this round. A closed loop compares p99s at different loads (a
//!   faster side also queues more); at one offered load the p99s are comparable. Latency counts
//!   from each request's *scheduled* send time, so a client that falls behind pays for it
//!   (coordinated omission corrected, as wrk2 does). A side that does not keep up with the rate
//!   is reported as such, with no latency. The sides take turns in slices of a quarter second
//!   (each side's `--rate-seconds` in all), so that a slow stretch of the machine hits every
//!   side alike.
//!
//! Run by `bench/cache-pool`, which starts the nodes pinned to one core and this program pinned
//! to the other:
//!
//! ```text
//! pool-bench NODE1 NODE2 NODE3 [--seconds S] [--concurrency C] [--rounds R]
//!            [--load F | --rate REQ_PER_S] [--rate-seconds S]
//! ```
//!
//! `--load 0` leaves out the fixed-rate part. Prints one line per run and the median
//! same-round ratios to the direct connection.

use std::task::Poll;
use std::time::{Duration, Instant};

use cache::pool::{NodeSource, Pool, PoolConfig};
use futures::stream::{FuturesUnordered, StreamExt};
use hdrhistogram::Histogram;
use prometheus_client::registry::Registry;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};

const KEYS: usize = 10_000;
const TTL: Duration = Duration::from_secs(3600);

/// The pool's operation timeout, and the direct connection's response timeout (the pool's
/// connections bound every request by it, so the direct one does too: both arm the same timer).
/// The bench measures overhead, not failures: a generous timeout keeps a noisy machine from
/// opening breakers mid-run.
const OP_TIMEOUT: Duration = Duration::from_secs(1);
/// Fixed rate: requests waiting for an answer beyond this many are not sent but counted as
/// dropped, so a side that cannot keep up shows it instead of queueing without bound.
const MAX_IN_FLIGHT: usize = 4096;
/// Fixed rate: a request that leaves later than this after its scheduled time is counted late.
const LATE: Duration = Duration::from_micros(100);
/// Fixed rate: each side's `--rate-seconds` are run in turns of this long, alternating sides.
const SLICE: Duration = Duration::from_millis(250);
/// Fixed rate: how long to wait for the last answers once the schedule is over (beyond the
/// pool's 1 s operation timeout).
const DRAIN: Duration = Duration::from_secs(2);

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
    /// Fixed rate as a fraction of the round's slowest closed-loop throughput; 0: no fixed rate.
    load: f64,
    /// Fixed rate in requests per second, instead of `load`.
    rate: Option<f64>,
    rate_seconds: u64,
}

const USAGE: &str = "usage: pool-bench NODE1 NODE2 NODE3 [--seconds S] [--concurrency C] \
                     [--rounds R] [--load F | --rate REQ_PER_S] [--rate-seconds S]";

fn parse_args() -> Result<Args, String> {
    fn value<T: std::str::FromStr>(
        iter: &mut impl Iterator<Item = String>,
        name: &str,
    ) -> Result<T, String> {
        iter.next()
            .and_then(|v| v.parse().ok())
            .ok_or(format!("{name} needs a number"))
    }
    let mut args = Args {
        nodes: Vec::new(),
        seconds: 5,
        concurrency: 32,
        rounds: 3,
        load: 0.7,
        rate: None,
        rate_seconds: 10,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--seconds" => args.seconds = value(&mut iter, "--seconds")?,
            "--concurrency" => args.concurrency = value(&mut iter, "--concurrency")?,
            "--rounds" => args.rounds = value(&mut iter, "--rounds")?,
            "--load" => args.load = value(&mut iter, "--load")?,
            "--rate" => args.rate = Some(value(&mut iter, "--rate")?),
            "--rate-seconds" => args.rate_seconds = value(&mut iter, "--rate-seconds")?,
            // `cargo bench` passes --bench to every bench target.
            "--bench" => {}
            node => args.nodes.push(node.to_owned()),
        }
    }
    if args.nodes.len() != 3 || args.rounds == 0 {
        return Err(USAGE.into());
    }
    if args.load < 0.0 || args.rate.is_some_and(|rate| rate <= 0.0) {
        return Err("--load must be at least 0 and --rate above 0".into());
    }
    Ok(args)
}

/// Latencies in nanoseconds with three significant digits, up to a minute (longer ones are
/// recorded as a minute).
fn histogram() -> Histogram<u64> {
    Histogram::new_with_max(60_000_000_000, 3).expect("valid histogram bounds")
}

fn record(histogram: &mut Histogram<u64>, duration: Duration) {
    histogram.saturating_record(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
}

fn quantile(histogram: &Histogram<u64>, q: f64) -> Duration {
    Duration::from_nanos(histogram.value_at_quantile(q))
}

/// Requests per second and latency percentiles of one closed-loop run.
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

/// What one fixed-rate run (or several slices of runs, merged) measured.
struct Paced {
    /// Requests per second asked for.
    target: f64,
    start: Instant,
    answered: u64,
    last_answer: Instant,
    /// From start to last answer of the slices merged into this one before.
    merged_span: Duration,
    /// Not sent because `MAX_IN_FLIGHT` requests were already waiting.
    dropped: u64,
    /// Sent more than `LATE` after their scheduled time.
    late: u64,
    /// Not answered within `DRAIN` after the schedule ended.
    unfinished: usize,
    max_in_flight: usize,
    /// From the scheduled send time to the answer: what a caller arriving on schedule waits.
    latency: Histogram<u64>,
    /// From the actual send to the answer.
    service: Histogram<u64>,
    /// From the scheduled to the actual send: how far the client itself fell behind.
    lag: Histogram<u64>,
}

impl Paced {
    fn new(target: f64, start: Instant) -> Self {
        Self {
            target,
            start,
            answered: 0,
            last_answer: start,
            merged_span: Duration::ZERO,
            dropped: 0,
            late: 0,
            unfinished: 0,
            max_in_flight: 0,
            latency: histogram(),
            service: histogram(),
            lag: histogram(),
        }
    }

    fn answer(&mut self, (scheduled, sent, answered): (Instant, Instant, Instant)) {
        self.answered += 1;
        self.last_answer = self.last_answer.max(answered);
        let lag = sent - scheduled;
        if lag > LATE {
            self.late += 1;
        }
        record(&mut self.lag, lag);
        record(&mut self.latency, answered - scheduled);
        record(&mut self.service, answered - sent);
    }

    /// Adds a later slice of the same side at the same rate.
    fn merge(&mut self, slice: Paced) {
        self.merged_span += slice.span();
        self.answered += slice.answered;
        self.dropped += slice.dropped;
        self.late += slice.late;
        self.unfinished += slice.unfinished;
        self.max_in_flight = self.max_in_flight.max(slice.max_in_flight);
        for (total, part) in [
            (&mut self.latency, &slice.latency),
            (&mut self.service, &slice.service),
            (&mut self.lag, &slice.lag),
        ] {
            total
                .add(part)
                .expect("histograms of the same bounds add up");
        }
    }

    /// The time from each slice's start to its last answer, summed.
    fn span(&self) -> Duration {
        self.merged_span + (self.last_answer - self.start)
    }

    /// Answers per second from the start to the last answer: below the target when requests
    /// queued up faster than they were answered.
    fn achieved(&self) -> f64 {
        let elapsed = self.span().as_secs_f64();
        if elapsed > 0.0 {
            self.answered as f64 / elapsed
        } else {
            0.0
        }
    }

    /// Whether the side took the offered load: every request sent and answered, at 99% of the
    /// rate or better. Otherwise its latency says nothing about the pool at that rate.
    fn kept_up(&self) -> bool {
        self.dropped == 0 && self.unfinished == 0 && self.achieved() >= 0.99 * self.target
    }
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

/// One side's request: a hit on the key of the given index.
trait Get: Clone + Send + 'static {
    fn get(&self, i: usize) -> impl Future<Output = ()> + Send + 'static;
}

/// One way of loading a side with requests.
trait Measure {
    type Output;
    async fn measure(&self, get: impl Get) -> Self::Output;
}

/// `concurrency` tasks, each sending its next request when the last is answered, for
/// `duration`, over keys chosen round-robin.
struct ClosedLoop {
    concurrency: usize,
    duration: Duration,
}

impl Measure for ClosedLoop {
    type Output = Run;

    async fn measure(&self, get: impl Get) -> Run {
        let duration = self.duration;
        let start = Instant::now();
        let cpu_before = process_cpu();
        let sleeps_before = client_sleeps();
        let tasks: Vec<_> = (0..self.concurrency)
            .map(|task| {
                let get = get.clone();
                tokio::spawn(async move {
                    let mut latencies = histogram();
                    let mut i = task * 7919;
                    while start.elapsed() < duration {
                        let began = Instant::now();
                        get.get(i % KEYS).await;
                        record(&mut latencies, began.elapsed());
                        i += 1;
                    }
                    latencies
                })
            })
            .collect();
        let mut latencies = histogram();
        for task in tasks {
            latencies
                .add(task.await.expect("bench task"))
                .expect("histograms of the same bounds add up");
        }
        let elapsed = start.elapsed();
        let cpu = process_cpu().saturating_sub(cpu_before);
        let sleeps = client_sleeps().saturating_sub(sleeps_before);
        let count = latencies.len();
        Run {
            per_second: count as f64 / elapsed.as_secs_f64(),
            p50: quantile(&latencies, 0.50),
            p99: quantile(&latencies, 0.99),
            cpu_per_request: cpu / u32::try_from(count).unwrap_or(u32::MAX),
            client_busy: cpu.as_secs_f64() / elapsed.as_secs_f64(),
            sleeps_per_request: sleeps as f64 / count as f64,
        }
    }
}

/// Requests sent at `rate` per second on an absolute schedule (request i at start + i/rate)
/// for `duration`, whatever the answers do, over keys chosen round-robin.
struct FixedRate {
    rate: f64,
    duration: Duration,
}

impl Measure for FixedRate {
    type Output = Paced;

    async fn measure(&self, get: impl Get) -> Paced {
        let total = (self.rate * self.duration.as_secs_f64()) as u64;
        let start = Instant::now();
        let due = |i: u64| start + Duration::from_secs_f64(i as f64 / self.rate);
        let mut paced = Paced::new(self.rate, start);
        // Each request is its own future in the set, so any number can wait at once (up to
        // MAX_IN_FLIGHT); answers are recorded here, with no state shared between tasks.
        let mut in_flight = FuturesUnordered::new();
        let mut next = 0;
        while next < total {
            let now = Instant::now();
            while next < total && due(next) <= now {
                if in_flight.len() < MAX_IN_FLIGHT {
                    let scheduled = due(next);
                    let request = get.get(next as usize % KEYS);
                    in_flight.push(async move {
                        // First polled right below: that is when the request goes out.
                        let sent = Instant::now();
                        request.await;
                        (scheduled, sent, Instant::now())
                    });
                    paced.max_in_flight = paced.max_in_flight.max(in_flight.len());
                } else {
                    paced.dropped += 1;
                }
                next += 1;
            }
            // Sends what was just pushed and records what has been answered.
            while let Poll::Ready(Some(times)) = futures::poll!(in_flight.next()) {
                paced.answer(times);
            }
            // Spin rather than sleep until the next send: tokio's timer has 1 ms granularity,
            // which would bunch µs-spaced requests into bursts, and the p99 would then measure
            // the bursts. This thread has its own core, so spinning costs nothing that the
            // nodes could use. `yield_now` lets the runtime run the connections' tasks and poll
            // for I/O (without blocking) between checks, so requests in flight still progress.
            tokio::task::yield_now().await;
        }
        // Whatever is still in flight after DRAIN counts as unfinished.
        let _ = tokio::time::timeout(DRAIN, async {
            while let Some(times) = in_flight.next().await {
                paced.answer(times);
            }
        })
        .await;
        paced.unfinished = in_flight.len();
        paced
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
    config.op_timeout = OP_TIMEOUT;
    Pool::new(config, &mut Registry::default())
}

/// The three sides' clients.
struct Clients {
    pool_of_three: Pool,
    pool_of_one: Pool,
    direct: MultiplexedConnection,
    /// The pool's key prefix, which the direct connection adds itself to read the same bytes.
    prefix: String,
}

impl Clients {
    async fn measure<M: Measure>(&self, side: Side, how: &M) -> M::Output {
        match side {
            Side::PoolOfThree => how.measure(PoolGet(self.pool_of_three.clone())).await,
            Side::PoolOfOne => how.measure(PoolGet(self.pool_of_one.clone())).await,
            Side::Direct => {
                how.measure(DirectGet {
                    direct: self.direct.clone(),
                    prefix: self.prefix.clone(),
                })
                .await
            }
        }
    }
}

/// `Pool::get`, decoding a `Post`.
#[derive(Clone)]
struct PoolGet(Pool);

impl Get for PoolGet {
    fn get(&self, i: usize) -> impl Future<Output = ()> + Send + 'static {
        let pool = self.0.clone();
        async move {
            let post: Option<Post> = pool.get(&key(i)).await;
            assert!(post.is_some(), "bench keys are all hits");
        }
    }
}

/// `GET` of the pool's stored bytes on the direct connection.
#[derive(Clone)]
struct DirectGet {
    direct: MultiplexedConnection,
    prefix: String,
}

impl Get for DirectGet {
    fn get(&self, i: usize) -> impl Future<Output = ()> + Send + 'static {
        let mut direct = self.direct.clone();
        let stored = format!("{}{}", self.prefix, key(i));
        async move {
            let bytes: Option<Vec<u8>> = redis::cmd("GET")
                .arg(stored)
                .query_async(&mut direct)
                .await
                .expect("direct GET");
            assert!(bytes.is_some(), "bench keys are all hits");
        }
    }
}

/// Stores every key through the three-node pool, then copies every stored entry onto the
/// first node, so that the direct connection (and the one-node pool) read the very bytes the
/// three-node pool reads: same payload, all hits.
async fn fill(nodes: &[String]) -> Result<Clients, Box<dyn std::error::Error>> {
    let pool_of_three = pool_over(nodes);
    let pool_of_one = pool_over(&nodes[..1]);
    for i in 0..KEYS {
        pool_of_three.set(&key(i), &post(i as u64), TTL).await;
    }
    let mut direct: MultiplexedConnection = redis::Client::open(format!("redis://{}", nodes[0]))?
        .get_multiplexed_async_connection_with_config(
            &AsyncConnectionConfig::new().set_response_timeout(Some(OP_TIMEOUT)),
        )
        .await?;
    let prefix = PoolConfig::new(NodeSource::Static(Vec::new())).versioned_prefix();
    for node in &nodes[1..] {
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
    Ok(Clients {
        pool_of_three,
        pool_of_one,
        direct,
        prefix,
    })
}

/// "median [lowest–highest]" of one column of same-round ratios.
fn summary<const N: usize>(rows: &[[f64; N]], column: usize) -> String {
    let mut values: Vec<f64> = rows.iter().map(|row| row[column]).collect();
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    let median = if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    };
    format!(
        "{median:.3} [{:.2}–{:.2}]",
        values[0],
        values[values.len() - 1]
    )
}

fn ratio(side: Duration, direct: Duration) -> f64 {
    side.as_secs_f64() / direct.as_secs_f64()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let clients = fill(&args.nodes).await?;
    let closed_loop = ClosedLoop {
        concurrency: args.concurrency,
        duration: Duration::from_secs(args.seconds),
    };

    // Per round: throughput, p99 and client CPU ratios of PoolOfThree, then of PoolOfOne.
    let mut closed_ratios: Vec<[f64; 6]> = Vec::new();
    // Per round where every side kept up: p50, p99 and p99.9 ratios of PoolOfThree, then of
    // PoolOfOne.
    let mut fixed_ratios: Vec<[f64; 6]> = Vec::new();
    for round in 1..=args.rounds {
        // Rotate which side goes first, so that drift on a shared machine hits all alike.
        let order: Vec<usize> = (0..SIDES.len())
            .map(|turn| (round + turn) % SIDES.len())
            .collect();

        let mut runs = [None; 3];
        for &index in &order {
            let run = clients.measure(SIDES[index], &closed_loop).await;
            println!(
                "round {round} closed {:<12} {:>9.0} req/s  p50 {:>6} µs  p99 {:>6} µs  \
                 client CPU {:>5.2} µs/req  busy {:>3.0}%  sleeps {:.3}/req",
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
        closed_ratios.push([
            three.per_second / direct.per_second,
            ratio(three.p99, direct.p99),
            ratio(three.cpu_per_request, direct.cpu_per_request),
            one.per_second / direct.per_second,
            ratio(one.p99, direct.p99),
            ratio(one.cpu_per_request, direct.cpu_per_request),
        ]);

        let (rate, why) = match args.rate {
            Some(rate) => (rate, "--rate".to_owned()),
            None if args.load > 0.0 => {
                let (slowest, run) = [three, one, direct]
                    .into_iter()
                    .enumerate()
                    .min_by(|(_, a), (_, b)| a.per_second.total_cmp(&b.per_second))
                    .expect("three sides");
                (
                    args.load * run.per_second,
                    format!(
                        "{:.2} × {:?}'s closed-loop throughput",
                        args.load, SIDES[slowest]
                    ),
                )
            }
            None => continue,
        };
        println!(
            "round {round} fixed rate {rate:.0} req/s for {}s ({why})",
            args.rate_seconds
        );
        // The sides take turns in slices, so that a stretch of seconds when the machine is
        // slower (another process, the hypervisor) falls on every side alike rather than on
        // whichever side ran then (Direct's own p99 ranged 126–1593 µs between 5 s runs).
        let slices = (Duration::from_secs(args.rate_seconds).as_nanos() / SLICE.as_nanos()).max(1);
        let fixed_rate = FixedRate {
            rate,
            duration: SLICE,
        };
        let mut paced: [Option<Paced>; 3] = [None, None, None];
        for _ in 0..slices {
            for &index in &order {
                let slice = clients.measure(SIDES[index], &fixed_rate).await;
                match &mut paced[index] {
                    Some(run) => run.merge(slice),
                    empty => *empty = Some(slice),
                }
            }
        }
        for &index in &order {
            let run = paced[index].as_ref().expect("every side ran this round");
            let side = format!("{:?}", SIDES[index]);
            let verdict = if run.kept_up() {
                format!(
                    "latency p50 {:>5} µs  p99 {:>5} µs  p99.9 {:>5} µs  \
                     service p50 {:>5} µs  p99 {:>5} µs  send lag p99 {:>4} µs",
                    quantile(&run.latency, 0.50).as_micros(),
                    quantile(&run.latency, 0.99).as_micros(),
                    quantile(&run.latency, 0.999).as_micros(),
                    quantile(&run.service, 0.50).as_micros(),
                    quantile(&run.service, 0.99).as_micros(),
                    quantile(&run.lag, 0.99).as_micros(),
                )
            } else {
                format!(
                    "DID NOT KEEP UP (dropped {}, unanswered {}): no latency reported",
                    run.dropped, run.unfinished
                )
            };
            println!(
                "round {round} fixed  {side:<12} {:>9.0} req/s  {verdict}  sent late {:.1}%  \
                 in flight ≤ {}",
                run.achieved(),
                run.late as f64 * 100.0 / run.answered.max(1) as f64,
                run.max_in_flight,
            );
        }
        let [three, one, direct] = paced.map(|run| run.expect("every side ran this round"));
        if [&three, &one, &direct].iter().all(|run| run.kept_up()) {
            let at = |run: &Paced, q| quantile(&run.latency, q);
            fixed_ratios.push([
                ratio(at(&three, 0.50), at(&direct, 0.50)),
                ratio(at(&three, 0.99), at(&direct, 0.99)),
                ratio(at(&three, 0.999), at(&direct, 0.999)),
                ratio(at(&one, 0.50), at(&direct, 0.50)),
                ratio(at(&one, 0.99), at(&direct, 0.99)),
                ratio(at(&one, 0.999), at(&direct, 0.999)),
            ]);
        }
    }

    println!(
        "closed loop, ratios to Direct, median [range] of {} rounds:",
        closed_ratios.len()
    );
    for (name, first) in [("PoolOfThree", 0), ("PoolOfOne", 3)] {
        println!(
            "  {name:<12} throughput {}  p99 {}  client CPU per request {}",
            summary(&closed_ratios, first),
            summary(&closed_ratios, first + 1),
            summary(&closed_ratios, first + 2),
        );
    }
    if args.rate.is_some() || args.load > 0.0 {
        if fixed_ratios.is_empty() {
            println!("fixed rate: in no round did every side keep up, so no latency ratios");
        } else {
            println!(
                "fixed rate, latency ratios to Direct, median [range] of the {} of {} rounds \
                 where every side kept up:",
                fixed_ratios.len(),
                args.rounds
            );
            for (name, first) in [("PoolOfThree", 0), ("PoolOfOne", 3)] {
                println!(
                    "  {name:<12} p50 {}  p99 {}  p99.9 {}",
                    summary(&fixed_ratios, first),
                    summary(&fixed_ratios, first + 1),
                    summary(&fixed_ratios, first + 2),
                );
            }
        }
    }
    Ok(())
}
