//! Cache keys: the primary key names the resource (host plus normalised path and query; HEAD
//! shares GET's objects), and the Vary'd request headers pick one variant of it.

use std::borrow::Cow;

use http::{HeaderMap, HeaderName};

use crate::config::RouteSettings;

/// The primary key of a resource: its host, then its target (path and query), both normalised.
/// Built in one buffer because every cacheable request needs one: the host first, which picks
/// the route, then the target as that route normalises it.
#[derive(Debug, Clone)]
pub struct Primary {
    key: String,
    host_len: usize,
}

impl Primary {
    /// Starts a key with `host` normalised (trimmed, lower-cased, without `:80`), with room for
    /// a target of `target_len` bytes.
    pub fn for_host(host: &str, target_len: usize) -> Self {
        let host = host.trim();
        let host = host.strip_suffix(":80").unwrap_or(host);
        let mut key = String::with_capacity(host.len() + target_len);
        key.push_str(host);
        key.make_ascii_lowercase();
        Self {
            host_len: key.len(),
            key,
        }
    }

    pub fn host(&self) -> &str {
        &self.key[..self.host_len]
    }

    /// What routes match: `example.com` of `example.com:8080`, `[::1]` of `[::1]:8080`.
    pub fn host_name(&self) -> &str {
        let host = self.host();
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    }

    /// Completes the key with `target`, normalised as `route` says (as sent without a route).
    pub fn push_target(&mut self, target: &str, route: Option<&RouteSettings>) {
        self.key.truncate(self.host_len);
        match route {
            Some(route) => self.key.push_str(&normalise_target(target, route)),
            None => self.key.push_str(target),
        }
    }

    /// The normalised path and query.
    pub fn target(&self) -> &str {
        &self.key[self.host_len..]
    }

    pub fn as_str(&self) -> &str {
        &self.key
    }
}

/// The secondary key: the values of the request headers the response varies on.
pub fn variant(vary: &[HeaderName], request: &HeaderMap) -> String {
    let mut key = String::new();
    for name in vary {
        key.push_str(name.as_str());
        key.push('=');
        let mut first = true;
        for value in request.get_all(name) {
            if !first {
                key.push(',');
            }
            first = false;
            // Whitespace differences do not make a different variant.
            let text = String::from_utf8_lossy(value.as_bytes());
            key.push_str(&text.split_whitespace().collect::<Vec<_>>().join(" "));
        }
        key.push('\n');
    }
    key
}

/// The header names a response's Vary lists, lower-cased and in order.
pub fn vary_names(response: &HeaderMap) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = response
        .get_all(http::header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    names
}

/// Applies the route's rewrites, then normalises: percent-escapes of unreserved characters are
/// decoded and the others upper-cased (RFC 3986 §6.2.2), dropped query parameters removed, and
/// the rest sorted when the route asks.
fn normalise_target<'a>(target: &'a str, route: &RouteSettings) -> Cow<'a, str> {
    let has_query = target.contains('?');
    let nothing_to_do = route.rewrites.is_empty()
        && !target.contains('%')
        && (!has_query || (route.drop_query.is_empty() && !route.sort_query));
    if nothing_to_do && !target.ends_with('?') {
        return Cow::Borrowed(target);
    }
    let mut target = target.to_owned();
    for rewrite in &route.rewrites {
        if let std::borrow::Cow::Owned(rewritten) = rewrite
            .pattern
            .replace(&target, rewrite.replacement.as_str())
        {
            target = rewritten;
        }
    }
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target.as_str(), None),
    };
    let mut out = normalise_escapes(path);
    if let Some(query) = query {
        let mut params: Vec<&str> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .filter(|p| {
                let name = p.split_once('=').map_or(*p, |(name, _)| name);
                !route.drop_query.iter().any(|rule| matches_rule(rule, name))
            })
            .collect();
        if route.sort_query {
            params.sort_unstable();
        }
        if !params.is_empty() {
            out.push('?');
            out.push_str(&normalise_escapes(&params.join("&")));
        }
    }
    Cow::Owned(out)
}

/// `utm_*` matches a prefix, anything else the whole name.
fn matches_rule(rule: &str, name: &str) -> bool {
    match rule.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == rule,
    }
}

fn normalise_escapes(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(value) if value.is_ascii_alphanumeric() || b"-._~".contains(&value) => {
                out.push(value);
                i += 3;
            }
            Some(_) => {
                out.push(b'%');
                out.extend(bytes[i + 1..i + 3].iter().map(u8::to_ascii_uppercase));
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Rewrite;

    #[test]
    fn normalises_escapes_query_and_rewrites() {
        let mut route = RouteSettings::catch_all("app");
        assert_eq!(
            normalise_target("/a%7eb%2fc?x=%3a", &route),
            "/a~b%2Fc?x=%3A"
        );
        route.drop_query = vec!["utm_*".into(), "fbclid".into()];
        route.sort_query = true;
        assert_eq!(
            normalise_target("/p?b=2&utm_source=x&a=1&fbclid=9&utm_medium=y", &route),
            "/p?a=1&b=2"
        );
        assert_eq!(normalise_target("/p?utm_source=x", &route), "/p");
        route.rewrites = vec![Rewrite {
            pattern: regex::Regex::new("^/old/(.*)$").unwrap(),
            replacement: "/new/$1".into(),
        }];
        assert_eq!(
            normalise_target("/old/page?b=1&a=2", &route),
            "/new/page?a=2&b=1"
        );
    }

    #[test]
    fn primary_is_normalised_host_then_target() {
        let mut route = RouteSettings::catch_all("app");
        route.drop_query = vec!["utm_*".into()];
        let mut key = Primary::for_host(" Example.COM:80", 0);
        assert_eq!(key.host(), "example.com");
        key.push_target("/p?utm_source=x&a=1", Some(&route));
        assert_eq!(key.as_str(), "example.com/p?a=1");
        assert_eq!(key.target(), "/p?a=1");
        key.push_target("/p?utm_source=x", None);
        assert_eq!(key.as_str(), "example.com/p?utm_source=x");
        assert_eq!(
            Primary::for_host("example.com:8080", 0).host(),
            "example.com:8080"
        );
    }

    /// The purge endpoint once cut everything after the last colon, so `[::1]` became `[:`
    /// and matched no host-specific route.
    #[test]
    fn host_name_drops_only_a_port() {
        let name = |host| Primary::for_host(host, 0).host_name().to_owned();
        assert_eq!(name("example.com:8080"), "example.com");
        assert_eq!(name("example.com"), "example.com");
        assert_eq!(name("[::1]:8080"), "[::1]");
        assert_eq!(name("[::1]"), "[::1]");
    }

    #[test]
    fn variant_depends_only_on_varied_headers() {
        let vary = vec![HeaderName::from_static("accept-language")];
        let mut a = HeaderMap::new();
        a.insert("accept-language", "en".parse().unwrap());
        a.insert("user-agent", "x".parse().unwrap());
        let mut b = HeaderMap::new();
        b.insert("accept-language", "en".parse().unwrap());
        let mut c = HeaderMap::new();
        c.insert("accept-language", "fr".parse().unwrap());
        assert_eq!(variant(&vary, &a), variant(&vary, &b));
        assert_ne!(variant(&vary, &a), variant(&vary, &c));
    }
}
