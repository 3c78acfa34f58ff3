//! The `[assistants]` section: the system-prompt token limit and how long an instance serves an
//! assistant's definition from memory.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAssistants {
    /// Most tokens a system prompt or variant prompt may have: the admin API refuses longer
    /// ones unless `force=true`, and `gatehouse lint-prompts` fails on them.
    pub prompt_token_limit: u64,
    /// How long an instance reuses an assistant's definition before reading it again; edits
    /// made through the same instance apply at once.
    pub cache_ttl_ms: u64,
}

impl Default for RawAssistants {
    fn default() -> Self {
        RawAssistants {
            prompt_token_limit: 2_000,
            cache_ttl_ms: 1_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssistantsConfig {
    pub prompt_token_limit: u64,
    pub cache_ttl: Duration,
}

pub fn validate(raw: &RawAssistants) -> Result<AssistantsConfig, ConfigError> {
    if raw.prompt_token_limit == 0 {
        return Err(invalid(
            "assistants.prompt_token_limit",
            "must be greater than zero",
        ));
    }
    Ok(AssistantsConfig {
        prompt_token_limit: raw.prompt_token_limit,
        cache_ttl: Duration::from_millis(raw.cache_ttl_ms),
    })
}
