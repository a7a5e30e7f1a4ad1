//! The two ways of offering load.
//!
//! **Open-loop** models the internet: visitors arrive at a fixed rate whatever the server does.
//! Request *i* is due at `start + i / rate`; the dispatcher sends each when due (or as soon as
//! a slot frees up, if `--max-in-flight` are outstanding), and its latency counts from when it
//! was due. So when the server stalls, the requests that should have gone out meanwhile carry
//! the stall in their latency — the correction for coordinated omission, exact here rather
//! than estimated afterwards, since every due time is known.
//!
//! **Closed-loop** models a fixed crowd: N users each send a request, wait for the answer, and
//! send the next. Throughput then follows the server's speed, and latency counts from the
//! actual send (a closed loop has no schedule to fall behind).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::config::Bounds;
use crate::exchange::Exchanger;
use crate::stats::{Recorder, Sample};
use crate::workload::{Mix, Planned};

/// How late tokio's timer may wake a task.
const TIMER_RESOLUTION: Duration = Duration::from_millis(1);

/// How load is offered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    OpenLoop { rate: f64, max_in_flight: usize },
    ClosedLoop { users: usize },
}

impl Mode {
    pub fn describe(self) -> String {
        match self {
            Mode::OpenLoop { rate, .. } => format!("open-loop, {rate} requests/s scheduled"),
            Mode::ClosedLoop { users } => format!("closed-loop, {users} concurrent users"),
        }
    }
}

/// What a run needs to send requests.
#[derive(Debug, Clone)]
pub struct Driver {
    pub mix: Arc<Mix>,
    pub exchanger: Arc<Exchanger>,
    pub recorder: Arc<Recorder>,
    pub seed: u64,
    /// Set to stop scheduling early (Ctrl-C); requests in flight still finish.
    pub stop: Arc<AtomicBool>,
}

impl Driver {
    /// Offers load in `mode` until `bounds` are reached, then waits for the requests in flight.
    pub async fn run(&self, mode: Mode, bounds: Bounds) {
        match mode {
            Mode::OpenLoop {
                rate,
                max_in_flight,
            } => self.open_loop(rate, max_in_flight, bounds).await,
            Mode::ClosedLoop { users } => self.closed_loop(users, bounds).await,
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    async fn open_loop(&self, rate: f64, max_in_flight: usize, bounds: Bounds) {
        let start = self.recorder.start();
        let slots = Arc::new(Semaphore::new(max_in_flight));
        let mut rng = StdRng::seed_from_u64(self.seed);
        for index in 0u64.. {
            if bounds.requests.is_some_and(|limit| index >= limit) || self.stopped() {
                break;
            }
            let due_after = Duration::from_secs_f64(index as f64 / rate);
            if bounds.duration.is_some_and(|limit| due_after >= limit) {
                break;
            }
            let due = start + due_after;
            // tokio's timer fires on the first 1 ms tick at or after its deadline; waking a tick
            // early keeps that rounding out of the latency (a request sent before it was due
            // counts from its send). Behind schedule — a burst after a stall — the due requests
            // go out at once.
            let wake = due.checked_sub(TIMER_RESOLUTION).unwrap_or(due);
            if wake > Instant::now() {
                tokio::time::sleep_until(wake.into()).await;
            }
            let slot = slots
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let planned = self.mix.next(&mut rng);
            let driver = self.clone();
            tokio::spawn(async move {
                driver.exchange(&planned, due).await;
                drop(slot);
            });
        }
        // Every request holds a slot until it is recorded: having them all means all are done.
        let all = u32::try_from(max_in_flight).expect("validated to fit");
        let _done = slots.acquire_many(all).await;
    }

    async fn closed_loop(&self, users: usize, bounds: Bounds) {
        let deadline = bounds.duration.map(|limit| self.recorder.start() + limit);
        let issued = Arc::new(AtomicU64::new(0));
        let mut crowd = JoinSet::new();
        for user in 0..users {
            let driver = self.clone();
            let issued = issued.clone();
            crowd.spawn(async move {
                let mut rng = StdRng::seed_from_u64(driver.seed.wrapping_add(user as u64));
                loop {
                    let out_of_time = deadline.is_some_and(|deadline| Instant::now() >= deadline);
                    let out_of_requests = bounds
                        .requests
                        .is_some_and(|limit| issued.fetch_add(1, Ordering::Relaxed) >= limit);
                    if out_of_time || out_of_requests || driver.stopped() {
                        break;
                    }
                    let planned = driver.mix.next(&mut rng);
                    driver.exchange(&planned, Instant::now()).await;
                }
            });
        }
        while crowd.join_next().await.is_some() {}
    }

    /// Sends one request that was due at `due` and records it.
    async fn exchange(&self, planned: &Planned, due: Instant) {
        self.recorder.sent();
        let sent = Instant::now();
        let outcome = self.exchanger.send(planned).await;
        self.recorder.record(&Sample {
            planned,
            due,
            sent,
            done: Instant::now(),
            outcome: &outcome,
        });
    }
}
