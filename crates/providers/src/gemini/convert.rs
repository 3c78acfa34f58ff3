//! Canonical (OpenAI) requests → Gemini requests, and Gemini responses → canonical responses.
//!
//! Gemini's function calls carry no id the OpenAI format can rely on, so the adapter makes
//! one (deterministic, from the call's position and content) and finds the function's name
//! again from that id when a `tool` message answers it. A call that comes with a
//! `thoughtSignature` (which Gemini needs back on the next turn) carries it inside the id, in a
//! form that stays within `[A-Za-z0-9_-]` so the id is valid for every provider.

use serde_json::{Value, json};

use super::wire::{
    Blob, Content, FinishReason as WireFinish, FunctionCall as WireCall, FunctionCallingConfig,
    FunctionCallingMode, FunctionDeclaration, FunctionResponse, GenerateContentRequest,
    GenerateContentResponse, GenerationConfig, Part, Tool as WireTool, ToolConfig, UsageMetadata,
};
use crate::anthropic::convert::{json_schema, parse_data_url};
use crate::{
    AssistantMessage, ChatRequest, ChatResponse, Choice, ContentPart, FinishReason, FunctionCall,
    Message, MessageContent, ProviderError, ProviderErrorKind, Role, ToolCall, ToolKind, Usage,
    unix_now,
};

/// Separates a generated tool-call id from the thought signature it carries.
const SIGNATURE_MARK: &str = "__ts_";

fn bad(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ProviderErrorKind::BadRequest, message)
}

pub fn to_wire(req: &ChatRequest) -> Result<GenerateContentRequest, ProviderError> {
    let mut system: Vec<Part> = Vec::new();
    let mut contents: Vec<Content> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        let (role, parts) = match m.role {
            Role::System | Role::Developer => {
                system.extend(parts(m.content.as_ref(), i, false)?);
                continue;
            }
            Role::User => ("user", parts(m.content.as_ref(), i, true)?),
            Role::Assistant => ("model", model_parts(m, i)?),
            Role::Tool => ("user", vec![function_response(req, m, i)?]),
            Role::Function => {
                return Err(bad(format!(
                    "messages[{i}].role: `function` messages are not supported; use `tool`"
                )));
            }
        };
        if parts.is_empty() {
            continue;
        }
        // Consecutive turns of one role become one turn; the responses to parallel calls
        // must arrive together.
        match contents.last_mut() {
            Some(last) if last.role.as_deref() == Some(role) => last.parts.extend(parts),
            _ => contents.push(Content {
                role: Some(role.into()),
                parts,
            }),
        }
    }

    let schema = json_schema(req)?;
    let extra_f64 = |k: &str| req.extra.get(k).and_then(Value::as_f64);
    let generation_config = GenerationConfig {
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req
            .extra
            .get("top_k")
            .and_then(Value::as_u64)
            .and_then(|k| u32::try_from(k).ok()),
        candidate_count: req.n.filter(|n| *n != 1),
        max_output_tokens: req.requested_max_output(),
        stop_sequences: req.stop.as_ref().map(crate::Stop::to_vec),
        seed: req.seed,
        presence_penalty: extra_f64("presence_penalty"),
        frequency_penalty: extra_f64("frequency_penalty"),
        // `json_object` has no schema: JSON output without constraints.
        response_mime_type: schema.as_ref().map(|_| "application/json".into()),
        response_json_schema: schema.filter(|s| s != &json!({"type": "object"})),
    };
    let tools = req.tools.as_ref().filter(|t| !t.is_empty()).map(|tools| {
        vec![WireTool {
            function_declarations: tools
                .iter()
                .map(|t| FunctionDeclaration {
                    name: t.function.name.clone(),
                    description: t.function.description.clone(),
                    parameters_json_schema: t.function.parameters.clone(),
                })
                .collect(),
        }]
    });
    let tool_config = match (&tools, &req.tool_choice) {
        (Some(_), Some(c)) => Some(tool_config(c)?),
        _ => None,
    };
    Ok(GenerateContentRequest {
        contents,
        system_instruction: (!system.is_empty()).then_some(Content {
            role: None,
            parts: system,
        }),
        tools,
        tool_config,
        generation_config: (generation_config != GenerationConfig::default())
            .then_some(generation_config),
    })
}

fn parts(
    content: Option<&MessageContent>,
    i: usize,
    media: bool,
) -> Result<Vec<Part>, ProviderError> {
    match content {
        None => Ok(Vec::new()),
        Some(MessageContent::Text(t)) => Ok(vec![Part::text(t.clone())]),
        Some(MessageContent::Parts(ps)) => {
            ps.iter()
                .enumerate()
                .map(|(j, p)| {
                    let field = format!("messages[{i}].content[{j}]");
                    match p {
                        ContentPart::Text { text } => Ok(Part::text(text.clone())),
                        _ if !media => Err(bad(format!("{field}: this message takes text only"))),
                        ContentPart::ImageUrl { image_url } => {
                            let (mime_type, data) = parse_data_url(&image_url.url).ok_or_else(|| {
                            bad(format!(
                                "{field}.image_url.url: Gemini takes images inline only; send \
                                 the image as a base64 data: URL (remote URLs need Gemini's \
                                 file upload API, which Gatehouse does not use)"
                            ))
                        })?;
                            Ok(inline(mime_type, data))
                        }
                        ContentPart::InputAudio { input_audio } => Ok(inline(
                            &format!("audio/{}", input_audio.format),
                            &input_audio.data,
                        )),
                    }
                })
                .collect()
        }
    }
}

fn inline(mime_type: &str, data: &str) -> Part {
    Part {
        inline_data: Some(Blob {
            mime_type: mime_type.to_owned(),
            data: data.to_owned(),
        }),
        ..Part::default()
    }
}

fn model_parts(m: &Message, i: usize) -> Result<Vec<Part>, ProviderError> {
    let mut out: Vec<Part> = parts(m.content.as_ref(), i, false)?
        .into_iter()
        .filter(|p| p.text.as_deref().is_some_and(|t| !t.is_empty()))
        .collect();
    for (j, call) in m.tool_calls.iter().flatten().enumerate() {
        let args = call.function.arguments.trim();
        let args = if args.is_empty() {
            json!({})
        } else {
            serde_json::from_str(args).map_err(|_| {
                bad(format!(
                    "messages[{i}].tool_calls[{j}].function.arguments is not valid JSON"
                ))
            })?
        };
        out.push(Part {
            function_call: Some(WireCall {
                id: None,
                name: call.function.name.clone(),
                args,
            }),
            thought_signature: signature_of(&call.id),
            ..Part::default()
        });
    }
    Ok(out)
}

/// A tool message as a `functionResponse`: the function's name comes from the assistant call
/// with the same id; `response` is the result when it is a JSON object, else `{"result": …}`.
fn function_response(req: &ChatRequest, m: &Message, i: usize) -> Result<Part, ProviderError> {
    let id = m.tool_call_id.as_deref().unwrap_or_default();
    let name = req.messages[..i]
        .iter()
        .rev()
        .flat_map(|p| p.tool_calls.iter().flatten())
        .find(|c| c.id == id)
        .map(|c| c.function.name.clone())
        .ok_or_else(|| {
            bad(format!(
                "messages[{i}].tool_call_id: no earlier assistant tool call has id `{id}`"
            ))
        })?;
    let text = m
        .content
        .as_ref()
        .map(MessageContent::joined_text)
        .unwrap_or_default();
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(o)) => Value::Object(o),
        Ok(other) => json!({ "result": other }),
        Err(_) => json!({ "result": text }),
    };
    Ok(Part {
        function_response: Some(FunctionResponse {
            id: None,
            name,
            response,
        }),
        ..Part::default()
    })
}

fn tool_config(choice: &Value) -> Result<ToolConfig, ProviderError> {
    let (mode, names) = match choice {
        Value::String(s) => match s.as_str() {
            "auto" => (FunctionCallingMode::Auto, None),
            "none" => (FunctionCallingMode::None, None),
            "required" => (FunctionCallingMode::Any, None),
            other => {
                return Err(bad(format!(
                    "tool_choice: `{other}` is not one of auto, none, required"
                )));
            }
        },
        _ => {
            let name = choice
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("tool_choice.function.name is required"))?;
            (FunctionCallingMode::Any, Some(vec![name.to_owned()]))
        }
    };
    Ok(ToolConfig {
        function_calling_config: FunctionCallingConfig {
            mode,
            allowed_function_names: names,
        },
    })
}

/// A tool-call id for Gemini's `index`-th call of a response, carrying its thought signature.
pub(crate) fn call_id(call: &WireCall, index: usize, signature: Option<&str>) -> String {
    let base = call.id.clone().unwrap_or_else(|| {
        let seed = format!("{index}:{}:{}", call.name, call.args);
        let hash = seed.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("call_{index}_{:08x}", hash & 0xffff_ffff)
    });
    match signature {
        // Standard base64 → the URL-safe alphabet without padding, so the id stays valid for
        // providers that restrict ids to [A-Za-z0-9_-].
        Some(sig) => format!(
            "{base}{SIGNATURE_MARK}{}",
            sig.trim_end_matches('=')
                .replace('+', "-")
                .replace('/', "_")
        ),
        None => base,
    }
}

/// The thought signature carried in a tool-call id, back in standard base64.
fn signature_of(id: &str) -> Option<String> {
    let (_, sig) = id.split_once(SIGNATURE_MARK)?;
    let mut s = sig.replace('-', "+").replace('_', "/");
    while s.len() % 4 != 0 {
        s.push('=');
    }
    Some(s)
}

pub fn finish_reason(r: WireFinish, has_calls: bool) -> FinishReason {
    match r {
        WireFinish::MaxTokens => FinishReason::Length,
        WireFinish::Safety
        | WireFinish::Recitation
        | WireFinish::Blocklist
        | WireFinish::ProhibitedContent
        | WireFinish::Spii
        | WireFinish::ImageSafety => FinishReason::ContentFilter,
        _ if has_calls => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

/// Gemini usage → canonical: tool-use prompt tokens count as prompt, thinking tokens as
/// completion (both are billed so); cached content tokens are part of the prompt.
pub fn usage(u: &UsageMetadata) -> Usage {
    Usage::new(
        u.prompt_token_count + u.tool_use_prompt_token_count,
        u.candidates_token_count + u.thoughts_token_count,
        u.cached_content_token_count,
    )
}

/// A blocked prompt (`promptFeedback.blockReason`) as a content-filter error.
pub(crate) fn blocked(resp: &GenerateContentResponse) -> Option<ProviderError> {
    let reason = resp.prompt_feedback.as_ref()?.block_reason.as_deref()?;
    Some(ProviderError::new(
        ProviderErrorKind::ContentFilter,
        format!("the prompt was blocked by the provider's safety filters ({reason})"),
    ))
}

/// Text (thought summaries excluded) and function calls of a candidate's parts.
pub(crate) fn split_parts(parts: &[Part], first_call: usize) -> (String, Vec<ToolCall>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    for p in parts {
        if let Some(t) = &p.text
            && p.thought != Some(true)
        {
            text.push_str(t);
        }
        if let Some(c) = &p.function_call {
            calls.push(ToolCall {
                id: call_id(c, first_call + calls.len(), p.thought_signature.as_deref()),
                kind: ToolKind::Function,
                function: FunctionCall {
                    name: c.name.clone(),
                    arguments: c.args.to_string(),
                },
            });
        }
    }
    (text, calls)
}

pub fn from_wire(
    resp: GenerateContentResponse,
    model: &str,
) -> Result<ChatResponse, ProviderError> {
    if resp.candidates.is_empty()
        && let Some(e) = blocked(&resp)
    {
        return Err(e);
    }
    let choices = resp
        .candidates
        .iter()
        .zip(0u32..)
        .map(|(c, n)| {
            let parts = c.content.as_ref().map_or(&[][..], |c| &c.parts[..]);
            let (text, calls) = split_parts(parts, 0);
            Choice {
                index: c.index.unwrap_or(n),
                finish_reason: c.finish_reason.map(|r| finish_reason(r, !calls.is_empty())),
                message: AssistantMessage {
                    role: Role::Assistant,
                    content: (!text.is_empty() || calls.is_empty()).then_some(text),
                    tool_calls: (!calls.is_empty()).then_some(calls),
                    refusal: None,
                },
                logprobs: None,
            }
        })
        .collect();
    Ok(ChatResponse {
        id: resp
            .response_id
            .clone()
            .unwrap_or_else(|| "gemini-response".into()),
        object: "chat.completion".into(),
        created: unix_now(),
        model: resp
            .model_version
            .clone()
            .unwrap_or_else(|| model.to_owned()),
        choices,
        usage: resp.usage_metadata.as_ref().map(usage),
        system_fingerprint: None,
        service_tier: None,
        raw: None,
    })
}
