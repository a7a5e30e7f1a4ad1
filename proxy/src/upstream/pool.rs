//! A named pool of backends: its members (re-resolved from DNS), their health, and each one's
//! kept-alive connections.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

use http::HeaderValue;

use super::balance;
use super::connection::IdleConnections;
use crate::config::PoolSettings;
use crate::metrics::BackendCounters;

/// One backend address.
#[derive(Debug)]
pub struct Backend {
    pub addr: SocketAddr,
    /// `addr` as a Host header, for requests that came without one (HTTP/1.0), made once.
    pub host: Option<HeaderValue>,
    outstanding: AtomicUsize,
    /// The active health checks' verdict; true until they say otherwise.
    healthy: AtomicBool,
    /// Consecutive results of the kind that would change `healthy` (failures while up,
    /// successes while down), for the rise/fall thresholds.
    active_streak: AtomicU32,
    /// Consecutive failed requests seen by the proxy's own traffic.
    passive_failures: AtomicU32,
    /// Set by passive ejection when no active checks would bring the backend back.
    ejected_until: Mutex<Option<Instant>>,
    pub(crate) counters: OnceLock<BackendCounters>,
    /// Kept-alive connections waiting for the next request.
    pub(crate) idle: IdleConnections,
}

/// Keeps a backend's outstanding-request count up while a request is in flight.
#[derive(Debug)]
pub struct InFlight(Arc<Backend>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Backend {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            host: HeaderValue::try_from(addr.to_string()).ok(),
            outstanding: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
            active_streak: AtomicU32::new(0),
            passive_failures: AtomicU32::new(0),
            ejected_until: Mutex::new(None),
            counters: OnceLock::new(),
            idle: IdleConnections::default(),
        }
    }

    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    pub fn begin_request(self: &Arc<Self>) -> InFlight {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Whether new requests may be sent here.
    pub fn is_available(&self, now: Instant) -> bool {
        self.healthy.load(Ordering::Relaxed)
            && self
                .ejected_until
                .lock()
                .expect("not poisoned")
                .is_none_or(|until| now >= until)
    }

    /// Records what a proxied request found: a connect error, no answer or a 5xx is a failure.
    /// `eject_after` failures in a row take the backend out: until the active checks see it
    /// rise again when there are some (`active`), else for `eject_for`.
    pub fn record_passive(&self, ok: bool, settings: &PoolSettings) {
        if ok {
            self.passive_failures.store(0, Ordering::Relaxed);
            return;
        }
        let failures = self.passive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < settings.eject_after {
            return;
        }
        self.passive_failures.store(0, Ordering::Relaxed);
        if settings.health.is_some() {
            if self.healthy.swap(false, Ordering::Relaxed) {
                self.active_streak.store(0, Ordering::Relaxed);
                tracing::warn!(backend = %self.addr, failures, "backend ejected after failed requests");
            }
        } else {
            *self.ejected_until.lock().expect("not poisoned") =
                Some(Instant::now() + settings.eject_for);
            tracing::warn!(backend = %self.addr, failures, for_ = ?settings.eject_for, "backend ejected after failed requests");
        }
    }

    /// Records one active health check: `fall` failures in a row take a healthy backend out,
    /// `rise` successes in a row bring an unhealthy one back.
    pub fn record_check(&self, ok: bool, rise: u32, fall: u32) {
        let healthy = self.healthy.load(Ordering::Relaxed);
        if ok == healthy {
            self.active_streak.store(0, Ordering::Relaxed);
            return;
        }
        let streak = self.active_streak.fetch_add(1, Ordering::Relaxed) + 1;
        let threshold = if healthy { fall } else { rise };
        if streak >= threshold {
            self.healthy.store(ok, Ordering::Relaxed);
            self.active_streak.store(0, Ordering::Relaxed);
            tracing::warn!(backend = %self.addr, healthy = ok, "health check changed backend state");
        }
    }
}

/// A named pool.
#[derive(Debug)]
pub struct Pool {
    pub name: String,
    pub settings: PoolSettings,
    backends: RwLock<Arc<[Arc<Backend>]>>,
    cursor: AtomicUsize,
}

impl Pool {
    /// Creates the pool, resolves its backends once, and starts its DNS refresh and health check
    /// tasks; they stop when the pool is dropped (a reload replaced it, or the proxy stopped).
    pub async fn start(name: &str, settings: PoolSettings) -> Arc<Self> {
        let pool = Arc::new(Self {
            name: name.to_owned(),
            settings,
            backends: RwLock::new(Arc::from(Vec::new())),
            cursor: AtomicUsize::new(0),
        });
        pool.resolve().await;
        if pool
            .settings
            .backends
            .iter()
            .any(|b| b.parse::<SocketAddr>().is_err())
        {
            tokio::spawn(refresh_dns(Arc::downgrade(&pool)));
        }
        if pool.settings.health.is_some() {
            tokio::spawn(super::health::check_loop(Arc::downgrade(&pool)));
        }
        tokio::spawn(sweep_idle(Arc::downgrade(&pool)));
        pool
    }

    pub fn backends(&self) -> Arc<[Arc<Backend>]> {
        self.backends.read().expect("not poisoned").clone()
    }

    pub fn backend_count(&self) -> usize {
        self.backends.read().expect("not poisoned").len()
    }

    pub fn pick(&self, exclude: &[SocketAddr]) -> Option<Arc<Backend>> {
        balance::pick(
            self.settings.balance,
            &self.backends(),
            &self.cursor,
            exclude,
            Instant::now(),
        )
    }

    /// Resolves every backend entry; backends that stay keep their health state. A name that
    /// does not resolve keeps its previous addresses (a DNS hiccup must not empty the pool).
    async fn resolve(&self) {
        let current = self.backends();
        let mut next: Vec<Arc<Backend>> = Vec::new();
        for entry in &self.settings.backends {
            let addrs: Vec<SocketAddr> = match entry.parse::<SocketAddr>() {
                Ok(addr) => vec![addr],
                Err(_) => match tokio::net::lookup_host(entry.as_str()).await {
                    Ok(found) => found.collect(),
                    Err(error) => {
                        tracing::warn!(pool = %self.name, %entry, %error, "cannot resolve backend");
                        Vec::new()
                    }
                },
            };
            for addr in addrs {
                if next.iter().any(|b| b.addr == addr) {
                    continue;
                }
                let backend = current
                    .iter()
                    .find(|b| b.addr == addr)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Backend::new(addr)));
                next.push(backend);
            }
        }
        if next.is_empty() && !current.is_empty() {
            return;
        }
        next.sort_by_key(|b| b.addr);
        let changed = next.len() != current.len()
            || next
                .iter()
                .zip(current.iter())
                .any(|(a, b)| a.addr != b.addr);
        if changed {
            let addrs: Vec<String> = next.iter().map(|b| b.addr.to_string()).collect();
            tracing::info!(pool = %self.name, backends = ?addrs, "pool members");
            *self.backends.write().expect("not poisoned") = Arc::from(next);
        }
    }
}

/// Runs `work` on the pool every `interval` (at least `floor`) for as long as the pool exists
/// (a reload that replaced it, or the proxy stopping, ends the loop) and `interval` says one.
pub(super) async fn while_alive(
    pool: Weak<Pool>,
    interval: fn(&Pool) -> Option<Duration>,
    floor: Duration,
    work: impl AsyncFn(&Arc<Pool>),
) {
    loop {
        let Some(every) = pool.upgrade().and_then(|p| interval(&p)) else {
            return;
        };
        tokio::time::sleep(every.max(floor)).await;
        let Some(pool) = pool.upgrade() else { return };
        work(&pool).await;
    }
}

async fn refresh_dns(pool: Weak<Pool>) {
    let interval = |pool: &Pool| Some(pool.settings.dns_refresh);
    while_alive(pool, interval, Duration::from_millis(100), async |pool| {
        pool.resolve().await;
    })
    .await;
}

/// Closes idle connections that timed out or that their backend closed, even when no request
/// comes to notice.
async fn sweep_idle(pool: Weak<Pool>) {
    let interval = |pool: &Pool| Some(pool.settings.idle_timeout);
    while_alive(pool, interval, Duration::from_secs(1), async |pool| {
        for backend in pool.backends().iter() {
            backend.idle.sweep(pool.settings.idle_timeout);
        }
    })
    .await;
}
