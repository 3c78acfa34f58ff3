//! The audit log writer. Admin actions are written before the admin API answers
//! ([`Audit::write`]); events on the request path (authentication failures, sampled limit and
//! budget rejections) go through a bounded queue to a batch writer ([`Audit::record`]), so no
//! request waits on the database. A full queue drops the entry and counts it.
//!
//! Rejections are sampled: per subject (key, IP) and action, at most one entry per
//! `audit.rejection_sample_secs`, carrying how many were suppressed since the last one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use store::{AuditEntry, Store};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::access::AuditConfig;
use crate::usage::now_ms;

const BATCH: usize = 256;
/// Most sampling windows tracked; beyond it the map is cleared (sampling restarts).
const MAX_SUBJECTS: usize = 100_000;

pub struct Audit {
    tx: mpsc::Sender<AuditEntry>,
    store: Store,
    sample_ms: i64,
    windows: Mutex<HashMap<String, (i64, u64)>>,
    dropped: Counter,
}

/// The background writer; [`AuditWriter::shutdown`] writes what is queued.
pub struct AuditWriter {
    handle: JoinHandle<()>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl AuditWriter {
    /// Write everything queued so far, then stop.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.handle).await;
    }
}

impl Audit {
    pub fn start(store: Store, cfg: &AuditConfig, dropped: Counter) -> (Arc<Audit>, AuditWriter) {
        let (tx, rx) = mpsc::channel(cfg.queue_capacity);
        let audit = Arc::new(Audit {
            tx,
            store: store.clone(),
            sample_ms: i64::try_from(cfg.rejection_sample.as_millis()).unwrap_or(i64::MAX),
            windows: Mutex::new(HashMap::new()),
            dropped: dropped.clone(),
        });
        let (stop, stop_rx) = tokio::sync::oneshot::channel();
        let handle = tokio::spawn(write_loop(rx, stop_rx, store, dropped));
        (audit, AuditWriter { handle, stop })
    }

    /// Queue an entry (never waits).
    pub fn record(&self, mut entry: AuditEntry) {
        if entry.ts_ms == 0 {
            entry.ts_ms = now_ms();
        }
        if self.tx.try_send(entry).is_err() {
            self.dropped.inc();
        }
    }

    /// Queue a rejection unless one for the same subject and action was queued within the
    /// sampling window; the queued entry's detail gains `"suppressed": n`.
    pub fn record_sampled(&self, subject: &str, mut entry: AuditEntry) {
        let now = now_ms();
        let key = format!("{}|{subject}", entry.action);
        let suppressed = {
            let mut w = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
            if w.len() >= MAX_SUBJECTS {
                w.clear();
            }
            let slot = w.entry(key).or_insert((i64::MIN, 0));
            if slot.0 != i64::MIN && now - slot.0 < self.sample_ms {
                slot.1 += 1;
                return;
            }
            let n = slot.1;
            *slot = (now, 0);
            n
        };
        let mut detail: serde_json::Value = entry
            .detail
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or_else(|| serde_json::json!({}));
        detail["suppressed"] = serde_json::json!(suppressed);
        entry.detail = Some(detail.to_string());
        entry.ts_ms = now;
        self.record(entry);
    }

    /// Write an entry now (admin actions: the API answers only once it is stored).
    pub async fn write(&self, mut entry: AuditEntry) -> Result<(), store::StoreError> {
        if entry.ts_ms == 0 {
            entry.ts_ms = now_ms();
        }
        self.store.insert_audit(&[entry]).await
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

async fn write_loop(
    mut rx: mpsc::Receiver<AuditEntry>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    store: Store,
    dropped: Counter,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let stopping = tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => n == 0,
            _ = &mut stop => {
                while let Ok(e) = rx.try_recv() {
                    batch.push(e);
                }
                true
            }
        };
        for chunk in batch.chunks(BATCH) {
            if let Err(e) = store.insert_audit(chunk).await {
                tracing::error!(error = %e, entries = chunk.len(), "could not write audit entries; dropped");
                dropped.inc_by(chunk.len() as u64);
            }
        }
        batch.clear();
        if stopping {
            return;
        }
    }
}

/// An entry with the common fields filled.
pub fn entry(
    actor: impl Into<String>,
    action: &str,
    target: Option<String>,
    outcome: &str,
) -> AuditEntry {
    AuditEntry {
        actor: actor.into(),
        action: action.to_owned(),
        target,
        outcome: outcome.to_owned(),
        ..AuditEntry::default()
    }
}
