//! What the pool costs on top of the network: `Pool::get` of a small struct through placement,
//! breaker and postcard over three nodes, against plain `GET`s of the same bytes on one direct
//! `redis` multiplexed connection to one node. Same key set, all hits.
//!
//! Two more sides take the comparison apart:
//!
//! - the pool over that one node alone does the same server work as the direct connection, so
//!   its ratio is the pool's own cost with no difference in connections or server processes;
//! - three direct connections, one per node, each key read from the node the pool's placement
//!   puts it on, spread the load exactly as the pool over three nodes does, so the pool's ratio
//!   to them is its own cost over three nodes.
//!
//! Each round measures every side twice:
//!
//! - **closed loop**, the sides taking turns in stretches of `--stretch-ms` (in a fresh random
//!   order each cycle) until each has run `--seconds`: `--concurrency` loops each send a
//!   request as soon as their last one is answered. This finds each side's maximum throughput,
//!   and the client thread's CPU per request. In short turns every side meets its share of the
//!   machine's stalls and slow stretches; in turns of seconds, the throughput ratios scattered
//!   ±10–20% from round to round.
//! - **fixed rate** (open loop), all sides at once: one absolute schedule at an aggregate rate —
//!   `--rate` requests per second, or `--load` times the slowest side's closed-loop throughput
//!   in this round — deals each four consecutive requests to the four sides, so each side gets
//!   a quarter of the rate. A closed loop compares p99s at different loads (a faster
//!   side also queues more); at one offered load the p99s are comparable. Latency counts from
//!   each request's *scheduled* send time, so a client that falls behind pays for it
//!   (coordinated omission corrected, as wrk2 does), and goes into its own side's histogram. A
//!   side that does not keep up with its share is reported as such, with no latency.
//!
//! Every bench key is stored, so a request that finds nothing has failed (timed out: the pool
//! fails open and answers a miss). A closed-loop round with any failure leaves the throughput
//! ratios, as a fixed-rate side with any leaves the latency ratios: a failed request is a
//! fast one.
//!
//! Why the sides share one schedule: on a shared machine the p99 is made of stalls — the
//! client or a node taken off its CPU for milliseconds by another task — and every request due
//! during a stall waits it out. Run one after the other (even in quarter-second turns), the
//! sides met different stalls and their p99 ratio swung 0.4–2.7× from round to round while the
//! p50 ratio held within 2%. Interleaved request by request, every stall hits every side at
//! the same instant and in the same proportion, so the ratios compare the sides and not their
//! luck. The price: the sides share the client thread and the nodes' CPU, so time one side
//! spends there can delay another side's next request; each side still pays its own work on
//! its own requests, but part of a side's extra cost spills onto the others, which makes the
//! latency ratios a little smaller than a side's cost alone would. And node 0 serves both
//! one-node sides plus a third of the three-node ones, so it is busier than the other two: the
//! ratios across that line (`PoolOfThree / Direct`, `DirectOverThree / Direct`) include it,
//! while `PoolOfOne / Direct` and `PoolOfThree / DirectOverThree` compare sides that read from
//! the same nodes. The closed-loop ratios (throughput, client CPU per request) have no such
//! sharing.
//!
//! Run by `bench/cache-pool`, which starts the nodes pinned to one core and this program pinned
//! to the other:
//!
//! ```text
//! pool-bench NODE1 NODE2 NODE3 [--seconds S] [--stretch-ms MS] [--concurrency C] [--rounds R]
//!            [--load F | --rate REQ_PER_S] [--rate-seconds S]
//! ```
//!
//! `--rate` is the aggregate over all sides, like the rate `--load` sets; `--rate-seconds` is
//! how long the shared schedule runs. `--load 0` leaves out the fixed-rate part. Prints one
//! line per run and the median same-round ratios between sides.

use std::cell::RefCell;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use cache::pool::rendezvous::Rendezvous;
use cache::pool::{NodeSource, Pool, PoolConfig};
use futures::future::Either;
use futures::stream::{FuturesUnordered, StreamExt};
use hdrhistogram::Histogram;
use prometheus_client::registry::Registry;
use rand::seq::SliceRandom;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};

const KEYS: usize = 10_000;
const TTL: Duration = Duration::from_secs(3600);

/// The pool's operation timeout, and the direct connections' response timeout (the pool's
/// connections bound every request by it, so the direct ones do too: both arm the same timer).
/// The bench measures overhead, not failures: a generous timeout keeps a noisy machine from
/// opening breakers mid-run.
const OP_TIMEOUT: Duration = Duration::from_secs(1);
/// Fixed rate: a side's requests waiting for an answer beyond this many are not sent but counted
/// as dropped, so a side that cannot keep up shows it instead of queueing without bound.
const MAX_IN_FLIGHT: usize = 4096;
/// Fixed rate: a request that leaves later than this after its scheduled time is counted late.
const LATE: Duration = Duration::from_micros(100);
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
    /// Closed loop: each side's time per round, in stretches of `stretch_ms`.
    seconds: u64,
    stretch_ms: u64,
    concurrency: usize,
    rounds: usize,
    /// Fixed rate as a fraction of the round's slowest closed-loop throughput; 0: no fixed rate.
    load: f64,
    /// Fixed rate in requests per second, instead of `load`.
    rate: Option<f64>,
    rate_seconds: u64,
}

const USAGE: &str = "usage: pool-bench NODE1 NODE2 NODE3 [--seconds S] [--stretch-ms MS] \
                     [--concurrency C] [--rounds R] [--load F | --rate REQ_PER_S] [--rate-seconds S]";

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
        stretch_ms: 250,
        concurrency: 32,
        rounds: 3,
        load: 0.7,
        rate: None,
        rate_seconds: 20,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--seconds" => args.seconds = value(&mut iter, "--seconds")?,
            "--stretch-ms" => args.stretch_ms = value(&mut iter, "--stretch-ms")?,
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
    if args.nodes.len() != 3 || args.rounds == 0 || args.stretch_ms == 0 {
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
    /// The client thread's CPU time per request: the client's own cost, which other processes
    /// on a busy machine hardly disturb (unlike throughput and latency).
    cpu_per_request: Duration,
    /// The client thread's CPU time over the wall time: near 1 means the client thread is what
    /// limits throughput; well below 1, it is waiting for the nodes (or for a CPU).
    client_busy: f64,
    /// How often the client thread went to sleep (waiting for replies) per request: the fewer,
    /// the more replies each wake-up and each system call carry.
    sleeps_per_request: f64,
    /// Requests that failed (timed out): a pool answers them at once as misses, and quicker
    /// still once its breaker opens, so a run with any says nothing about throughput.
    failed: u64,
}

/// What one side's share of a fixed-rate run measured.
struct Paced {
    /// Requests per second asked of this side.
    target: f64,
    start: Instant,
    answered: u64,
    last_answer: Instant,
    /// Not sent because `MAX_IN_FLIGHT` of this side's requests were already waiting.
    dropped: u64,
    /// Sent more than `LATE` after their scheduled time.
    late: u64,
    /// Answered with nothing: errors and timeouts (see [`Client::get`]).
    failed: u64,
    /// Sent and not answered yet; once the run is over, the ones not answered within `DRAIN`.
    in_flight: usize,
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
            dropped: 0,
            late: 0,
            failed: 0,
            in_flight: 0,
            max_in_flight: 0,
            latency: histogram(),
            service: histogram(),
            lag: histogram(),
        }
    }

    fn send(&mut self) {
        self.in_flight += 1;
        self.max_in_flight = self.max_in_flight.max(self.in_flight);
    }

    fn answer(&mut self, answer: &Answer) {
        self.in_flight -= 1;
        self.answered += 1;
        self.last_answer = self.last_answer.max(answer.answered);
        if !answer.found {
            self.failed += 1;
        }
        let lag = answer.sent - answer.scheduled;
        if lag > LATE {
            self.late += 1;
        }
        record(&mut self.lag, lag);
        record(&mut self.latency, answer.answered - answer.scheduled);
        record(&mut self.service, answer.answered - answer.sent);
    }

    /// Answers per second from the start to the last answer: below the target when requests
    /// queued up faster than they were answered.
    fn achieved(&self) -> f64 {
        let elapsed = (self.last_answer - self.start).as_secs_f64();
        if elapsed > 0.0 {
            self.answered as f64 / elapsed
        } else {
            0.0
        }
    }

    /// Whether the side took the offered load: every request sent and found, at 99% of the
    /// rate or better. Otherwise its latency says nothing about the pool at that rate.
    fn kept_up(&self) -> bool {
        self.dropped == 0
            && self.in_flight == 0
            && self.failed == 0
            && self.achieved() >= 0.99 * self.target
    }

    /// Latency at the quantiles the ratios are reported for.
    fn percentiles(&self) -> [Duration; 3] {
        PERCENTILES.map(|(_, q)| quantile(&self.latency, q))
    }
}

/// The fixed-rate latency quantiles compared between sides.
const PERCENTILES: [(&str, f64); 3] = [("p50", 0.50), ("p99", 0.99), ("p99.9", 0.999)];

/// CPU time (user + system) the client thread has used, in nanoseconds, from
/// `/proc/thread-self/schedstat` (Linux). The runtime is current-thread, so this thread does
/// all of the client's work, the `redis` connections' tasks included.
fn client_cpu() -> Duration {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let nanos = schedstat
        .split_whitespace()
        .next()
        .and_then(|ns| ns.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(nanos)
}

/// One of the client thread's context-switch counters: the main thread runs the whole
/// (current-thread) runtime. `voluntary_ctxt_switches` counts how often it went to sleep,
/// `nonvoluntary_ctxt_switches` how often the scheduler took its CPU away while it could run.
fn client_switches(counter: &str) -> u64 {
    std::fs::read_to_string("/proc/thread-self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(counter)?.strip_prefix(':'))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0)
}

/// `concurrency` loops, each sending its next request when its last is answered, over keys
/// chosen round-robin. The sides take turns in stretches of `stretch`, in a fresh random order
/// each cycle, until each has run `per_side` in all.
///
/// Why in turns: a closed loop's throughput is requests over wall time, and on a shared machine
/// the wall time holds stalls (the client or a node taken off its CPU for milliseconds) and
/// slower stretches of the whole machine. Run for seconds one after the other, the sides met
/// different ones, and their throughput ratio scattered ±10–20% from round to round. In short
/// turns, each side meets its share of them.
struct ClosedLoop {
    concurrency: usize,
    per_side: Duration,
    stretch: Duration,
}

/// What one side's stretches add up to.
struct Tally {
    /// Requests that found nothing: errors and timeouts (see [`Client::get`]).
    failed: u64,
    elapsed: Duration,
    cpu: Duration,
    sleeps: u64,
    latencies: Histogram<u64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            failed: 0,
            elapsed: Duration::ZERO,
            cpu: Duration::ZERO,
            sleeps: 0,
            latencies: histogram(),
        }
    }

    fn run(&self) -> Run {
        let requests = self.latencies.len().max(1);
        Run {
            per_second: self.latencies.len() as f64 / self.elapsed.as_secs_f64(),
            p50: quantile(&self.latencies, 0.50),
            p99: quantile(&self.latencies, 0.99),
            cpu_per_request: self.cpu / u32::try_from(requests).unwrap_or(u32::MAX),
            client_busy: self.cpu.as_secs_f64() / self.elapsed.as_secs_f64(),
            sleeps_per_request: self.sleeps as f64 / requests as f64,
            failed: self.failed,
        }
    }
}

impl ClosedLoop {
    async fn measure(&self, clients: &[Client; 4]) -> [Run; 4] {
        let stretches = (self.per_side.as_secs_f64() / self.stretch.as_secs_f64()).ceil() as usize;
        let mut tallies = SIDES.map(|_| Tally::new());
        let mut rng = rand::rng();
        let mut order = SIDES;
        for stretch in 0..stretches.max(1) {
            order.shuffle(&mut rng);
            for side in order {
                // Each stretch starts elsewhere in the key set.
                let first_key = stretch * 104_729;
                self.run_stretch(
                    &clients[side as usize],
                    first_key,
                    &mut tallies[side as usize],
                )
                .await;
            }
        }
        tallies.each_ref().map(Tally::run)
    }

    async fn run_stretch(&self, client: &Client, first_key: usize, tally: &mut Tally) {
        let duration = self.stretch;
        let start = Instant::now();
        let cpu_before = client_cpu();
        let sleeps_before = client_switches("voluntary_ctxt_switches");
        // The loops run as futures of this one task and record into the side's one histogram:
        // a histogram per loop and stretch (≈ 200 KB zeroed, then merged) cost ≈ 1% of the
        // client's CPU, spread over every side's requests.
        let tally = RefCell::new(tally);
        let mut loops: FuturesUnordered<_> = (0..self.concurrency)
            .map(|task| {
                let tally = &tally;
                async move {
                    let mut i = first_key + task * 7919;
                    while start.elapsed() < duration {
                        let began = Instant::now();
                        let found = client.get(i % KEYS).await;
                        let mut tally = tally.borrow_mut();
                        record(&mut tally.latencies, began.elapsed());
                        if !found {
                            tally.failed += 1;
                        }
                        i += 1;
                    }
                }
            })
            .collect();
        while loops.next().await.is_some() {}
        drop(loops);
        let tally = tally.into_inner();
        tally.elapsed += start.elapsed();
        tally.cpu += client_cpu().saturating_sub(cpu_before);
        tally.sleeps += client_switches("voluntary_ctxt_switches").saturating_sub(sleeps_before);
    }
}

/// Requests sent at `rate` per second in all on one absolute schedule (request n at
/// start + n/rate) for `duration`, whatever the answers do, each four consecutive ones dealt to
/// the four sides in a random order, over keys chosen round-robin (the four read the same key).
///
/// Why random: a request may wait behind the one sent a few µs before it, in the client and at
/// the node (the four read the same key, so the three-node sides meet at the same node). In a
/// fixed order, even one rotated between rounds (which keeps who follows whom), each side would
/// always follow the same other side and pay for it, every round alike.
struct FixedRate {
    rate: f64,
    duration: Duration,
}

/// One fixed-rate request: whose it was, and when it was due, went out and was answered.
struct Answer {
    side: Side,
    scheduled: Instant,
    sent: Instant,
    answered: Instant,
    found: bool,
}

/// What one fixed-rate run measured.
struct Paired {
    /// Each side's share, indexed by `side as usize`.
    sides: [Paced; 4],
    /// How often the client thread was taken off its CPU while it had work (involuntary
    /// context switches): each one stalls every request due meanwhile, of every side alike.
    preempted: u64,
}

impl FixedRate {
    async fn measure(&self, clients: &[Client; 4]) -> Paired {
        let total = (self.rate * self.duration.as_secs_f64()) as u64;
        let start = Instant::now();
        let due = |n: u64| start + Duration::from_secs_f64(n as f64 / self.rate);
        let share = self.rate / SIDES.len() as f64;
        let mut paced = SIDES.map(|_| Paced::new(share, start));
        let preempted_before = client_switches("nonvoluntary_ctxt_switches");
        // Each request is its own future in the set, so any number can wait at once (up to
        // MAX_IN_FLIGHT per side); answers are recorded here, with no state shared between
        // tasks.
        let mut in_flight = FuturesUnordered::new();
        let mut rng = rand::rng();
        let mut order = SIDES;
        let mut next = 0;
        while next < total {
            let now = Instant::now();
            while next < total && due(next) <= now {
                let turn = next as usize % SIDES.len();
                if turn == 0 {
                    order.shuffle(&mut rng);
                }
                let side = order[turn];
                let pace = &mut paced[side as usize];
                if pace.in_flight < MAX_IN_FLIGHT {
                    let scheduled = due(next);
                    let key = next as usize / SIDES.len() % KEYS;
                    let request = clients[side as usize].get(key);
                    in_flight.push(async move {
                        // First polled right below: that is when the request goes out.
                        let sent = Instant::now();
                        let found = request.await;
                        Answer {
                            side,
                            scheduled,
                            sent,
                            answered: Instant::now(),
                            found,
                        }
                    });
                    pace.send();
                } else {
                    pace.dropped += 1;
                }
                next += 1;
            }
            // Sends what was just pushed and records what has been answered.
            while let Poll::Ready(Some(answer)) = futures::poll!(in_flight.next()) {
                paced[answer.side as usize].answer(&answer);
            }
            // Spin rather than sleep until the next send: tokio's timer has 1 ms granularity,
            // which would bunch µs-spaced requests into bursts, and the p99 would then measure
            // the bursts. Sleeping on a timerfd armed for each send (µs precision; tried) costs
            // a timer interrupt and a wake-up per send, and each wake-up may wait for whatever
            // else runs on the CPU: on the 2-vCPU VM that pacer sent 9–40% of requests late at
            // 57–82k req/s, where this loop sends ≈ 1% late at 85–120k. The thread has its own
            // core, so spinning takes nothing from the nodes. `yield_now` lets the runtime run
            // the connections' tasks and poll for I/O (without blocking) between checks, so
            // requests in flight still progress.
            tokio::task::yield_now().await;
        }
        // Whatever is still in flight after DRAIN stays counted in its side's `in_flight`.
        let _ = tokio::time::timeout(DRAIN, async {
            while let Some(answer) = in_flight.next().await {
                paced[answer.side as usize].answer(&answer);
            }
        })
        .await;
        Paired {
            sides: paced,
            preempted: client_switches("nonvoluntary_ctxt_switches")
                .saturating_sub(preempted_before),
        }
    }
}

/// What one run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// `Pool::get` over all three nodes: the issue's comparison.
    PoolOfThree,
    /// `GET` on three direct connections, each key on the node the pool places it on: the
    /// same connections and server work as `PoolOfThree`, so the difference is the pool's own
    /// cost over three nodes.
    DirectOverThree,
    /// `Pool::get` over the direct connection's node alone: the same server work as `Direct`,
    /// so the difference is the pool's own cost (placement, breaker, timeout, decoding).
    PoolOfOne,
    /// `GET` on one multiplexed connection to one node: the issue's baseline.
    Direct,
}

/// Every side, in the order of `Side`'s variants, so that `side as usize` indexes per-side
/// arrays.
const SIDES: [Side; 4] = [
    Side::PoolOfThree,
    Side::DirectOverThree,
    Side::PoolOfOne,
    Side::Direct,
];

/// The same-round ratios reported, side over baseline: every side against the issue's
/// baseline, and the pool over three nodes against direct connections to the same three.
const COMPARISONS: [(Side, Side); 4] = [
    (Side::PoolOfThree, Side::Direct),
    (Side::DirectOverThree, Side::Direct),
    (Side::PoolOfOne, Side::Direct),
    (Side::PoolOfThree, Side::DirectOverThree),
];

fn pool_over(nodes: &[String]) -> Pool {
    let mut config = PoolConfig::new(NodeSource::Static(nodes.to_vec()));
    config.op_timeout = OP_TIMEOUT;
    // A stall of the machine longer than the timeout fails a few requests in a row; an opened
    // breaker would then flush the node when it closes again (the pool's rejoin rule), taking
    // every bench key with it and turning all later requests of every side into misses. The
    // breaker's check stays on the path, as in production; it just never opens here.
    config.breaker.failure_threshold = u32::MAX;
    Pool::new(config, &mut Registry::default())
}

/// One side's client.
#[derive(Clone)]
enum Client {
    /// `Pool::get`, decoding a `Post`.
    Pool(Pool),
    Direct(DirectGet),
}

impl Client {
    /// Reads the key of the given index; `true` if it was found. Every bench key is stored, so
    /// `false` means a failure: an error or timeout, which the pool (failing open) turns into
    /// a miss. The future owns what it needs, so that any number of them can be in flight.
    fn get(&self, i: usize) -> impl Future<Output = bool> + Send + 'static {
        match self {
            Client::Pool(pool) => {
                let pool = pool.clone();
                Either::Left(async move { pool.get::<Post>(&key(i)).await.is_some() })
            }
            Client::Direct(direct) => Either::Right(direct.get(i)),
        }
    }
}

/// `GET` of the pool's stored bytes on a direct connection to a node that holds them.
#[derive(Clone)]
struct DirectGet {
    connections: Arc<[MultiplexedConnection]>,
    /// For each key index, the connection to read it from: looked up once when filling, so
    /// that this side does no placement work per request.
    owners: Arc<[usize]>,
    /// The pool's key prefix, which this side adds itself to read the same bytes.
    prefix: Arc<str>,
}

impl DirectGet {
    fn get(&self, i: usize) -> impl Future<Output = bool> + Send + 'static {
        let mut connection = self.connections[self.owners[i]].clone();
        let stored = format!("{}{}", self.prefix, key(i));
        async move {
            let bytes: redis::RedisResult<Option<Vec<u8>>> = redis::cmd("GET")
                .arg(stored)
                .query_async(&mut connection)
                .await;
            matches!(bytes, Ok(Some(_)))
        }
    }
}

/// A multiplexed connection bounding every request by the pool's operation timeout.
async fn connect(node: &str) -> redis::RedisResult<MultiplexedConnection> {
    redis::Client::open(format!("redis://{node}"))?
        .get_multiplexed_async_connection_with_config(
            &AsyncConnectionConfig::new().set_response_timeout(Some(OP_TIMEOUT)),
        )
        .await
}

/// Stores every key through the three-node pool, then copies every stored entry onto the
/// first node, so that the one-node sides read the very bytes the three-node sides read: same
/// payload, all hits. Returns every side's client, indexed by `side as usize`.
async fn fill(nodes: &[String]) -> Result<[Client; 4], Box<dyn std::error::Error>> {
    let pool_of_three = pool_over(nodes);
    for i in 0..KEYS {
        pool_of_three.set(&key(i), &post(i as u64), TTL).await;
    }
    let mut connections = Vec::new();
    for node in nodes {
        connections.push(connect(node).await?);
    }
    let prefix: Arc<str> = PoolConfig::new(NodeSource::Static(Vec::new()))
        .versioned_prefix()
        .into();
    let placement = Rendezvous::new(nodes);
    let mut owners = Vec::with_capacity(KEYS);
    for i in 0..KEYS {
        let stored = format!("{prefix}{}", key(i));
        let owner = placement.node_for(stored.as_bytes()).expect("three nodes");
        // A miss here would mean that this placement is not the pool's.
        let bytes: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&stored)
            .query_async(&mut connections[owner])
            .await?;
        let bytes = bytes.ok_or(format!(
            "{stored} is not where the pool's placement puts it"
        ))?;
        if owner != 0 {
            let _: () = redis::cmd("SET")
                .arg(&stored)
                .arg(bytes)
                .query_async(&mut connections[0])
                .await?;
        }
        owners.push(owner);
    }
    let owners: Arc<[usize]> = owners.into();
    // Its own connection, not `DirectOverThree`'s to the same node: in the fixed-rate part the
    // sides run at once, and two sides on one connection would queue behind each other's
    // requests on it, which no pool side does (each pool has its own connections). Sharing
    // one made both direct sides 1–9% slower at p50 than the pool sides.
    let direct = connect(&nodes[0]).await?;
    Ok(SIDES.map(|side| match side {
        Side::PoolOfThree => Client::Pool(pool_of_three.clone()),
        Side::DirectOverThree => Client::Direct(DirectGet {
            connections: connections.clone().into(),
            owners: owners.clone(),
            prefix: prefix.clone(),
        }),
        Side::PoolOfOne => Client::Pool(pool_over(&nodes[..1])),
        Side::Direct => Client::Direct(DirectGet {
            connections: [direct.clone()].into(),
            owners: vec![0; KEYS].into(),
            prefix: prefix.clone(),
        }),
    }))
}

/// "median [lowest–highest]" of one ratio over the rounds.
fn summary(mut values: Vec<f64>) -> String {
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

fn ratio(side: Duration, baseline: Duration) -> f64 {
    side.as_secs_f64() / baseline.as_secs_f64()
}

/// "Side / Baseline", padded for the summary's columns.
fn comparison_name((side, baseline): (Side, Side)) -> String {
    format!("{:<30}", format!("{side:?} / {baseline:?}"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let clients = fill(&args.nodes).await?;
    let closed_loop = ClosedLoop {
        concurrency: args.concurrency,
        per_side: Duration::from_secs(args.seconds),
        stretch: Duration::from_millis(args.stretch_ms),
    };

    // Per round where no request failed, every side's closed-loop run.
    let mut closed_rounds: Vec<[Run; 4]> = Vec::new();
    // Per round where every side kept up, every side's fixed-rate latency percentiles.
    let mut fixed_rounds: Vec<[[Duration; 3]; 4]> = Vec::new();
    for round in 1..=args.rounds {
        let runs = closed_loop.measure(&clients).await;
        for side in SIDES {
            let run = runs[side as usize];
            println!(
                "round {round} closed {:<15} {:>9.0} req/s  p50 {:>6} µs  p99 {:>6} µs  \
                 client CPU {:>5.2} µs/req  busy {:>3.0}%  sleeps {:.3}/req  failed {}",
                format!("{side:?}"),
                run.per_second,
                run.p50.as_micros(),
                run.p99.as_micros(),
                run.cpu_per_request.as_secs_f64() * 1e6,
                run.client_busy * 100.0,
                run.sleeps_per_request,
                run.failed,
            );
        }
        if runs.iter().all(|run| run.failed == 0) {
            closed_rounds.push(runs);
        }

        let (rate, why) = match args.rate {
            Some(rate) => (rate, "--rate".to_owned()),
            None if args.load > 0.0 => {
                let slowest = SIDES
                    .into_iter()
                    .min_by(|&a, &b| {
                        runs[a as usize]
                            .per_second
                            .total_cmp(&runs[b as usize].per_second)
                    })
                    .expect("four sides");
                (
                    args.load * runs[slowest as usize].per_second,
                    format!("{:.2} × {slowest:?}'s closed-loop throughput", args.load),
                )
            }
            None => continue,
        };
        println!(
            "round {round} fixed rate {rate:.0} req/s in all ({why}) for {}s: {:.0} req/s per \
             side, each four consecutive requests dealt to the four sides in a random order",
            args.rate_seconds,
            rate / SIDES.len() as f64,
        );
        let fixed_rate = FixedRate {
            rate,
            duration: Duration::from_secs(args.rate_seconds),
        };
        let Paired {
            sides: paced,
            preempted,
        } = fixed_rate.measure(&clients).await;
        for side in SIDES {
            let run = &paced[side as usize];
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
                    "DID NOT KEEP UP (dropped {}, unanswered {}, failed {}): no latency reported",
                    run.dropped, run.in_flight, run.failed
                )
            };
            println!(
                "round {round} fixed  {:<15} {:>9.0} req/s  {verdict}  sent late {:.1}%  \
                 in flight ≤ {}",
                format!("{side:?}"),
                run.achieved(),
                run.late as f64 * 100.0 / run.answered.max(1) as f64,
                run.max_in_flight,
            );
        }
        println!("round {round} fixed  client preempted {preempted}× (every side alike)");
        if paced.iter().all(Paced::kept_up) {
            fixed_rounds.push(paced.each_ref().map(Paced::percentiles));
        }
    }

    if closed_rounds.is_empty() {
        println!("closed loop: requests failed in every round, so no throughput ratios");
    } else {
        println!(
            "closed loop, same-round ratios, median [range] of the {} of {} rounds where no \
             request failed:",
            closed_rounds.len(),
            args.rounds
        );
        for comparison @ (side, baseline) in COMPARISONS {
            let ratios = |of: fn(&Run, &Run) -> f64| {
                summary(
                    closed_rounds
                        .iter()
                        .map(|runs| of(&runs[side as usize], &runs[baseline as usize]))
                        .collect(),
                )
            };
            println!(
                "  {} throughput {}  p99 {}  client CPU per request {}",
                comparison_name(comparison),
                ratios(|side, baseline| side.per_second / baseline.per_second),
                ratios(|side, baseline| ratio(side.p99, baseline.p99)),
                ratios(|side, baseline| ratio(side.cpu_per_request, baseline.cpu_per_request)),
            );
        }
    }
    if args.rate.is_none() && args.load == 0.0 {
        return Ok(());
    }
    if fixed_rounds.is_empty() {
        println!("fixed rate: in no round did every side keep up, so no latency ratios");
        return Ok(());
    }
    println!(
        "fixed rate, same-round latency ratios, median [range] of the {} of {} rounds where \
         every side kept up:",
        fixed_rounds.len(),
        args.rounds
    );
    for comparison @ (side, baseline) in COMPARISONS {
        let columns: Vec<String> = PERCENTILES
            .iter()
            .enumerate()
            .map(|(column, (name, _))| {
                let ratios = fixed_rounds
                    .iter()
                    .map(|round| {
                        ratio(
                            round[side as usize][column],
                            round[baseline as usize][column],
                        )
                    })
                    .collect();
                format!("{name} {}", summary(ratios))
            })
            .collect();
        println!("  {} {}", comparison_name(comparison), columns.join("  "));
    }
    Ok(())
}
