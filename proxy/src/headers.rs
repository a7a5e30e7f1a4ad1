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
/// string would parse it into a name again on every request; and a static, as a `const` array
/// would be built and dropped at every use.
static HOP_BY_HOP: [HeaderName; 7] = [
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
    // Only names of fields that are there: the usual tokens ("close", "keep-alive") name
    // none, and are not made into names, which would allocate.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|token| {
            !HOP_BY_HOP
                .iter()
                .any(|name| name.as_str().eq_ignore_ascii_case(token))
                && headers.contains_key(*token)
        })
        .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    remove_all(headers, &HOP_BY_HOP);
}

/// Removes every field of `names`. A message holds a handful of fields and usually none of
/// these: looking through the names present costs a few comparisons, where each removal hashes
/// its name, so only what is there is removed (this runs several times per proxied request).
pub fn remove_all(headers: &mut HeaderMap, names: &[HeaderName]) {
    for name in names {
        if headers.keys().any(|present| present == name) {
            headers.remove(name);
        }
    }
}

/// The headers to send a backend for a client's request from `peer`, made from the client's.
pub fn forward_request(mut headers: HeaderMap, peer: IpAddr, host: Option<&str>) -> HeaderMap {
    remove_hop_by_hop(&mut headers);
    let forwarded_for = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(earlier) => HeaderValue::from_str(&format!("{earlier}, {peer}")).ok(),
        None => Some(ip_value(peer)),
    };
    if let Some(value) = forwarded_for {
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

/// `ip` as a header value. An IPv4 address is written by hand: through `Display` it cost more
/// than all the rest of [`forward_request`], on every request.
fn ip_value(ip: IpAddr) -> HeaderValue {
    let IpAddr::V4(v4) = ip else {
        return HeaderValue::try_from(ip.to_string())
            .expect("an IP address is a valid header value");
    };
    let mut text = Vec::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push(b'.');
        }
        if octet >= 100 {
            text.push(b'0' + octet / 100);
        }
        if octet >= 10 {
            text.push(b'0' + octet / 10 % 10);
        }
        text.push(b'0' + octet % 10);
    }
    HeaderValue::from_maybe_shared(bytes::Bytes::from(text))
        .expect("digits and dots are a valid header value")
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
    fn writes_addresses_as_display_does() {
        for ip in [
            "0.0.0.0",
            "9.10.99.100",
            "127.0.0.1",
            "255.255.255.255",
            "192.168.1.20",
            "::1",
            "2001:db8::8a2e:370:7334",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_value(ip), ip.to_string().as_str());
        }
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
