//! Every validation rule over HTTP: status, code and the `param` naming the field. The upstream
//! must never be called for a rejected request.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use common::start;
use serde_json::{Value, json};
use test_support::{Behavior, MockUpstream};

async fn check(
    gate: &common::Gate,
    body: reqwest::Body,
    status: u16,
    code: &str,
    param: Option<&str>,
) {
    let resp = gate.post_raw("/v1/chat/completions", body).await;
    assert_eq!(resp.status().as_u16(), status);
    assert!(resp.headers().contains_key("x-request-id"));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], code, "{v}");
    assert_eq!(v["error"]["param"].as_str(), param, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

fn msgs(messages: Value) -> reqwest::Body {
    json!({"model": "m1", "messages": messages})
        .to_string()
        .into()
}

#[tokio::test]
async fn bad_input_is_rejected_with_the_field_named() {
    let up = MockUpstream::start(Behavior::ok("never")).await;
    let gate = start(
        &up.base_url,
        "[validation]\nmax_messages = 3\nmax_message_chars = 20\n",
    )
    .await;
    // Malformed JSON.
    check(&gate, "{\"model\": ".into(), 400, "invalid_json", None).await;
    // Wrong type for content.
    check(
        &gate,
        msgs(json!([{"role": "user", "content": 42}])),
        400,
        "invalid_request",
        Some("messages[0].content"),
    )
    .await;
    // Wrong type for a parameter.
    check(
        &gate,
        json!({"model": "m1", "messages": [{"role": "user", "content": "x"}], "max_tokens": "many"}).to_string().into(),
        400,
        "invalid_request",
        Some("max_tokens"),
    )
    .await;
    // Unknown role.
    check(
        &gate,
        msgs(json!([{"role": "wizard", "content": "x"}])),
        400,
        "invalid_request",
        Some("messages[0].role"),
    )
    .await;
    // Empty and whitespace-only content.
    check(
        &gate,
        msgs(json!([{"role": "user", "content": ""}])),
        400,
        "invalid_request",
        Some("messages[0].content"),
    )
    .await;
    check(
        &gate,
        msgs(json!([{"role": "user", "content": "ok"}, {"role": "user", "content": " \t\n "}])),
        400,
        "invalid_request",
        Some("messages[1].content"),
    )
    .await;
    // Too many messages.
    check(
        &gate,
        msgs(Value::Array(vec![
            json!({"role": "user", "content": "a"});
            4
        ])),
        400,
        "invalid_request",
        Some("messages"),
    )
    .await;
    // A message over the character limit.
    check(
        &gate,
        msgs(
            json!([{"role": "user", "content": "a"}, {"role": "user", "content": "x".repeat(21)}]),
        ),
        400,
        "invalid_request",
        Some("messages[1].content"),
    )
    .await;
    // Missing messages.
    check(
        &gate,
        json!({"model": "m1"}).to_string().into(),
        400,
        "invalid_request",
        Some("messages"),
    )
    .await;
    // Unknown model.
    check(
        &gate,
        msgs(json!([{"role": "user", "content": "a"}])).into_model("nope"),
        404,
        "model_not_found",
        Some("model"),
    )
    .await;
    assert_eq!(up.hits(), 0, "a rejected request reached the upstream");
}

trait IntoModel {
    fn into_model(self, model: &str) -> reqwest::Body;
}

impl IntoModel for reqwest::Body {
    fn into_model(self, model: &str) -> reqwest::Body {
        let bytes = self.as_bytes().unwrap().to_vec();
        let mut v: Value = serde_json::from_slice(&bytes).unwrap();
        v["model"] = json!(model);
        v.to_string().into()
    }
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let up = MockUpstream::start(Behavior::ok("never")).await;
    let gate = start(&up.base_url, "").await;
    let gate_small = common::start_with_toml(
        &common::config_toml(&up.base_url, &common::temp_db_url(), "").replace(
            "shutdown_grace_secs = 10",
            "shutdown_grace_secs = 10\nmax_body_bytes = 1024",
        ),
    )
    .await;
    drop(gate);
    // Bad input: a 2 KiB body against a 1 KiB limit.
    let big = msgs(json!([{"role": "user", "content": "y".repeat(2048)}]));
    check(&gate_small, big, 413, "request_too_large", None).await;
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn control_characters_are_stripped_before_the_upstream() {
    let up = MockUpstream::start(Behavior::ok("fine")).await;
    let gate = start(&up.base_url, "").await;
    let resp = gate
        .post_raw(
            "/v1/chat/completions",
            msgs(json!([{"role": "user", "content": "he\u{0}llo\u{1b}\n"}])),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(up.requests()[0].body["messages"][0]["content"], "hello\n");
    let metrics = gate
        .client
        .get(gate.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gatehouse_control_chars_stripped_total 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_use_the_error_shape() {
    let up = MockUpstream::start(Behavior::ok("x")).await;
    let gate = start(&up.base_url, "").await;
    let resp = gate
        .client
        .get(gate.url("/v1/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_found");
    let resp = gate
        .client
        .get(gate.url("/v1/chat/completions"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "method_not_allowed");
}
