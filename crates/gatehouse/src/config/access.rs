//! `[keys]`, `[limits]`, `[concurrency]`, `[budgets]`, `[redis]`, `[security]` and `[audit]`:
//! raw sections as written, validated into [`AccessConfig`].

use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::raw::Price;
use super::{ConfigError, invalid, parse_price};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawKeys {
    /// How often each instance checks the database for key changes (revocations included).
    pub refresh_ms: u64,
}

impl Default for RawKeys {
    fn default() -> Self {
        RawKeys { refresh_ms: 500 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    pub key_rpm: u64,
    pub key_tpm: u64,
    pub user_rpm: u64,
    pub user_tpm: u64,
    pub global_rpm: u64,
    pub global_tpm: u64,
    pub anonymous_rpm: u64,
    pub web_chat_rpm: u64,
    pub whatsapp_rpm: u64,
    pub admin_requests: u64,
    pub admin_period_secs: u64,
    pub default_max_output_tokens: u32,
    pub sweep_interval_secs: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            key_rpm: 600,
            key_tpm: 1_000_000,
            user_rpm: 0,
            user_tpm: 0,
            global_rpm: 0,
            global_tpm: 0,
            anonymous_rpm: 100,
            web_chat_rpm: 20,
            whatsapp_rpm: 10,
            admin_requests: 50,
            admin_period_secs: 300,
            default_max_output_tokens: 4_096,
            sweep_interval_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConcurrency {
    pub max_in_flight: usize,
    pub queue_timeout_ms: u64,
    pub max_queued: usize,
    pub lease_secs: u64,
}

impl Default for RawConcurrency {
    fn default() -> Self {
        RawConcurrency {
            max_in_flight: 100,
            queue_timeout_ms: 10_000,
            max_queued: 1_000,
            lease_secs: 900,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBudgets {
    pub global_daily_usd: Option<Price>,
    pub alert_webhook_url: Option<String>,
    pub alert_timeout_ms: u64,
    pub downgrade_model: Option<String>,
}

impl Default for RawBudgets {
    fn default() -> Self {
        RawBudgets {
            global_daily_usd: None,
            alert_webhook_url: None,
            alert_timeout_ms: 5_000,
            downgrade_model: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRedis {
    pub url: Option<String>,
    pub timeout_ms: u64,
    pub key_prefix: String,
    pub budget_fail_open: bool,
}

impl Default for RawRedis {
    fn default() -> Self {
        RawRedis {
            url: None,
            timeout_ms: 250,
            key_prefix: "gatehouse:".into(),
            budget_fail_open: false,
        }
    }
}

pub const DEFAULT_UI_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; object-src 'none'; \
     base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSecurity {
    pub hsts: bool,
    pub hsts_max_age_secs: u64,
    pub ui_csp: String,
    pub trust_forwarded_for: bool,
    pub cors_allowed_origins: Vec<String>,
    pub cors_allow_credentials: bool,
    pub cors_max_age_secs: u64,
}

impl Default for RawSecurity {
    fn default() -> Self {
        RawSecurity {
            hsts: false,
            hsts_max_age_secs: 31_536_000,
            ui_csp: DEFAULT_UI_CSP.into(),
            trust_forwarded_for: false,
            cors_allowed_origins: Vec::new(),
            cors_allow_credentials: false,
            cors_max_age_secs: 600,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAudit {
    pub queue_capacity: usize,
    pub rejection_sample_secs: u64,
}

impl Default for RawAudit {
    fn default() -> Self {
        RawAudit {
            queue_capacity: 10_000,
            rejection_sample_secs: 60,
        }
    }
}

/// The raw sections together, as [`validate`] takes them.
pub struct RawAccess<'a> {
    pub keys: &'a RawKeys,
    pub limits: &'a RawLimits,
    pub concurrency: &'a RawConcurrency,
    pub budgets: &'a RawBudgets,
    pub redis: &'a RawRedis,
    pub security: &'a RawSecurity,
    pub audit: &'a RawAudit,
}

/// Requests (or tokens) per period; 0 switches a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub limit: u64,
    pub period: Duration,
}

impl Rate {
    pub const fn per_minute(limit: u64) -> Rate {
        Rate {
            limit,
            period: Duration::from_secs(60),
        }
    }

    pub fn on(self) -> Option<Rate> {
        (self.limit > 0).then_some(self)
    }
}

#[derive(Debug, Clone)]
pub struct LimitsConfig {
    pub key_rpm: u64,
    pub key_tpm: u64,
    pub user_rpm: u64,
    pub user_tpm: u64,
    pub global_rpm: u64,
    pub global_tpm: u64,
    pub anonymous_rpm: u64,
    pub web_chat_rpm: u64,
    pub whatsapp_rpm: u64,
    pub admin: Rate,
    pub default_max_output_tokens: u32,
    pub sweep_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct ConcurrencyConfig {
    pub max_in_flight: usize,
    pub queue_timeout: Duration,
    pub max_queued: usize,
    pub lease: Duration,
}

#[derive(Debug, Clone)]
pub struct BudgetConfig {
    pub global_daily_micros: Option<i64>,
    pub alert_webhook_url: Option<String>,
    pub alert_timeout: Duration,
    pub downgrade_model: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: SecretString,
    pub timeout: Duration,
    pub key_prefix: String,
}

#[derive(Debug, Clone)]
pub struct SecurityConfig {
    /// `max-age` of `Strict-Transport-Security`, when HSTS is on.
    pub hsts_max_age: Option<u64>,
    pub ui_csp: String,
    pub trust_forwarded_for: bool,
    pub cors_allowed_origins: Vec<String>,
    pub cors_allow_credentials: bool,
    pub cors_max_age: Duration,
}

#[derive(Debug, Clone)]
pub struct AuditConfig {
    pub queue_capacity: usize,
    pub rejection_sample: Duration,
}

#[derive(Debug, Clone)]
pub struct AccessConfig {
    pub keys_refresh: Duration,
    pub limits: LimitsConfig,
    pub concurrency: ConcurrencyConfig,
    pub budgets: BudgetConfig,
    pub redis: Option<RedisConfig>,
    pub budget_fail_open: bool,
    pub security: SecurityConfig,
    pub audit: AuditConfig,
}

fn nonzero(field: &str, v: u64) -> Result<u64, ConfigError> {
    if v == 0 {
        Err(invalid(field, "must be greater than zero"))
    } else {
        Ok(v)
    }
}

/// Validates the sections; `redis_url` is `REDIS_URL` (it wins over `redis.url`), `models` the
/// declared aliases (for `budgets.downgrade_model`).
pub fn validate(
    raw: &RawAccess<'_>,
    redis_url: Option<String>,
    models: &[&str],
) -> Result<AccessConfig, ConfigError> {
    let l = raw.limits;
    let limits = LimitsConfig {
        key_rpm: l.key_rpm,
        key_tpm: l.key_tpm,
        user_rpm: l.user_rpm,
        user_tpm: l.user_tpm,
        global_rpm: l.global_rpm,
        global_tpm: l.global_tpm,
        anonymous_rpm: l.anonymous_rpm,
        web_chat_rpm: l.web_chat_rpm,
        whatsapp_rpm: l.whatsapp_rpm,
        admin: Rate {
            limit: l.admin_requests,
            period: Duration::from_secs(nonzero("limits.admin_period_secs", l.admin_period_secs)?),
        },
        default_max_output_tokens: u32::try_from(nonzero(
            "limits.default_max_output_tokens",
            u64::from(l.default_max_output_tokens),
        )?)
        .unwrap_or(u32::MAX),
        sweep_interval: Duration::from_secs(nonzero(
            "limits.sweep_interval_secs",
            l.sweep_interval_secs,
        )?),
    };
    let c = raw.concurrency;
    let concurrency = ConcurrencyConfig {
        max_in_flight: usize::try_from(nonzero(
            "concurrency.max_in_flight",
            c.max_in_flight as u64,
        )?)
        .unwrap_or(usize::MAX),
        queue_timeout: Duration::from_millis(c.queue_timeout_ms),
        max_queued: c.max_queued,
        lease: Duration::from_secs(nonzero("concurrency.lease_secs", c.lease_secs)?),
    };
    let b = raw.budgets;
    let global_daily_micros = match &b.global_daily_usd {
        Some(p) => Some(parse_price(p).map_err(|m| invalid("budgets.global_daily_usd", m))?),
        None => None,
    };
    let alert_webhook_url = b.alert_webhook_url.clone().filter(|u| !u.trim().is_empty());
    if let Some(u) = &alert_webhook_url
        && !(u.starts_with("http://") || u.starts_with("https://"))
    {
        return Err(invalid(
            "budgets.alert_webhook_url",
            "must be an http:// or https:// URL",
        ));
    }
    let downgrade_model = b.downgrade_model.clone().filter(|m| !m.is_empty());
    if let Some(m) = &downgrade_model
        && !models.contains(&m.as_str())
    {
        return Err(invalid(
            "budgets.downgrade_model",
            format!("`{m}` is not a declared model alias"),
        ));
    }
    let budgets = BudgetConfig {
        global_daily_micros,
        alert_webhook_url,
        alert_timeout: Duration::from_millis(nonzero(
            "budgets.alert_timeout_ms",
            b.alert_timeout_ms,
        )?),
        downgrade_model,
    };
    let r = raw.redis;
    let url = redis_url
        .or_else(|| r.url.clone())
        .filter(|u| !u.trim().is_empty());
    let redis = match url {
        Some(u) => {
            if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
                return Err(invalid(
                    "redis.url",
                    "must start with redis:// or rediss:// (REDIS_URL overrides it)",
                ));
            }
            Some(RedisConfig {
                url: SecretString::from(u),
                timeout: Duration::from_millis(nonzero("redis.timeout_ms", r.timeout_ms)?),
                key_prefix: r.key_prefix.clone(),
            })
        }
        None => None,
    };
    let s = raw.security;
    for (i, o) in s.cors_allowed_origins.iter().enumerate() {
        let ok = o == "*" || o.starts_with("http://") || o.starts_with("https://");
        if !ok || http::HeaderValue::from_str(o).is_err() {
            return Err(invalid(
                format!("security.cors_allowed_origins[{i}]"),
                "must be \"*\" or an origin like https://app.example.com",
            ));
        }
    }
    if s.cors_allow_credentials && s.cors_allowed_origins.iter().any(|o| o == "*") {
        return Err(invalid(
            "security.cors_allow_credentials",
            "cannot be combined with the \"*\" origin; list the origins",
        ));
    }
    if http::HeaderValue::from_str(&s.ui_csp).is_err() {
        return Err(invalid("security.ui_csp", "must be a valid header value"));
    }
    let security = SecurityConfig {
        hsts_max_age: s.hsts.then_some(s.hsts_max_age_secs),
        ui_csp: s.ui_csp.clone(),
        trust_forwarded_for: s.trust_forwarded_for,
        cors_allowed_origins: s.cors_allowed_origins.clone(),
        cors_allow_credentials: s.cors_allow_credentials,
        cors_max_age: Duration::from_secs(s.cors_max_age_secs),
    };
    let audit = AuditConfig {
        queue_capacity: usize::try_from(nonzero(
            "audit.queue_capacity",
            raw.audit.queue_capacity as u64,
        )?)
        .unwrap_or(usize::MAX),
        rejection_sample: Duration::from_secs(raw.audit.rejection_sample_secs),
    };
    Ok(AccessConfig {
        keys_refresh: Duration::from_millis(nonzero("keys.refresh_ms", raw.keys.refresh_ms)?),
        limits,
        concurrency,
        budgets,
        redis,
        budget_fail_open: r.budget_fail_open,
        security,
        audit,
    })
}
