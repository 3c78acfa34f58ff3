//! The OpenAI-compatible API under `/v1`.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::app::AppState;
use crate::{chat, embeddings, ops, transcribe};

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route("/v1/models", get(ops::list_models))
        // The upload's own limit (`server.max_audio_bytes`) is enforced while it streams in.
        .route(
            "/v1/audio/transcriptions",
            post(transcribe::transcriptions).layer(DefaultBodyLimit::disable()),
        )
}
