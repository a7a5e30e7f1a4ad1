use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use service::logging::LogFormat;
use sqlx::postgres::PgPoolOptions;

/// The leanstack blog app server: axum + askama + sqlx over PostgreSQL, with cache-aside
/// through the cache pool.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Log line format on stderr; the level comes from RUST_LOG (default info).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the blog over HTTP (does not migrate: run `app migrate` first, once).
    Serve(ServeArgs),
    /// Apply the embedded database migrations, then exit.
    Migrate(DatabaseArgs),
    /// Fill an empty, migrated database with deterministic demo content.
    Seed(SeedArgs),
    /// Let an existing user write posts.
    MakeAuthor {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The user's username.
        username: String,
    },
    /// Exit 0 if the app at --url answers 2xx (for container health checks).
    Healthcheck {
        /// The URL to probe.
        #[arg(
            long,
            env = "APP_HEALTHCHECK_URL",
            default_value = "http://127.0.0.1:3000/healthz"
        )]
        url: String,
    },
}

#[derive(Debug, Args)]
struct DatabaseArgs {
    /// PostgreSQL URL, e.g. postgres://leanstack:secret@postgres/leanstack.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "APP_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    #[command(flatten)]
    database: DatabaseArgs,
    /// Most database connections this instance opens.
    #[arg(long, env = "APP_DB_MAX_CONNECTIONS", default_value_t = 20)]
    db_max_connections: u32,
    /// Cache nodes: `cache-1:6379,cache-2:6379`, or `dns+cache:6379` for every address a name
    /// resolves to; empty disables the cache.
    #[arg(long, env = "APP_CACHE_NODES", default_value = "")]
    cache_nodes: String,
    /// The name in each response's X-Served-By header [default: $HOSTNAME, else "app"].
    #[arg(long, env = "APP_INSTANCE_NAME")]
    instance_name: Option<String>,
    /// The proxy's admin endpoint, e.g. http://proxy:9080: after each write the app sends
    /// `POST {url}/purge` with a Surrogate-Key header. Unset: no purges.
    #[arg(long, env = "APP_PROXY_ADMIN_URL")]
    proxy_admin_url: Option<String>,
}

#[derive(Debug, Args)]
struct SeedArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// Users to create; the first tenth are authors. All have the password "leanstack".
    #[arg(long, default_value_t = 200)]
    users: u32,
    /// Posts to create.
    #[arg(long, default_value_t = 10_000)]
    posts: u32,
    /// Comments to create, spread over the posts.
    #[arg(long, default_value_t = 100_000)]
    comments: u32,
    /// Random seed: the same seed gives the same content.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Do nothing (and succeed) when the database already has content, instead of failing: for
    /// a seed step that runs on every `docker compose up`.
    #[arg(long)]
    if_empty: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    service::logging::init(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("app: cannot start the Tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("app: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(args) => {
            let pool = connect(&args).await?;
            app::MIGRATOR.run(&pool).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Seed(args) => {
            let pool = connect(&args.database).await?;
            if args.if_empty && app::seed::has_content(&pool).await? {
                println!("the database already has content; nothing seeded");
                return Ok(());
            }
            let started = std::time::Instant::now();
            let summary = app::seed::seed(
                &pool,
                app::seed::SeedConfig {
                    users: args.users,
                    posts: args.posts,
                    comments: args.comments,
                    seed: args.seed,
                },
            )
            .await?;
            println!(
                "seeded {} users, {} posts, {} comments in {:.1?} (password: {})",
                summary.users,
                summary.posts,
                summary.comments,
                started.elapsed(),
                app::seed::SEED_PASSWORD
            );
            Ok(())
        }
        Command::MakeAuthor { database, username } => {
            let pool = connect(&database).await?;
            let db = app::models::Db::new(pool, &mut Default::default());
            anyhow::ensure!(
                app::models::user::make_author(&db, &username).await?,
                "no user named {username:?}"
            );
            println!("{username} may now write posts");
            Ok(())
        }
        Command::Healthcheck { url } => {
            let response = reqwest::Client::new()
                .get(&url)
                .timeout(Duration::from_secs(3))
                .send()
                .await?;
            anyhow::ensure!(
                response.status().is_success(),
                "{url} answered {}",
                response.status()
            );
            Ok(())
        }
    }
}

async fn connect(args: &DatabaseArgs) -> anyhow::Result<sqlx::PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&args.database_url)
        .await?)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Lazy: the app starts, and answers 503 pages, while the database is down.
    let database = PgPoolOptions::new()
        .max_connections(args.db_max_connections)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy(&args.database.database_url)?;
    let config = app::Config {
        database,
        cache: cache::pool::PoolConfig::from_nodes_arg(&args.cache_nodes)?,
        instance_name: args
            .instance_name
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "app".to_owned()),
        proxy_admin_url: args.proxy_admin_url.filter(|url| !url.is_empty()),
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    app::run(listener, config, service::shutdown::signal()).await?;
    Ok(())
}
