use clap::Parser;
use service::logging::LogFormat;

/// A memcached-class cache node speaking RESP and the memcached protocol, and the client pool that spreads keys over nodes.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "CACHE_LISTEN", default_value = "127.0.0.1:6379")]
    listen: std::net::SocketAddr,
    /// Log line format on stderr; the level comes from RUST_LOG (default info).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t)]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    service::logging::init(cli.log_format);
    let listener = tokio::net::TcpListener::bind(cli.listen).await?;
    cache::node::run(
        listener,
        cache::node::Config::default(),
        service::shutdown::signal(),
    )
    .await?;
    Ok(())
}
