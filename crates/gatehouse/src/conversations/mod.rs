//! Conversations under `/v1/conversations`: create, list, fetch, delete, send a message (the
//! chat pipeline runs with the conversation's history), an on-demand summary, and ratings of
//! replies. Messages and the running cost are stored; ownership is in [`owner`].

pub mod context;
pub mod edit;
pub mod exchange;
pub mod owner;
pub mod views;

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use providers::ChatRequest;
use store::{ConversationRecord, MessageRecord, NewConversation, Route};

use self::exchange::{COST_HEADER, DOWNGRADED_HEADER, MESSAGE_HEADER, missing, storing_stream};
use self::owner::{Caller, Owner};
use self::views::{
    ConversationList, ConversationView, CreateConversation, ListQuery, MessageView, RateMessage,
    RatingView, SendMessage, SendResult, StoredRole, SummaryView, Thumb, UserQuery, message_view,
    view,
};
use crate::app::{AppState, RequestId};
use crate::assistants::apply::{ConversationLink, Session, internal};
use crate::assistants::spec::{MODEL_PREFIX, check_model};
use crate::chat::{self, Outcome, render};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::extract::{ValidJson, ValidQuery};
use crate::usage::now_ms;

/// Ids that are not numbers cannot exist.
pub(crate) fn parse_id(s: &str) -> Result<i64, ApiError> {
    s.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::NotFound,
            format!(
                "There is no conversation {}",
                s.chars().take(32).collect::<String>()
            ),
        )
    })
}

pub(crate) async fn load(
    state: &AppState,
    id: i64,
    owner: &Owner,
) -> Result<ConversationRecord, ApiError> {
    state
        .store
        .conversation(id, &owner.canonical())
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(|| missing(id))
}

/// Keeps `\n`, `\t` and `\r`, drops other control characters (as the chat pipeline does).
pub(crate) fn clean(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t' | '\r'))
        .collect()
}

/// Starts a conversation with an assistant or a model.
#[utoipa::path(post, path = "/v1/conversations", tag = "conversations", request_body = CreateConversation,
    responses((status = 201, body = ConversationView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ValidJson(body): ValidJson<CreateConversation>,
) -> Result<Response, ApiError> {
    let owner = caller.owner(body.user.as_deref())?;
    let slug = match (body.assistant.as_deref(), body.model.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "model",
                "give `assistant` or `model`, not both",
            ));
        }
        (Some(s), None) => Some(s),
        (None, m) => m.and_then(|m| m.strip_prefix(MODEL_PREFIX)),
    };
    let (model, assistant_id) = match slug {
        Some(slug) => {
            let a = state
                .assistants
                .get(&state.store, slug)
                .await
                .map_err(|e| internal(&e))?
                .ok_or_else(|| ApiError {
                    param: Some("assistant".into()),
                    ..ApiError::new(
                        ErrorCode::ModelNotFound,
                        format!(
                            "There is no assistant `{}`",
                            slug.chars().take(64).collect::<String>()
                        ),
                    )
                })?;
            (format!("{MODEL_PREFIX}{}", a.slug), Some(a.id))
        }
        None => {
            let model = body.model.clone().unwrap_or_else(|| "default".into());
            check_model(&state, "model", &model)?;
            (model, None)
        }
    };
    if body.title.as_ref().is_some_and(|t| t.chars().count() > 200) {
        return Err(ApiError::invalid(
            "title",
            "`title` is at most 200 characters",
        ));
    }
    let record = state
        .store
        .create_conversation(
            &NewConversation {
                owner: owner.canonical(),
                owner_key_id: owner.key_id,
                assistant_id,
                model,
                title: body.title.map(|t| clean(&t)),
            },
            now_ms(),
        )
        .await
        .map_err(|e| internal(&e))?;
    Ok((StatusCode::CREATED, Json(view(record, None))).into_response())
}

/// The caller's conversations, newest first.
#[utoipa::path(get, path = "/v1/conversations", tag = "conversations", params(ListQuery),
    responses((status = 200, body = ConversationList), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ValidQuery(q): ValidQuery<ListQuery>,
) -> Result<Json<ConversationList>, ApiError> {
    let owner = caller.owner(q.user.as_deref())?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid("limit", "`limit` is 1 to 100"));
    }
    let mut rows = state
        .store
        .conversations(&owner.canonical(), q.before, limit + 1)
        .await
        .map_err(|e| internal(&e))?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    Ok(Json(ConversationList {
        object: "list",
        data: rows.into_iter().map(|c| view(c, None)).collect(),
        has_more,
    }))
}

/// A conversation with its messages.
#[utoipa::path(get, path = "/v1/conversations/{id}", tag = "conversations", params(("id" = i64, Path), UserQuery),
    responses((status = 200, body = ConversationView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    ValidQuery(q): ValidQuery<UserQuery>,
) -> Result<Json<ConversationView>, ApiError> {
    let owner = caller.owner(q.user.as_deref())?;
    let conv = load(&state, parse_id(&id)?, &owner).await?;
    let messages = state
        .store
        .messages(conv.id)
        .await
        .map_err(|e| internal(&e))?;
    Ok(Json(view(conv, Some(messages))))
}

/// Deletes a conversation, its messages and their ratings (its usage records stay in the
/// ledger; they hold no text).
#[utoipa::path(delete, path = "/v1/conversations/{id}", tag = "conversations", params(("id" = i64, Path), UserQuery),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    ValidQuery(q): ValidQuery<UserQuery>,
) -> Result<StatusCode, ApiError> {
    let owner = caller.owner(q.user.as_deref())?;
    let id = parse_id(&id)?;
    let deleted = state
        .store
        .delete_conversation(id, &owner.canonical())
        .await
        .map_err(|e| internal(&e))?;
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(missing(id))
    }
}

/// Appends a message. With `reply` (the default) the chat pipeline answers it with the
/// conversation's history (summarised when near the context window) and both are stored;
/// `stream: true` answers with OpenAI chunks ending in a `: gatehouse {…}` comment and
/// `data: [DONE]`.
#[utoipa::path(post, path = "/v1/conversations/{id}/messages", tag = "conversations", params(("id" = i64, Path)),
    request_body = SendMessage,
    responses((status = 200, description = "The reply (or an SSE stream)", body = SendResult),
        (status = 201, description = "Stored without a reply (`reply: false`)", body = MessageView),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, description = "The assistant's cost ceiling (`assistant_ceiling_reached`)", body = ErrorBody)))]
pub async fn send(
    State(state): State<Arc<AppState>>,
    axum::Extension(request_id): axum::Extension<RequestId>,
    axum::Extension(principal): axum::Extension<crate::auth::Principal>,
    caller: Caller,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<SendMessage>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let owner = caller.owner(body.user.as_deref())?;
    let conv = load(&state, parse_id(&id)?, &owner).await?;
    let content = clean(&body.content);
    if content.trim().is_empty() {
        return Err(ApiError::invalid("content", "`content` must not be empty"));
    }
    if content.chars().count() > state.config.validation.max_message_chars {
        return Err(ApiError::invalid(
            "content",
            "`content` is over the message size limit",
        ));
    }
    if !body.reply {
        let role = match body.role {
            StoredRole::User => "user",
            StoredRole::Assistant => "assistant",
            StoredRole::System => "system",
        };
        let m = MessageRecord {
            role: role.into(),
            content,
            ..MessageRecord::default()
        };
        let (ids, _) = state
            .store
            .append_messages(conv.id, std::slice::from_ref(&m), 0, now_ms())
            .await
            .map_err(|e| internal(&e))?
            .ok_or_else(|| missing(conv.id))?;
        let stored = MessageRecord {
            id: ids[0],
            conversation_id: conv.id,
            created_at_ms: now_ms(),
            ..m
        };
        return Ok((StatusCode::CREATED, Json(message_view(stored))).into_response());
    }
    if body.role != StoredRole::User {
        return Err(ApiError::invalid(
            "role",
            "only user messages are answered; send others with `reply: false`",
        ));
    }
    let history = state
        .store
        .messages(conv.id)
        .await
        .map_err(|e| internal(&e))?;
    let (messages, summary_cost) =
        context::messages_for(&state, &request_id, &conv, &history, &content).await?;
    let mut cost_before = conv.cost_micros;
    if summary_cost > 0 {
        cost_before = state
            .store
            .add_conversation_cost(conv.id, summary_cost, now_ms())
            .await
            .map_err(|e| internal(&e))?
            .unwrap_or(cost_before + summary_cost);
    }
    let req = ChatRequest {
        model: conv.model.clone(),
        messages,
        stream: body.stream,
        stream_options: body.stream_options,
        user: owner.user.clone(),
        ..ChatRequest::default()
    };
    let include_usage = req.wants_usage_chunk();
    let mut session = Session::in_conversation(ConversationLink {
        id: conv.id,
        cost_before,
        user_text: Some(content),
    });
    // Conversation turns carry their whole history, so exact hits are rare: not cached.
    let cache = crate::cache::CacheContext::internal();
    let outcome = match chat::run_with(
        &state,
        &request_id,
        &principal,
        Route::Chat,
        req,
        started,
        &mut session,
        &cache,
    )
    .await
    {
        Ok(o) => o,
        Err(e) => {
            exchange::add_unstored_cost(&state, &session).await;
            return Err(e);
        }
    };
    let downgraded = session
        .applied
        .as_ref()
        .and_then(|a| a.downgraded)
        .map(|d| d.as_str());
    let mut resp = match outcome {
        Outcome::Stream(frames) => render::openai_sse(
            storing_stream(Arc::clone(&state), session, frames),
            include_usage,
        ),
        Outcome::Complete(completion) => {
            let choice = completion.choices.first();
            let reply = choice
                .and_then(|c| c.message.content.clone())
                .unwrap_or_default();
            let finish_reason = choice.and_then(|c| c.finish_reason);
            let stored = exchange::store_exchange(&state, &session, reply)
                .await?
                .ok_or_else(|| missing(conv.id))?;
            let messages = state
                .store
                .messages(conv.id)
                .await
                .map_err(|e| internal(&e))?;
            let find = |id: Option<i64>| {
                messages
                    .iter()
                    .find(|m| Some(m.id) == id)
                    .cloned()
                    .map(message_view)
            };
            let result = SendResult {
                conversation_id: conv.id,
                user_message: find(stored.user_message_id),
                message: find(Some(stored.message_id)).ok_or_else(|| missing(conv.id))?,
                finish_reason,
                usage: completion.usage,
                cost_micros: stored.cost_micros,
                conversation_cost_micros: stored.conversation_cost_micros,
                downgraded,
            };
            let mut resp = Json(result).into_response();
            set_header(&mut resp, COST_HEADER, stored.conversation_cost_micros);
            set_header(&mut resp, MESSAGE_HEADER, stored.message_id);
            resp
        }
    };
    if let Some(d) = downgraded {
        set_header(&mut resp, DOWNGRADED_HEADER, d);
    }
    Ok(resp)
}

fn set_header(resp: &mut Response, name: &'static str, value: impl ToString) {
    if let Ok(v) = http::HeaderValue::from_str(&value.to_string()) {
        resp.headers_mut().insert(name, v);
    }
}

/// A 2–3 sentence summary of the conversation, made now by its summary model (and charged to
/// the conversation).
#[utoipa::path(get, path = "/v1/conversations/{id}/summary", tag = "conversations", params(("id" = i64, Path), UserQuery),
    responses((status = 200, body = SummaryView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn summary(
    State(state): State<Arc<AppState>>,
    axum::Extension(request_id): axum::Extension<RequestId>,
    caller: Caller,
    Path(id): Path<String>,
    ValidQuery(q): ValidQuery<UserQuery>,
) -> Result<Response, ApiError> {
    let owner = caller.owner(q.user.as_deref())?;
    let conv = load(&state, parse_id(&id)?, &owner).await?;
    let history = state
        .store
        .messages(conv.id)
        .await
        .map_err(|e| internal(&e))?;
    if history.is_empty() && conv.summary.is_none() {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "The conversation has no messages to summarise",
        ));
    }
    let (summary, cost) = context::short_summary(&state, &request_id, &conv, &history).await?;
    let total = state
        .store
        .add_conversation_cost(conv.id, cost, now_ms())
        .await
        .map_err(|e| internal(&e))?
        .unwrap_or(conv.cost_micros + cost);
    let mut resp = Json(SummaryView {
        conversation_id: conv.id,
        summary,
        cost_micros: cost,
        conversation_cost_micros: total,
    })
    .into_response();
    set_header(&mut resp, COST_HEADER, total);
    Ok(resp)
}

/// Rates a reply thumbs up or down, with an optional comment; rating again replaces it.
#[utoipa::path(post, path = "/v1/conversations/{id}/messages/{message_id}/rating", tag = "conversations",
    params(("id" = i64, Path), ("message_id" = i64, Path)), request_body = RateMessage,
    responses((status = 200, body = RatingView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn rate(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((id, message_id)): Path<(String, String)>,
    ValidJson(body): ValidJson<RateMessage>,
) -> Result<Json<RatingView>, ApiError> {
    let owner = caller.owner(body.user.as_deref())?;
    let id = parse_id(&id)?;
    let message_id: i64 = message_id
        .parse()
        .map_err(|_| ApiError::new(ErrorCode::NotFound, "There is no such message"))?;
    let comment = body
        .comment
        .map(|c| clean(&c))
        .filter(|c| !c.trim().is_empty());
    if comment.as_ref().is_some_and(|c| c.chars().count() > 2_000) {
        return Err(ApiError::invalid(
            "comment",
            "`comment` is at most 2,000 characters",
        ));
    }
    let value = if body.rating == Thumb::Up { 1 } else { -1 };
    state
        .store
        .rate_message(
            id,
            message_id,
            &owner.canonical(),
            value,
            comment.as_deref(),
            now_ms(),
        )
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                format!("Conversation {id} has no assistant message {message_id}"),
            )
        })?;
    Ok(Json(RatingView {
        conversation_id: id,
        message_id,
        rating: body.rating,
        comment,
    }))
}
