//! The SQLite backend: connect and migrations, exact round trips, chunked inserts, and the
//! on-disk size of a usage row.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns panic the test on failure"
)]

mod common;

use common::TempDir;
use sqlx::{Connection, SqliteConnection};
use store::{Store, StoreError};

async fn raw_connection(dir: &TempDir) -> SqliteConnection {
    SqliteConnection::connect(&dir.sqlite_url()).await.unwrap()
}

#[tokio::test]
async fn connect_creates_the_file_in_wal_mode_and_migrations_are_idempotent() {
    let dir = TempDir::new("migrate");
    let first = Store::connect(&dir.sqlite_url()).await.unwrap();
    assert_eq!(first.backend(), "sqlite");
    first.ping().await.unwrap();
    first.insert_usage(&[common::record(7)]).await.unwrap();
    first.close().await;
    assert!(dir.db_path().is_file());

    // A second start finds the schema current, applies nothing and keeps the data.
    let second = Store::connect(&dir.sqlite_url()).await.unwrap();
    assert_eq!(second.usage_count().await.unwrap(), 1);
    second.close().await;

    let mut raw = raw_connection(&dir).await;
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(&mut raw)
        .await
        .unwrap();
    assert_eq!(versions, (1..=store::SCHEMA_VERSION).collect::<Vec<i64>>());
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut raw)
        .await
        .unwrap();
    assert_eq!(journal, "wal");
}

#[tokio::test]
async fn concurrent_first_starts_apply_each_migration_once() {
    let dir = TempDir::new("race");
    let url = dir.sqlite_url();
    let (a, b) = tokio::join!(Store::connect(&url), Store::connect(&url));
    a.unwrap().close().await;
    b.unwrap().close().await;
    let mut raw = raw_connection(&dir).await;
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schema_migrations")
        .fetch_one(&mut raw)
        .await
        .unwrap();
    assert_eq!(applied, store::SCHEMA_VERSION);
}

#[tokio::test]
async fn round_trip_is_exact() {
    let dir = TempDir::new("round-trip");
    let store = Store::connect(&dir.sqlite_url()).await.unwrap();
    common::check_round_trip(&store).await;
    store.close().await;
}

#[tokio::test]
async fn over_long_text_is_clamped() {
    let dir = TempDir::new("clamp");
    let store = Store::connect(&dir.sqlite_url()).await.unwrap();
    common::check_clamping(&store).await;
    store.close().await;
}

#[tokio::test]
async fn insert_splits_statements_under_the_bind_limit() {
    let dir = TempDir::new("chunks");
    let store = Store::connect(&dir.sqlite_url()).await.unwrap();
    common::check_chunked_insert(&store).await;
    store.close().await;
}

#[tokio::test]
async fn in_memory_database_works() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    store.insert_usage(&[common::record(3)]).await.unwrap();
    assert_eq!(
        store
            .usage_by_request_id(&common::request_id(3))
            .await
            .unwrap(),
        vec![common::record(3)]
    );
    store.close().await;
}

#[tokio::test]
async fn unknown_enum_value_is_reported_not_guessed() {
    let dir = TempDir::new("unknown-enum");
    let store = Store::connect(&dir.sqlite_url()).await.unwrap();
    store.insert_usage(&[common::record(5)]).await.unwrap();
    let mut raw = raw_connection(&dir).await;
    sqlx::query("UPDATE usage_records SET cache_status = 42")
        .execute(&mut raw)
        .await
        .unwrap();

    let err = store
        .usage_by_request_id(&common::request_id(5))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::UnknownValue {
                id: 1,
                column: "cache_status",
                value: 42
            }
        ),
        "{err:?}"
    );
    store.close().await;
}

#[tokio::test]
async fn closed_store_fails_ping() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    store.close().await;
    assert!(store.ping().await.is_err());
}

/// The ledger must stay small enough to keep months of traffic in one SQLite file.
#[tokio::test]
async fn a_usage_row_takes_under_300_bytes_on_disk() {
    const ROWS: u64 = 10_000;
    let dir = TempDir::new("size");
    let store = Store::connect(&dir.sqlite_url()).await.unwrap();
    let before = used_bytes(&dir).await;
    // Batches the size the ledger writes, so page splits happen as in production.
    let rows: Vec<_> = (0..ROWS).map(common::record).collect();
    for batch in rows.chunks(512) {
        store.insert_usage(batch).await.unwrap();
    }
    store.close().await;
    let after = used_bytes(&dir).await;

    #[expect(clippy::cast_precision_loss, reason = "a small ratio for a report")]
    let per_row = (after - before) as f64 / ROWS as f64;
    println!(
        "sqlite usage_records: {per_row:.1} bytes per row on disk ({ROWS} rows, table and both indexes)"
    );
    assert!(per_row < 300.0, "{per_row:.1} bytes per row");
}

/// Pages in use (file size minus free pages), after moving the WAL into the main file.
async fn used_bytes(dir: &TempDir) -> i64 {
    let mut raw = raw_connection(dir).await;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut raw)
        .await
        .unwrap();
    let pragma = |name: &'static str| sqlx::query_scalar::<_, i64>(name);
    let page_size = pragma("PRAGMA page_size")
        .fetch_one(&mut raw)
        .await
        .unwrap();
    let pages = pragma("PRAGMA page_count")
        .fetch_one(&mut raw)
        .await
        .unwrap();
    let free = pragma("PRAGMA freelist_count")
        .fetch_one(&mut raw)
        .await
        .unwrap();
    raw.close().await.unwrap();
    (pages - free) * page_size
}
