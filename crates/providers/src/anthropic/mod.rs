//! Anthropic's Messages API (`POST /v1/messages`): [`wire`] types, [`convert`] between the
//! canonical format and Anthropic's, [`stream`] events → canonical chunks, and [`inbound`] for
//! the gateway's own Anthropic-format endpoint.
//!
//! Requests carry `x-api-key` and `anthropic-version: 2023-06-01`. Error bodies
//! (`{"type": "error", "error": {"type", "message"}}`) are classified by their `error.type`:
//! `overloaded_error` (529) and `api_error` are unavailable (retryable), `rate_limit_error` is
//! rate limited (with `retry-after`), `invalid_request_error` is a bad request (or a context
//! length error when the prompt is too long), `authentication_error` / `permission_error` /
//! `billing_error` are credential failures.

pub mod convert;
mod encoder;
pub mod inbound;
mod stream;
pub mod wire;

use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use http::{HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};

use crate::client::{Endpoint, HttpClient, UpstreamResponse, json_body, secret_header};
use crate::error::retry_after_from_headers;
use crate::openai::relayed_message;
use crate::{
    ChatRequest, ChatResponse, ChunkStream, EmbeddingsRequest, EmbeddingsResponse, Provider,
    ProviderError, ProviderErrorKind, ProviderKind,
};

/// Anthropic's API root; requests go to `{base}/v1/messages`.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The API version every request names.
pub const API_VERSION: &str = "2023-06-01";

pub struct AnthropicProvider {
    client: HttpClient,
    messages_url: Endpoint,
    /// `anthropic-version` and `x-api-key`, built once.
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
}

impl AnthropicProvider {
    /// `base_url` is the API root (`https://api.anthropic.com`); a trailing `/v1` is accepted.
    pub fn new(
        client: HttpClient,
        base_url: &str,
        api_key: Option<SecretString>,
        timeout: Duration,
    ) -> AnthropicProvider {
        let base = base_url.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        let mut headers = vec![(
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static(API_VERSION),
        )];
        if let Some(v) = api_key
            .as_ref()
            .and_then(|k| secret_header(k.expose_secret()))
        {
            headers.push((HeaderName::from_static("x-api-key"), v));
        }
        AnthropicProvider {
            client,
            messages_url: Endpoint::new(&format!("{base}/v1/messages")),
            headers,
            timeout,
        }
    }

    async fn send(
        &self,
        req: &ChatRequest,
        stream: bool,
        timeout: Duration,
    ) -> Result<UpstreamResponse, ProviderError> {
        let wire = convert::to_wire(req, stream)?;
        let body = json_body(&wire)?;
        let resp = self
            .client
            .post_json(&self.messages_url, body)
            .headers(&self.headers)
            .timeout(timeout)
            .send()
            .await?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(error_from_response(resp).await)
        }
    }

    async fn chat_inner(&self, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let json_mode = convert::json_schema(req)?.is_some();
        let resp = self.send(req, false, self.timeout).await?;
        let bytes = resp.bytes().await?;
        let wire: wire::MessageResponse = serde_json::from_slice(&bytes).map_err(|_| {
            ProviderError::new(
                ProviderErrorKind::Decode,
                "upstream returned an invalid Anthropic message",
            )
        })?;
        Ok(convert::from_wire(wire, json_mode))
    }

    async fn stream_inner(&self, req: &ChatRequest) -> Result<ChunkStream, ProviderError> {
        let json_mode = convert::json_schema(req)?.is_some();
        // The whole-request timeout would cut long streams; the gateway bounds them.
        let resp = self.send(req, true, Duration::from_secs(24 * 3600)).await?;
        Ok(Box::pin(parse_stream(resp.bytes_stream(), json_mode)))
    }
}

/// Translate an Anthropic SSE byte stream into canonical chunks (public for tests and tools).
pub fn parse_stream<S, B, E>(
    body: S,
    json_mode: bool,
) -> impl futures_util::Stream<Item = Result<crate::ChatChunk, ProviderError>> + Send
where
    S: futures_util::Stream<Item = Result<B, E>> + Send + Unpin,
    B: AsRef<[u8]>,
{
    crate::event_stream::translate(body, stream::Translator::new(json_mode))
}

impl Provider for AnthropicProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Anthropic
    }

    fn chat<'a>(
        &'a self,
        req: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        self.chat_inner(req).boxed()
    }

    fn chat_stream<'a>(
        &'a self,
        req: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChunkStream, ProviderError>> {
        self.stream_inner(req).boxed()
    }

    fn embed<'a>(
        &'a self,
        _req: &'a EmbeddingsRequest,
    ) -> BoxFuture<'a, Result<EmbeddingsResponse, ProviderError>> {
        async {
            Err(ProviderError::new(
                ProviderErrorKind::BadRequest,
                "Anthropic has no embeddings API",
            ))
        }
        .boxed()
    }
}

async fn error_from_response(resp: UpstreamResponse) -> ProviderError {
    let status = resp.status().as_u16();
    let retry_after = retry_after_from_headers(resp.headers());
    let body = resp.bytes().await.unwrap_or_default();
    let err = match serde_json::from_slice::<wire::ErrorBody>(&body) {
        Ok(b) => error_from_body(Some(status), &b.error),
        Err(_) => {
            let mut e = ProviderError::from_status(status, "", "");
            e.message = relayed_message(e.kind, None);
            e
        }
    };
    err.with_retry_after(retry_after)
}

/// Classify an Anthropic error by its `error.type`, falling back to the HTTP status.
pub(crate) fn error_from_body(status: Option<u16>, e: &wire::ErrorDetail) -> ProviderError {
    let kind = match e.kind.as_str() {
        "invalid_request_error" | "not_found_error" | "request_too_large" => {
            if is_context_length(&e.message) {
                ProviderErrorKind::ContextLength
            } else {
                ProviderErrorKind::BadRequest
            }
        }
        "authentication_error" | "permission_error" | "billing_error" => ProviderErrorKind::Auth,
        "rate_limit_error" => ProviderErrorKind::RateLimited,
        "timeout_error" => ProviderErrorKind::Timeout,
        "overloaded_error" | "api_error" => ProviderErrorKind::Unavailable,
        _ => ProviderError::from_status(status.unwrap_or(500), &e.message.to_lowercase(), "").kind,
    };
    ProviderError {
        kind,
        status,
        retry_after: None,
        message: relayed_message(kind, Some(&e.message)),
    }
}

/// Anthropic's context-window messages: "prompt is too long: 210000 tokens > 200000 maximum",
/// "input length and `max_tokens` exceed context limit: …".
fn is_context_length(message: &str) -> bool {
    let m = message.to_lowercase();
    m.contains("prompt is too long") || m.contains("context limit") || m.contains("context window")
}
