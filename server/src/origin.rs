//! Which web pages may drive this server from a browser. A browser sends
//! `Origin` (and `Sec-Fetch-Site`) with every state-changing request and every
//! WebSocket upgrade; a page from another site must not be able to delete a
//! room with the visitor's cookie, or open a socket in the visitor's name.
//!
//! Allowed: the server's own origin (the `--public-url`, or the `Host` the
//! request names, over http or https) and every `--allowed-origin`. Requests
//! without either header come from programs, not from pages on other sites
//! (the native app, bots, curl), and pass: forms still carry a CSRF token.

use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};

use crate::Config;

/// Refuses a request a browser made on behalf of a page from another origin;
/// the error says what was refused and what the operator can do.
pub fn check(headers: &HeaderMap, config: &Config) -> Result<(), String> {
    let origin = headers.get(ORIGIN).and_then(|v| v.to_str().ok());
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    match origin {
        Some(origin) => {
            if is_allowed(origin, headers, config) {
                Ok(())
            } else {
                Err(format!(
                    "requests from pages at {} are refused: only this server's own pages may \
                     do this (an operator can allow another origin with --allowed-origin)",
                    origin.chars().take(100).collect::<String>()
                ))
            }
        }
        // A browser that sends no Origin but says the request is cross-site.
        None if matches!(fetch_site, Some("cross-site" | "same-site")) => {
            Err("cross-site requests are refused: only this server's own pages may do this".into())
        }
        None => Ok(()),
    }
}

fn is_allowed(origin: &str, headers: &HeaderMap, config: &Config) -> bool {
    let origin = origin.trim_end_matches('/');
    if config
        .allowed_origins
        .iter()
        .any(|allowed| allowed.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    if let Some(public) = config.public_url.as_deref().and_then(origin_of) {
        return public.eq_ignore_ascii_case(origin);
    }
    let Some(host) = headers.get(HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    ["http://", "https://"].iter().any(|scheme| {
        origin
            .strip_prefix(scheme)
            .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
    })
}

/// `scheme://host[:port]` of a URL, without path, query or trailing slash.
pub fn origin_of(url: &str) -> Option<&str> {
    let scheme_end = url.find("://")?;
    let rest = &url[scheme_end + 3..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    (end > 0).then(|| &url[..scheme_end + 3 + end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn own_and_allowed_origins_pass_others_are_refused() {
        let mut config = Config::for_tests("/tmp/unused");
        let own = headers(&[
            ("host", "127.0.0.1:4000"),
            ("origin", "http://127.0.0.1:4000"),
        ]);
        assert!(check(&own, &config).is_ok());
        let evil = headers(&[
            ("host", "127.0.0.1:4000"),
            ("origin", "https://evil.example"),
        ]);
        assert!(check(&evil, &config).unwrap_err().contains("evil.example"));
        let null = headers(&[("host", "127.0.0.1:4000"), ("origin", "null")]);
        assert!(check(&null, &config).is_err());
        let program = headers(&[("host", "127.0.0.1:4000")]);
        assert!(check(&program, &config).is_ok(), "no Origin: not a page");
        let cross = headers(&[("host", "127.0.0.1:4000"), ("sec-fetch-site", "cross-site")]);
        assert!(check(&cross, &config).is_err());

        config.allowed_origins = vec!["https://evil.example/".into()];
        assert!(check(&evil, &config).is_ok(), "named by the operator");

        config.public_url = Some("https://rooms.example.org/base".into());
        let public = headers(&[
            ("host", "10.0.0.5:4000"),
            ("origin", "https://rooms.example.org"),
        ]);
        assert!(check(&public, &config).is_ok());
        assert!(
            check(&own, &config).is_err(),
            "the public URL is the origin now"
        );
    }

    #[test]
    fn origins_of_urls() {
        assert_eq!(
            origin_of("https://a.example:8443/x?y"),
            Some("https://a.example:8443")
        );
        assert_eq!(origin_of("http://a.example"), Some("http://a.example"));
        assert_eq!(origin_of("a.example"), None);
    }
}
