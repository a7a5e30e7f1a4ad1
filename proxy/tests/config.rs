//! The policy file: the demo stack's example, `--check`, reloads in-process under load and by
//! SIGHUP to the real binary, and the binary's no-file mode and healthcheck.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{Origin, Reply, Seen, TestProxy, client, get};
use proxy::Config;

fn deploy_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/proxy.toml")
}

fn named(name: &'static str) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |_| Reply::ok(name).cache("no-store")
}

fn single_pool(origin: &Origin) -> String {
    format!("[pools.app]\nbackends = [\"{}\"]\n", origin.backend())
}

#[test]
fn the_demo_stacks_config_is_valid_and_says_what_the_stack_needs() {
    let config = Config::load(&deploy_config()).unwrap();
    assert_eq!(
        config.pools["app"].backends,
        ["app-1:3000", "app-2:3000", "app-3:3000"]
    );
    assert_eq!(config.pools["doorbell"].backends, ["doorbell:8090"]);
    let twilio = &config.routes[0];
    assert_eq!(
        (
            twilio.path_prefix.as_str(),
            twilio.pool.as_str(),
            twilio.cache
        ),
        ("/twilio/", "doorbell", false)
    );
    let rest = config.routes.last().unwrap();
    assert_eq!(
        (rest.path_prefix.as_str(), rest.pool.as_str()),
        ("/", "app")
    );
    assert_eq!(rest.bypass_cookies, ["leanstack_session"]);
    for ip in ["127.0.0.1", "172.18.0.5", "10.1.2.3", "192.168.1.1"] {
        let ip: std::net::IpAddr = ip.parse().unwrap();
        assert!(
            config.admin.allow.iter().any(|net| net.contains(&ip)),
            "{ip}"
        );
    }
    let public: std::net::IpAddr = "8.8.8.8".parse().unwrap();
    assert!(!config.admin.allow.iter().any(|net| net.contains(&public)));
}

#[test]
fn the_readmes_example_policy_is_valid() {
    let readme = include_str!("../README.md");
    let start = readme.find("```toml\n").expect("a toml example") + "```toml\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let config: Config = readme[start..end].parse().unwrap();
    assert_eq!(config.routes[0].drop_query, ["utm_*", "fbclid"]);
    assert!(config.pools["app"].health.is_some());
}

#[test]
fn check_prints_the_policy_in_plain_words_or_the_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_proxy"))
        .args(["--check", "--config"])
        .arg(deploy_config())
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("is valid"), "{text}");
    assert!(text.contains("path /twilio/* -> pool doorbell"), "{text}");
    assert!(
        text.contains("skips the cache when the request has cookie leanstack_session"),
        "{text}"
    );
    assert!(text.contains("drops query parameters utm_*"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[pools.app]\nbackends = [\"a:1\"]\n[[routes]]\npool = \"ap\"\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_proxy"))
        .args(["--check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("is invalid") && text.contains("\"ap\" is not defined"),
        "{text}"
    );
}

#[tokio::test]
async fn reload_under_load_switches_policy_without_failing_a_request() {
    let a = Origin::start(named("a")).await;
    let b = Origin::start(named("b")).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxy.toml");
    std::fs::write(&file, single_pool(&a)).unwrap();
    let proxy = TestProxy::start(Config::load(&file).unwrap()).await;

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let from_b = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, failures, from_b, url) = (
            stop.clone(),
            failures.clone(),
            from_b.clone(),
            proxy.url("/x"),
        );
        load.push(tokio::spawn(async move {
            let client = client();
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) {
                match client.get(&url).send().await {
                    Ok(response) if response.status() == 200 => {
                        if response.text().await.unwrap() == "b" {
                            from_b.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                sent += 1;
            }
            sent
        }));
    }
    common::eventually(Duration::from_secs(5), "load running", || async {
        a.count("/x") > 20
    })
    .await;
    std::fs::write(&file, single_pool(&b)).unwrap();
    proxy.reloads.reload_file(&file).await.unwrap();
    common::eventually(Duration::from_secs(5), "b serving", || async {
        from_b.load(Ordering::Relaxed) > 20
    })
    .await;

    // An invalid file is refused; the running policy stays.
    std::fs::write(&file, "[pools.app]\nbackends = []\n").unwrap();
    let error = proxy.reloads.reload_file(&file).await.unwrap_err();
    assert!(error.to_string().contains("empty"), "{error}");
    let served_by_b = from_b.load(Ordering::Relaxed);
    common::eventually(Duration::from_secs(5), "b still serving", || async {
        from_b.load(Ordering::Relaxed) > served_by_b + 20
    })
    .await;

    stop.store(true, Ordering::Relaxed);
    let mut sent = 0;
    for task in load {
        sent += task.await.unwrap();
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0, "of {sent}");
    let metrics = proxy.metrics().await;
    assert_eq!(
        common::sample(&metrics, "proxy_config_reloads_total{result=\"ok\"}"),
        Some(1.0)
    );
    assert_eq!(
        common::sample(&metrics, "proxy_config_reloads_total{result=\"refused\"}"),
        Some(1.0)
    );
}

/// The binary, stopped (SIGTERM) when the test ends however it ends.
struct Binary(Child);

impl Binary {
    fn start(args: &[&str]) -> Self {
        Self(
            Command::new(env!("CARGO_BIN_EXE_proxy"))
                .args(args)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn stop(mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        let status = self.0.wait().unwrap();
        std::mem::forget(self);
        status
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn free_port() -> String {
    testkit::bind_port_0()
        .await
        .local_addr()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn sighup_reloads_the_running_binary_and_refuses_a_bad_file() {
    let a = Origin::start(named("a")).await;
    let b = Origin::start(named("b")).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxy.toml");
    std::fs::write(&file, single_pool(&a)).unwrap();
    let (listen, admin) = (free_port().await, free_port().await);
    let binary = Binary::start(&[
        "--config",
        file.to_str().unwrap(),
        "--listen",
        &listen,
        "--admin-listen",
        &admin,
    ]);
    testkit::wait_for_http(&format!("http://{admin}/healthz")).await;
    let reloads = |result: &'static str| {
        let metrics = format!("http://{admin}/metrics");
        async move {
            let metrics = reqwest::get(metrics).await.unwrap().text().await.unwrap();
            common::sample(
                &metrics,
                &format!("proxy_config_reloads_total{{result=\"{result}\"}}"),
            )
        }
    };
    // A SIGHUP the moment the proxy answers is a reload: the signal was once listened for by a
    // task that might not have run yet, and the default action ended the process.
    binary.signal("HUP");
    common::eventually(Duration::from_secs(10), "the early reload", || async {
        reloads("ok").await == Some(1.0)
    })
    .await;
    let url = format!("http://{listen}/page");
    assert_eq!(get(&url).await.2, "a");

    std::fs::write(&file, single_pool(&b)).unwrap();
    binary.signal("HUP");
    common::eventually(Duration::from_secs(10), "reloaded to b", || async {
        get(&url).await.2 == "b"
    })
    .await;

    std::fs::write(&file, "this is not toml [").unwrap();
    binary.signal("HUP");
    common::eventually(Duration::from_secs(10), "refusal counted", || async {
        reloads("refused").await == Some(1.0)
    })
    .await;
    assert_eq!(get(&url).await.2, "b");
    assert!(binary.stop().success());
}

#[tokio::test]
async fn runs_without_a_file_and_answers_its_healthcheck() {
    let origin =
        Origin::start(|seen: &Seen| Reply::ok(format!("#{}", seen.nth)).cache("max-age=60")).await;
    let (listen, admin) = (free_port().await, free_port().await);
    let binary = Binary::start(&[
        "--backend",
        &origin.backend(),
        "--listen",
        &listen,
        "--admin-listen",
        &admin,
    ]);
    testkit::wait_for_http(&format!("http://{admin}/healthz")).await;
    let url = format!("http://{listen}/cached");
    assert_eq!(get(&url).await, (200, "MISS".into(), "#1".into()));
    assert_eq!(get(&url).await, (200, "HIT".into(), "#1".into()));

    let healthcheck = |url: String| {
        Command::new(env!("CARGO_BIN_EXE_proxy"))
            .args(["healthcheck", "--url", &url])
            .output()
            .unwrap()
            .status
    };
    assert!(healthcheck(format!("http://{admin}/healthz")).success());
    let nobody = free_port().await;
    assert!(!healthcheck(format!("http://{nobody}/healthz")).success());
    assert!(binary.stop().success());
}
