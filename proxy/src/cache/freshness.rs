//! RFC 9111 rules: whether a response may be stored by a shared cache, for how long it is fresh,
//! how old it is, and how long past that it may still be served.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode, header};

use crate::config::CacheSettings;

/// The Cache-Control directives this cache acts on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CacheControl {
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
}

impl CacheControl {
    /// Reads every Cache-Control line. Names are case-insensitive; a qualified `no-cache="x"` or
    /// `private="x"` is treated like the unqualified directive, which is the safe reading for a
    /// cache that does not strip fields.
    pub fn parse(headers: &HeaderMap) -> Self {
        let mut cc = Self::default();
        for value in headers.get_all(header::CACHE_CONTROL) {
            let Ok(value) = value.to_str() else { continue };
            for directive in value.split(',') {
                let (name, argument) = match directive.split_once('=') {
                    Some((name, argument)) => {
                        (name.trim(), Some(argument.trim().trim_matches('"')))
                    }
                    None => (directive.trim(), None),
                };
                let seconds = || argument.and_then(|a| a.parse::<u64>().ok());
                // Compared in place: lower-casing a copy would allocate for every directive of
                // every response.
                let is = |directive: &str| name.eq_ignore_ascii_case(directive);
                if is("no-store") {
                    cc.no_store = true;
                } else if is("no-cache") {
                    cc.no_cache = true;
                } else if is("private") {
                    cc.private = true;
                } else if is("public") {
                    cc.public = true;
                } else if is("must-revalidate") {
                    cc.must_revalidate = true;
                } else if is("proxy-revalidate") {
                    cc.proxy_revalidate = true;
                } else if is("max-age") {
                    // A malformed max-age makes the response stale (RFC 9111 §4.2.1).
                    cc.max_age = Some(seconds().unwrap_or(0));
                } else if is("s-maxage") {
                    cc.s_maxage = Some(seconds().unwrap_or(0));
                } else if is("stale-while-revalidate") {
                    cc.stale_while_revalidate = seconds();
                } else if is("stale-if-error") {
                    cc.stale_if_error = seconds();
                }
            }
        }
        cc
    }
}

/// How long a stored response may be used, decided when it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freshness {
    /// Freshness lifetime (RFC 9111 §4.2.1).
    pub lifetime: Duration,
    /// The response's age when it was received (corrected_initial_age, §4.2.3).
    pub initial_age: Duration,
    /// Past `lifetime`, how long it may be served while a background refresh runs.
    pub grace: Duration,
    /// Past `lifetime`, how long it may be served when the backends fail.
    pub stale_if_error: Duration,
    /// `no-cache`: stored, but every use must be revalidated first.
    pub revalidate_always: bool,
}

/// Status codes whose responses may be cached without explicit freshness (RFC 9110 §15.1),
/// less 206 (this cache does not combine ranges).
fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// The most a heuristic lifetime may be, however old the Last-Modified.
const HEURISTIC_CAP: Duration = Duration::from_secs(24 * 3600);

/// What the store needs to know about one backend exchange.
#[derive(Debug)]
pub struct Exchange<'a> {
    pub request: &'a HeaderMap,
    pub status: StatusCode,
    pub response: &'a HeaderMap,
    pub request_time: SystemTime,
    pub response_time: SystemTime,
}

/// Whether a shared cache may store this response, and if so how fresh it is; `ttl` is a
/// route's override of the lifetime.
pub fn evaluate(
    exchange: &Exchange<'_>,
    ttl: Option<Duration>,
    settings: &CacheSettings,
) -> Option<Freshness> {
    let response = CacheControl::parse(exchange.response);
    // Most uncacheable answers say so here, and need the request's directives no more.
    if response.no_store || response.private {
        return None;
    }
    let request = CacheControl::parse(exchange.request);
    if request.no_store {
        return None;
    }
    let status = exchange.status;
    if status.is_informational()
        || status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return None;
    }
    if exchange.request.contains_key(header::AUTHORIZATION)
        && !(response.public || response.must_revalidate || response.s_maxage.is_some())
    {
        return None;
    }
    // A response that sets a cookie belongs to one visitor.
    if exchange.response.contains_key(header::SET_COOKIE) {
        return None;
    }
    if exchange.response.get_all(header::VARY).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|f| f.trim() == "*"))
    }) {
        return None;
    }
    let date = http_date(exchange.response, header::DATE).unwrap_or(exchange.response_time);
    let explicit = response
        .s_maxage
        .or(response.max_age)
        .map(Duration::from_secs)
        .or_else(|| {
            exchange.response.get(header::EXPIRES).map(|_| {
                // An invalid Expires (such as "0") means already expired.
                http_date(exchange.response, header::EXPIRES)
                    .and_then(|expires| expires.duration_since(date).ok())
                    .unwrap_or(Duration::ZERO)
            })
        });
    // A route's ttl overrides the lifetime of what may be stored; it does not make storable
    // what the RFC does not.
    if explicit.is_none() && !response.public && !heuristically_cacheable(status) {
        return None;
    }
    let heuristic = || {
        if !heuristically_cacheable(status) {
            return Duration::ZERO;
        }
        http_date(exchange.response, header::LAST_MODIFIED)
            .and_then(|modified| date.duration_since(modified).ok())
            .map_or(Duration::ZERO, |since| (since / 10).min(HEURISTIC_CAP))
    };
    let lifetime = if response.no_cache {
        Duration::ZERO
    } else {
        ttl.or(explicit).unwrap_or_else(heuristic)
    };
    let has_validator = exchange.response.contains_key(header::ETAG)
        || exchange.response.contains_key(header::LAST_MODIFIED);
    // Nothing to gain from storing what is stale at once and cannot be revalidated.
    if lifetime.is_zero() && !has_validator {
        return None;
    }
    // must-revalidate and proxy-revalidate forbid every stale answer. s-maxage implies
    // proxy-revalidate (RFC 9111 §5.2.2.10), which rules out the configured defaults; but the
    // response's own stale-while-revalidate and stale-if-error are permissions its origin gave
    // in the same breath, "regardless of other freshness information" (RFC 5861 §4).
    let forbids_stale = response.must_revalidate || response.proxy_revalidate;
    let defaults_apply = !forbids_stale && response.s_maxage.is_none();
    // The configured grace is for answers that chose a lifetime; a page that said nothing about
    // caching is not served past its heuristic lifetime unless it asked to be.
    let chose_lifetime = ttl.is_some() || explicit.is_some();
    let grace = match (forbids_stale, response.stale_while_revalidate) {
        (true, _) => Duration::ZERO,
        (false, Some(seconds)) => Duration::from_secs(seconds),
        (false, None) if defaults_apply && chose_lifetime && !response.no_cache => {
            settings.default_grace
        }
        (false, None) => Duration::ZERO,
    };
    let stale_if_error = match (forbids_stale, response.stale_if_error) {
        (true, _) => Duration::ZERO,
        (false, Some(seconds)) => Duration::from_secs(seconds),
        (false, None) if defaults_apply => settings.stale_if_error,
        (false, None) => Duration::ZERO,
    };
    Some(Freshness {
        lifetime,
        initial_age: initial_age(exchange, date),
        grace,
        stale_if_error,
        revalidate_always: response.no_cache,
    })
}

/// The resolution of an HTTP-date (RFC 9110 §5.6.7).
const DATE_RESOLUTION: Duration = Duration::from_secs(1);

/// corrected_initial_age of RFC 9111 §4.2.3.
fn initial_age(exchange: &Exchange<'_>, date: SystemTime) -> Duration {
    // Date counts whole seconds: an answer dated 12:00:00 was made at some time up to a second
    // later. The apparent age is the least it can be, or one made at 12:00:00.9 and received at
    // once would arrive 0.9 s old, and a max-age=1 object would go stale a tenth of a second after
    // it was stored.
    let apparent = exchange
        .response_time
        .duration_since(date)
        .map_or(Duration::ZERO, |apparent| {
            apparent.saturating_sub(DATE_RESOLUTION)
        });
    let age_value = exchange
        .response
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_secs);
    let delay = exchange
        .response_time
        .duration_since(exchange.request_time)
        .unwrap_or(Duration::ZERO);
    apparent.max(age_value + delay)
}

pub fn http_date(headers: &HeaderMap, name: header::HeaderName) -> Option<SystemTime> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn eval(
        request: &[(&'static str, &str)],
        status: u16,
        response: &[(&'static str, &str)],
    ) -> Option<Freshness> {
        let now = SystemTime::now();
        let request = headers(request);
        let response = headers(response);
        evaluate(
            &Exchange {
                request: &request,
                status: StatusCode::from_u16(status).unwrap(),
                response: &response,
                request_time: now,
                response_time: now,
            },
            None,
            &CacheSettings::default(),
        )
    }

    #[test]
    fn s_maxage_beats_max_age_beats_expires() {
        let f = eval(&[], 200, &[("cache-control", "max-age=10, s-maxage=99")]).unwrap();
        assert_eq!(f.lifetime, Duration::from_secs(99));
        assert_eq!(f.grace, Duration::ZERO, "s-maxage implies proxy-revalidate");
        let f = eval(&[], 200, &[("cache-control", "max-age=10")]).unwrap();
        assert_eq!(f.lifetime, Duration::from_secs(10));
        assert_eq!(f.grace, CacheSettings::default().default_grace);
        let date = SystemTime::now();
        let expires = httpdate::fmt_http_date(date + Duration::from_secs(60));
        let f = eval(
            &[],
            200,
            &[
                ("date", &httpdate::fmt_http_date(date)),
                ("expires", &expires),
            ],
        )
        .unwrap();
        assert!(f.lifetime >= Duration::from_secs(59) && f.lifetime <= Duration::from_secs(60));
        assert!(
            eval(&[], 200, &[("expires", "0")]).is_none(),
            "expired and no validator"
        );
    }

    #[test]
    fn refuses_what_a_shared_cache_must_not_store() {
        assert!(eval(&[], 200, &[("cache-control", "no-store, max-age=60")]).is_none());
        assert!(eval(&[], 200, &[("cache-control", "private, max-age=60")]).is_none());
        assert!(
            eval(
                &[("cache-control", "no-store")],
                200,
                &[("cache-control", "max-age=60")]
            )
            .is_none()
        );
        assert!(
            eval(
                &[("authorization", "Bearer x")],
                200,
                &[("cache-control", "max-age=60")]
            )
            .is_none()
        );
        assert!(
            eval(
                &[("authorization", "Bearer x")],
                200,
                &[("cache-control", "public, max-age=60")]
            )
            .is_some()
        );
        assert!(
            eval(
                &[],
                200,
                &[("cache-control", "max-age=60"), ("set-cookie", "a=b")]
            )
            .is_none()
        );
        assert!(eval(&[], 200, &[("cache-control", "max-age=60"), ("vary", "*")]).is_none());
        assert!(
            eval(&[], 302, &[]).is_none(),
            "302 has no heuristic freshness"
        );
        assert!(eval(&[], 302, &[("cache-control", "max-age=5")]).is_some());
    }

    #[test]
    fn heuristic_is_a_tenth_of_the_age_of_last_modified() {
        let now = SystemTime::now();
        let modified = httpdate::fmt_http_date(now - Duration::from_secs(1000));
        let f = eval(
            &[],
            200,
            &[
                ("date", &httpdate::fmt_http_date(now)),
                ("last-modified", &modified),
            ],
        )
        .unwrap();
        assert!((99..=101).contains(&f.lifetime.as_secs()), "{f:?}");
        assert_eq!(f.grace, Duration::ZERO);
        let f = eval(
            &[],
            200,
            &[("cache-control", "no-cache"), ("etag", "\"v1\"")],
        )
        .unwrap();
        assert!(f.revalidate_always && f.lifetime.is_zero());
    }

    #[test]
    fn age_header_and_stale_directives() {
        let f = eval(
            &[],
            200,
            &[
                (
                    "cache-control",
                    "max-age=60, stale-while-revalidate=7, stale-if-error=9",
                ),
                ("age", "20"),
            ],
        )
        .unwrap();
        assert_eq!(f.initial_age, Duration::from_secs(20));
        assert_eq!(f.grace, Duration::from_secs(7));
        assert_eq!(f.stale_if_error, Duration::from_secs(9));
        let f = eval(
            &[],
            200,
            &[(
                "cache-control",
                "max-age=60, must-revalidate, stale-if-error=9",
            )],
        )
        .unwrap();
        assert_eq!(
            (f.grace, f.stale_if_error),
            (Duration::ZERO, Duration::ZERO)
        );
    }

    /// A regression test: the fraction of a second between the Date and the response time once
    /// counted as age, so a max-age=1 object received late in a second, or just after the second
    /// it was dated, was stale at once.
    #[test]
    fn apparent_age_is_the_least_the_dates_resolution_allows() {
        let date = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let request = HeaderMap::new();
        let response = headers(&[
            ("cache-control", "max-age=1"),
            ("date", &httpdate::fmt_http_date(date)),
        ]);
        let initial_age = |received_after: Duration| {
            let response_time = date + received_after;
            let exchange = Exchange {
                request: &request,
                status: StatusCode::OK,
                response: &response,
                request_time: response_time,
                response_time,
            };
            evaluate(&exchange, None, &CacheSettings::default())
                .unwrap()
                .initial_age
        };
        assert_eq!(initial_age(Duration::from_millis(900)), Duration::ZERO);
        assert_eq!(
            initial_age(Duration::from_millis(1010)),
            Duration::from_millis(10)
        );
        assert_eq!(
            initial_age(Duration::from_millis(2500)),
            Duration::from_millis(1500)
        );
    }

    /// The app's own header: s-maxage with explicit stale permissions. A regression test: the
    /// s-maxage once cancelled them, so no app page was ever served stale.
    #[test]
    fn s_maxage_keeps_explicit_stale_directives_but_not_the_defaults() {
        let f = eval(
            &[],
            200,
            &[(
                "cache-control",
                "public, max-age=0, s-maxage=300, stale-while-revalidate=30, stale-if-error=86400",
            )],
        )
        .unwrap();
        assert_eq!(f.lifetime, Duration::from_secs(300));
        assert_eq!(
            (f.grace, f.stale_if_error),
            (Duration::from_secs(30), Duration::from_secs(86400))
        );
        let f = eval(&[], 200, &[("cache-control", "s-maxage=300")]).unwrap();
        assert_eq!(
            (f.grace, f.stale_if_error),
            (Duration::ZERO, Duration::ZERO)
        );
        let f = eval(
            &[],
            200,
            &[(
                "cache-control",
                "s-maxage=300, proxy-revalidate, stale-if-error=9",
            )],
        )
        .unwrap();
        assert_eq!(f.stale_if_error, Duration::ZERO);
    }
}
