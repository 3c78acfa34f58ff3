//! `POST /v1/messages` end to end: Anthropic requests through the chat pipeline (built-in mock
//! provider), Anthropic responses and named SSE events back, errors in Anthropic's shape, and
//! ledger rows recorded as `Route::Messages`.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use common::{Gate, row, start_with_toml, temp_db_url};
use serde_json::{Value, json};
use store::Route;

async fn gate() -> Gate {
    start_with_toml(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[database]\nurl = \"{}\"\n[ledger]\nflush_interval_ms = 20\n",
        temp_db_url()
    ))
    .await
}

fn hello() -> Value {
    json!({"model": "mock-1", "max_tokens": 100, "messages": [{"role": "user", "content": "hello"}]})
}

/// `(event name, data)` of every event of an SSE body.
fn events(body: &str) -> Vec<(String, Value)> {
    body.split_terminator("\n\n")
        .map(|ev| {
            let mut name = None;
            let mut data = None;
            for line in ev.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(d).unwrap());
                }
            }
            (name.expect("every event is named"), data.unwrap())
        })
        .collect()
}

#[tokio::test]
async fn a_message_round_trip_and_its_ledger_row() {
    let mut gate = gate().await;
    let resp = gate.post_with_id("/v1/messages", &hello(), "msg-1").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["request-id"], "msg-1");
    assert_eq!(resp.headers()["x-request-id"], "msg-1");
    let mut v: Value = resp.json().await.unwrap();
    assert!(
        v["id"].as_str().unwrap().starts_with("msg_chatcmpl-mock"),
        "{v}"
    );
    v.as_object_mut().unwrap().remove("id");
    assert_eq!(
        v,
        json!({
            "type": "message", "role": "assistant", "model": "mock-1",
            "content": [{"type": "text", "text": "This is the Gatehouse mock provider. You said: hello"}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 9, "output_tokens": 9, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        })
    );
    let store = gate.shutdown_and_store().await;
    let r = row(&store, "msg-1").await;
    assert_eq!(r.route, Route::Messages);
    assert_eq!(
        (r.prompt_tokens, r.completion_tokens, r.status),
        (9, 9, 200)
    );
    // 9 × $1 + 9 × $2 per Mtok = 27 micro-USD.
    assert_eq!(r.cost_micros, 27);
}

#[tokio::test]
async fn a_streamed_message_is_anthropics_event_sequence() {
    let gate = gate().await;
    let mut body = hello();
    body["stream"] = json!(true);
    let resp = gate.post("/v1/messages", &body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let evs = events(&resp.text().await.unwrap());
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    let mut expected = vec!["message_start", "ping", "content_block_start"];
    expected.extend(["content_block_delta"; 9]);
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, expected);
    for (name, data) in &evs {
        assert_eq!(data["type"], name.as_str());
    }
    let start = &evs[0].1["message"];
    assert_eq!(start["model"], "mock-1");
    assert_eq!(start["content"], json!([]));
    // The input estimate (tiktoken: 1 token of text + 3 per message + 3) until the real count.
    assert_eq!(start["usage"]["input_tokens"], 7);
    assert_eq!(
        evs[2].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    let text: String = evs
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, "This is the Gatehouse mock provider. You said: hello");
    assert_eq!(
        evs[evs.len() - 2].1,
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"output_tokens": 9, "input_tokens": 9, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}})
    );
}

#[tokio::test]
async fn tool_use_and_tool_result_through_messages() {
    let gate = gate().await;
    let tools = json!([{"name": "get_weather", "description": "Weather by city",
        "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}}}]);
    let ask = json!({"role": "user", "content": "[mock:tool=get_weather] Paris"});
    let v: Value = gate
        .post(
            "/v1/messages",
            &json!({"model": "mock-1", "max_tokens": 50, "tools": tools, "messages": [ask]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["stop_reason"], "tool_use");
    let block = &v["content"][0];
    assert_eq!(
        (&block["type"], &block["name"], &block["input"]),
        (
            &json!("tool_use"),
            &json!("get_weather"),
            &json!({"text": "Paris"})
        )
    );
    let id = block["id"].as_str().unwrap();

    let v: Value = gate
        .post("/v1/messages", &json!({"model": "mock-1", "max_tokens": 50, "tools": tools, "messages": [
            ask,
            {"role": "assistant", "content": [block]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "18°C"}]}
        ]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "The tool said: 18°C"}])
    );
    assert_eq!(v["stop_reason"], "end_turn");

    // Streamed: a tool_use block whose input arrives as input_json_delta.
    let evs = events(
        &gate
            .post(
                "/v1/messages",
                &json!({"model": "mock-1", "max_tokens": 50, "stream": true, "tools": tools,
                "messages": [{"role": "user", "content": "[mock:tool=get_weather] Rome"}]}),
            )
            .await
            .text()
            .await
            .unwrap(),
    );
    let start = evs
        .iter()
        .find(|(n, _)| n == "content_block_start")
        .unwrap();
    assert_eq!(start.1["content_block"]["type"], "tool_use");
    assert_eq!(start.1["content_block"]["name"], "get_weather");
    let json_text: String = evs
        .iter()
        .filter(|(n, d)| n == "content_block_delta" && d["delta"]["type"] == "input_json_delta")
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(json_text, r#"{"text":"Rome"}"#);
    let delta = evs.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
}

async fn error_of(gate: &Gate, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let resp = gate.post_raw("/v1/messages", body).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn anthropic_error(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

#[tokio::test]
async fn errors_are_in_anthropics_shape() {
    let gate = gate().await;
    // Bad input: a body that is not JSON.
    let (status, v) = error_of(&gate, "{\"model\":").await;
    assert_eq!(status, 400);
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("The request body is not valid JSON"),
        "{v}"
    );

    // Bad input: no max_tokens (required by the Messages API).
    let (status, v) = error_of(
        &gate,
        r#"{"model":"mock-1","messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        v,
        anthropic_error(
            "invalid_request_error",
            "max_tokens: Invalid request: missing field `max_tokens`"
        )
    );

    // Bad input: a field the gateway does not translate.
    let mut body = hello();
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    let (status, v) = error_of(&gate, body.to_string()).await;
    assert_eq!(status, 400);
    assert_eq!(
        v,
        anthropic_error(
            "invalid_request_error",
            "thinking: Invalid request: unknown field `thinking`, expected one of `model`, `messages`, `max_tokens`, `system`, `metadata`, `stop_sequences`, `stream`, `temperature`, `top_p`, `top_k`, `tools`, `tool_choice`"
        )
    );

    // Bad input: a tool_use block in a user turn.
    let (status, v) = error_of(
        &gate,
        json!({"model": "mock-1", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]})
        .to_string(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        v,
        anthropic_error(
            "invalid_request_error",
            "messages[0].content[0].type: user messages may contain text, image and tool_result blocks only"
        )
    );

    // Bad input: a model nobody serves.
    let mut body = hello();
    body["model"] = json!("claude-nope");
    let (status, v) = error_of(&gate, body.to_string()).await;
    assert_eq!(status, 404);
    assert_eq!(
        v,
        anthropic_error(
            "not_found_error",
            "model: The model `claude-nope` does not exist or is not served here"
        )
    );

    // The upstream refusing the request (mock answering 400), and failing auth (502).
    let mut body = hello();
    body["messages"][0]["content"] = json!("[mock:status=400]");
    let (status, v) = error_of(&gate, body.to_string()).await;
    assert_eq!(
        (status, v),
        (
            400,
            anthropic_error("invalid_request_error", "mock provider injected HTTP 400")
        )
    );
    body["messages"][0]["content"] = json!("[mock:status=401]");
    let (status, v) = error_of(&gate, body.to_string()).await;
    assert_eq!(
        (status, v),
        (
            502,
            anthropic_error("api_error", "mock provider injected HTTP 401")
        )
    );
}
