//! Rate limits of the public routes, which carry no API key: the web UI's chat (per signed-in
//! user, or per client IP when signed out) and WhatsApp (per sender number), plus one bucket
//! for all anonymous traffic together. Those routes call [`Access::limit_public`] first;
//! the limits come from `[limits]` (`web_chat_rpm`, `whatsapp_rpm`, `anonymous_rpm`).

use std::time::Duration;

use super::headers::{LimitInfo, limit_info};
use super::metrics::ScopeLabel;
use super::plan::{Bucket, Dim, Plan, Scope, Verdict};
use super::{Access, gcra, keys};
use crate::audit;
use crate::error::{ApiError, ErrorCode};

const MINUTE: Duration = Duration::from_secs(60);

/// A route class without API keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicRoute {
    WebChat,
    WhatsApp,
}

impl Access {
    /// Charge one request of `subject` (a user id, an IP, a phone number) on `route`; when
    /// `anonymous`, the shared anonymous bucket is charged too. All or nothing; returns the
    /// `x-ratelimit-*` values, or the 429 to answer.
    pub async fn limit_public(
        &self,
        route: PublicRoute,
        subject: &str,
        anonymous: bool,
    ) -> Result<LimitInfo, ApiError> {
        let l = &self.cfg.limits;
        let (name, scope, limit) = match route {
            PublicRoute::WebChat => ("web", Scope::WebChat, l.web_chat_rpm),
            PublicRoute::WhatsApp => ("wa", Scope::WhatsApp, l.whatsapp_rpm),
        };
        let hashed = &keys::digest_hex(subject)[..16];
        let mut plan = Plan::default();
        let mut push = |key: String, scope: Scope, limit: u64| {
            if limit > 0 {
                plan.buckets.push(Bucket {
                    key,
                    dim: Dim::Requests,
                    scope,
                    limit,
                    period: MINUTE,
                    cost: 1,
                });
            }
        };
        push(format!("rl:pub:{name}:{hashed}"), scope, limit);
        if anonymous {
            push("rl:anon".into(), Scope::Anonymous, l.anonymous_rpm);
        }
        let verdict = self
            .run_plan(&plan)
            .await
            .map(|(v, _)| v)
            .unwrap_or(Verdict::Admitted {
                buckets: Vec::new(),
                budgets: Vec::new(),
            });
        match verdict {
            Verdict::RateLimited { index, retry_after } => {
                let b = &plan.buckets[index];
                self.metrics
                    .access
                    .rate_limited
                    .get_or_create(&ScopeLabel {
                        scope: b.scope.as_str(),
                    })
                    .inc();
                let mut e = audit::entry(
                    format!("{name}:{hashed}"),
                    "ratelimit.reject",
                    Some(b.scope.as_str().to_owned()),
                    "denied",
                );
                e.detail = Some(serde_json::json!({ "reason": b.scope.as_str() }).to_string());
                self.audit
                    .record_sampled(&format!("{name}:{hashed}|{}", b.scope.as_str()), e);
                let wait = retry_after.unwrap_or(MINUTE);
                let whom = if b.scope == Scope::Anonymous {
                    "anonymous traffic"
                } else {
                    "you"
                };
                Err(ApiError {
                    retry_after: Some(wait),
                    ..ApiError::new(
                        ErrorCode::RateLimited,
                        format!(
                            "Rate limit reached for {whom}: {} requests per minute. Try again in {}.",
                            b.limit,
                            gcra::format_reset(gcra::micros(wait))
                        ),
                    )
                })
            }
            Verdict::Admitted { buckets, .. } => Ok(limit_info(&plan, &buckets)),
            Verdict::TooManyConcurrent | Verdict::OverBudget { .. } => Ok(LimitInfo::default()),
        }
    }
}
