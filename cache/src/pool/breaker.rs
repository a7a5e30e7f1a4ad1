//! A per-node circuit breaker: closed → (N consecutive failures) → open → (cool-down) →
//! half-open, where exactly one request probes the node → closed again, or open again.
//!
//! Without it, every request to a dead node would pay the full operation timeout; with it, a
//! dead node costs nothing but misses until the next probe.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use prometheus_client::metrics::gauge::Gauge;

use super::config::BreakerConfig;

/// The breaker's state as exported in metrics (`cache_pool_breaker_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BreakerState {
    /// Requests flow.
    Closed = 0,
    /// One probe request is in flight; the others are skipped.
    HalfOpen = 1,
    /// Every request is skipped until the cool-down ends.
    Open = 2,
}

#[derive(Debug)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// `until` bounds the probe: a probe whose caller gave up (its future dropped) never reports
    /// back, so after `until` another request may probe.
    HalfOpen {
        until: Instant,
    },
}

/// A change the caller must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transition {
    None,
    /// The breaker just opened: the node is considered gone.
    Opened,
    /// The breaker just closed after having been open.
    Closed,
}

#[derive(Debug)]
pub(super) struct Breaker {
    config: BreakerConfig,
    /// Whether the state is `Closed { failures: 0 }`, the state of a healthy node: then
    /// `permit` and `on_success` have nothing to change and answer from this flag, without the
    /// lock or a clock read. Written only under the lock, so it never disagrees with `state` for
    /// longer than the store takes to become visible; a request let through by a stale `true`
    /// just after the breaker opened is one that started a moment earlier.
    healthy: AtomicBool,
    state: Mutex<State>,
    /// `cache_pool_breaker_state` for this node, set on every change of state.
    gauge: Gauge,
}

impl Breaker {
    pub(super) fn new(config: BreakerConfig, gauge: Gauge) -> Self {
        gauge.set(BreakerState::Closed as i64);
        Breaker {
            config,
            healthy: AtomicBool::new(true),
            state: Mutex::new(State::Closed { failures: 0 }),
            gauge,
        }
    }

    /// Whether a request may go to the node now (when closed, or as the half-open probe);
    /// `false` means skip the node.
    pub(super) fn permit(&self) -> bool {
        if self.healthy.load(Ordering::Relaxed) {
            return true;
        }
        let now = Instant::now();
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => true,
            State::Open { until } | State::HalfOpen { until } if now >= until => {
                *state = State::HalfOpen {
                    until: now + self.config.open_for,
                };
                self.gauge.set(BreakerState::HalfOpen as i64);
                true
            }
            State::Open { .. } | State::HalfOpen { .. } => false,
        }
    }

    pub(super) fn on_success(&self) -> Transition {
        if self.healthy.load(Ordering::Relaxed) {
            return Transition::None;
        }
        let mut state = self.lock();
        let was = std::mem::replace(&mut *state, State::Closed { failures: 0 });
        self.healthy.store(true, Ordering::Relaxed);
        match was {
            State::Closed { .. } => Transition::None,
            State::Open { .. } | State::HalfOpen { .. } => {
                self.gauge.set(BreakerState::Closed as i64);
                Transition::Closed
            }
        }
    }

    pub(super) fn on_failure(&self) -> Transition {
        let mut state = self.lock();
        self.healthy.store(false, Ordering::Relaxed);
        let failures = match *state {
            State::Closed { failures } => failures + 1,
            // A failed probe (or a request that started before the breaker opened) re-opens it.
            State::Open { .. } | State::HalfOpen { .. } => self.config.failure_threshold,
        };
        if failures >= self.config.failure_threshold {
            let was_open = matches!(*state, State::Open { .. } | State::HalfOpen { .. });
            *state = State::Open {
                until: Instant::now() + self.config.open_for,
            };
            self.gauge.set(BreakerState::Open as i64);
            if was_open {
                Transition::None
            } else {
                Transition::Opened
            }
        } else {
            *state = State::Closed { failures };
            Transition::None
        }
    }

    #[cfg(test)]
    fn state(&self) -> BreakerState {
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a plain value: a panic elsewhere cannot leave it half-written.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn breaker(open_for: Duration) -> Breaker {
        Breaker::new(
            BreakerConfig {
                failure_threshold: 3,
                open_for,
            },
            Gauge::default(),
        )
    }

    #[test]
    fn opens_after_threshold_consecutive_failures() {
        let b = breaker(Duration::from_secs(60));
        assert_eq!(b.on_failure(), Transition::None);
        assert_eq!(b.on_failure(), Transition::None);
        assert!(b.permit());
        assert_eq!(b.on_failure(), Transition::Opened);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.permit());
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = breaker(Duration::from_secs(60));
        b.on_failure();
        b.on_failure();
        assert_eq!(b.on_success(), Transition::None);
        b.on_failure();
        b.on_failure();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn half_open_lets_one_probe_through() {
        let b = breaker(Duration::ZERO);
        for _ in 0..3 {
            b.on_failure();
        }
        assert!(b.permit(), "the probe");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.on_success(), Transition::Closed);
        assert!(b.permit());
    }

    #[test]
    fn a_failed_probe_reopens() {
        let b = breaker(Duration::from_secs(60));
        for _ in 0..3 {
            b.on_failure();
        }
        *b.lock() = State::Open {
            until: Instant::now(),
        };
        assert!(b.permit(), "the probe");
        assert!(!b.permit(), "only one probe at a time");
        assert_eq!(b.on_failure(), Transition::None);
        assert_eq!(b.state(), BreakerState::Open);
    }
}
