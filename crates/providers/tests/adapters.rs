//! Adapter behaviour outside the shared conformance list: inputs a provider cannot express
//! (each refused with a message naming the field), provider-specific request forms, Gemini
//! embeddings and the inbound Anthropic conversions' refusals.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::time::Duration;

use providers::anthropic::wire::MessagesRequest;
use providers::anthropic::{AnthropicProvider, convert as anthropic, inbound};
use providers::gemini::{GeminiProvider, convert as gemini};
use providers::{ChatRequest, EmbeddingVector, EmbeddingsRequest, Provider, ProviderErrorKind};
use secrecy::SecretString;
use serde_json::{Value, json};
use test_support::{Canned, FixtureUpstream};

fn req(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

fn anthropic_error(v: Value) -> String {
    let e = anthropic::to_wire(&req(v), false).unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::BadRequest);
    e.message
}

fn gemini_error(v: Value) -> String {
    let e = gemini::to_wire(&req(v)).unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::BadRequest);
    e.message
}

#[test]
fn anthropic_refuses_what_it_cannot_express() {
    // Bad input: several choices.
    assert_eq!(
        anthropic_error(json!({"model": "m", "n": 2, "messages": [user("hi")]})),
        "n: Anthropic returns one choice; `n` must be 1"
    );
    // Bad input: tool-call arguments that are not JSON.
    assert_eq!(
        anthropic_error(
            json!({"model": "m", "messages": [user("hi"), {"role": "assistant", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]})
        ),
        "messages[1].tool_calls[0].function.arguments is not valid JSON"
    );
    // Bad input: audio input.
    assert_eq!(
        anthropic_error(
            json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]})
        ),
        "messages[0].content[0]: Anthropic does not accept audio input"
    );
    // Bad input: an image in a system prompt.
    assert_eq!(
        anthropic_error(
            json!({"model": "m", "messages": [{"role": "system", "content": [
            {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}, user("hi")]})
        ),
        "messages[0].content[0]: Anthropic system prompts take text only"
    );
    // Bad input: a data: URL that is not base64.
    assert_eq!(
        anthropic_error(
            json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}]}]})
        ),
        "messages[0].content[0].image_url.url: expected an http(s) URL or a base64 data: URL"
    );
    // Bad input: an unknown tool_choice string.
    assert_eq!(
        anthropic_error(
            json!({"model": "m", "messages": [user("hi")], "tool_choice": "sometimes",
            "tools": [{"type": "function", "function": {"name": "f"}}]})
        ),
        "tool_choice: `sometimes` is not one of auto, none, required"
    );
    // Bad input: a deprecated `function` message.
    assert_eq!(
        anthropic_error(
            json!({"model": "m", "messages": [user("hi"), {"role": "function", "name": "f", "content": "x"}]})
        ),
        "messages[1].role: `function` messages are not supported; use `tool`"
    );
}

#[test]
fn anthropic_request_forms() {
    // A named tool choice with parallel calls off; a tool without parameters gets an empty
    // object schema; json_object mode next to the client's tools lets the model pick any tool.
    let w = anthropic::to_wire(
        &req(json!({"model": "m", "messages": [user("hi")],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "parallel_tool_calls": false})),
        true,
    )
    .unwrap();
    let v = serde_json::to_value(&w).unwrap();
    assert_eq!(
        v["tool_choice"],
        json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true})
    );
    assert_eq!(
        v["tools"][0]["input_schema"],
        json!({"type": "object", "properties": {}})
    );
    assert_eq!(v["stream"], true);

    let w = anthropic::to_wire(
        &req(
            json!({"model": "m", "messages": [user("hi")], "max_completion_tokens": 77,
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "response_format": {"type": "json_object"}}),
        ),
        false,
    )
    .unwrap();
    let v = serde_json::to_value(&w).unwrap();
    assert_eq!(v["max_tokens"], 77);
    assert_eq!(v["tool_choice"], json!({"type": "any"}));
    assert_eq!(v["tools"][1]["name"], "json_response");
    assert_eq!(v["tools"][1]["input_schema"], json!({"type": "object"}));
}

#[tokio::test]
async fn anthropic_has_no_embeddings() {
    let p = AnthropicProvider::new(
        providers::HttpClient::default(),
        "http://127.0.0.1:9",
        None,
        Duration::from_secs(1),
    );
    let e = p
        .embed(
            &serde_json::from_value::<EmbeddingsRequest>(json!({"model": "m", "input": "x"}))
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind, e.message.as_str()),
        (
            ProviderErrorKind::BadRequest,
            "Anthropic has no embeddings API"
        )
    );
}

fn inbound_error(v: Value) -> (String, String) {
    let r: MessagesRequest = serde_json::from_value(v).unwrap();
    let e = inbound::to_canonical(r).unwrap_err();
    (e.param, e.message)
}

#[test]
fn inbound_refuses_blocks_it_cannot_translate() {
    // Bad input: a tool_use block in a user turn.
    assert_eq!(
        inbound_error(
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "hi"}, {"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]})
        ),
        (
            "messages[0].content[1].type".into(),
            "user messages may contain text, image and tool_result blocks only".into()
        )
    );
    // Bad input: a PDF document block (not translated).
    assert_eq!(
        inbound_error(
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}}]}]})
        ),
        (
            "messages[0].content[0].type".into(),
            "user messages may contain text, image and tool_result blocks only".into()
        )
    );
    // Bad input: an image in an assistant turn.
    assert_eq!(
        inbound_error(
            json!({"model": "m", "max_tokens": 5, "messages": [user("hi"), {"role": "assistant", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}]})
        ),
        (
            "messages[1].content[0].type".into(),
            "assistant messages may contain text and tool_use blocks only".into()
        )
    );
    // Bad input: a tool_use block inside a tool result.
    assert_eq!(
        inbound_error(
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "tool_use", "id": "u", "name": "f", "input": {}}]}]}]})
        ),
        (
            "messages[0].content[0].content[0].type".into(),
            "tool results may contain text and image blocks only".into()
        )
    );
    // Bad input: no messages; a blank message; a blank text block (indices are the request's).
    assert_eq!(
        inbound_error(json!({"model": "m", "max_tokens": 5, "system": "s", "messages": []})),
        ("messages".into(), "at least one message is required".into())
    );
    assert_eq!(
        inbound_error(
            json!({"model": "m", "max_tokens": 5, "system": "s", "messages": [user("  ")]})
        ),
        (
            "messages[0].content".into(),
            "message content must not be empty".into()
        )
    );
    assert_eq!(
        inbound_error(
            json!({"model": "m", "max_tokens": 5, "messages": [user("a"), {"role": "assistant", "content": [
            {"type": "text", "text": "b"}, {"type": "text", "text": ""}]}]})
        ),
        (
            "messages[1].content[1].text".into(),
            "text content blocks must be non-empty".into()
        )
    );
    // Thinking blocks in assistant history are dropped, not refused.
    let r: MessagesRequest = serde_json::from_value(json!({"model": "m", "max_tokens": 5, "stream": true, "messages": [
        user("hi"),
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "sig"}, {"type": "text", "text": "Hello"}]},
        user("again")]}))
    .unwrap();
    let c = inbound::to_canonical(r).unwrap();
    assert_eq!(
        serde_json::to_value(&c.messages[1]).unwrap(),
        json!({"role": "assistant", "content": "Hello"})
    );
    // A streaming request asks the pipeline for the usage chunk, which message_delta needs.
    assert!(c.is_stream() && c.wants_usage_chunk());
}

#[test]
fn gemini_refuses_what_it_cannot_express() {
    // Bad input: a tool result answering no earlier call.
    assert_eq!(
        gemini_error(
            json!({"model": "m", "messages": [user("hi"), {"role": "tool", "tool_call_id": "nope", "content": "x"}]})
        ),
        "messages[1].tool_call_id: no earlier assistant tool call has id `nope`"
    );
    // Bad input: an image in a system prompt.
    assert_eq!(
        gemini_error(
            json!({"model": "m", "messages": [{"role": "system", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}, user("hi")]})
        ),
        "messages[0].content[0]: this message takes text only"
    );
}

#[test]
fn gemini_request_forms() {
    // A named tool choice; n, seed, penalties, top_k; json_object without a schema; audio.
    let w = gemini::to_wire(&req(json!({"model": "m", "n": 2, "seed": 7, "presence_penalty": 0.5,
        "frequency_penalty": 0.25, "top_k": 3,
        "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}]}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "response_format": {"type": "json_object"}})))
    .unwrap();
    assert_eq!(
        serde_json::to_value(&w).unwrap(),
        json!({
            "contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}}]}],
            "tools": [{"functionDeclarations": [{"name": "f"}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}},
            "generationConfig": {"topK": 3, "candidateCount": 2, "seed": 7, "presencePenalty": 0.5,
                "frequencyPenalty": 0.25, "responseMimeType": "application/json"}
        })
    );
}

fn gemini_provider(base: &str) -> GeminiProvider {
    GeminiProvider::new(
        providers::HttpClient::default(),
        &format!("{base}/v1beta"),
        Some(SecretString::from("g-key")),
        Duration::from_secs(5),
    )
}

#[tokio::test]
async fn gemini_model_names_cannot_escape_the_url_path() {
    let up = FixtureUpstream::start(vec![Canned::json(200, "{}")]).await;
    let p = gemini_provider(&up.base_url);
    // Bad input: a client-chosen (passthrough) model name with path characters.
    let e = p
        .chat(&req(
            json!({"model": "../../files/x", "messages": [user("hi")]}),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        e.message,
        "model: Gemini model names use letters, digits, '-', '.' and '_' only"
    );
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn gemini_candidates_become_choices() {
    let body = json!({"candidates": [
        {"content": {"role": "model", "parts": [{"text": "One"}]}, "finishReason": "STOP", "index": 0},
        {"content": {"role": "model", "parts": [{"text": "Two"}]}, "finishReason": "MAX_TOKENS", "index": 1}
    ], "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4, "totalTokenCount": 7}});
    let up = FixtureUpstream::start(vec![Canned::json_value(&body)]).await;
    let resp = gemini_provider(&up.base_url)
        .chat(&req(
            json!({"model": "models/gemini-2.5-flash", "n": 2, "messages": [user("hi")]}),
        ))
        .await
        .unwrap();
    assert_eq!(
        up.requests()[0].path,
        "/v1beta/models/gemini-2.5-flash:generateContent"
    );
    let got: Vec<_> = resp
        .choices
        .iter()
        .map(|c| {
            (
                c.index,
                c.message.content.clone().unwrap(),
                format!("{:?}", c.finish_reason.unwrap()),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (0, "One".into(), "Stop".into()),
            (1, "Two".into(), "Length".into())
        ]
    );
}

#[tokio::test]
async fn gemini_embeddings_single_and_batch() {
    let up = FixtureUpstream::start(vec![
        Canned::json_value(&json!({"embedding": {"values": [0.25, -0.5, 1.0]}})),
        Canned::json_value(
            &json!({"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}]}),
        ),
    ])
    .await;
    let p = gemini_provider(&up.base_url);
    let one: EmbeddingsRequest = serde_json::from_value(
        json!({"model": "gemini-embedding-001", "input": "hello world", "dimensions": 3}),
    )
    .unwrap();
    let r = p.embed(&one).await.unwrap();
    assert_eq!(
        r.data[0].embedding,
        EmbeddingVector::Float(vec![0.25, -0.5, 1.0])
    );
    // "hello world" is 11 characters: estimated as 3 tokens (Gemini reports none).
    assert_eq!((r.usage.prompt_tokens, r.usage.total_tokens), (3, 3));
    let sent = &up.requests()[0];
    assert_eq!(
        sent.path,
        "/v1beta/models/gemini-embedding-001:embedContent"
    );
    assert_eq!(sent.header("x-goog-api-key"), Some("g-key"));
    assert_eq!(
        sent.body,
        json!({"content": {"parts": [{"text": "hello world"}]}, "outputDimensionality": 3})
    );

    let many: EmbeddingsRequest =
        serde_json::from_value(json!({"model": "gemini-embedding-001", "input": ["a", "b"]}))
            .unwrap();
    let r = p.embed(&many).await.unwrap();
    assert_eq!(r.data.len(), 2);
    assert_eq!(
        (r.data[1].index, &r.data[1].embedding),
        (1, &EmbeddingVector::Float(vec![0.3, 0.4]))
    );
    let sent = &up.requests()[1];
    assert_eq!(
        sent.path,
        "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
    assert_eq!(
        sent.body,
        json!({"requests": [
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}},
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]}}
        ]})
    );

    // Bad input: token ids instead of text.
    let tokens: EmbeddingsRequest =
        serde_json::from_value(json!({"model": "gemini-embedding-001", "input": [1, 2, 3]}))
            .unwrap();
    let e = p.embed(&tokens).await.unwrap_err();
    assert_eq!(
        e.message,
        "input: Gemini embeddings take text input, not token ids"
    );
    assert_eq!(up.hits(), 2);
}
