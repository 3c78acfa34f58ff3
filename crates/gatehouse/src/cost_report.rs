//! Cost summaries for dashboards, from the usage ledger: `GET /admin/api/usage` (a time range
//! grouped by any of day, assistant, variant, model, key) and `GET /admin/api/usage/today` (per
//! assistant: cost, messages, tokens, average cost per message, for the current UTC day).
//!
//! "Messages" are requests answered with status 200, not counting the summaries Gatehouse
//! makes of long conversations; their cost is counted. Requests still in the ledger's queue
//! (up to `ledger.flush_interval_ms`) are not in the numbers yet.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use store::{UsageDimension, UsageGroup};
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::assistants::apply::internal;
use crate::auth::AdminAuth;
use crate::dates::{DAY_MS, day_of, format_day, format_ms, parse_day, parse_ms};
use crate::error::{ApiError, ErrorBody};
use crate::extract::ValidQuery;
use crate::usage::now_ms;

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct UsageQuery {
    /// Start: RFC 3339, or a day (`YYYY-MM-DD`, from 00:00 UTC). Default: 6 days before today.
    #[serde(default)]
    pub from: Option<String>,
    /// End (exclusive): RFC 3339, or a day (`YYYY-MM-DD`, included whole). Default: now.
    #[serde(default)]
    pub to: Option<String>,
    /// Comma-separated: `day`, `assistant`, `variant`, `model`, `key`. Default `day`; `none`
    /// for one total.
    #[serde(default)]
    pub group_by: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReport {
    pub from: String,
    pub to: String,
    pub group_by: Vec<&'static str>,
    /// Groups in order of the grouped dimensions; an ungrouped dimension is left out, a grouped
    /// one without a value (a plain request's assistant, open mode's key) is `null`. Each row
    /// has `requests`, `messages`, `errors`, `prompt_tokens`, `completion_tokens`, `cost_micros`.
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantToday {
    pub assistant: String,
    pub cost_micros: i64,
    pub messages: i64,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    /// cost / messages rounded half up; absent without messages.
    pub average_cost_per_message_micros: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TodayReport {
    /// The UTC day.
    pub day: String,
    pub data: Vec<AssistantToday>,
}

fn dimension(name: &str) -> Option<(UsageDimension, &'static str)> {
    Some(match name {
        "day" => (UsageDimension::Day, "day"),
        "assistant" => (UsageDimension::Assistant, "assistant"),
        "variant" => (UsageDimension::Variant, "variant"),
        "model" => (UsageDimension::Model, "model"),
        "key" => (UsageDimension::Key, "key"),
        _ => return None,
    })
}

fn bound(field: &str, value: &str, day_end: bool) -> Result<i64, ApiError> {
    let parsed = if day_end {
        parse_day(value)
            .map(|d| (d + 1) * DAY_MS)
            .or_else(|| parse_ms(value))
    } else {
        parse_ms(value)
    };
    parsed.ok_or_else(|| {
        ApiError::invalid(field, format!("`{field}` must be RFC 3339 or YYYY-MM-DD"))
    })
}

fn row(g: UsageGroup, by: &[UsageDimension]) -> serde_json::Value {
    let mut v = serde_json::Map::new();
    let has = |d| by.contains(&d);
    if has(UsageDimension::Day) {
        v.insert("day".into(), g.day.map(format_day).into());
    }
    if has(UsageDimension::Assistant) {
        v.insert("assistant".into(), g.assistant.into());
    }
    if has(UsageDimension::Variant) {
        v.insert("variant".into(), g.variant.into());
    }
    if has(UsageDimension::Model) {
        v.insert("model".into(), g.model.into());
    }
    if has(UsageDimension::Key) {
        v.insert("key_id".into(), g.key_id.into());
    }
    for (k, n) in [
        ("requests", g.requests),
        ("messages", g.messages),
        ("errors", g.errors),
        ("prompt_tokens", g.prompt_tokens),
        ("completion_tokens", g.completion_tokens),
        ("cost_micros", g.cost_micros),
    ] {
        v.insert(k.into(), n.into());
    }
    serde_json::Value::Object(v)
}

/// Usage over a time range, grouped.
#[utoipa::path(get, path = "/admin/api/usage", tag = "admin", security(("admin_key" = [])), params(UsageQuery),
    responses((status = 200, body = UsageReport), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn usage(
    _: AdminAuth,
    State(state): State<Arc<AppState>>,
    ValidQuery(q): ValidQuery<UsageQuery>,
) -> Result<Json<UsageReport>, ApiError> {
    let now = now_ms();
    let from = match &q.from {
        Some(v) => bound("from", v, false)?,
        None => (day_of(now) - 6) * DAY_MS,
    };
    let to = match &q.to {
        Some(v) => bound("to", v, true)?,
        None => now + 1,
    };
    if to <= from {
        return Err(ApiError::invalid("to", "`to` must be after `from`"));
    }
    let mut by = Vec::new();
    let mut names = Vec::new();
    let spec = q.group_by.as_deref().unwrap_or("day");
    if spec != "none" {
        for part in spec.split(',').map(str::trim) {
            let (d, name) = dimension(part).ok_or_else(|| {
                ApiError::invalid(
                    "group_by",
                    format!("`{part}` is not one of day, assistant, variant, model, key, none"),
                )
            })?;
            if !by.contains(&d) {
                by.push(d);
                names.push(name);
            }
        }
    }
    let groups = state
        .store
        .usage_report(from, to, &by)
        .await
        .map_err(|e| internal(&e))?;
    Ok(Json(UsageReport {
        from: format_ms(from),
        to: format_ms(to),
        group_by: names,
        data: groups.into_iter().map(|g| row(g, &by)).collect(),
    }))
}

/// Today's cost per assistant (every live assistant, zeros included).
#[utoipa::path(get, path = "/admin/api/usage/today", tag = "admin", security(("admin_key" = [])),
    responses((status = 200, body = TodayReport), (status = 401, body = ErrorBody)))]
pub async fn today(
    _: AdminAuth,
    State(state): State<Arc<AppState>>,
) -> Result<Json<TodayReport>, ApiError> {
    let day = day_of(now_ms());
    let used = state
        .store
        .assistant_usage_since(day * DAY_MS)
        .await
        .map_err(|e| internal(&e))?;
    let live = state.store.assistants().await.map_err(|e| internal(&e))?;
    let mut data: Vec<AssistantToday> = live
        .iter()
        .map(|a| {
            let u = used
                .iter()
                .find(|u| u.slug == a.slug)
                .cloned()
                .unwrap_or_default();
            AssistantToday {
                assistant: a.slug.clone(),
                cost_micros: u.cost_micros,
                messages: u.messages,
                requests: u.requests,
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                total_tokens: u.prompt_tokens + u.completion_tokens,
                average_cost_per_message_micros: (u.messages > 0)
                    .then(|| (u.cost_micros * 2 + u.messages) / (2 * u.messages)),
            }
        })
        .collect();
    data.sort_by(|a, b| a.assistant.cmp(&b.assistant));
    Ok(Json(TodayReport {
        day: format_day(day),
        data,
    }))
}
