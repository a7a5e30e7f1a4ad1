//! Header rules for an intermediary: hop-by-hop fields removed (RFC 9110 §7.6.1), Via added
//! (§7.6.3), and the de-facto X-Forwarded-* fields that tell the backend who asked.

use std::net::SocketAddr;

use http::header::Entry;
use http::{HeaderMap, HeaderName, HeaderValue, header};

/// This proxy's entry in Via.
pub const VIA: &str = "1.1 leanstack-proxy";

pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// A client connection: its address, and the X-Forwarded-For entry it adds, written once per
/// connection rather than for every request on it.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    forwarded_for: HeaderValue,
}

impl Peer {
    pub fn new(addr: SocketAddr) -> Self {
        let forwarded_for = HeaderValue::try_from(addr.ip().to_string())
            .expect("an IP address is a valid header value");
        Self {
            addr,
            forwarded_for,
        }
    }
}

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Whether a field describes one connection and is never forwarded (RFC 9110 §7.6.1).
/// Compared as names, not strings: a known name is a small number, so most comparisons are one
/// integer's.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    *name == header::CONNECTION
        || *name == header::TRANSFER_ENCODING
        || *name == header::TE
        || *name == header::TRAILER
        || *name == header::UPGRADE
        || *name == KEEP_ALIVE
        || *name == PROXY_CONNECTION
}

/// Removes the hop-by-hop fields, those the Connection field names, and those `also` picks.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, also: impl Fn(&HeaderName) -> bool) {
    // "close" and "keep-alive", the usual tokens, name no field, so this allocates only in the
    // rare case that Connection names some.
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|token| {
            !token.eq_ignore_ascii_case("close") && !token.eq_ignore_ascii_case("keep-alive")
        })
        .map(str::to_ascii_lowercase)
        .collect();
    let doomed = |name: &HeaderName| {
        is_hop_by_hop(name) || also(name) || named.iter().any(|token| token == name.as_str())
    };
    // A message usually holds one of these at most (Connection), so finding them one at a time
    // costs less than collecting them.
    while let Some(name) = headers.keys().find(|name| doomed(name)).cloned() {
        headers.remove(name);
    }
}

/// The headers to send a backend for a client's request from `peer`: the client's, without the
/// hop-by-hop fields and those `also_remove` picks, and with X-Forwarded-* and Via.
pub fn forward_request(
    client: &HeaderMap,
    peer: &Peer,
    host: Option<&HeaderValue>,
    also_remove: impl Fn(&HeaderName) -> bool,
) -> HeaderMap {
    // A clone, whose entries may grow as the fields below are added, costs less than a new map
    // of the right size, which hashes every name again: 680 instructions more for a browser's
    // twelve fields (callgrind, proxy/README.md).
    let mut headers = client.clone();
    remove_hop_by_hop(&mut headers, also_remove);
    // The four fields below: one growth of the index at most, and one hash of each name.
    headers.reserve(4);
    match headers.entry(X_FORWARDED_FOR) {
        Entry::Occupied(mut earlier) => {
            // Every hop so far, from however many fields they came in, then this client.
            let mut list = String::new();
            for hop in earlier.iter().filter_map(|value| value.to_str().ok()) {
                list.push_str(hop);
                list.push_str(", ");
            }
            list.push_str(peer.forwarded_for.to_str().unwrap_or_default());
            if let Ok(value) = HeaderValue::try_from(list) {
                earlier.insert(value);
            }
        }
        Entry::Vacant(vacant) => {
            vacant.insert(peer.forwarded_for.clone());
        }
    }
    // A TLS terminator in front of this proxy has already said what the client used.
    headers
        .entry(X_FORWARDED_PROTO)
        .or_insert(HeaderValue::from_static("http"));
    if let Entry::Vacant(vacant) = headers.entry(X_FORWARDED_HOST)
        && let Some(host) = host
    {
        vacant.insert(host.clone());
    }
    append_via(&mut headers);
    headers
}

/// Adds this proxy to Via.
pub fn append_via(headers: &mut HeaderMap) {
    headers.append(header::VIA, HeaderValue::from_static(VIA));
}

/// Whether the request carries a cookie with one of `names`.
pub fn has_cookie(headers: &HeaderMap, names: &[String]) -> bool {
    if names.is_empty() {
        return false;
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.split_once('=').map(|(name, _)| name.trim()))
        .any(|name| names.iter().any(|wanted| wanted == name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_and_connection_named_fields() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", "close, x-secret".parse().unwrap());
        headers.insert("x-secret", "1".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("accept", "text/html".parse().unwrap());
        let out = forward_request(
            &headers,
            &Peer::new("10.0.0.9:5000".parse().unwrap()),
            Some(&HeaderValue::from_static("example.com")),
            |_| false,
        );
        assert!(out.get("x-secret").is_none() && out.get("keep-alive").is_none());
        assert_eq!(out["accept"], "text/html");
        assert_eq!(out["x-forwarded-for"], "10.0.0.9");
        assert_eq!(out["x-forwarded-host"], "example.com");
        assert_eq!(out["via"], VIA);
    }

    #[test]
    fn extends_forwarded_for_from_every_field_and_removes_what_the_caller_asks() {
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", "203.0.113.7".parse().unwrap());
        headers.append("x-forwarded-for", "198.51.100.2, 10.0.0.1".parse().unwrap());
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        headers.insert("range", "bytes=0-10".parse().unwrap());
        let out = forward_request(
            &headers,
            &Peer::new("10.0.0.9:5000".parse().unwrap()),
            None,
            |name| name == header::RANGE,
        );
        let forwarded_for: Vec<_> = out.get_all("x-forwarded-for").iter().collect();
        assert_eq!(
            forwarded_for,
            ["203.0.113.7, 198.51.100.2, 10.0.0.1, 10.0.0.9"]
        );
        assert_eq!(out["x-forwarded-proto"], "https");
        assert!(out.get("range").is_none() && out.get("x-forwarded-host").is_none());
    }

    #[test]
    fn finds_bypass_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "cookie",
            "theme=dark; leanstack_session=abc".parse().unwrap(),
        );
        assert!(has_cookie(&headers, &["leanstack_session".into()]));
        assert!(!has_cookie(&headers, &["other".into()]));
    }
}
