//! Chat completions end to end: real server, mock OpenAI upstream, exact bodies and ledger rows.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use common::{chat_body, row, sse_data, start};
use serde_json::{Value, json};
use store::UsageRecord;
use test_support::{Behavior, MockUpstream};

#[tokio::test]
async fn non_streaming_round_trip_and_exact_cost() {
    let up =
        MockUpstream::start(Behavior::ok("Hello there friend").with_usage(1_000, 500, 200)).await;
    let mut gate = start(&up.base_url, "").await;
    let mut body = chat_body("m1", "hi");
    body["logit_bias"] = json!({"50256": -100});
    body["temperature"] = json!(0.2);
    let resp = gate
        .post_with_id("/v1/chat/completions", &body, "req-nonstream-1")
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "req-nonstream-1");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello there friend");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 1_000);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 200);

    // What the upstream received: the upstream model name, our key, unknown fields intact.
    let sent = &up.requests()[0];
    assert_eq!(sent.body["model"], "gpt-4o-mini");
    assert_eq!(sent.body["logit_bias"]["50256"], -100);
    assert_eq!(sent.body["temperature"], 0.2);
    assert_eq!(
        sent.header("authorization"),
        Some("Bearer sk-upstream-secret")
    );

    let store = gate.shutdown_and_store().await;
    let r = row(&store, "req-nonstream-1").await;
    // 800 × $2.50 + 200 × $1.25 + 500 × $10 per Mtok = 2000 + 250 + 5000 micro-USD.
    assert_eq!(r.cost_micros, 7_250);
    assert_eq!(
        (r.prompt_tokens, r.completion_tokens, r.cached_tokens),
        (1_000, 500, 200)
    );
    assert_eq!(
        (
            r.model.as_str(),
            r.provider.as_str(),
            r.upstream_model.as_str()
        ),
        ("m1", "up", "gpt-4o-mini")
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.flags, 0);
    assert_eq!(r.error_code, None);
}

#[tokio::test]
async fn streaming_chunks_usage_and_done() {
    let up = MockUpstream::start(Behavior::ok("one two three").with_usage(12, 3, 0)).await;
    let mut gate = start(&up.base_url, "").await;
    let mut body = chat_body("m1", "count");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let resp = gate
        .post_with_id("/v1/chat/completions", &body, "req-stream-usage")
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.unwrap();
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| {
            c["choices"]
                .get(0)
                .and_then(|c| c["delta"]["content"].as_str())
        })
        .collect();
    assert_eq!(content, "one two three");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    // Every chunk carries `usage: null` except the last, which has no choices and the usage.
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["total_tokens"], 15);
    assert!(
        chunks[..chunks.len() - 1]
            .iter()
            .all(|c| c["usage"].is_null() && c.get("usage").is_some())
    );
    let finish: Vec<_> = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0)?["finish_reason"].as_str())
        .collect();
    assert_eq!(finish, vec!["stop"]);
    // Gatehouse always asks the upstream for usage.
    assert_eq!(
        up.requests()[0].body["stream_options"]["include_usage"],
        true
    );

    let store = gate.shutdown_and_store().await;
    let r = row(&store, "req-stream-usage").await;
    assert_eq!((r.prompt_tokens, r.completion_tokens), (12, 3));
    assert_eq!(r.cost_micros, 60); // 12 × 2.5 + 3 × 10 = 60 micro-USD
    assert_eq!(r.flags, UsageRecord::FLAG_STREAMED);
    assert!(r.ttft_ms.is_some());
}

#[tokio::test]
async fn streaming_without_include_usage_hides_usage() {
    let up = MockUpstream::start(Behavior::ok("a b").with_usage(5, 2, 0)).await;
    let mut gate = start(&up.base_url, "").await;
    let mut body = chat_body("m1", "x");
    body["stream"] = json!(true);
    let text = gate
        .post_with_id("/v1/chat/completions", &body, "req-stream-nousage")
        .await
        .text()
        .await
        .unwrap();
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    for d in &data[..data.len() - 1] {
        let v: Value = serde_json::from_str(d).unwrap();
        assert!(v.get("usage").is_none(), "usage leaked into {d}");
        assert_eq!(v["choices"].as_array().unwrap().len(), 1);
    }
    let store = gate.shutdown_and_store().await;
    assert_eq!(row(&store, "req-stream-nousage").await.completion_tokens, 2);
}

#[tokio::test]
async fn client_disconnect_cancels_upstream() {
    let up = MockUpstream::start(
        Behavior::ok("w1 w2 w3 w4 w5 w6 w7 w8 w9 w10")
            .with_chunk_delay(std::time::Duration::from_millis(200)),
    )
    .await;
    let mut gate = start(&up.base_url, "").await;
    let mut body = chat_body("m1", "x");
    body["stream"] = json!(true);
    let mut resp = gate
        .post_with_id("/v1/chat/completions", &body, "req-disconnect")
        .await;
    let first = resp.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with("data: "));
    drop(resp);
    tokio::time::timeout(std::time::Duration::from_secs(10), up.wait_for_disconnect())
        .await
        .expect("the upstream connection was not closed after the client left");
    let store = gate.shutdown_and_store().await;
    let r = row(&store, "req-disconnect").await;
    assert_eq!(r.status, 499);
    assert_eq!(r.error_code.as_deref(), Some("client_cancelled"));
    assert!(r.has_flag(UsageRecord::FLAG_CLIENT_CANCELLED | UsageRecord::FLAG_STREAMED));
}

#[tokio::test]
async fn mid_stream_failure_ends_with_an_error_event() {
    let up = MockUpstream::start(Behavior::stream_then_fail("alpha beta gamma delta", 2)).await;
    let mut gate = start(&up.base_url, "[resilience]\nmax_attempts = 1\n").await;
    let mut body = chat_body("m1", "x");
    body["stream"] = json!(true);
    let resp = gate
        .post_with_id("/v1/chat/completions", &body, "req-midstream")
        .await;
    assert_eq!(resp.status(), 200);
    let text = tokio::time::timeout(std::time::Duration::from_secs(10), resp.text())
        .await
        .unwrap()
        .unwrap();
    let data = sse_data(&text);
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "provider_error");
    assert_eq!(last["error"]["type"], "api_error");
    assert!(!text.contains("[DONE]"));
    let store = gate.shutdown_and_store().await;
    let r = row(&store, "req-midstream").await;
    assert_eq!(
        (r.status, r.error_code.as_deref()),
        (502, Some("provider_error"))
    );
    assert!(r.has_flag(UsageRecord::FLAG_TOKENS_ESTIMATED));
}

async fn error_for(behavior: Behavior, stream: bool) -> (u16, reqwest::header::HeaderMap, Value) {
    let up = MockUpstream::start(behavior).await;
    let gate = start(&up.base_url, "[resilience]\nmax_attempts = 1\n").await;
    let mut body = chat_body("m1", "x");
    if stream {
        body["stream"] = json!(true);
    }
    let resp = gate.post("/v1/chat/completions", &body).await;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap())
}

#[tokio::test]
async fn upstream_errors_map_to_the_contract() {
    let (s, _, v) = error_for(Behavior::server_error(), false).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (502, Some("provider_error"))
    );

    let (s, h, v) = error_for(Behavior::rate_limited(7), false).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (503, Some("provider_rate_limited"))
    );
    assert_eq!(h["retry-after"], "7");

    let (s, _, v) = error_for(Behavior::unauthorized(), false).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (502, Some("provider_error"))
    );
    let msg = v["error"]["message"].as_str().unwrap();
    assert_eq!(
        msg,
        "the upstream provider rejected Gatehouse's credentials"
    );

    let (s, _, v) = error_for(Behavior::bad_request("Invalid value for 'n'"), false).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
    assert_eq!(
        v["error"]["message"],
        "upstream rejected the request: Invalid value for 'n'"
    );

    // A stream that cannot be opened is reported before any byte is sent.
    let (s, h, _) = error_for(Behavior::rate_limited(3), true).await;
    assert_eq!((s, h["retry-after"].to_str().unwrap()), (503, "3"));
}

#[tokio::test]
async fn upstream_timeout_is_504() {
    let up = MockUpstream::start(Behavior::hang()).await;
    let mut gate = start(&up.base_url, "[resilience]\nmax_attempts = 1\n").await;
    let resp = gate
        .post_with_id("/v1/chat/completions", &chat_body("m1", "x"), "req-timeout")
        .await;
    assert_eq!(resp.status(), 504);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_timeout");
    let store = gate.shutdown_and_store().await;
    assert_eq!(row(&store, "req-timeout").await.status, 504);
}

#[tokio::test]
async fn stream_open_failure_falls_back_to_a_plain_call() {
    // Bad input from the upstream's point of view: it cannot stream this model.
    let up = MockUpstream::start_sequence(vec![
        Behavior::bad_request("streaming is not supported for this model"),
        Behavior::ok("rescued reply"),
    ])
    .await;
    let gate = start(&up.base_url, "").await;
    let mut body = chat_body("m1", "x");
    body["stream"] = json!(true);
    let resp = gate.post("/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let data = sse_data(&resp.text().await.unwrap());
    let first: Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(first["choices"][0]["delta"]["content"], "rescued reply");
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(up.requests()[1].body.get("stream"), None);
}

#[tokio::test]
async fn a_json_answer_to_a_stream_request_is_replayed_as_a_stream() {
    let completion = r#"{"id":"c1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"whole answer"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;
    let up = MockUpstream::start(Behavior::raw(200, "application/json", completion)).await;
    let gate = start(&up.base_url, "").await;
    let mut body = chat_body("m1", "x");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let data = sse_data(
        &gate
            .post("/v1/chat/completions", &body)
            .await
            .text()
            .await
            .unwrap(),
    );
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["content"], "whole answer");
    assert_eq!(chunks[1]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 5);
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn unchanged_upstream_chunks_are_relayed_as_sent() {
    let first = r#"{"id":"c1","object":"chat.completion.chunk","created":7,"model":"gpt-4o-mini","service_tier":"default","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null,"obfuscation":"q1"}],"usage":null}"#;
    let finish = r#"{"id":"c1","object":"chat.completion.chunk","created":7,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#;
    // One event whose JSON is split over two `data:` lines (legal SSE): it cannot be relayed
    // on one line as it came, so it is encoded again.
    let split = "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"gpt-4o-mini\",\ndata: \"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}],\"usage\":null}";
    let usage = r#"{"id":"c1","object":"chat.completion.chunk","created":7,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":1,"total_tokens":5}}"#;
    let sse = format!(
        "data: {first}\n\ndata: {split}\n\ndata: {finish}\n\ndata: {usage}\n\ndata: [DONE]\n\n"
    );
    let up = MockUpstream::start(Behavior::raw(200, "text/event-stream", sse)).await;
    let gate = start(&up.base_url, "").await;
    let mut body = chat_body("m1", "x");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let text = gate.post_text("/v1/chat/completions", &body).await;
    let data = sse_data(&text);
    assert_eq!(data.len(), 5, "{text}");
    // Byte for byte, the fields Gatehouse does not model included.
    assert_eq!(data[0], first);
    assert_eq!(data[2], finish);
    let again: Value = serde_json::from_str(&data[1]).unwrap();
    assert_eq!(again["choices"][0]["delta"]["content"], "Hi");
    assert_eq!(again["usage"], Value::Null);
    let totals: Value = serde_json::from_str(&data[3]).unwrap();
    assert_eq!(totals["usage"]["total_tokens"], 5);
    assert_eq!(data[4], "[DONE]");

    // Without include_usage the chunks lose their `usage: null`, so they are encoded again.
    body["stream_options"] = json!({"include_usage": false});
    let text = gate.post_text("/v1/chat/completions", &body).await;
    let data = sse_data(&text);
    assert_eq!(data.len(), 4, "{text}");
    let first_again: Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(first_again.get("usage"), None);
    assert_eq!(first_again["choices"][0]["delta"]["role"], "assistant");
}

#[tokio::test]
async fn unchanged_completions_are_relayed_as_sent() {
    // Fields Gatehouse does not model: usage details, message annotations, a vendor field.
    let sent = r#"{"id":"chatcmpl-r1","object":"chat.completion","created":7,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Relayed answer","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0}},"service_tier":"default","system_fingerprint":"fp_1","x_vendor":{"region":"eu"}}"#;
    let up = MockUpstream::start(Behavior::raw(200, "application/json", sent.to_owned())).await;
    let mut gate = start(
        &up.base_url,
        "[cache]\nenabled = true\n[validation]\nmax_response_chars = 10\n",
    )
    .await;
    let plain = chat_body("m1", "x");
    let resp = gate
        .post_with_id("/v1/chat/completions", &plain, "req-relay")
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    // Over the size cap: cut, so encoded again from the typed response.
    let cut: Value = resp.json().await.unwrap();
    assert_eq!(cut["choices"][0]["message"]["content"], "Relayed an");
    assert_eq!(cut["choices"][0]["finish_reason"], "length");
    assert_eq!(cut.get("x_vendor"), None);
    gate.shutdown_and_store().await;

    let gate = start(&up.base_url, "[cache]\nenabled = true\n").await;
    let mut ask = chat_body("m1", "y");
    ask["temperature"] = json!(0);
    let first = gate.post_text("/v1/chat/completions", &ask).await;
    // Byte for byte as the upstream wrote it.
    assert_eq!(first, sent);
    // A cache hit has its own id and time; everything else is still the upstream's bytes.
    let hit_text = gate.post_text("/v1/chat/completions", &ask).await;
    let hit: Value = serde_json::from_str(&hit_text).unwrap();
    let id = hit["id"].as_str().unwrap();
    assert_ne!(id, "chatcmpl-r1");
    assert!(id.starts_with("chatcmpl-"), "{id}");
    let created = hit["created"].as_i64().unwrap();
    assert!(created > 1_700_000_000, "{created}");
    let expected = sent
        .replace(r#""id":"chatcmpl-r1""#, &format!(r#""id":"{id}""#))
        .replace(r#""created":7,"#, &format!(r#""created":{created},"#));
    assert_eq!(hit_text, expected);
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn response_size_cap_truncates() {
    let up = MockUpstream::start(Behavior::ok("abcdefghij klmnopqrst")).await;
    let mut gate = start(&up.base_url, "[validation]\nmax_response_chars = 5\n").await;
    let v: Value = gate
        .post_with_id("/v1/chat/completions", &chat_body("m1", "x"), "req-trunc")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "abcde");
    assert_eq!(v["choices"][0]["finish_reason"], "length");

    let mut body = chat_body("m1", "x");
    body["stream"] = json!(true);
    let text = gate
        .post_with_id("/v1/chat/completions", &body, "req-trunc-stream")
        .await
        .text()
        .await
        .unwrap();
    let data = sse_data(&text);
    let content: String = data
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"]
                .get(0)
                .and_then(|c| c["delta"]["content"].as_str().map(str::to_owned))
        })
        .collect();
    assert_eq!(content, "abcde");
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let store = gate.shutdown_and_store().await;
    assert!(
        row(&store, "req-trunc")
            .await
            .has_flag(UsageRecord::FLAG_TRUNCATED)
    );
    assert!(
        row(&store, "req-trunc-stream")
            .await
            .has_flag(UsageRecord::FLAG_TRUNCATED)
    );
}

#[tokio::test]
async fn max_tokens_is_capped_per_model() {
    let up = MockUpstream::start(Behavior::ok("ok")).await;
    let gate = start(&up.base_url, "").await;
    let mut body = chat_body("m1", "x");
    body["max_tokens"] = json!(50_000);
    assert_eq!(gate.post("/v1/chat/completions", &body).await.status(), 200);
    assert_eq!(up.requests()[0].body["max_tokens"], 1000);
}

#[tokio::test]
async fn tool_calls_pass_through() {
    let call = test_support::ToolCall::new("call_1", "get_weather", r#"{"city":"Paris"}"#);
    let up = MockUpstream::start(Behavior::tool_calls(vec![call])).await;
    let gate = start(&up.base_url, "").await;
    let mut body = chat_body("m1", "weather?");
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    body["tool_choice"] = json!("auto");
    let v: Value = gate
        .post("/v1/chat/completions", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        r#"{"city":"Paris"}"#
    );
    assert_eq!(
        up.requests()[0].body["tools"][0]["function"]["name"],
        "get_weather"
    );

    body["stream"] = json!(true);
    let text = gate
        .post("/v1/chat/completions", &body)
        .await
        .text()
        .await
        .unwrap();
    let args: String = sse_data(&text)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"].get(0)?["delta"]["tool_calls"].get(0)?["function"]["arguments"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(args, r#"{"city":"Paris"}"#);
}
