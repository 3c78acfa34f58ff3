//! The admin API under `/admin/api`, guarded by `AdminAuth` on every handler.

use std::sync::Arc;

use axum::Router;

use crate::app::AppState;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
}
