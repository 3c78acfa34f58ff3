//! Handlers for `/v1/models`, `/health`, `/ready`, `/metrics` and `/openapi.json`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::app::AppState;
use crate::routes::ApiDoc;

#[derive(Serialize, ToSchema)]
pub struct ModelList {
    pub object: &'static str,
    pub data: Vec<ModelObject>,
}

#[derive(Serialize, ToSchema)]
pub struct ModelObject {
    pub id: String,
    pub object: &'static str,
    pub created: i64,
    pub owned_by: String,
}

/// Lists the models declared in configuration (OpenAI format).
#[utoipa::path(get, path = "/v1/models", tag = "openai", responses((status = 200, body = ModelList)))]
pub async fn list_models(State(state): State<Arc<AppState>>) -> Json<ModelList> {
    let data = state
        .router
        .listing()
        .iter()
        .map(|(alias, provider)| ModelObject {
            id: alias.clone(),
            object: "model",
            created: 0,
            owned_by: provider.clone(),
        })
        .collect();
    Json(ModelList {
        object: "list",
        data,
    })
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// Liveness: the process is up and serving.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `healthy`, `degraded` (serving, but a deployment's circuit is open or cooling down, or the
    /// ledger queue is over half full) or `unhealthy` (503: the database is down, or no
    /// deployment can take traffic).
    pub status: &'static str,
    pub database: DependencyStatus,
    pub ledger: LedgerStatus,
    pub deployments: Vec<crate::resilience::DeploymentHealth>,
    pub access: crate::access::AccessStatus,
}

#[derive(Serialize, ToSchema)]
pub struct DependencyStatus {
    /// `healthy` or `unhealthy`.
    pub status: &'static str,
    pub backend: &'static str,
    pub latency_ms: u64,
}

#[derive(Serialize, ToSchema)]
pub struct LedgerStatus {
    /// `healthy`, or `degraded` when the queue is over half full.
    pub status: &'static str,
    pub queue_depth: usize,
    pub queue_capacity: usize,
    pub dropped: u64,
}

/// Readiness: the database answers within two seconds, the ledger queue has room, and the
/// deployments' circuits (with their last errors).
#[utoipa::path(get, path = "/ready", tag = "ops", responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let started = Instant::now();
    let db_ok = matches!(
        tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await,
        Ok(Ok(()))
    );
    let database = DependencyStatus {
        status: if db_ok { "healthy" } else { "unhealthy" },
        backend: state.store.backend(),
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    let depth = state.ledger.queue_depth();
    let capacity = state.config.ledger.queue_capacity;
    let ledger = LedgerStatus {
        status: if depth * 2 > capacity {
            "degraded"
        } else {
            "healthy"
        },
        queue_depth: depth,
        queue_capacity: capacity,
        dropped: state.ledger.stats().snapshot().dropped,
    };
    let deployments = state.router.health();
    let any_usable = deployments.is_empty()
        || deployments
            .iter()
            .any(|d| d.circuit != "open" && !d.cooling_down);
    let access = state.access.status();
    let degraded = access.status != "healthy"
        || ledger.status != "healthy"
        || deployments
            .iter()
            .any(|d| d.circuit != "closed" || d.cooling_down);
    let (status, word) = if !db_ok || !any_usable {
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy")
    } else if degraded {
        (StatusCode::OK, "degraded")
    } else {
        (StatusCode::OK, "healthy")
    };
    let body = Readiness {
        status: word,
        database,
        ledger,
        deployments,
        access,
    };
    (status, Json(body)).into_response()
}

/// Prometheus text exposition of this instance's metrics.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let text = state.metrics.render(&state.ledger);
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// This document: OpenAPI 3.1, generated from the handlers and types.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200, content_type = "application/json", body = Object)))]
pub async fn openapi() -> Response {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(|| ApiDoc::openapi().to_json().unwrap_or_default());
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        doc.clone(),
    )
        .into_response()
}

/// Every deployment's circuit state, in-flight calls, latency and last error.
#[utoipa::path(
    get,
    path = "/admin/api/deployments",
    tag = "admin",
    responses((status = 200, body = [crate::resilience::DeploymentHealth]), (status = 401, body = crate::error::ErrorBody)),
    security(("admin_key" = []))
)]
pub async fn deployments(
    _: crate::auth::AdminAuth,
    State(state): State<Arc<AppState>>,
) -> Json<Vec<crate::resilience::DeploymentHealth>> {
    Json(state.router.health())
}
