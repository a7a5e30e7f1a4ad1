//! The live view of leanstack: a page that draws the architecture — proxy, app instances,
//! cache nodes, Postgres, doorbell — with each tier's numbers on its box and arrows, refreshed
//! every second, in any browser and with no other tool.
//!
//! Mount [`router`] in an axum app (it serves `/stack` and `/stack.json`). Behind it:
//!
//! - [`Sources`]: where the numbers come from (the proxy's admin listener, which lists the app
//!   instances and the doorbell; the cache nodes; the database).
//! - [`collect`]: one poll of every tier, reading the services the way an operator would:
//!   Prometheus `/metrics`, the proxy's `/status`, `INFO` over RESP, `pg_stat_database`.
//! - [`names`]: every metric, field and column name read, in one place.
//! - [`snapshot`]: rates from the difference between the last two polls.
//! - [`poller`]: the task polling once a second while someone watches.

pub mod collect;
pub mod names;
pub mod poller;
pub mod snapshot;
pub mod sources;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::watch;

use crate::collect::Collector;
use crate::poller::{Published, Viewers};
pub use crate::snapshot::Snapshot;
pub use crate::sources::Sources;

/// The page: inline SVG, CSS and script, nothing fetched from elsewhere.
const PAGE: &str = include_str!("page.html");

/// A snapshot older than this is not served while a newer one is on its way.
const FRESH_FOR: Duration = Duration::from_secs(2);

#[derive(Clone, Debug)]
struct Live {
    latest: watch::Receiver<Arc<Published>>,
    viewers: Arc<Viewers>,
}

/// `GET /stack` (the page) and `GET /stack.json` (the numbers), with the poller behind them.
///
/// Starts the poller task, so call it inside a Tokio runtime; the task ends when the router
/// is dropped. Nothing is polled until the page or the JSON is first asked for, and polling
/// pauses when nobody has asked for a minute.
pub fn router(sources: Sources) -> Router {
    let (publish, latest) = watch::channel(Arc::new(Published::nothing_yet()));
    let viewers = Arc::new(Viewers::default());
    tokio::spawn(poller::run(
        Collector::new(sources),
        publish,
        viewers.clone(),
    ));
    Router::new()
        .route("/stack", get(page))
        .route("/stack.json", get(numbers))
        .with_state(Live { latest, viewers })
}

async fn page(State(live): State<Live>) -> Response {
    live.viewers.seen();
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
        .into_response()
}

/// The latest snapshot; after a pause, waits (briefly) for a fresh one.
async fn numbers(State(live): State<Live>) -> Response {
    live.viewers.seen();
    let mut latest = live.latest;
    let fresh = |published: &Arc<Published>| {
        published.generation > 0 && published.taken.elapsed() < FRESH_FOR
    };
    if !fresh(&latest.borrow()) {
        let _ = tokio::time::timeout(FRESH_FOR, latest.wait_for(fresh)).await;
    }
    let json = latest.borrow().json.clone();
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            // Every answer is new: neither the proxy nor the browser may keep one.
            (header::CACHE_CONTROL, "no-store"),
        ],
        json,
    )
        .into_response()
}
