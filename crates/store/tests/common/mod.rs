//! Shared fixtures for the store tests: realistic records, temp SQLite files, per-test
//! PostgreSQL schemas, and checks run identically against both backends.
#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(
    clippy::unwrap_used,
    reason = "test fixtures: a failure should panic the test"
)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::Executor;
use sqlx::postgres::{PgPool, PgPoolOptions};
use store::{CacheStatus, Ledger, LedgerConfig, LedgerSnapshot, Route, Store, UsageRecord};

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// Unique across parallel tests in this process and across concurrent processes.
pub fn unique_name(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed)
    )
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        TempDir {
            path: std::env::temp_dir().join(unique_name(&format!("gatehouse-store-{name}"))),
        }
    }

    /// A URL for a database file two levels below the (not yet existing) directory, so
    /// `Store::connect` has to create the parents.
    pub fn sqlite_url(&self) -> String {
        format!("sqlite://{}", self.db_path().display())
    }

    pub fn db_path(&self) -> PathBuf {
        self.path.join("nested").join("gatehouse.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn mix(mut x: u64) -> u64 {
    // splitmix64: spreads sequential numbers so ids land all over the index, as real ones do.
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A UUID-shaped request id (36 characters), like the gateway generates.
pub fn request_id(i: u64) -> String {
    let (a, b) = (mix(i), mix(i ^ 0xdead_beef));
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

/// A typical successful chat request; fields vary with `i` like real traffic does.
pub fn record(i: u64) -> UsageRecord {
    let h = mix(i);
    let small = |shift: u32, modulo: u64| i64::try_from((h >> shift) % modulo).unwrap();
    UsageRecord {
        request_id: request_id(i),
        ts_ms: 1_750_000_000_000 + i64::try_from(i).unwrap() * 37,
        key_id: Some(small(0, 40) + 1),
        route: Route::Chat,
        model: "gpt-4o-mini".to_owned(),
        provider: "openai".to_owned(),
        upstream_model: "gpt-4o-mini-2024-07-18".to_owned(),
        prompt_tokens: small(8, 4_000) + 20,
        completion_tokens: small(20, 1_000) + 1,
        cached_tokens: 0,
        cost_micros: small(32, 20_000),
        latency_ms: small(44, 3_000) + 200,
        ttft_ms: Some(small(52, 800) + 100),
        status: 200,
        error_code: None,
        cache_status: CacheStatus::Miss,
        flags: UsageRecord::FLAG_STREAMED,
        attempts: 1,
        served_by: None,
        fallback_reason: None,
        assistant_version_id: None,
        variant: None,
        conversation_id: None,
        cost_saved_micros: 0,
    }
}

pub fn fast_retry_config() -> LedgerConfig {
    LedgerConfig {
        write_attempts: 3,
        retry_backoff: Duration::from_millis(1),
        retry_backoff_max: Duration::from_millis(2),
        ..LedgerConfig::default()
    }
}

/// Every field set, and every field that can be empty left empty, across two records of one
/// request, so a swapped or dropped column shows up.
pub async fn check_round_trip(store: &Store) {
    let full = UsageRecord {
        request_id: "req-round-trip".to_owned(),
        ts_ms: 1_751_234_567_890,
        key_id: Some(9_007_199_254_740_993),
        route: Route::Messages,
        model: "claude-fast".to_owned(),
        provider: "anthropic-eu".to_owned(),
        upstream_model: "claude-3-5-haiku-20241022".to_owned(),
        prompt_tokens: 1_234_567,
        completion_tokens: 89,
        cached_tokens: 1_024,
        cost_micros: 4_200_000_001,
        latency_ms: 12_345,
        ttft_ms: Some(321),
        status: 200,
        error_code: Some("provider_error".to_owned()),
        cache_status: CacheStatus::SemanticHit,
        flags: UsageRecord::FLAG_STREAMED | UsageRecord::FLAG_TRUNCATED,
        attempts: 3,
        served_by: Some("anthropic/claude-sonnet".into()),
        fallback_reason: Some("exhausted_retries".into()),
        assistant_version_id: Some(42),
        variant: Some("b".into()),
        conversation_id: Some(7),
        cost_saved_micros: 1_234,
    };
    let empty = UsageRecord {
        request_id: "req-round-trip".to_owned(),
        ts_ms: -1,
        key_id: None,
        route: Route::Embeddings,
        model: String::new(),
        provider: "mock".to_owned(),
        upstream_model: "ünïcødé-模型".to_owned(),
        prompt_tokens: 0,
        completion_tokens: 0,
        cached_tokens: 0,
        cost_micros: 0,
        latency_ms: 0,
        ttft_ms: None,
        status: 499,
        error_code: None,
        cache_status: CacheStatus::Skip,
        flags: UsageRecord::FLAG_CLIENT_CANCELLED | UsageRecord::FLAG_TOKENS_ESTIMATED,
        attempts: 0,
        served_by: None,
        fallback_reason: None,
        assistant_version_id: None,
        variant: None,
        conversation_id: None,
        cost_saved_micros: 0,
    };
    let other = record(1);
    store
        .insert_usage(&[full.clone(), other.clone(), empty.clone()])
        .await
        .unwrap();

    assert_eq!(
        store.usage_by_request_id("req-round-trip").await.unwrap(),
        vec![full, empty]
    );
    assert_eq!(
        store.usage_by_request_id(&other.request_id).await.unwrap(),
        vec![other]
    );
    assert_eq!(store.usage_by_request_id("absent").await.unwrap(), vec![]);
    assert_eq!(store.usage_count().await.unwrap(), 3);
    store.insert_usage(&[]).await.unwrap();
    assert_eq!(store.usage_count().await.unwrap(), 3);
}

/// Over-long text is cut and NUL dropped rather than failing the batch.
pub async fn check_clamping(store: &Store) {
    let long_id = "r".repeat(200);
    let mut r = record(2);
    r.request_id = long_id.clone();
    r.model = format!("evil\0{}", "m".repeat(1_000));
    store.insert_usage(&[r.clone()]).await.unwrap();

    let got = store.usage_by_request_id(&long_id).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].request_id,
        "r".repeat(UsageRecord::MAX_REQUEST_ID_CHARS)
    );
    assert_eq!(
        got[0].model,
        format!("evil{}", "m".repeat(UsageRecord::MAX_TEXT_CHARS - 5))
    );
    assert_eq!(got[0].prompt_tokens, r.prompt_tokens);
}

/// More rows than one statement may bind on either backend (5,000 × 17 = 85,000 parameters).
pub async fn check_chunked_insert(store: &Store) {
    let rows: Vec<UsageRecord> = (0..5_000).map(record).collect();
    store.insert_usage(&rows).await.unwrap();
    assert_eq!(store.usage_count().await.unwrap(), 5_000);
    assert_eq!(
        store.usage_by_request_id(&request_id(4_999)).await.unwrap(),
        vec![record(4_999)]
    );
}

/// 1,000 records from 50 concurrent tasks, then a graceful shutdown: every one is written.
pub async fn check_ledger_thousand(store: &Store) {
    let (ledger, writer) = Ledger::start(store.clone(), LedgerConfig::default());
    let tasks: Vec<_> = (0..50u64)
        .map(|task| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                for j in 0..20u64 {
                    ledger.record(record(task * 20 + j));
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }

    let stats = writer.shutdown().await;
    assert_eq!(
        stats,
        LedgerSnapshot {
            written: 1_000,
            dropped: 0,
            write_errors: 0
        }
    );
    assert_eq!(store.usage_count().await.unwrap(), 1_000);
    for i in [0, 499, 999] {
        assert_eq!(
            store.usage_by_request_id(&request_id(i)).await.unwrap(),
            vec![record(i)]
        );
    }
    assert_eq!(ledger.queue_depth(), 0);
}

pub const POSTGRES_URL_VAR: &str = "GATEHOUSE_TEST_POSTGRES_URL";

pub fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("skipped: {POSTGRES_URL_VAR} not set");
            None
        }
    }
}

/// A fresh schema for one test, so tests run in parallel against one database. `url` points
/// the store at it through the `options=-csearch_path%3D…` URL parameter.
pub struct PgSchema {
    admin: PgPool,
    pub name: String,
    pub url: String,
}

impl PgSchema {
    pub async fn create(base_url: &str) -> PgSchema {
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(base_url)
            .await
            .unwrap();
        let name = unique_name("gh_test");
        admin
            .execute(format!("CREATE SCHEMA {name}").as_str())
            .await
            .unwrap();
        let separator = if base_url.contains('?') { '&' } else { '?' };
        let url = format!("{base_url}{separator}options=-csearch_path%3D{name}");
        PgSchema { admin, name, url }
    }

    pub async fn query_i64(&self, sql: &str) -> Vec<i64> {
        sqlx::query_scalar(&sql.replace("{schema}", &self.name))
            .fetch_all(&self.admin)
            .await
            .unwrap()
    }

    pub async fn drop(self) {
        self.admin
            .execute(format!("DROP SCHEMA {} CASCADE", self.name).as_str())
            .await
            .unwrap();
        self.admin.close().await;
    }
}
