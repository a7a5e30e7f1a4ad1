//! What `/stack.json` serves: every tier's numbers, rates taken over the last poll interval.
//!
//! Rates need two samples, so the first snapshot after the view starts (or wakes up) has
//! totals and gauges but `null` rates. A counter that went down means the service restarted;
//! its rate is then taken from zero, as Prometheus's `rate()` does.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use crate::collect::{
    AppReading, BackendCounts, CacheOps, CacheReading, Member, ProxyReading, Reading, Sample,
};
use crate::names;

#[derive(Debug, Serialize)]
pub struct Snapshot {
    /// Counts the polls since the view started: the page shows when it stops moving.
    pub generation: u64,
    /// When the sample was taken, in milliseconds since the Unix epoch.
    pub sampled_at_ms: u64,
    /// The seconds the rates were measured over; `null` in the first snapshot.
    pub window_secs: Option<f64>,
    /// How long the poll that read every tier took, in milliseconds.
    pub poll_ms: f64,
    pub proxy: Option<Tier<ProxyView>>,
    pub apps: Vec<Tier<AppView>>,
    pub doorbell: Option<Tier<DoorbellView>>,
    pub caches: Vec<Tier<CacheView>>,
    pub database: Option<Tier<DatabaseView>>,
}

/// One box of the diagram.
#[derive(Debug, Serialize)]
pub struct Tier<V> {
    pub name: String,
    pub address: String,
    /// Whether the view could read it.
    pub up: bool,
    /// Whether the proxy sends it requests, when the proxy lists it.
    pub in_rotation: Option<bool>,
    /// Why it could not be read.
    pub error: Option<String>,
    /// Its numbers, when it could be read.
    pub numbers: Option<V>,
}

#[derive(Debug, Serialize)]
pub struct ProxyView {
    pub requests_total: f64,
    pub requests_per_sec: Option<f64>,
    /// Requests per second by `X-Cache` status (HIT, MISS, STALE, PASS, BYPASS).
    pub by_cache_status_per_sec: BTreeMap<String, Option<f64>>,
    /// (HIT + STALE) / all requests over the window; `null` without requests.
    pub served_from_cache: Option<f64>,
    /// The same since the proxy started.
    pub served_from_cache_total: Option<f64>,
    /// Backend requests that failed (connect errors, timeouts, 5xx).
    pub backend_errors_per_sec: Option<f64>,
    pub cached_objects: f64,
    pub cached_bytes: f64,
}

#[derive(Debug, Serialize)]
pub struct AppView {
    pub requests_total: f64,
    pub requests_per_sec: Option<f64>,
    /// What the proxy sent it (the arrow from the proxy).
    pub proxied_per_sec: Option<f64>,
    pub proxied_total: Option<f64>,
    pub proxy_errors_per_sec: Option<f64>,
    pub outstanding: Option<u64>,
    pub server_errors_per_sec: Option<f64>,
    pub db_queries_per_sec: Option<f64>,
    /// Its cache pool's hits over hits and misses, over the window.
    pub cache_hit_ratio: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct DoorbellView {
    pub calls_total: f64,
    pub doors_opened_total: f64,
    pub webhooks_refused_total: f64,
    /// Call steps (menu, answered, door opened, ...) per second.
    pub steps_per_sec: Option<f64>,
    pub proxied_per_sec: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct CacheView {
    pub commands_per_sec: Option<f64>,
    pub hit_ratio: Option<f64>,
    pub hit_ratio_total: Option<f64>,
    pub used_memory_bytes: f64,
    pub connected_clients: f64,
    pub keys: f64,
    /// What the apps' pools asked of it (the arrow from the apps).
    pub app_ops_per_sec: Option<f64>,
    pub app_errors_per_sec: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct DatabaseView {
    pub transactions_per_sec: Option<f64>,
    pub rows_read_per_sec: Option<f64>,
    pub connections: f64,
    /// Queries the apps made (the arrow from the apps).
    pub app_queries_per_sec: Option<f64>,
    pub app_errors_per_sec: Option<f64>,
}

/// Two readings of the same thing and the seconds between them.
#[derive(Debug)]
struct Delta<'a, T> {
    before: Option<&'a T>,
    now: &'a T,
    secs: Option<f64>,
}

impl<'a, T> Delta<'a, T> {
    fn new(before: Option<&'a T>, now: &'a T, secs: Option<f64>) -> Self {
        Self { before, now, secs }
    }

    /// The per-second increase of the counter `pick` reads; `null` without an earlier reading.
    fn rate(&self, pick: impl Fn(&T) -> f64) -> Option<f64> {
        self.rate_of(|reading| Some(pick(reading)))
    }

    /// The same, for a counter that may be missing from either reading.
    fn rate_of(&self, pick: impl Fn(&T) -> Option<f64>) -> Option<f64> {
        let (before, now) = (pick(self.before?)?, pick(self.now)?);
        // A counter that went down was reset by a restart: it counted `now` since.
        let increase = if now >= before { now - before } else { now };
        Some(increase / self.secs?)
    }

    /// The same rates for a part of the readings.
    fn map<U>(&self, part: impl Fn(&'a T) -> Option<&'a U>) -> Option<Delta<'a, U>> {
        Some(Delta {
            before: self.before.and_then(&part),
            now: part(self.now)?,
            secs: self.secs,
        })
    }
}

/// Builds the snapshot for `now`, with rates against `before` when there is one.
pub fn snapshot(generation: u64, before: Option<&Sample>, now: &Sample) -> Snapshot {
    let secs = before
        .map(|before| now.taken.duration_since(before.taken).as_secs_f64())
        .filter(|secs| *secs > 0.0);
    let stack = Delta::new(before, now, secs);
    // Each app instance against its own earlier reading, for the rates summed over the apps:
    // an instance back from down then adds nothing until its second reading, not a spike.
    let apps: Vec<Delta<'_, AppReading>> = now
        .apps
        .iter()
        .filter_map(|app| app_delta(&stack, &app.address))
        .collect();
    let sampled_at_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64);
    Snapshot {
        generation,
        sampled_at_ms,
        window_secs: secs,
        poll_ms: now.took.as_secs_f64() * 1000.0,
        proxy: now.proxy.as_ref().map(|reading| {
            let proxy = stack.map(|s| s.proxy.as_ref()?.as_ref().ok());
            tier("proxy", "", None, reading, |_| proxy_view(&proxy?))
        }),
        apps: now.apps.iter().map(|app| app_tier(&stack, app)).collect(),
        doorbell: now.doorbell.as_ref().map(|doorbell| {
            let proxied = proxied(&stack, &doorbell.address, |c| c.requests);
            member_tier(doorbell, |reading| {
                let delta = stack.map(|s| {
                    let before = s.doorbell.as_ref()?;
                    (before.address == doorbell.address).then_some(())?;
                    before.reading.as_ref().ok()
                });
                DoorbellView {
                    calls_total: reading.calls,
                    doors_opened_total: reading.doors_opened,
                    webhooks_refused_total: reading.refused,
                    steps_per_sec: delta.and_then(|d| d.rate(|r| r.steps)),
                    proxied_per_sec: proxied,
                }
            })
        }),
        caches: now
            .caches
            .iter()
            .map(|node| cache_tier(&apps, node, cache_delta(&stack, &node.address)))
            .collect(),
        database: now.database.as_ref().map(|reading| {
            let database = stack.map(|s| s.database.as_ref()?.as_ref().ok());
            tier("postgres", "", None, reading, |_| {
                let database = database?;
                Some(DatabaseView {
                    transactions_per_sec: database.rate(|d| d.transactions),
                    rows_read_per_sec: database.rate(|d| d.rows_read),
                    connections: database.now.connections,
                    app_queries_per_sec: sum_of_rates(&apps, |a| a.db_queries),
                    app_errors_per_sec: sum_of_rates(&apps, |a| a.db_errors),
                })
            })
        }),
    }
}

fn proxy_view(proxy: &Delta<'_, ProxyReading>) -> Option<ProxyView> {
    let now = proxy.now;
    let all = |p: &ProxyReading| p.requests_by_status.values().sum::<f64>();
    let from_cache = |p: &ProxyReading| {
        names::proxy::FROM_CACHE
            .iter()
            .filter_map(|status| p.requests_by_status.get(*status))
            .sum::<f64>()
    };
    let requests_per_sec = proxy.rate(all);
    Some(ProxyView {
        requests_total: all(now),
        requests_per_sec,
        by_cache_status_per_sec: now
            .requests_by_status
            .keys()
            .map(|status| {
                let count = |p: &ProxyReading| p.requests_by_status.get(status).copied();
                (status.clone(), proxy.rate(|p| count(p).unwrap_or(0.0)))
            })
            .collect(),
        served_from_cache: share(proxy.rate(from_cache), requests_per_sec),
        served_from_cache_total: share(Some(from_cache(now)), Some(all(now))),
        backend_errors_per_sec: proxy.rate(|p| p.backends.values().map(|c| c.errors).sum()),
        cached_objects: now.store_objects,
        cached_bytes: now.store_bytes,
    })
}

/// What the proxy sent to the backend at `address`, per second.
fn proxied(
    stack: &Delta<'_, Sample>,
    address: &str,
    pick: fn(&BackendCounts) -> f64,
) -> Option<f64> {
    stack.rate_of(|s| {
        let proxy = s.proxy.as_ref()?.as_ref().ok()?;
        Some(proxy.backends.get(address).map_or(0.0, pick))
    })
}

/// The app at `address` in both samples.
fn app_delta<'a>(stack: &Delta<'a, Sample>, address: &str) -> Option<Delta<'a, AppReading>> {
    stack.map(|s| {
        let app = s.apps.iter().find(|app| app.address == address)?;
        app.reading.as_ref().ok()
    })
}

/// The sum over the apps of each one's rate of `pick`; `null` when no app has a rate yet.
fn sum_of_rates(apps: &[Delta<'_, AppReading>], pick: impl Fn(&AppReading) -> f64) -> Option<f64> {
    apps.iter()
        .filter_map(|app| app.rate(&pick))
        .reduce(|sum, rate| sum + rate)
}

fn app_tier(stack: &Delta<'_, Sample>, app: &Member<AppReading>) -> Tier<AppView> {
    let app_delta = app_delta(stack, &app.address);
    member_tier(app, |reading| {
        let rate = |pick: fn(&AppReading) -> f64| app_delta.as_ref()?.rate(pick);
        let pool = |pick: fn(&CacheOps) -> f64| rate_sum(app_delta.as_ref(), pick);
        AppView {
            requests_total: reading.requests,
            requests_per_sec: rate(|a| a.requests),
            proxied_per_sec: proxied(stack, &app.address, |c| c.requests),
            proxied_total: stack
                .now
                .proxy
                .as_ref()
                .and_then(|proxy| proxy.as_ref().ok())
                .map(|proxy| proxy.backends.get(&app.address).map_or(0.0, |c| c.requests)),
            proxy_errors_per_sec: proxied(stack, &app.address, |c| c.errors),
            outstanding: app.outstanding,
            server_errors_per_sec: rate(|a| a.server_errors),
            db_queries_per_sec: rate(|a| a.db_queries),
            cache_hit_ratio: ratio(pool(|o| o.hits), pool(|o| o.misses)),
        }
    })
}

/// The rate of `pick` summed over every node of an app's cache pool.
fn rate_sum(app: Option<&Delta<'_, AppReading>>, pick: fn(&CacheOps) -> f64) -> Option<f64> {
    app?.rate(|a| a.cache_ops.values().map(pick).sum())
}

/// The cache node at `address` in both samples.
fn cache_delta<'a>(stack: &Delta<'a, Sample>, address: &str) -> Option<Delta<'a, CacheReading>> {
    stack.map(|s| {
        let node = s.caches.iter().find(|node| node.address == address)?;
        node.reading.as_ref().ok()
    })
}

fn cache_tier(
    apps: &[Delta<'_, AppReading>],
    node: &Member<CacheReading>,
    node_delta: Option<Delta<'_, CacheReading>>,
) -> Tier<CacheView> {
    // What the apps' pools asked of this node, summed over the apps.
    let from_apps = |pick: fn(&CacheOps) -> f64| {
        sum_of_rates(apps, |app| {
            app.cache_ops.get(&node.address).map_or(0.0, pick)
        })
    };
    member_tier(node, |reading| {
        let rate = |pick: fn(&CacheReading) -> f64| node_delta.as_ref()?.rate(pick);
        CacheView {
            commands_per_sec: rate(|c| c.commands),
            hit_ratio: ratio(rate(|c| c.hits), rate(|c| c.misses)),
            hit_ratio_total: ratio(Some(reading.hits), Some(reading.misses)),
            used_memory_bytes: reading.used_memory,
            connected_clients: reading.connected_clients,
            keys: reading.keys,
            app_ops_per_sec: from_apps(|o| o.hits + o.misses + o.errors),
            app_errors_per_sec: from_apps(|o| o.errors),
        }
    })
}

/// `part / whole`, or `null` when there was nothing.
fn share(part: Option<f64>, whole: Option<f64>) -> Option<f64> {
    let (part, whole) = (part?, whole?);
    (whole > 0.0).then(|| part / whole)
}

/// `hits / (hits + misses)`, or `null` when there were no lookups.
fn ratio(hits: Option<f64>, misses: Option<f64>) -> Option<f64> {
    share(hits, Some(hits? + misses?))
}

fn member_tier<R, V>(member: &Member<R>, view: impl FnOnce(&R) -> V) -> Tier<V> {
    tier(
        &member.name,
        &member.address,
        member.in_rotation,
        &member.reading,
        |reading| Some(view(reading)),
    )
}

fn tier<R, V>(
    name: &str,
    address: &str,
    in_rotation: Option<bool>,
    reading: &Reading<R>,
    view: impl FnOnce(&R) -> Option<V>,
) -> Tier<V> {
    let (numbers, error) = match reading {
        Ok(reading) => (view(reading), None),
        Err(error) => (None, Some(error.clone())),
    };
    Tier {
        name: name.to_owned(),
        address: address.to_owned(),
        up: error.is_none(),
        in_rotation,
        error,
        numbers,
    }
}

impl Snapshot {
    /// What is served before the first poll.
    pub fn nothing_yet() -> Self {
        Self {
            generation: 0,
            sampled_at_ms: 0,
            window_secs: None,
            poll_ms: 0.0,
            proxy: None,
            apps: Vec::new(),
            doorbell: None,
            caches: Vec::new(),
            database: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    use super::snapshot;
    use crate::collect::{
        AppReading, BackendCounts, CacheOps, CacheReading, Member, ProxyReading, Sample,
    };

    fn member<T>(name: &str, address: &str, reading: Result<T, String>) -> Member<T> {
        Member {
            name: name.to_owned(),
            address: address.to_owned(),
            in_rotation: Some(true),
            outstanding: Some(0),
            reading,
        }
    }

    /// A stack of one proxy, one app and one cache node whose counters are `n` times a base.
    fn sample(taken: Instant, n: f64) -> Sample {
        let requests_by_status = BTreeMap::from([
            ("HIT".to_owned(), 80.0 * n),
            ("STALE".to_owned(), 10.0 * n),
            ("MISS".to_owned(), 10.0 * n),
        ]);
        let backends = BTreeMap::from([(
            "10.0.0.2:3000".to_owned(),
            BackendCounts {
                requests: 10.0 * n,
                errors: n,
            },
        )]);
        let cache_ops = BTreeMap::from([(
            "cache-1:6379".to_owned(),
            CacheOps {
                hits: 30.0 * n,
                misses: 10.0 * n,
                errors: 0.0,
            },
        )]);
        Sample {
            taken,
            took: Duration::from_millis(3),
            proxy: Some(Ok(ProxyReading {
                requests_by_status,
                backends,
                ..ProxyReading::default()
            })),
            apps: vec![member(
                "app-1",
                "10.0.0.2:3000",
                Ok(AppReading {
                    requests: 12.0 * n,
                    db_queries: 5.0 * n,
                    cache_ops,
                    ..AppReading::default()
                }),
            )],
            doorbell: None,
            caches: vec![member(
                "cache-1",
                "cache-1:6379",
                Ok(CacheReading {
                    hits: 30.0 * n,
                    misses: 10.0 * n,
                    commands: 45.0 * n,
                    ..CacheReading::default()
                }),
            )],
            database: None,
        }
    }

    #[test]
    fn the_first_snapshot_has_totals_but_no_rates() {
        let now = sample(Instant::now(), 1.0);
        let snapshot = snapshot(1, None, &now);
        let proxy = snapshot.proxy.unwrap().numbers.unwrap();
        assert_eq!(proxy.requests_total, 100.0);
        assert_eq!(proxy.requests_per_sec, None);
        assert_eq!(proxy.served_from_cache, None);
        assert_eq!(proxy.served_from_cache_total, Some(0.9));
        assert_eq!(snapshot.window_secs, None);
    }

    #[test]
    fn rates_are_differences_over_the_window() {
        let start = Instant::now();
        let before = sample(start, 1.0);
        let now = sample(start + Duration::from_secs(2), 3.0);
        let snapshot = snapshot(2, Some(&before), &now);
        assert_eq!(snapshot.window_secs, Some(2.0));
        let proxy = snapshot.proxy.unwrap().numbers.unwrap();
        assert_eq!(proxy.requests_per_sec, Some(100.0));
        assert_eq!(proxy.by_cache_status_per_sec["HIT"], Some(80.0));
        assert_eq!(proxy.served_from_cache, Some(0.9));
        assert_eq!(proxy.backend_errors_per_sec, Some(1.0));
        let app = snapshot.apps[0].numbers.as_ref().unwrap();
        assert_eq!(app.requests_per_sec, Some(12.0));
        assert_eq!(app.proxied_per_sec, Some(10.0));
        assert_eq!(app.proxy_errors_per_sec, Some(1.0));
        assert_eq!(app.db_queries_per_sec, Some(5.0));
        assert_eq!(app.cache_hit_ratio, Some(0.75));
        let cache = snapshot.caches[0].numbers.as_ref().unwrap();
        assert_eq!(cache.commands_per_sec, Some(45.0));
        assert_eq!(cache.hit_ratio, Some(0.75));
        assert_eq!(cache.app_ops_per_sec, Some(40.0));
    }

    #[test]
    fn a_counter_that_went_down_restarted_from_zero() {
        let start = Instant::now();
        let before = sample(start, 5.0);
        let now = sample(start + Duration::from_secs(1), 1.0);
        let snapshot = snapshot(2, Some(&before), &now);
        let proxy = snapshot.proxy.unwrap().numbers.unwrap();
        assert_eq!(proxy.requests_per_sec, Some(100.0));
    }

    #[test]
    fn a_tier_that_could_not_be_read_is_down_with_its_reason() {
        let start = Instant::now();
        let before = sample(start, 1.0);
        let mut now = sample(start + Duration::from_secs(1), 2.0);
        now.caches[0].reading = Err("cannot connect".to_owned());
        now.proxy = Some(Err("no answer within 800ms".to_owned()));
        let snapshot = snapshot(2, Some(&before), &now);
        let cache = &snapshot.caches[0];
        assert!(!cache.up);
        assert_eq!(cache.error.as_deref(), Some("cannot connect"));
        assert!(cache.numbers.is_none());
        let proxy = snapshot.proxy.unwrap();
        assert!(!proxy.up);
        let app = snapshot.apps[0].numbers.as_ref().unwrap();
        assert_eq!(
            app.proxied_per_sec, None,
            "no proxy reading: no rate, rather than a wrong one"
        );
        assert_eq!(app.requests_per_sec, Some(12.0));
    }

    #[test]
    fn an_app_back_from_down_adds_nothing_to_the_summed_rates_until_its_second_reading() {
        let start = Instant::now();
        let mut before = sample(start, 1.0);
        before.apps[0].reading = Err("cannot connect".to_owned());
        let now = sample(start + Duration::from_secs(1), 2.0);
        let snapshot = snapshot(2, Some(&before), &now);
        let cache = snapshot.caches[0].numbers.as_ref().unwrap();
        assert_eq!(
            cache.app_ops_per_sec, None,
            "not the app's whole count since it started"
        );
        assert_eq!(cache.commands_per_sec, Some(45.0));
    }

    #[test]
    fn a_tier_back_from_down_has_no_rate_until_its_second_reading() {
        let start = Instant::now();
        let mut before = sample(start, 1.0);
        before.caches[0].reading = Err("cannot connect".to_owned());
        let now = sample(start + Duration::from_secs(1), 2.0);
        let snapshot = snapshot(2, Some(&before), &now);
        let cache = snapshot.caches[0].numbers.as_ref().unwrap();
        assert_eq!(cache.commands_per_sec, None);
        assert_eq!(cache.hit_ratio_total, Some(0.75));
    }
}
