//! The built-in mock provider: deterministic replies for demos and tests, with configurable
//! latency and injected errors. It never touches the network.
//!
//! The reply echoes the last user message. Two directives in that message steer it, so a demo or
//! a browser test can provoke behaviour without configuration:
//! - `[mock:status=NNN]` fails the call as an upstream answering HTTP NNN would;
//! - `[mock:echo]` replies with the rest of the message verbatim;
//! - `[mock:tool=NAME]` calls the request's tool NAME with `{"text": <the rest of the message>}`.
//!
//! When the last message is a tool result, the reply quotes it (`The tool said: …`), so a
//! tool-call round trip can be demonstrated end to end.
//!
//! Transcriptions are deterministic too: `Transcript of <filename> (<n> bytes)`.

use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt, stream};

use crate::{
    AssistantMessage, ChatChunk, ChatRequest, ChatResponse, Choice, ChunkChoice, ChunkStream,
    Delta, Embedding, EmbeddingVector, EmbeddingsRequest, EmbeddingsResponse, EmbeddingsUsage,
    FinishReason, FunctionCall, MessageContent, Provider, ProviderError, ProviderErrorKind,
    ProviderKind, Role, ToolCall, ToolKind, Transcription, TranscriptionRequest, Usage, UsageField,
    unix_now,
};

/// Settings of a mock provider.
#[derive(Debug, Clone, Default)]
pub struct MockSettings {
    /// Delay before the first byte.
    pub latency: Duration,
    /// Delay between streamed chunks.
    pub chunk_delay: Duration,
    /// Share of calls (0.0–1.0) that fail with `error_status`.
    pub error_rate: f64,
    pub error_status: u16,
}

pub struct MockProvider {
    settings: MockSettings,
}

impl MockProvider {
    pub fn new(settings: MockSettings) -> MockProvider {
        MockProvider { settings }
    }

    async fn prepare(&self, req: &ChatRequest) -> Result<Reply, ProviderError> {
        if !self.settings.latency.is_zero() {
            tokio::time::sleep(self.settings.latency).await;
        }
        let reply = Reply::for_request(req);
        if let Some(status) = reply.forced_status {
            return Err(injected(status));
        }
        if self.settings.error_rate > 0.0 && fastrand::f64() < self.settings.error_rate {
            return Err(injected(self.settings.error_status));
        }
        Ok(reply)
    }

    async fn chat_inner(&self, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let reply = self.prepare(req).await?;
        if let Some(call) = &reply.tool_call {
            return Ok(tool_call_response(&reply, call, &req.model));
        }
        let (text, finish) = reply.capped(req.requested_max_output());
        Ok(ChatResponse {
            id: reply.id.as_str().into(),
            object: "chat.completion".into(),
            created: unix_now(),
            model: req.model.as_str().into(),
            choices: vec![Choice {
                index: 0,
                message: AssistantMessage {
                    role: Role::Assistant,
                    content: Some(text.concat()),
                    tool_calls: None,
                    refusal: None,
                },
                finish_reason: Some(finish),
                logprobs: None,
            }],
            usage: Some(Usage::new(reply.prompt_tokens, text.len() as u64, 0)),
            system_fingerprint: None,
            service_tier: None,
            raw: None,
        })
    }

    async fn stream_inner(&self, req: &ChatRequest) -> Result<ChunkStream, ProviderError> {
        let reply = self.prepare(req).await?;
        if let Some(call) = &reply.tool_call {
            let chunks = tool_call_response(&reply, call, &req.model).into_chunks();
            return Ok(Box::pin(stream::iter(chunks.into_iter().map(Ok))));
        }
        let (pieces, finish) = reply.capped(req.requested_max_output());
        let completion_tokens = pieces.len() as u64;
        let base = ChatChunk {
            id: reply.id.as_str().into(),
            object: "chat.completion.chunk".into(),
            created: unix_now(),
            model: req.model.as_str().into(),
            choices: Vec::new(),
            usage: UsageField::Null,
            system_fingerprint: None,
            raw: None,
        };
        let mut chunks = Vec::with_capacity(pieces.len() + 3);
        let with_delta = |delta: Delta, finish_reason: Option<FinishReason>| {
            let mut c = base.clone();
            c.choices.push(ChunkChoice {
                index: 0,
                delta,
                finish_reason,
                logprobs: None,
            });
            c
        };
        chunks.push(with_delta(
            Delta {
                role: Some(Role::Assistant),
                content: Some(String::new()),
                ..Delta::default()
            },
            None,
        ));
        for p in pieces {
            chunks.push(with_delta(
                Delta {
                    content: Some(p),
                    ..Delta::default()
                },
                None,
            ));
        }
        chunks.push(with_delta(Delta::default(), Some(finish)));
        let mut usage_chunk = base.clone();
        usage_chunk.usage =
            UsageField::Present(Usage::new(reply.prompt_tokens, completion_tokens, 0));
        chunks.push(usage_chunk);

        let delay = self.settings.chunk_delay;
        let s = stream::iter(chunks).then(move |c| async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok(c)
        });
        Ok(Box::pin(s))
    }

    async fn embed_inner(
        &self,
        req: &EmbeddingsRequest,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        if !self.settings.latency.is_zero() {
            tokio::time::sleep(self.settings.latency).await;
        }
        let texts = req.input.texts();
        let dims = req.dimensions.unwrap_or(8).clamp(1, 4096) as usize;
        let data = texts
            .iter()
            .zip(0u32..)
            .map(|(t, index)| Embedding {
                object: "embedding".into(),
                index,
                embedding: EmbeddingVector::Float(deterministic_vector(t, dims)),
            })
            .collect();
        let tokens: u64 = texts.iter().map(|t| estimate_tokens(t)).sum();
        Ok(EmbeddingsResponse {
            object: "list".into(),
            data,
            model: req.model.as_str().into(),
            usage: EmbeddingsUsage {
                prompt_tokens: tokens,
                total_tokens: tokens,
            },
        })
    }
}

impl Provider for MockProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Mock
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
        async move {
            if !self.settings.latency.is_zero() {
                tokio::time::sleep(self.settings.latency).await;
            }
            Ok(Transcription {
                text: format!("Transcript of {} ({} bytes)", req.filename, req.file.len()),
            })
        }
        .boxed()
    }
}

fn injected(status: u16) -> ProviderError {
    let mut e = ProviderError::from_status(status, "", "");
    e.message = format!("mock provider injected HTTP {status}");
    if e.kind == ProviderErrorKind::RateLimited {
        e.retry_after = Some(Duration::from_secs(1));
    }
    e
}

/// A reply worked out from the request alone, so equal requests get equal replies.
struct Reply {
    id: String,
    pieces: Vec<String>,
    prompt_tokens: u64,
    forced_status: Option<u16>,
    /// (function name, arguments) when the reply is a tool call.
    tool_call: Option<(String, String)>,
}

/// The reply as a single tool call.
fn tool_call_response(
    reply: &Reply,
    (name, arguments): &(String, String),
    model: &str,
) -> ChatResponse {
    ChatResponse {
        id: reply.id.clone(),
        object: "chat.completion".into(),
        created: unix_now(),
        model: model.to_owned(),
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: Role::Assistant,
                content: None,
                tool_calls: Some(vec![ToolCall {
                    id: format!("call_{}", &reply.id["chatcmpl-".len()..]),
                    kind: ToolKind::Function,
                    function: FunctionCall {
                        name: name.clone(),
                        arguments: arguments.clone(),
                    },
                }]),
                refusal: None,
            },
            finish_reason: Some(FinishReason::ToolCalls),
            logprobs: None,
        }],
        usage: Some(Usage::new(
            reply.prompt_tokens,
            estimate_tokens(name) + estimate_tokens(arguments),
            0,
        )),
        system_fingerprint: None,
        service_tier: None,
        raw: None,
    }
}

impl Reply {
    fn for_request(req: &ChatRequest) -> Reply {
        let last_user = req
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .and_then(|m| m.content.as_ref())
            .map(|c| c.joined_text())
            .unwrap_or_default();
        let forced_status = directive(&last_user, "[mock:status=").and_then(|v| v.parse().ok());
        let last = req.messages.last();
        let tool_result = last.filter(|m| m.role == Role::Tool).map(|m| {
            m.content
                .as_ref()
                .map(MessageContent::joined_text)
                .unwrap_or_default()
        });
        let tool_call = directive(&last_user, "[mock:tool=")
            .filter(|_| tool_result.is_none())
            .filter(|name| req.tools.iter().flatten().any(|t| t.function.name == *name))
            .map(|name| {
                let start = last_user.find("[mock:tool=").unwrap_or(0);
                let rest = last_user[start..]
                    .find(']')
                    .map_or("", |i| last_user[start + i + 1..].trim());
                let args = serde_json::json!({ "text": rest }).to_string();
                (name.to_owned(), args)
            });
        let text = match (&tool_result, last_user.find("[mock:echo]")) {
            (Some(result), _) => {
                let quoted: String = result.chars().take(200).collect();
                format!("The tool said: {quoted}")
            }
            (None, Some(i)) => last_user[i + "[mock:echo]".len()..].trim_start().to_owned(),
            (None, None) => {
                let quoted: String = last_user.chars().take(200).collect();
                format!("This is the Gatehouse mock provider. You said: {quoted}")
            }
        };
        let prompt_tokens = req
            .messages
            .iter()
            .map(|m| {
                4 + m
                    .content
                    .as_ref()
                    .map_or(0, |c| estimate_tokens(&c.joined_text()))
            })
            .sum::<u64>()
            + 3;
        let hash = fnv1a(text.as_bytes()) ^ prompt_tokens;
        Reply {
            id: format!("chatcmpl-mock{hash:016x}"),
            pieces: split_words(&text),
            prompt_tokens,
            forced_status,
            tool_call,
        }
    }

    /// The reply cut to `max` pieces (one piece counts as one token).
    fn capped(&self, max: Option<u32>) -> (Vec<String>, FinishReason) {
        match max {
            Some(m) if (m as usize) < self.pieces.len() => {
                (self.pieces[..m as usize].to_vec(), FinishReason::Length)
            }
            _ => (self.pieces.clone(), FinishReason::Stop),
        }
    }
}

fn directive<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let start = text.find(prefix)? + prefix.len();
    let end = text[start..].find(']')? + start;
    Some(&text[start..end])
}

/// Words with their trailing whitespace, so concatenating the pieces gives the text back.
fn split_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_space = false;
    for ch in text.chars() {
        if ch.is_whitespace() {
            in_space = true;
        } else if in_space {
            out.push(std::mem::take(&mut cur));
            in_space = false;
        }
        cur.push(ch);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Roughly four characters per token, at least one for non-empty text.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A unit vector derived from the text's hash: equal texts give equal vectors.
fn deterministic_vector(text: &str, dims: usize) -> Vec<f32> {
    let mut state = fnv1a(text.as_bytes());
    let raw: Vec<f32> = (0..dims)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    let norm = raw
        .iter()
        .map(|v| v * v)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    raw.into_iter().map(|v| v / norm).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;

    fn req(text: &str) -> ChatRequest {
        ChatRequest {
            model: "mock-1".into(),
            messages: vec![Message::text(Role::User, text)],
            ..ChatRequest::default()
        }
    }

    #[tokio::test]
    async fn deterministic_reply_and_usage() {
        let p = MockProvider::new(MockSettings::default());
        let a = p.chat(&req("hello there")).await.unwrap();
        let b = p.chat(&req("hello there")).await.unwrap();
        assert_eq!(a.id, b.id);
        let text = a.choices[0].message.content.clone().unwrap();
        assert_eq!(
            text,
            "This is the Gatehouse mock provider. You said: hello there"
        );
        assert_eq!(a.usage.unwrap(), Usage::new(10, 10, 0));
    }

    #[tokio::test]
    async fn stream_concatenates_to_the_same_text() {
        let p = MockProvider::new(MockSettings::default());
        let s = p.chat_stream(&req("[mock:echo] a  b c")).await.unwrap();
        let chunks: Vec<_> = s.collect().await;
        let text: String = chunks
            .iter()
            .filter_map(|c| {
                c.as_ref()
                    .unwrap()
                    .choices
                    .first()
                    .and_then(|c| c.delta.content.clone())
            })
            .collect();
        assert_eq!(text, "a  b c");
        assert_eq!(
            chunks
                .last()
                .unwrap()
                .as_ref()
                .unwrap()
                .usage
                .usage()
                .unwrap()
                .completion_tokens,
            3
        );
    }

    #[tokio::test]
    async fn transcript_names_the_file_and_its_size() {
        let p = MockProvider::new(MockSettings::default());
        let t = p
            .transcribe(&TranscriptionRequest {
                model: "mock-1".into(),
                file: bytes::Bytes::from_static(&[0u8; 1234]),
                filename: "memo.webm".into(),
                content_type: "audio/webm".into(),
                language: None,
            })
            .await
            .unwrap();
        assert_eq!(t.text, "Transcript of memo.webm (1234 bytes)");
    }

    #[tokio::test]
    async fn tool_directive_round_trip() {
        let p = MockProvider::new(MockSettings::default());
        let mut r = req("[mock:tool=get_weather] Paris");
        r.tools = Some(vec![crate::Tool {
            kind: ToolKind::Function,
            function: crate::FunctionDef {
                name: "get_weather".into(),
                description: None,
                parameters: None,
                strict: None,
            },
        }]);
        let resp = p.chat(&r).await.unwrap();
        let call = &resp.choices[0].message.tool_calls.as_ref().unwrap()[0];
        assert_eq!(call.function.name, "get_weather");
        assert_eq!(call.function.arguments, r#"{"text":"Paris"}"#);
        assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(resp.choices[0].message.content, None);

        // The streamed form carries the same call, then finish_reason tool_calls.
        let chunks: Vec<_> = p.chat_stream(&r).await.unwrap().collect().await;
        let first = chunks[0].as_ref().unwrap();
        let delta = &first.choices[0].delta.tool_calls.as_ref().unwrap()[0];
        assert_eq!(delta.id.as_deref(), Some(call.id.as_str()));
        assert_eq!(
            chunks[1].as_ref().unwrap().choices[0].finish_reason,
            Some(FinishReason::ToolCalls)
        );

        // Answering the call: the reply quotes the tool result.
        r.messages.push(crate::Message {
            tool_calls: Some(vec![call.clone()]),
            content: None,
            ..Message::text(Role::Assistant, "")
        });
        r.messages.push(crate::Message {
            tool_call_id: Some(call.id.clone()),
            ..Message::text(Role::Tool, "18 degrees")
        });
        let resp = p.chat(&r).await.unwrap();
        assert_eq!(
            resp.choices[0].message.content.as_deref(),
            Some("The tool said: 18 degrees")
        );
        // A directive naming a tool the request does not offer is plain text.
        let resp = p.chat(&req("[mock:tool=nope] x")).await.unwrap();
        assert!(resp.choices[0].message.tool_calls.is_none());
    }

    #[tokio::test]
    async fn status_directive_and_max_tokens() {
        let p = MockProvider::new(MockSettings::default());
        let e = p.chat(&req("[mock:status=429]")).await.unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::RateLimited);
        let mut r = req("[mock:echo] one two three");
        r.max_tokens = Some(2);
        let resp = p.chat(&r).await.unwrap();
        assert_eq!(resp.choices[0].message.content.as_deref(), Some("one two "));
        assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::Length));
    }
}
