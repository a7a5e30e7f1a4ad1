//! The controllers: thin axum handlers that read the request, fetch data through the cache,
//! pick a view and follow the HTTP caching contract. This module holds what they share: the
//! state, the visitor (session) extractor, form and query extractors that answer bad input with
//! the app's error pages, and the response helpers.

pub mod api;
pub mod auth;
pub mod comments;
pub mod posts;
pub mod search;

use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use crate::caching::{self, Audience, Cache, Purger, SurrogateKeys, keys, ttl};
use crate::error::AppError;
use crate::models::Db;
use crate::models::session::{self, Session};
use crate::models::user::User;
use crate::views::{self, Layout};

/// The name of the one cookie the app sets. The proxy bypasses its cache for requests that
/// carry it, so keep the two in step.
pub const SESSION_COOKIE: &str = "leanstack_session";

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub db: Db,
    pub cache: Cache,
    pub purger: Purger,
}

/// Who sent the request: the session named by the cookie, if any. Requests without the cookie
/// (every anonymous reader) cost nothing; with it, the session comes through the cache.
#[derive(Debug, Clone)]
pub struct Visitor {
    token: Option<String>,
    session: Option<Session>,
    /// Whether the browser reached the proxy over TLS (`X-Forwarded-Proto: https`): the cookie
    /// is then `Secure`.
    over_tls: bool,
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let over_tls = parts
            .headers
            .get("x-forwarded-proto")
            .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"));
        let Some(token) = session_cookie(&parts.headers) else {
            return Ok(Visitor {
                token: None,
                session: None,
                over_tls,
            });
        };
        let session = state
            .cache
            .get_or_load(
                &keys::session(&session::cache_id(&token)),
                ttl::SESSION,
                || async { Ok(session::load(&state.db, &token).await?) },
            )
            .await?;
        Ok(Visitor {
            token: Some(token),
            session,
            over_tls,
        })
    }
}

/// The value of the session cookie, if the request has one that could be a token.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|value| {
            (1..=64).contains(&value.len())
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl Visitor {
    /// The logged-in user, if any.
    pub fn user(&self) -> Option<&User> {
        self.session
            .as_ref()
            .and_then(|session| session.user.as_ref())
    }

    /// The logged-in user, or [`AppError::LoginRequired`].
    pub fn require_user(&self) -> Result<&User, AppError> {
        self.user().ok_or(AppError::LoginRequired)
    }

    pub fn audience(&self) -> Audience {
        if self.user().is_some() {
            Audience::LoggedIn
        } else {
            Audience::Anonymous
        }
    }

    /// The layout for this visitor.
    pub fn layout(&self) -> Layout {
        match &self.session {
            Some(session) => Layout::new(session.user.clone(), session.csrf_token.clone()),
            None => Layout::anonymous(),
        }
    }

    /// Checks a submitted form's CSRF token against the session's (in constant time).
    pub fn check_csrf(&self, submitted: &str) -> Result<(), AppError> {
        let expected = self
            .session
            .as_ref()
            .map(|session| session.csrf_token.as_bytes())
            .ok_or(AppError::CsrfMismatch)?;
        if bool::from(expected.ct_eq(submitted.as_bytes())) {
            Ok(())
        } else {
            Err(AppError::CsrfMismatch)
        }
    }

    /// Makes sure the visitor has a session (forms need its CSRF token), starting an anonymous
    /// one if not; returns the `Set-Cookie` to send when one was started.
    pub async fn ensure_session(
        &mut self,
        state: &AppState,
    ) -> Result<Option<HeaderValue>, AppError> {
        if self.session.is_some() {
            return Ok(None);
        }
        let (token, expires_at, session) = session::start(&state.db, None).await?;
        self.session = Some(session);
        Ok(Some(self.cookie(&token, expires_at)))
    }

    /// Ends the current session (if any) and starts one for `user`; returns its `Set-Cookie`.
    pub async fn log_in(&mut self, state: &AppState, user: User) -> Result<HeaderValue, AppError> {
        self.end_session(state).await?;
        let (token, expires_at, session) = session::start(&state.db, Some(user)).await?;
        self.session = Some(session);
        Ok(self.cookie(&token, expires_at))
    }

    /// Ends the current session; returns the `Set-Cookie` that removes the cookie.
    pub async fn log_out(&mut self, state: &AppState) -> Result<HeaderValue, AppError> {
        self.end_session(state).await?;
        Ok(self.cookie("", DateTime::<Utc>::UNIX_EPOCH))
    }

    async fn end_session(&mut self, state: &AppState) -> Result<(), AppError> {
        if let Some(token) = self.token.take() {
            session::end(&state.db, &token).await?;
            state
                .cache
                .delete(&[keys::session(&session::cache_id(&token))])
                .await;
        }
        self.session = None;
        Ok(())
    }

    fn cookie(&self, token: &str, expires_at: DateTime<Utc>) -> HeaderValue {
        let max_age = (expires_at - Utc::now()).num_seconds().max(0);
        let secure = if self.over_tls { "; Secure" } else { "" };
        let cookie = format!(
            "{SESSION_COOKIE}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
        );
        HeaderValue::from_str(&cookie).expect("a cookie of token characters is a valid header")
    }
}

/// `axum::Form` whose rejections are the app's error pages: 413 for an oversize body, 400 for
/// anything unreadable. Form structs use `#[serde(default)]`, so a missing field is an empty
/// one — which validation then explains — rather than a 400.
#[derive(Debug)]
pub struct Form<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Form<T> {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, AppError> {
        match axum::Form::<T>::from_request(request, state).await {
            Ok(axum::Form(value)) => Ok(Form(value)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(AppError::PayloadTooLarge)
            }
            Err(rejection) => Err(AppError::BadRequest(rejection.body_text())),
        }
    }
}

/// `axum::extract::Query` whose rejection is a 400 page.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|rejection| AppError::BadRequest(rejection.body_text()))
    }
}

/// `?page=N` on listings.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct PageQuery {
    page: Option<u32>,
}

impl PageQuery {
    /// The 1-based page number (1 when absent); 0 is a bad request.
    pub fn page(&self) -> Result<u32, AppError> {
        match self.page {
            None => Ok(1),
            Some(0) => Err(AppError::BadRequest("Pages are numbered from 1.".into())),
            Some(page) => Ok(page),
        }
    }
}

/// Whether a path segment can be a slug, tag or username at all; anything else is a 404
/// without touching the cache or the database.
pub fn is_plausible_name(segment: &str) -> bool {
    (1..=120).contains(&segment.len())
        && segment
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

const HTML: &str = "text/html; charset=utf-8";

/// A read page, rendered and answered under the caching contract ([`caching::read_page`]).
pub fn read_page(
    request: &HeaderMap,
    visitor: &Visitor,
    keys: &SurrogateKeys,
    page: &impl Template,
) -> Result<Response, AppError> {
    let html = views::render(page)?;
    Ok(caching::read_page(
        request,
        visitor.audience(),
        keys,
        HTML,
        html,
    ))
}

/// A page that is never cached (forms, refusals), with an optional `Set-Cookie`.
pub fn private_page(
    status: StatusCode,
    set_cookie: Option<HeaderValue>,
    page: &impl Template,
) -> Result<Response, AppError> {
    let html = views::render(page)?;
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(HTML));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(caching::PRIVATE_CACHE_CONTROL),
    );
    if let Some(cookie) = set_cookie {
        headers.insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// `303 See Other` to `location`, after a successful form, with an optional `Set-Cookie`.
pub fn see_other(location: &str, set_cookie: Option<HeaderValue>) -> Response {
    let mut response = axum::response::Redirect::to(location).into_response();
    if let Some(cookie) = set_cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_session_cookie_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; leanstack_session=abc-DEF_1; x=y"),
        );
        assert_eq!(session_cookie(&headers).as_deref(), Some("abc-DEF_1"));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("leanstack_session=' OR 1=1 --"),
        );
        assert_eq!(session_cookie(&headers), None);
    }

    #[test]
    fn plausible_names() {
        assert!(is_plausible_name("hello-world-2"));
        assert!(!is_plausible_name("Hello"));
        assert!(!is_plausible_name("a b"));
        assert!(!is_plausible_name(""));
    }
}
