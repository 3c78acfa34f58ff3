//! Google's Gemini API: `models/{model}:generateContent`, `:streamGenerateContent?alt=sse`,
//! `:embedContent` and `:batchEmbedContents`, authenticated with `x-goog-api-key`.
//! [`wire`] holds the types, [`convert`] the translation, `stream` the SSE translation.
//!
//! Errors (`{"error": {"code", "message", "status", "details"}}`) are classified by `status`:
//! `INVALID_ARGUMENT` is a bad request (an invalid API key, reported the same way, is a
//! credential failure; a prompt over the window is a context length error),
//! `RESOURCE_EXHAUSTED` is rate limited (its `RetryInfo` gives the retry delay),
//! `UNAVAILABLE` / `INTERNAL` are unavailable, `DEADLINE_EXCEEDED` a timeout.

pub mod convert;
mod stream;
pub mod wire;

use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use http::{HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;

use crate::client::{Endpoint, HttpClient, UpstreamResponse, json_body, secret_header};
use crate::error::retry_after_from_headers;
use crate::mock::estimate_tokens;
use crate::openai::relayed_message;
use crate::{
    ChatRequest, ChatResponse, ChunkStream, Embedding, EmbeddingVector, EmbeddingsRequest,
    EmbeddingsResponse, EmbeddingsUsage, Provider, ProviderError, ProviderErrorKind, ProviderKind,
};

/// The Gemini API root, version included.
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com/v1beta";

pub struct GeminiProvider {
    client: HttpClient,
    base: String,
    /// `x-goog-api-key`, built once.
    auth: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
}

impl GeminiProvider {
    pub fn new(
        client: HttpClient,
        base_url: &str,
        api_key: Option<SecretString>,
        timeout: Duration,
    ) -> GeminiProvider {
        let auth = api_key
            .as_ref()
            .and_then(|k| secret_header(k.expose_secret()))
            .map(|v| (HeaderName::from_static("x-goog-api-key"), v));
        GeminiProvider {
            client,
            base: base_url.trim_end_matches('/').to_owned(),
            auth: auth.into_iter().collect(),
            timeout,
        }
    }

    /// `{base}/models/{model}:{method}`. The model name reaches the URL path, and clients can
    /// choose it (passthrough), so it is restricted to the characters model names use.
    fn url(&self, model: &str, method: &str) -> Result<String, ProviderError> {
        let model = model.strip_prefix("models/").unwrap_or(model);
        let ok = !model.is_empty()
            && model
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !ok {
            return Err(ProviderError::new(
                ProviderErrorKind::BadRequest,
                "model: Gemini model names use letters, digits, '-', '.' and '_' only",
            ));
        }
        Ok(format!("{}/models/{model}:{method}", self.base))
    }

    async fn post<T: Serialize>(
        &self,
        url: &str,
        body: &T,
        timeout: Duration,
    ) -> Result<UpstreamResponse, ProviderError> {
        let body = json_body(body)?;
        let resp = self
            .client
            .post_json(&Endpoint::new(url), body)
            .headers(&self.auth)
            .timeout(timeout)
            .send()
            .await?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(error_from_response(resp).await)
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(
        resp: UpstreamResponse,
        what: &str,
    ) -> Result<T, ProviderError> {
        let bytes = resp.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|_| {
            ProviderError::new(
                ProviderErrorKind::Decode,
                format!("upstream returned an invalid {what}"),
            )
        })
    }

    async fn chat_inner(&self, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let url = self.url(&req.model, "generateContent")?;
        let body = convert::to_wire(req)?;
        let resp = self.post(&url, &body, self.timeout).await?;
        let wire: wire::GenerateContentResponse = Self::json(resp, "Gemini response").await?;
        convert::from_wire(wire, &req.model)
    }

    async fn stream_inner(&self, req: &ChatRequest) -> Result<ChunkStream, ProviderError> {
        let url = format!("{}?alt=sse", self.url(&req.model, "streamGenerateContent")?);
        let body = convert::to_wire(req)?;
        // The whole-request timeout would cut long streams; the gateway bounds them.
        let resp = self
            .post(&url, &body, Duration::from_secs(24 * 3600))
            .await?;
        Ok(Box::pin(parse_stream(resp.bytes_stream(), &req.model)))
    }

    async fn embed_inner(
        &self,
        req: &EmbeddingsRequest,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        let texts = req.input.texts();
        if texts.is_empty() {
            return Err(ProviderError::new(
                ProviderErrorKind::BadRequest,
                "input: Gemini embeddings take text input, not token ids",
            ));
        }
        let model = req.model.strip_prefix("models/").unwrap_or(&req.model);
        let request = |text: &str, with_model: bool| wire::EmbedContentRequest {
            model: with_model.then(|| format!("models/{model}")),
            content: wire::Content {
                role: None,
                parts: vec![wire::Part::text(text)],
            },
            output_dimensionality: req.dimensions,
        };
        let vectors = if let [one] = texts.as_slice() {
            let url = self.url(model, "embedContent")?;
            let resp = self.post(&url, &request(one, false), self.timeout).await?;
            let r: wire::EmbedContentResponse = Self::json(resp, "embedding").await?;
            vec![r.embedding.values]
        } else {
            let url = self.url(model, "batchEmbedContents")?;
            let body = wire::BatchEmbedContentsRequest {
                requests: texts.iter().map(|t| request(t, true)).collect(),
            };
            let resp = self.post(&url, &body, self.timeout).await?;
            let r: wire::BatchEmbedContentsResponse = Self::json(resp, "embedding batch").await?;
            if r.embeddings.len() != texts.len() {
                return Err(ProviderError::new(
                    ProviderErrorKind::Decode,
                    "upstream returned a different number of embeddings than inputs",
                ));
            }
            r.embeddings.into_iter().map(|e| e.values).collect()
        };
        // Gemini reports no token counts for embeddings: estimated at four characters a token.
        let tokens: u64 = texts.iter().map(|t| estimate_tokens(t)).sum();
        Ok(EmbeddingsResponse {
            object: "list".into(),
            data: vectors
                .into_iter()
                .zip(0u32..)
                .map(|(v, index)| Embedding {
                    object: "embedding".into(),
                    index,
                    embedding: EmbeddingVector::Float(v),
                })
                .collect(),
            model: req.model.clone(),
            usage: EmbeddingsUsage {
                prompt_tokens: tokens,
                total_tokens: tokens,
            },
        })
    }
}

/// Translate a Gemini SSE byte stream into canonical chunks (public for tests and tools).
pub fn parse_stream<S, B, E>(
    body: S,
    model: &str,
) -> impl futures_util::Stream<Item = Result<crate::ChatChunk, ProviderError>> + Send + use<S, B, E>
where
    S: futures_util::Stream<Item = Result<B, E>> + Send + Unpin,
    B: AsRef<[u8]>,
{
    crate::event_stream::translate(body, stream::Translator::new(model))
}

impl Provider for GeminiProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Gemini
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
        req: &'a EmbeddingsRequest,
    ) -> BoxFuture<'a, Result<EmbeddingsResponse, ProviderError>> {
        self.embed_inner(req).boxed()
    }
}

async fn error_from_response(resp: UpstreamResponse) -> ProviderError {
    let status = resp.status().as_u16();
    let header_retry = retry_after_from_headers(resp.headers());
    let body = resp.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<wire::ErrorBody>(&body) {
        Ok(b) => {
            let mut e = error_from_body(Some(status), &b.error);
            e.retry_after = e.retry_after.or(header_retry);
            e
        }
        Err(_) => {
            let mut e = ProviderError::from_status(status, "", "");
            e.message = relayed_message(e.kind, None);
            e.with_retry_after(header_retry)
        }
    }
}

/// Classify a Gemini error by its `status`, falling back to the HTTP status.
pub(crate) fn error_from_body(status: Option<u16>, e: &wire::ErrorDetail) -> ProviderError {
    let message = e.message.to_lowercase();
    let reason = |r: &str| {
        e.details
            .iter()
            .any(|d| d.get("reason").and_then(Value::as_str) == Some(r))
    };
    let kind = match e.status.as_str() {
        _ if reason("API_KEY_INVALID") || message.contains("api key not valid") => {
            ProviderErrorKind::Auth
        }
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" | "NOT_FOUND" => {
            if message.contains("exceeds the maximum number of tokens") {
                ProviderErrorKind::ContextLength
            } else {
                ProviderErrorKind::BadRequest
            }
        }
        "UNAUTHENTICATED" | "PERMISSION_DENIED" => ProviderErrorKind::Auth,
        "RESOURCE_EXHAUSTED" => ProviderErrorKind::RateLimited,
        "DEADLINE_EXCEEDED" => ProviderErrorKind::Timeout,
        "INTERNAL" | "UNAVAILABLE" | "UNKNOWN" => ProviderErrorKind::Unavailable,
        _ => {
            let code = status.unwrap_or(if e.code == 0 { 500 } else { e.code });
            ProviderError::from_status(code, &message, "").kind
        }
    };
    ProviderError {
        kind,
        status,
        retry_after: retry_delay(&e.details),
        message: relayed_message(kind, Some(&e.message)),
    }
}

/// `RetryInfo.retryDelay` (`"37s"`, `"1.5s"`) from an error's details.
fn retry_delay(details: &[Value]) -> Option<Duration> {
    details
        .iter()
        .filter_map(|d| d.get("retryDelay").and_then(Value::as_str))
        .find_map(|s| s.strip_suffix('s')?.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(3600.0)))
}
