//! Admin console sessions. Signing in with the admin key (`POST /admin/api/session`) sets an
//! `HttpOnly`, `SameSite=Strict` cookie scoped to `/admin` holding `v1.<id>.<expires ms>` signed
//! with a key derived from the session secret *and* the admin key (changing the admin key signs
//! everyone out). The expiry is checked on the server; signing out revokes the id until it
//! would have expired (per instance; the cookie is cleared too).
//!
//! Cookie-authenticated writes need the session's CSRF token in `x-csrf-token` (handed out at
//! sign-in and by `GET /admin/api/session`; other sites can neither read it nor send custom
//! headers without a CORS preflight) and, when the browser says where it comes from, a
//! same-origin `Origin`. Requests with the bearer admin key need neither.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{presented_key, secrets_equal};
use crate::app::AppState;
use crate::config::Config;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::extract::ValidJson;
use crate::usage::now_ms;
use crate::web::cookies;
use crate::web::signing::{Purpose, Signer, random_id};

pub const COOKIE: &str = "gh_admin";
pub const CSRF_HEADER: &str = "x-csrf-token";
const COOKIE_PATH: &str = "/admin";

/// Issues and checks admin sessions.
pub struct AdminSessions {
    /// `None` when no admin key is configured (the admin API is off).
    session: Option<Signer>,
    csrf: Option<Signer>,
    ttl_ms: i64,
    /// Signed-out session ids → their expiry (ms), pruned as they expire.
    revoked: Mutex<HashMap<String, i64>>,
}

/// A valid session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSession {
    pub id: String,
    pub expires_ms: i64,
}

impl AdminSessions {
    pub fn new(root: &[u8], config: &Config) -> AdminSessions {
        let key = config
            .admin_key
            .as_ref()
            .map(|k| k.expose_secret().as_bytes());
        AdminSessions {
            session: key.map(|k| Signer::new(root, Purpose::AdminSession, k)),
            csrf: key.map(|k| Signer::new(root, Purpose::Csrf, k)),
            ttl_ms: i64::try_from(config.web.admin_session_ttl.as_millis()).unwrap_or(i64::MAX),
            revoked: Mutex::new(HashMap::new()),
        }
    }

    /// A new session: (cookie value, session).
    pub fn issue(&self, now: i64) -> Option<(String, AdminSession)> {
        let signer = self.session.as_ref()?;
        let s = AdminSession {
            id: random_id(),
            expires_ms: now.saturating_add(self.ttl_ms),
        };
        Some((signer.sign(&format!("v1.{}.{}", s.id, s.expires_ms)), s))
    }

    /// The session of a cookie value: signed by this server for the current admin key, not
    /// expired and not signed out.
    pub fn check(&self, value: &str, now: i64) -> Option<AdminSession> {
        let payload = self.session.as_ref()?.verify(value)?;
        let mut parts = payload.split('.');
        let (Some("v1"), Some(id), Some(exp), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let expires_ms: i64 = exp.parse().ok()?;
        if expires_ms <= now {
            return None;
        }
        let revoked = self.revoked.lock().map_or(true, |r| r.contains_key(id));
        (!revoked).then(|| AdminSession {
            id: id.to_owned(),
            expires_ms,
        })
    }

    pub fn csrf_token(&self, session: &AdminSession) -> String {
        self.csrf
            .as_ref()
            .map(|s| s.sign(&session.id))
            .unwrap_or_default()
    }

    fn csrf_ok(&self, session: &AdminSession, token: &str) -> bool {
        self.csrf
            .as_ref()
            .and_then(|s| s.verify(token))
            .is_some_and(|id| secrets_equal(id, &session.id))
    }

    pub fn revoke(&self, session: &AdminSession, now: i64) {
        if let Ok(mut r) = self.revoked.lock() {
            r.retain(|_, exp| *exp > now);
            r.insert(session.id.clone(), session.expires_ms);
        }
    }
}

/// Whether the request carries a valid (signed, unexpired, not signed-out) console session.
pub fn has_valid_session(headers: &HeaderMap, state: &AppState) -> bool {
    cookies::get(headers, COOKIE).is_some_and(|v| state.web.admin.check(v, now_ms()).is_some())
}

/// The `AdminAuth` path for requests without a bearer key: a valid session cookie, and for
/// writes the CSRF token and a same-origin request.
pub fn authenticate(parts: &Parts, state: &AppState) -> Result<AdminSession, ApiError> {
    let sessions = &state.web.admin;
    let Some(value) = cookies::get(&parts.headers, COOKIE) else {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "Missing admin key (Authorization: Bearer …) or admin session: sign in at /admin",
        ));
    };
    let session = sessions.check(value, now_ms()).ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unauthorized,
            "The admin session has expired or was signed out: sign in again",
        )
    })?;
    check_write(&parts.method, &parts.headers, sessions, &session)?;
    Ok(session)
}

fn check_write(
    method: &Method,
    headers: &HeaderMap,
    sessions: &AdminSessions,
    session: &AdminSession,
) -> Result<(), ApiError> {
    cookies::same_origin(method, headers)
        .map_err(|e| ApiError::new(ErrorCode::Forbidden, e.message()))?;
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let token = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    match token {
        Some(t) if sessions.csrf_ok(session, t) => Ok(()),
        Some(_) => Err(ApiError::new(
            ErrorCode::Forbidden,
            "CSRF check failed: the x-csrf-token header does not belong to this session",
        )),
        None => Err(ApiError::new(
            ErrorCode::Forbidden,
            "CSRF check failed: cookie-authenticated writes need the x-csrf-token header",
        )),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// The admin key (`GATEHOUSE_ADMIN_KEY`).
    pub key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub signed_in: bool,
    /// `session` (cookie) or `key` (bearer admin key).
    pub via: &'static str,
    /// Unix ms; absent for the bearer key.
    pub expires_at_ms: Option<i64>,
    /// Send it as `x-csrf-token` with every cookie-authenticated write.
    pub csrf_token: Option<String>,
}

fn disabled() -> ApiError {
    ApiError::new(
        ErrorCode::Forbidden,
        "The admin API is disabled: set GATEHOUSE_ADMIN_KEY to enable it",
    )
}

/// Signs in with the admin key: sets the session cookie and returns the CSRF token.
#[utoipa::path(post, path = "/admin/api/session", tag = "admin", request_body = SignIn,
    responses((status = 200, body = SessionView, description = "Signed in; `Set-Cookie: gh_admin=…; HttpOnly; SameSite=Strict`"),
        (status = 401, body = ErrorBody), (status = 403, description = "Admin API disabled, or a cross-origin request", body = ErrorBody)))]
pub async fn sign_in(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ValidJson(body): ValidJson<SignIn>,
) -> Result<Response, ApiError> {
    let Some(admin) = state.config.admin_key.as_ref() else {
        return Err(disabled());
    };
    // Login CSRF: another site must not sign a browser into this console.
    cookies::same_origin(&Method::POST, &headers)
        .map_err(|e| ApiError::new(ErrorCode::Forbidden, e.message()))?;
    if !secrets_equal(body.key.trim(), admin.expose_secret()) {
        return Err(ApiError::new(ErrorCode::Unauthorized, "Invalid admin key"));
    }
    let sessions = &state.web.admin;
    let (value, session) = sessions.issue(now_ms()).ok_or_else(disabled)?;
    let view = SessionView {
        signed_in: true,
        via: "session",
        expires_at_ms: Some(session.expires_ms),
        csrf_token: Some(sessions.csrf_token(&session)),
    };
    let mut resp = Json(view).into_response();
    let secure = cookies::secure(&state.config, &headers);
    if let Some(v) = cookies::set_cookie(
        COOKIE,
        &value,
        COOKIE_PATH,
        state.config.web.admin_session_ttl,
        secure,
    ) {
        resp.headers_mut().insert(http::header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// The current session (cookie or bearer key) and its CSRF token.
#[utoipa::path(get, path = "/admin/api/session", tag = "admin",
    responses((status = 200, body = SessionView), (status = 401, body = ErrorBody)))]
pub async fn current(
    State(state): State<Arc<AppState>>,
    parts: Parts,
) -> Result<Json<SessionView>, ApiError> {
    if state.config.admin_key.is_none() {
        return Err(disabled());
    }
    if presented_key(&parts).is_some() {
        super::AdminAuth::check_key(&parts, &state)?;
        return Ok(Json(SessionView {
            signed_in: true,
            via: "key",
            expires_at_ms: None,
            csrf_token: None,
        }));
    }
    let session = authenticate(&parts, &state)?;
    Ok(Json(SessionView {
        signed_in: true,
        via: "session",
        expires_at_ms: Some(session.expires_ms),
        csrf_token: Some(state.web.admin.csrf_token(&session)),
    }))
}

/// Signs out: the session id is revoked and the cookie cleared.
#[utoipa::path(delete, path = "/admin/api/session", tag = "admin",
    responses((status = 204, description = "Signed out"), (status = 401, body = ErrorBody), (status = 403, description = "CSRF check failed", body = ErrorBody)))]
pub async fn sign_out(
    State(state): State<Arc<AppState>>,
    parts: Parts,
) -> Result<Response, ApiError> {
    if state.config.admin_key.is_none() {
        return Err(disabled());
    }
    let session = authenticate(&parts, &state)?;
    state.web.admin.revoke(&session, now_ms());
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let secure = cookies::secure(&state.config, &parts.headers);
    if let Some(v) = cookies::set_cookie(COOKIE, "", COOKIE_PATH, std::time::Duration::ZERO, secure)
    {
        resp.headers_mut().insert(http::header::SET_COOKIE, v);
    }
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(ttl_ms: i64) -> AdminSessions {
        AdminSessions {
            session: Some(Signer::new(b"root", Purpose::AdminSession, b"admin")),
            csrf: Some(Signer::new(b"root", Purpose::Csrf, b"admin")),
            ttl_ms,
            revoked: Mutex::new(HashMap::new()),
        }
    }

    #[test]
    fn sessions_expire_on_the_server_and_can_be_revoked() {
        let s = sessions(1_000);
        let (value, session) = s.issue(10_000).unwrap();
        assert_eq!(session.expires_ms, 11_000);
        assert_eq!(s.check(&value, 10_999), Some(session.clone()));
        // Bad input: the same cookie one millisecond after its expiry.
        assert_eq!(s.check(&value, 11_000), None);
        // Bad input: a cookie whose expiry was pushed out by hand (the signature breaks).
        let forged = value.replacen("11000", "99000", 1);
        assert_eq!(s.check(&forged, 10_500), None);
        s.revoke(&session, 10_500);
        // Bad input: a signed-out session.
        assert_eq!(s.check(&value, 10_600), None);
    }

    #[test]
    fn csrf_tokens_belong_to_one_session() {
        let s = sessions(60_000);
        let (_, a) = s.issue(0).unwrap();
        let (_, b) = s.issue(0).unwrap();
        let ta = s.csrf_token(&a);
        assert!(s.csrf_ok(&a, &ta));
        // Bad input: session B presenting A's token; an empty token; a session signature.
        assert!(!s.csrf_ok(&b, &ta));
        assert!(!s.csrf_ok(&a, ""));
        let (cookie, _) = s.issue(0).unwrap();
        assert!(!s.csrf_ok(&a, &cookie));
    }

    #[test]
    fn writes_need_the_token_reads_do_not() {
        let s = sessions(60_000);
        let (_, session) = s.issue(0).unwrap();
        let mut h = HeaderMap::new();
        assert!(check_write(&Method::GET, &h, &s, &session).is_ok());
        // Bad input: a POST without the token.
        let e = check_write(&Method::POST, &h, &s, &session).unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden);
        h.insert(
            CSRF_HEADER,
            HeaderValue::from_str(&s.csrf_token(&session)).unwrap(),
        );
        assert!(check_write(&Method::DELETE, &h, &s, &session).is_ok());
        // Bad input: the right token from another origin.
        h.insert("host", HeaderValue::from_static("gate.example"));
        h.insert("origin", HeaderValue::from_static("https://evil.example"));
        assert!(check_write(&Method::PUT, &h, &s, &session).is_err());
    }
}
