//! What a mock upstream does with a request: the [`Behavior`] builder and the reply it describes.
//!
//! A behavior is one *action* (reply, error, truncated stream, hang, raw bytes) plus modifiers
//! that apply to every action (delay before answering, delay between stream chunks, extra
//! response headers). It applies to every route; [`Reply`] decides what chat completions say,
//! embeddings and models answer from the same behavior with deterministic data.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use bytes::Bytes;

use crate::openai::word_pieces;

/// One function call in an assistant reply (`tool_calls[]` in OpenAI's wire format).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolCall {
    /// `call_…` identifier the client echoes back in the `tool` message.
    pub id: String,
    /// Function name.
    pub name: String,
    /// Arguments as a JSON *string*, exactly as OpenAI sends them.
    pub arguments: String,
}

impl ToolCall {
    /// A function call; `arguments` is the JSON text of the arguments object.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }
}

/// What a successful chat completion contains, and the usage it reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Assistant text (`message.content`); `None` gives `"content": null`.
    pub content: Option<String>,
    /// Tool calls; non-empty makes the finish reason `tool_calls`.
    pub tool_calls: Vec<ToolCall>,
    /// `usage.prompt_tokens` (default 10).
    pub prompt_tokens: u32,
    /// `usage.completion_tokens` (default: the number of streamed pieces).
    pub completion_tokens: u32,
    /// `usage.prompt_tokens_details.cached_tokens` (default 0).
    pub cached_tokens: u32,
    /// Overrides the finish reason (e.g. `"length"`, `"content_filter"`).
    pub finish_reason: Option<String>,
}

impl Reply {
    /// The finish reason sent to clients.
    pub fn finish_reason(&self) -> &str {
        match &self.finish_reason {
            Some(reason) => reason,
            None if self.tool_calls.is_empty() => "stop",
            None => "tool_calls",
        }
    }
}

/// An OpenAI error answer: status and `{"error": {"message", "type", "param", "code"}}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamError {
    /// HTTP status.
    pub status: u16,
    /// `error.type`, e.g. `invalid_request_error`, `server_error`, `requests`.
    pub error_type: String,
    /// `error.code`, e.g. `rate_limit_exceeded`; `None` is sent as `null`.
    pub code: Option<String>,
    /// `error.message`.
    pub message: String,
    /// `error.param`; `None` is sent as `null`.
    pub param: Option<String>,
}

impl UpstreamError {
    fn new(status: u16, error_type: &str, code: Option<&str>, message: &str) -> Self {
        Self {
            status,
            error_type: error_type.to_owned(),
            code: code.map(str::to_owned),
            message: message.to_owned(),
            param: None,
        }
    }

    /// The error an OpenAI-compatible upstream sends for `status`: OpenAI's own type, code and
    /// message for 400, 401, 403, 404, 429, 500, 502, 503 and 504, Anthropic's `overloaded_error`
    /// for 529, and a generic `invalid_request_error` (4xx) or `server_error` (5xx) otherwise.
    pub fn for_status(status: u16) -> Self {
        match status {
            400 => Self::new(status, "invalid_request_error", None, "Invalid request."),
            401 => Self::new(
                status,
                "invalid_request_error",
                Some("invalid_api_key"),
                INVALID_KEY,
            ),
            403 => Self::new(
                status,
                "request_forbidden",
                Some("unsupported_country_region_territory"),
                "Country, region, or territory not supported",
            ),
            404 => Self::new(
                status,
                "invalid_request_error",
                Some("model_not_found"),
                "The model does not exist or you do not have access to it.",
            ),
            429 => Self::new(
                status,
                "requests",
                Some("rate_limit_exceeded"),
                RATE_LIMITED,
            ),
            500 => Self::new(status, "server_error", None, SERVER_ERROR),
            502 => Self::new(status, "server_error", None, "Bad gateway."),
            503 => Self::new(
                status,
                "server_error",
                None,
                "The server is overloaded or not ready yet.",
            ),
            504 => Self::new(status, "server_error", None, "Gateway timeout."),
            529 => Self::new(status, "overloaded_error", None, "Overloaded"),
            _ if status < 500 => Self::new(
                status,
                "invalid_request_error",
                None,
                &format!("The upstream refused the request (HTTP {status})."),
            ),
            _ => Self::new(
                status,
                "server_error",
                None,
                &format!("The upstream failed (HTTP {status})."),
            ),
        }
    }
}

const INVALID_KEY: &str = "Incorrect API key provided: sk-mock***. You can find your API key at https://platform.openai.com/account/api-keys.";
const RATE_LIMITED: &str = "Rate limit reached for requests. Please try again later.";
const SERVER_ERROR: &str =
    "The server had an error while processing your request. Sorry about that!";

#[derive(Clone, Debug)]
pub(crate) enum Action {
    Reply(Reply),
    Error(UpstreamError),
    StreamThenFail {
        reply: Reply,
        chunks_before_failure: usize,
    },
    Hang,
    Raw {
        status: u16,
        content_type: String,
        body: Bytes,
    },
}

/// What the mock does with a request. Build with a constructor, refine with `with_*`.
///
/// ```
/// # use std::time::Duration;
/// # use test_support::Behavior;
/// let slow = Behavior::ok("Hello there").with_usage(12, 2, 4).with_delay(Duration::from_secs(3));
/// let limited = Behavior::rate_limited(7);
/// ```
#[derive(Clone, Debug)]
pub struct Behavior {
    pub(crate) action: Action,
    pub(crate) delay: Duration,
    pub(crate) chunk_delay: Duration,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) embedding_dim: usize,
    pub(crate) models: Vec<String>,
}

/// What [`Behavior::default`] says.
const DEFAULT_REPLY: &str = "Hello from the mock upstream.";

/// Default `/v1/models` listing.
pub const DEFAULT_MODELS: [&str; 2] = ["gpt-4o-mini", "text-embedding-3-small"];
/// Default embedding dimension (overridden per request by the `dimensions` field).
pub const DEFAULT_EMBEDDING_DIM: usize = 8;

impl Default for Behavior {
    fn default() -> Self {
        Self::ok(DEFAULT_REPLY)
    }
}

impl Behavior {
    fn with_action(action: Action) -> Self {
        Self {
            action,
            delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            headers: Vec::new(),
            embedding_dim: DEFAULT_EMBEDDING_DIM,
            models: DEFAULT_MODELS.iter().map(|m| (*m).to_owned()).collect(),
        }
    }

    fn text_reply(text: &str) -> Reply {
        let pieces = u32::try_from(word_pieces(text).len()).unwrap_or(u32::MAX);
        Reply {
            content: Some(text.to_owned()),
            tool_calls: Vec::new(),
            prompt_tokens: 10,
            completion_tokens: pieces.max(1),
            cached_tokens: 0,
            finish_reason: None,
        }
    }

    /// Answers with `text`: a `chat.completion` object, or a chunk stream when the request has
    /// `"stream": true` (one content chunk per word). Embeddings and models answer normally.
    pub fn ok(text: &str) -> Self {
        Self::with_action(Action::Reply(Self::text_reply(text)))
    }

    /// Same as [`Behavior::default`]; reads better in embedding tests.
    pub fn embeddings() -> Self {
        Self::default()
    }

    /// Answers with tool calls (`content: null`, finish reason `tool_calls`); streamed as a
    /// header chunk per call followed by incremental `arguments` fragments.
    pub fn tool_calls(calls: Vec<ToolCall>) -> Self {
        let fragments: usize = calls
            .iter()
            .map(|c| crate::openai::argument_fragments(&c.arguments).len())
            .sum();
        Self::with_action(Action::Reply(Reply {
            content: None,
            tool_calls: calls,
            prompt_tokens: 10,
            completion_tokens: u32::try_from(fragments).unwrap_or(u32::MAX).max(1),
            cached_tokens: 0,
            finish_reason: None,
        }))
    }

    /// Answers `status` with an OpenAI error body (`code` and `param` null until set).
    pub fn error(status: u16, error_type: &str, message: &str) -> Self {
        Self::with_action(Action::Error(UpstreamError {
            status,
            error_type: error_type.to_owned(),
            code: None,
            message: message.to_owned(),
            param: None,
        }))
    }

    /// Answers `status` with [`UpstreamError::for_status`]'s body.
    pub fn status(status: u16) -> Self {
        Self::with_action(Action::Error(UpstreamError::for_status(status)))
    }

    /// 400 `invalid_request_error`.
    pub fn bad_request(message: &str) -> Self {
        Self::error(400, "invalid_request_error", message)
    }

    /// 401 as OpenAI sends it for a wrong key.
    pub fn unauthorized() -> Self {
        Self::status(401)
    }

    /// 429 `rate_limit_exceeded` with a `retry-after: <seconds>` header.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::status(429).with_retry_after(retry_after_secs)
    }

    /// 500 `server_error` with a null code, as OpenAI sends it.
    pub fn server_error() -> Self {
        Self::status(500)
    }

    /// Sends the first `chunks_before_failure` SSE events of `text`'s stream, then aborts the
    /// connection (the body stream errors, so hyper resets it without the final chunk).
    /// A non-streaming request gets the first half of its JSON body, then the same abort.
    pub fn stream_then_fail(text: &str, chunks_before_failure: usize) -> Self {
        Self::with_action(Action::StreamThenFail {
            reply: Self::text_reply(text),
            chunks_before_failure,
        })
    }

    /// Accepts the request and never answers (for timeout tests).
    pub fn hang() -> Self {
        Self::with_action(Action::Hang)
    }

    /// Answers exactly these bytes (for malformed upstream responses).
    pub fn raw(status: u16, content_type: &str, body: impl Into<Bytes>) -> Self {
        Self::with_action(Action::Raw {
            status,
            content_type: content_type.to_owned(),
            body: body.into(),
        })
    }

    /// Sets `usage` for chat replies (prompt, completion, cached prompt tokens).
    #[must_use]
    pub fn with_usage(
        mut self,
        prompt_tokens: u32,
        completion_tokens: u32,
        cached_tokens: u32,
    ) -> Self {
        if let Some(reply) = self.reply_mut() {
            reply.prompt_tokens = prompt_tokens;
            reply.completion_tokens = completion_tokens;
            reply.cached_tokens = cached_tokens;
        }
        self
    }

    /// Overrides the finish reason of a chat reply.
    #[must_use]
    pub fn with_finish_reason(mut self, reason: &str) -> Self {
        if let Some(reply) = self.reply_mut() {
            reply.finish_reason = Some(reason.to_owned());
        }
        self
    }

    /// Sets `message.content` of a reply (e.g. text alongside tool calls).
    #[must_use]
    pub fn with_content(mut self, text: &str) -> Self {
        if let Some(reply) = self.reply_mut() {
            reply.content = Some(text.to_owned());
        }
        self
    }

    /// Sets `error.code` of an error behavior.
    #[must_use]
    pub fn with_code(mut self, code: &str) -> Self {
        if let Action::Error(error) = &mut self.action {
            error.code = Some(code.to_owned());
        }
        self
    }

    /// Sets `error.param` of an error behavior.
    #[must_use]
    pub fn with_param(mut self, param: &str) -> Self {
        if let Action::Error(error) = &mut self.action {
            error.param = Some(param.to_owned());
        }
        self
    }

    /// Adds a `retry-after: <seconds>` response header.
    #[must_use]
    pub fn with_retry_after(self, seconds: u64) -> Self {
        self.with_header("retry-after", &seconds.to_string())
    }

    /// Adds a response header (any route, any action).
    ///
    /// # Panics
    /// If the name or value is not a valid HTTP header.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes())
            .expect("Behavior::with_header: invalid header name");
        let value =
            HeaderValue::from_str(value).expect("Behavior::with_header: invalid header value");
        self.headers.push((name, value));
        self
    }

    /// Waits this long (with `tokio::time::sleep`, so a paused clock controls it) before
    /// answering.
    #[must_use]
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Waits this long before every stream event after the first.
    #[must_use]
    pub fn with_chunk_delay(mut self, delay: Duration) -> Self {
        self.chunk_delay = delay;
        self
    }

    /// Default embedding dimension when the request has no `dimensions` field.
    #[must_use]
    pub fn with_embedding_dim(mut self, dim: usize) -> Self {
        self.embedding_dim = dim;
        self
    }

    /// Model ids listed by `GET /v1/models`.
    #[must_use]
    pub fn with_models(mut self, models: &[&str]) -> Self {
        self.models = models.iter().map(|m| (*m).to_owned()).collect();
        self
    }

    /// The reply a cut answer starts with: this behavior's, or the default one when it has none.
    pub(crate) fn reply_or_default(&self) -> Reply {
        match &self.action {
            Action::Reply(reply) | Action::StreamThenFail { reply, .. } => reply.clone(),
            Action::Error(_) | Action::Hang | Action::Raw { .. } => Self::text_reply(DEFAULT_REPLY),
        }
    }

    fn reply_mut(&mut self) -> Option<&mut Reply> {
        match &mut self.action {
            Action::Reply(reply) | Action::StreamThenFail { reply, .. } => Some(reply),
            Action::Error(_) | Action::Hang | Action::Raw { .. } => None,
        }
    }
}
