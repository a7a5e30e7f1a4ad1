//! Full-text search over posts (PostgreSQL `tsvector`, web-search syntax).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::{AppState, Query, Visitor, read_page};
use crate::caching::{SurrogateKeys, keys, ttl};
use crate::error::AppError;
use crate::models::post::{self, PostList};
use crate::views::{Pager, SearchPage};

/// Longest accepted query, in characters.
const MAX_QUERY_CHARS: usize = 200;

/// `?q=…&page=N`
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SearchQuery {
    q: String,
    page: Option<u32>,
}

impl SearchQuery {
    /// The trimmed query and the page, or a 400.
    pub fn parse(&self) -> Result<(&str, u32), AppError> {
        let query = self.q.trim();
        if query.chars().count() > MAX_QUERY_CHARS {
            return Err(AppError::BadRequest(format!(
                "Search for at most {MAX_QUERY_CHARS} characters."
            )));
        }
        let page = super::PageQuery { page: self.page }.page()?;
        Ok((query, page))
    }
}

/// Results for `query`, through the cache (an empty query has none).
pub async fn cached_results(
    state: &AppState,
    query: &str,
    page: u32,
) -> Result<Option<PostList>, AppError> {
    if query.is_empty() {
        return Ok(None);
    }
    state
        .cache
        .get_or_load(&keys::search(query, page), ttl::SEARCH, || async {
            Ok(Some(post::search(&state.db, query, page).await?))
        })
        .await
}

/// The surrogate keys of a results page: `search` and every post shown.
pub fn result_keys(list: Option<&PostList>) -> SurrogateKeys {
    list.into_iter()
        .flat_map(|list| &list.posts)
        .fold(SurrogateKeys::new().tag("search"), |keys, post| {
            keys.post(post.id)
        })
}

/// `GET /search?q=…`
#[tracing::instrument(skip_all, fields(q = %query.q))]
pub async fn search(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(query): Query<SearchQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let (text, page) = query.parse()?;
    let list = cached_results(&state, text, page).await?;
    let keys = result_keys(list.as_ref());
    let encoded = serde_urlencoded::to_string([("q", text)])
        .map_err(|error| AppError::BadRequest(error.to_string()))?;
    let base = format!("/search?{encoded}&page=");
    let view = SearchPage {
        layout: visitor.layout(),
        query: text.to_owned(),
        pager: match &list {
            Some(list) => Pager::new(&base, list),
            None => Pager {
                previous: None,
                next: None,
            },
        },
        list,
    };
    read_page(&headers, &visitor, &keys, &view)
}
