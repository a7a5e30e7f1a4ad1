//! The Twilio intercom webhook: a menu, dial a resident, or a PIN that opens the door.
//!
//! The building's intercom calls a Twilio number; Twilio asks this service what to do with the
//! call ([`flow`]), with webhooks signed by the account's auth token ([`signature`], [`webhook`]),
//! and plays the TwiML it gets back ([`twiml`]). A visitor picks a resident from the menu and is
//! put through; a resident types a code ([`codes`]) and the service opens the door by sending the
//! DTMF tone of `9` into the call ([`tone`]). Texts to the residents go through Twilio's REST API
//! ([`notify`]); every call is kept in an audit log ([`store`]) shown on a small admin page
//! ([`admin`]). [`simulator`] plays Twilio's part for local use and tests, and [`fake_twilio`]
//! stands in for the REST API.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

pub mod admin;
pub mod codes;
pub mod config;
pub mod error;
pub mod fake_twilio;
pub mod flow;
pub mod notify;
pub mod signature;
pub mod simulator;
pub mod store;
pub mod tone;
pub mod twiml;
pub mod webhook;

pub use config::{Config, Secret, Settings};

/// How long texts still being sent may delay the end of a graceful shutdown.
const TEXT_DRAIN: Duration = Duration::from_secs(5);

/// The label set of the service's counters: one `(name, value)` pair.
pub(crate) type Labels = Vec<(&'static str, &'static str)>;

/// The service's counters, in its own registry.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    calls: Family<Labels, Counter>,
    refused: Family<Labels, Counter>,
    texts: Family<Labels, Counter>,
    /// argon2 verifications of codes entered at the door.
    code_checks: Counter,
}

impl Metrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "doorbell_call_outcomes",
            "Call steps by outcome (menu, answered, door-opened, ...)",
            self.calls.clone(),
        );
        registry.register(
            "doorbell_webhooks_refused",
            "Webhooks refused, by reason",
            self.refused.clone(),
        );
        registry.register(
            "doorbell_texts",
            "Texts to residents, by outcome",
            self.texts.clone(),
        );
        registry.register(
            "doorbell_code_checks",
            "argon2 verifications of codes entered at the door (owner PINs and usable guest codes)",
            self.code_checks.clone(),
        );
    }

    fn call(&self, outcome: &'static str) {
        self.calls.get_or_create(&vec![("outcome", outcome)]).inc();
    }

    fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&vec![("reason", reason)]).inc();
    }
}

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    pub config: Config,
    pub store: store::Store,
    pub notifier: notify::Notifier,
    pub metrics: Metrics,
}

/// The service's routes.
pub fn router(state: Arc<AppState>, registry: Arc<Registry>) -> Router {
    let webhooks = Router::new()
        .route(flow::VOICE_PATH, post(flow::incoming))
        .route(flow::GATHER_PATH, post(flow::gather))
        .route(flow::DIAL_STATUS_PATH, post(flow::dial_status))
        .layer(DefaultBodyLimit::max(webhook::BODY_LIMIT));
    Router::new()
        .merge(webhooks)
        .route(
            &format!("{}/{{file}}", flow::TONES_PATH),
            get(flow::tone_file),
        )
        .route("/admin", get(admin::page))
        .route("/healthz", get(health))
        .route(
            "/metrics",
            get(move || service::metrics::respond(registry.clone())),
        )
        .with_state(state)
}

/// `GET /healthz`: 200 when the database answers.
#[tracing::instrument(skip_all)]
async fn health(State(state): State<Arc<AppState>>) -> (StatusCode, &'static str) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok\n"),
        Err(error) => {
            tracing::warn!(%error, "health check: the database does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n")
        }
    }
}

/// Serves until `shutdown` resolves, then stops gracefully (letting texts on their way finish).
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = store::Store::open(&config.database_url).await?;
    let metrics = Metrics::default();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let notifier = notify::Notifier::new(&config, metrics.texts.clone());
    let state = Arc::new(AppState {
        config,
        store,
        notifier: notifier.clone(),
        metrics,
    });
    // Pruned before the first request, then every PRUNE_INTERVAL while serving.
    prune_guest_codes(&state).await;
    let pruning = tokio::spawn(prune_guest_codes_periodically(state.clone()));
    let router = router(state, Arc::new(registry));
    tracing::info!(addr = %listener.local_addr()?, "doorbell listening");
    let served =
        service::http::serve(listener, router, shutdown, service::http::DEFAULT_GRACE).await;
    pruning.abort();
    served?;
    notifier.drain(TEXT_DRAIN).await;
    Ok(())
}

/// How often guest codes past their retention are deleted while serving.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// Deletes the guest codes past their retention; a failure is logged, and the next round tries
/// again.
async fn prune_guest_codes(state: &AppState) {
    let retention_days = state.config.settings.guest_code_retention_days;
    match codes::prune(&state.store, retention_days, store::now_millis()).await {
        Ok(0) => {}
        Ok(deleted) => tracing::info!(deleted, retention_days, "pruned old guest codes"),
        Err(error) => tracing::warn!(%error, "cannot prune old guest codes"),
    }
}

async fn prune_guest_codes_periodically(state: Arc<AppState>) {
    let start = tokio::time::Instant::now() + PRUNE_INTERVAL;
    let mut interval = tokio::time::interval_at(start, PRUNE_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        prune_guest_codes(&state).await;
    }
}
