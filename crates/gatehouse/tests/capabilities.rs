//! Per-model capabilities: a request needing one the model lacks gets 400 `invalid_request`
//! whose `param` names the field, before any provider is called.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use common::{start_with_toml, temp_db_url};
use serde_json::{Value, json};

fn toml() -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
[database]
url = "{}"
[[models]]
alias = "text-only"
provider = "mock"
capabilities = ["tools"]
[[models]]
alias = "no-tools"
provider = "mock"
capabilities = ["vision", "streaming", "json"]
"#,
        temp_db_url()
    )
}

async fn rejected(gate: &common::Gate, path: &str, body: Value) -> (String, String) {
    let resp = gate.post(path, &body).await;
    assert_eq!(resp.status(), 400, "{body}");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_request");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    (
        v["error"]["param"].as_str().unwrap().to_owned(),
        v["error"]["message"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn missing_capabilities_name_the_field() {
    let gate = start_with_toml(&toml()).await;
    let image =
        json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}});

    // Bad input: an image (second part of the second message) for a text-only model.
    let (param, message) = rejected(
        &gate,
        "/v1/chat/completions",
        json!({"model": "text-only", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "what is this?"}, image]}
        ]}),
    )
    .await;
    assert_eq!(param, "messages[1].content[1]");
    assert_eq!(
        message,
        "The model `text-only` does not support image input (capability `vision`)"
    );

    // Bad input: streaming from a model without `streaming`.
    let (param, message) = rejected(
        &gate,
        "/v1/chat/completions",
        json!({"model": "text-only", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(param, "stream");
    assert_eq!(
        message,
        "The model `text-only` does not support streaming (capability `streaming`)"
    );

    // Bad input: JSON mode on a model without `json`.
    let (param, _) = rejected(
        &gate,
        "/v1/chat/completions",
        json!({"model": "text-only", "response_format": {"type": "json_object"},
               "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(param, "response_format");

    // Bad input: tools for a model without `tools`.
    let (param, message) = rejected(
        &gate,
        "/v1/chat/completions",
        json!({"model": "no-tools", "messages": [{"role": "user", "content": "hi"}],
               "tools": [{"type": "function", "function": {"name": "f"}}]}),
    )
    .await;
    assert_eq!(param, "tools");
    assert_eq!(
        message,
        "The model `no-tools` does not support tools (capability `tools`)"
    );

    // Bad input: a tool-call history (assistant call + tool result) for a model without tools.
    let (param, _) = rejected(
        &gate,
        "/v1/chat/completions",
        json!({"model": "no-tools", "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
        ]}),
    )
    .await;
    assert_eq!(param, "messages[1]");

    // Bad input: embeddings from a model without `embeddings`.
    let (param, message) = rejected(
        &gate,
        "/v1/embeddings",
        json!({"model": "text-only", "input": "hello"}),
    )
    .await;
    assert_eq!(param, "model");
    assert_eq!(
        message,
        "The model `text-only` does not support embeddings (capability `embeddings`)"
    );

    // What the models can do still works: plain text, images and JSON mode on `no-tools`.
    let ok = gate
        .post(
            "/v1/chat/completions",
            &json!({"model": "no-tools", "response_format": {"type": "json_object"},
                    "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}, image]}]}),
        )
        .await;
    assert_eq!(ok.status(), 200);
    let ok = gate
        .post(
            "/v1/chat/completions",
            &json!({"model": "text-only", "messages": [{"role": "user", "content": "hi"}],
                    "tools": [{"type": "function", "function": {"name": "f"}}]}),
        )
        .await;
    assert_eq!(ok.status(), 200);
}
