//! The usage ledger under load and across shutdown, on SQLite and (when configured) PostgreSQL.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use std::time::Duration;

use common::{chat_body, config_toml, row, start, start_with_toml, temp_db_url};
use serde_json::json;
use store::Store;
use test_support::{Behavior, MockUpstream};

async fn thousand_concurrent_requests_make_thousand_rows(db_url: &str) {
    let up = MockUpstream::start(Behavior::ok("fine").with_usage(10, 1, 0)).await;
    let mut gate = start_with_toml(&config_toml(&up.base_url, db_url, "")).await;
    let gate_base = gate.base.clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1_000)
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..1_000)
        .map(|i| {
            let client = client.clone();
            let url = format!("{gate_base}/v1/chat/completions");
            let mut body = chat_body("m1", "hi");
            if i % 2 == 0 {
                body["stream"] = json!(true);
            }
            tokio::spawn(async move {
                let resp = client
                    .post(url)
                    .header("x-request-id", format!("load-{i}"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                resp.bytes().await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let store = gate.shutdown_and_store().await;
    assert_eq!(store.usage_count().await.unwrap(), 1_000);
    for i in [0, 1, 499, 999] {
        let r = row(&store, &format!("load-{i}")).await;
        assert_eq!((r.status, r.cost_micros), (200, 35)); // 10 × 2.5 + 1 × 10 = 35
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_thousand_concurrent_requests() {
    thousand_concurrent_requests_make_thousand_rows(&temp_db_url()).await;
}

/// A fresh schema on the test PostgreSQL, or `None` (test skipped) when it is not configured.
async fn postgres_url() -> Option<String> {
    let Ok(base) = std::env::var("GATEHOUSE_TEST_POSTGRES_URL") else {
        println!("skipped: GATEHOUSE_TEST_POSTGRES_URL not set");
        return None;
    };
    let schema = format!("gh_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-csearch_path%3D{schema}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_thousand_concurrent_requests() {
    if let Some(url) = postgres_url().await {
        thousand_concurrent_requests_make_thousand_rows(&url).await;
    }
}

#[tokio::test]
async fn postgres_ledger_row_is_exact() {
    let Some(url) = postgres_url().await else {
        return;
    };
    let up = MockUpstream::start(Behavior::ok("x y").with_usage(1_000, 500, 200)).await;
    let mut gate = start_with_toml(&config_toml(&up.base_url, &url, "")).await;
    gate.post_with_id("/v1/chat/completions", &chat_body("m1", "hi"), "pg-1")
        .await;
    let store = gate.shutdown_and_store().await;
    assert_eq!(store.backend(), "postgres");
    let r = row(&store, "pg-1").await;
    assert_eq!(
        (r.cost_micros, r.prompt_tokens, r.cached_tokens, r.status),
        (7_250, 1_000, 200, 200)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_streams_and_loses_no_record() {
    let up = MockUpstream::start(
        Behavior::ok("s1 s2 s3 s4 s5").with_chunk_delay(Duration::from_millis(100)),
    )
    .await;
    let mut gate = start(&up.base_url, "").await;
    let client = gate.client.clone();
    let url = gate.url("/v1/chat/completions");
    let mut body = chat_body("m1", "x");
    body["stream"] = json!(true);
    let mut resp = client
        .post(&url)
        .header("x-request-id", "in-flight-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    let first = resp.chunk().await.unwrap().unwrap();
    assert!(!first.is_empty());
    // Shut down while the stream is still running; it must be allowed to finish.
    let running = gate.running.take().unwrap();
    let shutdown = tokio::spawn(running.shutdown());
    let mut rest = Vec::new();
    while let Some(c) = resp.chunk().await.unwrap() {
        rest.extend_from_slice(&c);
    }
    assert!(String::from_utf8_lossy(&rest).ends_with("data: [DONE]\n\n"));
    let stats = shutdown.await.unwrap();
    assert_eq!(stats.dropped, 0);
    let store = Store::connect(&gate.db_url).await.unwrap();
    let r = row(&store, "in-flight-1").await;
    assert_eq!(r.status, 200);
    // New connections are refused once shutdown began.
    assert!(
        client
            .post(&url)
            .json(&chat_body("m1", "x"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_outliving_the_grace_period_is_cut_and_still_recorded() {
    // 40 chunks 100 ms apart: about 4 s, far past a 1 s grace period.
    let words = vec!["w"; 40].join(" ");
    let up = MockUpstream::start(Behavior::ok(&words).with_chunk_delay(Duration::from_millis(100)))
        .await;
    let mut gate = common::start_with_env(
        &config_toml(&up.base_url, &temp_db_url(), ""),
        &[("GATEHOUSE_SERVER__SHUTDOWN_GRACE_SECS", "1")],
    )
    .await;
    let mut body = chat_body("m1", "x");
    body["stream"] = json!(true);
    let mut resp = gate
        .client
        .post(gate.url("/v1/chat/completions"))
        .header("x-request-id", "too-long-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(!resp.chunk().await.unwrap().unwrap().is_empty());
    let running = gate.running.take().unwrap();
    let shutdown = tokio::spawn(running.shutdown());
    let mut rest = Vec::new();
    while let Ok(Some(c)) = resp.chunk().await {
        rest.extend_from_slice(&c);
    }
    // Cut at the deadline: the stream never completed.
    assert!(!String::from_utf8_lossy(&rest).contains("[DONE]"));
    let stats = shutdown.await.unwrap();
    assert_eq!(stats.dropped, 0);
    let store = Store::connect(&gate.db_url).await.unwrap();
    let r = row(&store, "too-long-1").await;
    assert_eq!(r.status, 499);
}
