//! `POST /v1/chat/completions`: parse → resolve → validate → call the provider → guard the
//! output → respond (JSON or SSE), with one usage record per request.

pub mod capabilities;
mod stream;
pub mod validate;

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use providers::{ChatRequest, ChatResponse, FinishReason, ProviderErrorKind, Usage};
use store::{Route, UsageRecord};

use crate::app::{AppState, RequestId};
use crate::error::{ApiError, ErrorBody};
use crate::extract::ValidJson;
use crate::routing::Target;
use crate::usage::{UsageGuard, count_tokens, estimate_prompt_tokens};

/// Creates a model response for the given chat conversation (OpenAI Chat Completions).
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    tag = "openai",
    request_body = ChatRequest,
    responses(
        (status = 200, description = "A completion, or an SSE stream of `chat.completion.chunk` objects ending in `data: [DONE]` when `stream` is true", body = ChatResponse),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "Unknown model", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 502, description = "Provider error", body = ErrorBody),
        (status = 503, description = "Provider rate limited", body = ErrorBody),
        (status = 504, description = "Upstream timeout", body = ErrorBody),
    )
)]
pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    axum::Extension(request_id): axum::Extension<RequestId>,
    ValidJson(mut req): ValidJson<ChatRequest>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let target = state.router.resolve(&req.model)?;
    let stripped = validate::validate(&mut req, &state.config.validation)?;
    if stripped > 0 {
        state.metrics.control_chars_stripped.inc_by(stripped);
    }
    cap_output_tokens(&mut req, &target);
    capabilities::prepare(&mut req, &target)?;
    req.model.clone_from(&target.upstream_model);

    let guard = UsageGuard::new(
        Arc::clone(&state),
        &request_id,
        Route::Chat,
        Arc::clone(&target),
        started,
    );
    if req.is_stream() {
        return stream::respond(state, target, req, guard).await;
    }
    complete(&state, &target, &req, guard)
        .await
        .map(|r| Json(r).into_response())
}

/// Clamp the client's output cap to the model's configured maximum.
fn cap_output_tokens(req: &mut ChatRequest, target: &Target) {
    if let Some(cap) = target.max_output_tokens {
        for v in [&mut req.max_tokens, &mut req.max_completion_tokens] {
            if let Some(n) = v
                && *n > cap
            {
                *n = cap;
            }
        }
    }
}

async fn complete(
    state: &AppState,
    target: &Target,
    req: &ChatRequest,
    mut guard: UsageGuard,
) -> Result<ChatResponse, ApiError> {
    let mut resp = match target.provider.chat(req).await {
        Ok(r) => r,
        Err(e) => {
            let err = ApiError::from(&e);
            guard.finish_err(err.code);
            return Err(err);
        }
    };
    let truncated = truncate_response(&mut resp, state.config.validation.max_response_chars);
    if truncated {
        guard.set_flag(UsageRecord::FLAG_TRUNCATED);
        state.metrics.responses_truncated.inc();
    }
    match resp.usage {
        Some(u) => guard.set_usage(&u, false),
        None => {
            let completion: u64 = resp
                .choices
                .iter()
                .map(|c| c.message.content.as_deref().map_or(0, count_tokens))
                .sum();
            guard.set_usage(
                &Usage::new(estimate_prompt_tokens(req), completion, 0),
                true,
            );
        }
    }
    guard.finish_ok();
    Ok(resp)
}

/// The response size cap: content beyond `max_chars` (over all choices) is cut and the choice
/// marked `finish_reason: "length"`.
fn truncate_response(resp: &mut ChatResponse, max_chars: usize) -> bool {
    let mut budget = max_chars;
    let mut truncated = false;
    for c in &mut resp.choices {
        if let Some(text) = &mut c.message.content {
            let n = text.chars().count();
            if n > budget {
                let cut = text
                    .char_indices()
                    .nth(budget)
                    .map_or(text.len(), |(i, _)| i);
                text.truncate(cut);
                c.finish_reason = Some(FinishReason::Length);
                truncated = true;
                budget = 0;
            } else {
                budget -= n;
            }
        }
    }
    truncated
}

/// Whether a failure to open a stream allows one more try as a plain call, replayed as a stream:
/// the upstream failed or sent garbage, or said it cannot stream.
fn stream_fallback_allowed(e: &providers::ProviderError) -> bool {
    match e.kind {
        ProviderErrorKind::Unavailable | ProviderErrorKind::Connect | ProviderErrorKind::Decode => {
            true
        }
        ProviderErrorKind::BadRequest => e.message.to_lowercase().contains("stream"),
        _ => false,
    }
}
