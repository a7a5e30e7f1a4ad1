use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use proxy::{Config, Proxy, ReloadHandle};
use service::logging::LogFormat;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// The caching reverse proxy and load balancer in front of the app servers (the Varnish/Squid
/// role).
///
/// With a policy file: `proxy --config proxy.toml`. Without one, like `varnishd -b`:
/// `proxy --backend 127.0.0.1:3000,127.0.0.1:3001` proxies and caches with the RFC 9111
/// defaults. `proxy --check --config FILE` validates a file and prints its policy in plain
/// words. SIGHUP re-reads the file; an invalid file is refused and the running policy stays.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Policy file (TOML): pools, routes, cache and admin settings. See deploy/proxy.toml.
    #[arg(long, env = "PROXY_CONFIG")]
    config: Option<PathBuf>,
    /// Validate --config, print the effective policy in plain words, and exit (1 if invalid).
    #[arg(long, requires = "config")]
    check: bool,
    /// Address for clients [default: the file's server.listen, else 127.0.0.1:8080].
    #[arg(long, env = "PROXY_LISTEN")]
    listen: Option<SocketAddr>,
    /// Backends when running without a file: host:port, comma-separated.
    #[arg(
        long,
        env = "PROXY_BACKEND",
        value_delimiter = ',',
        conflicts_with = "config"
    )]
    backend: Vec<String>,
    /// Address for /metrics, /status and purges [default: the file's server.admin_listen,
    /// else 127.0.0.1:9080].
    #[arg(long, env = "PROXY_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,
    /// Log line format on stderr; the level comes from RUST_LOG (default info; access log lines
    /// are target proxy::access).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t)]
    log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Exit 0 when the proxy's admin listener answers /healthz (for container health checks).
    Healthcheck {
        /// The URL to ask.
        #[arg(
            long,
            env = "PROXY_HEALTHCHECK_URL",
            default_value = "http://127.0.0.1:9080/healthz"
        )]
        url: String,
    },
}

#[global_allocator]
static ALLOCATOR: proxy::allocator::Allocator = proxy::allocator::Allocator;

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9080";

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Pinned to one CPU (taskset, a container with cpus: 1), a single-threaded runtime does the
    // same work without the work-stealing scheduler's synchronisation.
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let runtime = if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    .enable_all()
    .build()
    .expect("a tokio runtime");
    match runtime.block_on(start(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("proxy: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn start(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Some(Command::Healthcheck { url }) = &cli.command {
        return healthcheck(url).await;
    }
    let config = match (&cli.config, cli.backend.is_empty()) {
        (Some(path), _) => match Config::load(path) {
            Ok(config) => config,
            Err(error) if cli.check => {
                println!("{} is invalid: {error}", path.display());
                return Ok(ExitCode::FAILURE);
            }
            Err(error) => bail!("{}: {error}", path.display()),
        },
        (None, false) => Config::for_backends(cli.backend.clone()),
        (None, true) => {
            bail!("give a policy file (--config FILE) or backends (--backend HOST:PORT,...)")
        }
    };
    if cli.check {
        let path = cli
            .config
            .as_ref()
            .expect("clap requires --config with --check");
        println!(
            "{} is valid. Effective policy:\n\n{}",
            path.display(),
            config.describe()
        );
        return Ok(ExitCode::SUCCESS);
    }
    // Log lines (one access line per request) are formatted on the event loop but written by a
    // thread of their own, batched into few writes: a slow reader of stderr (a container's log
    // driver) never stalls the proxy. If it falls 128k lines behind, lines are dropped, never
    // requests. The guard flushes what is queued when the proxy stops.
    let (log_writer, _flush_logs_on_exit) =
        tracing_appender::non_blocking(std::io::BufWriter::new(std::io::stderr()));
    service::logging::init_with_writer(cli.log_format, log_writer);
    let listen = cli
        .listen
        .or(config.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("a valid address"));
    let admin_listen = cli
        .admin_listen
        .or(config.admin_listen)
        .unwrap_or_else(|| DEFAULT_ADMIN_LISTEN.parse().expect("a valid address"));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let admin = tokio::net::TcpListener::bind(admin_listen)
        .await
        .with_context(|| format!("cannot listen on {admin_listen}"))?;
    let proxy = Proxy::new(config).await;
    if let Some(path) = cli.config {
        // Listened for before the proxy serves: a SIGHUP sent once it answers must reload it,
        // never find the default action (exit) still in place.
        match signal(SignalKind::hangup()) {
            Ok(hangups) => {
                tokio::spawn(reload_on_sighup(hangups, proxy.reload_handle(), path));
            }
            Err(error) => tracing::warn!(%error, "cannot listen for SIGHUP; reloads are off"),
        }
    }
    proxy
        .serve(listener, Some(admin), service::shutdown::signal())
        .await?;
    Ok(ExitCode::SUCCESS)
}

async fn reload_on_sighup(mut hangups: Signal, reloads: ReloadHandle, path: PathBuf) {
    while hangups.recv().await.is_some() {
        tracing::info!(path = %path.display(), "SIGHUP: reloading the policy");
        // A refused file is logged by reload_file; the running policy stays.
        let _ = reloads.reload_file(&path).await;
    }
}

async fn healthcheck(url: &str) -> anyhow::Result<ExitCode> {
    use http_body_util::Empty;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let uri = url.parse().with_context(|| format!("{url} is not a URL"))?;
    match tokio::time::timeout(Duration::from_secs(3), client.get(uri)).await {
        Ok(Ok(response)) if response.status().is_success() => Ok(ExitCode::SUCCESS),
        Ok(Ok(response)) => {
            eprintln!("proxy healthcheck: {url} answered {}", response.status());
            Ok(ExitCode::FAILURE)
        }
        Ok(Err(error)) => {
            eprintln!("proxy healthcheck: {url}: {error}");
            Ok(ExitCode::FAILURE)
        }
        Err(_) => {
            eprintln!("proxy healthcheck: {url} did not answer within 3s");
            Ok(ExitCode::FAILURE)
        }
    }
}
