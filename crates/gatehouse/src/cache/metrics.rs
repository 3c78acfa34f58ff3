//! Cache metrics: lookups by layer and result (hit rate = hits / (hits + misses)), bytes and
//! entries held, evictions by cause, fail-open errors by component, embedding latency.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LookupLabels {
    /// `exact` or `semantic`.
    pub layer: &'static str,
    /// `hit` or `miss`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LayerLabel {
    pub layer: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EvictionLabels {
    pub layer: &'static str,
    /// `size` (over the bound) or `expired`.
    pub cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComponentLabel {
    /// `redis`, `embedding`, `semantic_store` or `encode`.
    pub component: &'static str,
}

#[derive(Clone)]
pub struct CacheMetrics {
    pub lookups: Family<LookupLabels, Counter>,
    pub writes: Family<LayerLabel, Counter>,
    pub bytes: Family<LayerLabel, Gauge>,
    pub entries: Family<LayerLabel, Gauge>,
    pub evictions: Family<EvictionLabels, Counter>,
    pub errors: Family<ComponentLabel, Counter>,
    pub embedding_seconds: Histogram,
}

impl CacheMetrics {
    pub fn register(registry: &mut Registry) -> CacheMetrics {
        let m = CacheMetrics {
            lookups: Family::default(),
            writes: Family::default(),
            bytes: Family::default(),
            entries: Family::default(),
            evictions: Family::default(),
            errors: Family::default(),
            embedding_seconds: Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
        };
        registry.register(
            "cache_lookups",
            "Response cache lookups by layer (exact, semantic) and result (hit, miss)",
            m.lookups.clone(),
        );
        registry.register(
            "cache_writes",
            "Responses stored in the cache, by layer",
            m.writes.clone(),
        );
        registry.register(
            "cache_bytes",
            "Bytes held by the in-process cache layers (exact: responses, semantic: vectors)",
            m.bytes.clone(),
        );
        registry.register(
            "cache_entries",
            "Entries held by the in-process cache layers",
            m.entries.clone(),
        );
        registry.register(
            "cache_evictions",
            "Cache entries removed by the size bound or on expiry",
            m.evictions.clone(),
        );
        registry.register(
            "cache_errors",
            "Cache failures served as misses (fail open), by component",
            m.errors.clone(),
        );
        registry.register(
            "cache_embedding_duration_seconds",
            "Latency of the semantic cache's embedding calls",
            m.embedding_seconds.clone(),
        );
        m
    }

    pub fn lookup(&self, layer: &'static str, hit: bool) {
        self.lookups
            .get_or_create(&LookupLabels {
                layer,
                result: if hit { "hit" } else { "miss" },
            })
            .inc();
    }

    pub fn error(&self, component: &'static str) {
        self.errors
            .get_or_create(&ComponentLabel { component })
            .inc();
    }

    pub fn evicted(&self, layer: &'static str, cause: &'static str, n: u64) {
        if n > 0 {
            self.evictions
                .get_or_create(&EvictionLabels { layer, cause })
                .inc_by(n);
        }
    }
}
