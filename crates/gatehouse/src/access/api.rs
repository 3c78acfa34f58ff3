//! Admin API for keys and the audit log (`/admin/api/keys…`, `/admin/api/audit`), every
//! handler behind `AdminAuth`. A new or rotated key is in the response once and never again.
//! Every change is audited (written before the answer) and reaches this instance's key set at
//! once, other instances within `keys.refresh_ms`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use store::{ApiKeyRow, AuditEntry, AuditFilter, NewApiKey, Store};
use utoipa::{IntoParams, ToSchema};

use super::keys::{self, ApiKey};
use super::{Access, Priority};
use crate::app::AppState;
use crate::audit;
use crate::auth::AdminAuth;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::extract::{ValidJson, parse_json};
use crate::usage::now_ms;

/// A new key's settings. Unset limits use the `[limits]` defaults; unset budgets mean none.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    pub name: String,
    pub owner: Option<String>,
    pub team: Option<String>,
    /// Model aliases the key may use; absent: all.
    pub allowed_models: Option<Vec<String>>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_concurrent: Option<u64>,
    pub daily_budget_micros: Option<i64>,
    pub monthly_budget_micros: Option<i64>,
    /// Unix milliseconds.
    pub expires_at_ms: Option<i64>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// Highest (and default) lane: `high`, `normal` (default) or `batch`.
    pub priority: Option<Priority>,
    /// When a budget is exhausted, serve `budgets.downgrade_model` instead of refusing.
    pub allow_downgrade: Option<bool>,
}

/// A key with its secret: shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    /// The whole key. It is not stored and cannot be shown again.
    pub key: String,
    #[serde(flatten)]
    pub info: ApiKey,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// How long the old secret keeps working (default 0: stops at once).
    pub grace_secs: Option<u64>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Include revoked keys.
    pub include_revoked: Option<bool>,
}

fn bad(param: &str, msg: impl Into<String>) -> ApiError {
    ApiError::invalid(param, msg)
}

fn to_i64(param: &str, v: Option<u64>) -> Result<Option<i64>, ApiError> {
    v.map(|n| i64::try_from(n).map_err(|_| bad(param, "too large")))
        .transpose()
}

/// Validate settings and store a new key; returns the secret and the row.
pub async fn create_key(store: &Store, c: &CreateKey) -> Result<(String, ApiKeyRow), ApiError> {
    let name = c.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(bad("name", "must be 1 to 200 characters"));
    }
    if let Some(models) = &c.allowed_models
        && models.iter().any(|m| m.trim().is_empty())
    {
        return Err(bad("allowed_models", "model aliases must not be empty"));
    }
    for (param, v) in [
        ("daily_budget_micros", c.daily_budget_micros),
        ("monthly_budget_micros", c.monthly_budget_micros),
    ] {
        if v.is_some_and(|n| n < 0) {
            return Err(bad(param, "must not be negative"));
        }
    }
    if c.expires_at_ms.is_some_and(|t| t <= now_ms()) {
        return Err(bad("expires_at_ms", "must be in the future"));
    }
    let metadata = c.metadata.clone().unwrap_or_else(|| serde_json::json!({}));
    if !metadata.is_object() || metadata.to_string().len() > 4_096 {
        return Err(bad("metadata", "must be a JSON object of at most 4 KiB"));
    }
    let (secret, prefix) = keys::generate();
    let new = NewApiKey {
        prefix,
        hash: keys::digest_hex(&secret),
        name: name.to_owned(),
        owner: c.owner.clone().filter(|s| !s.is_empty()),
        team: c.team.clone().filter(|s| !s.is_empty()),
        allowed_models: c
            .allowed_models
            .as_ref()
            .map(|m| serde_json::to_string(m).unwrap_or_else(|_| "[]".into())),
        rpm: to_i64("rpm", c.rpm)?,
        tpm: to_i64("tpm", c.tpm)?,
        max_concurrent: to_i64("max_concurrent", c.max_concurrent)?,
        daily_budget_micros: c.daily_budget_micros,
        monthly_budget_micros: c.monthly_budget_micros,
        expires_at_ms: c.expires_at_ms,
        metadata: metadata.to_string(),
        priority: c.priority.unwrap_or(Priority::Normal).as_str().to_owned(),
        allow_downgrade: c.allow_downgrade.unwrap_or(false),
    };
    let row = store.insert_key(&new, now_ms()).await.map_err(internal)?;
    Ok((secret, row))
}

/// Give a live key a new secret; the old one works for `grace_secs` more.
pub async fn rotate_key(
    store: &Store,
    id: i64,
    grace_secs: u64,
) -> Result<(String, ApiKeyRow), ApiError> {
    let (secret, prefix) = keys::generate();
    let grace = (grace_secs > 0).then(|| {
        now_ms().saturating_add(i64::try_from(grace_secs.saturating_mul(1_000)).unwrap_or(i64::MAX))
    });
    let row = store
        .rotate_key(id, &prefix, &keys::digest_hex(&secret), grace)
        .await
        .map_err(internal)?
        .ok_or_else(|| not_found(id))?;
    Ok((secret, row))
}

pub fn internal(e: store::StoreError) -> ApiError {
    tracing::error!(error = %e, "key store failed");
    ApiError::new(
        ErrorCode::Internal,
        "The key store failed; see the server log",
    )
}

fn not_found(id: i64) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("No live API key with id {id}"))
}

async fn changed(
    state: &AppState,
    action: &str,
    row: &ApiKeyRow,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    if let Err(e) = state.access.keys.refresh(&state.store).await {
        tracing::error!(error = %e, "could not reload keys after a change");
    }
    let mut e = audit::entry("admin", action, Some(format!("key:{}", row.id)), "ok");
    e.detail = Some(detail.to_string());
    state.access.audit.write(e).await.map_err(internal)
}

/// Creates an API key. The response holds the key; it is never shown again.
#[utoipa::path(post, path = "/admin/api/keys", tag = "admin", request_body = CreateKey,
    responses((status = 201, body = CreatedKey), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn create(
    _: AdminAuth,
    State(state): State<Arc<AppState>>,
    ValidJson(c): ValidJson<CreateKey>,
) -> Result<Response, ApiError> {
    let (secret, row) = create_key(&state.store, &c).await?;
    changed(
        &state,
        "key.create",
        &row,
        serde_json::json!({ "name": row.name, "prefix": row.prefix }),
    )
    .await?;
    let body = CreatedKey {
        key: secret,
        info: ApiKey::from_row(&row),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Lists API keys (never their secrets).
#[utoipa::path(get, path = "/admin/api/keys", tag = "admin", params(ListQuery),
    responses((status = 200, body = [ApiKey]), (status = 401, body = ErrorBody)), security(("admin_key" = [])))]
pub async fn list(
    _: AdminAuth,
    State(state): State<Arc<AppState>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<ApiKey>>, ApiError> {
    let rows = state.store.list_keys().await.map_err(internal)?;
    let all = q.include_revoked.unwrap_or(false);
    Ok(Json(
        rows.iter()
            .filter(|r| all || r.revoked_at_ms.is_none())
            .map(ApiKey::from_row)
            .collect(),
    ))
}

/// One API key with its current spend.
#[utoipa::path(get, path = "/admin/api/keys/{id}", tag = "admin", params(("id" = i64, Path, description = "Key id")),
    responses((status = 200, body = super::usage::UsageReport), (status = 404, body = ErrorBody)), security(("admin_key" = [])))]
pub async fn show(
    _: AdminAuth,
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
) -> Result<Json<super::usage::UsageReport>, ApiError> {
    let row = state
        .store
        .get_key(id)
        .await
        .map_err(internal)?
        .ok_or_else(|| not_found(id))?;
    Ok(Json(
        super::usage::report(&state, &ApiKey::from_row(&row)).await?,
    ))
}

/// Revokes a key on every instance within a second.
#[utoipa::path(post, path = "/admin/api/keys/{id}/revoke", tag = "admin", params(("id" = i64, Path, description = "Key id")),
    responses((status = 200, body = ApiKey), (status = 404, body = ErrorBody)), security(("admin_key" = [])))]
pub async fn revoke(
    _: AdminAuth,
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
) -> Result<Json<ApiKey>, ApiError> {
    let row = state
        .store
        .revoke_key(id, now_ms())
        .await
        .map_err(internal)?
        .ok_or_else(|| not_found(id))?;
    changed(
        &state,
        "key.revoke",
        &row,
        serde_json::json!({ "prefix": row.prefix }),
    )
    .await?;
    Ok(Json(ApiKey::from_row(&row)))
}

/// Gives a key a new secret (shown once); the old one works for `grace_secs` more.
#[utoipa::path(post, path = "/admin/api/keys/{id}/rotate", tag = "admin", params(("id" = i64, Path, description = "Key id")),
    request_body = RotateKey, responses((status = 200, body = CreatedKey), (status = 404, body = ErrorBody)), security(("admin_key" = [])))]
pub async fn rotate(
    _: AdminAuth,
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Json<CreatedKey>, ApiError> {
    let grace = if body.is_empty() {
        0
    } else {
        parse_json::<RotateKey>(&body)?.grace_secs.unwrap_or(0)
    };
    let (secret, row) = rotate_key(&state.store, id, grace).await?;
    changed(&state, "key.rotate", &row, serde_json::json!({ "prefix": row.prefix, "old_prefix": row.previous_prefix, "grace_secs": grace })).await?;
    Ok(Json(CreatedKey {
        key: secret,
        info: ApiKey::from_row(&row),
    }))
}

/// Starts a key's daily and monthly budgets over from now.
#[utoipa::path(post, path = "/admin/api/keys/{id}/budget/reset", tag = "admin", params(("id" = i64, Path, description = "Key id")),
    responses((status = 200, body = ApiKey), (status = 404, body = ErrorBody)), security(("admin_key" = [])))]
pub async fn reset_budget(
    _: AdminAuth,
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
) -> Result<Json<ApiKey>, ApiError> {
    let row = state
        .store
        .reset_key_budget(id, now_ms())
        .await
        .map_err(internal)?
        .ok_or_else(|| not_found(id))?;
    reset_backend_budget(&state.access, id).await;
    changed(
        &state,
        "budget.reset",
        &row,
        serde_json::json!({ "prefix": row.prefix }),
    )
    .await?;
    Ok(Json(ApiKey::from_row(&row)))
}

async fn reset_backend_budget(access: &Access, id: i64) {
    access.reset_local_budget(id);
    if let Some(r) = &access.redis {
        let keys = Access::budget_keys(Some(id), now_ms());
        for k in [keys.key_daily, keys.key_monthly].into_iter().flatten() {
            if let Err(e) = r.reset_budget(&k).await {
                access.redis_failed("reset", &e);
            }
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AuditQuery {
    /// e.g. `key.create`, `key.revoke`, `key.rotate`, `budget.reset`, `auth.failure`,
    /// `admin.auth_failure`, `ratelimit.reject`, `budget.reject`.
    pub action: Option<String>,
    /// `admin`, `cli`, `key:<id>`, `ip:<addr>`.
    pub actor: Option<String>,
    /// e.g. `key:12`.
    pub target: Option<String>,
    /// `ok`, `denied` or `error`.
    pub outcome: Option<String>,
    /// Unix ms, inclusive.
    pub since_ms: Option<i64>,
    /// Unix ms, exclusive.
    pub until_ms: Option<i64>,
    /// Page backwards: entries older than this id.
    pub before_id: Option<i64>,
    /// 1 to 1,000 (default 100).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditRow {
    pub id: i64,
    pub ts_ms: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    /// Newest first.
    pub data: Vec<AuditRow>,
}

impl From<AuditEntry> for AuditRow {
    fn from(e: AuditEntry) -> AuditRow {
        AuditRow {
            id: e.id,
            ts_ms: e.ts_ms,
            actor: e.actor,
            action: e.action,
            target: e.target,
            outcome: e.outcome,
            request_id: e.request_id,
            ip: e.ip,
            detail: e.detail.and_then(|d| serde_json::from_str(&d).ok()),
        }
    }
}

/// The audit log, newest first, with filters.
#[utoipa::path(get, path = "/admin/api/audit", tag = "admin", params(AuditQuery),
    responses((status = 200, body = AuditList), (status = 401, body = ErrorBody)), security(("admin_key" = [])))]
pub async fn audit_log(
    _: AdminAuth,
    State(state): State<Arc<AppState>>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditList>, ApiError> {
    let filter = AuditFilter {
        action: q.action,
        actor: q.actor,
        target: q.target,
        outcome: q.outcome,
        since_ms: q.since_ms,
        until_ms: q.until_ms,
        before_id: q.before_id,
        limit: q.limit.unwrap_or(100),
    };
    let rows = state.store.query_audit(&filter).await.map_err(internal)?;
    Ok(Json(AuditList {
        data: rows.into_iter().map(AuditRow::from).collect(),
    }))
}
