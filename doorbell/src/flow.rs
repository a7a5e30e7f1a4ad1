//! The call flow: each Twilio webhook answered with the TwiML of the next step.
//!
//! ```text
//! POST /twilio/voice              incoming call → menu (or <Reject>, or open house → open)
//! POST /twilio/voice/gather       Digits → dial a resident | code → open | wrong → menu again
//! POST /twilio/voice/dial-status  nobody answered → next resident | text the residents
//! ```
//!
//! The menu is offered `menu.repeats` times in one document (a `<Gather>` without input falls
//! through to the next verb), so a silent caller costs no extra round trip.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use serde::Deserialize;

use crate::codes::{self, Verdict};
use crate::config::{OpenMode, Resident};
use crate::error::Error;
use crate::store::{Millis, NewEvent, now_millis};
use crate::twiml::{Dial, Document, Gather, Prompt, Response, Voice};
use crate::webhook::{Call, Webhook};
use crate::{AppState, tone};

pub const VOICE_PATH: &str = "/twilio/voice";
pub const GATHER_PATH: &str = "/twilio/voice/gather";
pub const DIAL_STATUS_PATH: &str = "/twilio/voice/dial-status";
/// Under `/twilio/` so that the proxy's Twilio route serves it too.
pub const TONES_PATH: &str = "/twilio/tones";

/// `POST /twilio/voice`: a call comes in.
#[tracing::instrument(skip_all, fields(call = tracing::field::Empty))]
pub async fn incoming(
    State(state): State<Arc<AppState>>,
    webhook: Webhook,
) -> Result<Document, Error> {
    let result = answer_incoming(&state, &webhook).await;
    state.audit_bad_request(&webhook, "voice", result).await
}

async fn answer_incoming(state: &AppState, webhook: &Webhook) -> Result<Document, Error> {
    let call = webhook.call()?;
    tracing::Span::current().record("call", call.sid.as_str());
    let now = now_millis();
    if !state.store.start_call(&call.sid, &call.from, now).await? {
        state.metrics.refused("replayed call");
        state
            .audit(
                &call,
                "voice",
                "",
                "refused",
                "replayed: the call had already started",
                now,
            )
            .await?;
        return Err(Error::Forbidden(
            "replayed webhook: this call has already started".into(),
        ));
    }
    let settings = &state.config.settings;
    if !settings.allowed_callers.is_empty() && !settings.allowed_callers.contains(&call.from) {
        state
            .audit(
                &call,
                "voice",
                "",
                "rejected",
                "not an intercom number",
                now,
            )
            .await?;
        state.metrics.call("rejected");
        return Ok(Response::new().reject());
    }
    if let Some(window) = settings.open_house_at(chrono::Local::now()) {
        let label = format!("open house \"{}\"", window.label);
        return state.open_door(&call, "voice", "", &label, now).await;
    }
    state.audit(&call, "voice", "", "menu", "", now).await?;
    state.metrics.call("menu");
    Ok(state.menu(Response::new().say(&state.voice(), &settings.menu.greeting)))
}

/// `POST /twilio/voice/gather`: the caller pressed keys.
#[tracing::instrument(skip_all, fields(call = tracing::field::Empty))]
pub async fn gather(
    State(state): State<Arc<AppState>>,
    webhook: Webhook,
) -> Result<Document, Error> {
    let result = answer_gather(&state, &webhook).await;
    state.audit_bad_request(&webhook, "gather", result).await
}

async fn answer_gather(state: &AppState, webhook: &Webhook) -> Result<Document, Error> {
    let call = webhook.call()?;
    tracing::Span::current().record("call", call.sid.as_str());
    let digits = webhook.require("Digits")?;
    if digits.len() > 32
        || !digits
            .chars()
            .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
    {
        return Err(Error::BadRequest(
            "Digits holds only 0-9, * and #, at most 32 of them".into(),
        ));
    }
    let now = now_millis();
    state.ensure_live(&call, "gather", now).await?;
    let settings = &state.config.settings;
    if let Some(resident) = settings.resident(digits) {
        state
            .audit(&call, "gather", digits, "dialing", &resident.name, now)
            .await?;
        return Ok(state.dial(Response::new(), &call, resident, digits));
    }
    if !codes::is_well_formed(digits, settings.min_code_length) {
        state
            .audit(&call, "gather", digits, "no-such-choice", "", now)
            .await?;
        return Ok(state.menu(Response::new().say(&state.voice(), &settings.menu.no_such_choice)));
    }
    state.code_entered(&call, digits, now).await
}

#[derive(Debug, Deserialize)]
pub struct DialQuery {
    /// The menu digits of the residents already rung during this call, in order.
    tried: String,
}

/// `POST /twilio/voice/dial-status?tried=…`: how the call to a resident ended.
#[tracing::instrument(skip_all, fields(call = tracing::field::Empty))]
pub async fn dial_status(
    State(state): State<Arc<AppState>>,
    Query(query): Query<DialQuery>,
    webhook: Webhook,
) -> Result<Document, Error> {
    let result = answer_dial_status(&state, &query, &webhook).await;
    state
        .audit_bad_request(&webhook, "dial-status", result)
        .await
}

async fn answer_dial_status(
    state: &AppState,
    query: &DialQuery,
    webhook: &Webhook,
) -> Result<Document, Error> {
    let call = webhook.call()?;
    tracing::Span::current().record("call", call.sid.as_str());
    let status = webhook.require("DialCallStatus")?;
    let settings = &state.config.settings;
    let tried: Vec<&Resident> = query
        .tried
        .chars()
        .map(|digit| settings.resident(&digit.to_string()))
        .collect::<Option<_>>()
        .filter(|tried: &Vec<_>| !tried.is_empty())
        .ok_or_else(|| Error::BadRequest("tried must list residents' digits".into()))?;
    let now = now_millis();
    state.ensure_live(&call, "dial-status", now).await?;
    let last = tried[tried.len() - 1];
    // Twilio still calls the action when the visitor hung up while a phone rang; there is
    // nobody left to put through or to say anything to.
    if matches!(webhook.get("CallStatus")?, Some("completed" | "canceled")) {
        state
            .audit(&call, "dial-status", "", "caller-hung-up", &last.name, now)
            .await?;
        return Ok(Response::new().hangup());
    }
    match status {
        "completed" | "answered" => {
            state
                .audit(&call, "dial-status", "", "answered", &last.name, now)
                .await?;
            state.metrics.call("answered");
            return Ok(Response::new().hangup());
        }
        "busy" | "no-answer" | "failed" | "canceled" => {}
        other => {
            return Err(Error::BadRequest(format!(
                "unknown DialCallStatus {other:?}"
            )));
        }
    }
    let detail = format!("{} ({status})", last.name);
    let next = settings
        .dial
        .try_others
        .then(|| {
            settings
                .ring_order()
                .into_iter()
                .find(|r| !tried.iter().any(|t| t.digit == r.digit))
        })
        .flatten();
    if let Some(next) = next {
        state
            .audit(&call, "dial-status", "", "not-answered", &detail, now)
            .await?;
        let notice = format!("{} is not answering. Trying {}.", last.name, next.name);
        let response = Response::new().say(&state.voice(), &notice);
        let tried = format!("{}{}", query.tried, next.digit);
        return Ok(state.dial(response, &call, next, &tried));
    }
    state
        .audit(&call, "dial-status", "", "nobody-answered", &detail, now)
        .await?;
    state.metrics.call("nobody-answered");
    if settings.notify.on_no_answer {
        state.notifier.text_residents(format!(
            "Visitor at the door ({}), nobody answered at {}.",
            call.from,
            local_time(now)
        ));
    }
    Ok(Response::new()
        .say(&state.voice(), &settings.menu.nobody_answered)
        .hangup())
}

/// `GET /twilio/tones/{key}.wav`: the DTMF tone of a key, as configured.
#[tracing::instrument(skip_all, fields(%file))]
pub async fn tone_file(
    State(state): State<Arc<AppState>>,
    Path(file): Path<String>,
) -> Result<HttpResponse, Error> {
    let key = file
        .strip_suffix(".wav")
        .and_then(|key| {
            let mut chars = key.chars();
            chars.next().filter(|_| chars.next().is_none())
        })
        .ok_or(Error::NotFound)?;
    let wav = tone::wav(key, &state.config.settings.tone).ok_or(Error::NotFound)?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "audio/wav"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        wav,
    )
        .into_response())
}

impl AppState {
    fn voice(&self) -> Voice {
        Voice::from(&self.config.settings.voice)
    }

    /// Logs a signed but malformed webhook in the audit log, then answers it with the error.
    async fn audit_bad_request<T>(
        &self,
        webhook: &Webhook,
        step: &str,
        result: Result<T, Error>,
    ) -> Result<T, Error> {
        if let Err(Error::BadRequest(reason)) = &result {
            tracing::warn!(step, reason, "bad webhook");
            let event = NewEvent {
                call_sid: &webhook.first("CallSid"),
                caller: &webhook.first("From"),
                step,
                input: "",
                outcome: "bad-request",
                detail: reason,
            };
            self.store.record(event, now_millis()).await?;
        }
        result
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.public_url)
    }

    async fn audit(
        &self,
        call: &Call,
        step: &str,
        input: &str,
        outcome: &str,
        detail: &str,
        now: Millis,
    ) -> Result<(), Error> {
        tracing::info!(call = %call.sid, from = %call.from, step, input, outcome, detail, "call event");
        self.store
            .record(
                NewEvent {
                    call_sid: &call.sid,
                    caller: &call.from,
                    step,
                    input,
                    outcome,
                    detail,
                },
                now,
            )
            .await?;
        Ok(())
    }

    /// Refuses webhooks about calls this service never answered, or that started too long ago:
    /// a captured webhook replayed later gets nothing.
    async fn ensure_live(&self, call: &Call, step: &str, now: Millis) -> Result<(), Error> {
        let max_age = codes::millis_from_seconds(self.config.settings.max_call_seconds);
        let problem = match self.store.call_started_at(&call.sid).await? {
            None => "replayed: no such call",
            Some(started) if now - started > max_age => "replayed: the call is over",
            Some(_) => return Ok(()),
        };
        self.metrics.refused("replayed call");
        self.audit(call, step, "", "refused", problem, now).await?;
        Err(Error::Forbidden(problem.to_owned()))
    }

    /// `prefix`, then the menu offered `menu.repeats` times, then goodbye.
    fn menu(&self, prefix: Response) -> Document {
        let menu = &self.config.settings.menu;
        let prompt = match &menu.audio_url {
            Some(url) => Prompt::PlayUrl(url.clone()),
            None => {
                let mut text: String = self
                    .config
                    .settings
                    .residents
                    .iter()
                    .map(|r| format!("For {}, press {}. ", r.name, r.digit))
                    .collect();
                text.push_str(&menu.code_prompt);
                Prompt::Say {
                    text,
                    voice: self.voice(),
                }
            }
        };
        let gather = Gather {
            action: self.url(GATHER_PATH),
            timeout_seconds: menu.timeout_seconds,
            finish_on_key: '#',
            prompts: vec![prompt],
        };
        (0..menu.repeats.max(1))
            .fold(prefix, |response, _| response.gather(gather.clone()))
            .say(&self.voice(), &menu.goodbye)
            .hangup()
    }

    fn dial(&self, prefix: Response, call: &Call, resident: &Resident, tried: &str) -> Document {
        let settings = &self.config.settings;
        let caller_id = [
            settings.dial.caller_id.as_deref(),
            Some(settings.twilio.number.as_str()),
            Some(call.to.as_str()),
        ]
        .into_iter()
        .flatten()
        .find(|id| !id.is_empty())
        .map(str::to_owned);
        prefix
            .say(&self.voice(), &format!("Calling {}.", resident.name))
            .dial(Dial {
                action: self.url(&format!("{DIAL_STATUS_PATH}?tried={tried}")),
                timeout_seconds: settings.dial.timeout_seconds,
                caller_id,
                numbers: vec![resident.phone.clone()],
            })
            .finish()
    }

    async fn code_entered(&self, call: &Call, code: &str, now: Millis) -> Result<Document, Error> {
        let settings = &self.config.settings;
        let masked = "*".repeat(code.len());
        let voice = self.voice();
        if let Some(until) = codes::locked_until(&self.store, &call.from, now).await? {
            let detail = format!("locked until {}", local_time(until));
            self.audit(call, "gather", &masked, "locked-out", &detail, now)
                .await?;
            return Ok(self.menu(Response::new().say(&voice, &settings.menu.locked_out)));
        }
        match codes::check(settings, &self.store, code, now, &self.metrics.code_checks).await? {
            Verdict::Opens { label } => self.open_door(call, "gather", &masked, &label, now).await,
            Verdict::Refused { label, reason } => {
                self.audit(
                    call,
                    "gather",
                    &masked,
                    "code-refused",
                    &format!("{label}: {reason}"),
                    now,
                )
                .await?;
                Ok(self.menu(Response::new().say(&voice, &settings.menu.invalid_code)))
            }
            Verdict::Wrong => {
                self.audit(call, "gather", &masked, codes::WRONG_CODE, "", now)
                    .await?;
                let mut response = Response::new().say(&voice, &settings.menu.invalid_code);
                if let Some(until) =
                    codes::after_wrong_code(&self.store, &settings.lockout, &call.from, now).await?
                {
                    let detail = format!("locked until {}", local_time(until));
                    self.audit(call, "gather", &masked, "lockout-started", &detail, now)
                        .await?;
                    self.metrics.call("lockout");
                    if settings.notify.on_lockout {
                        self.notifier.text_residents(format!(
                            "Code entry at the door is locked until {} after {} wrong codes from {}.",
                            local_time(until),
                            settings.lockout.max_wrong,
                            call.from
                        ));
                    }
                    response = response.say(&voice, &settings.menu.locked_out);
                }
                Ok(self.menu(response))
            }
        }
    }

    async fn open_door(
        &self,
        call: &Call,
        step: &str,
        input: &str,
        label: &str,
        now: Millis,
    ) -> Result<Document, Error> {
        let settings = &self.config.settings;
        self.audit(call, step, input, "door-opened", label, now)
            .await?;
        self.metrics.call("door-opened");
        if settings.notify.on_open {
            self.notifier
                .text_residents(format!("Door opened with {label} at {}.", local_time(now)));
        }
        let open = match settings.open_mode {
            OpenMode::Digits => Prompt::PlayDigits(settings.open_digits.clone()),
            OpenMode::Tone => {
                let key = match settings.tone.digit {
                    '#' => "%23".to_owned(),
                    key => key.to_string(),
                };
                Prompt::PlayUrl(self.url(&format!("{TONES_PATH}/{key}.wav")))
            }
        };
        Ok(Response::new()
            .prompt(open)
            .say(&self.voice(), &settings.menu.door_opening)
            .prompt(Prompt::Pause {
                seconds: settings.tone.pause_seconds,
            })
            .hangup())
    }
}

/// `HH:MM` in the server's time zone, for texts.
fn local_time(at: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(at)
        .map(|t| t.with_timezone(&chrono::Local).format("%H:%M").to_string())
        .unwrap_or_default()
}
