//! Operations endpoints: liveness, readiness, metrics, the OpenAPI document.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use crate::app::AppState;
use crate::ops;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
}
