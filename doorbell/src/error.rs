//! The crate's one error type, mapped to HTTP answers.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Missing, repeated or malformed parameters.
    #[error("{0}")]
    BadRequest(String),
    /// An unsigned, forged or replayed webhook.
    #[error("{0}")]
    Forbidden(String),
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("webhooks are application/x-www-form-urlencoded")]
    UnsupportedMediaType,
    /// The admin page without the right token.
    #[error("authentication required")]
    Unauthorized,
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        Self::Internal(error.into())
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "internal error");
                return (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response();
            }
        };
        let mut response = (status, format!("{self}\n")).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(r#"Basic realm="doorbell admin""#),
            );
        }
        response
    }
}
