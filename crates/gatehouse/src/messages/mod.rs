//! `POST /v1/messages`: Anthropic's Messages API in front of the same chat pipeline as
//! `/v1/chat/completions`, so Anthropic SDK clients reach any configured provider. The request
//! is translated to the canonical format ([`providers::anthropic::inbound`]), run through
//! [`crate::chat::run`] (recorded as `Route::Messages`), and the answer translated back: a
//! `message` object, or named Anthropic SSE events ([`render`]). Every error on this route is
//! in Anthropic's shape, `{"type": "error", "error": {"type", "message"}}`, with the status of
//! the gateway's error contract.
//!
//! The key is read like on every route, as `x-api-key` (what Anthropic's SDKs send by default)
//! or `Authorization: Bearer`.

mod render;

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use providers::anthropic::inbound;
use providers::anthropic::wire::MessagesRequest;
use store::Route;

use crate::app::{AppState, RequestId};
use crate::chat::{self, Outcome};
use crate::error::{ApiError, ErrorMarker};
use crate::extract::ValidJson;
use crate::usage::estimate_prompt_tokens;

/// Creates a message (Anthropic Messages API), through the same pipeline as chat completions.
#[utoipa::path(
    post,
    path = "/v1/messages",
    tag = "anthropic",
    request_body(content = Object, description = "An Anthropic Messages API request: `model`, `max_tokens`, `messages`, optional `system`, `stop_sequences`, `temperature`, `top_p`, `top_k`, `tools`, `tool_choice`, `metadata`, `stream`"),
    responses(
        (status = 200, description = "A `message` object, or with `stream: true` named SSE events (`message_start`, `content_block_*`, `message_delta`, `message_stop`, `ping`, `error`)", body = Object),
        (status = 400, description = "Invalid request, in Anthropic's error shape", body = Object),
        (status = 404, description = "Unknown model", body = Object),
        (status = 413, description = "Body too large", body = Object),
        (status = 502, description = "Provider error", body = Object),
        (status = 503, description = "Provider rate limited, or no healthy deployment", body = Object),
        (status = 504, description = "Upstream timeout", body = Object),
    )
)]
pub async fn messages(
    State(state): State<Arc<AppState>>,
    axum::Extension(request_id): axum::Extension<RequestId>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let mut resp = match handle(&state, &request_id, request, started).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    // Anthropic's SDKs read the request id from `request-id`.
    if let Ok(v) = HeaderValue::from_str(&request_id.id) {
        resp.headers_mut().insert("request-id", v);
    }
    resp
}

async fn handle(
    state: &Arc<AppState>,
    request_id: &RequestId,
    request: Request,
    started: Instant,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let cache = crate::cache::CacheContext::from_request_parts(&mut parts, state).await?;
    let principal = parts
        .extensions
        .get::<crate::auth::Principal>()
        .cloned()
        .unwrap_or_default();
    let request = Request::from_parts(parts, body);
    let ValidJson(req) = ValidJson::<MessagesRequest>::from_request(request, state).await?;
    let model = req.model.clone();
    let canonical =
        inbound::to_canonical(req).map_err(|e| ApiError::invalid(e.param, e.message))?;
    // `message_start` carries input tokens before the real count arrives in `message_delta`.
    let input_estimate = if canonical.is_stream() {
        estimate_prompt_tokens(&canonical)
    } else {
        0
    };
    match chat::run(
        state,
        request_id,
        &principal,
        Route::Messages,
        canonical,
        started,
        &cache,
    )
    .await?
    {
        Outcome::Complete(resp) => {
            let mut message = inbound::from_canonical(&resp);
            message.model = model;
            Ok(Json(message).into_response())
        }
        Outcome::Stream(frames) => Ok(render::anthropic_sse(frames, model, input_estimate)),
    }
}

/// An error in Anthropic's shape. The message names the field when there is one, as
/// Anthropic's own messages do (`max_tokens: Field required`).
fn error_response(e: &ApiError) -> Response {
    let message = match &e.param {
        Some(p) if !p.is_empty() => format!("{p}: {}", e.message),
        _ => e.message.clone(),
    };
    let status = e.status();
    let mut resp = (status, Json(inbound::error_body(status.as_u16(), message))).into_response();
    if let Some(d) = e.retry_after {
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
    }
    resp.extensions_mut().insert(ErrorMarker(e.code));
    resp
}
