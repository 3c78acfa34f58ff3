//! The OpenAI-compatible API under `/v1`.

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::app::AppState;
use crate::{chat, embeddings, ops};

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route("/v1/models", get(ops::list_models))
        .route("/v1/usage", get(crate::access::usage::own_usage))
}
