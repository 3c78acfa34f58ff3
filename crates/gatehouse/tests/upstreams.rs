//! The gateway in front of the native adapters: OpenAI clients reaching Claude and Anthropic
//! clients reaching Gemini, against local servers answering with recorded fixtures in each
//! provider's wire format; the Anthropic `max_tokens` default; exact costs with cache reads and
//! writes in the ledger.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use common::{Gate, row, sse_data, start_with_toml, temp_db_url};
use serde_json::{Value, json};
use test_support::{Canned, FixtureUpstream};

fn fixture(path: &str) -> String {
    let p = format!(
        "{}/../providers/tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// Provider `anth` (Anthropic) and `gem` (Gemini) at `base`; Claude priced $3 / $15 / read
/// $0.30 / write $3.75 per Mtok with a 1000-token output cap.
async fn gate(base: &str) -> Gate {
    start_with_toml(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
[database]
url = "{db}"
[ledger]
flush_interval_ms = 20
[providers.anth]
kind = "anthropic"
base_url = "{base}"
api_key_env = "TEST_UPSTREAM_KEY"
[providers.gem]
kind = "gemini"
base_url = "{base}/v1beta"
api_key_env = "TEST_UPSTREAM_KEY"
[[models]]
alias = "claude"
provider = "anth"
upstream_model = "claude-sonnet-4-5-20250929"
input_usd_per_mtok = "3.00"
output_usd_per_mtok = "15.00"
cached_input_usd_per_mtok = "0.30"
cache_write_usd_per_mtok = "3.75"
max_output_tokens = 1000
[[models]]
alias = "gemini"
provider = "gem"
upstream_model = "gemini-2.5-flash"
"#,
        db = temp_db_url()
    ))
    .await
}

#[tokio::test]
async fn openai_clients_reach_claude_with_exact_cache_costs() {
    let up = FixtureUpstream::start(vec![Canned::json(
        200,
        fixture("anthropic/cached_usage.response.json"),
    )])
    .await;
    let mut gate = gate(&up.base_url).await;
    let body = json!({"model": "claude", "messages": [
        {"role": "system", "content": "You summarise the attached handbook."},
        {"role": "user", "content": "Summarise chapter 3."}]});
    let resp = gate
        .post_with_id("/v1/chat/completions", &body, "up-1")
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Chapter 3 covers onboarding."
    );
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 11524, "completion_tokens": 50, "total_tokens": 11574,
               "prompt_tokens_details": {"cached_tokens": 10000, "cache_creation_tokens": 1500}})
    );

    // No max_tokens from the client: the model's configured cap goes to Anthropic.
    let sent = &up.requests()[0];
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.body["max_tokens"], 1000);
    assert_eq!(sent.body["model"], "claude-sonnet-4-5-20250929");
    assert_eq!(sent.body["system"], "You summarise the attached handbook.");
    assert_eq!(sent.header("x-api-key"), Some("sk-upstream-secret"));

    let store = gate.shutdown_and_store().await;
    let r = row(&store, "up-1").await;
    assert_eq!(
        (r.prompt_tokens, r.completion_tokens, r.cached_tokens),
        (11_524, 50, 10_000)
    );
    // 24 uncached × $3 + 10,000 read × $0.30 + 1,500 written × $3.75 + 50 × $15 per Mtok
    // = 72 + 3,000 + 5,625 + 750 = 9,447 micro-USD.
    assert_eq!(r.cost_micros, 9_447);
    assert_eq!(
        (r.provider.as_str(), r.upstream_model.as_str()),
        ("anth", "claude-sonnet-4-5-20250929")
    );
}

#[tokio::test]
async fn a_claude_stream_reaches_an_openai_client() {
    let up = FixtureUpstream::start(vec![Canned::sse(&fixture(
        "anthropic/stream_text.response.sse",
    ))])
    .await;
    let mut gate = gate(&up.base_url).await;
    let body = json!({"model": "claude", "stream": true, "stream_options": {"include_usage": true},
        "max_tokens": 5000, "messages": [{"role": "user", "content": "Hello"}]});
    let resp = gate
        .post_with_id("/v1/chat/completions", &body, "up-2")
        .await;
    let data = sse_data(&resp.text().await.unwrap());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello! How can I help?");
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "stop"
    );
    assert_eq!(
        chunks.last().unwrap()["usage"],
        json!({"prompt_tokens": 20, "completion_tokens": 15, "total_tokens": 35, "prompt_tokens_details": {"cached_tokens": 8}})
    );
    // The client's 5000 is clamped to the model's cap; the stream flag is Anthropic's.
    let sent = &up.requests()[0].body;
    assert_eq!(
        (sent["max_tokens"].as_u64(), sent["stream"].as_bool()),
        (Some(1000), Some(true))
    );

    let store = gate.shutdown_and_store().await;
    let r = row(&store, "up-2").await;
    // 12 × $3 + 8 × $0.30 + 15 × $15 per Mtok = 36 + 2.4 + 225 = 263.4 → 263 micro-USD.
    assert_eq!(r.cost_micros, 263);
}

#[tokio::test]
async fn anthropic_clients_reach_gemini() {
    let up = FixtureUpstream::start(vec![Canned::json(
        200,
        fixture("gemini/text.response.json"),
    )])
    .await;
    let gate = gate(&up.base_url).await;
    let resp = gate
        .post(
            "/v1/messages",
            &json!({"model": "gemini", "max_tokens": 64,
            "messages": [{"role": "user", "content": "Hello"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v,
        json!({"id": "msg_gR8caPqDFq3Z7M8Pq9XS0Qk", "type": "message", "role": "assistant", "model": "gemini",
               "content": [{"type": "text", "text": "Hello! How can I help you today?"}],
               "stop_reason": "end_turn", "stop_sequence": null,
               "usage": {"input_tokens": 2, "output_tokens": 9, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}})
    );
    let sent = &up.requests()[0];
    assert_eq!(sent.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(sent.header("x-goog-api-key"), Some("sk-upstream-secret"));
    assert_eq!(
        sent.body,
        json!({"contents": [{"role": "user", "parts": [{"text": "Hello"}]}], "generationConfig": {"maxOutputTokens": 64}})
    );
}

#[tokio::test]
async fn an_upstream_credential_failure_is_a_502_without_the_key() {
    let errors: Value = serde_json::from_str(&fixture("anthropic/errors.json")).unwrap();
    let auth = errors
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "authentication_error")
        .unwrap();
    let up = FixtureUpstream::start(vec![Canned::json(401, auth["body"].to_string())]).await;
    let gate = gate(&up.base_url).await;
    let resp = gate
        .post(
            "/v1/chat/completions",
            &json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(resp.status(), 502);
    let text = resp.text().await.unwrap();
    assert!(!text.contains("sk-upstream-secret"));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["code"], "provider_error");
    assert_eq!(
        v["error"]["message"],
        "the upstream provider rejected Gatehouse's credentials"
    );
}
