//! The chat UI's API under `/web/api/…`: the OpenAI handlers run as the browser's anonymous
//! user ([`WebUser`]), held to its daily budget, with every usage record of the request
//! attributed to that user for the cost widget (`GET /web/api/usage`).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Json;
use axum::body::{Body, BodyDataStream};
use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use providers::ChatRequest;
use serde::Serialize;
use utoipa::ToSchema;

use super::chat_session::WebUser;
use super::spend::{DAY_MS, RequestCost, format_day};
use crate::access::headers::LimitInfo;
use crate::app::{AppState, RequestId};
use crate::cache::CacheContext;
use crate::conversations::owner::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ValidJson;
use crate::usage::now_ms;

/// Chat completions (OpenAI format) as this browser's user; `user` is set by the server.
#[utoipa::path(post, path = "/web/api/chat/completions", tag = "web", request_body = ChatRequest,
    responses((status = 200, description = "As `POST /v1/chat/completions`", body = providers::ChatResponse),
        (status = 401, description = "No chat session", body = ErrorBody),
        (status = 403, description = "Invite needed, or a cross-origin request", body = ErrorBody),
        (status = 429, description = "Daily budget used (`budget_exceeded`)", body = ErrorBody)))]
pub async fn chat_completions(
    web: WebUser,
    State(state): State<Arc<AppState>>,
    axum::Extension(request_id): axum::Extension<RequestId>,
    caller: Caller,
    conversation: crate::conversations::exchange::ConversationHeader,
    cache: CacheContext,
    body: Result<ValidJson<ChatRequest>, ApiError>,
) -> Response {
    let ValidJson(mut req) = match body {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let limits = match web.admit(&state).await {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    req.user = Some(web.user.end_user());
    let tracked = Tracked::start(&state, &request_id, &web, limits);
    let result = crate::chat::chat_completions(
        State(Arc::clone(&state)),
        axum::Extension(request_id),
        axum::Extension(web.principal.clone()),
        caller,
        conversation,
        cache,
        ValidJson(req),
    )
    .await;
    tracked.finish(result)
}

/// Speech to text (as `POST /v1/audio/transcriptions`) for the chat's audio input.
#[utoipa::path(post, path = "/web/api/audio/transcriptions", tag = "web",
    request_body(content = crate::transcribe::TranscriptionForm, content_type = "multipart/form-data"),
    responses((status = 200, body = crate::transcribe::TranscriptionJson), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn transcriptions(
    web: WebUser,
    State(state): State<Arc<AppState>>,
    axum::Extension(request_id): axum::Extension<RequestId>,
    form: Result<Multipart, MultipartRejection>,
) -> Response {
    let limits = match web.admit(&state).await {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    let tracked = Tracked::start(&state, &request_id, &web, limits);
    let result = crate::transcribe::transcriptions(
        State(Arc::clone(&state)),
        axum::Extension(request_id),
        axum::Extension(web.principal.clone()),
        form,
    )
    .await;
    tracked.finish(result)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebUsage {
    /// Always `web.usage`.
    pub object: &'static str,
    pub user: String,
    /// The UTC day.
    pub day: String,
    pub cost_micros: i64,
    pub requests: i64,
    /// Chat requests answered successfully.
    pub messages: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    /// cost / messages, rounded half up; absent without messages.
    pub average_cost_per_message_micros: Option<i64>,
    /// 0: no budget.
    pub daily_budget_micros: i64,
    pub high_usage_warning_micros: i64,
    /// The user's latest requests today (up to 50), oldest first.
    pub recent: Vec<RequestCost>,
}

/// This browser's spend today, from the server's usage records.
#[utoipa::path(get, path = "/web/api/usage", tag = "web",
    responses((status = 200, body = WebUsage), (status = 401, body = ErrorBody)))]
pub async fn usage(web: WebUser, State(state): State<Arc<AppState>>) -> Response {
    let user = web.user.end_user();
    let day = now_ms().div_euclid(DAY_MS);
    let t = state.web.spend.today(&user, day);
    let body = WebUsage {
        object: "web.usage",
        day: format_day(day),
        cost_micros: t.cost_micros,
        requests: t.requests,
        messages: t.messages,
        prompt_tokens: t.prompt_tokens,
        completion_tokens: t.completion_tokens,
        total_tokens: t.prompt_tokens + t.completion_tokens,
        average_cost_per_message_micros: (t.messages > 0)
            .then(|| (t.cost_micros * 2 + t.messages) / (2 * t.messages)),
        daily_budget_micros: state.config.web.user_daily_budget_micros,
        high_usage_warning_micros: state.config.web.high_usage_warning_micros,
        recent: t.recent.into_iter().collect(),
        user,
    };
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    resp
}

/// A request whose usage records count for a web user until it is over: when the response
/// is complete, or for a stream when its body is finished or dropped.
pub(super) struct Tracked {
    state: Arc<AppState>,
    id: String,
    limits: LimitInfo,
}

impl Tracked {
    pub(super) fn start(
        state: &Arc<AppState>,
        request_id: &RequestId,
        web: &WebUser,
        limits: LimitInfo,
    ) -> Tracked {
        state
            .web
            .spend
            .register(&request_id.id, &web.user.end_user());
        Tracked {
            state: Arc::clone(state),
            id: request_id.id.to_string(),
            limits,
        }
    }

    /// The response, with the web chat limit's `x-ratelimit-*` headers; a stream keeps the
    /// request registered until its body is done.
    pub(super) fn finish(self, result: Result<Response, ApiError>) -> Response {
        let mut resp = result.into_response();
        crate::access::layer::write_headers(resp.headers_mut(), &self.limits);
        let streaming = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !streaming {
            return resp;
        }
        let (parts, body) = resp.into_parts();
        let body = TrackedBody {
            inner: body.into_data_stream(),
            _tracked: self,
        };
        Response::from_parts(parts, Body::from_stream(body))
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.state.web.spend.unregister(&self.id);
    }
}

/// Fields drop in order: the inner stream first (a cancelled stream's usage guard records
/// then), the registration after.
struct TrackedBody {
    inner: BodyDataStream,
    _tracked: Tracked,
}

impl Stream for TrackedBody {
    type Item = <BodyDataStream as Stream>::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}
