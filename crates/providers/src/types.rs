//! The canonical request and response types: OpenAI Chat Completions, the lingua franca every
//! provider adapter translates to and from. Fields Gatehouse does not interpret are kept in
//! `extra` so OpenAI-compatible upstreams receive them untouched.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// `POST /v1/chat/completions` request body.
///
/// Deserialization is hand-written so that errors keep their field path (serde's `flatten`
/// would lose it) while unknown top-level fields are still collected into `extra`.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub response_format: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Fields Gatehouse does not interpret, forwarded as-is to OpenAI-compatible upstreams.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: Map<String, Value>,
}

impl ChatRequest {
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    pub fn wants_usage_chunk(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage == Some(true))
    }

    /// The output cap the client asked for, whichever of the two spellings it used.
    pub fn requested_max_output(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }
}

impl<'de> Deserialize<'de> for ChatRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ReqVisitor;
        impl<'de> Visitor<'de> for ReqVisitor {
            type Value = ChatRequest;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a chat completion request object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ChatRequest, A::Error> {
                let mut req = ChatRequest::default();
                let mut model = None;
                let mut messages = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "model" => model = Some(map.next_value()?),
                        "messages" => messages = Some(map.next_value()?),
                        "stream" => req.stream = map.next_value()?,
                        "stream_options" => req.stream_options = map.next_value()?,
                        "temperature" => req.temperature = map.next_value()?,
                        "top_p" => req.top_p = map.next_value()?,
                        "max_tokens" => req.max_tokens = map.next_value()?,
                        "max_completion_tokens" => req.max_completion_tokens = map.next_value()?,
                        "stop" => req.stop = map.next_value()?,
                        "seed" => req.seed = map.next_value()?,
                        "n" => req.n = map.next_value()?,
                        "tools" => req.tools = map.next_value()?,
                        "tool_choice" => req.tool_choice = map.next_value()?,
                        "response_format" => req.response_format = map.next_value()?,
                        "user" => req.user = map.next_value()?,
                        _ => {
                            let v: Value = map.next_value()?;
                            req.extra.insert(key, v);
                        }
                    }
                }
                req.model = model.ok_or_else(|| de::Error::missing_field("model"))?;
                req.messages = messages.ok_or_else(|| de::Error::missing_field("messages"))?;
                Ok(req)
            }
        }
        deserializer.deserialize_map(ReqVisitor)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct StreamOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
}

/// `stop`: one string or up to four.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s.clone()],
            Stop::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    Function,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Message {
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<MessageContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
}

impl Message {
    pub fn text(role: Role, text: impl Into<String>) -> Message {
        Message {
            role,
            content: Some(MessageContent::Text(text.into())),
            name: None,
            tool_calls: None,
            tool_call_id: None,
            refusal: None,
        }
    }
}

/// Message content: a plain string or a list of typed parts.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

impl MessageContent {
    /// All text in the content, parts joined by newlines.
    pub fn joined_text(&self) -> String {
        match self {
            MessageContent::Text(s) => s.clone(),
            MessageContent::Parts(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    ContentPart::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    pub fn has_image(&self) -> bool {
        matches!(self, MessageContent::Parts(p) if p.iter().any(|p| matches!(p, ContentPart::ImageUrl { .. })))
    }

    /// Apply `f` to every text the content carries.
    pub fn for_each_text_mut(&mut self, mut f: impl FnMut(&mut String)) {
        match self {
            MessageContent::Text(s) => f(s),
            MessageContent::Parts(parts) => {
                for p in parts {
                    if let ContentPart::Text { text } = p {
                        f(text);
                    }
                }
            }
        }
    }
}

// Hand-written so a wrong type reports "expected a string or an array of content parts" at the
// exact path, instead of serde's opaque "did not match any variant of untagged enum".
impl<'de> Deserialize<'de> for MessageContent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ContentVisitor;
        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = MessageContent;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MessageContent, E> {
                Ok(MessageContent::Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<MessageContent, E> {
                Ok(MessageContent::Text(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MessageContent, A::Error> {
                let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(1));
                while let Some(p) = seq.next_element()? {
                    parts.push(p);
                }
                Ok(MessageContent::Parts(parts))
            }
        }
        deserializer.deserialize_any(ContentVisitor)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
    InputAudio { input_audio: InputAudio },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ImageUrl {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InputAudio {
    pub data: String,
    pub format: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Tool {
    #[serde(rename = "type")]
    pub kind: ToolKind,
    pub function: FunctionDef,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ToolKind {
    Function,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: ToolKind,
    pub function: FunctionCall,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionCall {
    pub name: String,
    pub arguments: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    FunctionCall,
}

/// Token usage as OpenAI reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

impl Usage {
    pub fn new(prompt: u64, completion: u64, cached: u64) -> Usage {
        Usage::with_cache(prompt, completion, cached, 0)
    }

    /// Usage with prompt-cache detail: `prompt` counts every prompt token, including the
    /// `cache_read` tokens served from the cache and the `cache_write` tokens written to it.
    pub fn with_cache(prompt: u64, completion: u64, cache_read: u64, cache_write: u64) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: (cache_read > 0 || cache_write > 0).then_some(
                PromptTokensDetails {
                    cached_tokens: cache_read,
                    cache_creation_tokens: cache_write,
                },
            ),
        }
    }

    pub fn cached_tokens(&self) -> u64 {
        self.prompt_tokens_details.map_or(0, |d| d.cached_tokens)
    }

    /// Prompt tokens written to the provider's cache (priced separately by Anthropic).
    pub fn cache_creation_tokens(&self) -> u64 {
        self.prompt_tokens_details
            .map_or(0, |d| d.cache_creation_tokens)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PromptTokensDetails {
    /// Prompt tokens read from the provider's prompt cache.
    #[serde(default)]
    pub cached_tokens: u64,
    /// Prompt tokens written to the provider's prompt cache (Anthropic's
    /// `cache_creation_input_tokens`). Not part of OpenAI's format: omitted when zero, so
    /// responses from OpenAI-compatible upstreams serialize exactly as before.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_creation_tokens: u64,
}

// serde's `skip_serializing_if` passes a reference.
fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// A non-streaming `chat.completion` response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChatResponse {
    pub id: String,
    pub object: String,
    pub created: i64,
    pub model: String,
    pub choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
    /// The upstream's own JSON of this response, when it arrived in OpenAI's format, so a
    /// response the pipeline leaves unchanged is written as received (unknown fields such as
    /// `usage.completion_tokens_details` included) instead of being encoded again. Anything
    /// that changes the response drops it.
    #[serde(skip)]
    pub raw: Option<bytes::Bytes>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Choice {
    pub index: u32,
    pub message: AssistantMessage,
    pub finish_reason: Option<FinishReason>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub logprobs: Option<Box<serde_json::value::RawValue>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AssistantMessage {
    pub role: Role,
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
}

/// One `chat.completion.chunk` of a stream.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChatChunk {
    // Shared: every chunk of a stream repeats them, so copies of one are cheap.
    #[schema(value_type = String)]
    pub id: Arc<str>,
    #[schema(value_type = String)]
    pub object: Arc<str>,
    pub created: i64,
    #[schema(value_type = String)]
    pub model: Arc<str>,
    pub choices: Vec<ChunkChoice>,
    /// Present (as `null`) on every chunk when usage was requested, set on the last one.
    #[serde(default, skip_serializing_if = "UsageField::is_absent")]
    pub usage: UsageField,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub system_fingerprint: Option<Arc<str>>,
    /// The upstream's own JSON of this chunk, when it arrived in OpenAI's format, so a chunk
    /// forwarded unchanged is written as received (unknown fields included) instead of being
    /// encoded again. Only the stream pipeline keeps it, and only for a chunk it did not change.
    #[serde(skip)]
    pub raw: Option<String>,
}

/// Distinguishes a missing `usage` key from an explicit `"usage": null`, which OpenAI sends on
/// every chunk when `include_usage` is set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ToSchema)]
pub enum UsageField {
    #[default]
    Absent,
    Null,
    Present(Usage),
}

impl UsageField {
    pub fn is_absent(&self) -> bool {
        matches!(self, UsageField::Absent)
    }

    pub fn usage(&self) -> Option<Usage> {
        match self {
            UsageField::Present(u) => Some(*u),
            _ => None,
        }
    }
}

impl Serialize for UsageField {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            UsageField::Present(u) => u.serialize(s),
            _ => s.serialize_none(),
        }
    }
}

impl<'de> Deserialize<'de> for UsageField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<Usage>::deserialize(d)? {
            Some(u) => UsageField::Present(u),
            None => UsageField::Null,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub finish_reason: Option<FinishReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub logprobs: Option<Box<serde_json::value::RawValue>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolCallDelta {
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ToolKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCallDelta>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionCallDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// `POST /v1/embeddings` request body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingsRequest {
    pub model: String,
    pub input: EmbeddingInput,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<EncodingFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingInput {
    One(String),
    Many(Vec<String>),
    Tokens(Vec<u32>),
    TokenBatches(Vec<Vec<u32>>),
}

impl EmbeddingInput {
    pub fn texts(&self) -> Vec<&str> {
        match self {
            EmbeddingInput::One(s) => vec![s.as_str()],
            EmbeddingInput::Many(v) => v.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    Float,
    Base64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingsResponse {
    pub object: String,
    pub data: Vec<Embedding>,
    pub model: String,
    pub usage: EmbeddingsUsage,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Embedding {
    pub object: String,
    pub index: u32,
    pub embedding: EmbeddingVector,
}

/// A vector as floats, or as base64 of little-endian f32s (what `encoding_format: base64` asks for).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingVector {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingsUsage {
    pub prompt_tokens: u64,
    pub total_tokens: u64,
}

impl ChatResponse {
    /// The same completion as a chunk sequence (role + content, tool calls, finish, usage), for
    /// replaying a plain response to a streaming client.
    pub fn into_chunks(self) -> Vec<ChatChunk> {
        let base = ChatChunk {
            id: self.id.into(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.into(),
            choices: Vec::new(),
            usage: UsageField::Null,
            system_fingerprint: self.system_fingerprint.map(Into::into),
            raw: None,
        };
        let mut out = Vec::with_capacity(self.choices.len() * 2 + 1);
        for c in &self.choices {
            let mut first = base.clone();
            first.choices.push(ChunkChoice {
                index: c.index,
                delta: Delta {
                    role: Some(Role::Assistant),
                    content: c.message.content.clone(),
                    tool_calls: c.message.tool_calls.as_ref().map(|calls| {
                        calls
                            .iter()
                            .zip(0u32..)
                            .map(|(t, index)| ToolCallDelta {
                                index,
                                id: Some(t.id.clone()),
                                kind: Some(t.kind),
                                function: Some(FunctionCallDelta {
                                    name: Some(t.function.name.clone()),
                                    arguments: Some(t.function.arguments.clone()),
                                }),
                            })
                            .collect()
                    }),
                    refusal: c.message.refusal.clone(),
                },
                finish_reason: None,
                logprobs: None,
            });
            out.push(first);
            let mut last = base.clone();
            last.choices.push(ChunkChoice {
                index: c.index,
                delta: Delta::default(),
                finish_reason: c.finish_reason,
                logprobs: None,
            });
            out.push(last);
        }
        if let Some(u) = self.usage {
            let mut usage = base;
            usage.usage = UsageField::Present(u);
            out.push(usage);
        }
        out
    }
}
