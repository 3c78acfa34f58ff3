//! Configuration in two stages: [`raw`] mirrors the TOML file; [`Config`] is validated, with
//! defaults applied, secrets resolved from the environment and prices in integer micro-dollars.
//!
//! Sources, later ones winning: built-in defaults, the TOML file (`--config` or
//! `GATEHOUSE_CONFIG`), `GATEHOUSE_<SECTION>__<FIELD>` variables, then the well-known variables
//! (`DATABASE_URL`, `LLM_PROVIDER`, `LLM_DEFAULT_MODEL`, and each provider's key and base URL
//! variables, which switch that provider on).

pub mod access;
pub mod assistants;
pub mod cache;
mod catalog;
pub mod raw;
pub mod resilience;
mod resolved;
pub mod web;

pub use self::catalog::parse_price;
use self::catalog::{builtin_mock, builtin_mock_model, validate_model, validate_provider};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use providers::{Capabilities, ProviderKind};
use secrecy::SecretString;

use self::raw::{RawConfig, RawProvider};

/// Anything that stops Gatehouse from starting, with a message that says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    Missing(PathBuf),
    #[error("{0}")]
    Parse(Box<figment::Error>),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub source: Option<PathBuf>,
    pub server: ServerConfig,
    pub database_url: SecretString,
    pub ledger: store::LedgerConfig,
    pub validation: ValidationConfig,
    pub log: LogConfig,
    pub providers: Vec<ProviderConfig>,
    pub models: Vec<ModelConfig>,
    pub default_provider: String,
    pub default_model: String,
    /// The admin credential (`GATEHOUSE_ADMIN_KEY`); the admin API is off without it.
    pub admin_key: Option<SecretString>,
    pub resilience: resilience::ResilienceConfig,
    /// `tier:auto` rules: task label → lowest tier allowed.
    pub tier_rules: Vec<(String, u8)>,
    /// Daily spend cap per tier (index = tier), micro-USD.
    pub tier_daily_caps: [Option<i64>; 4],
    /// The web chat and admin console.
    pub web: web::WebConfig,
    /// Keys, rate limits, concurrency, budgets, Redis, security headers and audit.
    pub access: access::AccessConfig,
    pub assistants: assistants::AssistantsConfig,
    pub cache: cache::CacheConfig,
}

/// Most serving threads `server.threads` may ask for.
pub const MAX_SERVING_THREADS: usize = 64;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub max_audio_bytes: usize,
    pub shutdown_grace: Duration,
    pub sse_keepalive: Duration,
    /// Serving threads, each with a single-threaded runtime (see [`crate::serve`]): `None` is
    /// one per core, `Some(0)` serves on the runtime that started the server.
    pub threads: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
pub struct ValidationConfig {
    pub max_messages: usize,
    pub max_message_chars: usize,
    pub max_response_chars: usize,
    pub max_image_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Auto,
    Json,
    Pretty,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    pub filter: String,
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: Option<String>,
    pub api_key: Option<SecretString>,
    pub api_key_env: Option<String>,
    pub timeout: Duration,
    pub passthrough: bool,
    pub connect_timeout: Duration,
    pub mock: providers::mock::MockSettings,
}

/// Integer micro-dollars per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prices {
    pub input: i64,
    pub output: i64,
    /// Prompt tokens read from the provider's cache.
    pub cached_input: i64,
    /// Prompt tokens written to the provider's cache.
    pub cache_write: i64,
}

#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub alias: String,
    pub provider: String,
    pub upstream_model: String,
    pub prices: Prices,
    pub context_window: Option<u32>,
    pub max_output_tokens: Option<u32>,
    pub capabilities: Capabilities,
    pub weight: u32,
    pub tier: Option<u8>,
    /// Alias-level settings; only the first entry of an alias may set them.
    pub fallbacks: Vec<String>,
    pub fallback_on: resilience::CauseSet,
    pub context_fallback: Option<String>,
    pub mid_stream_failover: bool,
    pub timeouts: resilience::Timeouts,
}

/// The well-known environment variables of each built-in provider kind: (kind, key variable,
/// base URL variable, default base URL, default model).
const ENV_PROVIDERS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "openai",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "https://api.openai.com/v1",
        "gpt-4o-mini",
    ),
    (
        "anthropic",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        providers::anthropic::DEFAULT_BASE_URL,
        "claude-sonnet-4-5",
    ),
    (
        "gemini",
        "GEMINI_API_KEY",
        "GEMINI_BASE_URL",
        providers::gemini::DEFAULT_BASE_URL,
        "gemini-2.5-flash",
    ),
    // Google's SDKs also read GOOGLE_API_KEY; GEMINI_API_KEY wins when both are set.
    (
        "gemini",
        "GOOGLE_API_KEY",
        "GEMINI_BASE_URL",
        providers::gemini::DEFAULT_BASE_URL,
        "gemini-2.5-flash",
    ),
];

impl Config {
    /// Load from an optional file plus the process environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Config::load_with_env(path, &env)
    }

    /// Load with an explicit environment (tests use this instead of mutating the process's).
    pub fn load_with_env(
        path: Option<&Path>,
        env: &HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(RawConfig::default()));
        if let Some(p) = path {
            if !p.exists() {
                return Err(ConfigError::Missing(p.to_path_buf()));
            }
            fig = fig.merge(Toml::file(p));
        }
        let overrides: Vec<(String, String)> = env
            .iter()
            .filter_map(|(k, v)| {
                let rest = k.strip_prefix("GATEHOUSE_")?;
                rest.contains("__")
                    .then(|| (rest.to_lowercase().replace("__", "."), v.clone()))
            })
            .collect();
        for (key, value) in overrides {
            fig = fig.merge((key.as_str(), env_value(&value)));
        }
        let raw: RawConfig = fig.extract().map_err(|e| ConfigError::Parse(Box::new(e)))?;
        Config::validate(raw, path, env)
    }

    /// Validate a raw configuration; `env` supplies secrets and the well-known variables.
    pub fn validate(
        mut raw: RawConfig,
        path: Option<&Path>,
        env: &HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let get = |k: &str| env.get(k).filter(|v| !v.trim().is_empty()).cloned();
        if let Some(url) = get("DATABASE_URL") {
            raw.database.url = url;
        }
        // Each provider whose key variable is set switches on, unless the file already has it.
        let mut env_default: Option<(String, String)> = None;
        for (kind, key_var, base_var, base_default, model_default) in ENV_PROVIDERS {
            if get(key_var).is_none() {
                continue;
            }
            let existing = raw
                .providers
                .values()
                .any(|p| p.api_key_env.as_deref() == Some(*key_var));
            if !existing && !raw.providers.contains_key(*kind) {
                raw.providers.insert(
                    (*kind).to_owned(),
                    RawProvider {
                        kind: (*kind).to_owned(),
                        base_url: Some(get(base_var).unwrap_or_else(|| (*base_default).to_owned())),
                        api_key_env: Some((*key_var).to_owned()),
                        timeout_secs: None,
                        passthrough: Some(true),
                        latency_ms: None,
                        chunk_delay_ms: None,
                        error_rate: None,
                        error_status: None,
                        connect_timeout_ms: None,
                    },
                );
            }
            if env_default.is_none() {
                env_default = Some(((*kind).to_owned(), (*model_default).to_owned()));
            }
        }
        if !raw.providers.contains_key("mock") {
            raw.providers.insert("mock".into(), builtin_mock());
        }
        if !raw.models.iter().any(|m| m.alias == "mock-1")
            && raw.providers.get("mock").is_some_and(|p| p.kind == "mock")
        {
            raw.models.push(builtin_mock_model());
        }

        let server = ServerConfig {
            listen: raw.server.listen.parse().map_err(|_| {
                invalid(
                    "server.listen",
                    format!(
                        "`{}` is not an address like 127.0.0.1:8080",
                        raw.server.listen
                    ),
                )
            })?,
            max_body_bytes: positive("server.max_body_bytes", raw.server.max_body_bytes)?,
            max_audio_bytes: positive("server.max_audio_bytes", raw.server.max_audio_bytes)?,
            shutdown_grace: Duration::from_secs(raw.server.shutdown_grace_secs),
            sse_keepalive: Duration::from_secs(positive(
                "server.sse_keepalive_secs",
                raw.server.sse_keepalive_secs,
            )?),
            threads: match raw.server.threads {
                Some(n) if n > MAX_SERVING_THREADS => {
                    return Err(invalid(
                        "server.threads",
                        format!("at most {MAX_SERVING_THREADS}"),
                    ));
                }
                n => n,
            },
        };
        let db = raw.database.url.trim().to_owned();
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database.url",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }
        let ledger = store::LedgerConfig {
            queue_capacity: positive("ledger.queue_capacity", raw.ledger.queue_capacity)?,
            batch_size: positive("ledger.batch_size", raw.ledger.batch_size)?,
            flush_interval: Duration::from_millis(positive(
                "ledger.flush_interval_ms",
                raw.ledger.flush_interval_ms,
            )?),
            ..store::LedgerConfig::default()
        };
        let validation = ValidationConfig {
            max_messages: positive("validation.max_messages", raw.validation.max_messages)?,
            max_message_chars: positive(
                "validation.max_message_chars",
                raw.validation.max_message_chars,
            )?,
            max_response_chars: positive(
                "validation.max_response_chars",
                raw.validation.max_response_chars,
            )?,
            max_image_bytes: positive(
                "validation.max_image_bytes",
                raw.validation.max_image_bytes,
            )?,
        };
        let log = LogConfig {
            format: match raw.log.format.as_str() {
                "auto" => LogFormat::Auto,
                "json" => LogFormat::Json,
                "pretty" => LogFormat::Pretty,
                other => {
                    return Err(invalid(
                        "log.format",
                        format!("`{other}` is not one of auto, json, pretty"),
                    ));
                }
            },
            filter: raw.log.filter.clone(),
        };

        let mut providers = Vec::with_capacity(raw.providers.len());
        for (name, p) in &raw.providers {
            providers.push(validate_provider(name, p, env)?);
        }
        let resilience = resilience::validate(&raw.resilience)?;
        let mut models: Vec<ModelConfig> = Vec::with_capacity(raw.models.len());
        for (i, m) in raw.models.iter().enumerate() {
            let field = format!("models[{i}]");
            let model = validate_model(&field, m, &providers, &resilience)?;
            // A repeated alias is another deployment of the same model (load balanced); the
            // alias-level settings belong to its first entry only.
            if models.iter().any(|x| x.alias == m.alias) {
                let alias_level = [
                    ("tier", m.tier.is_some()),
                    ("fallbacks", m.fallbacks.is_some()),
                    ("fallback_on", m.fallback_on.is_some()),
                    ("context_fallback", m.context_fallback.is_some()),
                    ("mid_stream_failover", m.mid_stream_failover.is_some()),
                ];
                if let Some((name, _)) = alias_level.iter().find(|(_, set)| *set) {
                    return Err(invalid(
                        format!("{field}.{name}"),
                        format!(
                            "set `{name}` on the first [[models]] entry of `{}` only",
                            m.alias
                        ),
                    ));
                }
            }
            models.push(model);
        }
        for (i, m) in models.iter().enumerate() {
            for (j, f) in m.fallbacks.iter().enumerate() {
                if !models.iter().any(|x| &x.alias == f) || f == &m.alias {
                    return Err(invalid(
                        format!("models[{i}].fallbacks[{j}]"),
                        format!("`{f}` is not another declared model alias"),
                    ));
                }
            }
            if let Some(f) = &m.context_fallback
                && (!models.iter().any(|x| &x.alias == f) || f == &m.alias)
            {
                return Err(invalid(
                    format!("models[{i}].context_fallback"),
                    format!("`{f}` is not another declared model alias"),
                ));
            }
        }
        let cache = cache::validate(&raw.cache, env, &models)?;
        let mut tier_daily_caps = [None; 4];
        for (tier, price) in &raw.routing.tier_daily_cap_usd {
            let field = format!("routing.tier_daily_cap_usd.{tier}");
            let t: usize = tier
                .parse()
                .ok()
                .filter(|t| *t < 4)
                .ok_or_else(|| invalid(&field, "tiers are 0 to 3"))?;
            tier_daily_caps[t] = Some(parse_price(price).map_err(|m| invalid(&field, m))?);
        }
        let mut tier_rules = Vec::new();
        for (i, r) in raw.routing.rules.iter().enumerate() {
            if r.min_tier > 3 {
                return Err(invalid(
                    format!("routing.rules[{i}].min_tier"),
                    "tiers are 0 to 3",
                ));
            }
            tier_rules.push((r.task.clone(), r.min_tier));
        }

        let aliases: Vec<&str> = models.iter().map(|m| m.alias.as_str()).collect();
        let access = access::validate(
            &access::RawAccess {
                keys: &raw.keys,
                limits: &raw.limits,
                concurrency: &raw.concurrency,
                budgets: &raw.budgets,
                redis: &raw.redis,
                security: &raw.security,
                audit: &raw.audit,
            },
            get("REDIS_URL"),
            &aliases,
        )?;

        let (env_provider, env_model) = env_default.unzip();
        let default_provider = get("LLM_PROVIDER")
            .or(raw.routing.default_provider.clone())
            .or(env_provider)
            .unwrap_or_else(|| "mock".into());
        let Some(dp) = providers.iter().find(|p| p.name == default_provider) else {
            return Err(invalid(
                "routing.default_provider",
                format!("no provider named `{default_provider}`"),
            ));
        };
        let default_model = get("LLM_DEFAULT_MODEL")
            .or(raw.routing.default_model.clone())
            .or_else(|| {
                (dp.kind != ProviderKind::Mock)
                    .then_some(env_model)
                    .flatten()
            })
            .or_else(|| {
                models
                    .iter()
                    .find(|m| m.provider == default_provider)
                    .map(|m| m.alias.clone())
            })
            .unwrap_or_else(|| "mock-1".into());
        if !models.iter().any(|m| m.alias == default_model) && !dp.passthrough {
            return Err(invalid(
                "routing.default_model",
                format!(
                    "`{default_model}` is not a declared model and provider `{default_provider}` has passthrough off"
                ),
            ));
        }

        let web = web::validate(&raw.web, env, dp.kind)?;

        Ok(Config {
            source: path.map(Path::to_path_buf),
            server,
            database_url: SecretString::from(db),
            ledger,
            validation,
            log,
            providers,
            models,
            default_provider,
            default_model,
            admin_key: get("GATEHOUSE_ADMIN_KEY").map(SecretString::from),
            resilience,
            tier_rules,
            tier_daily_caps,
            web,
            access,
            assistants: assistants::validate(&raw.assistants)?,
            cache,
        })
    }
}

/// Values from `GATEHOUSE_…` variables are typed like TOML scalars (numbers, booleans).
fn env_value(v: &str) -> figment::value::Value {
    use figment::value::Value;
    if let Ok(i) = v.parse::<i64>() {
        return Value::from(i);
    }
    if let Ok(b) = v.parse::<bool>() {
        return Value::from(b);
    }
    Value::from(v.to_owned())
}

fn positive<T: PartialOrd + Default + Copy>(field: &str, v: T) -> Result<T, ConfigError> {
    if v > T::default() {
        Ok(v)
    } else {
        Err(invalid(field, "must be greater than zero"))
    }
}

#[cfg(test)]
mod tests;
