//! The `[resilience]` section: retries, backoff, the retry budget, circuit breakers and default
//! timeouts, plus the fallback causes models may name.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawResilience {
    /// Upstream attempts per model alias (the first call included).
    pub max_attempts: u32,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// Longest `Retry-After` honoured; longer ones fail over instead of waiting.
    pub retry_after_cap_ms: u64,
    /// Overall deadline for one request, retries and fallbacks included.
    pub request_deadline_secs: u64,
    /// Retries allowed as a share of recent requests (stops retry storms).
    pub retry_budget_ratio: f64,
    /// Retries per second always allowed, so low traffic can still retry.
    pub retry_budget_min_per_sec: u32,
    pub breaker_failure_rate: f64,
    pub breaker_min_requests: u32,
    pub breaker_window_secs: u64,
    pub breaker_cooldown_secs: u64,
    pub breaker_cooldown_max_secs: u64,
    pub breaker_half_open_probes: u32,
    /// Defaults for models that set none.
    pub first_byte_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub total_timeout_ms: u64,
}

impl Default for RawResilience {
    fn default() -> Self {
        RawResilience {
            max_attempts: 3,
            backoff_base_ms: 200,
            backoff_max_ms: 10_000,
            retry_after_cap_ms: 30_000,
            request_deadline_secs: 600,
            retry_budget_ratio: 0.2,
            retry_budget_min_per_sec: 10,
            breaker_failure_rate: 0.5,
            breaker_min_requests: 10,
            breaker_window_secs: 30,
            breaker_cooldown_secs: 5,
            breaker_cooldown_max_secs: 300,
            breaker_half_open_probes: 2,
            first_byte_timeout_ms: 60_000,
            idle_timeout_ms: 60_000,
            total_timeout_ms: 600_000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ResilienceConfig {
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub retry_after_cap: Duration,
    pub request_deadline: Duration,
    pub retry_budget_ratio: f64,
    pub retry_budget_min_per_sec: u32,
    pub breaker: BreakerConfig,
    pub timeouts: Timeouts,
}

#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    pub failure_rate: f64,
    pub min_requests: u32,
    pub window: Duration,
    pub cooldown: Duration,
    pub cooldown_max: Duration,
    pub half_open_probes: u32,
}

/// Per-model call timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From sending the request to the first byte of the answer (the first chunk of a stream).
    pub first_byte: Duration,
    /// Longest gap between two chunks of a stream.
    pub idle: Duration,
    /// Whole call.
    pub total: Duration,
}

/// Why a request moved on to a fallback model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FallbackCause {
    ExhaustedRetries,
    CircuitOpen,
    Timeout,
    ContextLength,
    ContentFilter,
}

impl FallbackCause {
    pub const ALL: [FallbackCause; 5] = [
        FallbackCause::ExhaustedRetries,
        FallbackCause::CircuitOpen,
        FallbackCause::Timeout,
        FallbackCause::ContextLength,
        FallbackCause::ContentFilter,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FallbackCause::ExhaustedRetries => "exhausted_retries",
            FallbackCause::CircuitOpen => "circuit_open",
            FallbackCause::Timeout => "timeout",
            FallbackCause::ContextLength => "context_length",
            FallbackCause::ContentFilter => "content_filter",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of fallback causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CauseSet(u8);

impl CauseSet {
    /// By default every cause but content filtering falls back (a refusal is usually an answer).
    pub fn default_causes() -> CauseSet {
        CauseSet(
            FallbackCause::ExhaustedRetries.bit()
                | FallbackCause::CircuitOpen.bit()
                | FallbackCause::Timeout.bit()
                | FallbackCause::ContextLength.bit(),
        )
    }

    pub fn contains(self, c: FallbackCause) -> bool {
        self.0 & c.bit() != 0
    }

    pub fn parse(field: &str, names: &[String]) -> Result<CauseSet, ConfigError> {
        let mut set = 0u8;
        for (i, n) in names.iter().enumerate() {
            let c = FallbackCause::ALL
                .into_iter()
                .find(|c| c.as_str() == n)
                .ok_or_else(|| {
                    let all: Vec<_> = FallbackCause::ALL.iter().map(|c| c.as_str()).collect();
                    invalid(
                        format!("{field}[{i}]"),
                        format!("unknown cause `{n}` (expected one of: {})", all.join(", ")),
                    )
                })?;
            set |= c.bit();
        }
        Ok(CauseSet(set))
    }
}

pub fn validate(r: &RawResilience) -> Result<ResilienceConfig, ConfigError> {
    if r.max_attempts == 0 || r.max_attempts > 10 {
        return Err(invalid(
            "resilience.max_attempts",
            "must be between 1 and 10",
        ));
    }
    if !(0.0..=1.0).contains(&r.retry_budget_ratio) {
        return Err(invalid(
            "resilience.retry_budget_ratio",
            "must be between 0 and 1",
        ));
    }
    if !(0.0 < r.breaker_failure_rate && r.breaker_failure_rate <= 1.0) {
        return Err(invalid(
            "resilience.breaker_failure_rate",
            "must be above 0 and at most 1",
        ));
    }
    for (name, v) in [
        ("breaker_window_secs", r.breaker_window_secs),
        ("request_deadline_secs", r.request_deadline_secs),
        ("first_byte_timeout_ms", r.first_byte_timeout_ms),
        ("idle_timeout_ms", r.idle_timeout_ms),
        ("total_timeout_ms", r.total_timeout_ms),
        (
            "breaker_half_open_probes",
            u64::from(r.breaker_half_open_probes),
        ),
    ] {
        if v == 0 {
            return Err(invalid(
                format!("resilience.{name}"),
                "must be greater than zero",
            ));
        }
    }
    Ok(ResilienceConfig {
        max_attempts: r.max_attempts,
        backoff_base: Duration::from_millis(r.backoff_base_ms),
        backoff_max: Duration::from_millis(r.backoff_max_ms.max(r.backoff_base_ms)),
        retry_after_cap: Duration::from_millis(r.retry_after_cap_ms),
        request_deadline: Duration::from_secs(r.request_deadline_secs),
        retry_budget_ratio: r.retry_budget_ratio,
        retry_budget_min_per_sec: r.retry_budget_min_per_sec,
        breaker: BreakerConfig {
            failure_rate: r.breaker_failure_rate,
            min_requests: r.breaker_min_requests.max(1),
            window: Duration::from_secs(r.breaker_window_secs),
            cooldown: Duration::from_secs(r.breaker_cooldown_secs),
            cooldown_max: Duration::from_secs(
                r.breaker_cooldown_max_secs.max(r.breaker_cooldown_secs),
            ),
            half_open_probes: r.breaker_half_open_probes,
        },
        timeouts: Timeouts {
            first_byte: Duration::from_millis(r.first_byte_timeout_ms),
            idle: Duration::from_millis(r.idle_timeout_ms),
            total: Duration::from_millis(r.total_timeout_ms),
        },
    })
}
