//! Helpers shared by the store's assistant and experiment tests: run a check on SQLite and on
//! PostgreSQL (when configured), and build message and ledger rows.
#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(
    clippy::unwrap_used,
    reason = "test fixtures: a failure should panic the test"
)]

use store::{MessageRecord, Store, UsageRecord};

use crate::common::{self, PgSchema, TempDir};

pub const NOW: i64 = 1_750_000_000_000;
pub const DAY: i64 = 86_400_000;

pub async fn on_both<F, Fut>(check: F)
where
    F: Fn(Store) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = TempDir::new("assistants");
    let store = Store::connect(&dir.sqlite_url()).await.unwrap();
    check(store.clone()).await;
    store.close().await;
    if let Some(base) = common::postgres_url() {
        let schema = PgSchema::create(&base).await;
        let store = Store::connect(&schema.url).await.unwrap();
        check(store.clone()).await;
        store.close().await;
        schema.drop().await;
    }
}

pub fn reply(content: &str, cost: i64, variant: Option<&str>) -> MessageRecord {
    MessageRecord {
        role: "assistant".into(),
        content: content.into(),
        variant: variant.map(str::to_owned),
        experiment_id: variant.map(|_| 1),
        cost_micros: cost,
        prompt_tokens: 10,
        completion_tokens: 5,
        ..MessageRecord::default()
    }
}

pub fn user(content: &str) -> MessageRecord {
    MessageRecord {
        role: "user".into(),
        content: content.into(),
        ..MessageRecord::default()
    }
}

pub fn ledger_row(
    i: i64,
    version_id: i64,
    variant: &str,
    latency: i64,
    status: i32,
) -> UsageRecord {
    UsageRecord {
        request_id: format!("r{i}"),
        ts_ms: NOW + i,
        key_id: Some(i % 2),
        route: store::Route::Chat,
        model: "m1".into(),
        provider: "up".into(),
        upstream_model: "u".into(),
        prompt_tokens: 10,
        completion_tokens: i,
        cached_tokens: 0,
        cost_micros: 100 + i,
        latency_ms: latency,
        ttft_ms: None,
        status,
        error_code: None,
        cache_status: store::CacheStatus::None,
        flags: 0,
        attempts: 1,
        served_by: None,
        fallback_reason: None,
        assistant_version_id: Some(version_id),
        variant: Some(variant.into()),
        conversation_id: Some(i % 3),
        cost_saved_micros: 0,
    }
}
