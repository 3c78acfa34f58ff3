//! Context management: a long conversation with a model of a 400-token window. Older turns are
//! summarised by the assistant's cheap model, the summary is stored, and every request the
//! upstream receives stays within the window less the output reserve.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod assist;
mod common;

use assist::{call, conversation, create_assistant, gate_on, postgres_url, send};
use common::temp_db_url;
use gatehouse::conversations::context::SUMMARY_PREFIX;
use gatehouse::usage::estimate_prompt_tokens;
use http::Method;
use providers::ChatRequest;
use serde_json::json;
use store::UsageRecord;
use test_support::{Behavior, MockUpstream};

/// `small`: 400-token window, 50 output tokens → requests may use 350 prompt tokens.
const PROMPT_LIMIT: u64 = 350;

async fn summaries_keep_requests_in_the_window(db_url: &str) {
    let up = MockUpstream::start(Behavior::ok("Noted.").with_usage(10, 2, 0)).await;
    let mut g = gate_on(db_url, &up.base_url).await;
    create_assistant(
        &g,
        &json!({
            "slug": "brief", "name": "Brief", "model": "small", "summary_model": "cheap",
            "system_prompt": "You remember facts the user tells you."
        }),
    )
    .await;
    let id = conversation(&g, "brief", "u").await;
    let mut total_tokens = 0;
    for i in 0..24 {
        let text = format!(
            "Fact {i}: the warehouse in city number {i} stores {} crates of tea.",
            i * 7
        );
        total_tokens += gatehouse::usage::count_tokens(&text);
        let r = send(&g, id, "u", &text).await;
        assert_eq!(r.status, 200, "message {i}: {}", r.text);
    }
    // Sent whole, the history would not fit: the test exercises summarisation.
    assert!(total_tokens > 400, "{total_tokens}");

    let requests = up.requests();
    let (main, summaries): (Vec<_>, Vec<_>) = requests
        .iter()
        .partition(|r| r.body["model"] == "gpt-4o-mini");
    assert_eq!(main.len(), 24);
    assert!(!summaries.is_empty());
    for r in &summaries {
        assert_eq!(r.body["model"], "gpt-4o-nano");
        assert!(
            r.body["messages"][1]["content"]
                .as_str()
                .unwrap()
                .contains("New turns:\nuser: Fact")
        );
    }
    for (i, r) in main.iter().enumerate() {
        let req: ChatRequest = serde_json::from_value(r.body.clone()).unwrap();
        let tokens = estimate_prompt_tokens(&req);
        assert!(
            tokens <= PROMPT_LIMIT,
            "request {i} has {tokens} prompt tokens"
        );
        // The newest message is always sent as it was written.
        let last = req
            .messages
            .last()
            .unwrap()
            .content
            .as_ref()
            .unwrap()
            .joined_text();
        assert!(last.starts_with(&format!("Fact {i}: ")), "{last}");
    }
    // After the first summary, requests carry it right after the assistant's prompt.
    let last: ChatRequest = serde_json::from_value(main[23].body.clone()).unwrap();
    let second = last.messages[1].content.as_ref().unwrap().joined_text();
    assert_eq!(second, format!("{SUMMARY_PREFIX}Noted."));

    let c = call(
        &g,
        Method::GET,
        &format!("/v1/conversations/{id}"),
        None,
        &[("x-gatehouse-user", "u")],
    )
    .await;
    assert_eq!(c.body["summary"], "Noted.");
    let through = c.body["summary_through_message_id"].as_i64().unwrap();
    let ids: Vec<i64> = c.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert!(ids.contains(&through) && through < *ids.last().unwrap());
    // All 48 messages are kept, summarised or not.
    assert_eq!(c.body["message_count"], 48);
    let conversation_cost = c.body["cost_micros"].as_i64().unwrap();

    // Bad input: one message larger than the whole window.
    let r = send(&g, id, "u", &vec!["tea"; 600].join(" ")).await;
    assert_eq!(r.error(), (400, "context_length_exceeded", Some("content")));

    // The conversation's cost is exactly its ledger rows', summaries included (they are
    // flagged, belong to the assistant, and carry no variant).
    let store = g.shutdown_and_store().await;
    let mut ledger = 0;
    let mut flagged = 0;
    for m in c.body["messages"].as_array().unwrap() {
        if let Some(rid) = m["request_id"].as_str() {
            let rows = store.usage_by_request_id(rid).await.unwrap();
            assert_eq!(rows.len(), 1);
            ledger += rows[0].cost_micros;
            for n in 1..=8 {
                for s in store
                    .usage_by_request_id(&format!("{rid}:summary-{n}"))
                    .await
                    .unwrap()
                {
                    assert!(s.has_flag(UsageRecord::FLAG_SUMMARY));
                    assert_eq!((s.conversation_id, s.variant.as_deref()), (Some(id), None));
                    assert!(s.assistant_version_id.is_some());
                    ledger += s.cost_micros;
                    flagged += 1;
                }
            }
        }
    }
    assert_eq!(flagged, summaries.len());
    assert_eq!(ledger, conversation_cost);
}

#[tokio::test]
async fn sqlite_summaries_keep_requests_in_the_window() {
    summaries_keep_requests_in_the_window(&temp_db_url()).await;
}

#[tokio::test]
async fn postgres_summaries_keep_requests_in_the_window() {
    if let Some(url) = postgres_url().await {
        summaries_keep_requests_in_the_window(&url).await;
    }
}
