//! A small scripted site for the load generator to drive, served by axum on 127.0.0.1:0: the
//! leanstack URLs (front page, posts, tags, the JSON list of posts, sign-up and log-in forms with
//! CSRF tokens, comments), the headers the real stack sets (`X-Cache` as a caching proxy would,
//! `X-Served-By` alternating between two instances, `Server-Timing` with a query count), and
//! metrics pages for a proxy (`/metrics`, as on its admin listener), an app
//! (`/app/metrics`) and a cache node (`/cache/metrics`) whose counters follow what was served.
//! It counts everything it sees, so tests compare the generator's report with the truth.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;
use testkit::Spawned;

pub const POSTS: usize = 60;
const PER_PAGE: usize = 20;
const TAGS: [&str; 3] = ["rust", "databases", "caching"];

/// The slug of the post at popularity rank `rank` (the order the API lists them).
pub fn slug(rank: usize) -> String {
    format!("post-{rank}")
}

/// What the site has seen and how it should behave.
#[derive(Debug, Default)]
pub struct Site {
    /// Page GETs by path, split by whether they carried a logged-in session.
    pub anonymous_reads: Mutex<BTreeMap<String, u64>>,
    pub logged_in_reads: Mutex<BTreeMap<String, u64>>,
    /// Comments accepted, and refused (bad CSRF token or no session).
    pub comments: AtomicU64,
    pub refused: AtomicU64,
    pub signups: AtomicU64,
    pub logins: AtomicU64,
    /// Post-page answers by X-Cache status, and those that made database queries.
    pub by_cache_status: Mutex<BTreeMap<&'static str, u64>>,
    pub with_db_queries: AtomicU64,
    /// When set, the n-th post-page GET (from 1) is held this long before its answer.
    pub stall: Mutex<Option<(u64, Duration)>>,
    /// When set, the posts API lists nothing.
    pub empty: bool,
    post_reads: AtomicU64,
    /// Sessions: cookie token → (CSRF token, logged-in user).
    sessions: Mutex<HashMap<String, (String, Option<String>)>>,
    users: Mutex<HashSet<String>>,
    next_token: AtomicU64,
    cached: Mutex<HashSet<String>>,
    instance: AtomicU64,
}

impl Site {
    pub fn empty() -> Self {
        Site {
            empty: true,
            ..Site::default()
        }
    }

    pub fn stall_post_read(&self, nth: u64, duration: Duration) {
        *self.stall.lock().unwrap() = Some((nth, duration));
    }

    pub fn reads(&self, logged_in: bool) -> BTreeMap<String, u64> {
        let reads = if logged_in {
            &self.logged_in_reads
        } else {
            &self.anonymous_reads
        };
        reads.lock().unwrap().clone()
    }

    fn token(&self, kind: &str) -> String {
        format!("{kind}{}", self.next_token.fetch_add(1, Ordering::Relaxed))
    }

    fn session(&self, headers: &HeaderMap) -> Option<(String, String, Option<String>)> {
        let cookie = headers.get(header::COOKIE)?.to_str().ok()?;
        let token = cookie
            .split(';')
            .find_map(|pair| pair.trim().strip_prefix("leanstack_session="))?;
        let (csrf, user) = self.sessions.lock().unwrap().get(token)?.clone();
        Some((token.to_owned(), csrf, user))
    }

    fn start_session(&self, user: Option<String>) -> (String, String) {
        let (token, csrf) = (self.token("session-"), self.token("csrf-"));
        self.sessions
            .lock()
            .unwrap()
            .insert(token.clone(), (csrf.clone(), user));
        (token, csrf)
    }

    fn next_instance(&self) -> &'static str {
        if self
            .instance
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(2)
        {
            "app-1"
        } else {
            "app-2"
        }
    }
}

/// Answers a page read: anonymous reads of a page already read are proxy HITs (carrying the
/// stored response's headers, as a proxy's would), the first one a MISS; logged-in reads PASS.
/// Answers built "by an app" made 2 queries when they were a MISS/PASS of a post page.
fn page(site: &Site, headers: &HeaderMap, path: String, body: String) -> Response {
    let session = site.session(headers);
    let logged_in = session.as_ref().is_some_and(|(_, _, user)| user.is_some());
    let reads = if logged_in {
        &site.logged_in_reads
    } else {
        &site.anonymous_reads
    };
    *reads.lock().unwrap().entry(path.clone()).or_default() += 1;
    let cache_status = if logged_in {
        "PASS"
    } else if site.cached.lock().unwrap().insert(path.clone()) {
        "MISS"
    } else {
        "HIT"
    };
    *site
        .by_cache_status
        .lock()
        .unwrap()
        .entry(cache_status)
        .or_default() += 1;
    let queries = if path.starts_with("/posts/") && cache_status != "HIT" {
        site.with_db_queries.fetch_add(1, Ordering::Relaxed);
        2
    } else {
        0
    };
    let served_by = if cache_status == "HIT" {
        // A cached answer repeats the headers of the response that was stored.
        "app-stored"
    } else {
        site.next_instance()
    };
    let body = match session {
        Some((_, csrf, Some(_))) if path.starts_with("/posts/") => format!(
            r#"{body}<form method="post" action="{path}/comments"><input type="hidden" name="csrf_token" value="{csrf}"><textarea name="body"></textarea><button>Add comment</button></form>"#
        ),
        _ => body,
    };
    (
        [
            ("x-cache", cache_status.to_owned()),
            ("x-served-by", served_by.to_owned()),
            (
                "server-timing",
                format!(r#"cache;dur=0.1, db;dur=0.5;desc="{queries} queries", render;dur=0.2"#),
            ),
        ],
        Html(body),
    )
        .into_response()
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<usize>,
}

async fn posts_api(State(site): State<Arc<Site>>, Query(query): Query<PageQuery>) -> Response {
    let page = query.page.unwrap_or(1).max(1);
    let total = if site.empty { 0 } else { POSTS };
    let posts: Vec<_> = ((page - 1) * PER_PAGE..(page * PER_PAGE).min(total))
        .map(|rank| {
            // Tag i is on every (i+1)-th post, so "rust" is the most used.
            let tags: Vec<&str> = TAGS
                .iter()
                .enumerate()
                .filter(|(i, _)| rank % (i + 1) == 0)
                .map(|(_, tag)| *tag)
                .collect();
            json!({"slug": slug(rank), "title": format!("Post {rank}"), "tags": tags})
        })
        .collect();
    axum::Json(json!({"posts": posts, "page": page, "has_next": page * PER_PAGE < total}))
        .into_response()
}

async fn post_page(
    State(site): State<Arc<Site>>,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Response {
    let nth = site.post_reads.fetch_add(1, Ordering::Relaxed) + 1;
    let stall = *site.stall.lock().unwrap();
    if let Some((stalled, duration)) = stall
        && stalled == nth
    {
        tokio::time::sleep(duration).await;
    }
    page(
        &site,
        &headers,
        format!("/posts/{slug}"),
        format!("<h1>{slug}</h1>"),
    )
}

fn form_page(action: &str, csrf: &str, token: Option<&str>) -> Response {
    let body = format!(
        r#"<form method="post" action="{action}"><input type="hidden" name="csrf_token" value="{csrf}">
           <input name="username"><input name="display_name"><input name="password" type="password"></form>"#
    );
    let mut response = Html(body).into_response();
    if let Some(token) = token {
        response.headers_mut().insert(
            header::SET_COOKIE,
            HeaderValue::from_str(&format!("leanstack_session={token}; HttpOnly; Path=/")).unwrap(),
        );
    }
    response
}

async fn show_form(site: Arc<Site>, action: &str) -> Response {
    let (token, csrf) = site.start_session(None);
    form_page(action, &csrf, Some(&token))
}

#[derive(Deserialize)]
struct Credentials {
    csrf_token: String,
    username: String,
    password: String,
}

/// Signs up (`new_account`) or logs in: a valid CSRF token of the form's session is required;
/// success replaces the session and redirects, failure shows the form again.
fn submit(site: &Site, headers: &HeaderMap, form: Credentials, new_account: bool) -> Response {
    let Some((_, csrf, _)) = site.session(headers) else {
        return (StatusCode::FORBIDDEN, "no session").into_response();
    };
    if csrf != form.csrf_token || form.password.len() < 8 {
        return (StatusCode::FORBIDDEN, "bad CSRF token").into_response();
    }
    let accepted = if new_account {
        site.users.lock().unwrap().insert(form.username.clone())
    } else {
        site.users.lock().unwrap().contains(&form.username)
    };
    if !accepted {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            form_page("/x", &csrf, None),
        )
            .into_response();
    }
    let counter = if new_account {
        &site.signups
    } else {
        &site.logins
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let (token, _) = site.start_session(Some(form.username));
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_owned()),
            (
                header::SET_COOKIE,
                format!("leanstack_session={token}; HttpOnly; Path=/"),
            ),
        ],
    )
        .into_response()
}

#[derive(Deserialize)]
struct NewComment {
    csrf_token: String,
    body: String,
}

async fn comment(
    State(site): State<Arc<Site>>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    Form(form): Form<NewComment>,
) -> Response {
    match site.session(&headers) {
        Some((_, csrf, Some(_))) if csrf == form.csrf_token && !form.body.is_empty() => {
            site.comments.fetch_add(1, Ordering::Relaxed);
            (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, format!("/posts/{slug}"))],
            )
                .into_response()
        }
        _ => {
            site.refused.fetch_add(1, Ordering::Relaxed);
            (StatusCode::FORBIDDEN, "refused").into_response()
        }
    }
}

fn prometheus(lines: &[String]) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        lines.join("\n") + "\n",
    )
        .into_response()
}

async fn proxy_metrics(State(site): State<Arc<Site>>) -> Response {
    let mut lines = vec!["# TYPE proxy_requests counter".to_owned()];
    for (status, count) in site.by_cache_status.lock().unwrap().iter() {
        lines.push(format!(
            "proxy_requests_total{{cache_status=\"{}\"}} {count}",
            status.to_lowercase()
        ));
    }
    prometheus(&lines)
}

async fn app_metrics(State(site): State<Arc<Site>>) -> Response {
    let queries = 2 * site.with_db_queries.load(Ordering::Relaxed);
    prometheus(&[
        "# TYPE app_db_queries counter".into(),
        format!("app_db_queries_total {queries}"),
        "# TYPE cache_pool_hits counter".into(),
        format!("cache_pool_hits_total{{node=\"cache-1\"}} {}", 3 * queries),
        "# TYPE cache_pool_misses counter".into(),
        format!("cache_pool_misses_total{{node=\"cache-1\"}} {queries}"),
    ])
}

async fn cache_metrics(State(site): State<Arc<Site>>) -> Response {
    let queries = site.with_db_queries.load(Ordering::Relaxed);
    prometheus(&[
        "# TYPE cache_hits counter".into(),
        format!("cache_hits_total {}", 9 * queries),
        "# TYPE cache_misses counter".into(),
        format!("cache_misses_total {queries}"),
    ])
}

pub fn router(site: Arc<Site>) -> Router {
    Router::new()
        .route(
            "/",
            get(|State(site): State<Arc<Site>>, headers: HeaderMap| async move {
                page(&site, &headers, "/".into(), "<h1>Front</h1>".into())
            }),
        )
        .route("/api/posts", get(posts_api))
        .route("/posts/{slug}", get(post_page))
        .route("/posts/{slug}/comments", axum::routing::post(comment))
        .route(
            "/tags/{tag}",
            get(
                |State(site): State<Arc<Site>>, Path(tag): Path<String>, headers: HeaderMap| async move {
                    page(&site, &headers, format!("/tags/{tag}"), format!("<h1>{tag}</h1>"))
                },
            ),
        )
        .route(
            "/signup",
            get(|State(site): State<Arc<Site>>| show_form(site, "/signup")).post(
                |State(site): State<Arc<Site>>, headers: HeaderMap, Form(form): Form<Credentials>| async move {
                    submit(&site, &headers, form, true)
                },
            ),
        )
        .route(
            "/login",
            get(|State(site): State<Arc<Site>>| show_form(site, "/login")).post(
                |State(site): State<Arc<Site>>, headers: HeaderMap, Form(form): Form<Credentials>| async move {
                    submit(&site, &headers, form, false)
                },
            ),
        )
        .route("/metrics", get(proxy_metrics))
        .route("/app/metrics", get(app_metrics))
        .route("/cache/metrics", get(cache_metrics))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(site)
}

/// Serves `site` on a port of its own.
pub async fn serve(site: Arc<Site>) -> Spawned<std::io::Error> {
    testkit::spawn(|listener, shutdown| async move {
        axum::serve(listener, router(site))
            .with_graceful_shutdown(shutdown)
            .await
    })
    .await
    .ready("/healthz")
    .await
}
