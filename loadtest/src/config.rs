//! The command line: every knob of a run, each with an environment-variable fallback.
//!
//! [`Config`] is both the clap parser and the library's configuration, so a test builds one the
//! way a person would type it (`Config::try_parse_from(["loadtest", "--rate", "200", …])`) and
//! the defaults live in one place.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use url::Url;

/// Drives a leanstack deployment (or any site with the same URLs) with a realistic read-heavy
/// mix and reports latency, throughput, errors and what each tier did.
///
/// With `--rate` the run is open-loop: requests are scheduled at a fixed arrival rate whatever the
/// server does, and latency is measured from each request's scheduled time, so a stalled server
/// shows in the numbers (coordinated omission corrected). Without it the run is closed-loop:
/// `--users` virtual users each send a request, wait for the answer, and send the next.
#[derive(Debug, Clone, Parser)]
#[command(name = "loadtest", version)]
pub struct Config {
    /// Base URL of the site under test (the proxy in a full stack).
    #[arg(long, env = "LOADTEST_TARGET", default_value = "http://127.0.0.1:8080")]
    pub target: Url,

    /// Open-loop: requests per second to schedule, whatever the server's speed.
    #[arg(long, env = "LOADTEST_RATE", conflicts_with = "users")]
    pub rate: Option<f64>,

    /// Closed-loop: virtual users, each sending its next request when the last one answered.
    /// Used when --rate is not given.
    #[arg(long, env = "LOADTEST_USERS", default_value_t = 16)]
    pub users: usize,

    /// Stop scheduling requests after this long (e.g. `30s`, `2m`). With neither --duration nor
    /// --requests a run lasts 30 seconds.
    #[arg(long, env = "LOADTEST_DURATION", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,

    /// Stop after this many requests (whichever of --duration and --requests comes first).
    #[arg(long, env = "LOADTEST_REQUESTS")]
    pub requests: Option<u64>,

    /// Open-loop: most requests in flight at once. Requests due while the limit is reached wait
    /// for a free slot — and their wait counts in their latency.
    #[arg(long, env = "LOADTEST_MAX_IN_FLIGHT", default_value_t = 4096)]
    pub max_in_flight: usize,

    /// Time limit of one request, connection included; a request over it counts as an error.
    #[arg(long, env = "LOADTEST_TIMEOUT", value_parser = humantime::parse_duration, default_value = "10s")]
    pub timeout: Duration,

    /// Seed of the random choices (which page, which post, which user): the same seed makes the
    /// same sequence of requests.
    #[arg(long, env = "LOADTEST_SEED", default_value_t = 1)]
    pub seed: u64,

    #[command(flatten)]
    pub mix: MixConfig,

    #[command(flatten)]
    pub site: SiteConfig,

    #[command(flatten)]
    pub tiers: TierConfig,

    /// Where to write the HTML report (charts over time, per-tier numbers).
    #[arg(
        long,
        env = "LOADTEST_REPORT_HTML",
        default_value = "loadtest-report.html"
    )]
    pub report_html: PathBuf,

    /// Also write the report's numbers as JSON here (for scripts and benchmark records).
    #[arg(long, env = "LOADTEST_REPORT_JSON")]
    pub report_json: Option<PathBuf>,

    /// Don't draw the live progress bar (it is also hidden when stderr is not a terminal).
    #[arg(long, env = "LOADTEST_NO_PROGRESS")]
    pub no_progress: bool,

    /// Log line format on stderr.
    #[arg(long, env = "LOADTEST_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: service::logging::LogFormat,
}

/// What the virtual visitors do.
#[derive(Debug, Clone, clap::Args)]
pub struct MixConfig {
    /// Share of requests made by logged-in users (who bypass the proxy's cache).
    #[arg(long, env = "LOADTEST_LOGGED_IN_SHARE", default_value_t = 0.05)]
    pub logged_in_share: f64,

    /// Share of a logged-in user's requests that post a comment.
    #[arg(long, env = "LOADTEST_COMMENT_SHARE", default_value_t = 0.01)]
    pub comment_share: f64,

    /// Share of page reads that are the front page.
    #[arg(long, env = "LOADTEST_FRONT_SHARE", default_value_t = 0.15)]
    pub front_share: f64,

    /// Share of page reads that are a tag page; the rest are post pages.
    #[arg(long, env = "LOADTEST_TAG_SHARE", default_value_t = 0.10)]
    pub tag_share: f64,

    /// Exponent s of the Zipf popularity of posts and tags: the k-th most popular is read in
    /// proportion to 1/k^s.
    #[arg(long, env = "LOADTEST_ZIPF_EXPONENT", default_value_t = 1.1)]
    pub zipf_exponent: f64,

    /// How many accounts the logged-in users share (created or logged into before the run).
    #[arg(long, env = "LOADTEST_ACCOUNTS", default_value_t = 8)]
    pub accounts: usize,
}

/// Where the site keeps things. `{slug}` and `{tag}` are replaced (percent-encoded).
#[derive(Debug, Clone, clap::Args)]
pub struct SiteConfig {
    /// The JSON list of posts, paged with `?page=N` from 1, used to discover post slugs and tags.
    #[arg(long, env = "LOADTEST_POSTS_API", default_value = "/api/posts")]
    pub posts_api: String,

    /// At most this many pages of the posts API are read before the run.
    #[arg(long, env = "LOADTEST_DISCOVER_PAGES", default_value_t = 50)]
    pub discover_pages: u32,

    /// The front page.
    #[arg(long, env = "LOADTEST_FRONT_PATH", default_value = "/")]
    pub front_path: String,

    /// A post's page.
    #[arg(long, env = "LOADTEST_POST_PATH", default_value = "/posts/{slug}")]
    pub post_path: String,

    /// A tag's page.
    #[arg(long, env = "LOADTEST_TAG_PATH", default_value = "/tags/{tag}")]
    pub tag_path: String,

    /// The sign-up form (GET shows it, its form is POSTed back).
    #[arg(long, env = "LOADTEST_SIGNUP_PATH", default_value = "/signup")]
    pub signup_path: String,

    /// The log-in form, used when an account already exists.
    #[arg(long, env = "LOADTEST_LOGIN_PATH", default_value = "/login")]
    pub login_path: String,

    /// The session cookie the site sets at log-in.
    #[arg(
        long,
        env = "LOADTEST_SESSION_COOKIE",
        default_value = "leanstack_session"
    )]
    pub session_cookie: String,

    /// Accounts are named `<prefix><n>`.
    #[arg(long, env = "LOADTEST_ACCOUNT_PREFIX", default_value = "loadtest")]
    pub account_prefix: String,

    /// Password of the load-test accounts.
    #[arg(
        long,
        env = "LOADTEST_ACCOUNT_PASSWORD",
        default_value = "load-test-password"
    )]
    pub account_password: String,
}

/// Where the tiers publish their numbers; each is read before and after the run.
#[derive(Debug, Clone, clap::Args)]
pub struct TierConfig {
    /// The proxy's admin listener (its `/metrics` has the `proxy_` families).
    #[arg(long, env = "LOADTEST_PROXY_ADMIN")]
    pub proxy_admin: Option<Url>,

    /// An app instance's /metrics URL (repeat the flag, or separate with commas).
    #[arg(long = "metrics", env = "LOADTEST_METRICS", value_delimiter = ',')]
    pub app_metrics: Vec<Url>,

    /// A cache node's RESP address (host:port), asked `INFO stats` for keyspace hits and misses
    /// (repeat the flag, or separate with commas).
    #[arg(
        long = "cache-node",
        env = "LOADTEST_CACHE_NODES",
        value_delimiter = ','
    )]
    pub cache_nodes: Vec<String>,
}

/// When a run stops scheduling requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub duration: Option<Duration>,
    pub requests: Option<u64>,
}

/// The most requests an open-loop run keeps in flight (far above what one machine's ports allow).
pub const MAX_IN_FLIGHT: usize = 1_000_000;

/// A run lasts this long when neither bound is given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(30);

impl Config {
    /// The run's bounds, with the default duration when none is given.
    pub fn bounds(&self) -> Bounds {
        match (self.duration, self.requests) {
            (None, None) => Bounds {
                duration: Some(DEFAULT_DURATION),
                requests: None,
            },
            (duration, requests) => Bounds { duration, requests },
        }
    }

    /// Checks what clap cannot: shares are probabilities, rates and counts are positive.
    pub fn validate(&self) -> Result<(), String> {
        let mix = &self.mix;
        for (flag, share) in [
            ("--logged-in-share", mix.logged_in_share),
            ("--comment-share", mix.comment_share),
            ("--front-share", mix.front_share),
            ("--tag-share", mix.tag_share),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!("{flag} must be between 0 and 1, not {share}"));
            }
        }
        if mix.front_share + mix.tag_share > 1.0 {
            return Err("--front-share plus --tag-share must not exceed 1".into());
        }
        if !(mix.zipf_exponent.is_finite() && mix.zipf_exponent >= 0.0) {
            return Err("--zipf-exponent must be a number ≥ 0".into());
        }
        if let Some(rate) = self.rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(format!("--rate must be a positive number, not {rate}"));
        }
        if self.rate.is_none() && self.users == 0 {
            return Err("--users must be at least 1".into());
        }
        if !(1..=MAX_IN_FLIGHT).contains(&self.max_in_flight) {
            return Err(format!(
                "--max-in-flight must be between 1 and {MAX_IN_FLIGHT}"
            ));
        }
        if self.requests == Some(0) {
            return Err("--requests must be at least 1".into());
        }
        if mix.logged_in_share > 0.0 && mix.accounts == 0 {
            return Err("--accounts must be at least 1 when --logged-in-share is above 0".into());
        }
        for (flag, template, placeholder) in [
            ("--post-path", &self.site.post_path, "{slug}"),
            ("--tag-path", &self.site.tag_path, "{tag}"),
        ] {
            if !template.contains(placeholder) {
                return Err(format!("{flag} must contain {placeholder}: {template}"));
            }
        }
        Ok(())
    }
}
