//! Header rules for an intermediary: hop-by-hop fields removed (RFC 9110 §7.6.1), Via added
//! (§7.6.3), and the de-facto X-Forwarded-* fields that tell the backend who asked.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue, header};

/// This proxy's entry in Via.
pub const VIA: &str = "1.1 leanstack-proxy";

pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Fields that describe one connection, never forwarded. Names, not strings: removing by a
/// string would parse it into a name again on every request.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes the hop-by-hop fields, including those the Connection field names.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The headers to send a backend for a client's request from `peer`, made from the client's.
pub fn forward_request(mut headers: HeaderMap, peer: IpAddr, host: Option<&str>) -> HeaderMap {
    remove_hop_by_hop(&mut headers);
    let forwarded_for = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(earlier) => format!("{earlier}, {peer}"),
        None => peer.to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert(X_FORWARDED_FOR, value);
    }
    // A TLS terminator in front of this proxy has already said what the client used.
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    if let Some(host) = host.and_then(|h| HeaderValue::from_str(h).ok())
        && !headers.contains_key(&X_FORWARDED_HOST)
    {
        headers.insert(X_FORWARDED_HOST, host);
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
        let out = forward_request(headers, "10.0.0.9".parse().unwrap(), Some("example.com"));
        assert!(out.get("x-secret").is_none() && out.get("keep-alive").is_none());
        assert_eq!(out["accept"], "text/html");
        assert_eq!(out["x-forwarded-for"], "10.0.0.9");
        assert_eq!(out["x-forwarded-host"], "example.com");
        assert_eq!(out["via"], VIA);
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
