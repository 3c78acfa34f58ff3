//! The mock upstream against a real HTTP client: OpenAI framing, usage chunk, error bodies,
//! sequences, faults and disconnect detection.

use std::time::Duration;

use serde_json::{Value, json};
use test_support::{Behavior, MockUpstream, ToolCall, embedding_for};

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post(upstream: &MockUpstream, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(upstream.url(path))
        .header("Authorization", "Bearer sk-test")
        .json(&body)
        .send()
        .await
        .expect("request to mock upstream")
}

/// Splits an SSE body into its `data:` payloads, checking the framing on the way.
fn sse_payloads(body: &str) -> Vec<String> {
    assert!(
        body.ends_with("\n\n"),
        "stream must end with a blank line: {body:?}"
    );
    body.strip_suffix("\n\n")
        .expect("checked above")
        .split("\n\n")
        .map(|event| {
            event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("event without `data: `: {event:?}"))
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn non_streaming_reply_echoes_model_and_reports_usage() {
    let upstream = MockUpstream::start(Behavior::ok("Hello there").with_usage(12, 2, 4)).await;
    let response = post(
        &upstream,
        "/chat/completions",
        json!({"model": "gpt-x", "messages": []}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.expect("json body");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-x");
    assert_eq!(
        body["choices"][0]["message"],
        json!({"role": "assistant", "content": "Hello there", "refusal": null, "annotations": []})
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["total_tokens"], 14);
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 4);

    let recorded = upstream.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        (recorded[0].method.as_str(), recorded[0].path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(recorded[0].header("authorization"), Some("Bearer sk-test"));
    assert!(
        recorded[0]
            .headers
            .iter()
            .any(|(name, _)| name == "authorization"),
        "names are lowercased"
    );
    assert_eq!(recorded[0].body["model"], "gpt-x");
}

#[tokio::test]
async fn stream_is_framed_as_sse_and_ends_with_done() {
    let upstream = MockUpstream::start(Behavior::ok("Hello brave new world")).await;
    let response = post(
        &upstream,
        "/chat/completions",
        json!({"model": "m", "stream": true}),
    )
    .await;
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    let payloads = sse_payloads(&response.text().await.expect("body"));
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = payloads[..payloads.len() - 1]
        .iter()
        .map(|p| serde_json::from_str(p).expect("chunk json"))
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello brave new world");
    assert_eq!(
        chunks.len(),
        1 + 4 + 1,
        "role chunk, one per word, finish chunk"
    );
    let last = chunks.last().expect("finish chunk");
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk" && c.get("usage").is_none())
    );
    assert!(
        chunks
            .iter()
            .all(|c| c["id"] == chunks[0]["id"] && c["model"] == "m")
    );
}

#[tokio::test]
async fn include_usage_adds_a_final_usage_chunk_and_nulls_elsewhere() {
    let upstream = MockUpstream::start(Behavior::ok("One two").with_usage(7, 2, 3)).await;
    let body = json!({"model": "m", "stream": true, "stream_options": {"include_usage": true}});
    let payloads = sse_payloads(
        &post(&upstream, "/chat/completions", body)
            .await
            .text()
            .await
            .expect("body"),
    );
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = payloads[..payloads.len() - 1]
        .iter()
        .map(|p| serde_json::from_str(p).expect("chunk json"))
        .collect();
    let (usage_chunk, others) = chunks.split_last().expect("chunks");
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 7);
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 2);
    assert_eq!(usage_chunk["usage"]["total_tokens"], 9);
    assert_eq!(
        usage_chunk["usage"]["prompt_tokens_details"]["cached_tokens"],
        3
    );
    assert!(
        others
            .iter()
            .all(|c| c["usage"].is_null() && c.get("usage").is_some())
    );
    assert_eq!(
        others.last().expect("finish chunk")["choices"][0]["finish_reason"],
        "stop"
    );
}

#[tokio::test]
async fn tool_calls_stream_as_argument_fragments() {
    let call = ToolCall::new(
        "call_1",
        "get_weather",
        r#"{"city":"Paris","unit":"celsius"}"#,
    );
    let upstream = MockUpstream::start(Behavior::tool_calls(vec![call.clone()])).await;

    let whole: Value = post(&upstream, "/chat/completions", json!({"model": "m"}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(whole["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(whole["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(
        whole["choices"][0]["message"]["tool_calls"],
        json!([{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": call.arguments}}])
    );

    let text = post(
        &upstream,
        "/chat/completions",
        json!({"model": "m", "stream": true}),
    )
    .await
    .text()
    .await
    .expect("body");
    let payloads = sse_payloads(&text);
    let chunks: Vec<Value> = payloads[..payloads.len() - 1]
        .iter()
        .map(|p| serde_json::from_str(p).expect("chunk json"))
        .collect();
    let header = &chunks[0]["choices"][0]["delta"];
    assert_eq!(header["role"], "assistant");
    assert_eq!(header["tool_calls"][0]["id"], "call_1");
    assert_eq!(header["tool_calls"][0]["function"]["name"], "get_weather");
    let fragments: Vec<&str> = chunks[1..]
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert!(fragments.len() > 2, "arguments arrive in several fragments");
    assert_eq!(fragments.concat(), call.arguments);
    assert_eq!(
        chunks.last().expect("finish")["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[tokio::test]
async fn errors_carry_openai_body_and_retry_after() {
    let upstream = MockUpstream::start(Behavior::rate_limited(7)).await;
    let response = post(
        &upstream,
        "/chat/completions",
        json!({"model": "m", "stream": true}),
    )
    .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["param"], Value::Null);
    assert!(body["error"]["message"].is_string() && body["error"]["type"].is_string());

    upstream.set_behavior(Behavior::server_error());
    let response = post(&upstream, "/chat/completions", json!({"model": "m"})).await;
    assert_eq!(response.status(), 500);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["type"], "server_error");
    assert_eq!(body["error"]["code"], Value::Null);
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test]
async fn sequences_answer_in_turn_and_repeat_the_last() {
    let upstream =
        MockUpstream::start_sequence(vec![Behavior::server_error(), Behavior::ok("fine")]).await;
    let statuses = [
        post(&upstream, "/chat/completions", json!({}))
            .await
            .status()
            .as_u16(),
        post(&upstream, "/chat/completions", json!({}))
            .await
            .status()
            .as_u16(),
        post(&upstream, "/chat/completions", json!({}))
            .await
            .status()
            .as_u16(),
    ];
    assert_eq!(statuses, [500, 200, 200]);
}

#[tokio::test]
async fn embeddings_are_deterministic_for_string_and_array_input() {
    let upstream = MockUpstream::start(Behavior::embeddings()).await;
    let one: Value = post(
        &upstream,
        "/embeddings",
        json!({"model": "e", "input": "hello"}),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(one["object"], "list");
    assert_eq!(one["model"], "e");
    assert_eq!(one["data"][0]["object"], "embedding");
    let vector: Vec<f32> =
        serde_json::from_value(one["data"][0]["embedding"].clone()).expect("floats");
    assert_eq!(vector, embedding_for("hello", 8));

    let many: Value = post(
        &upstream,
        "/embeddings",
        json!({"input": ["hello", "a b c"], "dimensions": 4}),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(many["data"][1]["index"], 1);
    assert_eq!(
        many["data"][1]["embedding"].as_array().map(Vec::len),
        Some(4)
    );
    assert_eq!(
        many["usage"],
        json!({"prompt_tokens": 4, "total_tokens": 4})
    );

    let models: Value = client()
        .get(upstream.url("/models"))
        .send()
        .await
        .expect("models")
        .json()
        .await
        .expect("json");
    assert_eq!(models["data"][0]["object"], "model");
}

#[tokio::test]
async fn stream_then_fail_aborts_the_connection_mid_body() {
    let upstream = MockUpstream::start(Behavior::stream_then_fail("a b c d e f", 3)).await;
    let mut response = post(
        &upstream,
        "/chat/completions",
        json!({"model": "m", "stream": true}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let mut received = Vec::new();
    let error = loop {
        match response.chunk().await {
            Ok(Some(bytes)) => received.extend_from_slice(&bytes),
            Ok(None) => panic!("stream ended cleanly; expected an abort"),
            Err(error) => break error,
        }
    };
    assert!(error.is_body() || error.is_decode(), "{error:?}");
    let text = String::from_utf8(received).expect("utf-8");
    assert_eq!(text.matches("data: ").count(), 3);
    assert!(!text.contains("[DONE]"));
    assert_eq!(
        upstream.disconnects(),
        0,
        "an upstream abort is not a client disconnect"
    );
}

#[tokio::test]
async fn dropping_a_stream_early_is_detected() {
    let behavior =
        Behavior::ok("one two three four five").with_chunk_delay(Duration::from_millis(50));
    let upstream = MockUpstream::start(behavior).await;
    let mut response = post(
        &upstream,
        "/chat/completions",
        json!({"model": "m", "stream": true}),
    )
    .await;
    let first = response
        .chunk()
        .await
        .expect("first chunk")
        .expect("not empty");
    assert!(first.starts_with(b"data: "));
    drop(response);
    tokio::time::timeout(Duration::from_secs(10), upstream.wait_for_disconnect())
        .await
        .expect("disconnect noticed");
    assert_eq!(upstream.disconnects(), 1);
}

#[tokio::test]
async fn a_finished_stream_is_not_a_disconnect() {
    let upstream = MockUpstream::start(Behavior::ok("x y")).await;
    let text = post(&upstream, "/chat/completions", json!({"stream": true}))
        .await
        .text()
        .await
        .expect("body");
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert_eq!(upstream.disconnects(), 0);
}

#[tokio::test]
async fn hang_never_answers_and_a_client_timeout_counts_as_disconnect() {
    let upstream = MockUpstream::start(Behavior::hang()).await;
    let result = client()
        .post(upstream.url("/chat/completions"))
        .timeout(Duration::from_millis(200))
        .json(&json!({}))
        .send()
        .await;
    assert!(result.expect_err("no answer").is_timeout());
    upstream.wait_for_hits(1).await;
    tokio::time::timeout(Duration::from_secs(10), upstream.wait_for_disconnect())
        .await
        .expect("cancellation noticed");
}

#[tokio::test(start_paused = true)]
async fn delays_follow_a_paused_clock() {
    let upstream =
        MockUpstream::start(Behavior::ok("late").with_delay(Duration::from_secs(3600))).await;
    let started = tokio::time::Instant::now();
    let response = post(&upstream, "/chat/completions", json!({"model": "m"})).await;
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_secs(3600),
        "the paused clock advanced through the delay"
    );
}

#[tokio::test]
async fn raw_bodies_and_unknown_routes() {
    let upstream = MockUpstream::start(Behavior::raw(200, "application/json", "{not json")).await;
    let response = post(&upstream, "/chat/completions", json!({})).await;
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.text().await.expect("body"), "{not json");

    upstream.set_behavior(Behavior::default());
    let response = post(&upstream, "/nope", json!({})).await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["message"], "Invalid URL (POST /v1/nope)");
}

#[tokio::test]
async fn stream_then_fail_truncates_a_non_streaming_body() {
    let upstream = MockUpstream::start(Behavior::stream_then_fail("a b", 1)).await;
    let response = post(&upstream, "/chat/completions", json!({"model": "m"})).await;
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.is_err(), "body must end in an error");
}

#[tokio::test]
async fn concurrent_requests_are_all_recorded() {
    let upstream = MockUpstream::start(Behavior::ok("hi")).await;
    let sends = (0..20).map(|i| {
        post(
            &upstream,
            "/chat/completions",
            json!({"model": format!("m{i}")}),
        )
    });
    let responses = futures_util::future::join_all(sends).await;
    assert!(responses.iter().all(|r| r.status() == 200));
    upstream.wait_for_hits(20).await;
    let mut models: Vec<String> = upstream
        .requests()
        .iter()
        .map(|r| r.body["model"].as_str().expect("model").to_owned())
        .collect();
    models.sort();
    assert_eq!(models.len(), 20);
    models.dedup();
    assert_eq!(models.len(), 20);
}
