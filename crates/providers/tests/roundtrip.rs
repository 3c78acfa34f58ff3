//! Round trips between the OpenAI (canonical) and Anthropic formats: everything both formats
//! express survives OpenAI → Anthropic → OpenAI and Anthropic → OpenAI → Anthropic, for
//! requests, responses and streams. The inbound endpoint's SSE encoder is checked event by
//! event against Anthropic's sequence.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use futures_util::StreamExt;
use providers::anthropic::wire::{MessageResponse, MessagesRequest, StreamEvent};
use providers::anthropic::{convert, inbound, parse_stream};
use providers::{ChatChunk, ChatRequest, ChatResponse, UsageField};
use serde_json::{Value, json};

fn canonical(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

/// OpenAI → Anthropic (through its JSON, as on the wire) → OpenAI.
fn openai_round_trip(req: &ChatRequest) -> ChatRequest {
    let wire = convert::to_wire(req, false).unwrap();
    let text = serde_json::to_string(&wire).unwrap();
    let parsed: MessagesRequest = serde_json::from_str(&text).unwrap();
    inbound::to_canonical(parsed).unwrap()
}

#[test]
fn openai_requests_survive_the_anthropic_format() {
    let req = canonical(json!({
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in these?"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg=="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/b.png"}}
            ]},
            {"role": "assistant", "content": "Let me look them up.", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"a\"}"}},
                {"id": "toolu_2", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"b\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "a cat"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "a dog"},
            {"role": "user", "content": "Thanks"},
            {"role": "assistant", "content": "You're welcome."},
            {"role": "user", "content": "Bye"}
        ],
        "max_tokens": 300,
        "temperature": 0.3,
        "top_p": 0.8,
        "stop": ["END", "STOP"],
        "user": "user-42",
        "tools": [{"type": "function", "function": {
            "name": "lookup", "description": "Look something up",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}
        }}],
        "tool_choice": {"type": "function", "function": {"name": "lookup"}},
        "parallel_tool_calls": false,
        "top_k": 40
    }));
    let back = openai_round_trip(&req);
    assert_eq!(
        serde_json::to_value(&back).unwrap(),
        serde_json::to_value(&req).unwrap()
    );

    // Every tool_choice form.
    for choice in [json!("auto"), json!("required"), json!("none")] {
        let mut r = req.clone();
        r.tool_choice = Some(choice.clone());
        r.extra.remove("parallel_tool_calls");
        assert_eq!(openai_round_trip(&r).tool_choice, Some(choice));
    }
}

#[test]
fn anthropic_requests_survive_the_openai_format() {
    let original: MessagesRequest = serde_json::from_value(json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use metric units."}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Weather here?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
            ]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_01", "name": "weather", "input": {"city": "Oslo", "days": 2}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "4°C, rain"},
                {"type": "text", "text": "And tomorrow?"}
            ]}
        ],
        "stop_sequences": ["\n\nHuman:"],
        "temperature": 0.5,
        "top_p": 0.95,
        "top_k": 20,
        "metadata": {"user_id": "u-7"},
        "tools": [{"name": "weather", "description": "Weather by city", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true}
    }))
    .unwrap();
    let canonical = inbound::to_canonical(original.clone()).unwrap();
    let back = convert::to_wire(&canonical, false).unwrap();
    assert_eq!(
        serde_json::to_value(&back).unwrap(),
        serde_json::to_value(&original).unwrap()
    );
}

#[test]
fn responses_survive_both_ways() {
    let resp: ChatResponse = serde_json::from_value(json!({
        "id": "msg_01abc", "object": "chat.completion", "created": 0, "model": "claude-sonnet-4-5",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": null, "message": {
            "role": "assistant", "content": "Looking it up.",
            "tool_calls": [{"id": "toolu_9", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}}]
        }}],
        "usage": {"prompt_tokens": 1500, "completion_tokens": 40, "total_tokens": 1540,
                  "prompt_tokens_details": {"cached_tokens": 1000, "cache_creation_tokens": 300}}
    }))
    .unwrap();
    let message = inbound::from_canonical(&resp);
    // Anthropic's usage splits the prompt: 1500 = 200 uncached + 1000 read + 300 written.
    assert_eq!(
        serde_json::to_value(message.usage).unwrap(),
        json!({"input_tokens": 200, "output_tokens": 40,
               "cache_creation_input_tokens": 300, "cache_read_input_tokens": 1000})
    );
    let text = serde_json::to_string(&message).unwrap();
    let parsed: MessageResponse = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed, message);
    let mut back = convert::from_wire(parsed, false);
    back.created = 0;
    assert_eq!(
        serde_json::to_value(&back).unwrap(),
        serde_json::to_value(&resp).unwrap()
    );

    // Each finish reason both formats express.
    for finish in ["stop", "length", "tool_calls", "content_filter"] {
        let mut r = resp.clone();
        r.choices[0].finish_reason = serde_json::from_value(json!(finish)).unwrap();
        if finish != "tool_calls" {
            r.choices[0].message.tool_calls = None;
        }
        let back = convert::from_wire(inbound::from_canonical(&r), false);
        assert_eq!(
            back.choices[0].finish_reason, r.choices[0].finish_reason,
            "{finish}"
        );
    }
}

fn chunk(v: Value) -> ChatChunk {
    serde_json::from_value(v).unwrap()
}

/// Canonical chunks → the encoder's SSE text.
fn encode(chunks: &[ChatChunk]) -> String {
    let mut enc = inbound::EventEncoder::new("claude-sonnet-4-5", 11);
    let mut events = Vec::new();
    for c in chunks {
        enc.chunk(c, &mut events);
    }
    enc.finish(&mut events);
    events.iter().map(inbound::encode_event).collect()
}

#[test]
fn the_encoder_writes_anthropics_event_sequence() {
    let base =
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "m"});
    let with = |extra: Value| {
        let mut v = base.clone();
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        chunk(v)
    };
    let chunks = [
        with(
            json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]}),
        ),
        with(json!({"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": null}]})),
        with(
            json!({"choices": [{"index": 0, "delta": {"content": " there"}, "finish_reason": null}]}),
        ),
        with(json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})),
        with(
            json!({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13}}),
        ),
    ];
    let expected = [
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_chatcmpl-1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 11, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}),
        ),
        ("ping", json!({"type": "ping"})),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " there"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 2, "input_tokens": 11, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    let text = encode(&chunks);
    let events: Vec<(String, Value)> = text
        .split_terminator("\n\n")
        .map(|ev| {
            let (name, data) = ev.split_once('\n').unwrap();
            (
                name.strip_prefix("event: ").unwrap().to_owned(),
                serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, Value)> = expected
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v))
        .collect();
    assert_eq!(events, expected);
    // Every event parses back as the Anthropic type its name says.
    for (name, data) in &events {
        let ev: StreamEvent = serde_json::from_value(data.clone()).unwrap();
        assert_eq!(ev.name(), name);
    }
}

#[tokio::test]
async fn streams_survive_the_anthropic_format() {
    let base = json!({"id": "msg_s1", "object": "chat.completion.chunk", "created": 0, "model": "claude-sonnet-4-5"});
    let with = |extra: Value| {
        let mut v = base.clone();
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    let d = |delta: Value, finish: Value| {
        with(
            json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], "usage": null}),
        )
    };
    let original = vec![
        d(json!({"role": "assistant", "content": ""}), Value::Null),
        d(json!({"content": "Checking."}), Value::Null),
        d(
            json!({"tool_calls": [{"index": 0, "id": "toolu_a", "type": "function", "function": {"name": "lookup", "arguments": ""}}]}),
            Value::Null,
        ),
        d(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"q\":"}}]}),
            Value::Null,
        ),
        d(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"x\"}"}}]}),
            Value::Null,
        ),
        d(
            json!({"tool_calls": [{"index": 1, "id": "toolu_b", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"y\"}"}}]}),
            Value::Null,
        ),
        d(json!({}), json!("tool_calls")),
        with(
            json!({"choices": [], "usage": {"prompt_tokens": 900, "completion_tokens": 30, "total_tokens": 930,
            "prompt_tokens_details": {"cached_tokens": 800, "cache_creation_tokens": 50}}}),
        ),
    ];
    let chunks: Vec<ChatChunk> = original.iter().cloned().map(chunk).collect();
    let sse = encode(&chunks);
    let body = futures_util::stream::iter([Ok::<_, ()>(sse.into_bytes())]);
    let back: Vec<Value> = parse_stream(body, false)
        .map(|c| {
            let mut c = c.unwrap();
            c.created = 0;
            serde_json::to_value(c).unwrap()
        })
        .collect()
        .await;
    // The same chunks, except that a tool call's first arguments arrive in their own chunk
    // (Anthropic opens a tool_use block, then streams its input) — the concatenation is equal.
    let mut expected = original.clone();
    expected[5] = d(
        json!({"tool_calls": [{"index": 1, "id": "toolu_b", "type": "function", "function": {"name": "lookup", "arguments": ""}}]}),
        Value::Null,
    );
    expected.insert(
        6,
        d(
            json!({"tool_calls": [{"index": 1, "function": {"arguments": "{\"q\":\"y\"}"}}]}),
            Value::Null,
        ),
    );
    assert_eq!(back, expected);
    assert!(matches!(chunks[7].usage, UsageField::Present(_)));
}
