//! Reading the `Cookie` header and writing `Set-Cookie` for the UI's sessions: always
//! `HttpOnly` and `SameSite=Strict`, `Secure` when configured or behind an HTTPS proxy — and
//! the same-origin check that guards cookie-authenticated writes against cross-site requests.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method};

use crate::config::Config;

/// The value of cookie `name`, from any `Cookie` header of the request.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Whether cookies set on this response should be `Secure`.
pub fn secure(config: &Config, headers: &HeaderMap) -> bool {
    config.web.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value; `max_age` zero clears the cookie.
pub fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: Duration,
    secure: bool,
) -> Option<HeaderValue> {
    let mut s = format!(
        "{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Strict",
        max_age.as_secs()
    );
    if secure {
        s.push_str("; Secure");
    }
    HeaderValue::from_str(&s).ok()
}

/// Why a cookie-authenticated write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrossSite {
    /// `Origin` names another origin than the `Host` the request was sent to.
    Origin,
    /// `Sec-Fetch-Site` says the request came from another site.
    FetchSite,
}

impl CrossSite {
    pub fn message(self) -> &'static str {
        match self {
            CrossSite::Origin => {
                "Cross-origin request refused: the Origin header does not match this server"
            }
            CrossSite::FetchSite => "Cross-site request refused (Sec-Fetch-Site)",
        }
    }
}

/// Methods that change state need a same-origin request. Browsers send `Origin` on every
/// cross-origin request and on every POST/PUT/DELETE; requests without it (curl, SDKs) carry no
/// ambient cookie of a victim, so they pass this check (and still need a valid session).
pub fn same_origin(method: &Method, headers: &HeaderMap) -> Result<(), CrossSite> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(CrossSite::FetchSite);
    }
    let Some(origin) = headers.get(http::header::ORIGIN) else {
        return Ok(());
    };
    let host = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, h)| h);
    match origin_host {
        Some(h) if !host.is_empty() && h.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(CrossSite::Origin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn cookies_are_found_in_any_header() {
        let h = headers(&[("cookie", "a=1; gh_chat=xyz"), ("cookie", "b=2")]);
        assert_eq!(get(&h, "gh_chat"), Some("xyz"));
        assert_eq!(get(&h, "b"), Some("2"));
        assert_eq!(get(&h, "gh"), None);
    }

    #[test]
    fn set_cookie_flags() {
        let v = set_cookie("gh_admin", "t", "/admin", Duration::from_secs(60), true).unwrap();
        assert_eq!(
            v.to_str().unwrap(),
            "gh_admin=t; Path=/admin; Max-Age=60; HttpOnly; SameSite=Strict; Secure"
        );
    }

    #[test]
    fn writes_must_be_same_origin() {
        let post = Method::POST;
        let host = ("host", "127.0.0.1:8080");
        assert_eq!(
            same_origin(
                &post,
                &headers(&[host, ("origin", "http://127.0.0.1:8080")])
            ),
            Ok(())
        );
        // Bad input: another origin, another port, a missing Host, an opaque origin.
        for origin in ["https://evil.example", "http://127.0.0.1:9999", "null"] {
            assert_eq!(
                same_origin(&post, &headers(&[host, ("origin", origin)])),
                Err(CrossSite::Origin),
                "{origin}"
            );
        }
        assert_eq!(
            same_origin(&post, &headers(&[("origin", "http://127.0.0.1:8080")])),
            Err(CrossSite::Origin)
        );
        // Bad input: the browser says the request is cross-site.
        assert_eq!(
            same_origin(&post, &headers(&[host, ("sec-fetch-site", "cross-site")])),
            Err(CrossSite::FetchSite)
        );
        // Reads are never refused; requests without Origin pass (no browser involved).
        assert_eq!(
            same_origin(
                &Method::GET,
                &headers(&[host, ("origin", "https://evil.example")])
            ),
            Ok(())
        );
        assert_eq!(same_origin(&post, &headers(&[host])), Ok(()));
    }
}
