//! The response cache: exact (in-process or Redis), then semantic (SQLite or pgvector), in
//! front of the provider call. [`lookup`] runs before the resilient call loop and either serves
//! a cached answer (JSON, or replayed as an SSE stream) or hands back a [`Pending`] write that
//! the pipeline completes once a response was delivered whole.
//!
//! Entries are scoped by tenant (API key, or everyone in open mode, or one shared scope when
//! configured), resolved model and assistant version. Cache failures fail open: a miss, logged
//! and counted, never an error for the client.

pub mod admin;
pub mod context;
pub mod exact;
pub mod key;
pub mod metrics;
pub mod redis;
mod relayed;
pub mod semantic;

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream;
use providers::{ChatRequest, ChatResponse, FinishReason};
use serde::{Deserialize, Serialize};
use store::{CacheStatus, Route, Store, UsageRecord};
use tokio_util::task::TaskTracker;

pub use self::context::{CacheContext, Directive, Tenant};
use self::exact::{ExactStore, Key, MemoryStore, Stored};
use self::key::Scope;
use self::metrics::CacheMetrics;
use self::semantic::SemanticCache;
use crate::app::AppState;
use crate::chat::Outcome;
use crate::chat::stream::Frame;
use crate::config::Config;
use crate::config::cache::{CacheBackend, CacheConfig};
use crate::error::{ApiError, ErrorCode};
use crate::routing::ModelRouter;
use crate::usage::UsageGuard;

/// A cached response and what it is for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// Stored as the upstream's JSON when it came as such (see [`relayed`]).
    #[serde(with = "relayed")]
    pub response: ChatResponse,
    /// What the original call cost at the provider (micro-USD): a hit saves this much.
    pub cost_micros: i64,
    /// Unix ms on the cache clock.
    pub expires_ms: i64,
    pub tenant: String,
    pub model: String,
    pub assistant: String,
}

/// Which entries a purge removes; `None` fields match anything.
#[derive(Debug, Clone, Default)]
pub struct PurgeFilter {
    pub tenant: Option<String>,
    pub model: Option<String>,
    pub assistant: Option<String>,
}

impl PurgeFilter {
    pub fn matches(&self, tenant: &str, model: &str, assistant: &str) -> bool {
        self.tenant.as_deref().is_none_or(|t| t == tenant)
            && self.model.as_deref().is_none_or(|m| m == model)
            && self.assistant.as_deref().is_none_or(|a| a == assistant)
    }
}

/// Wall-clock milliseconds that advance with tokio's clock, so TTLs follow a paused test clock.
struct Clock {
    wall_ms: i64,
    start: tokio::time::Instant,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            wall_ms: crate::usage::now_ms(),
            start: tokio::time::Instant::now(),
        }
    }

    fn now_ms(&self) -> i64 {
        self.wall_ms + i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX)
    }
}

struct Inner {
    cfg: CacheConfig,
    exact: ExactStore,
    semantic: Option<SemanticCache>,
    /// Writes that went off the request path (Redis, semantic), awaited on shutdown.
    writes: TaskTracker,
    metrics: CacheMetrics,
    clock: Clock,
}

/// The cache of one instance; a no-op when `[cache] enabled` is false.
#[derive(Clone, Default)]
pub struct ResponseCache {
    inner: Option<Arc<Inner>>,
}

/// How many entries a purge removed, per layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Purged {
    pub exact: u64,
    pub semantic: u64,
}

impl ResponseCache {
    pub async fn build(
        config: &Config,
        router: &ModelRouter,
        store: &Store,
        metrics: &CacheMetrics,
    ) -> Result<ResponseCache, String> {
        let cfg = config.cache.clone();
        if !cfg.enabled {
            return Ok(ResponseCache::default());
        }
        let exact = match &cfg.backend {
            CacheBackend::Memory { max_bytes } => {
                ExactStore::Memory(MemoryStore::new(*max_bytes, metrics.clone()))
            }
            CacheBackend::Redis {
                url,
                key_prefix,
                timeout,
            } => ExactStore::Redis(
                redis::RedisStore::connect(url, key_prefix.clone(), *timeout, metrics.clone())
                    .await?,
            ),
        };
        let clock = Clock::new();
        let semantic = match cfg.semantic.clone() {
            Some(s) => Some(
                SemanticCache::build(s, router, store.clone(), metrics.clone(), clock.now_ms())
                    .await?,
            ),
            None => None,
        };
        Ok(ResponseCache {
            inner: Some(Arc::new(Inner {
                cfg,
                exact,
                semantic,
                writes: TaskTracker::new(),
                metrics: metrics.clone(),
                clock,
            })),
        })
    }

    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Waits for the writes in flight (graceful shutdown, and tests before they read back).
    pub async fn drain(&self) {
        if let Some(inner) = &self.inner {
            inner.writes.close();
            inner.writes.wait().await;
            inner.writes.reopen();
            if let ExactStore::Memory(m) = &inner.exact {
                m.settle();
            }
        }
    }

    pub async fn purge(&self, filter: &PurgeFilter) -> Result<Purged, String> {
        let Some(inner) = &self.inner else {
            return Ok(Purged::default());
        };
        self.drain().await;
        let exact = inner.exact.purge(filter).await?;
        let semantic = match &inner.semantic {
            Some(s) => s.purge(filter).await?,
            None => 0,
        };
        tracing::info!(?filter, exact, semantic, "cache purged");
        Ok(Purged { exact, semantic })
    }
}

/// What [`lookup`] found.
pub enum Lookup {
    Hit(Outcome),
    /// Call the provider; store the answer through the `Pending` (if the cache applies).
    Miss(Option<Pending>),
}

/// The semantic half of a pending write.
struct SemanticPending {
    partition: String,
    text: String,
    vector: Option<Vec<f32>>,
}

/// A cache write waiting for the response.
pub struct Pending {
    inner: Arc<Inner>,
    key: Key,
    ttl: Duration,
    semantic: Option<SemanticPending>,
}

/// Look the request up: exact first, then semantic. On a hit the guard is settled (zero
/// provider cost, `cost_saved_micros`, no attempts) and the answer returned; `only` turns a miss
/// into a 404 `cache_miss`.
pub async fn lookup(
    state: &Arc<AppState>,
    ctx: &CacheContext,
    req: &ChatRequest,
    model: &str,
    route: Route,
    guard: &mut UsageGuard,
) -> Result<Lookup, ApiError> {
    let Some(inner) = &state.cache.inner else {
        return Ok(Lookup::Miss(None));
    };
    let cfg = &inner.cfg;
    let per_model = cfg.model(model);
    if per_model.enabled == Some(false) {
        return Ok(Lookup::Miss(None));
    }
    let max_temperature = per_model.max_temperature.unwrap_or(cfg.max_temperature);
    let eligible = match ctx.directive {
        Directive::Auto => req.temperature.unwrap_or(1.0) <= max_temperature,
        Directive::Skip => false,
        Directive::Use | Directive::Refresh | Directive::Only => true,
    };
    if !eligible {
        ctx.report(CacheStatus::Skip);
        guard.set_cache(CacheStatus::Skip, 0);
        return Ok(Lookup::Miss(None));
    }
    let scope = Scope {
        tenant: ctx.tenant.scope(cfg.shared),
        model: model.to_owned(),
        assistant: ctx.assistant.clone().unwrap_or_default(),
        version: ctx.version.clone().unwrap_or_default(),
    };
    let key = Key {
        hash: key::exact_key(&scope, req),
        tenant: scope.tenant.clone(),
        model: scope.model.clone(),
        assistant: scope.assistant.clone(),
    };
    let ttl = ctx
        .ttl
        .or(per_model.ttl)
        .or_else(|| cfg.route_ttl.get(&route).copied())
        .unwrap_or(cfg.ttl);
    let mut semantic = inner
        .semantic
        .as_ref()
        .filter(|s| s.cfg.with_tools || !key::uses_tools(req))
        .and_then(|s| key::semantic_parts(&scope, req, s.cfg.prompt))
        .map(|(partition, text)| SemanticPending {
            partition,
            text,
            vector: None,
        });
    if ctx.directive != Directive::Refresh {
        let now = inner.clock.now_ms();
        let found = inner.exact.get(&key, now).await;
        inner.metrics.lookup("exact", found.is_some());
        if let Some(entry) = found {
            return Ok(Lookup::Hit(serve(entry, CacheStatus::Hit, req, ctx, guard)));
        }
        if let (Some(sem), Some(sp)) = (&inner.semantic, semantic.as_mut()) {
            let started = tokio::time::Instant::now();
            let found = match sem.embed(&sp.text).await {
                Some(v) => {
                    let threshold = ctx
                        .semantic_threshold
                        .or(per_model.semantic_threshold)
                        .unwrap_or(sem.cfg.threshold);
                    let budget = sem.cfg.timeout.saturating_sub(started.elapsed());
                    let found = sem.nearest(&sp.partition, &v, threshold, now, budget).await;
                    sp.vector = Some(v);
                    found
                }
                None => None,
            };
            inner.metrics.lookup("semantic", found.is_some());
            if let Some((entry, distance)) = found {
                tracing::debug!(distance, "semantic cache hit");
                return Ok(Lookup::Hit(serve(
                    entry,
                    CacheStatus::SemanticHit,
                    req,
                    ctx,
                    guard,
                )));
            }
        }
    }
    ctx.report(CacheStatus::Miss);
    guard.set_cache(CacheStatus::Miss, 0);
    if ctx.directive == Directive::Only {
        return Err(ApiError::new(
            ErrorCode::CacheMiss,
            "No cached response for this request (x-gatehouse-cache: only)",
        ));
    }
    Ok(Lookup::Miss(Some(Pending {
        inner: Arc::clone(inner),
        key,
        ttl,
        semantic,
    })))
}

/// Answer from an entry: a fresh id and timestamp, the original content and usage.
fn serve(
    entry: Entry,
    status: CacheStatus,
    req: &ChatRequest,
    ctx: &CacheContext,
    guard: &mut UsageGuard,
) -> Outcome {
    ctx.report(status);
    guard.set_cache(status, entry.cost_micros);
    guard.set_attempts(0);
    let mut resp = entry.response;
    resp.id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    resp.created = providers::unix_now();
    if req.is_stream() {
        guard.set_flag(UsageRecord::FLAG_STREAMED);
        guard.first_token();
        guard.succeed();
        let mut frames: Vec<Frame> = resp.into_chunks().into_iter().map(Frame::Chunk).collect();
        frames.push(Frame::Done);
        Outcome::Stream(Box::pin(stream::iter([frames])))
    } else {
        guard.succeed();
        // The upstream's JSON with the new id and time.
        resp.raw = resp
            .raw
            .take()
            .and_then(|raw| relayed::with_identity(&raw, &resp.id, resp.created))
            .map(bytes::Bytes::from);
        Outcome::Complete(Box::new(resp))
    }
}

/// Answers worth replaying: every choice finished normally (no content filter, no cut-off
/// stream).
fn cacheable(resp: &ChatResponse) -> bool {
    !resp.choices.is_empty()
        && resp.choices.iter().all(|c| {
            matches!(
                c.finish_reason,
                Some(FinishReason::Stop | FinishReason::Length | FinishReason::ToolCalls)
            )
        })
}

impl Pending {
    /// Store a response that reached the client whole. The in-process write happens now; Redis
    /// and semantic writes run off the request path.
    pub fn store(self, resp: &ChatResponse, cost_micros: i64) {
        if !cacheable(resp) {
            return;
        }
        let Pending {
            inner,
            key,
            ttl,
            semantic,
        } = self;
        let now = inner.clock.now_ms();
        let entry = Entry {
            response: resp.clone(),
            cost_micros,
            expires_ms: now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)),
            tenant: key.tenant.clone(),
            model: key.model.clone(),
            assistant: key.assistant.clone(),
        };
        let json = match serde_json::to_vec(&entry) {
            Ok(j) => j,
            Err(e) => {
                inner.metrics.error("encode");
                tracing::warn!(error = %e, "cache: could not encode a response");
                return;
            }
        };
        if json.len() > inner.cfg.max_entry_bytes {
            return;
        }
        let exact_layer = metrics::LayerLabel { layer: "exact" };
        match &inner.exact {
            ExactStore::Memory(m) => {
                m.put(
                    key.hash.clone(),
                    Stored {
                        bytes: u32::try_from(json.len()).unwrap_or(u32::MAX),
                        entry: entry.clone(),
                        ttl,
                    },
                );
                inner.metrics.writes.get_or_create(&exact_layer).inc();
            }
            ExactStore::Redis(_) => {
                let task = Arc::clone(&inner);
                let json = json.clone();
                let key = key.clone();
                inner.writes.spawn(async move {
                    if let ExactStore::Redis(r) = &task.exact
                        && r.put(&r.key_name(&key), &json, ttl).await
                    {
                        task.metrics.writes.get_or_create(&exact_layer).inc();
                    }
                });
            }
        }
        if let Some(sp) = semantic {
            let task = Arc::clone(&inner);
            inner.writes.spawn(async move {
                let Some(sem) = &task.semantic else { return };
                let vector = match sp.vector {
                    Some(v) => Some(v),
                    None => sem.embed(&sp.text).await,
                };
                if let (Some(v), Ok(text)) = (vector, String::from_utf8(json)) {
                    sem.insert(&sp.partition, v, &entry, &text, now).await;
                }
            });
        }
    }
}
