//! Adding a comment (logged-in users).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::posts::{PostWithComments, cached_post, listings_of};
use super::{AppState, Form, Visitor, is_plausible_name};
use crate::caching::{self, Invalidation};
use crate::error::AppError;
use crate::models::{comment, post};
use crate::views::PostPage;

/// The fields of the comment form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CommentForm {
    csrf_token: String,
    body: String,
}

/// `POST /posts/{slug}/comments`: saves the comment, invalidates the post and the one page of
/// each listing showing it (its comment count changed), redirects back to the comment.
#[tracing::instrument(skip_all, fields(%slug))]
pub async fn create(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(slug): Path<String>,
    Form(form): Form<CommentForm>,
) -> Result<Response, AppError> {
    let user = visitor.require_user()?;
    visitor.check_csrf(&form.csrf_token)?;
    if !is_plausible_name(&slug) {
        return Err(AppError::NotFound);
    }
    let post = post::by_slug(&state.db, &slug)
        .await?
        .ok_or(AppError::NotFound)?;
    let body = match comment::validate(&form.body) {
        Ok(body) => body,
        Err(problem) => {
            let PostWithComments { post, comments } = cached_post(&state, &slug).await?;
            let view = PostPage {
                layout: visitor.layout(),
                post,
                comments,
                comment_draft: form.body,
                comment_problems: vec![problem],
            };
            return super::private_page(StatusCode::UNPROCESSABLE_ENTITY, None, &view);
        }
    };
    let comment_id = comment::create(&state.db, post.id, user.id, body).await?;
    tracing::info!(post = post.id, comment = comment_id, "comment added");
    let mut pages = Vec::new();
    for listing in listings_of(&post) {
        let page = post::page_of(&state.db, &listing, &post).await?;
        pages.push((listing, page));
    }
    caching::invalidate(
        &state.cache,
        &state.purger,
        Invalidation::new_comment(&post, &pages),
    )
    .await;
    Ok(super::see_other(
        &format!("/posts/{slug}#comment-{comment_id}"),
        None,
    ))
}
