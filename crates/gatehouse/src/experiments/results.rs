//! `GET /admin/api/experiments/{id}/results`: per variant, from the usage ledger and the
//! ratings table only — conversations, messages (requests), errors, tokens, cost, latency
//! p50/p95 of the successful requests (nearest rank), and the positive-rating rate with its
//! 95% Wilson interval; then each variant's rating rate against the first variant's with a
//! pooled two-proportion z-test (two-sided p; significant below 0.05).
//!
//! The window is the experiment's start to its end, its stop, or now, whichever is first.
//! Requests still in the ledger's queue (up to `ledger.flush_interval_ms`) are not yet counted.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::VariantSpec;
use super::admin::{ExperimentView, experiment_view, load};
use super::stats::{Z95, percentile, two_proportion_z, wilson};
use crate::app::AppState;
use crate::assistants::apply::internal;
use crate::auth::AdminAuth;
use crate::dates::format_ms;
use crate::error::{ApiError, ErrorBody};
use crate::usage::now_ms;

#[derive(Debug, Serialize, ToSchema)]
pub struct RatingStats {
    pub positive: i64,
    pub negative: i64,
    pub total: i64,
    /// positive / total; absent without ratings.
    pub positive_rate: Option<f64>,
    /// 95% Wilson score interval of the positive rate.
    pub ci95_low: Option<f64>,
    pub ci95_high: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VariantResult {
    pub name: String,
    pub weight: u32,
    pub conversations: i64,
    /// Requests answered or attempted with this variant.
    pub messages: i64,
    /// Requests whose status was not 200.
    pub errors: i64,
    pub error_rate: Option<f64>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    pub cost_micros: i64,
    /// cost / messages, rounded half up.
    pub cost_per_message_micros: Option<i64>,
    pub latency_p50_ms: Option<i64>,
    pub latency_p95_ms: Option<i64>,
    pub ratings: RatingStats,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Comparison {
    pub variant: String,
    /// The first variant, which the others are compared with.
    pub baseline: String,
    /// variant's positive rate minus the baseline's.
    pub rate_difference: Option<f64>,
    pub z: Option<f64>,
    pub p_value: Option<f64>,
    pub significant: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExperimentResults {
    pub experiment: ExperimentView,
    pub from: String,
    pub to: String,
    pub variants: Vec<VariantResult>,
    pub comparisons: Vec<Comparison>,
}

fn ratio(a: i64, b: i64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Integer division rounded half up, for non-negative values.
fn div_round(a: i64, b: i64) -> Option<i64> {
    (b > 0).then(|| (a * 2 + b) / (2 * b))
}

/// Results of an experiment, per variant, from real records.
#[utoipa::path(get, path = "/admin/api/experiments/{id}/results", tag = "admin", security(("admin_key" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = ExperimentResults), (status = 404, body = ErrorBody)))]
pub async fn results(
    _: AdminAuth,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<ExperimentResults>, ApiError> {
    let (e, a) = load(&state, &id).await?;
    let from = e.starts_at_ms;
    let to = e.effective_end_ms().min(now_ms() + 1).max(from);
    let variants: Vec<VariantSpec> = serde_json::from_str(&e.variants).unwrap_or_default();
    let usage = state
        .store
        .variant_usage(a.id, from, to)
        .await
        .map_err(|e| internal(&e))?;
    let ratings = state
        .store
        .variant_ratings(e.id)
        .await
        .map_err(|e| internal(&e))?;
    let mut out = Vec::with_capacity(variants.len());
    for v in &variants {
        let u = usage
            .iter()
            .find(|u| u.variant == v.name)
            .cloned()
            .unwrap_or_default();
        let r = ratings
            .iter()
            .find(|(n, _)| *n == v.name)
            .map(|(_, r)| *r)
            .unwrap_or_default();
        let latencies = state
            .store
            .variant_latencies(a.id, from, to, &v.name)
            .await
            .map_err(|e| internal(&e))?;
        let interval = wilson(r.positive.unsigned_abs(), r.total.unsigned_abs(), Z95);
        out.push(VariantResult {
            name: v.name.clone(),
            weight: v.weight,
            conversations: u.conversations,
            messages: u.requests,
            errors: u.errors,
            error_rate: ratio(u.errors, u.requests),
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.prompt_tokens + u.completion_tokens,
            cost_micros: u.cost_micros,
            cost_per_message_micros: div_round(u.cost_micros, u.requests),
            latency_p50_ms: percentile(&latencies, 50),
            latency_p95_ms: percentile(&latencies, 95),
            ratings: RatingStats {
                positive: r.positive,
                negative: r.total - r.positive,
                total: r.total,
                positive_rate: ratio(r.positive, r.total),
                ci95_low: interval.map(|i| i.0),
                ci95_high: interval.map(|i| i.1),
            },
        });
    }
    let comparisons = compare(&out);
    Ok(Json(ExperimentResults {
        experiment: experiment_view(e, &a.slug),
        from: format_ms(from),
        to: format_ms(to),
        variants: out,
        comparisons,
    }))
}

/// Every variant after the first against the first.
pub fn compare(variants: &[VariantResult]) -> Vec<Comparison> {
    let Some(base) = variants.first() else {
        return Vec::new();
    };
    variants[1..]
        .iter()
        .map(|v| {
            let test = two_proportion_z(
                v.ratings.positive.unsigned_abs(),
                v.ratings.total.unsigned_abs(),
                base.ratings.positive.unsigned_abs(),
                base.ratings.total.unsigned_abs(),
            );
            Comparison {
                variant: v.name.clone(),
                baseline: base.name.clone(),
                rate_difference: v
                    .ratings
                    .positive_rate
                    .zip(base.ratings.positive_rate)
                    .map(|(a, b)| a - b),
                z: test.map(|t| t.0),
                p_value: test.map(|t| t.1),
                significant: test.is_some_and(|t| t.1 < 0.05),
            }
        })
        .collect()
}
