//! The whole architecture in this process, on loopback: a migrated and seeded PostgreSQL,
//! cache nodes (with their metrics listeners), app instances, the doorbell, and the proxy in
//! front with its admin listener — the real services, each on port 0 — plus the live view
//! reading them, and a bounded load to put through the proxy.

#![allow(dead_code)] // each test binary uses its own subset

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use sqlx::PgPool;
use stackview::Sources;
use testkit::{Spawned, TestDatabase};

pub const APPS: usize = 2;
pub const CACHE_NODES: usize = 3;

/// The cookie that makes the proxy pass a request to an app instead of answering from cache.
const SESSION_COOKIE: &str = "leanstack_session=stackview-test";

pub struct CacheNode {
    pub resp: Spawned<std::io::Error>,
    pub metrics: SocketAddr,
}

pub struct Stack {
    pub database: TestDatabase,
    pub pool: PgPool,
    pub caches: Vec<CacheNode>,
    pub apps: Vec<Spawned<std::io::Error>>,
    pub doorbell: Spawned<anyhow::Error>,
    /// Twilio's REST API, faked: where the doorbell sends its texts.
    pub twilio: doorbell::fake_twilio::FakeTwilio,
    pub twilio_service: Spawned<anyhow::Error>,
    pub proxy: Spawned<std::io::Error>,
    pub proxy_admin: SocketAddr,
    pub slugs: Vec<String>,
    _doorbell_dir: tempfile::TempDir,
}

impl Stack {
    pub async fn start() -> Self {
        let database = testkit::fresh_database().await;
        let pool = database.pool().await;
        app::MIGRATOR.run(&pool).await.expect("migrations apply");
        app::seed::seed(
            &pool,
            app::seed::SeedConfig {
                users: 5,
                posts: 40,
                comments: 80,
                seed: 7,
            },
        )
        .await
        .expect("seeding works");
        let slugs: Vec<String> = sqlx::query_scalar("SELECT slug FROM posts ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("posts were seeded");

        let mut caches = Vec::new();
        for _ in 0..CACHE_NODES {
            caches.push(start_cache_node().await);
        }
        let nodes = caches
            .iter()
            .map(|node| node.resp.addr.to_string())
            .collect::<Vec<_>>()
            .join(",");

        // The proxy's admin address is needed by the apps (for purges) before the proxy
        // starts, and the proxy needs the apps' addresses: bind it first.
        let admin = testkit::bind_port_0().await;
        let proxy_admin = admin.local_addr().unwrap();
        let mut apps = Vec::new();
        for index in 1..=APPS {
            let mut cache = cache::pool::PoolConfig::from_nodes_arg(&nodes).unwrap();
            // Patient enough for a loaded test machine.
            cache.op_timeout = Duration::from_secs(2);
            let config = app::Config {
                database: pool.clone(),
                cache,
                instance_name: format!("app-{index}"),
                proxy_admin_url: Some(format!("http://{proxy_admin}")),
            };
            apps.push(
                testkit::spawn(|listener, shutdown| app::run(listener, config, shutdown))
                    .await
                    .ready("/healthz")
                    .await,
            );
        }

        let doorbell_dir = tempfile::tempdir().unwrap();
        let twilio = doorbell::fake_twilio::FakeTwilio::new(
            TWILIO_ACCOUNT,
            doorbell::Secret::new(DOORBELL_AUTH_TOKEN),
        );
        let twilio_service = {
            let twilio = twilio.clone();
            testkit::spawn(move |listener, shutdown| twilio.run(listener, shutdown))
                .await
                .ready("/healthz")
                .await
        };
        let doorbell = start_doorbell(doorbell_dir.path(), &twilio_service.url()).await;

        let backends = apps
            .iter()
            .map(|app| format!("\"{}\"", app.addr))
            .collect::<Vec<_>>()
            .join(", ");
        let config: proxy::Config = format!(
            r#"
            [pools.app]
            backends = [{backends}]
            [pools.app.health]
            path = "/healthz"
            interval = "500ms"

            [pools.doorbell]
            backends = ["{doorbell}"]

            [[routes]]
            path_prefix = "/twilio/"
            pool = "doorbell"
            cache = false

            [[routes]]
            path_prefix = "/"
            pool = "app"
            bypass_cookies = ["leanstack_session"]
            "#,
            doorbell = doorbell.addr,
        )
        .parse()
        .expect("a valid proxy policy");
        let proxy = testkit::spawn(move |listener, shutdown| async move {
            proxy::Proxy::new(config)
                .await
                .serve(listener, Some(admin), shutdown)
                .await
        })
        .await;
        testkit::wait_for_http(&format!("http://{proxy_admin}/status")).await;

        Self {
            database,
            pool,
            caches,
            apps,
            doorbell,
            twilio,
            twilio_service,
            proxy,
            proxy_admin,
            slugs,
            _doorbell_dir: doorbell_dir,
        }
    }

    /// Where the live view reads this stack, as an app instance would be configured.
    pub fn sources(&self) -> Sources {
        Sources::new()
            .proxy_admin(format!("http://{}", self.proxy_admin))
            .cache_nodes(self.caches.iter().map(|node| node.resp.addr.to_string()))
            .database(self.pool.clone())
    }

    /// Every service's `/metrics` URL (the proxy's on its admin listener).
    pub fn metrics_urls(&self) -> Vec<String> {
        let mut urls = vec![format!("http://{}/metrics", self.proxy_admin)];
        urls.extend(self.apps.iter().map(|app| format!("{}/metrics", app.url())));
        urls.extend(
            self.caches
                .iter()
                .map(|node| format!("http://{}/metrics", node.metrics)),
        );
        urls.push(format!("{}/metrics", self.doorbell.url()));
        urls
    }

    /// Sends `requests` GETs through the proxy, `concurrency` at a time: post pages, front
    /// pages, API reads and searches, some with a session cookie so they pass the proxy's cache
    /// and reach the apps, their cache pool and the database. Returns how many answered 200.
    pub async fn load(&self, requests: usize, concurrency: usize) -> usize {
        self.load_until(requests, concurrency, &AtomicBool::new(false))
            .await
    }

    /// [`Stack::load`], sending nothing more once `stop` is set.
    pub async fn load_until(
        &self,
        requests: usize,
        concurrency: usize,
        stop: &AtomicBool,
    ) -> usize {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let ok = AtomicUsize::new(0);
        futures::stream::iter(0..requests)
            .for_each_concurrent(concurrency, |i| {
                let client = &client;
                let ok = &ok;
                async move {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let slug = &self.slugs[(i * 7) % self.slugs.len()];
                    let path = match i % 10 {
                        0 | 5 => "/".to_owned(),
                        1 | 6 => format!("/api/posts/{slug}"),
                        // Never asked before: no cache has it, so it reaches the database.
                        3 => format!("/search?q=caching{i}"),
                        _ => format!("/posts/{slug}"),
                    };
                    let mut request = client.get(self.proxy.url() + &path);
                    if i % 4 == 0 {
                        request = request.header("cookie", SESSION_COOKIE);
                    }
                    if let Ok(response) = request.send().await {
                        if response.status() == 200 {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        let _ = response.bytes().await;
                    }
                }
            })
            .await;
        ok.into_inner()
    }

    /// One call from the intercom, through the proxy as Twilio would make it: the caller
    /// hears the menu and hangs up.
    pub async fn ring(&self) {
        self.call(&[], &[]).await;
    }

    /// A call for the first resident, whom nobody answers: the doorbell texts the residents.
    pub async fn ring_nobody_home(&self) {
        self.call(&["1"], &[false, false]).await;
        let texts = self
            .twilio
            .wait_for_messages(1, Duration::from_secs(10))
            .await;
        assert!(!texts.is_empty(), "the residents were texted");
    }

    async fn call(&self, keys: &[&str], answers: &[bool]) {
        let simulator = doorbell::simulator::Simulator::new(
            &self.proxy.url(),
            DOORBELL_PUBLIC_URL,
            doorbell::Secret::new(DOORBELL_AUTH_TOKEN),
            TWILIO_ACCOUNT,
        );
        let transcript = simulator
            .call(doorbell::simulator::Script {
                from: "+15005550009".into(),
                to: "+15005550006".into(),
                keys: keys.iter().map(|key| key.to_string()).collect(),
                answers: answers.iter().copied().collect(),
            })
            .await;
        assert_eq!(transcript.refused(), None, "{transcript}");
    }

    /// A webhook without Twilio's signature, which the doorbell must refuse.
    pub async fn forged_webhook(&self) {
        let response = reqwest::Client::new()
            .post(self.proxy.url() + "/twilio/voice")
            .form(&[("CallSid", "CA-forged"), ("From", "+15005550009")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
    }
}

async fn start_cache_node() -> CacheNode {
    let metrics = testkit::bind_port_0().await;
    let metrics_addr = metrics.local_addr().unwrap();
    let resp = testkit::spawn(|listener, shutdown| {
        cache::node::run(
            cache::node::Listeners {
                resp: listener,
                memcache: None,
                metrics: Some(metrics),
            },
            cache::node::Config::default(),
            shutdown,
        )
    })
    .await;
    testkit::wait_for_http(&format!("http://{metrics_addr}/healthz")).await;
    CacheNode {
        resp,
        metrics: metrics_addr,
    }
}

const DOORBELL_PUBLIC_URL: &str = "http://localhost:8080";
const DOORBELL_AUTH_TOKEN: &str = "stackview-test-token";
const TWILIO_ACCOUNT: &str = "AC00000000000000000000000000000000";

/// The doorbell with the example configuration of the compose stack, on SQLite, texting
/// through the Twilio API at `twilio`.
async fn start_doorbell(dir: &Path, twilio: &str) -> Spawned<anyhow::Error> {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../doorbell/doorbell.example.toml");
    let mut settings = doorbell::Settings::load(&example).expect("the example configuration loads");
    settings.twilio.api_base = twilio.to_owned();
    settings.twilio.account_sid = TWILIO_ACCOUNT.to_owned();
    let config = doorbell::Config {
        settings,
        public_url: DOORBELL_PUBLIC_URL.into(),
        database_url: format!("sqlite://{}", dir.join("doorbell.db").display()),
        auth_token: doorbell::Secret::new(DOORBELL_AUTH_TOKEN),
        admin_token: None,
    };
    testkit::spawn(|listener, shutdown| doorbell::run(listener, config, shutdown))
        .await
        .ready("/healthz")
        .await
}

/// The live view of `sources`, served on port 0.
pub async fn serve_view(sources: Sources) -> Spawned<std::io::Error> {
    testkit::spawn(|listener, shutdown| {
        service::http::serve(
            listener,
            stackview::router(sources),
            shutdown,
            Duration::from_secs(1),
        )
    })
    .await
    .ready("/stack")
    .await
}

/// `GET /stack.json`.
pub async fn snapshot(view: &Spawned<std::io::Error>) -> serde_json::Value {
    let response = reqwest::get(format!("{}/stack.json", view.url()))
        .await
        .expect("the view answers");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["cache-control"],
        "no-store",
        "a proxy must never cache live numbers"
    );
    response.json().await.expect("the snapshot is JSON")
}

/// Polls `/stack.json` until `done` accepts a snapshot; panics with the last one after
/// `within`.
pub async fn snapshot_until(
    view: &Spawned<std::io::Error>,
    within: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let snapshot = snapshot(view).await;
        if done(&snapshot) {
            return snapshot;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no snapshot as expected within {within:?}; the last one:\n{snapshot:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
