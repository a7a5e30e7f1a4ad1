//! The JSON API: the read pages' data as JSON, under the same cache keys and the same HTTP
//! caching contract (API responses are always anonymous: the API ignores cookies).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Serialize;

use super::posts::{cached_author, cached_post, listing_page};
use super::search::{SearchQuery, cached_results, result_keys};
use super::{AppState, PageQuery, Query};
use crate::caching::{self, Audience, SurrogateKeys};
use crate::error::{ApiError, AppError};
use crate::models::post::{Listing, PostList};

const JSON: &str = "application/json";

fn json_page(headers: &HeaderMap, keys: &SurrogateKeys, body: &impl Serialize) -> Response {
    let body = serde_json::to_string(body).expect("API types serialise to JSON");
    caching::read_page(headers, Audience::Anonymous, keys, JSON, body)
}

/// Axum's query rejections are HTML-page errors elsewhere; here they are JSON.
type ApiQuery<T> = Result<Query<T>, AppError>;

/// `GET /api/posts?page=N`: the front page.
#[tracing::instrument(skip_all)]
pub async fn posts(
    State(state): State<AppState>,
    query: ApiQuery<PageQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let page = query?.0.page()?;
    let (list, keys) = listing_page(&state, &Listing::Front, None, page).await?;
    Ok(json_page(&headers, &keys, &list))
}

/// `GET /api/posts/{slug}`: a post with its comments.
#[tracing::instrument(skip_all, fields(%slug))]
pub async fn post(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let post = cached_post(&state, &slug).await?;
    Ok(json_page(
        &headers,
        &SurrogateKeys::new().post(post.post.id),
        &post,
    ))
}

/// `GET /api/tags/{tag}?page=N`
#[tracing::instrument(skip_all, fields(%name))]
pub async fn tag(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: ApiQuery<PageQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let page = query?.0.page()?;
    let (list, keys) = listing_page(&state, &Listing::Tag(name), None, page).await?;
    Ok(json_page(&headers, &keys, &list))
}

/// `GET /api/authors/{username}?page=N`: the author and a page of their posts.
#[tracing::instrument(skip_all, fields(%username))]
pub async fn author(
    State(state): State<AppState>,
    Path(username): Path<String>,
    query: ApiQuery<PageQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    #[derive(Serialize)]
    struct AuthorPosts<'a> {
        username: &'a str,
        display_name: &'a str,
        #[serde(flatten)]
        list: &'a PostList,
    }
    let page = query?.0.page()?;
    let author = cached_author(&state, &username).await?;
    let listing = Listing::Author(username);
    let (list, keys) = listing_page(&state, &listing, Some(author.id), page).await?;
    let body = AuthorPosts {
        username: &author.username,
        display_name: &author.display_name,
        list: &list,
    };
    Ok(json_page(&headers, &keys, &body))
}

/// `GET /api/search?q=…&page=N`
#[tracing::instrument(skip_all)]
pub async fn search(
    State(state): State<AppState>,
    query: ApiQuery<SearchQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let query = query?.0;
    let (text, page) = query.parse()?;
    if text.is_empty() {
        return Err(AppError::BadRequest("Give a query: ?q=words".into()).into());
    }
    let list = cached_results(&state, text, page).await?;
    Ok(json_page(&headers, &result_keys(list.as_ref()), &list))
}
