//! The admin API under `/admin/api`, guarded by `AdminAuth` on every handler.

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::access::api;
use crate::app::AppState;
use crate::assistants::admin as assistants;
use crate::experiments::{admin as experiments, results};
use crate::{cache, cost_report, ops};

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/api/deployments", get(ops::deployments))
        .route("/admin/api/keys", post(api::create).get(api::list))
        .route("/admin/api/keys/{id}", get(api::show))
        .route("/admin/api/keys/{id}/revoke", post(api::revoke))
        .route("/admin/api/keys/{id}/rotate", post(api::rotate))
        .route("/admin/api/keys/{id}/budget/reset", post(api::reset_budget))
        .route("/admin/api/audit", get(api::audit_log))
        .route(
            "/admin/api/assistants",
            get(assistants::list).post(assistants::create),
        )
        // Static segments win over `{slug}`; the slugs `export` and `import` are reserved.
        .route("/admin/api/assistants/export", get(assistants::export))
        .route("/admin/api/assistants/import", post(assistants::import))
        .route(
            "/admin/api/assistants/{slug}",
            get(assistants::get)
                .put(assistants::update)
                .delete(assistants::delete),
        )
        .route(
            "/admin/api/assistants/{slug}/versions",
            get(assistants::versions),
        )
        .route(
            "/admin/api/assistants/{slug}/versions/{version}",
            get(assistants::version),
        )
        .route(
            "/admin/api/assistants/{slug}/experiments",
            get(experiments::list).post(experiments::create),
        )
        .route("/admin/api/experiments/{id}", get(experiments::get))
        .route("/admin/api/experiments/{id}/stop", post(experiments::stop))
        .route("/admin/api/experiments/{id}/results", get(results::results))
        .route("/admin/api/usage", get(cost_report::usage))
        .route("/admin/api/usage/today", get(cost_report::today))
        .route("/admin/api/cache/purge", post(cache::admin::purge))
}
