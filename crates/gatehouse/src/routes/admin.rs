//! The admin API under `/admin/api`, guarded by `AdminAuth` on every handler.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use crate::app::AppState;
use crate::ops;

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/admin/api/deployments", get(ops::deployments))
}
