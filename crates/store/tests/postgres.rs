//! The PostgreSQL backend, against a real server: each test gets its own schema. Skipped, with
//! a printed reason, unless `GATEHOUSE_TEST_POSTGRES_URL` is set (`.ci/start-postgres.sh`).

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns panic the test on failure"
)]

mod common;

use common::PgSchema;
use store::Store;

#[tokio::test]
async fn migrations_are_idempotent_and_race_free() {
    let Some(base) = common::postgres_url() else {
        return;
    };
    let schema = PgSchema::create(&base).await;
    // Two instances starting at once: the advisory lock lets exactly one apply each version.
    let (a, b) = tokio::join!(Store::connect(&schema.url), Store::connect(&schema.url));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.backend(), "postgres");
    a.ping().await.unwrap();
    a.insert_usage(&[common::record(1)]).await.unwrap();
    a.close().await;
    b.close().await;

    let again = Store::connect(&schema.url).await.unwrap();
    assert_eq!(again.usage_count().await.unwrap(), 1);
    again.close().await;

    assert_eq!(
        schema
            .query_i64("SELECT version FROM {schema}.schema_migrations ORDER BY version")
            .await,
        (1..=store::SCHEMA_VERSION).collect::<Vec<i64>>()
    );
    // Both tables landed in the test's schema, not in `public`.
    assert_eq!(
        schema
            .query_i64(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{schema}' \
                 AND table_name IN ('schema_migrations', 'usage_records')"
            )
            .await,
        vec![2]
    );
    schema.drop().await;
}

#[tokio::test]
async fn round_trip_is_exact() {
    let Some(base) = common::postgres_url() else {
        return;
    };
    let schema = PgSchema::create(&base).await;
    let store = Store::connect(&schema.url).await.unwrap();
    common::check_round_trip(&store).await;
    store.close().await;
    schema.drop().await;
}

#[tokio::test]
async fn over_long_text_and_nul_are_clamped() {
    let Some(base) = common::postgres_url() else {
        return;
    };
    let schema = PgSchema::create(&base).await;
    let store = Store::connect(&schema.url).await.unwrap();
    common::check_clamping(&store).await;
    store.close().await;
    schema.drop().await;
}

#[tokio::test]
async fn insert_splits_statements_under_the_bind_limit() {
    let Some(base) = common::postgres_url() else {
        return;
    };
    let schema = PgSchema::create(&base).await;
    let store = Store::connect(&schema.url).await.unwrap();
    common::check_chunked_insert(&store).await;
    store.close().await;
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_writes_a_thousand_records_from_fifty_tasks() {
    let Some(base) = common::postgres_url() else {
        return;
    };
    let schema = PgSchema::create(&base).await;
    let store = Store::connect(&schema.url).await.unwrap();
    common::check_ledger_thousand(&store).await;
    store.close().await;
    schema.drop().await;
}

/// `Store` is `Debug` so it can sit in app state; that output must not carry credentials.
#[tokio::test]
async fn debug_output_never_shows_the_password() {
    let Some(base) = common::postgres_url() else {
        return;
    };
    let schema = PgSchema::create(&base).await;
    let (url, password) = with_password(&schema.url);
    let store = Store::connect(&url).await.unwrap();
    let debug = format!("{store:?}");
    assert!(!debug.contains(&password), "{debug}");
    store.close().await;
    schema.drop().await;
}

/// The URL's own password, or one added to it (ignored by the CI server's trust auth).
fn with_password(url: &str) -> (String, String) {
    let authority_start = url.find("://").unwrap() + 3;
    let at = authority_start + url[authority_start..].find('@').unwrap();
    match url[authority_start..at].split_once(':') {
        Some((_, password)) => (url.to_owned(), password.to_owned()),
        None => (
            format!("{}:hunter2{}", &url[..at], &url[at..]),
            "hunter2".to_owned(),
        ),
    }
}
