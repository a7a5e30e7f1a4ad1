//! The `doorbell` command: the service and the tools around it.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use doorbell::admin::{format_time, format_uses};
use doorbell::config::{Config, Secret, Settings};
use doorbell::fake_twilio::FakeTwilio;
use doorbell::simulator::{Script, Simulator};
use doorbell::store::{Millis, Store, now_millis};
use service::logging::LogFormat;

/// The Twilio intercom webhook: a menu, dial a resident, or a PIN that opens the door.
#[derive(Debug, Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    /// Log line format on stderr; the level comes from RUST_LOG (default info).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Answer Twilio's webhooks.
    Serve(ServeArgs),
    /// Play Twilio's part in a call against a running doorbell and print the transcript.
    Call(CallArgs),
    /// Manage guest codes.
    #[command(subcommand)]
    Guest(GuestCommand),
    /// Print the audit log, newest first.
    Log {
        #[command(flatten)]
        database: DatabaseArgs,
        /// How many entries.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Read a PIN on standard input and print its argon2 hash, for `[[pins]] hash = "..."`.
    HashPin,
    /// A stand-in for Twilio's REST API that records the texts it is asked to send.
    FakeTwilio(FakeTwilioArgs),
    /// Exit 0 when the doorbell at --url answers its health check (for container health checks).
    Healthcheck {
        /// The doorbell's base URL.
        #[arg(long, env = "DOORBELL_URL", default_value = "http://127.0.0.1:8090")]
        url: String,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The TOML configuration file (residents, PIN hashes, open mode, ...).
    #[arg(long, env = "DOORBELL_CONFIG", default_value = "doorbell.toml")]
    config: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "DOORBELL_LISTEN", default_value = "127.0.0.1:8090")]
    listen: std::net::SocketAddr,
    /// The URL Twilio reaches the service at, without the /twilio/... path, e.g.
    /// https://door.example.com. Signatures are checked against it. Overrides `public_url` of
    /// the config file.
    #[arg(long, env = "DOORBELL_PUBLIC_URL")]
    public_url: Option<String>,
    #[command(flatten)]
    database: DatabaseUrl,
    #[command(flatten)]
    twilio: AuthToken,
    /// Where Twilio's REST API is, for texts (e.g. a `doorbell fake-twilio`). Overrides
    /// `twilio.api_base` of the config file.
    #[arg(long, env = "TWILIO_API_BASE")]
    twilio_api_base: Option<String>,
    /// A file holding the token that protects /admin (or the token itself in
    /// DOORBELL_ADMIN_TOKEN). Without one the admin page is off.
    #[arg(long, env = "DOORBELL_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct DatabaseUrl {
    /// sqlite://FILE (embedded, the default: sqlite://doorbell.db) or postgres://USER@HOST/DB.
    /// Overrides `database_url` of the config file.
    #[arg(long, env = "DOORBELL_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Debug, Args)]
struct DatabaseArgs {
    /// The configuration file, read for its `database_url` (when it exists).
    #[arg(long, env = "DOORBELL_CONFIG", default_value = "doorbell.toml")]
    config: PathBuf,
    #[command(flatten)]
    database: DatabaseUrl,
}

#[derive(Debug, Args)]
struct AuthToken {
    /// A file holding the Twilio auth token (a Docker/Kubernetes secret). Otherwise the token
    /// is read from the TWILIO_AUTH_TOKEN environment variable; it is never a flag, so that it
    /// does not show in `ps`.
    #[arg(long, env = "TWILIO_AUTH_TOKEN_FILE")]
    auth_token_file: Option<PathBuf>,
}

impl AuthToken {
    fn load(&self) -> anyhow::Result<Secret> {
        secret(self.auth_token_file.as_deref(), "TWILIO_AUTH_TOKEN")?
            .context("the Twilio auth token is needed: set TWILIO_AUTH_TOKEN or --auth-token-file")
    }
}

/// A secret from `file`, else from the environment variable `env`.
fn secret(file: Option<&std::path::Path>, env: &str) -> anyhow::Result<Option<Secret>> {
    if let Some(file) = file {
        return Secret::from_file(file).map(Some);
    }
    Ok(std::env::var(env)
        .ok()
        .filter(|v| !v.is_empty())
        .map(Secret::new))
}

#[derive(Debug, Args)]
struct CallArgs {
    /// Where the doorbell listens.
    #[arg(long, env = "DOORBELL_URL", default_value = "http://127.0.0.1:8090")]
    url: String,
    /// The doorbell's public URL, as it is configured there (the signatures cover it).
    #[arg(long, env = "DOORBELL_PUBLIC_URL")]
    public_url: Option<String>,
    /// The doorbell's configuration, read for its public URL and Twilio account.
    #[arg(long, env = "DOORBELL_CONFIG")]
    config: Option<PathBuf>,
    /// The calling number (the intercom).
    #[arg(long, default_value = "+15005550009")]
    from: String,
    /// The Twilio number called.
    #[arg(long, default_value = "+15005550006")]
    to: String,
    /// Keys pressed at each menu, in order (repeat the flag): `--keys 1` or `--keys 4321`.
    #[arg(long)]
    keys: Vec<String>,
    /// Whether each resident rung answers, in order (repeat the flag); unlisted ones do not.
    #[arg(long, value_parser = clap::builder::BoolishValueParser::new())]
    answer: Vec<bool>,
    #[command(flatten)]
    twilio: AuthToken,
}

#[derive(Debug, Subcommand)]
enum GuestCommand {
    /// Create a guest code and print it.
    Add {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Who it is for, e.g. "Plumber"; shown in texts and the log.
        #[arg(long)]
        label: String,
        /// From when it works: RFC 3339, `YYYY-MM-DD HH:MM` (local time), or `+2h` from now.
        /// Default: now.
        #[arg(long)]
        valid_from: Option<String>,
        /// Until when it works (same forms, e.g. `+1d`).
        #[arg(long)]
        valid_until: String,
        /// How many times it may open the door; unlimited when not given.
        #[arg(long)]
        max_uses: Option<u32>,
        /// The code itself; by default six random digits.
        #[arg(long)]
        code: Option<String>,
    },
    /// List the guest codes.
    List {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Revoke a guest code by its id.
    Revoke {
        #[command(flatten)]
        database: DatabaseArgs,
        id: i64,
    },
}

#[derive(Debug, Args)]
struct FakeTwilioArgs {
    /// Address to listen on; point the doorbell's `twilio.api_base` at it.
    #[arg(long, env = "FAKE_TWILIO_LISTEN", default_value = "127.0.0.1:8099")]
    listen: std::net::SocketAddr,
    /// The account SID the doorbell sends texts as.
    #[arg(
        long,
        env = "TWILIO_ACCOUNT_SID",
        default_value = "AC00000000000000000000000000000000"
    )]
    account_sid: String,
    #[command(flatten)]
    twilio: AuthToken,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    service::logging::init(cli.log_format);
    match execute(cli.command).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("doorbell: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve(args).await?,
        Command::Call(args) => return call(args).await,
        Command::Guest(command) => guest(command).await?,
        Command::Log { database, limit } => {
            let store = database.open().await?;
            for event in store.events(limit).await? {
                println!(
                    "{}  {:<16} {:<12} {:<8} {:<16} {}  {}",
                    format_time(event.at),
                    event.caller,
                    event.step,
                    event.input,
                    event.outcome,
                    event.detail,
                    event.call_sid
                );
            }
        }
        // Reading stdin and argon2 both block: keep them off the runtime's workers.
        Command::HashPin => tokio::task::spawn_blocking(hash_pin).await??,
        Command::FakeTwilio(args) => {
            let fake = FakeTwilio::new(&args.account_sid, args.twilio.load()?);
            let listener = tokio::net::TcpListener::bind(args.listen).await?;
            fake.run(listener, service::shutdown::signal()).await?;
        }
        Command::Healthcheck { url } => {
            let healthy = reqwest::Client::new()
                .get(format!("{}/healthz", url.trim_end_matches('/')))
                .timeout(Duration::from_secs(3))
                .send()
                .await
                .is_ok_and(|response| response.status().is_success());
            return Ok(if healthy {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut settings = Settings::load(&args.config)?;
    if let Some(api_base) = args.twilio_api_base {
        settings.twilio.api_base = api_base;
    }
    let public_url = args
        .public_url
        .or_else(|| settings.public_url.clone())
        .context("the public URL is needed: --public-url, DOORBELL_PUBLIC_URL or public_url in the config")?;
    let parsed = url::Url::parse(&public_url)
        .with_context(|| format!("the public URL {public_url:?} is not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.query().is_some() {
        bail!("the public URL is http(s)://host[:port][/prefix], without a query");
    }
    let database_url = args.database.resolve(Some(&settings));
    let admin_token = secret(args.admin_token_file.as_deref(), "DOORBELL_ADMIN_TOKEN")?;
    let config = Config {
        public_url: public_url.trim_end_matches('/').to_owned(),
        database_url,
        auth_token: args.twilio.load()?,
        admin_token,
        settings,
    };
    tracing::info!(public_url = %config.public_url, database = %redact_url(&config.database_url), "starting");
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    doorbell::run(listener, config, service::shutdown::signal()).await
}

/// A database URL without its password, for logs.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

impl DatabaseUrl {
    fn resolve(&self, settings: Option<&Settings>) -> String {
        self.database_url
            .clone()
            .or_else(|| settings.and_then(|s| s.database_url.clone()))
            .unwrap_or_else(|| "sqlite://doorbell.db".into())
    }
}

impl DatabaseArgs {
    fn settings(&self) -> anyhow::Result<Option<Settings>> {
        if self.config.exists() {
            Settings::load(&self.config).map(Some)
        } else {
            Ok(None)
        }
    }

    async fn open(&self) -> anyhow::Result<Store> {
        Store::open(&self.database.resolve(self.settings()?.as_ref())).await
    }
}

async fn call(args: CallArgs) -> anyhow::Result<ExitCode> {
    let settings = args.config.as_deref().map(Settings::load).transpose()?;
    let public_url = args
        .public_url
        .or_else(|| settings.as_ref().and_then(|s| s.public_url.clone()))
        .context("the doorbell's public URL is needed: --public-url or --config")?;
    let account_sid = settings
        .as_ref()
        .map(|s| s.twilio.account_sid.clone())
        .filter(|sid| !sid.is_empty())
        .unwrap_or_else(|| "AC00000000000000000000000000000000".into());
    let mut simulator = Simulator::new(&args.url, &public_url, args.twilio.load()?, &account_sid);
    if let Some(settings) = &settings {
        simulator.open_key = settings.tone.digit;
    }
    let transcript = simulator
        .call(Script {
            from: args.from,
            to: args.to,
            keys: args.keys.into(),
            answers: args.answer.into(),
        })
        .await;
    print!("{transcript}");
    Ok(if transcript.refused().is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn guest(command: GuestCommand) -> anyhow::Result<()> {
    match command {
        GuestCommand::Add {
            database,
            label,
            valid_from,
            valid_until,
            max_uses,
            code,
        } => {
            let settings = database.settings()?;
            let min_length = settings.as_ref().map_or(4, |s| s.min_code_length);
            let store = Store::open(&database.database.resolve(settings.as_ref())).await?;
            let now = now_millis();
            let from = valid_from.map_or(Ok(now), |t| parse_time(&t, now))?;
            let until = parse_time(&valid_until, now)?;
            if until <= from {
                bail!("--valid-until must be after --valid-from");
            }
            let code = code.unwrap_or_else(|| doorbell::codes::random_code(min_length.max(6)));
            if !doorbell::codes::is_well_formed(&code, min_length) {
                bail!("a code is {min_length} to 16 digits");
            }
            let id = store
                .add_guest_code(
                    &label,
                    &doorbell::codes::hash(&code),
                    from,
                    until,
                    max_uses.map(i64::from),
                    now,
                )
                .await?;
            let uses = max_uses.map_or("unlimited uses".into(), |n| format!("{n} use(s)"));
            println!("guest code {id} for {label}: {code}");
            println!(
                "valid {} until {}, {uses}",
                format_time(from),
                format_time(until)
            );
            let retention_days = settings
                .as_ref()
                .map_or(doorbell::config::DEFAULT_GUEST_CODE_RETENTION_DAYS, |s| {
                    s.guest_code_retention_days
                });
            let pruned = doorbell::codes::prune(&store, retention_days, now).await?;
            if pruned > 0 {
                println!(
                    "deleted {pruned} guest code(s) that stopped working over {retention_days} days ago"
                );
            }
        }
        GuestCommand::List { database } => {
            let store = database.open().await?;
            let now = now_millis();
            for guest in store.guest_codes().await? {
                println!(
                    "{:>4}  {:<20} {} → {}  uses {:<6} {}",
                    guest.id,
                    guest.label,
                    format_time(guest.valid_from),
                    format_time(guest.valid_until),
                    format_uses(&guest),
                    guest.refusal(now).unwrap_or("valid")
                );
            }
        }
        GuestCommand::Revoke { database, id } => {
            let store = database.open().await?;
            if !store.revoke_guest_code(id, now_millis()).await? {
                bail!("no guest code {id} that is not already revoked");
            }
            println!("guest code {id} revoked");
        }
    }
    Ok(())
}

/// RFC 3339, `YYYY-MM-DD HH:MM` or `YYYY-MM-DD` in local time, or `+N` followed by m, h or d.
fn parse_time(text: &str, now: Millis) -> anyhow::Result<Millis> {
    use chrono::{Local, NaiveDate, NaiveDateTime, TimeZone};
    let text = text.trim();
    if let Some(offset) = text.strip_prefix('+') {
        // The unit is matched as a character: splitting at a byte would panic inside a
        // multi-byte one.
        let mut chars = offset.chars();
        let unit_ms: i64 = match chars.next_back() {
            Some('m') => 60_000,
            Some('h') => 3_600_000,
            Some('d') => 86_400_000,
            _ => bail!("bad duration {text:?}: use m, h or d, as in +2h"),
        };
        let number: i64 = chars
            .as_str()
            .parse()
            .with_context(|| format!("bad duration {text:?}"))?;
        return number
            .checked_mul(unit_ms)
            .and_then(|offset| now.checked_add(offset))
            .with_context(|| format!("{text:?} is too far away"));
    }
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp_millis());
    }
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M")
        .or_else(|_| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d").map(|d| d.and_time(chrono::NaiveTime::MIN))
        })
        .with_context(|| {
            format!("cannot read {text:?} as a time (RFC 3339, YYYY-MM-DD HH:MM, or +2h)")
        })?;
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.timestamp_millis())
        .with_context(|| format!("{text} does not exist in the local time zone"))
}

fn hash_pin() -> anyhow::Result<()> {
    eprintln!("PIN (digits, then Enter):");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let pin = line.trim();
    if !doorbell::codes::is_well_formed(pin, 4) {
        bail!("a PIN is 4 to 16 digits");
    }
    println!("{}", doorbell::codes::hash(pin));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn relative_times() {
        assert_eq!(parse_time("+2h", NOW).unwrap(), NOW + 2 * 3_600_000);
        assert_eq!(parse_time(" +1d ", NOW).unwrap(), NOW + 86_400_000);
        assert_eq!(parse_time("+30m", NOW).unwrap(), NOW + 30 * 60_000);
    }

    #[test]
    fn bad_relative_times_are_errors_not_panics() {
        for text in [
            "+",
            "+h",
            "+2",
            "+2é",
            "+2 h",
            "+99999999999999999d",
            "+x1d",
        ] {
            assert!(parse_time(text, NOW).is_err(), "{text:?}");
        }
    }

    #[test]
    fn absolute_times() {
        assert_eq!(
            parse_time("2027-01-15T08:00:00Z", NOW).unwrap(),
            1_800_000_000_000
        );
        assert!(parse_time("2027-01-15 08:00", NOW).is_ok());
        assert!(parse_time("2027-01-15", NOW).is_ok());
        assert!(parse_time("soon", NOW).is_err());
    }
}
