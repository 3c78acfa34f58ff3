//! `ApiError`: every error a client sees. One exhaustive match decides status, type and code;
//! `IntoResponse` renders OpenAI's error body and has no side effects (the request middleware
//! logs and counts).

use std::time::Duration;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use providers::{ProviderError, ProviderErrorKind};
use serde::Serialize;
use utoipa::ToSchema;

/// Stable error codes; the string form is part of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidJson,
    InvalidRequest,
    Unauthorized,
    Forbidden,
    ModelNotFound,
    NotFound,
    MethodNotAllowed,
    RequestTooLarge,
    UnsupportedMediaType,
    ContextLengthExceeded,
    ContentFilter,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    NoHealthyDeployment,
    NoViableModel,
    ModelNotAllowed,
    RateLimited,
    BudgetExceeded,
    BudgetUnavailable,
    QueueTimeout,
    /// An assistant's per-conversation or per-day cost ceiling is reached (and it refuses).
    AssistantCeilingReached,
    /// A system prompt is over the token limit (the admin API, without `force`).
    PromptTooLong,
    /// The request conflicts with what exists (a slug in use, an overlapping experiment).
    Conflict,
    CacheMiss,
    CacheUnavailable,
    ShuttingDown,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::Unauthorized => "invalid_api_key",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::ModelNotFound => "model_not_found",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestTooLarge => "request_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::ContextLengthExceeded => "context_length_exceeded",
            ErrorCode::ContentFilter => "content_filter",
            ErrorCode::ProviderError => "provider_error",
            ErrorCode::ProviderRateLimited => "provider_rate_limited",
            ErrorCode::ProviderTimeout => "upstream_timeout",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::NoHealthyDeployment => "no_healthy_provider",
            ErrorCode::NoViableModel => "no_viable_model",
            ErrorCode::ModelNotAllowed => "model_not_allowed",
            ErrorCode::RateLimited => "rate_limit_exceeded",
            ErrorCode::BudgetExceeded => "budget_exceeded",
            ErrorCode::BudgetUnavailable => "budget_unavailable",
            ErrorCode::QueueTimeout => "queue_timeout",
            ErrorCode::AssistantCeilingReached => "assistant_ceiling_reached",
            ErrorCode::PromptTooLong => "prompt_too_long",
            ErrorCode::Conflict => "conflict",
            ErrorCode::CacheMiss => "cache_miss",
            ErrorCode::CacheUnavailable => "cache_unavailable",
            ErrorCode::Internal => "internal_error",
        }
    }

    /// HTTP status and OpenAI error `type`, decided in one place.
    pub fn status_and_type(self) -> (StatusCode, &'static str) {
        match self {
            ErrorCode::InvalidJson
            | ErrorCode::InvalidRequest
            | ErrorCode::ContextLengthExceeded
            | ErrorCode::ContentFilter
            | ErrorCode::PromptTooLong => (StatusCode::BAD_REQUEST, "invalid_request_error"),
            ErrorCode::Conflict => (StatusCode::CONFLICT, "invalid_request_error"),
            // OpenAI's type for "retrying will not help until something changes".
            ErrorCode::AssistantCeilingReached => {
                (StatusCode::TOO_MANY_REQUESTS, "insufficient_quota")
            }
            ErrorCode::Unauthorized => (StatusCode::UNAUTHORIZED, "authentication_error"),
            ErrorCode::Forbidden | ErrorCode::ModelNotAllowed => {
                (StatusCode::FORBIDDEN, "permission_error")
            }
            ErrorCode::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error"),
            ErrorCode::BudgetExceeded => (StatusCode::TOO_MANY_REQUESTS, "insufficient_quota"),
            ErrorCode::ModelNotFound | ErrorCode::NotFound | ErrorCode::CacheMiss => {
                (StatusCode::NOT_FOUND, "invalid_request_error")
            }
            ErrorCode::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error")
            }
            ErrorCode::RequestTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error"),
            ErrorCode::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid_request_error")
            }
            ErrorCode::ProviderError => (StatusCode::BAD_GATEWAY, "api_error"),
            ErrorCode::ProviderRateLimited
            | ErrorCode::ShuttingDown
            | ErrorCode::NoHealthyDeployment
            | ErrorCode::NoViableModel
            | ErrorCode::BudgetUnavailable
            | ErrorCode::QueueTimeout
            | ErrorCode::CacheUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "api_error"),
            ErrorCode::ProviderTimeout => (StatusCode::GATEWAY_TIMEOUT, "api_error"),
            ErrorCode::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "api_error"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub param: Option<String>,
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            param: Some(param.into()),
            ..ApiError::new(ErrorCode::InvalidRequest, message)
        }
    }

    pub fn status(&self) -> StatusCode {
        self.code.status_and_type().0
    }

    /// The body as JSON, for places (such as a stream's error event) that are not a response.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                message: self.message.clone(),
                kind: self.code.status_and_type().1,
                code: self.code.as_str(),
                param: self.param.clone(),
            },
        }
    }
}

impl From<&ProviderError> for ApiError {
    fn from(e: &ProviderError) -> ApiError {
        let code = match e.kind {
            ProviderErrorKind::Auth
            | ProviderErrorKind::Unavailable
            | ProviderErrorKind::Connect
            | ProviderErrorKind::Decode
            | ProviderErrorKind::StreamInterrupted => ErrorCode::ProviderError,
            ProviderErrorKind::RateLimited => ErrorCode::ProviderRateLimited,
            ProviderErrorKind::BadRequest => ErrorCode::InvalidRequest,
            ProviderErrorKind::ContextLength => ErrorCode::ContextLengthExceeded,
            ProviderErrorKind::ContentFilter => ErrorCode::ContentFilter,
            ProviderErrorKind::Timeout => ErrorCode::ProviderTimeout,
        };
        ApiError {
            code,
            message: e.message.clone(),
            param: None,
            retry_after: e.retry_after,
        }
    }
}

/// OpenAI's error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub code: &'static str,
    pub param: Option<String>,
}

/// Marker placed in response extensions so the logging middleware can label errors.
#[derive(Debug, Clone, Copy)]
pub struct ErrorMarker(pub ErrorCode);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status(), Json(self.body())).into_response();
        if let Some(d) = self.retry_after {
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(http::header::RETRY_AFTER, v);
            }
        }
        if matches!(
            self.code,
            ErrorCode::BudgetExceeded | ErrorCode::AssistantCeilingReached
        ) {
            // The official SDKs retry 429s on their own unless told not to; waiting will not
            // help here.
            resp.headers_mut()
                .insert("x-should-retry", HeaderValue::from_static("false"));
        }
        resp.extensions_mut().insert(ErrorMarker(self.code));
        resp
    }
}
