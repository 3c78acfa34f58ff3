//! The ledger's background task: collects queued records into batches and writes each batch in
//! one transaction, retrying with backoff before giving a batch up.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{LedgerConfig, LedgerStats};
use crate::{Store, UsageRecord};

/// How often a filling batch takes what was queued since the last look.
const COLLECT_TICK: Duration = Duration::from_millis(10);

pub(super) struct Writer {
    store: Store,
    rx: mpsc::Receiver<UsageRecord>,
    /// `None` once the [`super::LedgerWriter`] was dropped without asking to stop.
    stop: Option<oneshot::Receiver<()>>,
    stats: Arc<LedgerStats>,
    cfg: LedgerConfig,
}

/// What ended the collection of one batch.
enum Collected {
    Batch,
    StopRequested,
    /// Every sender is gone and the queue is empty.
    QueueClosed,
}

impl Writer {
    pub(super) fn new(
        store: Store,
        rx: mpsc::Receiver<UsageRecord>,
        stop: oneshot::Receiver<()>,
        stats: Arc<LedgerStats>,
        cfg: LedgerConfig,
    ) -> Self {
        Self {
            store,
            rx,
            stop: Some(stop),
            stats,
            cfg,
        }
    }

    pub(super) async fn run(mut self) {
        let mut batch = Vec::with_capacity(self.cfg.batch_size);
        loop {
            let collected = self.collect(&mut batch).await;
            self.write(&mut batch).await;
            match collected {
                Collected::Batch => {}
                Collected::StopRequested => break,
                Collected::QueueClosed => return,
            }
        }
        // Closing first makes every later `record` fail fast, so the drain below terminates and
        // each record is either written here or counted as dropped by the sender.
        self.rx.close();
        while self.rx.recv_many(&mut batch, self.cfg.batch_size).await > 0 {
            self.write(&mut batch).await;
        }
    }

    /// Waits as long as it takes for a first record, then up to `flush_interval` for the batch
    /// to fill, so a quiet gateway still writes each record promptly. While a batch fills, the
    /// queue is read every [`COLLECT_TICK`] rather than awaited: a task waiting on the queue
    /// would be woken by every record sent, one wake-up (often of another thread) per request.
    async fn collect(&mut self, batch: &mut Vec<UsageRecord>) -> Collected {
        let limit = self.cfg.batch_size;
        tokio::select! {
            biased;
            () = stop_requested(&mut self.stop) => return Collected::StopRequested,
            received = self.rx.recv_many(batch, limit) => {
                if received == 0 {
                    return Collected::QueueClosed;
                }
            }
        }
        let deadline = Instant::now() + self.cfg.flush_interval;
        while batch.len() < limit {
            let wake = (Instant::now() + COLLECT_TICK).min(deadline);
            tokio::select! {
                biased;
                () = stop_requested(&mut self.stop) => return Collected::StopRequested,
                () = tokio::time::sleep_until(wake) => {}
            }
            while batch.len() < limit {
                match self.rx.try_recv() {
                    Ok(record) => batch.push(record),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return Collected::QueueClosed,
                }
            }
            if wake >= deadline {
                break;
            }
        }
        Collected::Batch
    }

    /// Writes and empties `batch`, or after the last failed attempt counts it as dropped.
    async fn write(&self, batch: &mut Vec<UsageRecord>) {
        if batch.is_empty() {
            return;
        }
        let attempts = self.cfg.write_attempts;
        let mut backoff = self.cfg.retry_backoff;
        for attempt in 1..=attempts {
            let err = match self.store.insert_usage(batch).await {
                Ok(()) => {
                    LedgerStats::add(&self.stats.written, batch.len());
                    batch.clear();
                    return;
                }
                Err(err) => err,
            };
            LedgerStats::add(&self.stats.write_errors, 1);
            if attempt == attempts {
                tracing::error!(
                    count = batch.len(),
                    attempts,
                    error = %err,
                    "usage records dropped: batch write kept failing"
                );
                break;
            }
            tracing::warn!(
                count = batch.len(),
                attempt,
                retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                error = %err,
                "usage batch write failed; retrying"
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.cfg.retry_backoff_max);
        }
        LedgerStats::add(&self.stats.dropped, batch.len());
        batch.clear();
    }
}

/// Resolves when a stop was requested. If the requester went away instead, stops watching it
/// and never resolves: the task then ends when the queue closes.
async fn stop_requested(stop: &mut Option<oneshot::Receiver<()>>) {
    if let Some(rx) = stop {
        if rx.await.is_ok() {
            return;
        }
        *stop = None;
    }
    std::future::pending::<()>().await;
}
