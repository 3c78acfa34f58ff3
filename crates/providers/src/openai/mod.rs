//! OpenAI and OpenAI-compatible servers. The canonical types *are* this wire format, so requests
//! go out as they came in (with `model` swapped for the upstream name) and responses are only
//! parsed enough to account for usage.

mod scan;
mod stream;

use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::client::{Endpoint, HttpClient, UpstreamResponse, json_body, secret_header};
use crate::error::retry_after_from_headers;
use crate::{
    ChatRequest, ChatResponse, ChunkStream, EmbeddingsRequest, EmbeddingsResponse, Provider,
    ProviderError, ProviderErrorKind, ProviderKind, StreamOptions, Transcription,
    TranscriptionRequest,
};

/// An OpenAI-compatible upstream at `base_url` (e.g. `https://api.openai.com/v1`).
pub struct OpenAiProvider {
    client: HttpClient,
    chat_url: Endpoint,
    embeddings_url: Endpoint,
    transcriptions_url: Endpoint,
    /// `Authorization: Bearer <key>`, built once.
    auth: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
}

impl OpenAiProvider {
    pub fn new(
        client: HttpClient,
        base_url: &str,
        api_key: Option<SecretString>,
        timeout: Duration,
    ) -> OpenAiProvider {
        let base = base_url.trim_end_matches('/');
        let auth = api_key
            .as_ref()
            .and_then(|k| secret_header(&format!("Bearer {}", k.expose_secret())))
            .map(|v| (AUTHORIZATION, v));
        OpenAiProvider {
            client,
            chat_url: Endpoint::new(&format!("{base}/chat/completions")),
            embeddings_url: Endpoint::new(&format!("{base}/embeddings")),
            transcriptions_url: Endpoint::new(&format!("{base}/audio/transcriptions")),
            auth: auth.into_iter().collect(),
            timeout,
        }
    }

    async fn send(
        &self,
        url: &Endpoint,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<UpstreamResponse, ProviderError> {
        let resp = self
            .client
            .post_json(url, body)
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

    async fn chat_inner(&self, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let body = encode(req, false)?;
        let resp = self.send(&self.chat_url, body, self.timeout).await?;
        let bytes = resp.bytes().await?;
        let mut parsed: ChatResponse = serde_json::from_slice(&bytes).map_err(|_| {
            ProviderError::new(
                ProviderErrorKind::Decode,
                "upstream returned an invalid chat completion",
            )
        })?;
        parsed.raw = Some(bytes);
        Ok(parsed)
    }

    async fn stream_inner(&self, req: &ChatRequest) -> Result<ChunkStream, ProviderError> {
        let body = encode(req, true)?;
        // The whole-request timeout would cut long streams; the stream is bounded by idle and
        // total limits the gateway enforces around it.
        let resp = self
            .send(&self.chat_url, body, Duration::from_secs(24 * 3600))
            .await?;
        // Some OpenAI-compatible servers ignore `stream: true` and answer one JSON completion:
        // replay it as a stream rather than failing.
        let is_json = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if is_json {
            let bytes = resp.bytes().await?;
            let full: ChatResponse = serde_json::from_slice(&bytes).map_err(|_| {
                ProviderError::new(
                    ProviderErrorKind::Decode,
                    "upstream returned an invalid chat completion",
                )
            })?;
            return Ok(Box::pin(futures_util::stream::iter(
                full.into_chunks().into_iter().map(Ok),
            )));
        }
        Ok(stream::chunk_stream(resp))
    }

    async fn embed_inner(
        &self,
        req: &EmbeddingsRequest,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        let body = json_body(req)?;
        let resp = self.send(&self.embeddings_url, body, self.timeout).await?;
        let bytes = resp.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|_| {
            ProviderError::new(
                ProviderErrorKind::Decode,
                "upstream returned an invalid embeddings response",
            )
        })
    }
}

impl OpenAiProvider {
    /// `POST {base}/audio/transcriptions` (Whisper-compatible), always asking for JSON.
    async fn transcribe_inner(
        &self,
        req: &TranscriptionRequest,
    ) -> Result<Transcription, ProviderError> {
        let boundary = format!("gatehouse-{:016x}", fastrand::u64(..));
        let (body, content_type) = crate::audio::multipart_body(req, &boundary);
        let content_type =
            HeaderValue::from_str(&content_type).map_err(|_| ProviderError::unencodable())?;
        let resp = self
            .client
            .post(&self.transcriptions_url, body)
            .header(CONTENT_TYPE, content_type)
            .headers(&self.auth)
            .timeout(self.timeout)
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(error_from_response(resp).await);
        }
        let bytes = resp.bytes().await?;
        #[derive(Deserialize)]
        struct Body {
            text: String,
        }
        serde_json::from_slice::<Body>(&bytes)
            .map(|b| Transcription { text: b.text })
            .map_err(|_| {
                ProviderError::new(
                    ProviderErrorKind::Decode,
                    "upstream returned an invalid transcription",
                )
            })
    }
}

fn encode(req: &ChatRequest, stream: bool) -> Result<Vec<u8>, ProviderError> {
    if stream {
        let mut r = req.clone();
        r.stream = Some(true);
        r.stream_options = Some(StreamOptions {
            include_usage: Some(true),
        });
        json_body(&r)
    } else if req.stream.is_some() || req.stream_options.is_some() {
        let mut r = req.clone();
        r.stream = None;
        r.stream_options = None;
        json_body(&r)
    } else {
        json_body(req)
    }
}

impl Provider for OpenAiProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::OpenAi
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

    fn transcribe<'a>(
        &'a self,
        req: &'a TranscriptionRequest,
    ) -> BoxFuture<'a, Result<Transcription, ProviderError>> {
        self.transcribe_inner(req).boxed()
    }
}

/// OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ErrorDetail {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub code: Option<serde_json::Value>,
}

impl ErrorDetail {
    fn hint(&self) -> String {
        let code = match &self.code {
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        format!(
            "{} {} {}",
            self.kind.as_deref().unwrap_or(""),
            code,
            self.message.as_deref().unwrap_or("")
        )
    }
}

/// Longest upstream message we will relay to a client.
const MAX_RELAYED_MESSAGE: usize = 500;

async fn error_from_response(resp: UpstreamResponse) -> ProviderError {
    let status = resp.status().as_u16();
    let retry_after = retry_after_from_headers(resp.headers());
    let body = resp.bytes().await.unwrap_or_default();
    let detail = serde_json::from_slice::<ErrorBody>(&body)
        .ok()
        .map(|b| b.error);
    let hint = detail
        .as_ref()
        .map(ErrorDetail::hint)
        .unwrap_or_default()
        .to_lowercase();
    let mut err = ProviderError::from_status(status, &hint, "");
    err.message = relayed_message(err.kind, detail.as_ref().and_then(|d| d.message.as_deref()));
    err.with_retry_after(retry_after)
}

/// The message a client may see. Upstream text is relayed only for request problems, where it
/// helps the caller fix the request; auth and server failures get fixed text because upstream
/// messages there can echo key fragments or internal detail.
pub(crate) fn relayed_message(kind: ProviderErrorKind, upstream: Option<&str>) -> String {
    match kind {
        ProviderErrorKind::BadRequest
        | ProviderErrorKind::ContextLength
        | ProviderErrorKind::ContentFilter => {
            let m = upstream.unwrap_or("the upstream rejected the request");
            let mut s: String = m.chars().take(MAX_RELAYED_MESSAGE).collect();
            if s.len() < m.len() {
                s.push('…');
            }
            format!("upstream rejected the request: {s}")
        }
        ProviderErrorKind::Auth => "the upstream provider rejected Gatehouse's credentials".into(),
        ProviderErrorKind::RateLimited => "the upstream provider is rate limiting requests".into(),
        ProviderErrorKind::Timeout => "upstream timed out".into(),
        ProviderErrorKind::Connect => "could not reach the upstream".into(),
        ProviderErrorKind::Decode => "upstream response could not be decoded".into(),
        ProviderErrorKind::StreamInterrupted => "the upstream stream was interrupted".into(),
        ProviderErrorKind::Unavailable => "the upstream provider failed".into(),
    }
}
