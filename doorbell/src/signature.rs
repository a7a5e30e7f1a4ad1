//! Twilio's request signature, `X-Twilio-Signature`.
//!
//! Twilio signs each webhook with HMAC-SHA1 keyed by the account's auth token, over the full URL
//! it requested followed by every POST parameter's name and value, sorted by name (a repeated name
//! in the order of its values), and sends the MAC in base64. The URL is the public one: the service
//! sits behind the proxy, so it is rebuilt from the configured public base URL and the request's
//! path and query. As Twilio's own libraries do, the URL is accepted with and without the scheme's
//! default port, because load balancers and Twilio disagree on whether `:443` is written.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// The header Twilio puts the signature in.
pub const HEADER: &str = "X-Twilio-Signature";

/// The signature Twilio would send for a POST of `params` to `url`.
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut mac =
        Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes keys of any size");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `signature` is Twilio's for this request, comparing in constant time.
pub fn is_valid(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    if auth_token.is_empty() {
        return false;
    }
    let mut variants = vec![url.to_owned()];
    variants.extend(with_other_port_form(url));
    // Every variant is checked, so the time taken does not say which one matched.
    variants.iter().fold(false, |matched, candidate| {
        let expected = sign(auth_token, candidate, params);
        let equal: bool = expected.as_bytes().ct_eq(signature.as_bytes()).into();
        matched | equal
    })
}

/// `url` with its default port written out if it had none, or removed if it had it.
fn with_other_port_form(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    // The port is after the last colon, unless that colon is inside an IPv6 literal `[..]`.
    let port_colon = authority
        .rfind(':')
        .filter(|&colon| !authority[colon..].contains(']'));
    let authority = match port_colon {
        Some(colon) if &authority[colon + 1..] == default_port => authority[..colon].to_owned(),
        Some(_) => return None,
        None => format!("{authority}:{default_port}"),
    };
    Some(format!("{scheme}://{authority}{tail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    /// The example of Twilio's security documentation, also in its helper libraries' tests.
    #[test]
    fn matches_twilios_documented_example() {
        let params = pairs(&[
            ("Digits", "1234"),
            ("To", "+18005551212"),
            ("From", "+14158675309"),
            ("Caller", "+14158675309"),
            ("CallSid", "CA1234567890ABCDE"),
        ]);
        let expected = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
        assert_eq!(sign("12345", URL, &params), expected);
        assert!(is_valid("12345", URL, &params, expected));
        assert!(!is_valid(
            "12345",
            URL,
            &params,
            &expected[..expected.len() - 1]
        ));
        assert!(!is_valid("54321", URL, &params, expected));
        let tampered = pairs(&[("Digits", "9999")]);
        assert!(!is_valid("12345", URL, &tampered, expected));
    }

    /// The vector of Twilio's helper libraries for a repeated parameter name.
    #[test]
    fn repeated_names_are_signed_in_value_order() {
        let params = pairs(&[
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
            ("Digits", "1234"),
        ]);
        assert_eq!(sign("12345", URL, &params), "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
    }

    #[test]
    fn accepts_the_url_with_and_without_the_default_port() {
        let params = pairs(&[("CallSid", "CA1")]);
        let with_port = sign("t", "https://door.example.com:443/twilio/voice", &params);
        let without = sign("t", "https://door.example.com/twilio/voice", &params);
        assert!(is_valid(
            "t",
            "https://door.example.com/twilio/voice",
            &params,
            &with_port
        ));
        assert!(is_valid(
            "t",
            "https://door.example.com:443/twilio/voice",
            &params,
            &without
        ));
        // Another port is another URL.
        let other = sign("t", "https://door.example.com:8443/twilio/voice", &params);
        assert!(!is_valid(
            "t",
            "https://door.example.com/twilio/voice",
            &params,
            &other
        ));
    }

    #[test]
    fn port_forms() {
        assert_eq!(
            with_other_port_form("http://h/x?y").as_deref(),
            Some("http://h:80/x?y")
        );
        assert_eq!(
            with_other_port_form("https://[::1]:443/x").as_deref(),
            Some("https://[::1]/x")
        );
        assert_eq!(
            with_other_port_form("https://[::1]").as_deref(),
            Some("https://[::1]:443")
        );
        assert_eq!(with_other_port_form("https://h:8443/x"), None);
    }

    #[test]
    fn an_empty_token_validates_nothing() {
        let params = pairs(&[("CallSid", "CA1")]);
        assert!(!is_valid(
            "",
            "https://h/",
            &params,
            &sign("", "https://h/", &params)
        ));
    }
}
