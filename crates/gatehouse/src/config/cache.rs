//! The `[cache]` section: the exact response cache (in-process or Redis), its TTLs and the
//! temperature rule, per-model overrides, and the semantic cache (`[cache.semantic]`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use store::Route;

use super::{ConfigError, ModelConfig, invalid};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCache {
    /// Off by default: caching changes what clients get back, so an operator opts in.
    pub enabled: bool,
    /// `memory` (in-process, bounded by `max_bytes`) or `redis` (shared by every instance).
    pub backend: String,
    pub max_bytes: u64,
    /// Largest serialized response that is cached.
    pub max_entry_bytes: usize,
    /// Redis URL; `REDIS_URL` from the environment when unset.
    pub redis_url: Option<String>,
    pub redis_key_prefix: String,
    /// Bound on every Redis call; a slower Redis counts as a miss.
    pub redis_timeout_ms: u64,
    pub ttl_secs: u64,
    /// TTL per API route (`chat`, `messages`), overriding `ttl_secs`.
    pub route_ttl_secs: BTreeMap<String, u64>,
    /// Requests with a temperature at or below this are cached (absent = 1.0, the providers'
    /// default); `x-gatehouse-cache: use` opts any request in.
    pub max_temperature: f64,
    /// One cache for every caller instead of one per API key.
    pub shared: bool,
    /// Per model alias overrides.
    pub models: BTreeMap<String, RawModelCache>,
    pub semantic: RawSemantic,
}

impl Default for RawCache {
    fn default() -> Self {
        RawCache {
            enabled: false,
            backend: "memory".into(),
            max_bytes: 256 * 1024 * 1024,
            max_entry_bytes: 1024 * 1024,
            redis_url: None,
            redis_key_prefix: "gatehouse:cache".into(),
            redis_timeout_ms: 100,
            ttl_secs: 3_600,
            route_ttl_secs: BTreeMap::new(),
            max_temperature: 0.0,
            shared: false,
            models: BTreeMap::new(),
            semantic: RawSemantic::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawModelCache {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    #[serde(default)]
    pub max_temperature: Option<f64>,
    #[serde(default)]
    pub semantic_threshold: Option<f32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSemantic {
    pub enabled: bool,
    /// Model alias (or `<provider>/<model>`) whose `embed` makes the vectors.
    pub embedding_model: String,
    /// Length of the vectors that model returns.
    pub dimensions: usize,
    /// Largest cosine distance that counts as a hit.
    pub threshold: f32,
    /// Bound on the embedding call; a lookup never waits longer.
    pub timeout_ms: u64,
    /// What is embedded: `system_and_last_user` or `last_user`.
    pub prompt: String,
    /// Also for requests with tools or tool results (off: agent traffic goes wrong).
    pub with_tools: bool,
    /// Entries kept (oldest go first).
    pub max_entries: usize,
}

impl Default for RawSemantic {
    fn default() -> Self {
        RawSemantic {
            enabled: false,
            embedding_model: String::new(),
            dimensions: 1_536,
            threshold: 0.12,
            timeout_ms: 300,
            prompt: "system_and_last_user".into(),
            with_tools: false,
            max_entries: 100_000,
        }
    }
}

#[derive(Debug, Clone)]
pub enum CacheBackend {
    Memory {
        max_bytes: u64,
    },
    Redis {
        url: SecretString,
        key_prefix: String,
        timeout: Duration,
    },
}

#[derive(Debug, Clone)]
pub struct CacheConfig {
    pub enabled: bool,
    pub backend: CacheBackend,
    pub max_entry_bytes: usize,
    pub ttl: Duration,
    pub route_ttl: HashMap<Route, Duration>,
    pub max_temperature: f64,
    pub shared: bool,
    pub models: HashMap<String, ModelCache>,
    pub semantic: Option<SemanticConfig>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ModelCache {
    pub enabled: Option<bool>,
    pub ttl: Option<Duration>,
    pub max_temperature: Option<f64>,
    pub semantic_threshold: Option<f32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SemanticPrompt {
    SystemAndLastUser,
    LastUser,
}

#[derive(Debug, Clone)]
pub struct SemanticConfig {
    pub embedding_model: String,
    pub dimensions: usize,
    pub threshold: f32,
    pub timeout: Duration,
    pub prompt: SemanticPrompt,
    pub with_tools: bool,
    pub max_entries: usize,
}

impl CacheConfig {
    /// The overrides of `alias`, if any.
    pub fn model(&self, alias: &str) -> ModelCache {
        self.models.get(alias).copied().unwrap_or_default()
    }
}

fn threshold(field: &str, t: f32) -> Result<f32, ConfigError> {
    if (0.0..=2.0).contains(&t) {
        Ok(t)
    } else {
        Err(invalid(field, "a cosine distance between 0 and 2"))
    }
}

fn temperature(field: &str, t: f64) -> Result<f64, ConfigError> {
    if (0.0..=2.0).contains(&t) {
        Ok(t)
    } else {
        Err(invalid(field, "a temperature between 0 and 2"))
    }
}

pub fn validate(
    raw: &RawCache,
    env: &HashMap<String, String>,
    models: &[ModelConfig],
) -> Result<CacheConfig, ConfigError> {
    let secs = |field: &str, v: u64| -> Result<Duration, ConfigError> {
        if v == 0 {
            Err(invalid(field, "must be greater than zero"))
        } else {
            Ok(Duration::from_secs(v))
        }
    };
    let backend = match raw.backend.as_str() {
        "memory" => CacheBackend::Memory {
            max_bytes: super::positive("cache.max_bytes", raw.max_bytes)?,
        },
        "redis" => {
            let url = raw.redis_url.clone().or_else(|| {
                env.get("REDIS_URL")
                    .filter(|v| !v.trim().is_empty())
                    .cloned()
            });
            let Some(url) = url else {
                return Err(invalid(
                    "cache.redis_url",
                    "the redis backend needs cache.redis_url or REDIS_URL",
                ));
            };
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(invalid(
                    "cache.redis_url",
                    "must start with redis:// or rediss://",
                ));
            }
            CacheBackend::Redis {
                url: SecretString::from(url),
                key_prefix: raw.redis_key_prefix.clone(),
                timeout: Duration::from_millis(super::positive(
                    "cache.redis_timeout_ms",
                    raw.redis_timeout_ms,
                )?),
            }
        }
        other => {
            return Err(invalid(
                "cache.backend",
                format!("`{other}` is not one of memory, redis"),
            ));
        }
    };
    let mut route_ttl = HashMap::new();
    for (name, v) in &raw.route_ttl_secs {
        let field = format!("cache.route_ttl_secs.{name}");
        let route = match name.as_str() {
            "chat" => Route::Chat,
            "messages" => Route::Messages,
            _ => return Err(invalid(field, "routes are chat and messages")),
        };
        route_ttl.insert(route, secs(&field, *v)?);
    }
    let mut per_model = HashMap::new();
    for (alias, m) in &raw.models {
        let field = format!("cache.models.{alias}");
        if !models.iter().any(|x| &x.alias == alias) {
            return Err(invalid(field, "not a declared model alias"));
        }
        per_model.insert(
            alias.clone(),
            ModelCache {
                enabled: m.enabled,
                ttl: m
                    .ttl_secs
                    .map(|v| secs(&format!("{field}.ttl_secs"), v))
                    .transpose()?,
                max_temperature: m
                    .max_temperature
                    .map(|t| temperature(&format!("{field}.max_temperature"), t))
                    .transpose()?,
                semantic_threshold: m
                    .semantic_threshold
                    .map(|t| threshold(&format!("{field}.semantic_threshold"), t))
                    .transpose()?,
            },
        );
    }
    let s = &raw.semantic;
    let semantic = if s.enabled {
        if s.embedding_model.trim().is_empty() {
            return Err(invalid(
                "cache.semantic.embedding_model",
                "name the model alias that makes the embeddings",
            ));
        }
        Some(SemanticConfig {
            embedding_model: s.embedding_model.clone(),
            dimensions: super::positive("cache.semantic.dimensions", s.dimensions)?,
            threshold: threshold("cache.semantic.threshold", s.threshold)?,
            timeout: Duration::from_millis(super::positive(
                "cache.semantic.timeout_ms",
                s.timeout_ms,
            )?),
            prompt: match s.prompt.as_str() {
                "system_and_last_user" => SemanticPrompt::SystemAndLastUser,
                "last_user" => SemanticPrompt::LastUser,
                other => {
                    return Err(invalid(
                        "cache.semantic.prompt",
                        format!("`{other}` is not one of system_and_last_user, last_user"),
                    ));
                }
            },
            with_tools: s.with_tools,
            max_entries: super::positive("cache.semantic.max_entries", s.max_entries)?,
        })
    } else {
        None
    };
    Ok(CacheConfig {
        enabled: raw.enabled,
        backend,
        max_entry_bytes: super::positive("cache.max_entry_bytes", raw.max_entry_bytes)?,
        ttl: secs("cache.ttl_secs", raw.ttl_secs)?,
        route_ttl,
        max_temperature: temperature("cache.max_temperature", raw.max_temperature)?,
        shared: raw.shared,
        models: per_model,
        semantic: semantic.filter(|_| raw.enabled),
    })
}
