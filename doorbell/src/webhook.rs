//! The extractor every Twilio webhook goes through: body size and type, signature, then the
//! parameters. A request that fails is answered with a 4xx and leaves only an audit entry.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use std::sync::Arc;

use crate::error::Error;
use crate::store::{NewEvent, now_millis};
use crate::{AppState, signature};

/// The largest webhook body accepted; Twilio's are about 1 KiB.
pub const BODY_LIMIT: usize = 16 * 1024;

/// A webhook whose signature checked out.
#[derive(Debug, Clone)]
pub struct Webhook {
    params: Vec<(String, String)>,
}

impl Webhook {
    /// A parameter Twilio always sends; missing or repeated is a 400.
    pub fn require(&self, name: &str) -> Result<&str, Error> {
        self.get(name)?
            .ok_or_else(|| Error::BadRequest(format!("parameter {name} is missing")))
    }

    /// An optional parameter; repeated is a 400.
    pub fn get(&self, name: &str) -> Result<Option<&str>, Error> {
        let mut values = self.params.iter().filter(|(n, _)| n == name);
        let first = values.next().map(|(_, v)| v.as_str());
        if values.next().is_some() {
            return Err(Error::BadRequest(format!(
                "parameter {name} is given twice"
            )));
        }
        Ok(first)
    }

    /// The first value of a parameter, cut to 64 characters, or nothing: for logging what a
    /// malformed request claims.
    pub fn first(&self, name: &str) -> String {
        first_value(&self.params, name)
    }

    /// The call this webhook is about: `CallSid` and `From`.
    pub fn call(&self) -> Result<Call, Error> {
        let sid = self.require("CallSid")?;
        if !(sid.len() == 34
            && sid.starts_with("CA")
            && sid[2..].bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(Error::BadRequest("CallSid is not a Twilio call SID".into()));
        }
        Ok(Call {
            sid: sid.to_owned(),
            from: self.require("From")?.to_owned(),
            to: self.get("To")?.unwrap_or_default().to_owned(),
        })
    }
}

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Call {
    pub sid: String,
    pub from: String,
    pub to: String,
}

impl FromRequest<Arc<AppState>> for Webhook {
    type Rejection = Error;

    async fn from_request(request: Request, state: &Arc<AppState>) -> Result<Self, Error> {
        let step = request
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let path_and_query = request
            .uri()
            .path_and_query()
            .map(|pq| pq.as_str().to_owned())
            .unwrap_or_default();
        let is_form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let signature = request
            .headers()
            .get(signature::HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if !is_form {
            return Err(Error::UnsupportedMediaType);
        }
        let body =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection| match rejection.status() {
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
                    _ => Error::BadRequest(rejection.body_text()),
                })?;
        let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
            .map_err(|e| Error::BadRequest(format!("the body is not a form: {e}")))?;
        let url = format!("{}{path_and_query}", state.config.public_url);
        let valid = signature.as_deref().is_some_and(|signature| {
            signature::is_valid(state.config.auth_token.expose(), &url, &params, signature)
        });
        if !valid {
            let reason = if signature.is_some() {
                "forged signature"
            } else {
                "unsigned request"
            };
            state.metrics.refused(reason);
            // Nothing of a forged request can be trusted, but who it claims to be helps to see
            // what is going on.
            let claimed = |name: &str| first_value(&params, name);
            tracing::warn!(%url, reason, claimed_from = %claimed("From"), "refused a webhook");
            state
                .store
                .record(
                    NewEvent {
                        call_sid: &claimed("CallSid"),
                        caller: &claimed("From"),
                        step: &step,
                        input: "",
                        outcome: "refused",
                        detail: reason,
                    },
                    now_millis(),
                )
                .await?;
            return Err(Error::Forbidden(format!(
                "{reason}: the X-Twilio-Signature does not match {url}"
            )));
        }
        Ok(Self { params })
    }
}

fn first_value(params: &[(String, String)], name: &str) -> String {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.chars().take(64).collect())
        .unwrap_or_default()
}
