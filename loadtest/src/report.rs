//! The numbers of a run: built from the recorder's totals and the tiers' before/after readings,
//! printed as a terminal summary, and written as JSON and as an HTML page ([`crate::html`]).

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::stats::Totals;
use crate::tiers::TierReport;
use crate::workload::PageKind;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Percentiles::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Percentiles {
            count: histogram.len(),
            mean_ms: histogram.mean() / 1000.0,
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
        }
    }
}

/// One kind of request from one kind of visitor.
#[derive(Debug, Clone, Serialize)]
pub struct KindRow {
    pub kind: PageKind,
    pub logged_in: bool,
    pub requests: u64,
    /// Of all requests of the run.
    pub share: f64,
    pub errors: u64,
    pub latency: Percentiles,
}

/// One second of the run.
#[derive(Debug, Clone, Serialize)]
pub struct SecondRow {
    pub second: usize,
    /// Requests due in this second (the offered load).
    pub due: u64,
    /// Requests that finished in this second (the throughput).
    pub completed: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// What the page reads cost the database, from the `Server-Timing` headers.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseShare {
    /// Page reads answered.
    pub page_reads: u64,
    /// Of those, how many an app answered itself (not the proxy's cache).
    pub reached_app: u64,
    /// Of those, how many made at least one database query.
    pub reached_database: u64,
    /// reached_database / page_reads.
    pub share: Option<f64>,
    /// Queries named in the headers, all requests.
    pub queries: u64,
    pub queries_per_second: f64,
}

/// Requests per app instance, from `X-Served-By`.
#[derive(Debug, Clone, Serialize)]
pub struct Balance {
    pub by_instance: BTreeMap<String, u64>,
    /// (busiest − idlest) / mean, over the instances seen: 0 is perfectly even.
    pub spread: Option<f64>,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    pub mode: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub elapsed_seconds: f64,
    pub requests: u64,
    pub errors: u64,
    pub error_ratio: f64,
    /// Completed requests per second over the run.
    pub throughput: f64,
    /// From each request's due time (coordinated omission corrected in open-loop runs).
    pub latency: Percentiles,
    /// From each request's actual send.
    pub service_time: Percentiles,
    pub kinds: Vec<KindRow>,
    /// HTTP status codes and failures.
    pub statuses: BTreeMap<String, u64>,
    /// `X-Cache` as the generator saw it.
    pub cache_statuses: BTreeMap<String, u64>,
    pub balance: Balance,
    pub database: DatabaseShare,
    pub timeline: Vec<SecondRow>,
    pub tiers: TierReport,
    /// What the reader should know about this run (accounts that failed, features off…).
    pub notes: Vec<String>,
}

/// What a report is made of besides the totals.
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub target: String,
    pub mode: String,
    pub started_at: SystemTime,
    pub elapsed: Duration,
    pub tiers: TierReport,
    pub notes: Vec<String>,
}

impl Report {
    pub fn new(totals: &Totals, facts: RunFacts) -> Report {
        let seconds = facts.elapsed.as_secs_f64().max(1e-9);
        let requests = totals.completed;
        let share = |part: u64, whole: u64| (whole > 0).then(|| part as f64 / whole as f64);
        let kinds = totals
            .kinds
            .iter()
            .map(|(&(kind, logged_in), counts)| KindRow {
                kind,
                logged_in,
                requests: counts.requests,
                share: share(counts.requests, requests).unwrap_or(0.0),
                errors: counts.errors,
                latency: Percentiles::of(&counts.latency),
            })
            .collect();
        let timeline = totals
            .seconds
            .iter()
            .enumerate()
            .map(|(second, counts)| {
                let latency = Percentiles::of(&counts.latency);
                SecondRow {
                    second,
                    due: counts.due,
                    completed: counts.completed,
                    errors: counts.errors,
                    p50_ms: latency.p50_ms,
                    p99_ms: latency.p99_ms,
                    max_ms: latency.max_ms,
                }
            })
            .collect();
        let instances = &totals.served_by;
        let spread = match (instances.values().max(), instances.values().min()) {
            (Some(&most), Some(&least)) if most > 0 => {
                let mean = instances.values().sum::<u64>() as f64 / instances.len() as f64;
                Some((most - least) as f64 / mean)
            }
            _ => None,
        };
        Report {
            target: facts.target,
            mode: facts.mode,
            started_at: humantime::format_rfc3339_seconds(facts.started_at).to_string(),
            elapsed_seconds: seconds,
            requests,
            errors: totals.errors,
            error_ratio: share(totals.errors, requests).unwrap_or(0.0),
            throughput: requests as f64 / seconds,
            latency: Percentiles::of(&totals.latency),
            service_time: Percentiles::of(&totals.service_time),
            kinds,
            statuses: totals.statuses.clone(),
            cache_statuses: totals.cache_statuses.clone(),
            balance: Balance {
                by_instance: instances.clone(),
                spread,
            },
            database: DatabaseShare {
                page_reads: totals.page_reads,
                reached_app: totals.page_reads_timed,
                reached_database: totals.page_reads_with_db,
                share: share(totals.page_reads_with_db, totals.page_reads),
                queries: totals.db_queries,
                queries_per_second: totals.db_queries as f64 / seconds,
            },
            timeline,
            tiers: facts.tiers,
            notes: facts.notes,
        }
    }
}

/// `0.1234` → `12.3%`.
pub fn percent(ratio: f64) -> String {
    format!("{:.1}%", ratio * 100.0)
}

/// A row of percentiles as text.
pub fn percentiles_line(p: &Percentiles) -> String {
    format!(
        "p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
        p.p50_ms, p.p90_ms, p.p99_ms, p.p999_ms, p.max_ms
    )
}

fn counts_line(counts: &BTreeMap<String, u64>) -> String {
    let total: u64 = counts.values().sum();
    counts
        .iter()
        .map(|(name, count)| format!("{name} {count} ({})", percent(*count as f64 / total as f64)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The terminal summary.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "leanstack load test — {} — {}", self.target, self.mode)?;
        writeln!(
            f,
            "  {} requests in {:.1} s: {:.1} req/s, {} errors ({})",
            self.requests,
            self.elapsed_seconds,
            self.throughput,
            self.errors,
            percent(self.error_ratio)
        )?;
        writeln!(f, "  latency       {}", percentiles_line(&self.latency))?;
        writeln!(
            f,
            "  service time  {}",
            percentiles_line(&self.service_time)
        )?;
        writeln!(f, "  by request:")?;
        for row in &self.kinds {
            writeln!(
                f,
                "    {:<8} {:<10} {:>8} ({:>6})  {:>5} errors  p50 {:.2} ms  p99 {:.2} ms",
                row.kind.name(),
                if row.logged_in {
                    "logged-in"
                } else {
                    "anonymous"
                },
                row.requests,
                percent(row.share),
                row.errors,
                row.latency.p50_ms,
                row.latency.p99_ms
            )?;
        }
        writeln!(f, "  statuses: {}", counts_line(&self.statuses))?;
        if !self.cache_statuses.is_empty() {
            writeln!(f, "  X-Cache:  {}", counts_line(&self.cache_statuses))?;
        }
        if !self.balance.by_instance.is_empty() {
            let spread = self.balance.spread.map_or_else(String::new, |spread| {
                format!(" — spread {}", percent(spread))
            });
            writeln!(
                f,
                "  app instances: {}{spread}",
                counts_line(&self.balance.by_instance)
            )?;
        }
        let db = &self.database;
        if let Some(share) = db.share {
            writeln!(
                f,
                "  database: {} of {} page reads ({}) made queries; {} queries, {:.1}/s",
                db.reached_database,
                db.page_reads,
                percent(share),
                db.queries,
                db.queries_per_second
            )?;
        }
        let tiers = &self.tiers;
        if let Some(proxy) = &tiers.proxy {
            let statuses: Vec<String> = proxy
                .by_cache_status
                .iter()
                .map(|(status, count)| format!("{status} {count}"))
                .collect();
            writeln!(
                f,
                "  proxy: hit ratio {}, served from cache {} ({})",
                proxy.hit_ratio.map_or_else(|| "–".into(), percent),
                proxy.served_from_cache.map_or_else(|| "–".into(), percent),
                statuses.join(", ")
            )?;
        }
        for app in &tiers.apps {
            if let Some(per_second) = app.db_queries_per_second {
                writeln!(f, "  app {}: {per_second:.1} db queries/s", app.url)?;
            }
        }
        for (source, nodes) in [
            ("pool view", &tiers.pool_nodes),
            ("node", &tiers.cache_nodes),
        ] {
            for node in nodes {
                writeln!(
                    f,
                    "  cache {} ({source}): hit ratio {} ({} hits, {} misses)",
                    node.node,
                    node.hit_ratio.map_or_else(|| "–".into(), percent),
                    node.hits,
                    node.misses
                )?;
            }
        }
        for problem in &tiers.problems {
            writeln!(f, "  could not read: {problem}")?;
        }
        for note in &self.notes {
            writeln!(f, "  note: {note}")?;
        }
        Ok(())
    }
}
