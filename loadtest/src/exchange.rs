//! One request and what its answer says about the tiers.
//!
//! Besides the status, three response headers tell where a request went, without any metrics
//! endpoint: `X-Cache` (the proxy's cache status), `X-Served-By` (which app instance built the
//! page) and `Server-Timing` (how many database queries the page cost). A page the proxy served
//! from its cache still carries the `X-Served-By` and `Server-Timing` of the response it stored,
//! so those two only count when `X-Cache` says the request went through to an app.

use std::sync::Arc;

use http::header::COOKIE;
use url::Url;

use crate::accounts::Account;
use crate::workload::{PageKind, Planned, Visitor};

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub result: Result<u16, Failure>,
    /// `X-Cache`, uppercased (its first word).
    pub cache_status: Option<String>,
    /// `X-Served-By`, when the request reached an app instance.
    pub served_by: Option<String>,
    /// Queries named in `Server-Timing`'s `db` entry, when the request reached an app.
    pub db_queries: Option<u32>,
}

/// A request that got no complete HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Failure {
    Connect,
    Timeout,
    /// The answer broke off, or the request could not be made.
    Other,
}

impl Failure {
    pub fn name(self) -> &'static str {
        match self {
            Failure::Connect => "connect error",
            Failure::Timeout => "timeout",
            Failure::Other => "broken response",
        }
    }
}

impl Outcome {
    /// An error is a failed exchange or a 4xx/5xx answer.
    pub fn is_error(&self) -> bool {
        !self.result.is_ok_and(|status| status < 400)
    }

    fn failed(error: &reqwest::Error) -> Outcome {
        Outcome::failure(if error.is_timeout() {
            Failure::Timeout
        } else if error.is_connect() {
            Failure::Connect
        } else {
            Failure::Other
        })
    }

    fn failure(failure: Failure) -> Outcome {
        Outcome {
            result: Err(failure),
            cache_status: None,
            served_by: None,
            db_queries: None,
        }
    }
}

/// Sends planned requests to the target.
#[derive(Debug, Clone)]
pub struct Exchanger {
    client: reqwest::Client,
    target: Url,
    accounts: Arc<[Account]>,
}

impl Exchanger {
    pub fn new(client: reqwest::Client, target: Url, accounts: Vec<Account>) -> Self {
        Exchanger {
            client,
            target,
            accounts: accounts.into(),
        }
    }

    /// Sends `planned`, reads the whole answer, and says how it went.
    pub async fn send(&self, planned: &Planned) -> Outcome {
        let account = match planned.visitor {
            Visitor::Anonymous => None,
            Visitor::LoggedIn(index) => self.accounts.get(index),
        };
        let comment_form = match planned.kind {
            PageKind::Comment => account.and_then(|account| account.comment_form.as_ref()),
            _ => None,
        };
        let path = comment_form.map_or_else(
            || planned.path.clone(),
            |form| form.action_for(&planned.path),
        );
        // Paths come from the configuration and the site's own list; one that is not a valid
        // reference counts as a failed request rather than going somewhere else.
        let Ok(url) = self.target.join(&path) else {
            return Outcome::failure(Failure::Other);
        };
        let request = match comment_form {
            Some(form) => self
                .client
                .post(url)
                .form(&form.fields(&comment_text(&planned.path))),
            None => self.client.get(url),
        };
        let request = match account {
            Some(account) => request.header(COOKIE, &account.cookie),
            None => request,
        };
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return Outcome::failed(&error),
        };
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::trim)
        };
        let cache_status = header("x-cache")
            .and_then(|value| value.split([',', ' ', ';']).next())
            .map(str::to_ascii_uppercase);
        let from_proxy_cache = cache_status
            .as_deref()
            .is_some_and(|status| status.starts_with("HIT") || status == "STALE");
        let (served_by, db_queries) = if from_proxy_cache {
            (None, None)
        } else {
            (
                header("x-served-by").map(str::to_owned),
                header("server-timing").and_then(db_queries),
            )
        };
        // Reading the body is part of the exchange: a page is served when its last byte is.
        if let Err(error) = response.bytes().await {
            return Outcome::failed(&error);
        }
        Outcome {
            result: Ok(status),
            cache_status,
            served_by,
            db_queries,
        }
    }
}

fn comment_text(post_path: &str) -> String {
    format!("A comment from the load generator on {post_path}.")
}

/// The number of queries in a `Server-Timing` value's `db` entry: `db;dur=1.2;desc="3 queries"`.
/// An entry without a count but with a duration above zero counts as one query.
pub fn db_queries(server_timing: &str) -> Option<u32> {
    let entry = server_timing.split(',').find(|entry| {
        entry
            .split(';')
            .next()
            .is_some_and(|name| name.trim() == "db")
    })?;
    let mut duration = None;
    for parameter in entry.split(';').skip(1) {
        let Some((name, value)) = parameter.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        match name.trim() {
            "desc" => {
                if let Some(count) = value.split_whitespace().next().and_then(|n| n.parse().ok()) {
                    return Some(count);
                }
            }
            "dur" => duration = value.parse::<f64>().ok(),
            _ => {}
        }
    }
    duration.map(|ms| u32::from(ms > 0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_query_count_of_the_db_entry() {
        let header = r#"cache;dur=0.120, db;dur=2.500;desc="3 queries", render;dur=0.300"#;
        assert_eq!(db_queries(header), Some(3));
        assert_eq!(
            db_queries(r#"cache;dur=1, db;dur=0.000;desc="0 queries""#),
            Some(0)
        );
        assert_eq!(db_queries("db;dur=4.2"), Some(1));
        assert_eq!(db_queries("cache;dur=1, render;dur=2"), None);
    }
}
