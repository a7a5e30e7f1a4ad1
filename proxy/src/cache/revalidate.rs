//! Conditional requests, both ways: answering a client's If-None-Match / If-Modified-Since from
//! a stored object (RFC 9110 §13), and asking a backend whether a stale object is still good.

use std::time::SystemTime;

use http::{HeaderMap, HeaderValue, header};

use super::freshness::http_date;
use super::store::CachedObject;

/// Whether a client's conditional GET/HEAD is satisfied by `object`, so a 304 answers it.
/// If-None-Match takes precedence over If-Modified-Since (RFC 9110 §13.2.2).
pub fn client_not_modified(request: &HeaderMap, object: &CachedObject) -> bool {
    if request.contains_key(header::IF_NONE_MATCH) {
        let Some(etag) = object.headers.get(header::ETAG) else {
            return false;
        };
        return request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|candidate| {
                let candidate = candidate.trim();
                candidate == "*" || weak_eq(candidate, etag.to_str().unwrap_or_default())
            });
    }
    // The stored date is parsed only for a request that has one to compare it with: most hits
    // carry no condition, and parsing Last-Modified was 6% of a hit's instructions.
    let Some(since) = http_date(request, header::IF_MODIFIED_SINCE) else {
        return false;
    };
    http_date(&object.headers, header::LAST_MODIFIED).is_some_and(|modified| modified <= since)
}

/// Weak comparison: equal opaque tags, ignoring `W/`.
fn weak_eq(a: &str, b: &str) -> bool {
    let strip = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    strip(a) == strip(b)
}

/// The headers a 304 carries: those a 200 would have that describe the cache entry
/// (RFC 9110 §15.4.5).
pub fn not_modified_headers(object: &CachedObject) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for name in [
        header::CACHE_CONTROL,
        header::CONTENT_LOCATION,
        header::DATE,
        header::ETAG,
        header::EXPIRES,
        header::VARY,
        header::LAST_MODIFIED,
    ] {
        for value in object.headers.get_all(&name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers
}

/// The validators to send a backend for a stale `object`; `None` when it has none.
pub fn validators(object: &CachedObject) -> Option<HeaderMap> {
    let mut headers = HeaderMap::new();
    if let Some(etag) = object.headers.get(header::ETAG) {
        headers.insert(header::IF_NONE_MATCH, etag.clone());
    }
    if let Some(modified) = object.headers.get(header::LAST_MODIFIED) {
        headers.insert(header::IF_MODIFIED_SINCE, modified.clone());
    }
    (!headers.is_empty()).then_some(headers)
}

/// The stored headers updated with those of a 304 (RFC 9111 §4.3.4): each field the 304 sends
/// replaces the stored one, except the framing fields, which describe the 304 itself.
pub fn merge_not_modified(stored: &HeaderMap, fresh: &HeaderMap) -> HeaderMap {
    let mut merged = stored.clone();
    for name in fresh.keys() {
        if *name == header::CONTENT_LENGTH || *name == header::TRANSFER_ENCODING {
            continue;
        }
        merged.remove(name);
        for value in fresh.get_all(name) {
            merged.append(name.clone(), value.clone());
        }
    }
    if !merged.contains_key(header::DATE)
        && let Ok(date) = HeaderValue::from_str(&httpdate::fmt_http_date(SystemTime::now()))
    {
        merged.insert(header::DATE, date);
    }
    merged
}
