//! Provider wire formats and translation. Knows HTTP clients and JSON, never a web framework or a
//! database. The gateway speaks the canonical OpenAI types in [`types`]; each provider module
//! turns them into its own wire format and back.

pub mod anthropic;
pub mod audio;
pub mod capabilities;
pub mod client;
pub mod error;
mod event_stream;
pub mod gemini;
pub mod mock;
pub mod openai;
pub mod sse;
pub mod types;

use std::pin::Pin;
use std::str::FromStr;

use futures_util::Stream;
use futures_util::future::BoxFuture;

pub use audio::{TranscriptFormat, Transcription, TranscriptionRequest};
pub use capabilities::{Capabilities, Capability};
pub use client::HttpClient;
pub use error::{ProviderError, ProviderErrorKind};
pub use types::*;

/// A stream of canonical chunks; an `Err` item ends the stream.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<ChatChunk, ProviderError>> + Send>>;

/// What every provider implementation offers. The gateway sets `model` to the upstream model
/// name before calling.
pub trait Provider: Send + Sync {
    fn kind(&self) -> ProviderKind;

    fn chat<'a>(
        &'a self,
        req: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>>;

    /// Opens a stream. Providers always ask the upstream for usage so the ledger has exact
    /// counts; the gateway hides the usage chunk from clients that did not ask for it.
    fn chat_stream<'a>(
        &'a self,
        req: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChunkStream, ProviderError>>;

    fn embed<'a>(
        &'a self,
        req: &'a EmbeddingsRequest,
    ) -> BoxFuture<'a, Result<EmbeddingsResponse, ProviderError>>;

    /// Speech to text (`/audio/transcriptions`). Providers without it refuse with a
    /// `BadRequest` naming their kind.
    fn transcribe<'a>(
        &'a self,
        req: &'a TranscriptionRequest,
    ) -> BoxFuture<'a, Result<Transcription, ProviderError>> {
        let _ = req;
        let message = format!(
            "provider kind `{}` cannot transcribe audio",
            self.kind().as_str()
        );
        Box::pin(async move { Err(ProviderError::new(ProviderErrorKind::BadRequest, message)) })
    }
}

/// The provider implementations Gatehouse ships, named as in configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// OpenAI and any server speaking its API (Ollama's `/v1`, vLLM, llama.cpp server, …).
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
    /// Google's Gemini API (`generativelanguage.googleapis.com`).
    Gemini,
    /// The built-in deterministic provider for demos and tests.
    Mock,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 4] = [
        ProviderKind::OpenAi,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
        ProviderKind::Mock,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Mock => "mock",
        }
    }

    /// Where the provider lives when the configuration names no `base_url`.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            ProviderKind::OpenAi => Some("https://api.openai.com/v1"),
            ProviderKind::Anthropic => Some(anthropic::DEFAULT_BASE_URL),
            ProviderKind::Gemini => Some(gemini::DEFAULT_BASE_URL),
            ProviderKind::Mock => None,
        }
    }

    /// What a model of this kind can do when its configuration does not say. OpenAI-compatible
    /// servers and the mock get everything (the operator narrows it per model, e.g. for a
    /// text-only Ollama model); Anthropic has no embeddings API.
    pub fn default_capabilities(self) -> Capabilities {
        match self {
            ProviderKind::Anthropic => Capabilities::ALL.without(Capability::Embeddings),
            ProviderKind::OpenAi | ProviderKind::Gemini | ProviderKind::Mock => Capabilities::ALL,
        }
    }

    /// Whether the upstream rejects a request without an output cap (Anthropic's required
    /// `max_tokens`); the gateway then sends the model's configured cap.
    pub fn requires_max_tokens(self) -> bool {
        self == ProviderKind::Anthropic
    }
}

impl FromStr for ProviderKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProviderKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = ProviderKind::ALL.iter().map(|k| k.as_str()).collect();
                format!(
                    "unknown provider kind `{s}` (expected one of: {})",
                    names.join(", ")
                )
            })
    }
}

/// Seconds since the Unix epoch, for `created` fields.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
