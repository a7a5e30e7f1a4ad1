//! The app's one error type, and how each case looks to a browser (an HTML page with the right
//! status) or to an API client ([`ApiError`]: JSON with the same status).

use std::sync::Arc;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::views;

/// Everything a handler can fail with. `Clone` (sources behind `Arc`) because the cache pool
/// hands one loader's error to every request that waited for it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppError {
    /// No such post, tag, author or page.
    #[error("There is nothing at this address.")]
    NotFound,
    /// A malformed query string, path or body.
    #[error("{0}")]
    BadRequest(String),
    /// The body is larger than the app accepts.
    #[error("That request is too large.")]
    PayloadTooLarge,
    /// A form without the session's CSRF token.
    #[error(
        "This form has expired or did not come from this site. Please go back, reload it and try again."
    )]
    CsrfMismatch,
    /// A page that needs a logged-in user, asked for without one.
    #[error("Please log in first.")]
    LoginRequired,
    /// A logged-in user without the right to do this.
    #[error("Only authors may do that.")]
    Forbidden,
    /// The database could not be reached (down, restarting, pool exhausted).
    #[error("The database is unavailable right now. Please try again in a moment.")]
    DatabaseUnavailable(#[source] Arc<sqlx::Error>),
    /// The database answered with an error.
    #[error("Something went wrong on our side.")]
    Database(#[source] Arc<sqlx::Error>),
    /// A template failed to render.
    #[error("Something went wrong on our side.")]
    Render(#[source] Arc<askama::Error>),
}

impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => AppError::DatabaseUnavailable(Arc::new(error)),
            sqlx::Error::Database(ref db)
                if db.code().is_some_and(|code| {
                    // 57P01..03: the server is shutting down or starting; 53300: too many
                    // connections.
                    matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
                }) =>
            {
                AppError::DatabaseUnavailable(Arc::new(error))
            }
            error => AppError::Database(Arc::new(error)),
        }
    }
}

impl From<askama::Error> for AppError {
    fn from(error: askama::Error) -> Self {
        AppError::Render(Arc::new(error))
    }
}

impl AppError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::CsrfMismatch | AppError::Forbidden => StatusCode::FORBIDDEN,
            AppError::LoginRequired => StatusCode::UNAUTHORIZED,
            AppError::DatabaseUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Database(_) | AppError::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn log(&self) {
        let status = self.status();
        if status.is_server_error() {
            let source = std::error::Error::source(self).map(ToString::to_string);
            tracing::error!(error = %self, source, "request failed");
        } else {
            tracing::debug!(error = %self, "request refused");
        }
    }
}

/// Error responses are never stored by the proxy or the browser: a 503 must not outlive the
/// outage. (The proxy's stale-if-error serves the last good page instead.)
fn never_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        if matches!(self, AppError::LoginRequired) {
            return never_store(Redirect::to("/login").into_response());
        }
        let status = self.status();
        let page = views::ErrorPage::new(status, self.to_string());
        let response = match views::render(&page) {
            Ok(html) => (status, html).into_response(),
            Err(error) => {
                tracing::error!(%error, "the error page itself failed to render");
                (status, self.to_string()).into_response()
            }
        };
        never_store(response)
    }
}

/// An [`AppError`] answered as JSON: `{"error": "…"}`.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl<E: Into<AppError>> From<E> for ApiError {
    fn from(error: E) -> Self {
        ApiError(error.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.log();
        let body = serde_json::json!({ "error": self.0.to_string() });
        never_store((self.0.status(), Json(body)).into_response())
    }
}
