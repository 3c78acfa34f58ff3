//! Browser-facing hardening on every response, CORS, and credentials kept out of traces.
//!
//! - `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`,
//!   a `Permissions-Policy` that denies powerful features, and a `Content-Security-Policy`: the
//!   configurable UI policy on UI pages (`/`, `/admin`, assets), `default-src 'none'` on
//!   everything else (JSON and event streams never need to load anything).
//! - `Strict-Transport-Security` only when `security.hsts = true` (Gatehouse behind HTTPS):
//!   sent over plain HTTP it would be ignored at best and lock users out at worst.
//! - CORS only for the configured origins (none by default: browsers get no cross-origin access).
//! - `Authorization`, `x-api-key`, `Cookie`, `Set-Cookie` and `Proxy-Authorization` are marked
//!   sensitive, so the trace layer (and any `Debug` of the headers) prints them as `Sensitive`.

use std::time::Duration;

use http::header::{
    AUTHORIZATION, CONTENT_SECURITY_POLICY, COOKIE, PROXY_AUTHORIZATION, REFERRER_POLICY,
    SET_COOKIE, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::access::SecurityConfig;

const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";
const PERMISSIONS: &str = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), \
     interest-cohort=()";
/// The chat records voice messages and dictates: the microphone, for this origin only.
const UI_PERMISSIONS: &str = "camera=(), microphone=(self), geolocation=(), payment=(), \
     usb=(), interest-cohort=()";

/// Header values computed once from the configuration.
pub struct SecurityHeaders {
    ui_csp: HeaderValue,
    hsts: Option<HeaderValue>,
}

impl SecurityHeaders {
    pub fn new(cfg: &SecurityConfig) -> SecurityHeaders {
        SecurityHeaders {
            ui_csp: HeaderValue::from_str(&cfg.ui_csp)
                .unwrap_or_else(|_| HeaderValue::from_static(API_CSP)),
            hsts: cfg.hsts_max_age.and_then(|age| {
                HeaderValue::from_str(&format!("max-age={age}; includeSubDomains")).ok()
            }),
        }
    }
}

const PERMISSIONS_POLICY: HeaderName = HeaderName::from_static("permissions-policy");

impl SecurityHeaders {
    /// Sets the hardening headers on a response; `ui` for the web UI's pages and assets.
    pub fn apply(&self, ui: bool, h: &mut HeaderMap) {
        h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        h.insert(
            PERMISSIONS_POLICY,
            HeaderValue::from_static(if ui { UI_PERMISSIONS } else { PERMISSIONS }),
        );
        h.insert(
            CONTENT_SECURITY_POLICY,
            if ui {
                self.ui_csp.clone()
            } else {
                HeaderValue::from_static(API_CSP)
            },
        );
        if let Some(v) = &self.hsts {
            h.insert(STRICT_TRANSPORT_SECURITY, v.clone());
        }
    }
}

/// The CORS layer for the configured origins, if any.
pub fn cors(cfg: &SecurityConfig) -> Option<CorsLayer> {
    if cfg.cors_allowed_origins.is_empty() {
        return None;
    }
    let origin = if cfg.cors_allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            cfg.cors_allowed_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    let exposed = [
        "x-request-id",
        "retry-after",
        "x-should-retry",
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
    ]
    .map(HeaderName::from_static);
    Some(
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
            .allow_headers([
                AUTHORIZATION,
                http::header::CONTENT_TYPE,
                HeaderName::from_static("x-api-key"),
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("x-gatehouse-user"),
                HeaderName::from_static("x-gatehouse-priority"),
            ])
            .expose_headers(exposed)
            .allow_credentials(cfg.cors_allow_credentials)
            .max_age(cfg.cors_max_age.max(Duration::ZERO)),
    )
}

/// Headers never printed by traces or `Debug`.
pub fn sensitive_headers() -> [HeaderName; 5] {
    [
        AUTHORIZATION,
        HeaderName::from_static("x-api-key"),
        COOKIE,
        SET_COOKIE,
        PROXY_AUTHORIZATION,
    ]
}
