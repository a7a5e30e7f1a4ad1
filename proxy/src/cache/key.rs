//! Cache keys: the primary key names the resource (host plus normalised path and query; HEAD
//! shares GET's objects), and the Vary'd request headers pick one variant of it.

use http::{HeaderMap, HeaderName};

use crate::config::RouteSettings;

/// The primary key of a resource: `host` and the normalised `target`.
pub fn primary(host: &str, target: &str) -> String {
    let mut key = String::with_capacity(host.len() + target.len());
    key.push_str(host);
    key.push_str(target);
    key
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

/// The Host a request is for: lower-cased, without a default port.
pub fn normalise_host(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    match host.strip_suffix(":80") {
        Some(bare) => bare.to_owned(),
        None => host,
    }
}

/// Applies the route's rewrites, then normalises: percent-escapes of unreserved characters are
/// decoded and the others upper-cased (RFC 3986 §6.2.2), dropped query parameters removed, and
/// the rest sorted when the route asks.
pub fn normalise_target(target: &str, route: &RouteSettings) -> String {
    let has_query = target.contains('?');
    let nothing_to_do = route.rewrites.is_empty()
        && !target.contains('%')
        && (!has_query || (route.drop_query.is_empty() && !route.sort_query));
    if nothing_to_do && !target.ends_with('?') {
        return target.to_owned();
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
    out
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
        assert_eq!(normalise_host("Example.COM:80"), "example.com");
        assert_eq!(normalise_host("example.com:8080"), "example.com:8080");
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
