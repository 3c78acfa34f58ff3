//! The exact cache's backends: in-process (moka, bounded by the serialized size of the entries,
//! each with its own TTL) and Redis. Both store an [`Entry`]; expiry is also checked against the
//! cache clock on every read, so a paused test clock (or a clock skew) never serves a stale one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::notification::RemovalCause;
use moka::sync::Cache;

use super::metrics::CacheMetrics;
use super::redis::RedisStore;
use super::{Entry, PurgeFilter};

/// An entry as the in-process cache holds it: parsed, with its size and lifetime.
pub struct Stored {
    pub entry: Entry,
    pub bytes: u32,
    pub ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<String, Arc<Stored>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Stored>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

pub struct MemoryStore {
    cache: Cache<String, Arc<Stored>>,
    metrics: CacheMetrics,
}

impl MemoryStore {
    pub fn new(max_bytes: u64, metrics: CacheMetrics) -> MemoryStore {
        let listener_metrics = metrics.clone();
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_k: &String, v: &Arc<Stored>| v.bytes)
            .expire_after(PerEntryTtl)
            .eviction_listener(move |_k, _v, cause| match cause {
                RemovalCause::Size => listener_metrics.evicted("exact", "size", 1),
                RemovalCause::Expired => listener_metrics.evicted("exact", "expired", 1),
                RemovalCause::Explicit | RemovalCause::Replaced => {}
            })
            .build();
        MemoryStore { cache, metrics }
    }

    pub fn get(&self, key: &str, now_ms: i64) -> Option<Entry> {
        let stored = self.cache.get(key)?;
        if stored.entry.expires_ms <= now_ms {
            self.cache.invalidate(key);
            self.metrics.evicted("exact", "expired", 1);
            self.refresh_gauges();
            return None;
        }
        Some(stored.entry.clone())
    }

    /// Synchronous (and quick), so a response is in the cache before it reaches the client.
    pub fn put(&self, key: String, stored: Stored) {
        self.cache.insert(key, Arc::new(stored));
        self.refresh_gauges();
    }

    /// Removes the matching entries; returns how many.
    pub fn purge(&self, filter: &PurgeFilter) -> u64 {
        let keys: Vec<Arc<String>> = self
            .cache
            .iter()
            .filter(|(_, v)| filter.matches(&v.entry.tenant, &v.entry.model, &v.entry.assistant))
            .map(|(k, _)| k)
            .collect();
        for k in &keys {
            self.cache.invalidate(k.as_str());
        }
        self.cache.run_pending_tasks();
        self.refresh_gauges();
        keys.len() as u64
    }

    fn refresh_gauges(&self) {
        let layer = super::metrics::LayerLabel { layer: "exact" };
        self.metrics
            .bytes
            .get_or_create(&layer)
            .set(i64::try_from(self.cache.weighted_size()).unwrap_or(i64::MAX));
        self.metrics
            .entries
            .get_or_create(&layer)
            .set(i64::try_from(self.cache.entry_count()).unwrap_or(i64::MAX));
    }

    /// Applies pending evictions now (tests and metrics; moka otherwise does it lazily).
    pub fn settle(&self) {
        self.cache.run_pending_tasks();
        self.refresh_gauges();
    }
}

pub enum ExactStore {
    Memory(MemoryStore),
    Redis(RedisStore),
}

impl ExactStore {
    /// A hit, or `None` on a miss or any failure (fail open; failures are counted and logged
    /// by the backend).
    pub async fn get(&self, key: &Key, now_ms: i64) -> Option<Entry> {
        match self {
            ExactStore::Memory(m) => m.get(&key.hash, now_ms),
            ExactStore::Redis(r) => r.get(&r.key_name(key)).await,
        }
    }

    pub async fn purge(&self, filter: &PurgeFilter) -> Result<u64, String> {
        match self {
            ExactStore::Memory(m) => Ok(m.purge(filter)),
            ExactStore::Redis(r) => r.purge(filter).await,
        }
    }
}

/// The exact key of a request and the scope values stored with it.
#[derive(Debug, Clone)]
pub struct Key {
    pub hash: String,
    pub tenant: String,
    pub model: String,
    pub assistant: String,
}
