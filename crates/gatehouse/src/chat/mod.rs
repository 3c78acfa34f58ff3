//! `POST /v1/chat/completions`: parse → plan (alias, fallbacks or tier) → validate → the
//! resilient call loop → guard the output → respond (JSON or SSE), with one usage record per
//! request. [`run`] is the entry point other API formats share; the response cache is looked up
//! before the call loop and written after a complete answer.

pub mod accumulate;
pub mod capabilities;
pub mod pipeline;
pub mod render;
pub mod stream;
pub mod validate;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::response::Response;
use providers::{ChatRequest, ChatResponse, FinishReason, ProviderErrorKind, Usage};
use store::{Route, UsageRecord};

use self::pipeline::{Answer, Attempts, CallKind};
use self::stream::FrameStream;
use crate::app::{AppState, RequestId};
use crate::assistants::{self, Session};
use crate::auth::Principal;
use crate::cache::{self, CacheContext};
use crate::conversations::exchange;
use crate::conversations::owner::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ValidJson;
use crate::resilience::ModelGroup;
use crate::routing::Target;
use crate::routing::tiers::TierRequest;
use crate::usage::{UsageGuard, count_tokens, estimate_prompt_tokens};

/// Creates a model response for the given chat conversation (OpenAI Chat Completions).
///
/// `model` may be a declared alias, `<provider>/<model>` for passthrough providers,
/// `default`, `tier:auto`, `tier:0`…`tier:3`, or `assistant/<slug>`. With the
/// `x-gatehouse-conversation-id` header the request is part of that conversation: its cost and
/// exchange are stored, and the response carries `x-gatehouse-conversation-cost-micros` (a
/// stream ends with a `: gatehouse {…}` comment instead).
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    tag = "openai",
    request_body = ChatRequest,
    responses(
        (status = 200, description = "A completion, or an SSE stream of `chat.completion.chunk` objects ending in `data: [DONE]` when `stream` is true", body = ChatResponse),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "Unknown model, or `x-gatehouse-cache: only` and nothing cached (`cache_miss`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 429, description = "An assistant's cost ceiling (`assistant_ceiling_reached`, `x-should-retry: false`)", body = ErrorBody),
        (status = 502, description = "Provider error", body = ErrorBody),
        (status = 503, description = "Provider rate limited, or no healthy deployment", body = ErrorBody),
        (status = 504, description = "Upstream timeout", body = ErrorBody),
    )
)]
pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    axum::Extension(request_id): axum::Extension<RequestId>,
    axum::Extension(principal): axum::Extension<Principal>,
    caller: Caller,
    conversation: exchange::ConversationHeader,
    cache: CacheContext,
    ValidJson(req): ValidJson<ChatRequest>,
) -> Result<Response, ApiError> {
    let include_usage = req.wants_usage_chunk();
    // `x-gatehouse-conversation-id` links the request to a conversation (cost, transcript).
    let mut session = exchange::session_for_chat(&state, &caller, &conversation, &req).await?;
    // Boxed once here, so the handler future the router boxes and moves stays small.
    match Box::pin(run_with(
        &state,
        &request_id,
        &principal,
        Route::Chat,
        req,
        Instant::now(),
        &mut session,
        &cache,
    ))
    .await
    {
        Ok(outcome) => Ok(exchange::respond(&state, session, outcome, include_usage).await),
        Err(e) => {
            Box::pin(exchange::add_unstored_cost(&state, &session)).await;
            Err(e)
        }
    }
}

/// The result of a chat request, before it is rendered in a wire format.
pub enum Outcome {
    Complete(Box<ChatResponse>),
    Stream(FrameStream),
}

/// The chat pipeline, shared by every API format.
pub async fn run(
    state: &Arc<AppState>,
    request_id: &RequestId,
    principal: &Principal,
    route: Route,
    req: ChatRequest,
    started: Instant,
    cache: &CacheContext,
) -> Result<Outcome, ApiError> {
    run_with(
        state,
        request_id,
        principal,
        route,
        req,
        started,
        &mut Session::default(),
        cache,
    )
    .await
}

/// The pipeline with the request's assistant/conversation context.
#[expect(
    clippy::too_many_arguments,
    reason = "the request's context, passed through unchanged"
)]
pub async fn run_with(
    state: &Arc<AppState>,
    request_id: &RequestId,
    principal: &Principal,
    route: Route,
    mut req: ChatRequest,
    started: Instant,
    session: &mut Session,
    cache: &CacheContext,
) -> Result<Outcome, ApiError> {
    // Hook: `assistant/<slug>` applies the assistant (prompt, parameters, variant, ceilings).
    assistants::apply(state, &mut req, session, request_id).await?;
    let mut chain = plan(state, &req)?;
    let stripped = validate::validate(&mut req, &state.config.validation)?;
    if stripped > 0 {
        state.metrics.control_chars_stripped.inc_by(stripped);
    }
    capabilities::check(&req, &chain[0].deployments[0].target)?;
    // Rate limits, the key's concurrency slot, budget reservations and an upstream permit;
    // settled by the guard with what the request used.
    let admission = Box::pin(crate::access::admit_chat(
        state, principal, &req, &mut chain,
    ))
    .await?;
    let first = Arc::clone(&chain[0].deployments[0].target);
    let mut guard = UsageGuard::new(Arc::clone(state), request_id, route, first, started);
    guard.set_admission(admission);
    if req.model.starts_with("tier:") {
        guard.follow_target_model();
    }
    session.annotate(&mut guard, state);
    let model = chain[0].alias.clone();
    // An assistant's entries are scoped to its version, so a new prompt version stops matching.
    let scoped;
    let cache = match &session.applied {
        Some(a) => {
            scoped = CacheContext {
                assistant: Some(a.slug.clone()),
                version: Some(a.version_id.to_string()),
                ..cache.clone()
            };
            &scoped
        }
        None => cache,
    };
    let pending = match cache::lookup(state, cache, &req, &model, route, &mut guard).await {
        Ok(cache::Lookup::Hit(outcome)) => return Ok(outcome),
        Ok(cache::Lookup::Miss(pending)) => pending,
        Err(e) => {
            guard.finish_err(e.code);
            return Err(e);
        }
    };
    let mut attempts = Attempts::new(Arc::clone(state), chain);
    // Futures of paths not every request takes are boxed, so the future every request moves
    // through the layers stays small.
    if req.is_stream() {
        return Box::pin(stream::start(attempts, req, guard, pending))
            .await
            .map(Outcome::Stream);
    }
    let resp = match attempts.run(&mut req, CallKind::Complete, &mut guard).await {
        Ok((Answer::Complete(resp), _)) => resp,
        Ok((Answer::Stream(_), _)) => {
            return Err(ApiError::new(
                crate::error::ErrorCode::Internal,
                "unexpected answer kind",
            ));
        }
        Err(e) => {
            guard.finish_err(e.code);
            return Err(e);
        }
    };
    // A fallback model's answer is not what the requested model would have said: not cached.
    let pending = pending.filter(|_| attempts.fallback_reason.is_none());
    Ok(Outcome::Complete(finish_complete(
        state, &req, resp, guard, pending,
    )))
}

/// The groups to try, in order: a tier's models, or an alias followed by its fallbacks.
fn plan(state: &AppState, req: &ChatRequest) -> Result<Vec<Arc<ModelGroup>>, ApiError> {
    if let Some(ask) = TierRequest::parse(&req.model) {
        let needed =
            estimate_prompt_tokens(req) + u64::from(req.requested_max_output().unwrap_or(0));
        return state.router.tiers.plan(ask?, req, needed);
    }
    let primary = state.router.resolve(&req.model)?;
    if primary.deployments.is_empty() {
        return Err(ApiError::new(
            crate::error::ErrorCode::NoHealthyDeployment,
            "This model has no deployment",
        ));
    }
    let mut chain = vec![Arc::clone(&primary)];
    chain.extend(
        primary
            .fallbacks
            .iter()
            .filter_map(|alias| state.router.group(alias)),
    );
    Ok(chain)
}

fn finish_complete(
    state: &AppState,
    req: &ChatRequest,
    mut resp: Box<ChatResponse>,
    mut guard: UsageGuard,
    pending: Option<cache::Pending>,
) -> Box<ChatResponse> {
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
    if let Some(p) = pending.filter(|_| !truncated) {
        p.store(&resp, guard.cost_micros());
    }
    guard.finish_ok();
    resp
}

/// Clamp the client's output cap to the deployment's configured maximum (and send that
/// maximum when the client set none and the provider requires a cap).
fn cap_output_tokens(req: &mut ChatRequest, target: &Target) {
    capabilities::fill_required_output_cap(req, target);
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
    if truncated {
        // The upstream's own bytes no longer say what is sent.
        resp.raw = None;
    }
    truncated
}

/// Whether a failure to open a stream allows one more try as a plain call, replayed as a stream:
/// the upstream said it cannot stream, or answered something that is not a stream. (Server
/// errors are left to the retry loop, which would otherwise double the calls to a failing
/// upstream.)
fn stream_fallback_allowed(e: &providers::ProviderError) -> bool {
    match e.kind {
        ProviderErrorKind::Decode => true,
        ProviderErrorKind::BadRequest => e.message.to_lowercase().contains("stream"),
        _ => false,
    }
}
