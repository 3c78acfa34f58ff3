//! Who is calling. `Principal` is what the rest of the request path knows about the caller;
//! `AdminAuth` guards the admin API with the `GATEHOUSE_ADMIN_KEY` credential, or the admin
//! console's session cookie ([`session`]).

pub mod session;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::request::Parts;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::access::Priority;
use crate::access::headers::LimitSlot;
use crate::access::keys::ApiKey;
use crate::app::AppState;
use crate::error::{ApiError, ErrorCode};

/// The caller of a request, as the access layer established it. In open mode (no key ever
/// created, loopback listener) every caller is anonymous.
#[derive(Debug, Clone, Default)]
pub struct Principal {
    /// The API key's id, when the caller presented one.
    pub key_id: Option<i64>,
    pub key: Option<Arc<ApiKey>>,
    /// `x-gatehouse-user` (the request's `user` field is the fallback).
    pub end_user: Option<String>,
    /// `x-gatehouse-priority`; the key's own priority caps it.
    pub priority: Option<Priority>,
    pub ip: Option<std::net::IpAddr>,
    /// Admission leaves the rate-limit headers here.
    pub limits: Arc<LimitSlot>,
}

impl Principal {
    pub fn anonymous() -> Principal {
        Principal::default()
    }
}

/// Compare two secrets in time independent of where they differ: both are hashed first, so
/// the comparison also does not depend on their lengths.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    let ha = Sha256::digest(a.as_bytes());
    let hb = Sha256::digest(b.as_bytes());
    ha.ct_eq(&hb).into()
}

/// The bearer token (or `x-api-key`) of a request, if any.
pub fn presented_key(parts: &Parts) -> Option<&str> {
    presented_key_in(&parts.headers)
}

/// [`presented_key`] from the headers alone.
pub fn presented_key_in(headers: &http::HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
            return Some(v[7..].trim());
        }
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Extractor for admin routes: the request must carry the admin key, or a valid admin session
/// cookie (plus the CSRF token for writes). Fails closed: with no admin key configured the
/// admin API answers 403 and says what to set.
pub struct AdminAuth;

impl AdminAuth {
    /// The bearer admin key check alone.
    pub fn check_key(parts: &Parts, state: &AppState) -> Result<AdminAuth, ApiError> {
        let Some(admin) = state.config.admin_key.as_ref() else {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "The admin API is disabled: set GATEHOUSE_ADMIN_KEY to enable it",
            ));
        };
        match presented_key(parts) {
            Some(k) if secrets_equal(k, admin.expose_secret()) => Ok(AdminAuth),
            Some(_) => Err(ApiError::new(ErrorCode::Unauthorized, "Invalid admin key")),
            None => Err(ApiError::new(
                ErrorCode::Unauthorized,
                "Missing admin key (Authorization: Bearer …)",
            )),
        }
    }
}

impl FromRequestParts<Arc<AppState>> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        if state.config.admin_key.is_some() && presented_key(parts).is_none() {
            return session::authenticate(parts, state).map(|_| AdminAuth);
        }
        AdminAuth::check_key(parts, state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_comparison() {
        assert!(secrets_equal("abc", "abc"));
        assert!(!secrets_equal("abc", "abd"));
        assert!(!secrets_equal("abc", "abcd"));
        assert!(!secrets_equal("", "a"));
    }
}
