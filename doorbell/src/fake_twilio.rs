//! A stand-in for the part of Twilio's REST API the doorbell uses: `POST
//! /2010-04-01/Accounts/{AccountSid}/Messages.json`. It checks basic auth and the form fields as
//! Twilio does, answers like Twilio, and records each text, so the demo (`doorbell fake-twilio`)
//! and the tests can see what would have been sent. `GET /messages` lists them as JSON.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Secret;

/// A text as Twilio received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub sid: String,
    pub to: String,
    pub from: String,
    pub body: String,
}

/// The fake API; clones share the recorded texts.
#[derive(Debug, Clone)]
pub struct FakeTwilio {
    account_sid: String,
    auth_token: Secret,
    messages: Arc<Mutex<Vec<Message>>>,
    count: watch::Sender<usize>,
}

impl FakeTwilio {
    pub fn new(account_sid: &str, auth_token: Secret) -> Self {
        Self {
            account_sid: account_sid.to_owned(),
            auth_token,
            messages: Arc::default(),
            count: watch::Sender::new(0),
        }
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/2010-04-01/Accounts/{account}/Messages.json",
                post(create_message),
            )
            .route("/messages", get(list_messages))
            .route("/healthz", get(|| async { "ok\n" }))
            .with_state(self.clone())
    }

    /// Serves until `shutdown` resolves.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(addr = %listener.local_addr()?, "fake Twilio REST API listening");
        service::http::serve(listener, self.router(), shutdown, Duration::from_secs(1)).await?;
        Ok(())
    }

    /// The texts received so far.
    pub fn messages(&self) -> Vec<Message> {
        self.messages.lock().expect("not poisoned").clone()
    }

    /// Waits until at least `count` texts have arrived (or `timeout` passed) and returns them all.
    pub async fn wait_for_messages(&self, count: usize, timeout: Duration) -> Vec<Message> {
        let mut receiver = self.count.subscribe();
        let _ = tokio::time::timeout(timeout, receiver.wait_for(|&n| n >= count)).await;
        self.messages()
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let expected = format!("{}:{}", self.account_sid, self.auth_token.expose());
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|encoded| {
                base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .ok()
            })
            .is_some_and(|decoded| decoded == expected.as_bytes())
    }
}

/// Twilio's error body.
fn twilio_error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = serde_json::json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    (status, Json(body)).into_response()
}

async fn create_message(
    State(fake): State<FakeTwilio>,
    Path(account): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if account != fake.account_sid || !fake.authorized(&headers) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let field = |name: &str| {
        form.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let (to, from, body) = match (field("To"), field("From"), field("Body")) {
        (None, _, _) => {
            return twilio_error(
                StatusCode::BAD_REQUEST,
                21604,
                "A 'To' phone number is required.",
            );
        }
        (_, None, _) => {
            return twilio_error(
                StatusCode::BAD_REQUEST,
                21603,
                "A 'From' phone number is required.",
            );
        }
        (_, _, None) => {
            return twilio_error(StatusCode::BAD_REQUEST, 21602, "Message body is required.");
        }
        (Some(to), Some(from), Some(body)) => (to, from, body),
    };
    let sid = format!("SM{:032x}", rand::random::<u128>());
    let message = Message {
        sid: sid.clone(),
        to: to.clone(),
        from: from.clone(),
        body: body.clone(),
    };
    tracing::info!(%to, %from, %body, "text received");
    {
        let mut messages = fake.messages.lock().expect("not poisoned");
        messages.push(message);
        fake.count.send_replace(messages.len());
    }
    let reply = serde_json::json!({
        "sid": sid,
        "account_sid": fake.account_sid,
        "to": to,
        "from": from,
        "body": body,
        "status": "queued",
        "num_segments": "1",
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "date_created": chrono::Utc::now().to_rfc2822(),
        "uri": format!("/2010-04-01/Accounts/{}/Messages/{sid}.json", fake.account_sid),
    });
    (StatusCode::CREATED, Json(reply)).into_response()
}

async fn list_messages(State(fake): State<FakeTwilio>) -> Json<Vec<Message>> {
    Json(fake.messages())
}
