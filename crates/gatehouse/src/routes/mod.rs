//! Path → handler tables, one file per API family, and the OpenAPI document they make up.

mod admin;
mod ops;
mod v1;
mod web;

use std::sync::Arc;

use axum::Router;
use utoipa::OpenApi;

use crate::app::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Gatehouse", description = "Self-hosted LLM gateway: OpenAI-compatible API, assistants, conversations, experiments, operations endpoints."),
    paths(
        crate::chat::chat_completions,
        crate::messages::messages,
        crate::embeddings::embeddings,
        crate::ops::list_models,
        crate::ops::health,
        crate::ops::ready,
        crate::ops::metrics,
        crate::ops::openapi,
        crate::ops::deployments,
        crate::transcribe::transcriptions,
        crate::auth::session::sign_in,
        crate::auth::session::current,
        crate::auth::session::sign_out,
        crate::web::assets::chat_page,
        crate::web::assets::admin_page,
        crate::web::assets::asset,
        crate::web::chat_session::session,
        crate::web::chat_session::invite,
        crate::web::api::chat_completions,
        crate::web::api::transcriptions,
        crate::web::api::usage,
        crate::web::tokens::count,
        crate::web::conversations::list,
        crate::web::conversations::create,
        crate::web::conversations::get,
        crate::web::conversations::rename,
        crate::web::conversations::delete,
        crate::web::conversations::send,
        crate::web::conversations::truncate,
        crate::web::conversations::rate,
        crate::access::usage::own_usage,
        crate::access::api::create,
        crate::access::api::list,
        crate::access::api::show,
        crate::access::api::revoke,
        crate::access::api::rotate,
        crate::access::api::reset_budget,
        crate::access::api::audit_log,
        crate::conversations::create,
        crate::conversations::list,
        crate::conversations::get,
        crate::conversations::delete,
        crate::conversations::send,
        crate::conversations::summary,
        crate::conversations::rate,
        crate::conversations::edit::rename,
        crate::conversations::edit::truncate,
        crate::assistants::admin::list,
        crate::assistants::admin::create,
        crate::assistants::admin::get,
        crate::assistants::admin::update,
        crate::assistants::admin::delete,
        crate::assistants::admin::versions,
        crate::assistants::admin::version,
        crate::assistants::admin::export,
        crate::assistants::admin::import,
        crate::experiments::admin::create,
        crate::experiments::admin::list,
        crate::experiments::admin::get,
        crate::experiments::admin::stop,
        crate::experiments::results::results,
        crate::cost_report::usage,
        crate::cost_report::today,
        crate::cache::admin::purge,
    ),
    modifiers(&AdminKeyScheme),
    tags(
        (name = "openai", description = "OpenAI-compatible API"),
        (name = "anthropic", description = "Anthropic Messages API (x-api-key or Authorization: Bearer)"),
        (name = "ops", description = "Operations"),
        (name = "conversations", description = "Stored conversations with assistants or models, owned by the API key and end-user id"),
        (name = "admin", description = "Admin API (Authorization: Bearer $GATEHOUSE_ADMIN_KEY, or the admin console's session cookie with x-csrf-token on writes)"),
        (name = "web", description = "The web chat and admin console: pages, and the chat's API for its anonymous session cookie")
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
        .merge(web::router())
}
