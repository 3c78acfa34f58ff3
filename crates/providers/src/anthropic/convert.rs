//! Canonical (OpenAI) requests → Anthropic requests, and Anthropic responses → canonical
//! responses. Requests that Anthropic cannot express fail here with a `BadRequest` naming the
//! field, before anything is sent.

use serde_json::{Value, json};

use super::wire::{
    Block, Content, ImageSource, InputMessage, MessageResponse, MessagesRequest, Metadata,
    Role as WireRole, StopReason, System, SystemBlock, TextType, ToolChoice, ToolDef, WireUsage,
};
use crate::{
    AssistantMessage, ChatRequest, ChatResponse, Choice, ContentPart, FinishReason, FunctionCall,
    Message, MessageContent, ProviderError, ProviderErrorKind, Role, ToolCall, ToolKind, Usage,
    unix_now,
};

/// `max_tokens` sent when neither the client nor the model's configuration set an output cap
/// (Anthropic requires one). The gateway normally fills the model's `max_output_tokens`.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The tool that carries a JSON-mode answer: Anthropic has no `response_format`, so JSON mode is
/// a forced call of this tool whose input is the answer; the call comes back as message text.
pub const JSON_TOOL: &str = "json_response";

fn bad(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ProviderErrorKind::BadRequest, message)
}

/// Whether the request asks for JSON output, and with which schema.
pub(crate) fn json_schema(req: &ChatRequest) -> Result<Option<Value>, ProviderError> {
    let Some(rf) = &req.response_format else {
        return Ok(None);
    };
    match rf.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "object"}))),
        Some("json_schema") => rf
            .pointer("/json_schema/schema")
            .cloned()
            .map(Some)
            .ok_or_else(|| bad("response_format.json_schema.schema is required")),
        _ => Err(bad(
            "response_format.type must be `text`, `json_object` or `json_schema`",
        )),
    }
}

/// Build the Anthropic request. `stream` sets the `stream` field.
pub fn to_wire(req: &ChatRequest, stream: bool) -> Result<MessagesRequest, ProviderError> {
    if req.n.is_some_and(|n| n != 1) {
        return Err(bad("n: Anthropic returns one choice; `n` must be 1"));
    }
    let mut system: Vec<SystemBlock> = Vec::new();
    let mut messages: Vec<InputMessage> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        let (role, blocks) = match m.role {
            Role::System | Role::Developer => {
                system.extend(system_text(m, i)?.into_iter().map(|text| SystemBlock {
                    kind: TextType::Text,
                    text,
                    cache_control: None,
                }));
                continue;
            }
            Role::User => (WireRole::User, user_blocks(m, i)?),
            Role::Assistant => (WireRole::Assistant, assistant_blocks(m, i)?),
            Role::Tool => (WireRole::User, vec![tool_result(m, i)?]),
            Role::Function => {
                return Err(bad(format!(
                    "messages[{i}].role: `function` messages are not supported; use `tool`"
                )));
            }
        };
        if blocks.is_empty() {
            continue;
        }
        // Anthropic wants alternating turns: consecutive turns of one role become one turn
        // (tool results after an assistant turn are one user turn, results first).
        match messages.last_mut() {
            Some(last) if last.role == role => {
                if let Content::Blocks(b) = &mut last.content {
                    b.extend(blocks);
                }
            }
            _ => messages.push(InputMessage {
                role,
                content: Content::Blocks(blocks),
            }),
        }
    }
    for m in &mut messages {
        simplify(&mut m.content);
    }

    let json_schema = json_schema(req)?;
    let mut tools: Vec<ToolDef> = req
        .tools
        .iter()
        .flatten()
        .map(|t| ToolDef {
            name: t.function.name.clone(),
            description: t.function.description.clone(),
            input_schema: t
                .function
                .parameters
                .clone()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        })
        .collect();
    let disable_parallel = req
        .extra
        .get("parallel_tool_calls")
        .and_then(Value::as_bool)
        .map(|p| !p)
        .filter(|d| *d);
    let mut tool_choice = if tools.is_empty() {
        None
    } else {
        req.tool_choice
            .as_ref()
            .map(|c| tool_choice(c, disable_parallel))
            .transpose()?
            .or_else(|| {
                disable_parallel.map(|d| ToolChoice::Auto {
                    disable_parallel_tool_use: Some(d),
                })
            })
    };
    if let Some(schema) = json_schema {
        let user_tools = !tools.is_empty();
        tools.push(ToolDef {
            name: JSON_TOOL.into(),
            description: Some(
                "Give your final answer by calling this tool: its input is the answer, a JSON \
                 value matching the schema."
                    .into(),
            ),
            input_schema: schema,
        });
        // With the client's own tools the model may call those first; otherwise the answer
        // tool is forced.
        tool_choice = Some(if user_tools {
            ToolChoice::Any {
                disable_parallel_tool_use: disable_parallel,
            }
        } else {
            ToolChoice::Tool {
                name: JSON_TOOL.into(),
                disable_parallel_tool_use: None,
            }
        });
    }

    Ok(MessagesRequest {
        model: req.model.clone(),
        messages,
        max_tokens: req.requested_max_output().unwrap_or(DEFAULT_MAX_TOKENS),
        system: match system.len() {
            0 => None,
            1 => Some(System::Text(system.remove(0).text)),
            _ => Some(System::Blocks(system)),
        },
        metadata: req.user.as_ref().map(|u| Metadata {
            user_id: Some(u.clone()),
        }),
        stop_sequences: req.stop.as_ref().map(crate::Stop::to_vec),
        stream: stream.then_some(true),
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req
            .extra
            .get("top_k")
            .and_then(Value::as_u64)
            .and_then(|k| u32::try_from(k).ok()),
        tools: (!tools.is_empty()).then_some(tools),
        tool_choice,
    })
}

/// The texts of a system message, one per part.
fn system_text(m: &Message, i: usize) -> Result<Vec<String>, ProviderError> {
    match &m.content {
        Some(MessageContent::Text(t)) => Ok(vec![t.clone()]),
        Some(MessageContent::Parts(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| match p {
                ContentPart::Text { text } => Ok(text.clone()),
                _ => Err(bad(format!(
                    "messages[{i}].content[{j}]: Anthropic system prompts take text only"
                ))),
            })
            .collect(),
        None => Ok(Vec::new()),
    }
}

fn user_blocks(m: &Message, i: usize) -> Result<Vec<Block>, ProviderError> {
    match &m.content {
        Some(MessageContent::Text(t)) => Ok(vec![Block::text(t.clone())]),
        Some(MessageContent::Parts(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| part_block(p, &format!("messages[{i}].content[{j}]")))
            .collect(),
        None => Ok(Vec::new()),
    }
}

fn part_block(p: &ContentPart, field: &str) -> Result<Block, ProviderError> {
    match p {
        ContentPart::Text { text } => Ok(Block::text(text.clone())),
        ContentPart::ImageUrl { image_url } => Ok(Block::Image {
            source: image_source(&image_url.url, field)?,
            cache_control: None,
        }),
        ContentPart::InputAudio { .. } => Err(bad(format!(
            "{field}: Anthropic does not accept audio input"
        ))),
    }
}

/// `data:<media type>;base64,<data>` → a base64 source; http(s) URLs → a URL source.
pub(crate) fn image_source(url: &str, field: &str) -> Result<ImageSource, ProviderError> {
    if let Some((media_type, data)) = parse_data_url(url) {
        return Ok(ImageSource::Base64 {
            media_type: media_type.to_owned(),
            data: data.to_owned(),
        });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(ImageSource::Url {
            url: url.to_owned(),
        });
    }
    Err(bad(format!(
        "{field}.image_url.url: expected an http(s) URL or a base64 data: URL"
    )))
}

/// The media type and base64 payload of a `data:…;base64,…` URL.
pub fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (header, data) = rest.split_once(',')?;
    let media_type = header.strip_suffix(";base64")?;
    (!media_type.is_empty()).then_some((media_type, data))
}

fn assistant_blocks(m: &Message, i: usize) -> Result<Vec<Block>, ProviderError> {
    let mut blocks = Vec::new();
    match &m.content {
        Some(MessageContent::Text(t)) if !t.is_empty() => blocks.push(Block::text(t.clone())),
        Some(MessageContent::Parts(parts)) => {
            for (j, p) in parts.iter().enumerate() {
                match p {
                    ContentPart::Text { text } if !text.is_empty() => {
                        blocks.push(Block::text(text.clone()));
                    }
                    ContentPart::Text { .. } => {}
                    _ => {
                        return Err(bad(format!(
                            "messages[{i}].content[{j}]: assistant messages take text only"
                        )));
                    }
                }
            }
        }
        _ => {}
    }
    for (j, call) in m.tool_calls.iter().flatten().enumerate() {
        let args = call.function.arguments.trim();
        let input = if args.is_empty() {
            json!({})
        } else {
            serde_json::from_str(args).map_err(|_| {
                bad(format!(
                    "messages[{i}].tool_calls[{j}].function.arguments is not valid JSON"
                ))
            })?
        };
        blocks.push(Block::ToolUse {
            id: call.id.clone(),
            name: call.function.name.clone(),
            input,
        });
    }
    Ok(blocks)
}

fn tool_result(m: &Message, i: usize) -> Result<Block, ProviderError> {
    let content = match &m.content {
        Some(MessageContent::Text(t)) => Some(Content::Text(t.clone())),
        Some(MessageContent::Parts(parts)) => Some(Content::Blocks(
            parts
                .iter()
                .enumerate()
                .map(|(j, p)| part_block(p, &format!("messages[{i}].content[{j}]")))
                .collect::<Result<_, _>>()?,
        )),
        None => None,
    };
    Ok(Block::ToolResult {
        tool_use_id: m.tool_call_id.clone().unwrap_or_default(),
        content,
        is_error: None,
    })
}

/// A turn that is a single plain text block is sent as a string.
fn simplify(content: &mut Content) {
    if let Content::Blocks(b) = content
        && let [
            Block::Text {
                text,
                cache_control: None,
            },
        ] = b.as_mut_slice()
    {
        *content = Content::Text(std::mem::take(text));
    }
}

fn tool_choice(
    choice: &Value,
    disable_parallel: Option<bool>,
) -> Result<ToolChoice, ProviderError> {
    let d = disable_parallel;
    match choice {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto {
                disable_parallel_tool_use: d,
            }),
            "required" => Ok(ToolChoice::Any {
                disable_parallel_tool_use: d,
            }),
            "none" => Ok(ToolChoice::None),
            other => Err(bad(format!(
                "tool_choice: `{other}` is not one of auto, none, required"
            ))),
        },
        Value::Object(_) => choice
            .pointer("/function/name")
            .and_then(Value::as_str)
            .map(|name| ToolChoice::Tool {
                name: name.to_owned(),
                disable_parallel_tool_use: d,
            })
            .ok_or_else(|| bad("tool_choice.function.name is required")),
        _ => Err(bad("tool_choice must be a string or an object")),
    }
}

/// Anthropic's stop reason as an OpenAI finish reason.
pub fn finish_reason(r: StopReason) -> FinishReason {
    match r {
        StopReason::EndTurn
        | StopReason::StopSequence
        | StopReason::PauseTurn
        | StopReason::Unknown => FinishReason::Stop,
        StopReason::MaxTokens | StopReason::ModelContextWindowExceeded => FinishReason::Length,
        StopReason::ToolUse => FinishReason::ToolCalls,
        StopReason::Refusal => FinishReason::ContentFilter,
    }
}

/// Anthropic usage → canonical: `prompt_tokens` counts every prompt token (Anthropic's
/// `input_tokens` excludes cache reads and writes), `cached_tokens` the cache reads and
/// `cache_creation_tokens` the cache writes.
pub fn usage(u: &WireUsage) -> Usage {
    let read = u.cache_read_input_tokens.unwrap_or(0);
    let write = u.cache_creation_input_tokens.unwrap_or(0);
    Usage::with_cache(u.input_tokens + read + write, u.output_tokens, read, write)
}

/// The Anthropic response as a `chat.completion`. In JSON mode the answer tool's input is the
/// message text.
pub fn from_wire(resp: MessageResponse, json_mode: bool) -> ChatResponse {
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in resp.content {
        match block {
            Block::Text { text: t, .. } => text.push_str(&t),
            Block::ToolUse { name, input, .. } if json_mode && name == JSON_TOOL => {
                text.push_str(&input.to_string());
            }
            Block::ToolUse { id, name, input } => calls.push(ToolCall {
                id,
                kind: ToolKind::Function,
                function: FunctionCall {
                    name,
                    arguments: input.to_string(),
                },
            }),
            _ => {}
        }
    }
    let finish = resp.stop_reason.map(|r| match finish_reason(r) {
        FinishReason::ToolCalls if calls.is_empty() => FinishReason::Stop,
        f => f,
    });
    ChatResponse {
        id: resp.id,
        object: "chat.completion".into(),
        created: unix_now(),
        model: resp.model,
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: Role::Assistant,
                content: (!text.is_empty() || calls.is_empty()).then_some(text),
                tool_calls: (!calls.is_empty()).then_some(calls),
                refusal: None,
            },
            finish_reason: finish,
            logprobs: None,
        }],
        usage: Some(usage(&resp.usage)),
        system_fingerprint: None,
        service_tier: None,
        raw: None,
    }
}
