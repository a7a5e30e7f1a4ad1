//! A real PostgreSQL for tests.
//!
//! With `DATABASE_URL` set (as `scripts/test` does), every test gets a new database on that
//! server. Otherwise the first test of a process starts a private cluster with `initdb` and
//! `pg_ctl` in a temporary directory on a free port; the other tests of the process share it, and
//! a small reaper process stops it and deletes the directory once the test process has exited
//! (Rust runs no destructors for statics, and a test binary killed by a timeout must not leave
//! a server behind either).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use url::Url;

/// What to tell a person whose machine has no PostgreSQL.
const INSTALL_HINT: &str = "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found on PATH \
     nor under /usr/lib/postgresql/*/bin. Install them — on Debian/Ubuntu: \
     `sudo apt-get install postgresql` — or set DATABASE_URL to a PostgreSQL server on which this \
     user may CREATE DATABASE. `./scripts/test` installs it for you when run as root.";

/// A database of its own for one test.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    /// `postgres://…/<name>`, ready for `sqlx::PgPool::connect`.
    pub url: String,
    /// The database's name, unique on the server.
    pub name: String,
}

impl TestDatabase {
    /// A connection pool to this database.
    pub async fn pool(&self) -> sqlx::PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(5)
            .connect(&self.url)
            .await
            .unwrap_or_else(|error| {
                panic!("cannot connect to test database {}: {error}", self.name)
            })
    }
}

/// Creates a new, empty database for the calling test and returns its URL.
///
/// Panics, with what to install, when no PostgreSQL can be found: tests that need a database
/// must fail rather than silently pass.
pub async fn fresh_database() -> TestDatabase {
    let server = server_url();
    let name = unique_database_name();
    let mut admin = PgConnection::connect(server.as_str())
        .await
        .unwrap_or_else(|error| {
            panic!("cannot connect to the test PostgreSQL at {server}: {error}")
        });
    // The name is made here of digits, letters and underscores only.
    sqlx::query(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|error| panic!("cannot create test database {name}: {error}"));
    admin.close().await.ok();
    let mut url = server.clone();
    url.set_path(&name);
    TestDatabase {
        url: url.into(),
        name,
    }
}

fn unique_database_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "test_{}_{}_{:08x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    )
}

/// The URL of a server on which tests may create databases (its path names an existing database
/// to connect to while doing so).
fn server_url() -> Url {
    static SERVER: OnceLock<Result<Url, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => {
                Url::parse(&url).map_err(|error| format!("DATABASE_URL is not a URL: {error}"))
            }
            _ => start_private_cluster(),
        })
        .clone()
        .unwrap_or_else(|message| panic!("{message}"))
}

/// Where `name` (e.g. `initdb`) lives: on PATH, or in the newest /usr/lib/postgresql/*/bin.
fn find_binary(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>());
    let mut versioned: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .collect();
    versioned.sort_by_key(|dir| {
        let version = dir
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|v| v.to_str());
        std::cmp::Reverse(version.and_then(|v| v.parse::<u32>().ok()).unwrap_or(0))
    });
    on_path
        .chain(versioned)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn start_private_cluster() -> Result<Url, String> {
    let initdb = find_binary("initdb").ok_or(INSTALL_HINT)?;
    let pg_ctl = initdb.with_file_name("pg_ctl");
    if !pg_ctl.is_file() {
        return Err(INSTALL_HINT.into());
    }
    let dir = std::env::temp_dir().join(format!(
        "leanstack-pg-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let run_as = unprivileged_user_if_root(&dir)?;
    let data = dir.join("data");

    run(
        as_user(&run_as, &initdb).arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]),
        "initdb",
    )?;
    let port = free_port()?;
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=300",
        dir.display()
    );
    run(
        as_user(&run_as, &pg_ctl)
            .arg("-D")
            .arg(&data)
            .args(["-w", "-t", "60", "-o", &options, "-l"])
            .arg(dir.join("postgres.log"))
            .arg("start"),
        "pg_ctl start",
    )?;
    let postmaster = std::fs::read_to_string(data.join("postmaster.pid"))
        .ok()
        .and_then(|pid_file| pid_file.lines().next().map(str::to_owned))
        .ok_or("pg_ctl started PostgreSQL but wrote no postmaster.pid")?;
    spawn_reaper(&postmaster, &dir)?;
    tracing::info!(port, dir = %dir.display(), "started a private PostgreSQL for tests");
    Url::parse(&format!("postgres://postgres@127.0.0.1:{port}/postgres")).map_err(|e| e.to_string())
}

/// PostgreSQL refuses to run as root; when the tests do, the cluster runs as `postgres` (the
/// Debian package's user) or `nobody`, owning its directory.
fn unprivileged_user_if_root(dir: &Path) -> Result<Option<String>, String> {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false);
    if !is_root {
        return Ok(None);
    }
    for user in ["postgres", "nobody"] {
        let chowned = Command::new("chown")
            .arg("-R")
            .arg(format!("{user}:"))
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if chowned {
            return Ok(Some(user.to_owned()));
        }
    }
    Err(
        "tests run as root and neither the `postgres` nor the `nobody` user exists to run \
         PostgreSQL as"
            .into(),
    )
}

fn as_user(user: &Option<String>, program: &Path) -> Command {
    match user {
        Some(user) => {
            let mut command = Command::new("runuser");
            command.args(["-u", user, "--"]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

/// Stops the cluster and removes its directory once this process has gone, however it ends.
fn spawn_reaper(postmaster: &str, dir: &Path) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let script = format!(
        "while kill -0 {parent} 2>/dev/null; do sleep 0.5; done; \
         kill -QUIT {postmaster} 2>/dev/null; \
         while kill -0 {postmaster} 2>/dev/null; do sleep 0.1; done; \
         rm -rf '{dir}'",
        parent = std::process::id(),
        dir = dir.display()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so that a signal to the test's group does not take it along.
        .process_group(0)
        .spawn()
        .map(drop)
        .map_err(|e| format!("cannot start the cluster's reaper: {e}"))
}
