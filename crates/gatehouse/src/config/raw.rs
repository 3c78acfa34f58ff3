//! The configuration file as written: serde structs with `deny_unknown_fields`, every field
//! optional or defaulted. [`super::Config`] is what the rest of the program sees.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub server: RawServer,
    pub database: RawDatabase,
    pub ledger: RawLedger,
    pub validation: RawValidation,
    pub log: RawLog,
    pub routing: RawRouting,
    pub providers: BTreeMap<String, RawProvider>,
    pub models: Vec<RawModel>,
    pub resilience: super::resilience::RawResilience,
    pub web: super::web::RawWeb,
    pub keys: super::access::RawKeys,
    pub limits: super::access::RawLimits,
    pub concurrency: super::access::RawConcurrency,
    pub budgets: super::access::RawBudgets,
    pub redis: super::access::RawRedis,
    pub security: super::access::RawSecurity,
    pub audit: super::access::RawAudit,
    pub assistants: super::assistants::RawAssistants,
    pub cache: super::cache::RawCache,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub listen: String,
    pub max_body_bytes: usize,
    /// Largest audio file of `POST /v1/audio/transcriptions` (that route's body limit).
    pub max_audio_bytes: usize,
    pub shutdown_grace_secs: u64,
    pub sse_keepalive_secs: u64,
    /// Serving threads; absent: one per core; 0: serve on the runtime that started the server.
    pub threads: Option<usize>,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 4 * 1024 * 1024,
            max_audio_bytes: 25 * 1024 * 1024,
            shutdown_grace_secs: 30,
            sse_keepalive_secs: 15,
            threads: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDatabase {
    pub url: String,
}

impl Default for RawDatabase {
    fn default() -> Self {
        RawDatabase {
            url: "sqlite://gatehouse-data/gatehouse.db".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLedger {
    pub queue_capacity: usize,
    pub batch_size: usize,
    pub flush_interval_ms: u64,
}

impl Default for RawLedger {
    fn default() -> Self {
        RawLedger {
            queue_capacity: 65_536,
            batch_size: 512,
            flush_interval_ms: 200,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawValidation {
    pub max_messages: usize,
    pub max_message_chars: usize,
    pub max_response_chars: usize,
    /// Largest `data:` image in a chat request, in decoded bytes.
    pub max_image_bytes: usize,
}

impl Default for RawValidation {
    fn default() -> Self {
        RawValidation {
            max_messages: 1_000,
            max_message_chars: 400_000,
            max_response_chars: 400_000,
            max_image_bytes: 3 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    /// `auto` (pretty on a terminal, JSON otherwise), `json` or `pretty`.
    pub format: String,
    /// A `RUST_LOG`-style filter; `RUST_LOG` wins when set.
    pub filter: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            format: "auto".into(),
            filter: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRouting {
    /// Provider that serves model names not declared in `[[models]]` (`LLM_PROVIDER`).
    pub default_provider: Option<String>,
    /// Model used when a request says `"model": "default"` (`LLM_DEFAULT_MODEL`).
    pub default_model: Option<String>,
    /// Rules for `tier:auto`: a task label (request `metadata.task`) → the lowest tier allowed.
    pub rules: Vec<RawTierRule>,
    /// Daily spend cap per tier in dollars, e.g. `{ "3" = "50.00" }`.
    pub tier_daily_cap_usd: BTreeMap<String, Price>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTierRule {
    pub task: String,
    pub min_tier: u8,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub kind: String,
    #[serde(default)]
    pub base_url: Option<String>,
    /// Name of the environment variable holding the API key; keys are never written inline.
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Serve model names that are not declared in `[[models]]` (as `<provider>/<model>`, or any
    /// name when this is the default provider).
    #[serde(default)]
    pub passthrough: Option<bool>,
    #[serde(default)]
    pub latency_ms: Option<u64>,
    #[serde(default)]
    pub chunk_delay_ms: Option<u64>,
    #[serde(default)]
    pub error_rate: Option<f64>,
    #[serde(default)]
    pub error_status: Option<u16>,
    /// TCP connect timeout to this provider's host.
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub alias: String,
    pub provider: String,
    #[serde(default)]
    pub upstream_model: Option<String>,
    /// Prices in US dollars per million tokens, as decimal strings or numbers ("2.50").
    #[serde(default)]
    pub input_usd_per_mtok: Option<Price>,
    #[serde(default)]
    pub output_usd_per_mtok: Option<Price>,
    #[serde(default)]
    pub cached_input_usd_per_mtok: Option<Price>,
    /// Price of prompt tokens written to the provider's cache (Anthropic's cache writes).
    #[serde(default)]
    pub cache_write_usd_per_mtok: Option<Price>,
    #[serde(default)]
    pub context_window: Option<u32>,
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    /// Share of traffic when several entries have the same alias (load balancing).
    #[serde(default)]
    pub weight: Option<u32>,
    /// Cost tier, 0 (cheapest) to 3, for `tier:auto` and `tier:N` requests.
    #[serde(default)]
    pub tier: Option<u8>,
    /// Aliases to try, in order, when this one fails for a cause in `fallback_on`.
    #[serde(default)]
    pub fallbacks: Option<Vec<String>>,
    /// Causes that trigger a fallback: exhausted_retries, circuit_open, timeout,
    /// context_length, content_filter.
    #[serde(default)]
    pub fallback_on: Option<Vec<String>>,
    /// A larger-context alias to use when the prompt does not fit.
    #[serde(default)]
    pub context_fallback: Option<String>,
    /// Continue a stream on the next deployment if the upstream dies mid-way.
    #[serde(default)]
    pub mid_stream_failover: Option<bool>,
    #[serde(default)]
    pub first_byte_timeout_ms: Option<u64>,
    #[serde(default)]
    pub idle_timeout_ms: Option<u64>,
    #[serde(default)]
    pub total_timeout_ms: Option<u64>,
    /// What the model can do (`vision`, `tools`, `json`, `streaming`, `embeddings`); defaults
    /// to everything its provider kind offers.
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
}

/// A price as written: a decimal string or a TOML number. Parsed to integer micro-dollars
/// without passing through floating point arithmetic.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Price {
    Text(String),
    Int(i64),
    Float(f64),
}
