//! Assistant cost ceilings: per conversation and per day, refusing with 429
//! `assistant_ceiling_reached` (and `x-should-retry: false`) or downgrading to a cheaper model;
//! the daily spend survives a restart.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod assist;
mod common;

use assist::{call, conversation, create_assistant, gate, gate_on, postgres_url, send};
use common::{row, temp_db_url};
use http::Method;
use serde_json::json;
use test_support::{Behavior, MockUpstream};

// Every reply reports 10 prompt and 5 completion tokens: 75 micro-USD on `m1` ($2.50 / $10 per
// Mtok), 3 on `cheap` ($0.10 / $0.40: 10 × 0.1 + 5 × 0.4).

#[tokio::test]
async fn conversation_ceiling_refuses_clearly() {
    let up = MockUpstream::start(Behavior::ok("ok").with_usage(10, 5, 0)).await;
    let g = gate(&up.base_url).await;
    create_assistant(
        &g,
        &json!({"slug": "capped", "name": "Capped", "model": "m1", "conversation_ceiling_micros": 100}),
    )
    .await;
    let id = conversation(&g, "capped", "u").await;
    // 0 then 75 spent: both under 100, both served (a request that starts under the ceiling
    // is served in full).
    assert_eq!(
        send(&g, id, "u", "one").await.body["conversation_cost_micros"],
        75
    );
    assert_eq!(
        send(&g, id, "u", "two").await.body["conversation_cost_micros"],
        150
    );
    let r = send(&g, id, "u", "three").await;
    assert_eq!(r.error(), (429, "assistant_ceiling_reached", None));
    assert_eq!(r.body["error"]["type"], "insufficient_quota");
    assert_eq!(r.header("x-should-retry"), Some("false"));
    assert_eq!(
        r.body["error"]["message"],
        "This conversation reached the cost ceiling of assistant `capped` ($0.000100 per conversation); start a new conversation"
    );
    assert_eq!(up.hits(), 2);
    // The refused message was not stored; a new conversation is served.
    let c = call(
        &g,
        Method::GET,
        &format!("/v1/conversations/{id}"),
        None,
        &[("x-gatehouse-user", "u")],
    )
    .await;
    assert_eq!(
        (
            c.body["message_count"].as_i64(),
            c.body["cost_micros"].as_i64()
        ),
        (Some(4), Some(150))
    );
    let fresh = conversation(&g, "capped", "u").await;
    assert_eq!(send(&g, fresh, "u", "again").await.status, 200);
    // The same ceiling through chat completions joined to the full conversation.
    let body = json!({"model": "assistant/capped", "messages": [{"role": "user", "content": "x"}], "user": "u"});
    let r = call(
        &g,
        Method::POST,
        "/v1/chat/completions",
        Some(&body),
        &[("x-gatehouse-conversation-id", &id.to_string())],
    )
    .await;
    assert_eq!(r.error(), (429, "assistant_ceiling_reached", None));
}

async fn downgrade_at_the_ceiling(db_url: &str) {
    let up = MockUpstream::start(Behavior::ok("ok").with_usage(10, 5, 0)).await;
    let mut g = gate_on(db_url, &up.base_url).await;
    create_assistant(
        &g,
        &json!({
            "slug": "frugal", "name": "Frugal", "model": "m1",
            "conversation_ceiling_micros": 100, "at_ceiling": "downgrade", "downgrade_model": "cheap"
        }),
    )
    .await;
    let id = conversation(&g, "frugal", "u").await;
    send(&g, id, "u", "one").await;
    send(&g, id, "u", "two").await;
    let r = call(
        &g,
        Method::POST,
        &format!("/v1/conversations/{id}/messages"),
        Some(&json!({"content": "three"})),
        &[("x-gatehouse-user", "u"), ("x-request-id", "downgraded-1")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("x-gatehouse-downgraded"),
        Some("conversation_ceiling")
    );
    assert_eq!(r.body["downgraded"], "conversation_ceiling");
    assert_eq!(
        (
            r.body["cost_micros"].as_i64(),
            r.body["conversation_cost_micros"].as_i64()
        ),
        (Some(3), Some(153))
    );
    assert_eq!(r.body["message"]["model"], "cheap");
    let models: Vec<String> = up
        .requests()
        .iter()
        .map(|q| q.body["model"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(models, ["gpt-4o-mini", "gpt-4o-mini", "gpt-4o-nano"]);
    // Streams are downgraded the same way.
    let r = call(
        &g,
        Method::POST,
        &format!("/v1/conversations/{id}/messages"),
        Some(&json!({"content": "four", "stream": true})),
        &[("x-gatehouse-user", "u")],
    )
    .await;
    assert_eq!(
        r.header("x-gatehouse-downgraded"),
        Some("conversation_ceiling")
    );
    assert!(
        r.text.contains("\"conversation_cost_micros\":156"),
        "{}",
        r.text
    );
    let store = g.shutdown_and_store().await;
    let rec = row(&store, "downgraded-1").await;
    assert_eq!(
        (
            rec.model.as_str(),
            rec.upstream_model.as_str(),
            rec.cost_micros
        ),
        ("cheap", "gpt-4o-nano", 3)
    );
    assert!(rec.assistant_version_id.is_some());
}

#[tokio::test]
async fn sqlite_downgrade_at_the_ceiling() {
    downgrade_at_the_ceiling(&temp_db_url()).await;
}

#[tokio::test]
async fn postgres_downgrade_at_the_ceiling() {
    if let Some(url) = postgres_url().await {
        downgrade_at_the_ceiling(&url).await;
    }
}

async fn assert_daily_refusal(g: &common::Gate, body: &serde_json::Value) {
    let r = call(g, Method::POST, "/v1/chat/completions", Some(body), &[]).await;
    assert_eq!(r.error(), (429, "assistant_ceiling_reached", None));
    assert_eq!(r.header("x-should-retry"), Some("false"));
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    assert_eq!(
        r.body["error"]["message"],
        "The assistant `daily` reached its daily cost ceiling ($0.000100); it resets at 00:00 UTC"
    );
}

async fn daily_ceiling_survives_a_restart(db_url: &str) {
    let up = MockUpstream::start(Behavior::ok("ok").with_usage(10, 5, 0)).await;
    let mut g = gate_on(db_url, &up.base_url).await;
    create_assistant(
        &g,
        &json!({"slug": "daily", "name": "Daily", "model": "m1", "daily_ceiling_micros": 100}),
    )
    .await;
    let body = json!({"model": "assistant/daily", "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..2 {
        let r = call(&g, Method::POST, "/v1/chat/completions", Some(&body), &[]).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_daily_refusal(&g, &body).await;
    // After a restart the spend is read back from the ledger: still refused.
    g.shutdown_and_store().await.close().await;
    let g = gate_on(db_url, &up.base_url).await;
    assert_daily_refusal(&g, &body).await;
    assert_eq!(up.hits(), 2);
    // Raising the ceiling opens it again at once.
    let r = assist::admin(
        &g,
        Method::PUT,
        "/admin/api/assistants/daily",
        Some(&json!({"name": "Daily", "model": "m1", "daily_ceiling_micros": 1_000})),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = call(&g, Method::POST, "/v1/chat/completions", Some(&body), &[]).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn sqlite_daily_ceiling_survives_a_restart() {
    daily_ceiling_survives_a_restart(&temp_db_url()).await;
}

#[tokio::test]
async fn postgres_daily_ceiling_survives_a_restart() {
    if let Some(url) = postgres_url().await {
        daily_ceiling_survives_a_restart(&url).await;
    }
}
