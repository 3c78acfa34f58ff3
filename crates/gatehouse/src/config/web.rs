//! The `[web]` section: the built-in chat and admin console — who may chat, the signed session
//! cookies, per-user spend and the cost warning.

use std::collections::HashMap;
use std::time::Duration;

use providers::ProviderKind;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::raw::Price;
use super::{ConfigError, invalid, parse_price};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawWeb {
    /// Serve the UI at `/` and `/admin` (the API works either way).
    pub enabled: bool,
    /// `open` (anyone who reaches the chat, with an anonymous session), `invite` (an invite
    /// code once per browser) or `key` (an API key, sent with every chat request).
    pub chat_access: String,
    /// Variable holding the invite codes, comma-separated.
    pub invite_codes_env: String,
    /// Variable holding the secret that signs session cookies (32+ characters). Without it a
    /// secret is kept beside the SQLite database, or made up per process for PostgreSQL.
    pub session_secret_env: String,
    /// Mark cookies `Secure` (set it behind HTTPS; `x-forwarded-proto: https` also does).
    pub secure_cookies: bool,
    pub admin_session_ttl_secs: u64,
    /// Spend of one chat user per UTC day, in dollars; "0" for none.
    pub user_daily_budget_usd: Price,
    /// The cost widget warns above this spend of the day, in dollars.
    pub high_usage_warning_usd: Price,
    /// Model the chat's audio input is transcribed with. Default: `whisper-1` when the default
    /// provider is OpenAI-compatible, else `default` (the mock answers a fixed transcript).
    pub transcription_model: Option<String>,
}

impl Default for RawWeb {
    fn default() -> Self {
        RawWeb {
            enabled: true,
            chat_access: "open".into(),
            invite_codes_env: "GATEHOUSE_INVITE_CODES".into(),
            session_secret_env: "GATEHOUSE_SESSION_SECRET".into(),
            secure_cookies: false,
            admin_session_ttl_secs: 8 * 3600,
            user_daily_budget_usd: Price::Text("1.00".into()),
            high_usage_warning_usd: Price::Text("0.25".into()),
            transcription_model: None,
        }
    }
}

/// Who may use the chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatAccess {
    Open,
    Invite,
    Key,
}

impl ChatAccess {
    pub const ALL: [ChatAccess; 3] = [ChatAccess::Open, ChatAccess::Invite, ChatAccess::Key];

    pub fn as_str(self) -> &'static str {
        match self {
            ChatAccess::Open => "open",
            ChatAccess::Invite => "invite",
            ChatAccess::Key => "key",
        }
    }
}

#[derive(Debug, Clone)]
pub struct WebConfig {
    pub enabled: bool,
    pub chat_access: ChatAccess,
    pub invite_codes: Vec<SecretString>,
    pub session_secret: Option<SecretString>,
    pub secure_cookies: bool,
    pub admin_session_ttl: Duration,
    /// Micro-USD; 0 = no budget.
    pub user_daily_budget_micros: i64,
    pub high_usage_warning_micros: i64,
    pub transcription_model: String,
}

pub fn validate(
    raw: &RawWeb,
    env: &HashMap<String, String>,
    default_provider_kind: ProviderKind,
) -> Result<WebConfig, ConfigError> {
    let chat_access = ChatAccess::ALL
        .into_iter()
        .find(|a| a.as_str() == raw.chat_access)
        .ok_or_else(|| {
            invalid(
                "web.chat_access",
                format!("`{}` is not one of open, invite, key", raw.chat_access),
            )
        })?;
    let var = |name: &str| env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let invite_codes: Vec<SecretString> = var(&raw.invite_codes_env)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(|c| SecretString::from(c.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    if chat_access == ChatAccess::Invite && invite_codes.is_empty() {
        return Err(invalid(
            "web.chat_access",
            format!(
                "`invite` needs invite codes in ${} (comma-separated)",
                raw.invite_codes_env
            ),
        ));
    }
    let session_secret = match var(&raw.session_secret_env) {
        Some(s) if s.chars().count() < 32 => {
            return Err(invalid(
                "web.session_secret_env",
                format!("${} must be at least 32 characters", raw.session_secret_env),
            ));
        }
        Some(s) => Some(SecretString::from(s.to_owned())),
        None => None,
    };
    if raw.admin_session_ttl_secs < 60 {
        return Err(invalid(
            "web.admin_session_ttl_secs",
            "must be at least 60 seconds",
        ));
    }
    let money = |field: &str, p: &Price| -> Result<i64, ConfigError> {
        parse_price(p).map_err(|m| invalid(format!("web.{field}"), m))
    };
    let transcription_model = match &raw.transcription_model {
        Some(m) if m.trim().is_empty() => {
            return Err(invalid("web.transcription_model", "must not be empty"));
        }
        Some(m) => m.clone(),
        None if default_provider_kind == ProviderKind::OpenAi => "whisper-1".into(),
        None => "default".into(),
    };
    Ok(WebConfig {
        enabled: raw.enabled,
        chat_access,
        invite_codes,
        session_secret,
        secure_cookies: raw.secure_cookies,
        admin_session_ttl: Duration::from_secs(raw.admin_session_ttl_secs),
        user_daily_budget_micros: money("user_daily_budget_usd", &raw.user_daily_budget_usd)?,
        high_usage_warning_micros: money("high_usage_warning_usd", &raw.high_usage_warning_usd)?,
        transcription_model,
    })
}
