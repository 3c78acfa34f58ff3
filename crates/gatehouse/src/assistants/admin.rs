//! `/admin/api/assistants…`: create, read, update (each change a new version), delete, the
//! version history, and export/import of every assistant as one JSON or TOML file.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::apply::internal;
use super::spec::AssistantSpec;
use crate::app::AppState;
use crate::auth::AdminAuth;
use crate::dates::format_ms;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::extract::{ValidJson, ValidQuery, parse_json};
use crate::usage::now_ms;

/// `?force=true` saves prompts over the token limit.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct ForceQuery {
    #[serde(default)]
    pub force: bool,
}

/// An assistant at its current version: the definition plus its identity.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantView {
    #[serde(flatten)]
    pub spec: AssistantSpec,
    pub id: i64,
    /// Current version number (1, 2, …).
    pub version: i64,
    /// Id of the current version; usage records point at it.
    pub version_id: i64,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantList {
    pub object: &'static str,
    pub data: Vec<AssistantView>,
}

/// One version of an assistant.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    pub version: i64,
    pub version_id: i64,
    pub created_at: String,
    pub note: Option<String>,
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionList {
    pub object: &'static str,
    pub data: Vec<VersionView>,
}

/// The backup file: every live assistant's current definition.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssistantsFile {
    /// `gatehouse-assistants`.
    #[serde(default)]
    pub format: Option<String>,
    /// Format version, 1.
    #[serde(default)]
    pub version: Option<u32>,
    #[serde(default)]
    pub exported_at: Option<String>,
    pub assistants: Vec<AssistantSpec>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct ExportQuery {
    /// `json` (default) or `toml`.
    #[serde(default)]
    pub format: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportResult {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
}

pub fn view(record: store::AssistantRecord) -> Result<AssistantView, ApiError> {
    let spec: AssistantSpec = serde_json::from_str(&record.spec).map_err(|e| {
        tracing::error!(slug = %record.slug, error = %e, "stored assistant does not parse");
        ApiError::new(ErrorCode::Internal, "Internal error (stored assistant)")
    })?;
    Ok(AssistantView {
        spec,
        id: record.id,
        version: record.version,
        version_id: record.version_id,
        created_at: format_ms(record.created_at_ms),
        updated_at: format_ms(record.updated_at_ms),
    })
}

fn not_found(slug: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!(
            "There is no assistant `{}`",
            slug.chars().take(64).collect::<String>()
        ),
    )
}

/// Lists every assistant at its current version.
#[utoipa::path(get, path = "/admin/api/assistants", tag = "admin", security(("admin_key" = [])),
    responses((status = 200, body = AssistantList), (status = 401, body = ErrorBody)))]
pub async fn list(
    _: AdminAuth,
    State(state): State<Arc<AppState>>,
) -> Result<Json<AssistantList>, ApiError> {
    let records = state.store.assistants().await.map_err(|e| internal(&e))?;
    let data = records.into_iter().map(view).collect::<Result<_, _>>()?;
    Ok(Json(AssistantList {
        object: "list",
        data,
    }))
}

/// Creates an assistant (version 1).
#[utoipa::path(post, path = "/admin/api/assistants", tag = "admin", security(("admin_key" = [])),
    params(ForceQuery), request_body = AssistantSpec,
    responses((status = 201, body = AssistantView), (status = 400, body = ErrorBody),
        (status = 409, description = "The slug is taken", body = ErrorBody)))]
pub async fn create(
    _: AdminAuth,
    State(state): State<Arc<AppState>>,
    ValidQuery(q): ValidQuery<ForceQuery>,
    ValidJson(spec): ValidJson<AssistantSpec>,
) -> Result<Response, ApiError> {
    spec.validate(&state, "", q.force)?;
    let created = state
        .store
        .create_assistant(&spec.slug, &spec.to_json(), None, now_ms())
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::Conflict,
                format!("An assistant `{}` already exists", spec.slug),
            )
        })?;
    state.assistants.forget(&spec.slug);
    Ok((StatusCode::CREATED, Json(view(created)?)).into_response())
}

/// One assistant at its current version.
#[utoipa::path(get, path = "/admin/api/assistants/{slug}", tag = "admin", security(("admin_key" = [])),
    params(("slug" = String, Path)), responses((status = 200, body = AssistantView), (status = 404, body = ErrorBody)))]
pub async fn get(
    _: AdminAuth,
    State(state): State<Arc<AppState>>,
    Path(slug): Path<String>,
) -> Result<Json<AssistantView>, ApiError> {
    let record = state
        .store
        .assistant(&slug)
        .await
        .map_err(|e| internal(&e))?;
    Ok(Json(view(record.ok_or_else(|| not_found(&slug))?)?))
}

/// Replaces an assistant's definition: a new version when anything changed.
#[utoipa::path(put, path = "/admin/api/assistants/{slug}", tag = "admin", security(("admin_key" = [])),
    params(("slug" = String, Path), ForceQuery), request_body = AssistantSpec,
    responses((status = 200, body = AssistantView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(
    _: AdminAuth,
    State(state): State<Arc<AppState>>,
    Path(slug): Path<String>,
    ValidQuery(q): ValidQuery<ForceQuery>,
    ValidJson(mut spec): ValidJson<AssistantSpec>,
) -> Result<Json<AssistantView>, ApiError> {
    if spec.slug.is_empty() {
        spec.slug.clone_from(&slug);
    } else if spec.slug != slug {
        return Err(ApiError::invalid(
            "slug",
            format!(
                "The slug cannot change (the path says `{slug}`); create a new assistant instead"
            ),
        ));
    }
    spec.validate(&state, "", q.force)?;
    let record = state
        .store
        .update_assistant(&slug, &spec.to_json(), None, now_ms())
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(|| not_found(&slug))?;
    state.assistants.forget(&slug);
    Ok(Json(view(record)?))
}

/// Deletes an assistant: clients get 404 for it, its history stays for the usage reports,
/// and creating the slug again continues its version numbers.
#[utoipa::path(delete, path = "/admin/api/assistants/{slug}", tag = "admin", security(("admin_key" = [])),
    params(("slug" = String, Path)), responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    _: AdminAuth,
    State(state): State<Arc<AppState>>,
    Path(slug): Path<String>,
) -> Result<StatusCode, ApiError> {
    let deleted = state
        .store
        .delete_assistant(&slug, now_ms())
        .await
        .map_err(|e| internal(&e))?;
    state.assistants.forget(&slug);
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&slug))
    }
}

fn version_view(v: store::AssistantVersion) -> VersionView {
    VersionView {
        version: v.version,
        version_id: v.id,
        created_at: format_ms(v.created_at_ms),
        note: v.note,
        spec: serde_json::from_str(&v.spec).unwrap_or(serde_json::Value::Null),
    }
}

/// The version history, oldest first.
#[utoipa::path(get, path = "/admin/api/assistants/{slug}/versions", tag = "admin", security(("admin_key" = [])),
    params(("slug" = String, Path)), responses((status = 200, body = VersionList), (status = 404, body = ErrorBody)))]
pub async fn versions(
    _: AdminAuth,
    State(state): State<Arc<AppState>>,
    Path(slug): Path<String>,
) -> Result<Json<VersionList>, ApiError> {
    let versions = state
        .store
        .assistant_versions(&slug)
        .await
        .map_err(|e| internal(&e))?;
    if versions.is_empty() {
        return Err(not_found(&slug));
    }
    Ok(Json(VersionList {
        object: "list",
        data: versions.into_iter().map(version_view).collect(),
    }))
}

/// One version.
#[utoipa::path(get, path = "/admin/api/assistants/{slug}/versions/{version}", tag = "admin", security(("admin_key" = [])),
    params(("slug" = String, Path), ("version" = i64, Path)),
    responses((status = 200, body = VersionView), (status = 404, body = ErrorBody)))]
pub async fn version(
    _: AdminAuth,
    State(state): State<Arc<AppState>>,
    Path((slug, number)): Path<(String, String)>,
) -> Result<Json<VersionView>, ApiError> {
    let missing = || {
        ApiError::new(
            ErrorCode::NotFound,
            format!("Assistant `{slug}` has no version {number}"),
        )
    };
    let n: i64 = number.parse().map_err(|_| missing())?;
    let v = state
        .store
        .assistant_version(&slug, n)
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(missing)?;
    Ok(Json(version_view(v)))
}

/// Every assistant's current definition as one file (`?format=toml` for TOML).
#[utoipa::path(get, path = "/admin/api/assistants/export", tag = "admin", security(("admin_key" = [])),
    params(ExportQuery), responses((status = 200, body = AssistantsFile), (status = 400, body = ErrorBody)))]
pub async fn export(
    _: AdminAuth,
    State(state): State<Arc<AppState>>,
    ValidQuery(q): ValidQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let records = state.store.assistants().await.map_err(|e| internal(&e))?;
    let file = AssistantsFile {
        format: Some("gatehouse-assistants".into()),
        version: Some(1),
        exported_at: Some(format_ms(now_ms())),
        assistants: records
            .into_iter()
            .map(|r| view(r).map(|v| v.spec))
            .collect::<Result<_, _>>()?,
    };
    let (body, content_type, ext) = match q.format.as_deref().unwrap_or("json") {
        "json" => (
            serde_json::to_string_pretty(&file).unwrap_or_default(),
            "application/json",
            "json",
        ),
        "toml" => (
            toml::to_string(&file).map_err(|e| {
                tracing::error!(error = %e, "TOML export failed");
                ApiError::new(ErrorCode::Internal, "Internal error (TOML export)")
            })?,
            "application/toml",
            "toml",
        ),
        other => {
            return Err(ApiError::invalid(
                "format",
                format!("`{other}` is not an export format; use json or toml"),
            ));
        }
    };
    let disposition = format!("attachment; filename=\"gatehouse-assistants.{ext}\"");
    Ok((
        [
            (http::header::CONTENT_TYPE, content_type.to_owned()),
            (http::header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// Creates or updates every assistant of an export file, in one transaction (all or none).
/// JSON, or TOML with a `content-type` containing `toml`.
#[utoipa::path(post, path = "/admin/api/assistants/import", tag = "admin", security(("admin_key" = [])),
    params(ForceQuery), request_body = AssistantsFile,
    responses((status = 200, body = ImportResult), (status = 400, body = ErrorBody)))]
pub async fn import(
    _: AdminAuth,
    State(state): State<Arc<AppState>>,
    ValidQuery(q): ValidQuery<ForceQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ImportResult>, ApiError> {
    let is_toml = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("toml"));
    let file: AssistantsFile = if is_toml {
        let text = std::str::from_utf8(&body)
            .map_err(|_| ApiError::new(ErrorCode::InvalidRequest, "The TOML file is not UTF-8"))?;
        toml::from_str(text).map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                format!("Invalid TOML: {}", e.message()),
            )
        })?
    } else {
        parse_json(&body)?
    };
    if file
        .format
        .as_deref()
        .is_some_and(|f| f != "gatehouse-assistants")
        || file.version.is_some_and(|v| v != 1)
    {
        return Err(ApiError::invalid(
            "format",
            "This is not a version 1 gatehouse-assistants file",
        ));
    }
    let mut items = Vec::with_capacity(file.assistants.len());
    for (i, spec) in file.assistants.iter().enumerate() {
        let at = format!("assistants[{i}].");
        spec.validate(&state, &at, q.force)?;
        if file.assistants[..i].iter().any(|o| o.slug == spec.slug) {
            return Err(ApiError::invalid(
                format!("{at}slug"),
                format!("`{}` appears twice", spec.slug),
            ));
        }
        items.push((spec.slug.clone(), spec.to_json()));
    }
    let counts = state
        .store
        .import_assistants(&items, Some("import"), now_ms())
        .await
        .map_err(|e| internal(&e))?;
    state.assistants.forget_all();
    Ok(Json(ImportResult {
        created: counts.created,
        updated: counts.updated,
        unchanged: counts.unchanged,
    }))
}
