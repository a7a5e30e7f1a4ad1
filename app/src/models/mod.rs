//! The model layer: row structs and the SQL that reads and writes them. Every query goes through
//! [`Db::run`], which counts it (Prometheus and the request's `Server-Timing`).
//!
//! Row structs that pages show are `Serialize + Deserialize`, because what the cache pool holds
//! is exactly these values.

pub mod comment;
pub mod post;
pub mod session;
pub mod tag;
pub mod user;

use std::future::Future;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use sqlx::PgPool;

use crate::timing;

/// Posts per page on every listing (front, tag, author, search).
pub const PER_PAGE: u32 = 20;

/// The database handle the app passes around: the connection pool plus its query counters.
#[derive(Debug, Clone)]
pub struct Db {
    pool: PgPool,
    queries: Counter,
    errors: Counter,
}

impl Db {
    /// Wraps `pool`, registering `app_db_queries` and `app_db_errors` in `registry`.
    pub fn new(pool: PgPool, registry: &mut Registry) -> Self {
        let db = Self {
            pool,
            queries: Counter::default(),
            errors: Counter::default(),
        };
        registry.register(
            "app_db_queries",
            "Database queries made",
            db.queries.clone(),
        );
        registry.register(
            "app_db_errors",
            "Database queries that failed",
            db.errors.clone(),
        );
        db
    }

    /// The connection pool, for building queries that [`Db::run`] then awaits.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Awaits one query, counting it.
    pub async fn run<T>(
        &self,
        query: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        self.queries.inc();
        let result = timing::db(query).await;
        if result.is_err() {
            self.errors.inc();
        }
        result
    }

    /// `SELECT 1`: whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        self.run(sqlx::query("SELECT 1").execute(&self.pool))
            .await
            .map(drop)
    }
}

/// Runs CPU-heavy work (argon2, rendering a long post) on the blocking pool, so that it does not
/// stall the requests sharing an async worker thread.
async fn off_the_async_threads<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, sqlx::Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| sqlx::Error::Protocol(format!("a blocking task failed: {error}")))
}

/// The `LIMIT` and `OFFSET` of 1-based `page`, fetching one extra row to learn whether a next
/// page exists.
fn limit_offset(page: u32) -> (i64, i64) {
    let per_page = i64::from(PER_PAGE);
    (per_page + 1, i64::from(page.max(1) - 1) * per_page)
}
