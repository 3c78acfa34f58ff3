//! The admin API under `/admin/api`, guarded by `AdminAuth` on every handler.

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::access::api;
use crate::app::AppState;
use crate::ops;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/api/deployments", get(ops::deployments))
        .route("/admin/api/keys", post(api::create).get(api::list))
        .route("/admin/api/keys/{id}", get(api::show))
        .route("/admin/api/keys/{id}/revoke", post(api::revoke))
        .route("/admin/api/keys/{id}/rotate", post(api::rotate))
        .route("/admin/api/keys/{id}/budget/reset", post(api::reset_budget))
        .route("/admin/api/audit", get(api::audit_log))
}
