//! Operations endpoints, request ids, metrics and the OpenAPI document.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use common::{chat_body, start};
use serde_json::Value;
use test_support::{Behavior, MockUpstream};

#[tokio::test]
async fn request_ids_are_echoed_when_well_formed_and_generated_otherwise() {
    let up = MockUpstream::start(Behavior::ok("x")).await;
    let gate = start(&up.base_url, "").await;
    let get = |id: &'static str| {
        gate.client
            .get(gate.url("/health"))
            .header("x-request-id", id)
            .send()
    };
    assert_eq!(
        get("abc-123_X.y:z").await.unwrap().headers()["x-request-id"],
        "abc-123_X.y:z"
    );
    // Bad input: spaces and a quote are not allowed in an id; a fresh UUID replaces it.
    let generated = get("bad id\"").await.unwrap().headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(generated.len(), 36);
    assert!(uuid::Uuid::parse_str(&generated).is_ok());
    let none = gate.client.get(gate.url("/health")).send().await.unwrap();
    assert_eq!(none.headers()["x-request-id"].len(), 36);
}

#[tokio::test]
async fn health_ready_models() {
    let up = MockUpstream::start(Behavior::ok("x")).await;
    let gate = start(&up.base_url, "").await;
    let h: Value = gate
        .client
        .get(gate.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["status"], "ok");
    let resp = gate.client.get(gate.url("/ready")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let r: Value = resp.json().await.unwrap();
    assert_eq!(r["status"], "healthy");
    assert_eq!(r["deployments"][0]["deployment"], "up/gpt-4o-mini");
    assert_eq!(r["deployments"][0]["circuit"], "closed");
    assert_eq!(r["database"]["status"], "healthy");
    assert_eq!(r["database"]["backend"], "sqlite");
    let m: Value = gate
        .client
        .get(gate.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<_> = m["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec!["m1", "mock-1"]);
    assert_eq!(m["object"], "list");
}

#[tokio::test]
async fn metrics_count_requests_tokens_cost_and_errors() {
    let up = MockUpstream::start_sequence(vec![
        Behavior::ok("a b c").with_usage(100, 3, 0),
        Behavior::server_error(),
    ])
    .await;
    let gate = start(&up.base_url, "").await;
    assert_eq!(
        gate.post("/v1/chat/completions", &chat_body("m1", "x"))
            .await
            .status(),
        200
    );
    assert_eq!(
        gate.post("/v1/chat/completions", &chat_body("m1", "x"))
            .await
            .status(),
        502
    );
    let text = gate
        .client
        .get(gate.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "gatehouse_http_requests_total{route=\"chat\",status=\"200\"} 1",
        "gatehouse_http_requests_total{route=\"chat\",status=\"502\"} 1",
        "gatehouse_tokens_total{model=\"m1\",kind=\"prompt\"} 100",
        "gatehouse_tokens_total{model=\"m1\",kind=\"completion\"} 3",
        // 100 × 2.5 + 3 × 10 = 280 micro-USD
        "gatehouse_cost_micro_usd_total{model=\"m1\",provider=\"up\"} 280",
        "gatehouse_errors_total{code=\"provider_error\"} 1",
        "gatehouse_in_flight_requests 1",
    ] {
        assert!(text.contains(line), "missing `{line}` in\n{text}");
    }
    assert!(text.contains("gatehouse_http_request_duration_seconds_bucket{le="));
}

#[tokio::test]
async fn openapi_covers_every_route() {
    let up = MockUpstream::start(Behavior::ok("x")).await;
    let gate = start(&up.base_url, "").await;
    let doc: Value = gate
        .client
        .get(gate.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut paths: Vec<_> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    paths.sort();
    assert_eq!(
        paths,
        vec![
            "/",
            "/admin",
            "/admin/api/assistants",
            "/admin/api/assistants/export",
            "/admin/api/assistants/import",
            "/admin/api/assistants/{slug}",
            "/admin/api/assistants/{slug}/experiments",
            "/admin/api/assistants/{slug}/versions",
            "/admin/api/assistants/{slug}/versions/{version}",
            "/admin/api/audit",
            "/admin/api/cache/purge",
            "/admin/api/deployments",
            "/admin/api/experiments/{id}",
            "/admin/api/experiments/{id}/results",
            "/admin/api/experiments/{id}/stop",
            "/admin/api/keys",
            "/admin/api/keys/{id}",
            "/admin/api/keys/{id}/budget/reset",
            "/admin/api/keys/{id}/revoke",
            "/admin/api/keys/{id}/rotate",
            "/admin/api/session",
            "/admin/api/tokens",
            "/admin/api/usage",
            "/admin/api/usage/today",
            "/assets/{path}",
            "/health",
            "/metrics",
            "/openapi.json",
            "/ready",
            "/v1/audio/transcriptions",
            "/v1/chat/completions",
            "/v1/conversations",
            "/v1/conversations/{id}",
            "/v1/conversations/{id}/messages",
            "/v1/conversations/{id}/messages/{message_id}/rating",
            "/v1/conversations/{id}/summary",
            "/v1/embeddings",
            "/v1/messages",
            "/v1/models",
            "/v1/usage",
            "/web/api/audio/transcriptions",
            "/web/api/chat/completions",
            "/web/api/conversations",
            "/web/api/conversations/{id}",
            "/web/api/conversations/{id}/messages",
            "/web/api/conversations/{id}/messages/{message_id}/rating",
            "/web/api/session",
            "/web/api/session/invite",
            "/web/api/usage"
        ]
    );
    assert!(doc["components"]["schemas"]["ChatRequest"].is_object());
}

#[tokio::test]
async fn embeddings_honour_encoding_format() {
    let up = MockUpstream::start(Behavior::embeddings()).await;
    let gate = start(
        &up.base_url,
        "[[models]]\nalias = \"emb\"\nprovider = \"up\"\nupstream_model = \"text-embedding-3-small\"\ninput_usd_per_mtok = \"0.02\"\n",
    )
    .await;
    let f: Value = gate
        .post(
            "/v1/embeddings",
            &serde_json::json!({"model": "emb", "input": ["hello", "world"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let floats = f["data"][0]["embedding"].as_array().unwrap();
    assert_eq!(floats.len(), 8);
    assert_eq!(f["data"][1]["index"], 1);
    let b: Value = gate
        .post("/v1/embeddings", &serde_json::json!({"model": "emb", "input": ["hello", "world"], "encoding_format": "base64"}))
        .await
        .json()
        .await
        .unwrap();
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f64> = bytes
        .chunks_exact(4)
        .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
        .collect();
    let expected: Vec<f64> = floats
        .iter()
        .map(|v| f64::from(v.as_f64().unwrap() as f32))
        .collect();
    assert_eq!(decoded, expected);
    // Bad input: an empty input list.
    let resp = gate
        .post(
            "/v1/embeddings",
            &serde_json::json!({"model": "emb", "input": []}),
        )
        .await;
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn the_builtin_mock_serves_without_any_upstream() {
    let up = MockUpstream::start(Behavior::ok("x")).await;
    let gate = start(&up.base_url, "").await;
    let v: Value = gate
        .post("/v1/chat/completions", &chat_body("mock-1", "hello"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "This is the Gatehouse mock provider. You said: hello"
    );
    let resp = gate
        .post(
            "/v1/chat/completions",
            &chat_body("mock-1", "[mock:status=429]"),
        )
        .await;
    assert_eq!(resp.status(), 503);
    assert_eq!(up.hits(), 0);
}
