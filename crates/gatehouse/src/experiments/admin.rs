//! Admin API of experiments: create one on an assistant, list and read them, and stop one —
//! optionally promoting a variant into the assistant's next version in the same call.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use store::{ExperimentRecord, NewExperiment};
use utoipa::ToSchema;

use super::{VariantSpec, validate_variants};
use crate::app::AppState;
use crate::assistants::admin::{AssistantView, ForceQuery, view as assistant_view};
use crate::assistants::apply::internal;
use crate::assistants::spec::AssistantSpec;
use crate::auth::AdminAuth;
use crate::dates::{format_ms, parse_ms};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::extract::{ValidJson, ValidQuery, parse_json};
use crate::usage::now_ms;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateExperiment {
    pub name: String,
    pub variants: Vec<VariantSpec>,
    /// RFC 3339 or `YYYY-MM-DD` (UTC); default now.
    #[serde(default)]
    pub starts_at: Option<String>,
    /// RFC 3339 or `YYYY-MM-DD` (UTC); default open-ended (until stopped).
    #[serde(default)]
    pub ends_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExperimentView {
    pub id: i64,
    /// The assistant's slug.
    pub assistant: String,
    pub name: String,
    /// `scheduled`, `running`, `ended` or `stopped`.
    pub status: &'static str,
    pub variants: Vec<VariantSpec>,
    pub starts_at: String,
    pub ends_at: Option<String>,
    pub stopped_at: Option<String>,
    pub promoted_variant: Option<String>,
    pub promoted_version_id: Option<i64>,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExperimentList {
    pub object: &'static str,
    pub data: Vec<ExperimentView>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StopExperiment {
    /// A variant to promote: the assistant's next version takes its prompt, model and
    /// temperature.
    #[serde(default)]
    pub promote: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StopResult {
    pub experiment: ExperimentView,
    /// The assistant after promotion.
    pub assistant: Option<AssistantView>,
}

pub fn status(r: &ExperimentRecord, now: i64) -> &'static str {
    if r.stopped_at_ms.is_some() {
        "stopped"
    } else if now < r.starts_at_ms {
        "scheduled"
    } else if r.ends_at_ms.is_some_and(|e| now >= e) {
        "ended"
    } else {
        "running"
    }
}

pub fn experiment_view(r: ExperimentRecord, slug: &str) -> ExperimentView {
    ExperimentView {
        id: r.id,
        assistant: slug.to_owned(),
        status: status(&r, now_ms()),
        variants: serde_json::from_str(&r.variants).unwrap_or_default(),
        name: r.name,
        starts_at: format_ms(r.starts_at_ms),
        ends_at: r.ends_at_ms.map(format_ms),
        stopped_at: r.stopped_at_ms.map(format_ms),
        promoted_variant: r.promoted_variant,
        promoted_version_id: r.promoted_version_id,
        created_at: format_ms(r.created_at_ms),
    }
}

fn no_assistant(slug: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!(
            "There is no assistant `{}`",
            slug.chars().take(64).collect::<String>()
        ),
    )
}

/// The experiment `id` and its assistant's slug (404 when either is gone).
pub async fn load(
    state: &AppState,
    id: &str,
) -> Result<(ExperimentRecord, store::AssistantRecord), ApiError> {
    let missing = || {
        ApiError::new(
            ErrorCode::NotFound,
            format!(
                "There is no experiment {}",
                id.chars().take(32).collect::<String>()
            ),
        )
    };
    let n: i64 = id.parse().map_err(|_| missing())?;
    let e = state
        .store
        .experiment(n)
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(missing)?;
    let a = state
        .store
        .assistant_by_id(e.assistant_id)
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(missing)?;
    Ok((e, a))
}

fn parse_date(field: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| {
            parse_ms(v).ok_or_else(|| {
                ApiError::invalid(
                    field,
                    format!(
                        "`{field}` must be RFC 3339 (2025-07-01T09:00:00Z) or a day (2025-07-01)"
                    ),
                )
            })
        })
        .transpose()
}

/// Starts (or schedules) an experiment on an assistant. Windows of one assistant's experiments
/// may not overlap.
#[utoipa::path(post, path = "/admin/api/assistants/{slug}/experiments", tag = "admin", security(("admin_key" = [])),
    params(("slug" = String, Path), ForceQuery), request_body = CreateExperiment,
    responses((status = 201, body = ExperimentView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Overlaps another experiment", body = ErrorBody)))]
pub async fn create(
    _: AdminAuth,
    State(state): State<Arc<AppState>>,
    Path(slug): Path<String>,
    ValidQuery(q): ValidQuery<ForceQuery>,
    ValidJson(body): ValidJson<CreateExperiment>,
) -> Result<Response, ApiError> {
    let a = state
        .store
        .assistant(&slug)
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(|| no_assistant(&slug))?;
    let spec: AssistantSpec = serde_json::from_str(&a.spec)
        .map_err(|_| ApiError::new(ErrorCode::Internal, "Internal error (stored assistant)"))?;
    if body.name.trim().is_empty() || body.name.chars().count() > 200 {
        return Err(ApiError::invalid(
            "name",
            "`name` must be 1 to 200 characters",
        ));
    }
    validate_variants(&state, &body.variants, &spec.model, q.force)?;
    let now = now_ms();
    let starts = parse_date("starts_at", body.starts_at.as_deref())?.unwrap_or(now);
    let ends = parse_date("ends_at", body.ends_at.as_deref())?;
    if ends.is_some_and(|e| e <= starts) {
        return Err(ApiError::invalid(
            "ends_at",
            "`ends_at` must be after `starts_at`",
        ));
    }
    if ends.is_some_and(|e| e <= now) {
        return Err(ApiError::invalid("ends_at", "`ends_at` is in the past"));
    }
    let created = state
        .store
        .create_experiment(
            &NewExperiment {
                assistant_id: a.id,
                name: body.name.trim().to_owned(),
                variants: serde_json::to_string(&body.variants).unwrap_or_default(),
                starts_at_ms: starts,
                ends_at_ms: ends,
            },
            now,
        )
        .await
        .map_err(|e| internal(&e))?
        .map_err(|other| {
            ApiError::new(
                ErrorCode::Conflict,
                format!("The window overlaps experiment {other} of `{slug}`; stop it or pick other dates"),
            )
        })?;
    state.assistants.forget(&slug);
    Ok((StatusCode::CREATED, Json(experiment_view(created, &a.slug))).into_response())
}

/// An assistant's experiments, newest first.
#[utoipa::path(get, path = "/admin/api/assistants/{slug}/experiments", tag = "admin", security(("admin_key" = [])),
    params(("slug" = String, Path)), responses((status = 200, body = ExperimentList), (status = 404, body = ErrorBody)))]
pub async fn list(
    _: AdminAuth,
    State(state): State<Arc<AppState>>,
    Path(slug): Path<String>,
) -> Result<Json<ExperimentList>, ApiError> {
    let a = state
        .store
        .assistant(&slug)
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(|| no_assistant(&slug))?;
    let rows = state
        .store
        .experiments(a.id)
        .await
        .map_err(|e| internal(&e))?;
    Ok(Json(ExperimentList {
        object: "list",
        data: rows
            .into_iter()
            .map(|r| experiment_view(r, &a.slug))
            .collect(),
    }))
}

/// One experiment.
#[utoipa::path(get, path = "/admin/api/experiments/{id}", tag = "admin", security(("admin_key" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = ExperimentView), (status = 404, body = ErrorBody)))]
pub async fn get(
    _: AdminAuth,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<ExperimentView>, ApiError> {
    let (e, a) = load(&state, &id).await?;
    Ok(Json(experiment_view(e, &a.slug)))
}

/// Stops an experiment; with `promote`, the named variant becomes the assistant's next
/// version in the same transaction.
#[utoipa::path(post, path = "/admin/api/experiments/{id}/stop", tag = "admin", security(("admin_key" = [])),
    params(("id" = i64, Path)), request_body = StopExperiment,
    responses((status = 200, body = StopResult), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Already stopped", body = ErrorBody)))]
pub async fn stop(
    _: AdminAuth,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<StopResult>, ApiError> {
    // An empty body just stops.
    let body: StopExperiment = if body.is_empty() {
        StopExperiment::default()
    } else {
        parse_json(&body)?
    };
    let (e, a) = load(&state, &id).await?;
    if e.stopped_at_ms.is_some() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("Experiment {} is already stopped", e.id),
        ));
    }
    let promotion = match &body.promote {
        None => None,
        Some(name) => {
            let variants: Vec<VariantSpec> = serde_json::from_str(&e.variants).unwrap_or_default();
            let v = variants.iter().find(|v| &v.name == name).ok_or_else(|| {
                ApiError::invalid(
                    "promote",
                    format!("Experiment {} has no variant `{name}`", e.id),
                )
            })?;
            let mut spec: AssistantSpec = serde_json::from_str(&a.spec).map_err(|_| {
                ApiError::new(ErrorCode::Internal, "Internal error (stored assistant)")
            })?;
            if let Some(p) = &v.system_prompt {
                spec.system_prompt.clone_from(p);
            }
            if let Some(m) = &v.model {
                spec.model.clone_from(m);
            }
            if v.temperature.is_some() {
                spec.temperature = v.temperature;
            }
            Some((
                name.clone(),
                spec.to_json(),
                format!("promoted variant `{name}` of experiment {}", e.id),
            ))
        }
    };
    let stopped = state
        .store
        .stop_experiment(
            e.id,
            now_ms(),
            promotion
                .as_ref()
                .map(|(n, s, note)| (n.as_str(), s.as_str(), note.as_str())),
        )
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::Conflict,
                format!("Experiment {} was stopped meanwhile", e.id),
            )
        })?;
    state.assistants.forget(&a.slug);
    let assistant = if promotion.is_some() {
        let record = state
            .store
            .assistant(&a.slug)
            .await
            .map_err(|e| internal(&e))?;
        record.map(assistant_view).transpose()?
    } else {
        None
    };
    Ok(Json(StopResult {
        experiment: experiment_view(stopped, &a.slug),
        assistant,
    }))
}
