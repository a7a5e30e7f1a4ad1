//! `cache`: the cache node binary. See `cache --help`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use service::logging::LogFormat;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A memcached-class cache node: one memory-bounded store served over the Redis protocol
/// (RESP2/RESP3) and the memcached text and meta protocols, with Prometheus metrics.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Address for RESP (Redis protocol) clients.
    #[arg(long, env = "CACHE_LISTEN", default_value = "127.0.0.1:6379")]
    listen: SocketAddr,
    /// Address for memcached protocol clients, or `off`.
    #[arg(long, env = "CACHE_MEMCACHE_LISTEN", default_value = "127.0.0.1:11211")]
    memcache_listen: OptionalAddr,
    /// Address for HTTP /metrics (Prometheus) and /healthz, or `off`.
    #[arg(long, env = "CACHE_METRICS_LISTEN", default_value = "127.0.0.1:9150")]
    metrics_listen: OptionalAddr,
    /// Memory for items and the store's structures, like memcached's -m: bytes, or with a
    /// suffix k/m/g (powers of 1024), e.g. `64m`.
    #[arg(long, env = "CACHE_MAX_MEMORY", default_value = "64m", value_parser = size)]
    max_memory: u64,
    /// The largest key + value accepted, like memcached's -I (same units).
    #[arg(long, env = "CACHE_MAX_ITEM_SIZE", default_value = "1m", value_parser = size)]
    max_item_size: u64,
    /// Client connections over both protocols; more are refused with the protocol's error.
    #[arg(long, env = "CACHE_MAX_CONNECTIONS", default_value_t = 1024)]
    max_connections: usize,
    /// Close connections idle for this many seconds (0: never), like Redis's `timeout`.
    #[arg(long, env = "CACHE_IDLE_TIMEOUT", default_value_t = 0)]
    idle_timeout: u64,
    /// Require RESP clients to AUTH with this password (Redis's `requirepass`).
    #[arg(long, env = "CACHE_REQUIREPASS", hide_env_values = true)]
    requirepass: Option<String>,
    /// Worker threads (default: one per CPU the process may run on).
    #[arg(long, env = "CACHE_THREADS")]
    threads: Option<usize>,
    /// Log line format on stderr; the level comes from RUST_LOG (default info).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Exit 0 if the node at --listen answers PING within 2 seconds, else 1 (for container
    /// health checks: runtime images have no redis-cli).
    Healthcheck,
}

/// A listen address, or `off`.
#[derive(Debug, Clone, Copy)]
struct OptionalAddr(Option<SocketAddr>);

impl std::str::FromStr for OptionalAddr {
    type Err = std::net::AddrParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "off" | "" => Ok(Self(None)),
            addr => addr.parse().map(|addr| Self(Some(addr))),
        }
    }
}

/// `1048576`, `512k`, `64m`, `1g` (also `64MB`, `64MiB`).
fn size(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit: u64 = match &lower[digits.len()..] {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown unit `{other}`: use k, m or g")),
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size"))?;
    number
        .checked_mul(unit)
        .filter(|&bytes| bytes > 0)
        .ok_or_else(|| format!("`{text}` is out of range"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    service::logging::init(cli.log_format);
    // One thread needs no work stealing: the single-threaded scheduler is cheaper per request.
    let mut runtime = match cli.threads {
        Some(0 | 1) => tokio::runtime::Builder::new_current_thread(),
        Some(threads) => {
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            runtime.worker_threads(threads);
            runtime
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Some(Command::Healthcheck) => runtime.block_on(healthcheck(cli.listen)),
        None => runtime.block_on(serve(cli)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("cache: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(cli: Cli) -> anyhow::Result<()> {
    use anyhow::Context;
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))
    };
    let listeners = cache::node::Listeners {
        resp: bind(cli.listen).await?,
        memcache: match cli.memcache_listen.0 {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        },
        metrics: match cli.metrics_listen.0 {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        },
    };
    let config = cache::node::Config {
        max_memory: cli.max_memory,
        max_item_size: usize::try_from(cli.max_item_size)?,
        max_connections: cli.max_connections,
        idle_timeout: (cli.idle_timeout > 0).then(|| Duration::from_secs(cli.idle_timeout)),
        requirepass: cli.requirepass,
        ..cache::node::Config::default()
    };
    cache::node::run(listeners, config, service::shutdown::signal()).await?;
    Ok(())
}

/// PINGs the node. A node with `--requirepass` answers `-NOAUTH`, which still proves it is up.
async fn healthcheck(addr: SocketAddr) -> anyhow::Result<()> {
    let check = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(b"*1\r\n$4\r\nPING\r\n").await?;
        let mut reply = [0u8; 64];
        let read = stream.read(&mut reply).await?;
        let reply = &reply[..read];
        anyhow::ensure!(
            reply.starts_with(b"+PONG") || reply.starts_with(b"-NOAUTH"),
            "unexpected reply {:?}",
            String::from_utf8_lossy(reply)
        );
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(2), check)
        .await
        .map_err(|_| anyhow::anyhow!("{addr} did not answer within 2 seconds"))?
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{Cli, size};

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["cache", "--memcache-listen", "off"]).unwrap();
        assert!(cli.memcache_listen.0.is_none());
        assert_eq!(cli.max_memory, 64 << 20);
        let cli = Cli::try_parse_from(["cache", "--metrics-listen", "0.0.0.0:9150"]).unwrap();
        assert!(cli.metrics_listen.0.is_some());
    }

    #[test]
    fn sizes() {
        assert_eq!(size("1048576"), Ok(1 << 20));
        assert_eq!(size("64m"), Ok(64 << 20));
        assert_eq!(size("64MiB"), Ok(64 << 20));
        assert_eq!(size("2G"), Ok(2 << 30));
        assert!(size("0").is_err());
        assert!(size("12q").is_err());
        assert!(size("m").is_err());
    }
}
