use clap::Parser;
use service::logging::LogFormat;

/// The MVC blog served by each app server: axum + askama + sqlx, cache-aside through the cache pool.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "APP_LISTEN", default_value = "127.0.0.1:3000")]
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
    app::run(
        listener,
        app::Config::default(),
        service::shutdown::signal(),
    )
    .await?;
    Ok(())
}
