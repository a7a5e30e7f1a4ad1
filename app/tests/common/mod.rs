//! What the app's tests share: a migrated database, in-process cache nodes, app instances on
//! port 0, a browser-like HTTP client, and a few fixtures.

#![allow(dead_code)] // Each test binary uses its own subset of these helpers.

use std::time::Duration;

use app::models::Db;
use app::models::post::{self, NewPost, Post};
use app::models::user::{self, NewUser, User};
use cache::pool::PoolConfig;
use reqwest::redirect::Policy;
use sqlx::PgPool;
use testkit::{Spawned, TestDatabase};

/// The password of every user the tests create.
pub const PASSWORD: &str = "long enough password";

/// A fresh database with the app's migrations applied.
pub async fn migrated_database() -> (TestDatabase, PgPool) {
    let database = testkit::fresh_database().await;
    let pool = database.pool().await;
    app::MIGRATOR.run(&pool).await.expect("migrations apply");
    (database, pool)
}

/// What most tests run an app against: a migrated database and in-process cache nodes.
pub struct Site {
    pub pool: PgPool,
    pub nodes: CacheNodes,
    _database: TestDatabase,
}

impl Site {
    /// A fresh database and `cache_nodes` cache nodes.
    pub async fn start(cache_nodes: usize) -> Self {
        let (database, pool) = migrated_database().await;
        Site {
            pool,
            nodes: CacheNodes::start(cache_nodes).await,
            _database: database,
        }
    }

    /// An app instance named `instance` on this site.
    pub async fn app(&self, instance: &str) -> TestApp {
        self.app_with_proxy(instance, None).await
    }

    /// An app instance that sends its purges to `proxy_admin_url`.
    pub async fn app_with_proxy(&self, instance: &str, proxy_admin_url: Option<String>) -> TestApp {
        TestApp::start_with_proxy(
            self.pool.clone(),
            &self.nodes.arg(),
            instance,
            proxy_admin_url,
        )
        .await
    }
}

/// Cache nodes running in this process.
pub struct CacheNodes {
    nodes: Vec<Spawned<std::io::Error>>,
}

impl CacheNodes {
    pub async fn start(count: usize) -> Self {
        let mut nodes = Vec::new();
        for _ in 0..count {
            nodes.push(
                testkit::spawn(|listener, shutdown| {
                    cache::node::run(
                        cache::node::Listeners {
                            resp: listener,
                            memcache: None,
                            metrics: None,
                        },
                        cache::node::Config::default(),
                        shutdown,
                    )
                })
                .await,
            );
        }
        CacheNodes { nodes }
    }

    /// The `--cache-nodes` value naming them.
    pub fn arg(&self) -> String {
        let addrs: Vec<String> = self
            .nodes
            .iter()
            .map(|node| node.addr.to_string())
            .collect();
        addrs.join(",")
    }
}

/// A pool configuration for `nodes`, patient enough for a loaded test machine (the default
/// 50 ms operation timeout would turn a slow moment into a miss and a flaky assertion).
pub fn pool_config(nodes: &str) -> PoolConfig {
    let mut config = PoolConfig::from_nodes_arg(nodes).expect("valid node list");
    config.op_timeout = Duration::from_secs(2);
    config
}

/// An app instance running in this process.
pub struct TestApp {
    pub spawned: Spawned<std::io::Error>,
    pub client: reqwest::Client,
}

impl TestApp {
    pub async fn start(database: PgPool, cache_nodes: &str, instance: &str) -> Self {
        Self::start_with_proxy(database, cache_nodes, instance, None).await
    }

    pub async fn start_with_proxy(
        database: PgPool,
        cache_nodes: &str,
        instance: &str,
        proxy_admin_url: Option<String>,
    ) -> Self {
        let config = app::Config {
            database,
            cache: pool_config(cache_nodes),
            instance_name: instance.to_owned(),
            proxy_admin_url,
        };
        let spawned = testkit::spawn(|listener, shutdown| app::run(listener, config, shutdown))
            .await
            .ready("/healthz")
            .await;
        TestApp {
            spawned,
            client: browser(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.spawned.url())
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("GET answers")
    }

    /// GETs `path`, asserting 200, and returns the body.
    pub async fn page(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.text().await.expect("a body")
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .expect("POST answers")
    }

    /// The CSRF token in the forms of the page at `path`.
    pub async fn form_token(&self, path: &str) -> String {
        csrf_token(&self.page(path).await)
    }

    /// Submits the comment form of the post at `post_path`.
    pub async fn comment(&self, post_path: &str, token: &str, body: &str) -> reqwest::Response {
        self.post_form(
            &format!("{post_path}/comments"),
            &[("csrf_token", token), ("body", body)],
        )
        .await
    }

    /// Submits the new-post form.
    pub async fn new_post(
        &self,
        token: &str,
        title: &str,
        body: &str,
        tags: &str,
    ) -> reqwest::Response {
        self.post_form(
            "/posts/new",
            &[
                ("csrf_token", token),
                ("title", title),
                ("body", body),
                ("tags", tags),
            ],
        )
        .await
    }

    /// Submits the sign-up form.
    pub async fn submit_sign_up(
        &self,
        token: &str,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        self.post_form(
            "/signup",
            &[
                ("csrf_token", token),
                ("username", username),
                ("display_name", ""),
                ("password", password),
            ],
        )
        .await
    }

    /// Signs up through the forms (CSRF token included) and stays logged in.
    pub async fn sign_up(&self, username: &str) {
        let token = self.form_token("/signup").await;
        let response = self.submit_sign_up(&token, username, PASSWORD).await;
        assert_eq!(response.status(), 303, "sign-up succeeds");
    }

    /// Logs in through the form.
    pub async fn log_in(&self, username: &str, password: &str) -> reqwest::Response {
        let token = self.form_token("/login").await;
        self.post_form(
            "/login",
            &[
                ("csrf_token", &token),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }
}

/// A client that keeps cookies and does not follow redirects (tests look at them).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .expect("a client")
}

/// The CSRF token in a page's forms.
pub fn csrf_token(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("the page has a CSRF field") + marker.len();
    let end = start + html[start..].find('"').expect("the value ends");
    html[start..end].to_owned()
}

/// The number of database queries a response's `Server-Timing` reports.
pub fn db_queries(response: &reqwest::Response) -> u32 {
    let timing = response
        .headers()
        .get("server-timing")
        .expect("every response has Server-Timing")
        .to_str()
        .expect("ASCII");
    let db = timing
        .split(", ")
        .find(|metric| metric.starts_with("db;"))
        .expect("a db metric");
    let desc = db.split("desc=\"").nth(1).expect("a description");
    desc.split(' ').next().unwrap().parse().expect("a count")
}

/// A `Db` for writing fixtures directly.
pub fn db(pool: &PgPool) -> Db {
    Db::new(pool.clone(), &mut Default::default())
}

/// A user who may write posts.
pub async fn author(pool: &PgPool, username: &str) -> User {
    let db = db(pool);
    let new = NewUser::parse(username, "", PASSWORD).expect("valid user");
    let user = user::create(&db, &new).await.unwrap().expect("a new name");
    assert!(user::make_author(&db, username).await.unwrap());
    User {
        is_author: true,
        ..user
    }
}

/// A post by `author`.
pub async fn publish(pool: &PgPool, author: &User, title: &str, body: &str, tags: &str) -> Post {
    let new = NewPost::parse(title, body, tags).expect("valid post");
    post::create(&db(pool), author.id, &new).await.unwrap()
}

/// How many rows a table has.
pub async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(pool)
        .await
        .unwrap()
}
