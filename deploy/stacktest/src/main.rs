//! `stacktest`: brings up the repository's docker-compose.yml on a real Docker engine, checks
//! the whole architecture end to end through the proxy's published port, then runs the failure
//! drills under a steady load. Run by `scripts/test`; see deploy/README.md.

mod compose;
mod drills;
mod load;
mod observability;
mod site;

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;

use crate::compose::{Compose, Tool};
use crate::site::Site;

/// Every service that must be healthy before the checks start.
const SERVICES: &[&str] = &[
    "postgres", "cache-1", "cache-2", "cache-3", "app-1", "app-2", "app-3", "doorbell", "proxy",
];

/// Bring up docker-compose.yml and test the whole stack end to end, with failure drills.
#[derive(Debug, Parser)]
struct Cli {
    /// Where the host-built binaries are that go into the leanstack image (the CI stand-in for
    /// the Dockerfile's Rust build stage; see deploy/ci/build-images.sh).
    #[arg(long, env = "STACKTEST_BINARIES", default_value = "target/debug")]
    binaries: PathBuf,
    /// Build the leanstack image by deploy/Dockerfile itself, a release build inside Docker on
    /// a stand-in Rust image made from the host's toolchain (slow), instead of from --binaries.
    #[arg(long, conflicts_with = "no_build")]
    from_dockerfile: bool,
    /// Use the images as they are (for example after `docker compose build`) instead of
    /// building the stand-ins.
    #[arg(long)]
    no_build: bool,
    /// The compose project name, so a stack a developer runs is left alone.
    #[arg(long, default_value = "leanstack-test")]
    project: String,
    /// Which compose implementation drives the stack (the file works with both).
    #[arg(long, value_enum, default_value_t = Tool::Auto)]
    compose: Tool,
    /// The host port the proxy is published on for the test; its admin listener gets PORT+1000
    /// and Prometheus PORT+2000.
    #[arg(long, default_value_t = 18080)]
    port: u16,
    /// Skip the failure drills.
    #[arg(long)]
    no_drills: bool,
    /// Leave the stack running afterwards, to look around (`docker compose -p PROJECT down -v`).
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let compose = match docker_available().and_then(|()| stack(&cli)) {
        Ok(compose) => compose,
        // A developer without Docker (or without this compose tool) can still run the rest of
        // the test command; CI must run everything.
        Err(why) if std::env::var("CI").as_deref() != Ok("true") => {
            println!("stacktest: compose tests skipped: {why:#}");
            return ExitCode::SUCCESS;
        }
        Err(why) => {
            eprintln!("stacktest: Docker and compose are required under CI=true: {why:#}");
            return ExitCode::FAILURE;
        }
    };
    match run(&cli, &compose).await {
        Ok(report) => report.finish(),
        Err(error) => {
            eprintln!("stacktest: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The repository's compose file under the test's project name, ports and demo data size.
fn stack(cli: &Cli) -> Result<Compose> {
    let env = vec![
        ("PROXY_PORT".into(), cli.port.to_string()),
        ("PROXY_ADMIN_PORT".into(), (cli.port + 1000).to_string()),
        ("PROMETHEUS_PORT".into(), (cli.port + 2000).to_string()),
        ("SEED_USERS".into(), "20".into()),
        ("SEED_POSTS".into(), "200".into()),
        ("SEED_COMMENTS".into(), "1000".into()),
    ];
    Compose::detect(cli.compose, std::env::current_dir()?, &cli.project, env)
}

fn docker_available() -> Result<()> {
    let output = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .context("no `docker` command")?;
    if !output.status.success() {
        bail!(
            "no Docker engine answers: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

async fn run(cli: &Cli, compose: &Compose) -> Result<Report> {
    if !cli.no_build {
        println!("== images");
        let source = if cli.from_dockerfile {
            "--dockerfile".into()
        } else {
            cli.binaries.clone().into_os_string()
        };
        let status = Command::new("deploy/ci/build-images.sh")
            .arg(source)
            .status()
            .context("running deploy/ci/build-images.sh")?;
        if !status.success() {
            bail!("building the images failed");
        }
    }
    println!("== up");
    // A previous run that was interrupted may have left its stack behind.
    down(compose)?;
    compose.run(&["up", "-d"])?;
    let mut report = Report::default();
    let outcome = exercise(cli, compose, &mut report).await;
    if let Err(error) = &outcome {
        for service in SERVICES {
            eprintln!("--- {service} ---\n{}", compose.logs(service, 30));
        }
        report.failed.push(("stack".into(), format!("{error:#}")));
    }
    if !cli.keep {
        down(compose)?;
    }
    Ok(report)
}

/// Removes the project's containers and volumes, those of every profile included.
fn down(compose: &Compose) -> Result<()> {
    let mut args = Vec::new();
    for profile in ["demo", "loadtest", "observability"] {
        args.extend(["--profile", profile]);
    }
    args.extend(["down", "-v", "--remove-orphans"]);
    compose.run(&args).map(drop)
}

async fn exercise(cli: &Cli, compose: &Compose, report: &mut Report) -> Result<()> {
    compose.wait_healthy(SERVICES, Duration::from_secs(240))?;
    let site = Site::new(format!("http://127.0.0.1:{}", cli.port));
    println!("== end to end");
    report.check(
        "front page through the proxy",
        drills::front_page(&site).await,
    );
    report.check(
        "post page from several app instances",
        drills::load_balanced(&site).await,
    );
    report.check(
        "second request is a HIT",
        drills::second_request_hits(&site).await,
    );
    report.check(
        "new comment visible after invalidation",
        drills::comment_after_invalidation(&site).await,
    );
    report.check("demo call opens the door", drills::demo_call(compose));
    report.check(
        "loadtest profile writes its report",
        drills::loadtest_profile(compose),
    );
    report.check(
        "observability profile: Prometheus scrapes every tier",
        observability::prometheus_sees_every_tier(
            compose,
            &format!("http://127.0.0.1:{}", cli.port + 2000),
        )
        .await,
    );
    if !cli.no_drills {
        println!("== failure drills");
        report.check("docker stop app-2", drills::stop_app(compose, &site).await);
        report.check(
            "docker stop cache-3",
            drills::stop_cache(compose, &site).await,
        );
        report.check(
            "docker stop postgres",
            drills::stop_postgres(compose, &site).await,
        );
    }
    Ok(())
}

/// Each check's outcome, and the closing line `N passed, N failed`.
#[derive(Default)]
struct Report {
    passed: Vec<String>,
    failed: Vec<(String, String)>,
}

impl Report {
    fn check(&mut self, name: &str, outcome: Result<String>) {
        match outcome {
            Ok(detail) => {
                println!("PASS {name}: {detail}");
                self.passed.push(name.into());
            }
            Err(error) => {
                println!("FAIL {name}: {error:#}");
                self.failed.push((name.into(), format!("{error:#}")));
            }
        }
    }

    fn finish(self) -> ExitCode {
        for (name, why) in &self.failed {
            eprintln!("failed: {name}: {why}");
        }
        println!(
            "stacktest: {} passed, {} failed",
            self.passed.len(),
            self.failed.len()
        );
        if self.failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}
