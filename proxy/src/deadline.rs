//! Deadlines that move later, each on one timer that lives as long as its connection: a backend
//! connection's first-byte deadline, and a client connection's header-read deadline.
//!
//! A timer per wait (`tokio::time::timeout`, hyper's `TokioTimer`) is entered into tokio's timer
//! wheel when the wait begins and taken out when it ends: two trips through the timer driver for
//! every proxied request, and, when the new timer is the wheel's earliest, a write to the
//! runtime's eventfd to wake a driver that is not asleep (callgrind and `perf stat`,
//! proxy/README.md). Here a connection's timer is armed once, and each wait only moves the
//! deadline later. When the timer goes off before the deadline it stands for, it is re-armed
//! for that deadline: at most once per timeout period, however many waits ran meanwhile.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::time::Sleep;

#[derive(Debug)]
pub struct Deadline {
    timer: Pin<Box<Sleep>>,
    /// When the current wait ends; the timer goes off at or before it.
    at: Instant,
}

impl Deadline {
    pub fn new(at: Instant) -> Self {
        Self {
            timer: Box::pin(tokio::time::sleep_until(at.into())),
            at,
        }
    }

    /// Starts a wait that ends at `at`.
    pub fn set(&mut self, at: Instant) {
        self.at = at;
        // Waits on one connection share its timeout, so deadlines only move later; an earlier
        // one would need the timer moved now, as it must not go off late.
        if at < self.timer.deadline().into_std() {
            self.timer.as_mut().reset(at.into());
        }
    }

    /// Ready once the deadline has passed; until then, wakes `cx` when it does.
    pub fn poll_passed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while self.timer.as_mut().poll(cx).is_ready() {
            if self.timer.deadline().into_std() >= self.at {
                return Poll::Ready(());
            }
            self.timer.as_mut().reset(self.at.into());
        }
        Poll::Pending
    }
}

/// hyper's timer for one client connection, which hyper asks for a sleep before each request
/// head: every sleep it hands out waits on the connection's one [`Deadline`].
#[derive(Debug, Clone, Default)]
pub struct ConnectionTimer {
    /// Made by the first sleep that is polled. hyper wants timers and sleeps `Send + Sync`.
    deadline: Arc<Mutex<Option<Deadline>>>,
}

impl hyper::rt::Timer for ConnectionTimer {
    fn sleep(&self, duration: std::time::Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, at: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(ConnectionSleep {
            at,
            deadline: self.deadline.clone(),
        })
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, at: Instant) {
        match sleep.as_mut().downcast_mut_pin::<ConnectionSleep>() {
            Some(mine) => mine.get_mut().at = at,
            None => *sleep = self.sleep_until(at),
        }
    }
}

struct ConnectionSleep {
    at: Instant,
    deadline: Arc<Mutex<Option<Deadline>>>,
}

impl Future for ConnectionSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut deadline = self.deadline.lock().expect("not poisoned");
        let deadline = deadline.get_or_insert_with(|| Deadline::new(self.at));
        deadline.set(self.at);
        deadline.poll_passed(cx)
    }
}

impl hyper::rt::Sleep for ConnectionSleep {}
