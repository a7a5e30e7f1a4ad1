//! The HTML report: one self-contained page (inline CSS and SVG) with the run's key figures,
//! charts over time, and a table per tier.

use askama::Template;

use crate::report::{Percentiles, Report, percent};
use crate::svg::{Line, line_chart};

/// A table of the report.
#[derive(Debug)]
struct Table {
    title: String,
    /// Says what the numbers mean and where they come from.
    note: String,
    head: Vec<String>,
    rows: Vec<Row>,
}

impl Table {
    fn has_bars(&self) -> bool {
        self.rows.iter().any(|row| row.bar.is_some())
    }
}

#[derive(Debug)]
struct Row {
    cells: Vec<String>,
    /// A fraction in 0..=1 drawn as a bar after the cells.
    bar: Option<f64>,
}

impl Row {
    fn plain(cells: Vec<String>) -> Self {
        Row { cells, bar: None }
    }
}

/// A key figure at the top of the page.
#[derive(Debug)]
struct Figure {
    label: &'static str,
    value: String,
}

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage<'a> {
    report: &'a Report,
    figures: Vec<Figure>,
    charts: Vec<String>,
    tables: Vec<Table>,
}

/// The report as an HTML page.
pub fn render(report: &Report) -> Result<String, askama::Error> {
    ReportPage {
        report,
        figures: figures(report),
        charts: charts(report),
        tables: tables(report),
    }
    .render()
}

fn ms(value: f64) -> String {
    format!("{value:.2} ms")
}

fn figures(report: &Report) -> Vec<Figure> {
    let mut figures = vec![
        Figure {
            label: "requests",
            value: report.requests.to_string(),
        },
        Figure {
            label: "throughput",
            value: format!("{:.1} req/s", report.throughput),
        },
        Figure {
            label: "errors",
            value: format!("{} ({})", report.errors, percent(report.error_ratio)),
        },
        Figure {
            label: "p50",
            value: ms(report.latency.p50_ms),
        },
        Figure {
            label: "p99",
            value: ms(report.latency.p99_ms),
        },
        Figure {
            label: "p99.9",
            value: ms(report.latency.p999_ms),
        },
    ];
    if let Some(ratio) = report
        .tiers
        .proxy
        .as_ref()
        .and_then(|proxy| proxy.hit_ratio)
    {
        figures.push(Figure {
            label: "proxy hit ratio",
            value: percent(ratio),
        });
    }
    if let Some(share) = report.database.share {
        figures.push(Figure {
            label: "page reads reaching the database",
            value: percent(share),
        });
    }
    figures
}

fn charts(report: &Report) -> Vec<String> {
    let series = |value: fn(&crate::report::SecondRow) -> f64| -> Vec<(f64, f64)> {
        report
            .timeline
            .iter()
            .map(|second| (second.second as f64, value(second)))
            .collect()
    };
    vec![
        line_chart(
            "Requests per second",
            "requests/s",
            &[
                Line {
                    label: "due (offered)",
                    color: "#777",
                    dashed: true,
                    points: series(|s| s.due as f64),
                },
                Line {
                    label: "completed",
                    color: "#0a6ebd",
                    dashed: false,
                    points: series(|s| s.completed as f64),
                },
                Line {
                    label: "errors",
                    color: "#d2301e",
                    dashed: false,
                    points: series(|s| s.errors as f64),
                },
            ],
        ),
        line_chart(
            "Latency of the requests finished each second",
            "ms",
            &[
                Line {
                    label: "p50",
                    color: "#0a6ebd",
                    dashed: false,
                    points: series(|s| s.p50_ms),
                },
                Line {
                    label: "p99",
                    color: "#e08a00",
                    dashed: false,
                    points: series(|s| s.p99_ms),
                },
                Line {
                    label: "max",
                    color: "#d2301e",
                    dashed: false,
                    points: series(|s| s.max_ms),
                },
            ],
        ),
    ]
}

fn percentile_cells(p: &Percentiles) -> Vec<String> {
    [p.p50_ms, p.p90_ms, p.p99_ms, p.p999_ms, p.max_ms]
        .into_iter()
        .map(ms)
        .collect()
}

fn counts_table(title: &str, note: &str, what: &str, counts: &[(String, f64)]) -> Table {
    let total: f64 = counts.iter().map(|(_, count)| count).sum();
    let most = counts.iter().map(|(_, count)| *count).fold(0.0, f64::max);
    Table {
        title: title.to_owned(),
        note: note.to_owned(),
        head: vec![what.to_owned(), "requests".into(), "share".into()],
        rows: counts
            .iter()
            .map(|(name, count)| Row {
                cells: vec![
                    name.clone(),
                    format!("{count}"),
                    percent(if total > 0.0 { count / total } else { 0.0 }),
                ],
                bar: (most > 0.0).then(|| count / most),
            })
            .collect(),
    }
}

fn as_counts<'a>(counts: impl IntoIterator<Item = (&'a String, &'a u64)>) -> Vec<(String, f64)> {
    counts
        .into_iter()
        .map(|(name, count)| (name.clone(), *count as f64))
        .collect()
}

fn tables(report: &Report) -> Vec<Table> {
    let head = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect();
    let mut tables = vec![
        Table {
            title: "Latency".into(),
            note: "Latency counts from when each request was due (in an open-loop run, its \
                   scheduled time), so time spent waiting behind a stalled server is included; \
                   service time counts from the actual send."
                .into(),
            head: head(&["", "p50", "p90", "p99", "p99.9", "max"]),
            rows: [
                ("latency", &report.latency),
                ("service time", &report.service_time),
            ]
            .into_iter()
            .map(|(name, p)| {
                let mut cells = vec![name.to_owned()];
                cells.extend(percentile_cells(p));
                Row::plain(cells)
            })
            .collect(),
        },
        Table {
            title: "The mix".into(),
            note: "What was asked for, by whom.".into(),
            head: head(&[
                "request", "visitor", "requests", "share", "errors", "p50", "p90", "p99", "p99.9",
                "max",
            ]),
            rows: report
                .kinds
                .iter()
                .map(|row| {
                    let mut cells = vec![
                        row.kind.name().to_owned(),
                        if row.logged_in {
                            "logged-in"
                        } else {
                            "anonymous"
                        }
                        .to_owned(),
                        row.requests.to_string(),
                        percent(row.share),
                        row.errors.to_string(),
                    ];
                    cells.extend(percentile_cells(&row.latency));
                    Row::plain(cells)
                })
                .collect(),
        },
        counts_table(
            "Answers",
            "HTTP status codes, and requests that got no answer.",
            "status",
            &as_counts(&report.statuses),
        ),
    ];
    if !report.cache_statuses.is_empty() {
        tables.push(counts_table(
            "Proxy cache, as the generator saw it",
            "The X-Cache header of each answer.",
            "X-Cache",
            &as_counts(&report.cache_statuses),
        ));
    }
    if let Some(proxy) = &report.tiers.proxy {
        let counts: Vec<(String, f64)> = proxy
            .by_cache_status
            .iter()
            .map(|(status, count)| (status.clone(), *count))
            .collect();
        tables.push(counts_table(
            "Proxy cache, as the proxy counted it",
            &format!(
                "{} during the run, from {}. Hit ratio (HIT / all): {}; served from the cache \
                 (HIT + STALE): {}.",
                proxy
                    .family
                    .as_deref()
                    .unwrap_or("no request family with a cache status"),
                proxy.url,
                proxy.hit_ratio.map_or_else(|| "–".into(), percent),
                proxy.served_from_cache.map_or_else(|| "–".into(), percent)
            ),
            "cache status",
            &counts,
        ));
    }
    if !report.balance.by_instance.is_empty() {
        tables.push(counts_table(
            "App instances",
            &format!(
                "Requests that reached each instance (X-Served-By of answers not served from the \
                 proxy's cache). Spread (busiest − idlest) / mean: {}.",
                report.balance.spread.map_or_else(|| "–".into(), percent)
            ),
            "instance",
            &as_counts(&report.balance.by_instance),
        ));
    }
    let db = &report.database;
    tables.push(Table {
        title: "Database".into(),
        note: "From the Server-Timing header's db entry of each answer an app built itself.".into(),
        head: head(&[
            "page reads",
            "answered by an app",
            "with database queries",
            "share",
            "queries",
            "queries/s",
        ]),
        rows: vec![Row::plain(vec![
            db.page_reads.to_string(),
            db.reached_app.to_string(),
            db.reached_database.to_string(),
            db.share.map_or_else(|| "–".into(), percent),
            db.queries.to_string(),
            format!("{:.1}", db.queries_per_second),
        ])],
    });
    for app in &report.tiers.apps {
        tables.push(Table {
            title: format!("App metrics: {}", app.url),
            note: format!(
                "Database queries the app counted: {}. Series that changed during the run:",
                app.db_queries_per_second
                    .map_or_else(|| "not exported".into(), |rate| format!("{rate:.1}/s"))
            ),
            head: head(&["series", "increase"]),
            rows: changed_rows(&app.changed),
        });
    }
    for (title, note, nodes) in [
        (
            "Cache nodes, as the apps' pools saw them",
            "Hits and misses per node in the apps' cache_pool metrics.",
            &report.tiers.pool_nodes,
        ),
        (
            "Cache nodes, as they counted themselves",
            "keyspace_hits / keyspace_misses (INFO stats) or cache_hits / cache_misses.",
            &report.tiers.cache_nodes,
        ),
    ] {
        if nodes.is_empty() {
            continue;
        }
        tables.push(Table {
            title: title.into(),
            note: note.into(),
            head: head(&["node", "hits", "misses", "hit ratio"]),
            rows: nodes
                .iter()
                .map(|node| Row {
                    cells: vec![
                        node.node.clone(),
                        format!("{}", node.hits),
                        format!("{}", node.misses),
                        node.hit_ratio.map_or_else(|| "–".into(), percent),
                    ],
                    bar: node.hit_ratio,
                })
                .collect(),
        });
    }
    if let Some(proxy) = &report.tiers.proxy {
        tables.push(Table {
            title: "Proxy metrics that changed".into(),
            note: proxy.url.clone(),
            head: head(&["series", "increase"]),
            rows: changed_rows(&proxy.changed),
        });
    }
    tables.push(Table {
        title: "Per second".into(),
        note: "Due: requests scheduled in that second; completed, errors and latency: requests \
               that finished in it."
            .into(),
        head: head(&["second", "due", "completed", "errors", "p50", "p99", "max"]),
        rows: report
            .timeline
            .iter()
            .map(|second| {
                Row::plain(vec![
                    second.second.to_string(),
                    second.due.to_string(),
                    second.completed.to_string(),
                    second.errors.to_string(),
                    ms(second.p50_ms),
                    ms(second.p99_ms),
                    ms(second.max_ms),
                ])
            })
            .collect(),
    });
    tables
}

fn changed_rows(changed: &[(String, f64)]) -> Vec<Row> {
    changed
        .iter()
        .map(|(series, increase)| Row::plain(vec![series.clone(), format!("{increase}")]))
        .collect()
}
