//! Path → handler tables, one file per API family, and the OpenAPI document they make up.

mod admin;
mod ops;
mod v1;

use std::sync::Arc;

use axum::Router;
use utoipa::OpenApi;

use crate::app::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Gatehouse", description = "Self-hosted LLM gateway: OpenAI-compatible API, operations endpoints."),
    paths(
        crate::chat::chat_completions,
        crate::embeddings::embeddings,
        crate::ops::list_models,
        crate::ops::health,
        crate::ops::ready,
        crate::ops::metrics,
        crate::ops::openapi,
        crate::ops::deployments,
        crate::access::usage::own_usage,
        crate::access::api::create,
        crate::access::api::list,
        crate::access::api::show,
        crate::access::api::revoke,
        crate::access::api::rotate,
        crate::access::api::reset_budget,
        crate::access::api::audit_log,
    ),
    modifiers(&AdminKeyScheme),
    tags(
        (name = "openai", description = "OpenAI-compatible API"),
        (name = "ops", description = "Operations"),
        (name = "admin", description = "Admin API (Authorization: Bearer $GATEHOUSE_ADMIN_KEY)")
    )
)]
pub struct ApiDoc;

/// Declares the admin credential as a bearer security scheme.
struct AdminKeyScheme;

impl utoipa::Modify for AdminKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .merge(v1::router())
        .merge(ops::router())
        .merge(admin::router())
}
