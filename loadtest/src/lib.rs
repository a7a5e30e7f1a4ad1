//! The load generator for leanstack: it discovers the site's posts, logs a few users in through
//! the site's own forms, offers a realistic read-heavy mix open-loop (fixed arrival rate,
//! coordinated omission corrected) or closed-loop (N users), and reports latency, throughput,
//! errors and what every tier did — in the terminal, as JSON and as a self-contained HTML page.
//!
//! A run, in order ([`run`]): [`discovery`] → [`accounts`] → [`tiers`] read → [`load`] (the
//! [`workload`] mix, sent by [`exchange`], counted by [`stats`], shown by [`progress`]) →
//! [`tiers`] read again → [`report`] and [`html`].

pub mod accounts;
pub mod config;
pub mod discovery;
pub mod exchange;
pub mod forms;
pub mod html;
pub mod load;
pub mod progress;
pub mod report;
pub mod stats;
pub mod svg;
pub mod tiers;
pub mod workload;
pub mod zipf;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

pub use config::Config;
pub use report::Report;

use crate::exchange::Exchanger;
use crate::load::{Driver, Mode};
use crate::report::RunFacts;
use crate::stats::Recorder;
use crate::workload::Mix;

/// Why a run could not be made or reported.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot discover the site's posts at {url}: {reason}")]
    Discovery { url: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("cannot render the HTML report: {0}")]
    Render(#[from] askama::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Makes one run as `config` says, stopping early (and still reporting) when `stop` resolves;
/// writes the report files and returns the report.
pub async fn run(
    config: Config,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<Report, Error> {
    config.validate().map_err(Error::Config)?;
    let client = reqwest::Client::builder()
        .timeout(config.timeout)
        // One request is one exchange: a redirect is an answer to count, not to follow.
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(usize::MAX)
        .tcp_nodelay(true)
        .user_agent(concat!("leanstack-loadtest/", env!("CARGO_PKG_VERSION")))
        .build()?;

    let site = &config.site;
    let catalog = discovery::discover(
        &client,
        &config.target,
        &site.posts_api,
        site.discover_pages,
    )
    .await?;
    tracing::info!(
        posts = catalog.posts.len(),
        tags = catalog.tags.len(),
        "discovered the site"
    );

    let mut notes = Vec::new();
    let mut mix_config = config.mix.clone();
    let mut accounts = Vec::new();
    if mix_config.logged_in_share > 0.0 {
        let sample_post = workload::fill(&site.post_path, "{slug}", &catalog.posts[0]);
        let (logged_in, failures) = accounts::log_in_all(
            &client,
            &config.target,
            site,
            mix_config.accounts,
            &sample_post,
        )
        .await;
        notes.extend(failures.iter().map(ToString::to_string));
        if logged_in.is_empty() {
            notes.push("no account could log in: every request was anonymous".into());
        } else if mix_config.comment_share > 0.0
            && logged_in
                .iter()
                .any(|account| account.comment_form.is_none())
        {
            notes.push(format!(
                "a logged-in user found no comment form on {sample_post}: no comments were posted"
            ));
            mix_config.comment_share = 0.0;
        }
        accounts = logged_in;
    }
    let mix = Mix::new(&mix_config, site, &catalog, accounts.len())
        .expect("discovery returns at least one post");

    let mode = match config.rate {
        Some(rate) => Mode::OpenLoop {
            rate,
            max_in_flight: config.max_in_flight,
        },
        None => Mode::ClosedLoop {
            users: config.users,
        },
    };
    let bounds = config.bounds();
    let before = tiers::read(&client, &config.tiers).await;

    let started_at = SystemTime::now();
    let recorder = Arc::new(Recorder::new(Instant::now()));
    let stopping = Arc::new(AtomicBool::new(false));
    let stop_watch = tokio::spawn({
        let stopping = stopping.clone();
        async move {
            stop.await;
            tracing::info!("stopping early: no new requests, waiting for those in flight");
            stopping.store(true, Ordering::Relaxed);
        }
    });
    let display = progress::Display::start(recorder.clone(), bounds, !config.no_progress);
    let driver = Driver {
        mix: Arc::new(mix),
        exchanger: Arc::new(Exchanger::new(
            client.clone(),
            config.target.clone(),
            accounts,
        )),
        recorder: recorder.clone(),
        seed: config.seed,
        stop: stopping,
    };
    driver.run(mode, bounds).await;
    let elapsed = recorder.start().elapsed();
    display.finish();
    stop_watch.abort();

    let after = tiers::read(&client, &config.tiers).await;
    let report = Report::new(
        &recorder.totals(),
        RunFacts {
            target: config.target.to_string(),
            mode: mode.describe(),
            started_at,
            elapsed,
            tiers: after.since(&before, elapsed.as_secs_f64()),
            notes,
        },
    );
    write(&config.report_html, &html::render(&report)?)?;
    if let Some(path) = &config.report_json {
        let json = serde_json::to_string_pretty(&report).expect("a report is plain data");
        write(path, &json)?;
    }
    Ok(report)
}

fn write(path: &Path, contents: &str) -> Result<(), Error> {
    std::fs::write(path, contents).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}
