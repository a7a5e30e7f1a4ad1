//! The extractor every Twilio webhook goes through: body size and type, signature, then the
//! parameters. A request that fails is answered with a 4xx and leaves only an audit entry.
//!
//! Parameter names are checked against what Twilio documents for each webhook, after the
//! signature (a forged request is a 403 whatever it holds). The lists, from Twilio's docs:
//!
//! - every voice request: <https://www.twilio.com/docs/voice/twiml#request-parameters>
//!   (`CallSid` … `CallToken`, the `From*`/`To*` geographic data); the older `Caller*` and
//!   `Called*` names Twilio still sends
//!   (<https://www.twilio.com/docs/api/2008-08-01/twiml/twilio_request>); `StirVerstat`
//!   (<https://www.twilio.com/docs/voice/trusted-calling-with-shakenstir>); `AddOns`, the
//!   results of Phone Number Add-ons on incoming voice (<https://www.twilio.com/docs/add-ons/publish>);
//! - the `<Gather>` action: <https://www.twilio.com/docs/voice/twiml/gather#action>;
//! - the `<Dial>` action: <https://www.twilio.com/docs/voice/twiml/dial#action>.
//!
//! The doorbell answers a phone number and dials `<Number>`s only, so the SIP parameters and
//! their `SipHeader_*` families, which Twilio sends for SIP domains and `<Sip>`, never arrive
//! and are not allowed. Twilio warns that it "will occasionally add new parameters without
//! advance notice" (<https://www.twilio.com/docs/sms/guides/the-incoming-message-webhook>):
//! `strict_parameters = false` in the config accepts unknown names until they are listed here.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use std::sync::Arc;

use crate::error::Error;
use crate::store::{NewEvent, now_millis};
use crate::{AppState, flow, signature};

/// The largest webhook body accepted; Twilio's are about 1 KiB.
pub const BODY_LIMIT: usize = 16 * 1024;

/// What Twilio sends with every voice request (see the module documentation for the sources).
const VOICE_PARAMETERS: &[&str] = &[
    "AccountSid",
    "AddOns",
    "ApiVersion",
    "CallSid",
    "CallStatus",
    "CallToken",
    "Called",
    "CalledCity",
    "CalledCountry",
    "CalledState",
    "CalledZip",
    "Caller",
    "CallerCity",
    "CallerCountry",
    "CallerName",
    "CallerState",
    "CallerZip",
    "Direction",
    "ForwardedFrom",
    "From",
    "FromCity",
    "FromCountry",
    "FromState",
    "FromZip",
    "ParentCallSid",
    "StirVerstat",
    "To",
    "ToCity",
    "ToCountry",
    "ToState",
    "ToZip",
];

/// What the `<Gather>` action adds. `msg` ("Gather End") is not in the reference, but Twilio
/// sends it with every gather.
const GATHER_PARAMETERS: &[&str] = &[
    "Confidence",
    "Digits",
    "FinishedOnKey",
    "SpeechResult",
    "msg",
];

/// What the `<Dial>` action adds (`RecordingUrl` when the dial is recorded).
const DIAL_PARAMETERS: &[&str] = &[
    "DialBridged",
    "DialCallDuration",
    "DialCallSid",
    "DialCallStatus",
    "RecordingUrl",
];

/// The parameters Twilio sends to the webhook at `path`, beyond [`VOICE_PARAMETERS`].
fn webhook_parameters(path: &str) -> &'static [&'static str] {
    match path {
        flow::GATHER_PATH => GATHER_PARAMETERS,
        flow::DIAL_STATUS_PATH => DIAL_PARAMETERS,
        _ => &[],
    }
}

/// At most this many unknown names are listed in an answer.
const UNKNOWN_LISTED: usize = 5;

/// Names in `params` Twilio does not send to `path`, each cut to 64 characters, without repeats.
fn unknown_parameters(path: &str, params: &[(String, String)]) -> Vec<String> {
    let known = webhook_parameters(path);
    let mut unknown: Vec<String> = Vec::new();
    for (name, _) in params {
        let name = name.as_str();
        if VOICE_PARAMETERS.contains(&name) || known.contains(&name) {
            continue;
        }
        let shown: String = name.chars().take(64).collect();
        if !unknown.contains(&shown) {
            unknown.push(shown);
        }
    }
    unknown
}

/// `unknown parameter "X"` or `unknown parameters "X", "Y" and 2 more`.
fn unknown_message(unknown: &[String]) -> String {
    let mut listed = unknown
        .iter()
        .take(UNKNOWN_LISTED)
        .map(|name| format!("{name:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if unknown.len() > UNKNOWN_LISTED {
        listed.push_str(&format!(" and {} more", unknown.len() - UNKNOWN_LISTED));
    }
    let plural = if unknown.len() == 1 { "" } else { "s" };
    format!("unknown parameter{plural} {listed}")
}

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
        let path = request.uri().path().to_owned();
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
            let claimed_from = first_value(&params, "From");
            tracing::warn!(%url, reason, %claimed_from, "refused a webhook");
            audit(state, &params, &step, "refused", reason).await?;
            return Err(Error::Forbidden(format!(
                "{reason}: the X-Twilio-Signature does not match {url}"
            )));
        }
        let unknown = if state.config.settings.strict_parameters {
            unknown_parameters(&path, &params)
        } else {
            Vec::new()
        };
        if !unknown.is_empty() {
            let reason = unknown_message(&unknown);
            state.metrics.refused("unknown parameter");
            tracing::warn!(%url, reason, "refused a webhook");
            audit(state, &params, &step, "bad-request", &reason).await?;
            return Err(Error::BadRequest(reason));
        }
        Ok(Self { params })
    }
}

/// The audit entry of a refused webhook, with the call and caller it claims.
async fn audit(
    state: &AppState,
    params: &[(String, String)],
    step: &str,
    outcome: &str,
    detail: &str,
) -> Result<(), Error> {
    let event = NewEvent {
        call_sid: &first_value(params, "CallSid"),
        caller: &first_value(params, "From"),
        step,
        input: "",
        outcome,
        detail,
    };
    state.store.record(event, now_millis()).await?;
    Ok(())
}

fn first_value(params: &[(String, String)], name: &str) -> String {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.chars().take(64).collect())
        .unwrap_or_default()
}
