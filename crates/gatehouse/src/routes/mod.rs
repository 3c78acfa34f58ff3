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
    ),
    tags((name = "openai", description = "OpenAI-compatible API"), (name = "ops", description = "Operations"))
)]
pub struct ApiDoc;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .merge(v1::router())
        .merge(ops::router())
        .merge(admin::router())
}
