//! The gateway's own Anthropic-format endpoint, as pure conversions: an Anthropic request →
//! a canonical request (a 400 naming the field when it cannot be translated), a canonical
//! response → an Anthropic message, canonical chunks → named Anthropic SSE events
//! ([`EventEncoder`]), and errors in Anthropic's shape.

use serde_json::{Map, Value, json};

pub use super::encoder::{EventEncoder, encode_event};
use super::wire::{
    Block, Content, ErrorBody, ErrorDetail, ImageSource, MessageResponse, MessagesRequest,
    Role as WireRole, StopReason, System, ToolChoice, WireUsage,
};
use crate::{
    ChatRequest, ChatResponse, ContentPart, FinishReason, FunctionCall, FunctionDef, ImageUrl,
    Message, MessageContent, Role, Stop, StreamOptions, Tool, ToolCall, ToolKind, Usage,
};

/// An Anthropic request the gateway cannot accept: `param` is the field, in the request's own
/// terms (`messages[1].content[0].source`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundError {
    pub param: String,
    pub message: String,
}

fn err(param: impl Into<String>, message: impl Into<String>) -> InboundError {
    InboundError {
        param: param.into(),
        message: message.into(),
    }
}

/// Anthropic request → canonical request. Empty input is refused here, in the request's own
/// indices (the canonical request has the system prompt as an extra first message).
pub fn to_canonical(req: MessagesRequest) -> Result<ChatRequest, InboundError> {
    check_not_empty(&req)?;
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    match req.system {
        Some(System::Text(t)) => messages.push(Message::text(Role::System, t)),
        Some(System::Blocks(blocks)) => {
            let parts = blocks
                .into_iter()
                .map(|b| ContentPart::Text { text: b.text })
                .collect();
            messages.push(message(Role::System, MessageContent::Parts(parts)));
        }
        None => {}
    }
    for (i, m) in req.messages.into_iter().enumerate() {
        match m.role {
            WireRole::User => user_turn(m.content, i, &mut messages)?,
            WireRole::Assistant => messages.push(assistant_turn(m.content, i)?),
        }
    }
    let mut extra = Map::new();
    if let Some(k) = req.top_k {
        extra.insert("top_k".into(), json!(k));
    }
    let tool_choice = match req.tool_choice {
        None => None,
        Some(c) => {
            let (value, disable_parallel) = match c {
                ToolChoice::Auto {
                    disable_parallel_tool_use: d,
                } => (json!("auto"), d),
                ToolChoice::Any {
                    disable_parallel_tool_use: d,
                } => (json!("required"), d),
                ToolChoice::Tool {
                    name,
                    disable_parallel_tool_use: d,
                } => (json!({"type": "function", "function": {"name": name}}), d),
                ToolChoice::None => (json!("none"), None),
            };
            if disable_parallel == Some(true) {
                extra.insert("parallel_tool_calls".into(), json!(false));
            }
            Some(value)
        }
    };
    let stream = req.stream == Some(true);
    Ok(ChatRequest {
        model: req.model,
        messages,
        stream: stream.then_some(true),
        stream_options: stream.then_some(StreamOptions {
            include_usage: Some(true),
        }),
        temperature: req.temperature,
        top_p: req.top_p,
        max_tokens: Some(req.max_tokens),
        stop: req.stop_sequences.map(Stop::Many),
        tools: req.tools.map(|tools| {
            tools
                .into_iter()
                .map(|t| Tool {
                    kind: ToolKind::Function,
                    function: FunctionDef {
                        name: t.name,
                        description: t.description,
                        parameters: Some(t.input_schema),
                        strict: None,
                    },
                })
                .collect()
        }),
        tool_choice,
        user: req.metadata.and_then(|m| m.user_id),
        extra,
        ..ChatRequest::default()
    })
}

fn check_not_empty(req: &MessagesRequest) -> Result<(), InboundError> {
    if req.messages.is_empty() {
        return Err(err("messages", "at least one message is required"));
    }
    for (i, m) in req.messages.iter().enumerate() {
        match &m.content {
            Content::Text(t) if t.trim().is_empty() => {
                return Err(err(
                    format!("messages[{i}].content"),
                    "message content must not be empty",
                ));
            }
            Content::Blocks(b) if b.is_empty() => {
                return Err(err(
                    format!("messages[{i}].content"),
                    "message content must not be an empty list",
                ));
            }
            Content::Blocks(blocks) => {
                for (j, b) in blocks.iter().enumerate() {
                    if let Block::Text { text, .. } = b
                        && text.trim().is_empty()
                    {
                        return Err(err(
                            format!("messages[{i}].content[{j}].text"),
                            "text content blocks must be non-empty",
                        ));
                    }
                }
            }
            Content::Text(_) => {}
        }
    }
    Ok(())
}

fn message(role: Role, content: MessageContent) -> Message {
    Message {
        content: Some(content),
        ..Message::text(role, "")
    }
}

/// A user turn: its `tool_result` blocks become `tool` messages (first, as OpenAI wants them
/// right after the assistant's calls), the rest one user message.
fn user_turn(content: Content, i: usize, out: &mut Vec<Message>) -> Result<(), InboundError> {
    let blocks = match content {
        Content::Text(t) => {
            out.push(Message::text(Role::User, t));
            return Ok(());
        }
        Content::Blocks(b) => b,
    };
    let mut parts = Vec::new();
    for (j, b) in blocks.into_iter().enumerate() {
        let field = format!("messages[{i}].content[{j}]");
        match b {
            Block::Text { text, .. } => parts.push(ContentPart::Text { text }),
            Block::Image { source, .. } => parts.push(image_part(source)),
            Block::ToolResult {
                tool_use_id,
                content,
                ..
            } => {
                let content = match content {
                    None => MessageContent::Text(String::new()),
                    Some(Content::Text(t)) => MessageContent::Text(t),
                    Some(Content::Blocks(inner)) => {
                        let mut p = Vec::with_capacity(inner.len());
                        for (k, b) in inner.into_iter().enumerate() {
                            p.push(match b {
                                Block::Text { text, .. } => ContentPart::Text { text },
                                Block::Image { source, .. } => image_part(source),
                                _ => {
                                    return Err(err(
                                        format!("{field}.content[{k}].type"),
                                        "tool results may contain text and image blocks only",
                                    ));
                                }
                            });
                        }
                        MessageContent::Parts(p)
                    }
                };
                out.push(Message {
                    tool_call_id: Some(tool_use_id),
                    ..message(Role::Tool, content)
                });
            }
            _ => {
                return Err(err(
                    format!("{field}.type"),
                    "user messages may contain text, image and tool_result blocks only",
                ));
            }
        }
    }
    match parts.as_mut_slice() {
        [] => {}
        // One text block is the same as a string, and reads better to OpenAI-style upstreams.
        [ContentPart::Text { text }] => out.push(Message::text(Role::User, std::mem::take(text))),
        _ => out.push(message(Role::User, MessageContent::Parts(parts))),
    }
    Ok(())
}

fn image_part(source: ImageSource) -> ContentPart {
    let url = match source {
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        ImageSource::Url { url } => url,
    };
    ContentPart::ImageUrl {
        image_url: ImageUrl { url, detail: None },
    }
}

/// An assistant turn: text blocks → content, `tool_use` blocks → tool calls. Thinking blocks
/// are dropped: the gateway never returns them, and other providers cannot use them.
fn assistant_turn(content: Content, i: usize) -> Result<Message, InboundError> {
    let blocks = match content {
        Content::Text(t) => return Ok(Message::text(Role::Assistant, t)),
        Content::Blocks(b) => b,
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, b) in blocks.into_iter().enumerate() {
        match b {
            Block::Text { text: t, .. } => text.push_str(&t),
            Block::ToolUse { id, name, input } => calls.push(ToolCall {
                id,
                kind: ToolKind::Function,
                function: FunctionCall {
                    name,
                    arguments: input.to_string(),
                },
            }),
            Block::Thinking { .. } | Block::RedactedThinking { .. } => {}
            _ => {
                return Err(err(
                    format!("messages[{i}].content[{j}].type"),
                    "assistant messages may contain text and tool_use blocks only",
                ));
            }
        }
    }
    Ok(Message {
        content: (!text.is_empty() || calls.is_empty()).then_some(MessageContent::Text(text)),
        tool_calls: (!calls.is_empty()).then_some(calls),
        ..Message::text(Role::Assistant, "")
    })
}

/// OpenAI finish reason → Anthropic stop reason.
pub fn stop_reason(f: Option<FinishReason>) -> StopReason {
    match f {
        None | Some(FinishReason::Stop) => StopReason::EndTurn,
        Some(FinishReason::Length) => StopReason::MaxTokens,
        Some(FinishReason::ToolCalls | FinishReason::FunctionCall) => StopReason::ToolUse,
        Some(FinishReason::ContentFilter) => StopReason::Refusal,
    }
}

/// Canonical usage → Anthropic usage, whose `input_tokens` excludes cache reads and writes.
pub fn wire_usage(u: &Usage) -> WireUsage {
    let read = u.cached_tokens();
    let write = u.cache_creation_tokens();
    WireUsage {
        input_tokens: u.prompt_tokens.saturating_sub(read + write),
        output_tokens: u.completion_tokens,
        cache_creation_input_tokens: Some(write),
        cache_read_input_tokens: Some(read),
    }
}

/// A message id in Anthropic's style.
pub fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        id.to_owned()
    } else {
        format!("msg_{id}")
    }
}

/// A tool call's arguments as the `input` object (kept as a string if not valid JSON).
pub(crate) fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_owned()))
}

/// Canonical response → Anthropic message (the first choice).
pub fn from_canonical(resp: &ChatResponse) -> MessageResponse {
    let mut content = Vec::new();
    let choice = resp.choices.first();
    if let Some(c) = choice {
        let text = c
            .message
            .content
            .as_deref()
            .filter(|t| !t.is_empty())
            .or(c.message.refusal.as_deref());
        if let Some(t) = text {
            content.push(Block::text(t));
        }
        for call in c.message.tool_calls.iter().flatten() {
            content.push(Block::ToolUse {
                id: call.id.clone(),
                name: call.function.name.clone(),
                input: tool_input(&call.function.arguments),
            });
        }
    }
    MessageResponse {
        id: message_id(&resp.id),
        kind: "message".into(),
        role: WireRole::Assistant,
        model: resp.model.clone(),
        content,
        stop_reason: Some(stop_reason(choice.and_then(|c| c.finish_reason))),
        stop_sequence: None,
        usage: wire_usage(&resp.usage.unwrap_or_default()),
    }
}

/// Anthropic's `error.type` for an HTTP status the gateway answers with.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    }
}

/// `{"type": "error", "error": {"type", "message"}}`.
pub fn error_body(status: u16, message: impl Into<String>) -> ErrorBody {
    ErrorBody {
        kind: "error".into(),
        error: ErrorDetail {
            kind: error_type(status).into(),
            message: message.into(),
        },
    }
}
