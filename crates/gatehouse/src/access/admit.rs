//! Admission of one chat or embeddings request: model allowed for the key → one plan (rate
//! buckets for the key, the end user and all traffic; the key's concurrency lease; reservations
//! of the largest cost the request can reach against the key's daily and monthly budgets and the
//! global daily cap) run all-or-nothing → a concurrency permit in the request's lane.
//!
//! Why overshoot is bounded: a reservation is admitted only if `spent + reserved + amount ≤
//! limit`, and `amount` is the cost of the prompt estimate plus the full output cap at the
//! priciest deployment of the chain. Settlement swaps the reservation for the actual cost. So
//! however many requests race, booked spend can pass the limit only by what calls cost beyond
//! their own reservations (a provider counting more prompt tokens than the estimate, or ignoring
//! `max_tokens`); never by the sum of concurrent requests.

use std::sync::Arc;
use std::time::Duration;

use providers::{ChatRequest, EmbeddingInput, EmbeddingsRequest, Usage};

use super::gate::{GateError, Permit};
use super::headers::limit_info;
use super::keys::ApiKey;
use super::metrics::{LaneLabel, ReasonLabel, ScopeLabel};
use super::plan::{
    Bucket, BudgetCharge, BudgetScope, BudgetSettle, Dim, Lease, Plan, Scope, Settlement,
    TokenCorrection, Verdict,
};
use super::reject::{dollars, rate_limited, reject_audit};
use super::{Access, Priority, Used};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode};
use crate::resilience::ModelGroup;
use crate::usage::{cost_micros, count_tokens, estimate_prompt_tokens, now_ms};

const MINUTE: Duration = Duration::from_secs(60);

/// Tokens and cost a request may reach on the given groups.
type Sizer<'a> = dyn Fn(&[Arc<ModelGroup>]) -> (u64, i64) + Sync + 'a;

/// Who to name in a budget alert.
#[derive(Debug, Clone, Default)]
pub struct AlertContext {
    pub key_id: Option<i64>,
    pub key_name: Option<String>,
}

/// An admitted request's charges, settled exactly once: by the usage guard with what the
/// request used, or on drop with nothing used.
pub struct Admission {
    access: Arc<Access>,
    used: Used,
    est_tokens: u64,
    token_buckets: Vec<(String, u64, Duration)>,
    lease: Option<(String, String)>,
    budgets: Vec<BudgetSettle>,
    permit: Option<Permit>,
    alert: AlertContext,
    /// The alias the client asked for, when a budget moved it to the downgrade model.
    pub downgraded_from: Option<String>,
    settled: bool,
}

impl Admission {
    pub fn key_id(&self) -> Option<i64> {
        self.alert.key_id
    }

    /// Book what the request used: token buckets corrected from the estimate to `tokens`,
    /// reservations swapped for `cost_micros`, lease and permit released. Later calls do nothing.
    pub fn settle(&mut self, tokens: u64, cost_micros: i64) {
        if self.settled {
            return;
        }
        self.settled = true;
        self.permit.take();
        let delta = i64::try_from(tokens).unwrap_or(i64::MAX)
            - i64::try_from(self.est_tokens).unwrap_or(i64::MAX);
        let s = Settlement {
            tokens: self
                .token_buckets
                .drain(..)
                .map(|(key, limit, period)| TokenCorrection {
                    key,
                    limit,
                    period,
                    delta,
                })
                .collect(),
            lease: self.lease.take(),
            budgets: self
                .budgets
                .drain(..)
                .map(|b| BudgetSettle {
                    actual: cost_micros,
                    ..b
                })
                .collect(),
        };
        if s.tokens.iter().all(|t| t.delta == 0) && s.lease.is_none() && s.budgets.is_empty() {
            return;
        }
        let alert = std::mem::take(&mut self.alert);
        match self.used {
            Used::Local => self.access.settle_local(&s, &alert),
            Used::Redis => {
                let access = Arc::clone(&self.access);
                // Detached from the request: a client that went away cannot cancel it.
                match tokio::runtime::Handle::try_current() {
                    Ok(h) => {
                        h.spawn(async move { access.settle_redis(&s, &alert).await });
                    }
                    Err(_) => tracing::error!("no runtime to settle a request on redis"),
                }
            }
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let est = self.est_tokens;
        self.settle(est, 0);
    }
}

/// The most a request can cost and the tokens it may use, over every deployment it may reach.
fn reservation(
    prompt: u64,
    requested_out: Option<u32>,
    n: u64,
    groups: &[Arc<ModelGroup>],
    default_out: u32,
) -> (u64, i64) {
    let mut tokens = prompt;
    let mut amount = 0;
    for d in groups.iter().flat_map(|g| g.deployments.iter()) {
        let cap = d.target.max_output_tokens;
        let out = requested_out
            .or(cap)
            .unwrap_or(default_out)
            .min(cap.unwrap_or(u32::MAX));
        let out = u64::from(out) * n;
        tokens = tokens.max(prompt + out);
        amount = amount.max(cost_micros(&d.target.prices, &Usage::new(prompt, out, 0)));
    }
    (tokens, amount)
}

fn hashed(user: &str) -> String {
    super::keys::digest_hex(user)[..16].to_owned()
}

fn bucket(key: String, dim: Dim, scope: Scope, limit: u64, cost: u64) -> Bucket {
    Bucket {
        key,
        dim,
        scope,
        limit,
        period: MINUTE,
        cost,
    }
}

/// The rate buckets, lease and budget reservations of one request.
fn build_plan(
    access: &Access,
    key: Option<&ApiKey>,
    end_user: Option<&str>,
    tokens: u64,
    amount: i64,
) -> Plan {
    let l = &access.cfg.limits;
    let mut plan = Plan::default();
    if let Some(k) = key {
        let rpm = k.rpm.unwrap_or(l.key_rpm);
        let tpm = k.tpm.unwrap_or(l.key_tpm);
        if rpm > 0 {
            plan.buckets.push(bucket(
                format!("rl:k:{}:r", k.id),
                Dim::Requests,
                Scope::Key,
                rpm,
                1,
            ));
        }
        if tpm > 0 {
            plan.buckets.push(bucket(
                format!("rl:k:{}:t", k.id),
                Dim::Tokens,
                Scope::Key,
                tpm,
                tokens,
            ));
        }
        if let Some(max) = k.max_concurrent.filter(|m| *m > 0) {
            plan.lease = Some(Lease {
                key: format!("cc:k:{}", k.id),
                max,
                id: uuid::Uuid::new_v4().simple().to_string(),
                ttl: access.cfg.concurrency.lease,
            });
        }
    }
    if let Some(u) = end_user {
        let owner = key.map_or_else(|| "open".to_owned(), |k| k.id.to_string());
        let u = hashed(u);
        if l.user_rpm > 0 {
            plan.buckets.push(bucket(
                format!("rl:u:{owner}:{u}:r"),
                Dim::Requests,
                Scope::User,
                l.user_rpm,
                1,
            ));
        }
        if l.user_tpm > 0 {
            plan.buckets.push(bucket(
                format!("rl:u:{owner}:{u}:t"),
                Dim::Tokens,
                Scope::User,
                l.user_tpm,
                tokens,
            ));
        }
    }
    if l.global_rpm > 0 {
        plan.buckets.push(bucket(
            "rl:g:r".into(),
            Dim::Requests,
            Scope::Global,
            l.global_rpm,
            1,
        ));
    }
    if l.global_tpm > 0 {
        plan.buckets.push(bucket(
            "rl:g:t".into(),
            Dim::Tokens,
            Scope::Global,
            l.global_tpm,
            tokens,
        ));
    }
    let now = now_ms();
    let bk = Access::budget_keys(key.map(|k| k.id), now);
    let mut budget = |k: Option<String>, scope, limit: Option<i64>, end| {
        if let (Some(key), Some(limit)) = (k, limit) {
            plan.budgets.push(BudgetCharge {
                key,
                scope,
                limit,
                amount,
                period_end_ms: end,
            });
        }
    };
    budget(
        bk.key_daily,
        BudgetScope::KeyDaily,
        key.and_then(|k| k.daily_budget_micros),
        bk.day_end,
    );
    budget(
        bk.key_monthly,
        BudgetScope::KeyMonthly,
        key.and_then(|k| k.monthly_budget_micros),
        bk.month_end,
    );
    budget(
        Some(bk.global_daily),
        BudgetScope::GlobalDaily,
        access.cfg.budgets.global_daily_micros,
        bk.day_end,
    );
    plan
}

/// Admit a chat request; may replace `chain` with the budget downgrade model.
pub async fn admit_chat(
    state: &Arc<AppState>,
    principal: &Principal,
    req: &ChatRequest,
    chain: &mut Vec<Arc<ModelGroup>>,
) -> Result<Admission, ApiError> {
    let n = u64::from(req.n.unwrap_or(1).max(1));
    let user = principal.end_user.as_deref().or(req.user.as_deref());
    let default_out = state.access.cfg.limits.default_max_output_tokens;
    let out = req.requested_max_output();
    // The prompt is counted only if something charges tokens or money (see `admit`).
    let prompt = std::sync::OnceLock::new();
    let size = |groups: &[Arc<ModelGroup>]| {
        let p = *prompt.get_or_init(|| estimate_prompt_tokens(req));
        reservation(p, out, n, groups, default_out)
    };
    admit(state, principal, user, chain, &size).await
}

/// Admit an embeddings request (input tokens only).
pub async fn admit_embeddings(
    state: &Arc<AppState>,
    principal: &Principal,
    req: &EmbeddingsRequest,
    group: &Arc<ModelGroup>,
) -> Result<Admission, ApiError> {
    let count = || -> u64 {
        match &req.input {
            EmbeddingInput::One(s) => count_tokens(s),
            EmbeddingInput::Many(v) => v.iter().map(|s| count_tokens(s)).sum(),
            EmbeddingInput::Tokens(v) => v.len() as u64,
            EmbeddingInput::TokenBatches(v) => v.iter().map(|b| b.len() as u64).sum(),
        }
    };
    let user = principal.end_user.as_deref().or(req.user.as_deref());
    let mut chain = vec![Arc::clone(group)];
    let prompt = std::sync::OnceLock::new();
    let size =
        |groups: &[Arc<ModelGroup>]| reservation(*prompt.get_or_init(count), Some(0), 1, groups, 0);
    admit(state, principal, user, &mut chain, &size).await
}

/// Admit a transcription: the key's model list, request-rate limits and concurrency; it
/// reserves no tokens or money (audio has no token price).
pub async fn admit_transcription(
    state: &Arc<AppState>,
    principal: &Principal,
    group: &Arc<ModelGroup>,
) -> Result<Admission, ApiError> {
    let mut chain = vec![Arc::clone(group)];
    let size = |groups: &[Arc<ModelGroup>]| reservation(0, Some(0), 1, groups, 0);
    admit(
        state,
        principal,
        principal.end_user.as_deref(),
        &mut chain,
        &size,
    )
    .await
}

async fn admit(
    state: &Arc<AppState>,
    principal: &Principal,
    user: Option<&str>,
    chain: &mut Vec<Arc<ModelGroup>>,
    size: &Sizer<'_>,
) -> Result<Admission, ApiError> {
    let access = &state.access;
    let key = principal.key.as_deref();
    let alias = chain.first().map(|g| g.alias.clone()).unwrap_or_default();
    if let Some(k) = key
        && !k.allows_model(&alias)
    {
        return Err(ApiError {
            param: Some("model".into()),
            ..ApiError::new(
                ErrorCode::ModelNotAllowed,
                format!("This API key may not use the model `{alias}`"),
            )
        });
    }
    // Counting the prompt (tiktoken) is skipped when nothing charges tokens or money: open mode
    // without global token limits or a global budget.
    let l = &access.cfg.limits;
    let needs_size = key.is_some()
        || l.global_tpm > 0
        || (user.is_some() && l.user_tpm > 0)
        || access.cfg.budgets.global_daily_micros.is_some();
    let (mut tokens, amount) = if needs_size { size(chain) } else { (0, 0) };
    let mut plan = build_plan(access, key, user, tokens, amount);
    let mut downgraded_from = None;
    let (mut verdict, mut used) = run(access, &plan).await?;
    if let Verdict::OverBudget { .. } = verdict
        && let Some(k) = key.filter(|k| k.allow_downgrade)
        && let Some(cheap) = access
            .cfg
            .budgets
            .downgrade_model
            .as_deref()
            .filter(|m| *m != alias)
        && let Some(group) = state.router.group(cheap)
    {
        let groups = [group];
        let (t, a) = size(&groups);
        let retry = build_plan(access, Some(k), user, t, a);
        let (v, u) = run(access, &retry).await?;
        if matches!(v, Verdict::Admitted { .. }) {
            tracing::info!(key_id = k.id, from = %alias, to = cheap, "budget: downgraded to the cheaper model");
            access.metrics.access.budget_downgrades.inc();
            (verdict, used, plan, tokens) = (v, u, retry, t);
            *chain = groups.to_vec();
            principal.limits.set_downgraded_from(alias.clone());
            downgraded_from = Some(alias.clone());
        }
    }
    let states = match verdict {
        Verdict::Admitted { buckets, .. } => buckets,
        Verdict::RateLimited { index, retry_after } => {
            return Err(rate_limited(access, principal, &plan, index, retry_after));
        }
        Verdict::TooManyConcurrent => {
            let max = plan.lease.as_ref().map_or(0, |l| l.max);
            reject_audit(access, principal, "ratelimit.reject", "concurrency");
            access
                .metrics
                .access
                .rate_limited
                .get_or_create(&ScopeLabel {
                    scope: "concurrency",
                })
                .inc();
            return Err(ApiError {
                retry_after: Some(Duration::from_secs(1)),
                ..ApiError::new(
                    ErrorCode::RateLimited,
                    format!(
                        "Too many concurrent requests for this API key (at most {max} at a time)"
                    ),
                )
            });
        }
        Verdict::OverBudget { index, state: s } => {
            let b = &plan.budgets[index];
            reject_audit(access, principal, "budget.reject", b.scope.as_str());
            access
                .metrics
                .access
                .budget_rejected
                .get_or_create(&ReasonLabel { reason: "exceeded" })
                .inc();
            let what = match b.scope {
                BudgetScope::KeyDaily => "this API key's daily budget",
                BudgetScope::KeyMonthly => "this API key's monthly budget",
                BudgetScope::GlobalDaily => "the gateway's daily budget",
            };
            let reset = b.period_end_ms - now_ms();
            return Err(ApiError {
                retry_after: Some(Duration::from_millis(reset.max(0).unsigned_abs())),
                ..ApiError::new(
                    ErrorCode::BudgetExceeded,
                    format!(
                        "Budget exceeded: {what} of {} has {} spent and {} reserved by requests in flight; this request may cost up to {}",
                        dollars(b.limit),
                        dollars(s.spent),
                        dollars(s.reserved),
                        dollars(b.amount)
                    ),
                )
            });
        }
    };
    principal.limits.set(limit_info(&plan, &states));
    let mut admission = Admission {
        access: Arc::clone(access),
        used,
        est_tokens: tokens,
        token_buckets: plan
            .buckets
            .iter()
            .filter(|b| b.dim == Dim::Tokens)
            .map(|b| (b.key.clone(), b.limit, b.period))
            .collect(),
        lease: plan.lease.as_ref().map(|l| (l.key.clone(), l.id.clone())),
        // A fallback admission (Redis down) reserved no budget: it has nothing to give back.
        budgets: plan
            .budgets
            .iter()
            .filter(|_| !(used == Used::Local && access.redis.is_some()))
            .map(|b| BudgetSettle {
                key: b.key.clone(),
                scope: b.scope,
                limit: b.limit,
                reserved: b.amount,
                actual: 0,
                period_end_ms: b.period_end_ms,
            })
            .collect(),
        permit: None,
        alert: AlertContext {
            key_id: key.map(|k| k.id),
            key_name: key.map(|k| k.name.clone()),
        },
        downgraded_from,
        settled: false,
    };
    let max_lane = key.map_or(Priority::Normal, |k| k.priority);
    let lane = Priority::clamp(principal.priority, max_lane);
    match access
        .gate
        .acquire(lane, access.cfg.concurrency.queue_timeout)
        .await
    {
        Ok(p) => admission.permit = Some(p),
        Err(e) => {
            access
                .metrics
                .access
                .queue_rejected
                .get_or_create(&LaneLabel {
                    lane: lane.as_str(),
                })
                .inc();
            admission.settle(0, 0);
            let why = match e {
                GateError::Timeout => "waited too long for an upstream slot",
                GateError::QueueFull => "too many requests are waiting for an upstream slot",
            };
            return Err(ApiError {
                retry_after: Some(Duration::from_secs(1)),
                ..ApiError::new(
                    ErrorCode::QueueTimeout,
                    format!(
                        "The gateway is at capacity: this {} priority request {why}",
                        lane.as_str()
                    ),
                )
            });
        }
    }
    Ok(admission)
}

async fn run(access: &Access, plan: &Plan) -> Result<(Verdict, Used), ApiError> {
    access.run_plan(plan).await.map_err(|_| {
        access.metrics.access.budget_rejected.get_or_create(&ReasonLabel { reason: "unavailable" }).inc();
        ApiError {
            retry_after: Some(Duration::from_secs(1)),
            ..ApiError::new(
                ErrorCode::BudgetUnavailable,
                "Budgets cannot be checked right now (the shared limit store is unreachable); try again shortly",
            )
        }
    })
}

impl Access {
    pub fn settle_local(&self, s: &Settlement, alert: &AlertContext) {
        let crossed = self.local.settle(s, now_ms());
        self.fire_crossed(s, crossed, alert);
    }

    pub async fn settle_redis(&self, s: &Settlement, alert: &AlertContext) {
        if let Some(crossed) = self.settle_on_redis(s, alert).await {
            self.fire_crossed(s, crossed, alert);
        }
    }
}
