//! The access layer: classifies every request by path, authenticates everything outside the
//! explicit allowlist (so a new route cannot skip authentication), rate limits the admin API per
//! client IP, hands handlers a [`Principal`], and writes the `x-ratelimit-*` headers from what
//! admission decided. Failures are audited; presented keys never reach a log line.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue};

use super::headers::{LimitInfo, LimitSlot, Triple, limit_info};
use super::keys::{AuthFailure, visible_prefix};
use super::metrics::{ReasonLabel, ScopeLabel};
use super::plan::{Bucket, Dim, Plan, Scope, Verdict};
use super::{Priority, gcra};
use crate::app::{AppState, RequestId};
use crate::audit;
use crate::auth::{Principal, presented_key_in};
use crate::error::{ApiError, ErrorCode, ErrorMarker};
use crate::usage::now_ms;

/// How a path is guarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// Probes and documents: no credential.
    Ops,
    /// `/admin/api/…`: the admin credential (`AdminAuth` in each handler), rate limited per IP.
    Admin,
    /// The web UI's pages (`/`, `/admin`, static assets): public documents; what they call
    /// is authenticated.
    Ui,
    /// `/web/api/…`: the web chat's API. Its caller is the browser's signed session cookie,
    /// checked by `WebUser` in every handler (with the per-user and per-IP limits of
    /// [`super::public`]), so no API key is asked for here.
    Web,
    /// Everything else, unknown paths included: an API key (unless in open mode).
    Api,
}

/// The allowlist. A route that is not named here needs an API key.
pub fn classify(path: &str) -> RouteClass {
    match path {
        "/health" | "/ready" | "/metrics" | "/openapi.json" => RouteClass::Ops,
        "/admin/api" => RouteClass::Admin,
        "/" | "/admin" | "/favicon.ico" => RouteClass::Ui,
        p if p.starts_with("/admin/api/") => RouteClass::Admin,
        p if p.starts_with("/admin/") || p.starts_with("/assets/") => RouteClass::Ui,
        p if p.starts_with("/web/api/") => RouteClass::Web,
        _ => RouteClass::Api,
    }
}

/// The client's address: the peer, or the first `X-Forwarded-For` hop when configured to
/// trust a proxy in front.
pub fn client_ip(req: &Request, trust_forwarded: bool) -> Option<IpAddr> {
    if trust_forwarded
        && let Some(ip) = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return Some(ip);
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

pub async fn access_layer(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let class = classify(req.uri().path());
    let access = &state.access;
    let ip = client_ip(&req, access.cfg.security.trust_forwarded_for);
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.id.to_string());
    match class {
        RouteClass::Ops | RouteClass::Ui | RouteClass::Web => next.run(req).await,
        // Boxed: the admin path's future is large, and every request's future would carry it.
        RouteClass::Admin => Box::pin(admin(&state, ip, request_id, req, next)).await,
        RouteClass::Api => {
            let principal = match authenticate(&state, ip, request_id.as_deref(), &req) {
                Ok(p) => p,
                Err(e) => return e.into_response(),
            };
            let slot = Arc::clone(&principal.limits);
            req.extensions_mut().insert(principal);
            let mut resp = next.run(req).await;
            if let Some(info) = slot.get() {
                write_headers(resp.headers_mut(), &info);
            }
            if let Some(alias) = slot.downgraded_from()
                && let Ok(v) = HeaderValue::from_str(&alias)
            {
                resp.headers_mut().insert("x-gatehouse-downgraded-from", v);
            }
            resp
        }
    }
}

fn header_text(req: &Request, name: &str) -> Result<Option<String>, ApiError> {
    let Some(v) = req.headers().get(name) else {
        return Ok(None);
    };
    let text = v
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 256 && !s.chars().any(char::is_control))
        .ok_or_else(|| {
            ApiError::invalid(
                name,
                format!("`{name}` must be 1 to 256 visible characters"),
            )
        })?;
    Ok(Some(text.to_owned()))
}

fn authenticate(
    state: &AppState,
    ip: Option<IpAddr>,
    request_id: Option<&str>,
    req: &Request,
) -> Result<Principal, ApiError> {
    let access = &state.access;
    let end_user = header_text(req, "x-gatehouse-user")?;
    let priority = header_text(req, "x-gatehouse-priority")?
        .map(|p| {
            p.parse::<Priority>()
                .map_err(|m| ApiError::invalid("x-gatehouse-priority", m))
        })
        .transpose()?;
    let mut principal = Principal {
        end_user,
        priority,
        ip,
        limits: Arc::new(LimitSlot::default()),
        ..Principal::default()
    };
    if access.open_mode() {
        return Ok(principal);
    }
    let presented = presented_key_in(req.headers());
    let failure = match presented {
        None => Some((None, "missing")),
        Some(k) => match access.keys.authenticate(k, now_ms()) {
            Ok(key) => {
                principal.key_id = Some(key.id);
                principal.key = Some(key);
                None
            }
            Err(f) => Some((visible_prefix(k).map(str::to_owned), f.as_str())),
        },
    };
    let Some((prefix, reason)) = failure else {
        return Ok(principal);
    };
    access
        .metrics
        .access
        .auth_failures
        .get_or_create(&ReasonLabel { reason })
        .inc();
    let ip_text = ip.map(|i| i.to_string());
    let mut e = audit::entry(
        format!("ip:{}", ip_text.as_deref().unwrap_or("unknown")),
        "auth.failure",
        prefix.map(|p| format!("prefix:{p}")),
        "denied",
    );
    e.ip = ip_text;
    e.request_id = request_id.map(str::to_owned);
    e.detail = Some(serde_json::json!({ "reason": reason, "path": req.uri().path() }).to_string());
    access.audit.record(e);
    let message = match reason {
        "missing" => "Missing API key: send it as `Authorization: Bearer <key>`",
        r if r == AuthFailure::Expired.as_str() => "The API key has expired",
        _ => "Invalid API key",
    };
    Err(ApiError::new(ErrorCode::Unauthorized, message))
}

async fn admin(
    state: &AppState,
    ip: Option<IpAddr>,
    request_id: Option<String>,
    req: Request,
    next: Next,
) -> Response {
    let access = &state.access;
    let rate = access.cfg.limits.admin;
    let ip_text = ip.map_or_else(|| "unknown".to_owned(), |i| i.to_string());
    let mut info = None;
    // A signed-in console session already proved it holds the admin key: the limit is there
    // to slow down guessing, not to throttle the console's screens.
    if rate.limit > 0 && !crate::auth::session::has_valid_session(req.headers(), state) {
        let plan = Plan {
            buckets: vec![Bucket {
                key: format!("rl:admin:{ip_text}"),
                dim: Dim::Requests,
                scope: Scope::Admin,
                limit: rate.limit,
                period: rate.period,
                cost: 1,
            }],
            ..Plan::default()
        };
        match access.run_plan(&plan).await {
            Ok((Verdict::Admitted { buckets, .. }, _)) => info = Some(limit_info(&plan, &buckets)),
            Ok((Verdict::RateLimited { retry_after, .. }, _)) => {
                access
                    .metrics
                    .access
                    .rate_limited
                    .get_or_create(&ScopeLabel { scope: "admin" })
                    .inc();
                let wait = retry_after.unwrap_or(rate.period);
                let mut e = audit::entry(
                    format!("ip:{ip_text}"),
                    "ratelimit.reject",
                    Some("admin".into()),
                    "denied",
                );
                e.ip = ip.map(|i| i.to_string());
                access.audit.record_sampled(&format!("admin|{ip_text}"), e);
                let mut resp = ApiError {
                    retry_after: Some(wait),
                    ..ApiError::new(
                        ErrorCode::RateLimited,
                        format!(
                            "Too many admin API requests from this address: {} per {} s. Try again in {}.",
                            rate.limit,
                            rate.period.as_secs(),
                            gcra::format_reset(gcra::micros(wait))
                        ),
                    )
                }
                .into_response();
                write_headers(
                    resp.headers_mut(),
                    &LimitInfo {
                        requests: Some(Triple {
                            limit: rate.limit,
                            remaining: 0,
                            reset_us: gcra::micros(wait),
                        }),
                        tokens: None,
                    },
                );
                return resp;
            }
            // Budgets are not involved; anything else means no limit applied.
            _ => {}
        }
    }
    let path = req.uri().path().to_owned();
    let mut resp = next.run(req).await;
    if let Some(i) = info {
        write_headers(resp.headers_mut(), &i);
    }
    let code = resp.extensions().get::<ErrorMarker>().map(|m| m.0);
    if matches!(code, Some(ErrorCode::Unauthorized | ErrorCode::Forbidden)) {
        access
            .metrics
            .access
            .auth_failures
            .get_or_create(&ReasonLabel { reason: "admin" })
            .inc();
        let mut e = audit::entry(
            format!("ip:{ip_text}"),
            "admin.auth_failure",
            Some(path),
            "denied",
        );
        e.ip = ip.map(|i| i.to_string());
        e.request_id = request_id;
        access.audit.record(e);
    }
    resp
}

/// `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` (OpenAI's names and formats).
pub fn write_headers(h: &mut HeaderMap, info: &LimitInfo) {
    for (dim, t) in [("requests", info.requests), ("tokens", info.tokens)] {
        let Some(t) = t else { continue };
        let reset = if t.reset_us == i64::MAX {
            "1m0s".to_owned()
        } else {
            gcra::format_reset(t.reset_us)
        };
        for (what, value) in [
            ("limit", t.limit.to_string()),
            ("remaining", t.remaining.to_string()),
            ("reset", reset),
        ] {
            if let (Ok(name), Ok(v)) = (
                http::HeaderName::try_from(format!("x-ratelimit-{what}-{dim}")),
                HeaderValue::from_str(&value),
            ) {
                h.insert(name, v);
            }
        }
    }
}
