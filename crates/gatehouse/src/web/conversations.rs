//! The chat's conversations under `/web/api/conversations…`: the `/v1/conversations` handlers,
//! run as the browser's anonymous user ([`WebUser`] replaces `x-gatehouse-user`), so each
//! browser sees only its own. Sending a message is held to the user's daily budget and counted
//! in its usage.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::api::Tracked;
use super::chat_session::WebUser;
use crate::app::{AppState, RequestId};
use crate::conversations::edit::{RenameConversation, TruncateQuery, Truncated};
use crate::conversations::owner::Caller;
use crate::conversations::views::{
    ConversationList, ConversationView, CreateConversation, ListQuery, RateMessage, RatingView,
    SendMessage, SendResult, UserQuery,
};
use crate::conversations::{self as conv, edit};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ValidJson, ValidQuery};

/// This browser's conversations, newest first.
#[utoipa::path(get, path = "/web/api/conversations", tag = "web", params(ListQuery),
    responses((status = 200, body = ConversationList), (status = 401, body = ErrorBody)))]
pub async fn list(
    _: WebUser,
    state: State<Arc<AppState>>,
    caller: Caller,
    q: ValidQuery<ListQuery>,
) -> Result<Json<ConversationList>, ApiError> {
    conv::list(state, caller, q).await
}

/// Starts a conversation with an assistant or a model.
#[utoipa::path(post, path = "/web/api/conversations", tag = "web", request_body = CreateConversation,
    responses((status = 201, body = ConversationView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn create(
    _: WebUser,
    state: State<Arc<AppState>>,
    caller: Caller,
    body: ValidJson<CreateConversation>,
) -> Result<Response, ApiError> {
    conv::create(state, caller, body).await
}

/// A conversation with its messages.
#[utoipa::path(get, path = "/web/api/conversations/{id}", tag = "web", params(("id" = i64, Path)),
    responses((status = 200, body = ConversationView), (status = 404, body = ErrorBody)))]
pub async fn get(
    _: WebUser,
    state: State<Arc<AppState>>,
    caller: Caller,
    id: Path<String>,
    q: ValidQuery<UserQuery>,
) -> Result<Json<ConversationView>, ApiError> {
    conv::get(state, caller, id, q).await
}

/// Renames a conversation.
#[utoipa::path(patch, path = "/web/api/conversations/{id}", tag = "web", params(("id" = i64, Path)),
    request_body = RenameConversation, responses((status = 200, body = ConversationView), (status = 404, body = ErrorBody)))]
pub async fn rename(
    _: WebUser,
    state: State<Arc<AppState>>,
    caller: Caller,
    id: Path<String>,
    body: ValidJson<RenameConversation>,
) -> Result<Json<ConversationView>, ApiError> {
    edit::rename(state, caller, id, body).await
}

/// Deletes a conversation.
#[utoipa::path(delete, path = "/web/api/conversations/{id}", tag = "web", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    _: WebUser,
    state: State<Arc<AppState>>,
    caller: Caller,
    id: Path<String>,
    q: ValidQuery<UserQuery>,
) -> Result<StatusCode, ApiError> {
    conv::delete(state, caller, id, q).await
}

/// Sends a message and streams (or returns) the reply.
#[utoipa::path(post, path = "/web/api/conversations/{id}/messages", tag = "web", params(("id" = i64, Path)),
    request_body = SendMessage,
    responses((status = 200, description = "The reply (or an SSE stream)", body = SendResult), (status = 404, body = ErrorBody),
        (status = 429, description = "Daily budget used, or the assistant's ceiling", body = ErrorBody)))]
pub async fn send(
    web: WebUser,
    State(state): State<Arc<AppState>>,
    axum::Extension(request_id): axum::Extension<RequestId>,
    caller: Caller,
    id: Path<String>,
    body: Result<ValidJson<SendMessage>, ApiError>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let limits = match web.admit(&state).await {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    let tracked = Tracked::start(&state, &request_id, &web, limits);
    let result = conv::send(
        State(Arc::clone(&state)),
        axum::Extension(request_id),
        axum::Extension(web.principal.clone()),
        caller,
        id,
        body,
    )
    .await;
    tracked.finish(result)
}

/// Deletes messages from one on (to regenerate a reply or resend an edited message).
#[utoipa::path(delete, path = "/web/api/conversations/{id}/messages", tag = "web",
    params(("id" = i64, Path), TruncateQuery), responses((status = 200, body = Truncated), (status = 404, body = ErrorBody)))]
pub async fn truncate(
    _: WebUser,
    state: State<Arc<AppState>>,
    caller: Caller,
    id: Path<String>,
    q: ValidQuery<TruncateQuery>,
) -> Result<Json<Truncated>, ApiError> {
    edit::truncate(state, caller, id, q).await
}

/// Rates a reply (the experiment's results count it).
#[utoipa::path(post, path = "/web/api/conversations/{id}/messages/{message_id}/rating", tag = "web",
    params(("id" = i64, Path), ("message_id" = i64, Path)), request_body = RateMessage,
    responses((status = 200, body = RatingView), (status = 404, body = ErrorBody)))]
pub async fn rate(
    _: WebUser,
    state: State<Arc<AppState>>,
    caller: Caller,
    ids: Path<(String, String)>,
    body: ValidJson<RateMessage>,
) -> Result<Json<RatingView>, ApiError> {
    conv::rate(state, caller, ids, body).await
}
