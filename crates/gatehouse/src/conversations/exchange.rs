//! Storing what a request in a conversation produced, and telling the client the
//! conversation's running cost.
//!
//! - JSON responses carry `x-gatehouse-conversation-cost-micros` (the conversation's cost
//!   including this request) and `x-gatehouse-message-id` (the stored reply).
//! - Streams end with one SSE comment just before `data: [DONE]`:
//!   `: gatehouse {"conversation_id":…,"user_message_id":…,"message_id":…,"cost_micros":…,"conversation_cost_micros":…}`.
//!   SSE comments are ignored by OpenAI SDKs and EventSource, so no client breaks on it.
//!
//! A reply is stored with the user message that asked for it once the response is complete;
//! a failed or abandoned request stores no message, but its cost (if any) is still added.

use std::sync::Arc;

use axum::response::Response;
use futures_util::{StreamExt, stream};
use http::HeaderValue;
use providers::{ChatRequest, Role};
use serde::Serialize;
use store::MessageRecord;

use super::owner::Caller;
use crate::app::AppState;
use crate::assistants::apply::{ConversationLink, Session, internal};
use crate::chat::Outcome;
use crate::chat::render::openai_sse;
use crate::chat::stream::{Frame, FrameStream};
use crate::error::{ApiError, ErrorCode};
use crate::usage::now_ms;

pub const CONVERSATION_HEADER: &str = "x-gatehouse-conversation-id";
pub const COST_HEADER: &str = "x-gatehouse-conversation-cost-micros";
pub const MESSAGE_HEADER: &str = "x-gatehouse-message-id";
pub const DOWNGRADED_HEADER: &str = "x-gatehouse-downgraded";

/// The request's `x-gatehouse-conversation-id` header, if any (taken alone rather than
/// cloning every header of every chat request).
pub struct ConversationHeader(pub Option<HeaderValue>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ConversationHeader {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ConversationHeader(
            parts.headers.get(CONVERSATION_HEADER).cloned(),
        ))
    }
}

/// What was stored for one exchange.
#[derive(Debug, Clone, Serialize)]
pub struct Stored {
    pub conversation_id: i64,
    pub user_message_id: Option<i64>,
    pub message_id: i64,
    pub cost_micros: i64,
    pub conversation_cost_micros: i64,
}

/// The session of a `/v1/chat/completions` request: linked to a conversation when it sends
/// `x-gatehouse-conversation-id` (the conversation must be the caller's).
pub async fn session_for_chat(
    state: &AppState,
    caller: &Caller,
    conversation: &ConversationHeader,
    req: &ChatRequest,
) -> Result<Session, ApiError> {
    let Some(v) = &conversation.0 else {
        return Ok(Session::default());
    };
    let id: i64 = v
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| ApiError::invalid(CONVERSATION_HEADER, "a conversation id is a number"))?;
    let owner = caller.owner(req.user.as_deref())?;
    let conv = Box::pin(state.store.conversation(id, &owner.canonical()))
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(|| missing(id))?;
    let user_text = req
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .and_then(|m| m.content.as_ref())
        .map(providers::MessageContent::joined_text);
    Ok(Session::in_conversation(ConversationLink {
        id: conv.id,
        cost_before: conv.cost_micros,
        user_text,
    }))
}

/// Stores the reply (and the user message before it) with the request's usage, in one
/// transaction. `None` when the session has no conversation or the conversation is gone.
pub async fn store_exchange(
    state: &AppState,
    session: &Session,
    reply: String,
) -> Result<Option<Stored>, ApiError> {
    let Some(link) = &session.conversation else {
        return Ok(None);
    };
    let record = session.finished();
    let cost = record.as_ref().map_or(0, |r| r.cost_micros);
    let applied = session.applied.as_ref();
    let mut messages = Vec::with_capacity(2);
    if let Some(text) = &link.user_text {
        messages.push(MessageRecord {
            role: "user".into(),
            content: text.clone(),
            ..MessageRecord::default()
        });
    }
    messages.push(MessageRecord {
        role: "assistant".into(),
        content: reply,
        request_id: record.as_ref().map(|r| r.request_id.clone()),
        model: record.as_ref().map(|r| r.model.clone()),
        assistant_version_id: applied.map(|a| a.version_id),
        experiment_id: applied.and_then(|a| a.experiment_id),
        variant: applied.and_then(|a| a.variant.clone()),
        prompt_tokens: record.as_ref().map_or(0, |r| r.prompt_tokens),
        completion_tokens: record.as_ref().map_or(0, |r| r.completion_tokens),
        cost_micros: cost,
        ..MessageRecord::default()
    });
    let Some((ids, total)) = state
        .store
        .append_messages(link.id, &messages, cost, now_ms())
        .await
        .map_err(|e| internal(&e))?
    else {
        return Ok(None);
    };
    Ok(Some(Stored {
        conversation_id: link.id,
        user_message_id: (ids.len() == 2).then(|| ids[0]),
        message_id: ids[ids.len() - 1],
        cost_micros: cost,
        conversation_cost_micros: total,
    }))
}

/// Adds the cost of a request that stored no message (it failed or was abandoned).
pub async fn add_unstored_cost(state: &AppState, session: &Session) {
    let (Some(link), Some(record)) = (&session.conversation, session.finished()) else {
        return;
    };
    if record.cost_micros > 0
        && let Err(e) = state
            .store
            .add_conversation_cost(link.id, record.cost_micros, now_ms())
            .await
    {
        tracing::error!(error = %e, conversation_id = link.id, "could not add a request's cost to its conversation");
    }
}

fn header(resp: &mut Response, name: &'static str, value: impl ToString) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        resp.headers_mut().insert(name, v);
    }
}

/// Renders a `/v1/chat/completions` outcome, storing the exchange when in a conversation.
pub async fn respond(
    state: &Arc<AppState>,
    session: Session,
    outcome: Outcome,
    include_usage: bool,
) -> Response {
    let downgraded = session.applied.as_ref().and_then(|a| a.downgraded);
    let mut resp = match outcome {
        Outcome::Complete(completion) => {
            // The answer was served and charged; a storage failure (already logged) only
            // costs the headers.
            let stored = if session.conversation.is_some() {
                let reply = completion
                    .choices
                    .first()
                    .and_then(|c| c.message.content.clone())
                    .unwrap_or_default();
                Box::pin(store_exchange(state, &session, reply))
                    .await
                    .ok()
                    .flatten()
            } else {
                None
            };
            let mut resp = crate::chat::render::completion_response(completion);
            if let Some(s) = stored {
                header(&mut resp, COST_HEADER, s.conversation_cost_micros);
                header(&mut resp, MESSAGE_HEADER, s.message_id);
            }
            resp
        }
        Outcome::Stream(frames) => {
            let frames = if session.conversation.is_some() {
                storing_stream(Arc::clone(state), session, frames)
            } else {
                frames
            };
            openai_sse(frames, include_usage)
        }
    };
    if let Some(d) = downgraded {
        header(&mut resp, DOWNGRADED_HEADER, d.as_str());
    }
    resp
}

/// The trailer comment of a conversation stream.
pub fn trailer(stored: &Stored) -> String {
    format!(
        "gatehouse {}",
        serde_json::to_string(stored).unwrap_or_default()
    )
}

struct Storing {
    inner: Option<FrameStream>,
    text: String,
    state: Arc<AppState>,
    /// Taken once the exchange (or the cost of a failed stream) is accounted for.
    session: Option<Session>,
}

/// Passes `frames` through, collecting the reply; at the end of a complete stream it stores
/// the exchange and writes the trailer comment before `[DONE]`.
pub fn storing_stream(state: Arc<AppState>, session: Session, frames: FrameStream) -> FrameStream {
    let st = Storing {
        inner: Some(frames),
        text: String::new(),
        state,
        session: Some(session),
    };
    Box::pin(stream::unfold(Box::new(st), |mut st| async move {
        let next = match st.inner.as_mut() {
            Some(inner) => inner.next().await,
            None => None,
        };
        let Some(batch) = next else {
            st.inner = None;
            if let Some(session) = st.session.take() {
                Box::pin(add_unstored_cost(&st.state, &session)).await;
            }
            return None;
        };
        let mut out = Vec::with_capacity(batch.len() + 1);
        for frame in batch {
            match frame {
                Frame::Chunk(c) => {
                    for choice in c.choices.iter().filter(|c| c.index == 0) {
                        if let Some(t) = &choice.delta.content {
                            st.text.push_str(t);
                        }
                    }
                    out.push(Frame::Chunk(c));
                }
                Frame::Done => {
                    if let Some(session) = st.session.take() {
                        // A storage failure (already logged) only costs the trailer.
                        if let Ok(Some(stored)) = Box::pin(store_exchange(
                            &st.state,
                            &session,
                            std::mem::take(&mut st.text),
                        ))
                        .await
                        {
                            out.push(Frame::Note(trailer(&stored)));
                        }
                    }
                    out.push(Frame::Done);
                }
                other => out.push(other),
            }
        }
        Some((out, st))
    }))
}

impl Drop for Storing {
    fn drop(&mut self) {
        // The client went away: end the upstream call first so its usage is final, then
        // charge the conversation for it.
        let Some(session) = self.session.take() else {
            return;
        };
        drop(self.inner.take());
        let Some(cost) = session.finished().map(|r| r.cost_micros).filter(|c| *c > 0) else {
            return;
        };
        let (Some(link), Ok(rt)) = (&session.conversation, tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let (store, id) = (self.state.store.clone(), link.id);
        rt.spawn(async move {
            if let Err(e) = store.add_conversation_cost(id, cost, now_ms()).await {
                tracing::error!(error = %e, conversation_id = id, "could not add an abandoned stream's cost");
            }
        });
    }
}

/// 404 for a conversation the caller cannot see.
pub fn missing(id: i64) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("There is no conversation {id}"),
    )
}
