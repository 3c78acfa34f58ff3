//! The semantic cache: the scoped prompt is embedded with the configured embedding model and
//! the nearest stored neighbour of the same partition (tenant, model, assistant version, system
//! prompt, earlier turns and parameters) is a hit when its cosine distance is within the
//! threshold.
//!
//! On SQLite the vectors live in a table and, for searching, in an in-memory index (a brute
//! force scan of one partition, which holds the paraphrases of one conversation state) loaded
//! at startup. On PostgreSQL pgvector searches with its HNSW index. Everything here fails open:
//! a slow or failing embedding call or store is a miss, counted in `cache_errors`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use providers::{EmbeddingInput, EmbeddingVector, EmbeddingsRequest, EncodingFormat};
use store::{NewSemanticEntry, SemanticFilter, SemanticRow, Store};
use tokio::time::Instant;

use super::metrics::{CacheMetrics, LayerLabel};
use super::{Entry, PurgeFilter};
use crate::config::cache::SemanticConfig;
use crate::resilience::ModelGroup;
use crate::routing::ModelRouter;

/// PostgreSQL: expired and surplus rows are trimmed after this many inserts.
const TRIM_EVERY: u64 = 256;

struct Indexed {
    id: i64,
    vector: Box<[f32]>,
    norm: f32,
    expires_ms: i64,
    tenant: String,
    model: String,
    assistant: String,
}

#[derive(Default)]
struct Index {
    parts: HashMap<String, Vec<Indexed>>,
    /// id → partition, oldest first, for the size bound.
    by_id: BTreeMap<i64, String>,
}

impl Index {
    fn add(&mut self, partition: String, e: Indexed) {
        self.by_id.insert(e.id, partition.clone());
        self.parts.entry(partition).or_default().push(e);
    }

    fn remove(&mut self, id: i64) {
        if let Some(p) = self.by_id.remove(&id)
            && let Some(v) = self.parts.get_mut(&p)
        {
            v.retain(|e| e.id != id);
            if v.is_empty() {
                self.parts.remove(&p);
            }
        }
    }
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

/// Cosine distance (1 − cosine similarity); 1 when either vector is zero.
pub fn cosine_distance(a: &[f32], a_norm: f32, b: &[f32], b_norm: f32) -> f64 {
    if a_norm == 0.0 || b_norm == 0.0 {
        return 1.0;
    }
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    1.0 - dot / (f64::from(a_norm) * f64::from(b_norm))
}

pub struct SemanticCache {
    pub cfg: SemanticConfig,
    embedder: Arc<ModelGroup>,
    store: Store,
    /// SQLite only.
    index: Option<RwLock<Index>>,
    metrics: CacheMetrics,
    inserts: AtomicU64,
}

impl SemanticCache {
    pub async fn build(
        cfg: SemanticConfig,
        router: &ModelRouter,
        store: Store,
        metrics: CacheMetrics,
        now_ms: i64,
    ) -> Result<SemanticCache, String> {
        let embedder = router.resolve(&cfg.embedding_model).map_err(|e| {
            format!(
                "cache.semantic.embedding_model: `{}`: {}",
                cfg.embedding_model, e.message
            )
        })?;
        store.semantic_prepare(cfg.dimensions).await.map_err(|e| {
            if store.backend() == "postgres" {
                format!(
                    "the semantic cache on PostgreSQL needs the pgvector extension \
                     (CREATE EXTENSION vector), which could not be set up: {e}"
                )
            } else {
                format!("could not create the semantic cache table: {e}")
            }
        })?;
        let index = if store.backend() == "sqlite" {
            let rows = store
                .semantic_load(cfg.dimensions, now_ms)
                .await
                .map_err(|e| format!("could not load the semantic cache: {e}"))?;
            let mut index = Index::default();
            let n = rows.len();
            for r in rows {
                let SemanticRow {
                    id,
                    partition,
                    tenant,
                    model,
                    assistant,
                    embedding,
                    expires_ms,
                } = r;
                index.add(
                    partition,
                    Indexed {
                        id,
                        norm: norm(&embedding),
                        vector: embedding.into_boxed_slice(),
                        expires_ms,
                        tenant,
                        model,
                        assistant,
                    },
                );
            }
            tracing::info!(entries = n, "semantic cache index loaded");
            Some(RwLock::new(index))
        } else {
            None
        };
        let cache = SemanticCache {
            cfg,
            embedder,
            store,
            index,
            metrics,
            inserts: AtomicU64::new(0),
        };
        cache.refresh_gauges();
        Ok(cache)
    }

    /// The embedding of `text`, within the configured timeout; `None` on any failure.
    pub async fn embed(&self, text: &str) -> Option<Vec<f32>> {
        let dep = self
            .embedder
            .pick(&[], &mut fastrand::Rng::new())
            .map(|i| Arc::clone(&self.embedder.deployments[i]))?;
        let req = EmbeddingsRequest {
            model: dep.target.upstream_model.clone(),
            input: EmbeddingInput::One(text.to_owned()),
            encoding_format: Some(EncodingFormat::Float),
            dimensions: None,
            user: None,
        };
        let started = Instant::now();
        let result = tokio::time::timeout(self.cfg.timeout, dep.target.provider.embed(&req)).await;
        self.metrics
            .embedding_seconds
            .observe(started.elapsed().as_secs_f64());
        let resp = match result {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return self.failed("embedding", &e.message),
            Err(_) => return self.failed("embedding", "timed out"),
        };
        let vector = match resp.data.into_iter().next().map(|d| d.embedding) {
            Some(EmbeddingVector::Float(v)) => v,
            Some(EmbeddingVector::Base64(b)) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .unwrap_or_default()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            None => return self.failed("embedding", "no vector in the answer"),
        };
        if vector.len() != self.cfg.dimensions {
            return self.failed(
                "embedding",
                &format!(
                    "got {} dimensions, cache.semantic.dimensions is {}",
                    vector.len(),
                    self.cfg.dimensions
                ),
            );
        }
        Some(vector)
    }

    fn failed<T>(&self, component: &'static str, error: &str) -> Option<T> {
        self.metrics.error(component);
        tracing::warn!(component, error, "semantic cache failed; treated as a miss");
        None
    }

    /// The nearest unexpired entry of `partition` within `threshold`, waiting at most `budget`.
    pub async fn nearest(
        &self,
        partition: &str,
        vector: &[f32],
        threshold: f32,
        now_ms: i64,
        budget: Duration,
    ) -> Option<(Entry, f64)> {
        let dims = self.cfg.dimensions;
        let found = if let Some(index) = &self.index {
            let best = {
                let index = index
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let q_norm = norm(vector);
                index.parts.get(partition).and_then(|entries| {
                    entries
                        .iter()
                        .filter(|e| e.expires_ms > now_ms)
                        .map(|e| (e.id, cosine_distance(vector, q_norm, &e.vector, e.norm)))
                        .min_by(|a, b| a.1.total_cmp(&b.1))
                })
            };
            let (id, distance) = best.filter(|(_, d)| *d <= f64::from(threshold))?;
            match tokio::time::timeout(budget, self.store.semantic_entry(dims, id)).await {
                Ok(Ok(Some(json))) => Some((json, distance)),
                Ok(Ok(None)) => None,
                Ok(Err(e)) => return self.failed("semantic_store", &e.to_string()),
                Err(_) => return self.failed("semantic_store", "timed out"),
            }
        } else {
            let search = self.store.semantic_nearest(dims, partition, vector, now_ms);
            match tokio::time::timeout(budget, search).await {
                Ok(Ok(Some((_, d, json)))) if d <= f64::from(threshold) => Some((json, d)),
                Ok(Ok(_)) => None,
                Ok(Err(e)) => return self.failed("semantic_store", &e.to_string()),
                Err(_) => return self.failed("semantic_store", "timed out"),
            }
        };
        let (json, distance) = found?;
        match serde_json::from_str::<Entry>(&json) {
            Ok(e) => Some((e, distance)),
            Err(e) => self.failed("semantic_store", &e.to_string()),
        }
    }

    /// Stores an entry (called off the request path).
    pub async fn insert(
        &self,
        partition: &str,
        vector: Vec<f32>,
        entry: &Entry,
        json: &str,
        now_ms: i64,
    ) {
        let dims = self.cfg.dimensions;
        let row = NewSemanticEntry {
            partition,
            tenant: &entry.tenant,
            model: &entry.model,
            assistant: &entry.assistant,
            embedding: &vector,
            entry: json,
            created_ms: now_ms,
            expires_ms: entry.expires_ms,
        };
        let id = match self.store.semantic_insert(dims, row).await {
            Ok(id) => id,
            Err(e) => {
                let _: Option<()> = self.failed("semantic_store", &e.to_string());
                return;
            }
        };
        self.metrics
            .writes
            .get_or_create(&LayerLabel { layer: "semantic" })
            .inc();
        let Some(index) = &self.index else {
            if self.inserts.fetch_add(1, Ordering::Relaxed) % TRIM_EVERY == TRIM_EVERY - 1 {
                match self
                    .store
                    .semantic_trim(dims, now_ms, self.cfg.max_entries)
                    .await
                {
                    Ok(n) => self.metrics.evicted("semantic", "size", n),
                    Err(e) => {
                        let _: Option<()> = self.failed("semantic_store", &e.to_string());
                    }
                }
            }
            return;
        };
        let gone: Vec<i64> = {
            let mut index = index
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let expired: Vec<i64> = index
                .parts
                .get(partition)
                .map(|v| {
                    v.iter()
                        .filter(|e| e.expires_ms <= now_ms)
                        .map(|e| e.id)
                        .collect()
                })
                .unwrap_or_default();
            for id in &expired {
                index.remove(*id);
            }
            self.metrics
                .evicted("semantic", "expired", expired.len() as u64);
            index.add(
                partition.to_owned(),
                Indexed {
                    id,
                    norm: norm(&vector),
                    vector: vector.into_boxed_slice(),
                    expires_ms: entry.expires_ms,
                    tenant: entry.tenant.clone(),
                    model: entry.model.clone(),
                    assistant: entry.assistant.clone(),
                },
            );
            let mut over = Vec::new();
            while index.by_id.len() > self.cfg.max_entries {
                let Some((&oldest, _)) = index.by_id.iter().next() else {
                    break;
                };
                index.remove(oldest);
                over.push(oldest);
            }
            self.metrics.evicted("semantic", "size", over.len() as u64);
            expired.into_iter().chain(over).collect()
        };
        self.refresh_gauges();
        if let Err(e) = self.store.semantic_delete(dims, &gone).await {
            let _: Option<()> = self.failed("semantic_store", &e.to_string());
        }
    }

    pub async fn purge(&self, filter: &PurgeFilter) -> Result<u64, String> {
        let f = SemanticFilter {
            tenant: filter.tenant.as_deref(),
            model: filter.model.as_deref(),
            assistant: filter.assistant.as_deref(),
        };
        let n = self
            .store
            .semantic_purge(self.cfg.dimensions, f)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(index) = &self.index {
            let mut index = index
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let ids: Vec<i64> = index
                .parts
                .values()
                .flatten()
                .filter(|e| filter.matches(&e.tenant, &e.model, &e.assistant))
                .map(|e| e.id)
                .collect();
            for id in ids {
                index.remove(id);
            }
        }
        self.refresh_gauges();
        Ok(n)
    }

    fn refresh_gauges(&self) {
        let Some(index) = &self.index else {
            return;
        };
        let (entries, bytes) = {
            let index = index
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = index.by_id.len();
            (n, n * self.cfg.dimensions * 4)
        };
        let layer = LayerLabel { layer: "semantic" };
        self.metrics
            .entries
            .get_or_create(&layer)
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
        self.metrics
            .bytes
            .get_or_create(&layer)
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_distances_are_exact_for_known_vectors() {
        let d = |a: &[f32], b: &[f32]| cosine_distance(a, norm(a), b, norm(b));
        assert!((d(&[1.0, 0.0], &[1.0, 0.0]) - 0.0).abs() < 1e-12);
        assert!((d(&[1.0, 0.0], &[0.0, 1.0]) - 1.0).abs() < 1e-12);
        assert!((d(&[1.0, 0.0], &[-1.0, 0.0]) - 2.0).abs() < 1e-12);
        // Length does not matter, only direction.
        assert!((d(&[3.0, 4.0], &[6.0, 8.0])).abs() < 1e-7);
        // Bad input: a zero vector is as far as an orthogonal one.
        assert!((d(&[0.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn index_removes_and_bounds() {
        let mut i = Index::default();
        for id in 1..=3 {
            i.add(
                format!("p{}", id % 2),
                Indexed {
                    id,
                    vector: vec![1.0].into_boxed_slice(),
                    norm: 1.0,
                    expires_ms: 0,
                    tenant: String::new(),
                    model: String::new(),
                    assistant: String::new(),
                },
            );
        }
        assert_eq!(i.parts["p1"].len(), 2);
        i.remove(1);
        assert_eq!(i.parts["p1"].len(), 1);
        i.remove(2);
        assert!(!i.parts.contains_key("p0"));
        assert_eq!(i.by_id.keys().copied().collect::<Vec<_>>(), vec![3]);
    }
}
