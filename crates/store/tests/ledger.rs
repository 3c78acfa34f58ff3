//! The ledger writer against SQLite: nothing accepted is lost, every loss is counted.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns panic the test on failure"
)]

mod common;

use std::time::Duration;

use common::TempDir;
use store::{Ledger, LedgerConfig, LedgerSnapshot, Store};

async fn store(dir: &TempDir) -> Store {
    Store::connect(&dir.sqlite_url()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_records_from_fifty_tasks_are_all_written() {
    let dir = TempDir::new("ledger-1000");
    let store = store(&dir).await;
    common::check_ledger_thousand(&store).await;
    store.close().await;
}

#[tokio::test]
async fn a_record_after_shutdown_is_dropped_and_counted() {
    let dir = TempDir::new("ledger-after");
    let store = store(&dir).await;
    let (ledger, writer) = Ledger::start(store.clone(), LedgerConfig::default());
    ledger.record(common::record(1));
    let at_shutdown = writer.shutdown().await;
    assert_eq!(
        at_shutdown,
        LedgerSnapshot {
            written: 1,
            dropped: 0,
            write_errors: 0
        }
    );

    ledger.record(common::record(2));
    assert_eq!(ledger.stats().dropped(), 1);
    assert_eq!(ledger.stats().written(), 1);
    assert_eq!(store.usage_count().await.unwrap(), 1);
    store.close().await;
}

/// On the current-thread runtime the spawned writer cannot run until the test awaits, so the
/// queue fills deterministically.
#[tokio::test]
async fn a_full_queue_drops_and_counts_without_blocking() {
    let dir = TempDir::new("ledger-full");
    let store = store(&dir).await;
    let cfg = LedgerConfig {
        queue_capacity: 2,
        ..LedgerConfig::default()
    };
    let (ledger, writer) = Ledger::start(store.clone(), cfg);
    for i in 0..5 {
        ledger.record(common::record(i));
    }
    assert_eq!(ledger.queue_depth(), 2);
    assert_eq!(ledger.stats().dropped(), 3);

    assert_eq!(
        writer.shutdown().await,
        LedgerSnapshot {
            written: 2,
            dropped: 3,
            write_errors: 0
        }
    );
    assert_eq!(store.usage_count().await.unwrap(), 2);
    assert_eq!(
        store
            .usage_by_request_id(&common::request_id(1))
            .await
            .unwrap(),
        vec![common::record(1)]
    );
    store.close().await;
}

#[tokio::test]
async fn a_batch_that_keeps_failing_is_retried_then_dropped_and_counted() {
    let dir = TempDir::new("ledger-fail");
    let store = store(&dir).await;
    store.close().await;
    let (ledger, writer) = Ledger::start(store, common::fast_retry_config());
    for i in 0..4 {
        ledger.record(common::record(i));
    }
    assert_eq!(
        writer.shutdown().await,
        LedgerSnapshot {
            written: 0,
            dropped: 4,
            write_errors: 3
        }
    );
}

/// Without a shutdown the writer still flushes: a full batch at once, a partial one when
/// `flush_interval` passes. Polls for the outcome, since the write happens on its own time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_flush_when_full_and_when_the_interval_passes() {
    let dir = TempDir::new("ledger-flush");
    let store = store(&dir).await;

    let full_batch = LedgerConfig {
        batch_size: 5,
        flush_interval: Duration::from_secs(3_600),
        ..LedgerConfig::default()
    };
    let (ledger, writer) = Ledger::start(store.clone(), full_batch);
    for i in 0..5 {
        ledger.record(common::record(i));
    }
    wait_until_written(&ledger, 5).await;
    assert_eq!(writer.shutdown().await.written, 5);

    let interval = LedgerConfig {
        batch_size: 512,
        flush_interval: Duration::from_millis(20),
        ..LedgerConfig::default()
    };
    let (ledger, writer) = Ledger::start(store.clone(), interval);
    for i in 100..103 {
        ledger.record(common::record(i));
    }
    wait_until_written(&ledger, 3).await;
    assert_eq!(writer.shutdown().await.written, 3);
    assert_eq!(store.usage_count().await.unwrap(), 8);
    store.close().await;
}

async fn wait_until_written(ledger: &Ledger, expected: u64) {
    let stats = ledger.stats();
    tokio::time::timeout(Duration::from_secs(10), async {
        while stats.written() < expected {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("written stayed at {} of {expected}", stats.written()));
}
