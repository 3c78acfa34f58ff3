//! OpenAI wire bodies, built exactly as the public API reference shows them: the
//! `chat.completion` object, the `chat.completion.chunk` SSE sequence (with the
//! `stream_options.include_usage` usage chunk), error bodies, embeddings and the model list.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::behavior::{Reply, UpstreamError};

/// `created` timestamp in every body; fixed so tests can compare whole objects.
pub const CREATED: u64 = 1_735_689_600;
/// `system_fingerprint` in every chat body.
pub const SYSTEM_FINGERPRINT: &str = "fp_mock0001";
/// The event that ends every successful stream.
pub const DONE_EVENT: &[u8] = b"data: [DONE]\n\n";

/// Splits text into word-ish pieces that concatenate back to it: each piece is a run of
/// whitespace followed by a run of non-whitespace (`"Hi there"` → `["Hi", " there"]`).
pub fn word_pieces(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() && in_word {
            pieces.push(&text[start..i]);
            start = i;
        }
        in_word = !c.is_whitespace();
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

/// Splits tool-call arguments into short fragments, the way OpenAI streams them token by token.
pub fn argument_fragments(arguments: &str) -> Vec<&str> {
    const FRAGMENT_CHARS: usize = 6;
    let mut fragments = Vec::new();
    let mut start = 0;
    for (count, (i, _)) in arguments.char_indices().enumerate() {
        if count > 0 && count % FRAGMENT_CHARS == 0 {
            fragments.push(&arguments[start..i]);
            start = i;
        }
    }
    if start < arguments.len() {
        fragments.push(&arguments[start..]);
    }
    fragments
}

/// The `usage` object, with OpenAI's detail sub-objects.
pub fn usage(reply: &Reply) -> Value {
    json!({
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0
        }
    })
}

fn tool_calls_value(reply: &Reply) -> Value {
    reply
        .tool_calls
        .iter()
        .map(|call| {
            json!({
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments}
            })
        })
        .collect()
}

/// The non-streaming `chat.completion` object.
pub fn chat_completion(reply: &Reply, id: &str, model: &str) -> Value {
    let mut message = json!({
        "role": "assistant",
        "content": reply.content,
        "refusal": null,
        "annotations": []
    });
    if !reply.tool_calls.is_empty() {
        message["tool_calls"] = tool_calls_value(reply);
    }
    json!({
        "id": id,
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": reply.finish_reason()
        }],
        "usage": usage(reply),
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT
    })
}

/// Frames one JSON value as an SSE event: `data: {json}\n\n`.
pub fn sse_event(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

struct ChunkWriter<'a> {
    id: &'a str,
    model: &'a str,
    include_usage: bool,
    events: Vec<Bytes>,
}

impl ChunkWriter<'_> {
    fn push(&mut self, choices: Value, usage: Option<Value>) {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": self.model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices
        });
        // With include_usage every chunk carries `usage` (null except on the last one);
        // without it the field is absent.
        if self.include_usage {
            chunk["usage"] = usage.unwrap_or(Value::Null);
        }
        self.events.push(sse_event(&chunk));
    }

    fn push_delta(&mut self, delta: Value, finish_reason: Option<&str>) {
        let choice =
            json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason});
        self.push(json!([choice]), None);
    }
}

/// Every SSE event of a streamed reply, in order: role chunk, content pieces, tool-call header
/// and `arguments` fragments, finish chunk, the usage chunk (`choices: []`) when
/// `include_usage`, then `data: [DONE]`.
pub fn chat_chunks(reply: &Reply, id: &str, model: &str, include_usage: bool) -> Vec<Bytes> {
    let mut out = ChunkWriter {
        id,
        model,
        include_usage,
        events: Vec::new(),
    };
    let mut role_sent = false;
    if let Some(text) = &reply.content {
        out.push_delta(
            json!({"role": "assistant", "content": "", "refusal": null}),
            None,
        );
        role_sent = true;
        for piece in word_pieces(text) {
            out.push_delta(json!({"content": piece}), None);
        }
    }
    for (index, call) in reply.tool_calls.iter().enumerate() {
        let header = json!([{
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""}
        }]);
        let delta = if role_sent {
            json!({"tool_calls": header})
        } else {
            role_sent = true;
            json!({"role": "assistant", "content": null, "tool_calls": header, "refusal": null})
        };
        out.push_delta(delta, None);
        for fragment in argument_fragments(&call.arguments) {
            out.push_delta(
                json!({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}),
                None,
            );
        }
    }
    if !role_sent {
        out.push_delta(
            json!({"role": "assistant", "content": "", "refusal": null}),
            None,
        );
    }
    out.push_delta(json!({}), Some(reply.finish_reason()));
    if include_usage {
        out.push(json!([]), Some(usage(reply)));
    }
    let mut events = out.events;
    events.push(Bytes::from_static(DONE_EVENT));
    events
}

/// `{"error": {"message", "type", "param", "code"}}`.
pub fn error_body(error: &UpstreamError) -> Value {
    json!({
        "error": {
            "message": error.message,
            "type": error.error_type,
            "param": error.param,
            "code": error.code
        }
    })
}

/// The 404 body OpenAI sends for an unknown route.
pub fn unknown_route_body(method: &str, path: &str) -> Value {
    json!({
        "error": {
            "message": format!("Invalid URL ({method} {path})"),
            "type": "invalid_request_error",
            "param": null,
            "code": null
        }
    })
}

/// `GET /v1/models` list.
pub fn model_list(models: &[String]) -> Value {
    let data: Vec<Value> = models
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": CREATED, "owned_by": "mock-upstream"}))
        .collect();
    json!({"object": "list", "data": data})
}
