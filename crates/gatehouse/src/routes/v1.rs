//! The OpenAI-compatible API under `/v1`, Anthropic's `/v1/messages`, and Gatehouse's
//! conversations beside them.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::app::AppState;
use crate::{chat, conversations, embeddings, messages, ops, transcribe};

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/messages", post(messages::messages))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route("/v1/models", get(ops::list_models))
        // The upload's own limit (`server.max_audio_bytes`) is enforced while it streams in.
        .route(
            "/v1/audio/transcriptions",
            post(transcribe::transcriptions).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/usage", get(crate::access::usage::own_usage))
        .route(
            "/v1/conversations",
            get(conversations::list).post(conversations::create),
        )
        .route(
            "/v1/conversations/{id}",
            get(conversations::get)
                .patch(conversations::edit::rename)
                .delete(conversations::delete),
        )
        .route(
            "/v1/conversations/{id}/messages",
            post(conversations::send).delete(conversations::edit::truncate),
        )
        .route(
            "/v1/conversations/{id}/summary",
            get(conversations::summary),
        )
        .route(
            "/v1/conversations/{id}/messages/{message_id}/rating",
            post(conversations::rate),
        )
}
