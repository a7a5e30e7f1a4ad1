//! Driving `docker compose` (v2) or `docker-compose` (1.29) for one project.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// One compose project: the repository's docker-compose.yml under a project name of its own, so
/// that a stack a developer is running is left alone.
pub struct Compose {
    program: Vec<String>,
    project: String,
    root: PathBuf,
    env: Vec<(String, String)>,
}

/// Which compose implementation drives the stack: the file must work with both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Tool {
    /// `docker compose` when the plugin is installed, else `docker-compose`.
    Auto,
    /// The `docker compose` plugin (Compose v2).
    V2,
    /// The standalone `docker-compose` 1.29 (Compose v1).
    V1,
}

/// The `docker compose` plugin's command line.
const COMPOSE_V2: &[&str] = &["docker", "compose"];
/// The standalone tool's command line.
const COMPOSE_V1: &[&str] = &["docker-compose"];

impl Tool {
    /// The command lines to try, in order.
    fn candidates(self) -> &'static [&'static [&'static str]] {
        match self {
            Tool::Auto => &[COMPOSE_V2, COMPOSE_V1],
            Tool::V2 => &[COMPOSE_V2],
            Tool::V1 => &[COMPOSE_V1],
        }
    }
}

impl Compose {
    /// Finds the compose tool asked for, failing when it is not installed.
    pub fn detect(
        tool: Tool,
        root: PathBuf,
        project: &str,
        env: Vec<(String, String)>,
    ) -> Result<Self> {
        let version = |program: &[&str]| {
            Command::new(program[0])
                .args(&program[1..])
                .args(["version", "--short"])
                .stderr(Stdio::null())
                .output()
                .ok()
                .filter(|output| output.status.success())
                .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        };
        let Some((found, version)) = tool
            .candidates()
            .iter()
            .find_map(|&program| version(program).map(|v| (program, v)))
        else {
            bail!(
                "compose is not installed (looked for: {:?})",
                tool.candidates()
            );
        };
        println!("compose: `{}` {version}", found.join(" "));
        Ok(Self {
            program: found.iter().map(|s| s.to_string()).collect(),
            project: project.into(),
            root,
            env,
        })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.program[0]);
        command
            .args(&self.program[1..])
            .args(["-p", &self.project, "-f", "docker-compose.yml"])
            .args(args)
            .current_dir(&self.root)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null());
        command
    }

    /// The folder of the compose file, against which its relative paths resolve.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// Runs a compose subcommand, failing with its output when it fails.
    pub fn run(&self, args: &[&str]) -> Result<Output> {
        let output = self
            .command(args)
            .output()
            .with_context(|| format!("running compose {}", args.join(" ")))?;
        if !output.status.success() {
            bail!(
                "compose {} failed ({}):\n{}{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(output)
    }

    /// The container id of a service.
    pub fn container(&self, service: &str) -> Result<String> {
        let output = self.run(&["ps", "-q", service])?;
        let id = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if id.is_empty() {
            bail!("service {service} has no container");
        }
        Ok(id)
    }

    /// Waits until every named service's container reports `healthy`.
    pub fn wait_healthy(&self, services: &[&str], timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut waiting: Vec<&str> = services.to_vec();
        while !waiting.is_empty() {
            waiting.retain(|service| self.health(service).as_deref() != Some("healthy"));
            if waiting.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                let states: Vec<String> = waiting
                    .iter()
                    .map(|s| {
                        format!(
                            "{s}: {}",
                            self.health(s).unwrap_or_else(|| "no container".into())
                        )
                    })
                    .collect();
                bail!("not healthy after {timeout:?}: {}", states.join(", "));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Ok(())
    }

    fn health(&self, service: &str) -> Option<String> {
        let id = self.container(service).ok()?;
        let output = Command::new("docker")
            .args([
                "inspect",
                "-f",
                "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}",
                &id,
            ])
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// The last lines a service logged, for failure messages.
    pub fn logs(&self, service: &str, lines: usize) -> String {
        self.command(&["logs", "--no-color", "--tail", &lines.to_string(), service])
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_default()
    }
}
