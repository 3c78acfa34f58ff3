//! The web UI: its pages and files, the chat's API under `/web/api`, and the admin console's
//! session under `/admin/api/session`.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::app::AppState;
use crate::auth::session;
use crate::web::{api, assets, chat_session, conversations as conv, tokens};

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(assets::chat_page))
        .route("/admin", get(assets::admin_page))
        .route("/admin/", get(assets::admin_page))
        .route("/favicon.ico", get(assets::favicon))
        .route("/assets/{*path}", get(assets::asset))
        .route(
            "/admin/api/session",
            get(session::current)
                .post(session::sign_in)
                .delete(session::sign_out),
        )
        .route("/admin/api/tokens", post(tokens::count))
        .route("/web/api/session", get(chat_session::session))
        .route("/web/api/session/invite", post(chat_session::invite))
        .route("/web/api/chat/completions", post(api::chat_completions))
        // The upload's own limit (`server.max_audio_bytes`) is enforced while it streams in.
        .route(
            "/web/api/audio/transcriptions",
            post(api::transcriptions).layer(DefaultBodyLimit::disable()),
        )
        .route("/web/api/usage", get(api::usage))
        .route("/web/api/conversations", get(conv::list).post(conv::create))
        .route(
            "/web/api/conversations/{id}",
            get(conv::get).patch(conv::rename).delete(conv::delete),
        )
        .route(
            "/web/api/conversations/{id}/messages",
            post(conv::send).delete(conv::truncate),
        )
        .route(
            "/web/api/conversations/{id}/messages/{message_id}/rating",
            post(conv::rate),
        )
}
