//! The provider and model tables: each `[providers.<name>]` and `[[models]]` entry checked and
//! resolved (kind, base URL, key from the environment, timeouts, prices in micro-dollars,
//! capabilities), and the built-in mock of the zero-config start.

use std::collections::HashMap;
use std::time::Duration;

use providers::{Capabilities, Capability, ProviderKind};
use secrecy::SecretString;

use super::raw::{Price, RawModel, RawProvider};
use super::{ConfigError, ModelConfig, Prices, ProviderConfig, invalid, resilience};

pub(super) fn builtin_mock() -> RawProvider {
    RawProvider {
        kind: "mock".into(),
        base_url: None,
        api_key_env: None,
        timeout_secs: None,
        passthrough: Some(false),
        latency_ms: None,
        chunk_delay_ms: None,
        error_rate: None,
        error_status: None,
        connect_timeout_ms: None,
    }
}

/// The demo model of the zero-config start. Its prices are illustrative so cost tracking shows
/// real arithmetic; change them in a config file.
pub(super) fn builtin_mock_model() -> RawModel {
    RawModel {
        alias: "mock-1".into(),
        provider: "mock".into(),
        upstream_model: None,
        input_usd_per_mtok: Some(Price::Text("1.00".into())),
        output_usd_per_mtok: Some(Price::Text("2.00".into())),
        cached_input_usd_per_mtok: Some(Price::Text("0.50".into())),
        cache_write_usd_per_mtok: None,
        context_window: Some(128_000),
        max_output_tokens: Some(4_096),
        capabilities: None,
        weight: None,
        tier: None,
        fallbacks: None,
        fallback_on: None,
        context_fallback: None,
        mid_stream_failover: None,
        first_byte_timeout_ms: None,
        idle_timeout_ms: None,
        total_timeout_ms: None,
    }
}

pub(super) fn validate_provider(
    name: &str,
    p: &RawProvider,
    env: &HashMap<String, String>,
) -> Result<ProviderConfig, ConfigError> {
    let field = format!("providers.{name}");
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(invalid(
            &field,
            "provider names use letters, digits, '-' and '_' only",
        ));
    }
    let kind: ProviderKind = p
        .kind
        .parse()
        .map_err(|e: String| invalid(format!("{field}.kind"), e))?;
    let api_key = match &p.api_key_env {
        Some(var) => Some(SecretString::from(
            env.get(var)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or_else(|| {
                    invalid(
                        format!("{field}.api_key_env"),
                        format!("environment variable {var} is not set"),
                    )
                })?,
        )),
        None => None,
    };
    let base_url = match kind.default_base_url() {
        Some(default) => {
            let url = p.base_url.clone().unwrap_or_else(|| default.into());
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(
                    format!("{field}.base_url"),
                    "must be an http:// or https:// URL",
                ));
            }
            Some(url)
        }
        None => None,
    };
    let error_rate = p.error_rate.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&error_rate) {
        return Err(invalid(
            format!("{field}.error_rate"),
            "must be between 0 and 1",
        ));
    }
    Ok(ProviderConfig {
        name: name.to_owned(),
        kind,
        base_url,
        api_key,
        api_key_env: p.api_key_env.clone(),
        timeout: Duration::from_secs(p.timeout_secs.unwrap_or(600)),
        passthrough: p.passthrough.unwrap_or(kind != ProviderKind::Mock),
        connect_timeout: Duration::from_millis(p.connect_timeout_ms.unwrap_or(10_000).max(1)),
        mock: providers::mock::MockSettings {
            latency: Duration::from_millis(p.latency_ms.unwrap_or(0)),
            chunk_delay: Duration::from_millis(p.chunk_delay_ms.unwrap_or(0)),
            error_rate,
            error_status: p.error_status.unwrap_or(500),
        },
    })
}

pub(super) fn validate_model(
    field: &str,
    m: &RawModel,
    providers: &[ProviderConfig],
    res: &resilience::ResilienceConfig,
) -> Result<ModelConfig, ConfigError> {
    if m.tier.is_some_and(|t| t > 3) {
        return Err(invalid(
            format!("{field}.tier"),
            "tiers are 0 (cheapest) to 3",
        ));
    }
    if m.weight == Some(0) {
        return Err(invalid(
            format!("{field}.weight"),
            "must be greater than zero",
        ));
    }
    let ms = |name: &str, v: Option<u64>, default: Duration| -> Result<Duration, ConfigError> {
        match v {
            Some(0) => Err(invalid(
                format!("{field}.{name}"),
                "must be greater than zero",
            )),
            Some(ms) => Ok(Duration::from_millis(ms)),
            None => Ok(default),
        }
    };
    let timeouts = resilience::Timeouts {
        first_byte: ms(
            "first_byte_timeout_ms",
            m.first_byte_timeout_ms,
            res.timeouts.first_byte,
        )?,
        idle: ms("idle_timeout_ms", m.idle_timeout_ms, res.timeouts.idle)?,
        total: ms("total_timeout_ms", m.total_timeout_ms, res.timeouts.total)?,
    };
    let fallback_on = match &m.fallback_on {
        Some(names) => resilience::CauseSet::parse(&format!("{field}.fallback_on"), names)?,
        None => resilience::CauseSet::default_causes(),
    };
    if m.alias.trim().is_empty() || m.alias.len() > 200 {
        return Err(invalid(
            format!("{field}.alias"),
            "must be 1 to 200 characters",
        ));
    }
    if !providers.iter().any(|p| p.name == m.provider) {
        return Err(invalid(
            format!("{field}.provider"),
            format!("no provider named `{}`", m.provider),
        ));
    }
    let price = |name: &str, p: &Option<Price>| -> Result<i64, ConfigError> {
        p.as_ref().map_or(Ok(0), |p| {
            parse_price(p).map_err(|msg| invalid(format!("{field}.{name}"), msg))
        })
    };
    let input = price("input_usd_per_mtok", &m.input_usd_per_mtok)?;
    let kind = providers
        .iter()
        .find(|p| p.name == m.provider)
        .map_or(ProviderKind::Mock, |p| p.kind);
    let capabilities = match &m.capabilities {
        None => kind.default_capabilities(),
        Some(names) => names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                n.parse::<Capability>()
                    .map_err(|e| invalid(format!("{field}.capabilities[{i}]"), e))
            })
            .collect::<Result<Capabilities, _>>()?,
    };
    Ok(ModelConfig {
        alias: m.alias.clone(),
        provider: m.provider.clone(),
        upstream_model: m.upstream_model.clone().unwrap_or_else(|| m.alias.clone()),
        prices: Prices {
            input,
            output: price("output_usd_per_mtok", &m.output_usd_per_mtok)?,
            cached_input: match &m.cached_input_usd_per_mtok {
                Some(_) => price("cached_input_usd_per_mtok", &m.cached_input_usd_per_mtok)?,
                None => input,
            },
            cache_write: match &m.cache_write_usd_per_mtok {
                Some(_) => price("cache_write_usd_per_mtok", &m.cache_write_usd_per_mtok)?,
                None => input,
            },
        },
        context_window: m.context_window,
        max_output_tokens: m.max_output_tokens,
        capabilities,
        weight: m.weight.unwrap_or(1),
        tier: m.tier,
        fallbacks: m.fallbacks.clone().unwrap_or_default(),
        fallback_on,
        context_fallback: m.context_fallback.clone(),
        mid_stream_failover: m.mid_stream_failover.unwrap_or(false),
        timeouts,
    })
}

/// Dollars as written ("2.50", 2.5, 3) → integer micro-dollars, exactly; at most six decimals.
pub fn parse_price(p: &Price) -> Result<i64, String> {
    let text = match p {
        Price::Text(s) => s.trim().to_owned(),
        Price::Int(i) => i.to_string(),
        // A TOML float prints back as its shortest exact decimal, so no rounding happens here.
        Price::Float(f) => f.to_string(),
    };
    let bad = || {
        format!(
            "`{text}` is not a price in dollars like \"2.50\" (at most 6 decimals, not negative)"
        )
    };
    let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
    if whole.is_empty() && frac.is_empty()
        || frac.len() > 6
        || !whole
            .chars()
            .chain(frac.chars())
            .all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let frac_micros: i64 = format!("{frac:0<6}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(1_000_000)
        .and_then(|w| w.checked_add(frac_micros))
        .ok_or_else(bad)
}
