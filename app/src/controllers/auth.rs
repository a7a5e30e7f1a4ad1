//! Sign-up, log-in and log-out. Every form carries the session's CSRF token; the forms
//! themselves are never cached (they hold that token).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::{AppState, Form, Visitor, private_page, see_other};
use crate::error::AppError;
use crate::models::user::{self, NewUser};
use crate::views::{LoginPage, SignupPage};

/// The fields of the log-in form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    csrf_token: String,
    username: String,
    password: String,
}

/// The fields of the sign-up form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SignupForm {
    csrf_token: String,
    username: String,
    display_name: String,
    password: String,
}

/// `GET /login`
#[tracing::instrument(skip_all)]
pub async fn login_form(
    State(state): State<AppState>,
    mut visitor: Visitor,
) -> Result<Response, AppError> {
    let set_cookie = visitor.ensure_session(&state).await?;
    let view = LoginPage {
        layout: visitor.layout(),
        username: String::new(),
        problems: Vec::new(),
    };
    private_page(StatusCode::OK, set_cookie, &view)
}

/// `POST /login`
#[tracing::instrument(skip_all)]
pub async fn login(
    State(state): State<AppState>,
    mut visitor: Visitor,
    Form(form): Form<LoginForm>,
) -> Result<Response, AppError> {
    visitor.check_csrf(&form.csrf_token)?;
    match user::authenticate(&state.db, &form.username, &form.password).await? {
        Some(user) => {
            tracing::info!(user = user.id, "logged in");
            let cookie = visitor.log_in(&state, user).await?;
            Ok(see_other("/", Some(cookie)))
        }
        None => {
            let view = LoginPage {
                layout: visitor.layout(),
                username: form.username,
                problems: vec!["That username and password do not match.".to_owned()],
            };
            private_page(StatusCode::UNPROCESSABLE_ENTITY, None, &view)
        }
    }
}

/// `GET /signup`
#[tracing::instrument(skip_all)]
pub async fn signup_form(
    State(state): State<AppState>,
    mut visitor: Visitor,
) -> Result<Response, AppError> {
    let set_cookie = visitor.ensure_session(&state).await?;
    let view = SignupPage {
        layout: visitor.layout(),
        username: String::new(),
        display_name: String::new(),
        problems: Vec::new(),
    };
    private_page(StatusCode::OK, set_cookie, &view)
}

/// `POST /signup`: creates the account and logs it in.
#[tracing::instrument(skip_all)]
pub async fn signup(
    State(state): State<AppState>,
    mut visitor: Visitor,
    Form(form): Form<SignupForm>,
) -> Result<Response, AppError> {
    visitor.check_csrf(&form.csrf_token)?;
    let created = match NewUser::parse(&form.username, &form.display_name, &form.password) {
        Ok(new) => user::create(&state.db, &new)
            .await?
            .ok_or_else(|| vec!["That username is taken.".to_owned()]),
        Err(problems) => Err(problems),
    };
    match created {
        Ok(user) => {
            tracing::info!(user = user.id, "signed up");
            let cookie = visitor.log_in(&state, user).await?;
            Ok(see_other("/", Some(cookie)))
        }
        Err(problems) => {
            let view = SignupPage {
                layout: visitor.layout(),
                username: form.username,
                display_name: form.display_name,
                problems,
            };
            private_page(StatusCode::UNPROCESSABLE_ENTITY, None, &view)
        }
    }
}

/// The log-out form's one field.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LogoutForm {
    csrf_token: String,
}

/// `POST /logout`
#[tracing::instrument(skip_all)]
pub async fn logout(
    State(state): State<AppState>,
    mut visitor: Visitor,
    Form(form): Form<LogoutForm>,
) -> Result<Response, AppError> {
    visitor.check_csrf(&form.csrf_token)?;
    let cookie = visitor.log_out(&state).await?;
    Ok(see_other("/", Some(cookie)))
}
