//! Everything about caching, in one place so a learner can read the whole policy:
//!
//! 1. **Cache-aside through the pool.** The data of every read page is fetched with
//!    [`Cache::get_or_load`] under a key from [`keys`]; a miss runs the model query and stores
//!    the result for [`ttl`]. Every node of the pool is shared by every app server, so one
//!    instance's load is every instance's hit.
//! 2. **Invalidation on write.** A write deletes exactly the keys whose data it changed
//!    ([`Invalidation`]), then asks the proxy to purge the pages that showed that data
//!    ([`Purger`]), by surrogate key.
//! 3. **The HTTP contract with the proxy** ([`read_page`]): anonymous read pages are
//!    `public, max-age=0, s-maxage=…` with an `ETag` and a `Surrogate-Key` naming what they show;
//!    pages for a logged-in user are `private, no-store`.

use std::fmt::Write as _;
use std::future::Future;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::error::AppError;
use crate::models::post::{Listing, Post};
use crate::timing;

/// How long each kind of data may stay in the pool. Writes delete what they change, so these
/// bound only how stale data can get if an invalidation is lost (a cache node unreachable at
/// the moment of the write).
pub mod ttl {
    use std::time::Duration;

    /// A post with its comments.
    pub const POST: Duration = Duration::from_secs(3600);
    /// A page of the front, tag or author listing.
    pub const LISTING: Duration = Duration::from_secs(600);
    /// Search results cannot be invalidated key by key (any new post may match), so they
    /// simply expire soon.
    pub const SEARCH: Duration = Duration::from_secs(60);
    /// A session: short, as logging out deletes it but an expiry is never extended.
    pub const SESSION: Duration = Duration::from_secs(300);
}

/// Cache keys. User input reaches them only after validation (slugs, tags and usernames are
/// `[a-z0-9_-]`), and search queries only as a hash, so a key never holds spaces or control
/// characters.
pub mod keys {
    use super::*;

    pub fn post(slug: &str) -> String {
        format!("post:{slug}")
    }

    pub fn listing(listing: &Listing, page: u32) -> String {
        match listing {
            Listing::Front => format!("list:front:{page}"),
            Listing::Tag(tag) => format!("list:tag:{tag}:{page}"),
            Listing::Author(username) => format!("list:author:{username}:{page}"),
        }
    }

    pub fn author(username: &str) -> String {
        format!("user:{username}")
    }

    pub fn search(query: &str, page: u32) -> String {
        format!("search:{}:{page}", short_hash(query.as_bytes()))
    }

    pub fn session(token_hash: &str) -> String {
        format!("session:{token_hash}")
    }
}

/// The first 16 hex digits of SHA-256: for keys and ETags.
pub fn short_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest[..8].iter().fold(String::new(), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

/// Surrogate keys name what a response shows, so that one purge removes every cached page
/// showing a changed thing: `post-42` is on the post's page and on every listing page that
/// lists it; `front`, `tag-rust` and `author-7` are on the listings themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SurrogateKeys(Vec<String>);

impl SurrogateKeys {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn tag(mut self, key: impl Into<String>) -> Self {
        let key = key.into();
        if !self.0.contains(&key) {
            self.0.push(key);
        }
        self
    }

    pub fn post(self, post_id: i64) -> Self {
        self.tag(format!("post-{post_id}"))
    }

    /// The key of a whole listing.
    pub fn listing(self, listing: &Listing, author_id: Option<i64>) -> Self {
        match (listing, author_id) {
            (Listing::Front, _) => self.tag("front"),
            (Listing::Tag(tag), _) => self.tag(format!("tag-{tag}")),
            (Listing::Author(_), Some(author_id)) => self.tag(format!("author-{author_id}")),
            (Listing::Author(_), None) => self,
        }
    }

    /// `post-42 front tag-rust`: the header value.
    pub fn header_value(&self) -> String {
        self.0.join(" ")
    }
}

/// Anonymous read pages: the proxy may keep them for `s-maxage` (purges keep it fresh), serve
/// them stale for a while during revalidation, and for longer if the app is failing. Browsers
/// (`max-age=0`) revalidate every time, cheaply, with `If-None-Match`.
pub const PUBLIC_CACHE_CONTROL: &str =
    "public, max-age=0, s-maxage=300, stale-while-revalidate=30, stale-if-error=86400";
/// Anything shown to a logged-in user (their name, CSRF tokens) must not be stored anywhere.
pub const PRIVATE_CACHE_CONTROL: &str = "private, no-store";

/// Who a read page is for, which decides how it may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Anonymous,
    LoggedIn,
}

/// Builds the response to a read page following the HTTP contract above; answers
/// `If-None-Match` with `304 Not Modified` when the ETag matches.
pub fn read_page(
    request: &HeaderMap,
    audience: Audience,
    keys: &SurrogateKeys,
    content_type: &'static str,
    body: String,
) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if audience == Audience::LoggedIn {
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(PRIVATE_CACHE_CONTROL),
        );
        return (headers, body).into_response();
    }
    let etag = format!("\"{}\"", short_hash(body.as_bytes()));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(PUBLIC_CACHE_CONTROL),
    );
    if let Ok(value) = HeaderValue::from_str(&keys.header_value()) {
        headers.insert("surrogate-key", value);
    }
    let not_modified = request
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|candidates| etag_matches(candidates, &etag));
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("an ETag of hex digits is a valid header value"),
    );
    if not_modified {
        headers.remove(header::CONTENT_TYPE);
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, body).into_response()
}

/// `If-None-Match` uses weak comparison (RFC 9110 §13.1.2): `W/` prefixes are ignored.
fn etag_matches(candidates: &str, etag: &str) -> bool {
    candidates
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == etag)
}

/// The cache pool, as the app uses it: errors and timeouts of the pool are misses (the pool
/// itself logs and counts them), so a cache outage slows pages down but never breaks them.
#[derive(Debug, Clone)]
pub struct Cache {
    pool: cache::pool::Pool,
}

impl Cache {
    pub fn new(pool: cache::pool::Pool) -> Self {
        Self { pool }
    }

    /// The cached value of `key`, or `load`'s result, stored for `ttl`. `Ok(None)` is "not
    /// found" (cached briefly too, so a flood of requests for a missing slug stays off the
    /// database).
    pub async fn get_or_load<T, F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        load: F,
    ) -> Result<Option<T>, AppError>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, AppError>>,
    {
        let (result, lookup) = timing::cache(self.pool.get_or_load_timed(key, ttl, load)).await;
        timing::cache_lookup(lookup.outcome.is_hit());
        result
    }

    /// Deletes `keys` from the pool.
    pub async fn delete(&self, keys: &[String]) {
        timing::cache(self.pool.delete_many(keys)).await;
    }
}

/// What a write changed: the pool keys to delete and the surrogate keys to purge.
#[derive(Debug, Default)]
pub struct Invalidation {
    pub keys: Vec<String>,
    pub surrogate_keys: SurrogateKeys,
}

impl Invalidation {
    /// A new comment on `post`: the post's page, and the one page of each listing that shows
    /// the post (its comment count changed). `pages` gives, per listing, the page showing it.
    pub fn new_comment(post: &Post, pages: &[(Listing, u32)]) -> Self {
        let mut keys = vec![keys::post(&post.slug)];
        keys.extend(
            pages
                .iter()
                .map(|(listing, page)| keys::listing(listing, *page)),
        );
        Invalidation {
            keys,
            surrogate_keys: SurrogateKeys::new().post(post.id),
        }
    }

    /// A new post: every page of each listing it appears in (all of them shift by one), and
    /// any "not found" cached under its slug. `page_counts` gives each listing's page count.
    pub fn new_post(post: &Post, page_counts: &[(Listing, u32)]) -> Self {
        let mut keys = vec![keys::post(&post.slug)];
        let mut surrogate_keys = SurrogateKeys::new().post(post.id).tag("search");
        for (listing, pages) in page_counts {
            keys.extend((1..=*pages).map(|page| keys::listing(listing, page)));
            surrogate_keys = surrogate_keys.listing(listing, Some(post.author_id));
        }
        Invalidation {
            keys,
            surrogate_keys,
        }
    }
}

/// Asks the proxy to purge pages by surrogate key: `POST {admin}/purge` with a `Surrogate-Key`
/// header. Without a configured proxy it does nothing; a failure is logged, never returned —
/// the write has happened, and the page's `s-maxage` bounds how stale the proxy can be.
///
/// The purge is soft (`Soft-Purge: 1`, as Fastly's): the proxy must fetch the page again before
/// serving it, but keeps the old copy for `stale-if-error`, so a page whose data just changed
/// is still served, old, if the database goes down before anyone reads it again.
#[derive(Debug, Clone)]
pub struct Purger {
    target: Option<(reqwest::Client, String)>,
}

/// Longest a write waits for the proxy's answer.
const PURGE_TIMEOUT: Duration = Duration::from_secs(2);

impl Purger {
    /// `admin_url` is the proxy's admin endpoint, such as `http://proxy:9080`.
    pub fn new(admin_url: Option<&str>) -> Self {
        Self {
            target: admin_url.map(|url| {
                (
                    reqwest::Client::builder()
                        .timeout(PURGE_TIMEOUT)
                        .build()
                        .unwrap_or_default(),
                    format!("{}/purge", url.trim_end_matches('/')),
                )
            }),
        }
    }

    pub async fn purge(&self, keys: &SurrogateKeys) {
        let Some((client, url)) = &self.target else {
            return;
        };
        let value = keys.header_value();
        let result = client
            .post(url)
            .header("surrogate-key", &value)
            .header("soft-purge", "1")
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        match result {
            Ok(_) => tracing::debug!(keys = %value, "proxy purged"),
            Err(error) => tracing::warn!(keys = %value, %error, "proxy purge failed"),
        }
    }
}

/// Applies an invalidation: pool keys first, then the proxy (which would otherwise refill
/// from stale pool data).
pub async fn invalidate(cache: &Cache, purger: &Purger, invalidation: Invalidation) {
    cache.delete(&invalidation.keys).await;
    purger.purge(&invalidation.surrogate_keys).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post_42() -> Post {
        Post {
            id: 42,
            slug: "hello".into(),
            title: "Hello".into(),
            body_html: String::new(),
            published_at: chrono::DateTime::UNIX_EPOCH,
            author_id: 7,
            author_username: "ann".into(),
            author_name: "Ann".into(),
            tags: vec!["rust".into()],
        }
    }

    #[test]
    fn a_comment_invalidates_the_post_and_the_one_listing_page_showing_it() {
        let post = post_42();
        let invalidation = Invalidation::new_comment(
            &post,
            &[
                (Listing::Front, 3),
                (Listing::Author("ann".into()), 1),
                (Listing::Tag("rust".into()), 2),
            ],
        );
        assert_eq!(
            invalidation.keys,
            [
                "post:hello",
                "list:front:3",
                "list:author:ann:1",
                "list:tag:rust:2"
            ]
        );
        assert_eq!(invalidation.surrogate_keys.header_value(), "post-42");
    }

    #[test]
    fn a_post_invalidates_every_page_of_its_listings() {
        let post = post_42();
        let invalidation = Invalidation::new_post(
            &post,
            &[
                (Listing::Front, 2),
                (Listing::Author("ann".into()), 1),
                (Listing::Tag("rust".into()), 1),
            ],
        );
        assert_eq!(
            invalidation.keys,
            [
                "post:hello",
                "list:front:1",
                "list:front:2",
                "list:author:ann:1",
                "list:tag:rust:1"
            ]
        );
        assert_eq!(
            invalidation.surrogate_keys.header_value(),
            "post-42 search front author-7 tag-rust"
        );
    }

    #[test]
    fn etags_compare_weakly_and_in_lists() {
        assert!(etag_matches("\"abc\"", "\"abc\""));
        assert!(etag_matches("W/\"abc\"", "\"abc\""));
        assert!(etag_matches("\"x\", \"abc\"", "\"abc\""));
        assert!(etag_matches("*", "\"abc\""));
        assert!(!etag_matches("\"abd\"", "\"abc\""));
    }

    #[test]
    fn surrogate_keys_are_unique_and_space_separated() {
        let keys = SurrogateKeys::new()
            .post(42)
            .listing(&Listing::Front, None)
            .listing(&Listing::Tag("rust".into()), None)
            .listing(&Listing::Author("ann".into()), Some(7))
            .post(42);
        assert_eq!(keys.header_value(), "post-42 front tag-rust author-7");
    }

    #[test]
    fn logged_in_pages_are_private_and_untagged() {
        let response = read_page(
            &HeaderMap::new(),
            Audience::LoggedIn,
            &SurrogateKeys::new().tag("front"),
            "text/html; charset=utf-8",
            "hi".into(),
        );
        assert_eq!(
            response.headers()[header::CACHE_CONTROL],
            "private, no-store"
        );
        assert!(response.headers().get("surrogate-key").is_none());
        assert!(response.headers().get(header::ETAG).is_none());
    }

    #[test]
    fn anonymous_pages_answer_if_none_match_with_304() {
        let keys = SurrogateKeys::new().tag("front");
        let first = read_page(
            &HeaderMap::new(),
            Audience::Anonymous,
            &keys,
            "text/html",
            "x".into(),
        );
        let etag = first.headers()[header::ETAG].clone();
        let mut request = HeaderMap::new();
        request.insert(header::IF_NONE_MATCH, etag);
        let second = read_page(
            &request,
            Audience::Anonymous,
            &keys,
            "text/html",
            "x".into(),
        );
        assert_eq!(second.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(second.headers()["surrogate-key"], "front");
    }
}
