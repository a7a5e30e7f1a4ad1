//! Texts to the residents through Twilio's REST API (`POST .../Messages.json`, basic auth with the
//! account SID and auth token, form fields `To`, `From`, `Body`).
//!
//! Sending is spawned: a text never delays the TwiML answer the caller is waiting for. The tasks
//! are tracked so that a graceful shutdown waits (briefly) for texts still on their way.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio_util::task::TaskTracker;

use crate::Labels;
use crate::config::{Config, Secret};

/// How long one text may take before it is given up.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct Notifier {
    client: reqwest::Client,
    /// `None` when no Twilio account is configured: texts are logged, not sent.
    endpoint: Option<String>,
    account_sid: String,
    auth_token: Secret,
    from: String,
    recipients: Vec<String>,
    tasks: TaskTracker,
    sent: Family<Labels, Counter>,
}

impl Notifier {
    pub fn new(config: &Config, sent: Family<Labels, Counter>) -> Self {
        let twilio = &config.settings.twilio;
        let endpoint = (!twilio.account_sid.is_empty() && !twilio.number.is_empty()).then(|| {
            format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                twilio.api_base.trim_end_matches('/'),
                twilio.account_sid
            )
        });
        let recipients = config
            .settings
            .residents
            .iter()
            .filter(|r| r.notify)
            .map(|r| r.phone.clone())
            .collect();
        Self {
            client: reqwest::Client::builder()
                .timeout(SEND_TIMEOUT)
                .build()
                .expect("a client with a timeout builds"),
            endpoint,
            account_sid: twilio.account_sid.clone(),
            auth_token: config.auth_token.clone(),
            from: twilio.number.clone(),
            recipients,
            tasks: TaskTracker::new(),
            sent,
        }
    }

    /// Texts `body` to every resident who wants texts, in the background.
    pub fn text_residents(&self, body: String) {
        let Some(endpoint) = self.endpoint.clone() else {
            tracing::info!(%body, "no Twilio account configured; text not sent");
            return;
        };
        for to in self.recipients.clone() {
            let this = self.clone();
            let endpoint = endpoint.clone();
            let body = body.clone();
            self.tasks
                .spawn(async move { this.send(&endpoint, &to, &body).await });
        }
    }

    async fn send(&self, endpoint: &str, to: &str, body: &str) {
        let result = self
            .client
            .post(endpoint)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
            .form(&[("To", to), ("From", &self.from), ("Body", body)])
            .send()
            .await;
        let outcome = match result {
            Ok(response) if response.status().is_success() => {
                tracing::info!(%to, "text sent");
                "sent"
            }
            Ok(response) => {
                let status = response.status();
                let detail = response.text().await.unwrap_or_default();
                tracing::warn!(%to, %status, %detail, "Twilio refused the text");
                "refused"
            }
            Err(error) => {
                tracing::warn!(%to, %error, "cannot reach Twilio to send a text");
                "failed"
            }
        };
        self.sent.get_or_create(&vec![("outcome", outcome)]).inc();
    }

    /// Waits up to `grace` for texts still being sent.
    pub async fn drain(&self, grace: Duration) {
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("texts still unsent at shutdown");
        }
    }
}
