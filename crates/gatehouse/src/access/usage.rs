//! `GET /v1/usage`: a key holder's own limits, remaining rate-limit capacity, budgets and spend,
//! answered with nothing but their own key. The admin API's key view shows the same report.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::keys::ApiKey;
use super::plan::BudgetState;
use super::{Access, gcra};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::usage::now_ms;

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReport {
    /// Always `usage`.
    pub object: &'static str,
    pub key: ApiKey,
    pub limits: Limits,
    /// Capacity left right now (requests and tokens per minute).
    pub rate_limits: RateLimits,
    pub budgets: Budgets,
    /// Spend recorded in the usage ledger (a few hundred ms behind).
    pub spend: Spend,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Limits {
    /// Requests per minute; `null`: unlimited.
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    pub max_concurrent: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RateLimits {
    pub requests: Option<Remaining>,
    pub tokens: Option<Remaining>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Remaining {
    pub limit: u64,
    pub remaining: u64,
    /// Until fully replenished, in OpenAI's format (`1.2s`, `6m0s`).
    pub reset: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Budgets {
    pub daily: Option<Budget>,
    pub monthly: Option<Budget>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Budget {
    pub limit_micros: i64,
    pub spent_micros: i64,
    /// Held by requests in flight.
    pub reserved_micros: i64,
    pub remaining_micros: i64,
    /// `20261122` (daily, UTC) or `202611` (monthly).
    pub period: String,
    pub resets_at_ms: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Spend {
    pub today_micros: i64,
    pub this_month_micros: i64,
}

/// The calling key's own limits, remaining capacity, budgets and spend.
#[utoipa::path(get, path = "/v1/usage", tag = "openai",
    responses((status = 200, body = UsageReport), (status = 401, body = ErrorBody)))]
pub async fn own_usage(
    State(state): State<Arc<AppState>>,
    axum::Extension(principal): axum::Extension<Principal>,
) -> Result<Json<UsageReport>, ApiError> {
    let Some(key) = principal.key.as_deref() else {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "GET /v1/usage reports on an API key: send yours as `Authorization: Bearer <key>`",
        ));
    };
    Ok(Json(report(&state, key).await?))
}

async fn bucket_ahead(access: &Access, key: &str) -> i64 {
    if let Some(r) = &access.redis
        && r.is_up()
    {
        match r.bucket_ahead(key).await {
            Ok(v) => return v,
            Err(e) => access.redis_failed("peek", &e),
        }
    }
    access.local.bucket_ahead(key)
}

async fn budget_state(access: &Access, key: &str, ledger_spent: i64) -> BudgetState {
    match &access.redis {
        Some(r) if r.is_up() => match r.budget_state(key).await {
            Ok(s) => s,
            Err(e) => {
                access.redis_failed("peek", &e);
                BudgetState {
                    spent: ledger_spent,
                    reserved: 0,
                }
            }
        },
        Some(_) => BudgetState {
            spent: ledger_spent,
            reserved: 0,
        },
        None => access.local.budget_state(key),
    }
}

pub async fn report(state: &AppState, key: &ApiKey) -> Result<UsageReport, ApiError> {
    let access = &state.access;
    let l = &access.cfg.limits;
    let now = now_ms();
    let rpm = Some(key.rpm.unwrap_or(l.key_rpm)).filter(|n| *n > 0);
    let tpm = Some(key.tpm.unwrap_or(l.key_tpm)).filter(|n| *n > 0);
    let mut rate = RateLimits {
        requests: None,
        tokens: None,
    };
    for (limit, suffix, slot) in [(rpm, "r", &mut rate.requests), (tpm, "t", &mut rate.tokens)] {
        if let Some(limit) = limit {
            let ahead = bucket_ahead(access, &format!("rl:k:{}:{suffix}", key.id)).await;
            *slot = Some(Remaining {
                limit,
                remaining: gcra::remaining(ahead, limit, std::time::Duration::from_secs(60)),
                reset: gcra::format_reset(ahead),
            });
        }
    }
    let (day, day_start, day_end) = super::plan::period::day(now);
    let (month, month_start, month_end) = super::plan::period::month(now);
    let reset = key.budget_reset_at_ms.unwrap_or(0);
    let spent = |since: i64| state.store.cost_since(Some(key.id), since);
    let today = spent(day_start).await.map_err(super::api::internal)?;
    let this_month = spent(month_start).await.map_err(super::api::internal)?;
    let bk = Access::budget_keys(Some(key.id), now);
    let mut budgets = Budgets {
        daily: None,
        monthly: None,
    };
    for (limit, bkey, period, start, end, slot) in [
        (
            key.daily_budget_micros,
            bk.key_daily,
            day,
            day_start,
            day_end,
            &mut budgets.daily,
        ),
        (
            key.monthly_budget_micros,
            bk.key_monthly,
            month,
            month_start,
            month_end,
            &mut budgets.monthly,
        ),
    ] {
        let (Some(limit), Some(bkey)) = (limit, bkey) else {
            continue;
        };
        let ledger = spent(start.max(reset))
            .await
            .map_err(super::api::internal)?;
        let s = budget_state(access, &bkey, ledger).await;
        *slot = Some(Budget {
            limit_micros: limit,
            spent_micros: s.spent,
            reserved_micros: s.reserved,
            remaining_micros: (limit - s.spent - s.reserved).max(0),
            period,
            resets_at_ms: end,
        });
    }
    Ok(UsageReport {
        object: "usage",
        key: key.clone(),
        limits: Limits {
            requests_per_minute: rpm,
            tokens_per_minute: tpm,
            max_concurrent: key.max_concurrent,
        },
        rate_limits: rate,
        budgets,
        spend: Spend {
            today_micros: today,
            this_month_micros: this_month,
        },
    })
}
