//! `GET /admin`: the audit log, the guest codes and the running lockouts on one page.
//!
//! It is protected by the admin token, given as `Authorization: Bearer TOKEN` or as the password
//! of HTTP basic auth (any user name), so a browser can open it. Without a configured token the
//! page does not exist. It is read-only: codes are managed with `doorbell guest`.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header;
use axum::response::Html;
use base64::Engine;
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::Error;
use crate::store::{Event, GuestCode, LockoutRow, Millis, now_millis};

/// How many audit entries the page shows.
const EVENTS_SHOWN: i64 = 200;

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    events: Vec<EventRow>,
    guests: Vec<GuestRow>,
    lockouts: Vec<LockoutView>,
}

struct EventRow {
    at: String,
    event: Event,
}

struct GuestRow {
    id: i64,
    label: String,
    valid_from: String,
    valid_until: String,
    uses: String,
    state: &'static str,
}

struct LockoutView {
    caller: String,
    since: String,
    until: String,
}

/// A local date and time, for people.
pub fn format_time(at: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(at)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| at.to_string())
}

/// `used/max` or `used/∞`.
pub fn format_uses(guest: &GuestCode) -> String {
    match guest.max_uses {
        Some(max) => format!("{}/{max}", guest.uses),
        None => format!("{}/∞", guest.uses),
    }
}

/// `GET /admin`
#[tracing::instrument(skip_all)]
pub async fn page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Html<String>, Error> {
    let token = state.config.admin_token.as_ref().ok_or(Error::NotFound)?;
    if !presented_token(&headers)
        .is_some_and(|given| bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())))
    {
        return Err(Error::Unauthorized);
    }
    let now = now_millis();
    let events = state
        .store
        .events(EVENTS_SHOWN)
        .await?
        .into_iter()
        .map(|event| EventRow {
            at: format_time(event.at),
            event,
        })
        .collect();
    let guests = state
        .store
        .guest_codes()
        .await?
        .into_iter()
        .map(|guest| GuestRow {
            id: guest.id,
            label: guest.label.clone(),
            valid_from: format_time(guest.valid_from),
            valid_until: format_time(guest.valid_until),
            uses: format_uses(&guest),
            state: guest.refusal(now).unwrap_or("valid"),
        })
        .collect();
    let lockouts = state
        .store
        .active_lockouts(now)
        .await?
        .into_iter()
        .map(
            |LockoutRow {
                 caller,
                 started_at,
                 locked_until,
             }| LockoutView {
                caller,
                since: format_time(started_at),
                until: format_time(locked_until),
            },
        )
        .collect();
    let html = AdminPage {
        events,
        guests,
        lockouts,
    }
    .render()
    .map_err(|e| Error::Internal(e.into()))?;
    Ok(Html(html))
}

/// The token of a `Bearer` header, or the password of a `Basic` one.
fn presented_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(token) = value.strip_prefix("Bearer ") {
        return Some(token.trim().to_owned());
    }
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let credentials = String::from_utf8(decoded).ok()?;
    credentials
        .split_once(':')
        .map(|(_, password)| password.to_owned())
}
