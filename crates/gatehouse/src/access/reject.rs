//! Refusals: the 429 of a full rate-limit bucket (with the headers it implies) and the sampled
//! audit entry of every refused request.

use std::time::Duration;

use super::headers::Triple;
use super::metrics::ScopeLabel;
use super::plan::{Dim, Plan, Scope};
use super::{Access, gcra};
use crate::audit;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode};

const MINUTE: Duration = Duration::from_secs(60);

/// Micro-dollars as `$0.001018`.
pub fn dollars(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    format!("{sign}${}.{:06}", m / 1_000_000, m % 1_000_000)
}

pub fn rate_limited(
    access: &Access,
    principal: &Principal,
    plan: &Plan,
    index: usize,
    retry_after: Option<Duration>,
) -> ApiError {
    let b = &plan.buckets[index];
    access
        .metrics
        .access
        .rate_limited
        .get_or_create(&ScopeLabel {
            scope: b.scope.as_str(),
        })
        .inc();
    reject_audit(access, principal, "ratelimit.reject", b.scope.as_str());
    let unit = match b.dim {
        Dim::Requests => "requests",
        Dim::Tokens => "tokens",
    };
    let whose = match b.scope {
        Scope::Key => "this API key",
        Scope::User => "this end user",
        Scope::Global => "the gateway",
        _ => "this client",
    };
    let triple = Triple {
        limit: b.limit,
        remaining: 0,
        reset_us: retry_after.map_or(i64::MAX, gcra::micros),
    };
    let mut info = principal.limits.get().unwrap_or_default();
    match b.dim {
        Dim::Requests => info.requests = Some(triple),
        Dim::Tokens => info.tokens = Some(triple),
    }
    principal.limits.set(info);
    let message = match retry_after {
        Some(d) => format!(
            "Rate limit reached for {unit} per minute on {whose}: limit {}, requested {}. Try again in {}.",
            b.limit,
            b.cost,
            gcra::format_reset(gcra::micros(d))
        ),
        None => format!(
            "This request needs {} {unit}, more than the {} {unit} per minute allowed for {whose}; reduce max_tokens or the prompt.",
            b.cost, b.limit
        ),
    };
    ApiError {
        retry_after: Some(retry_after.unwrap_or(MINUTE)),
        ..ApiError::new(ErrorCode::RateLimited, message)
    }
}

/// A sampled audit entry for a refused request.
pub fn reject_audit(access: &Access, principal: &Principal, action: &str, reason: &str) {
    let (actor, subject) = match &principal.key {
        Some(k) => (format!("key:{}", k.id), format!("key:{}", k.id)),
        None => {
            let ip = principal
                .ip
                .map_or_else(|| "unknown".to_owned(), |i| i.to_string());
            (format!("ip:{ip}"), format!("ip:{ip}"))
        }
    };
    let mut e = audit::entry(actor, action, Some(subject.clone()), "denied");
    e.ip = principal.ip.map(|i| i.to_string());
    e.detail = Some(serde_json::json!({ "reason": reason }).to_string());
    access
        .audit
        .record_sampled(&format!("{subject}|{reason}"), e);
}
