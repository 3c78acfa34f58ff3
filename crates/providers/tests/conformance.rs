//! Provider conformance: one list of cases, expanded for every provider, each run against a
//! local server answering with that provider's recorded wire format (see
//! `conformance/harness.rs` for the fixture layout).

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

#[path = "conformance/harness.rs"]
mod harness;

use harness::{P, chat_case, error_cases, failing_stream_case, stream_case};

/// The case list. Each provider gets a module with one test per case.
macro_rules! conformance {
    ($($module:ident => $provider:expr),* $(,)?) => {$(
        mod $module {
            use super::*;

            /// A plain text answer.
            #[tokio::test]
            async fn text() { chat_case($provider, "text").await }
            /// Alternating turns; consecutive user turns merged where the provider needs it;
            /// temperature, top_p, max_tokens, stop.
            #[tokio::test]
            async fn multi_turn() { chat_case($provider, "multi_turn").await }
            /// System and developer messages as the provider's system prompt.
            #[tokio::test]
            async fn system_prompt() { chat_case($provider, "system_prompt").await }
            /// A tool definition, `tool_choice: required`, a tool call back.
            #[tokio::test]
            async fn tool_call() { chat_case($provider, "tool_call").await }
            /// The calls and their results sent back; the answer after them.
            #[tokio::test]
            async fn tool_result() { chat_case($provider, "tool_result").await }
            /// Text and two tool calls in one answer.
            #[tokio::test]
            async fn parallel_tool_calls() { chat_case($provider, "parallel_tool_calls").await }
            /// A base64 image (data: URL).
            #[tokio::test]
            async fn image_input() { chat_case($provider, "image_input").await }
            /// An image by http(s) URL.
            #[tokio::test]
            async fn image_url() { chat_case($provider, "image_url").await }
            /// `response_format: json_schema`.
            #[tokio::test]
            async fn json_mode() { chat_case($provider, "json_mode").await }
            /// Usage with prompt-cache reads (and writes where the provider reports them).
            #[tokio::test]
            async fn cached_usage() { chat_case($provider, "cached_usage").await }
            /// A refusal / safety stop as `finish_reason: content_filter`.
            #[tokio::test]
            async fn content_filter() { chat_case($provider, "content_filter").await }
            /// Every SSE event kind of a text stream.
            #[tokio::test]
            async fn stream_text() { stream_case($provider, "stream_text").await }
            /// Streamed tool calls: argument fragments under their own tool-call index.
            #[tokio::test]
            async fn stream_tools() { stream_case($provider, "stream_tools").await }
            /// A stream cut mid-way by a connection reset.
            #[tokio::test]
            async fn stream_cut() { failing_stream_case($provider, "stream_cut").await }
            /// The upstream's error event in the middle of a stream.
            #[tokio::test]
            async fn stream_error() { failing_stream_case($provider, "stream_error").await }
            /// Every error body.
            #[tokio::test]
            async fn errors() { error_cases($provider).await }
        }
    )*};
}

conformance! {
    anthropic => P::Anthropic,
    gemini => P::Gemini,
    openai => P::OpenAi,
}
