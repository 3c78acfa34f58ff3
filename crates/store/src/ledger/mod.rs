//! The usage ledger: a bounded queue in front of one background task that writes
//! [`UsageRecord`]s in batches, so request handlers never wait on the database.
//!
//! [`Ledger::record`] is synchronous and never blocks: when the queue is full or shut down the
//! record is dropped, counted in [`LedgerStats`] and logged (at most once a second). The writer
//! task is owned by [`LedgerWriter`]; its `shutdown` drains and writes everything accepted.

mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::{Store, UsageRecord};

#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// Records waiting to be written; beyond this they are dropped.
    pub queue_capacity: usize,
    /// Most records written in one transaction.
    pub batch_size: usize,
    /// Longest a record waits for its batch to fill before being written anyway.
    pub flush_interval: Duration,
    /// Tries per batch, the first included, before the batch is dropped.
    pub write_attempts: u32,
    /// Wait after the first failed try; doubles after each further one.
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 65_536,
            batch_size: 512,
            flush_interval: Duration::from_millis(200),
            write_attempts: 5,
            retry_backoff: Duration::from_millis(50),
            retry_backoff_max: Duration::from_secs(2),
        }
    }
}

/// Running totals, shared by the [`Ledger`] handles and the writer task.
#[derive(Debug, Default)]
pub struct LedgerStats {
    written: AtomicU64,
    dropped: AtomicU64,
    write_errors: AtomicU64,
}

impl LedgerStats {
    /// Records stored in the database.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Records lost: queue full, ledger shut down, or their batch failed every write attempt.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Failed write attempts (a batch retried three times counts three).
    pub fn write_errors(&self) -> u64 {
        self.write_errors.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> LedgerSnapshot {
        LedgerSnapshot {
            written: self.written(),
            dropped: self.dropped(),
            write_errors: self.write_errors(),
        }
    }

    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

/// The [`LedgerStats`] counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LedgerSnapshot {
    pub written: u64,
    pub dropped: u64,
    pub write_errors: u64,
}

/// The handle request handlers hold. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Ledger {
    tx: mpsc::Sender<UsageRecord>,
    stats: Arc<LedgerStats>,
    drop_log: Arc<DropLog>,
}

impl Ledger {
    /// Spawns the writer task on the current Tokio runtime (panics outside one).
    pub fn start(store: Store, cfg: LedgerConfig) -> (Ledger, LedgerWriter) {
        let cfg = LedgerConfig {
            // Tokio panics on a zero-capacity channel and `recv_many(_, 0)` never receives.
            queue_capacity: cfg.queue_capacity.max(1),
            batch_size: cfg.batch_size.max(1),
            write_attempts: cfg.write_attempts.max(1),
            ..cfg
        };
        let (tx, rx) = mpsc::channel(cfg.queue_capacity);
        let (stop_tx, stop_rx) = oneshot::channel();
        let stats = Arc::new(LedgerStats::default());
        let task =
            tokio::spawn(writer::Writer::new(store, rx, stop_rx, Arc::clone(&stats), cfg).run());
        let ledger = Ledger {
            tx,
            stats: Arc::clone(&stats),
            drop_log: Arc::new(DropLog::new()),
        };
        let writer = LedgerWriter {
            stop: stop_tx,
            task,
            stats,
        };
        (ledger, writer)
    }

    /// Queues `record` for writing. Never blocks and never awaits, so it is safe in `Drop`.
    pub fn record(&self, record: UsageRecord) {
        let reason = match self.tx.try_send(record) {
            Ok(()) => return,
            Err(TrySendError::Full(_)) => "queue full",
            Err(TrySendError::Closed(_)) => "ledger shut down",
        };
        LedgerStats::add(&self.stats.dropped, 1);
        self.drop_log.dropped(reason, self.stats.dropped());
    }

    /// Records accepted but not yet taken by the writer.
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    pub fn stats(&self) -> Arc<LedgerStats> {
        Arc::clone(&self.stats)
    }
}

/// Owns the writer task. Dropping it without [`LedgerWriter::shutdown`] leaves the task
/// running until every [`Ledger`] handle is gone, then it drains and exits unobserved.
#[derive(Debug)]
#[must_use = "call `shutdown` so queued usage records are written before exit"]
pub struct LedgerWriter {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    stats: Arc<LedgerStats>,
}

impl LedgerWriter {
    /// Stops accepting records (later `record` calls count as dropped), writes everything
    /// already queued, and returns the final totals.
    ///
    /// With the database down this takes up to the full retry budget for each remaining batch;
    /// wrap it in a timeout if shutdown must be bounded.
    pub async fn shutdown(self) -> LedgerSnapshot {
        // An error means the task already ended, which the join below reports.
        let _ = self.stop.send(());
        if let Err(err) = self.task.await {
            tracing::error!(error = %err, "usage ledger writer task failed");
        }
        self.stats.snapshot()
    }

    pub fn stats(&self) -> Arc<LedgerStats> {
        Arc::clone(&self.stats)
    }
}

/// Rate-limits the drop warning: under overload `record` may drop thousands of records a
/// second, and one log line each would make the overload worse.
#[derive(Debug)]
struct DropLog {
    epoch: Instant,
    /// Milliseconds after `epoch` before which no warning is logged.
    quiet_until_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl DropLog {
    const INTERVAL_MS: u64 = 1_000;

    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            quiet_until_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    fn dropped(&self, reason: &'static str, total_dropped: u64) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let quiet_until = self.quiet_until_ms.load(Ordering::Relaxed);
        let claimed = now >= quiet_until
            && self
                .quiet_until_ms
                .compare_exchange(
                    quiet_until,
                    now.saturating_add(Self::INTERVAL_MS),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok();
        if claimed {
            let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
            tracing::warn!(
                reason,
                total_dropped,
                suppressed_since_last_warning = suppressed,
                "usage record dropped"
            );
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }
}
