//! The admin API under `/admin/api`, guarded by `AdminAuth` on every handler.

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::app::AppState;
use crate::{cache, ops};

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/api/deployments", get(ops::deployments))
        .route("/admin/api/cache/purge", post(cache::admin::purge))
}
