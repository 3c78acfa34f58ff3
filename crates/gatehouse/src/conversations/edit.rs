//! Changing a conversation afterwards: `PATCH /v1/conversations/{id}` renames it, and
//! `DELETE /v1/conversations/{id}/messages?from=<message id>` cuts it back to before a message,
//! so a client can regenerate a reply or resend an edited question (the cost already spent
//! stays on the conversation; ratings of the removed replies go with them).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::owner::Caller;
use super::views::{ConversationView, view};
use super::{clean, load, parse_id};
use crate::app::AppState;
use crate::assistants::apply::internal;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::extract::{ValidJson, ValidQuery};
use crate::usage::now_ms;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameConversation {
    /// At most 200 characters; empty or null clears it.
    pub title: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct TruncateQuery {
    /// The first message to delete; it and every later message go.
    pub from: Option<String>,
    /// End-user id; or the `x-gatehouse-user` header.
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Truncated {
    pub conversation_id: i64,
    pub deleted: i64,
}

/// Renames a conversation.
#[utoipa::path(patch, path = "/v1/conversations/{id}", tag = "conversations", params(("id" = i64, Path)),
    request_body = RenameConversation,
    responses((status = 200, body = ConversationView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn rename(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<RenameConversation>,
) -> Result<Json<ConversationView>, ApiError> {
    let owner = caller.owner(body.user.as_deref())?;
    let id = parse_id(&id)?;
    let title = body
        .title
        .map(|t| clean(t.trim()))
        .filter(|t| !t.is_empty());
    if title.as_ref().is_some_and(|t| t.chars().count() > 200) {
        return Err(ApiError::invalid(
            "title",
            "`title` is at most 200 characters",
        ));
    }
    let found = state
        .store
        .rename_conversation(id, &owner.canonical(), title.as_deref(), now_ms())
        .await
        .map_err(|e| internal(&e))?;
    if !found {
        return Err(super::exchange::missing(id));
    }
    let conv = load(&state, id, &owner).await?;
    Ok(Json(view(conv, None)))
}

/// Deletes a conversation's messages from one message on.
#[utoipa::path(delete, path = "/v1/conversations/{id}/messages", tag = "conversations",
    params(("id" = i64, Path), TruncateQuery),
    responses((status = 200, body = Truncated), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn truncate(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    ValidQuery(q): ValidQuery<TruncateQuery>,
) -> Result<Json<Truncated>, ApiError> {
    let owner = caller.owner(q.user.as_deref())?;
    let id = parse_id(&id)?;
    let from: i64 = q
        .from
        .as_deref()
        .ok_or_else(|| ApiError::invalid("from", "`from` (a message id) is required"))?
        .parse()
        .map_err(|_| ApiError::invalid("from", "`from` must be a message id"))?;
    let deleted = state
        .store
        .truncate_conversation(id, &owner.canonical(), from, now_ms())
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                format!("There is no conversation {id}"),
            )
        })?;
    Ok(Json(Truncated {
        conversation_id: id,
        deleted,
    }))
}
