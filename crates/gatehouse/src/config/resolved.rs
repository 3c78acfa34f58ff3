//! What `gatehouse check-config` prints: the resolved configuration, secrets masked.

use std::fmt::Write as _;

use secrecy::ExposeSecret;

use super::Config;

/// A database URL with its password replaced by `***`.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// Micro-dollars per million tokens as dollars.
pub fn dollars(micros: i64) -> String {
    format!("${}.{:06}", micros / 1_000_000, (micros % 1_000_000).abs())
}

impl Config {
    /// A human-readable summary of everything that was resolved. Secrets appear only as the name
    /// of the variable they came from.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let src = self.source.as_ref().map_or(
            "(none: built-in defaults and environment)".to_owned(),
            |p| p.display().to_string(),
        );
        let _ = writeln!(out, "config file: {src}");
        let _ = writeln!(out, "listen: {}", self.server.listen);
        let _ = match self.server.threads {
            None => writeln!(
                out,
                "serving threads: {} (one per core)",
                crate::serve::resolve_threads(None)
            ),
            Some(0) => writeln!(out, "serving threads: none (the main runtime serves)"),
            Some(n) => writeln!(out, "serving threads: {n}"),
        };
        let _ = writeln!(
            out,
            "database: {}",
            mask_url(self.database_url.expose_secret())
        );
        let _ = writeln!(
            out,
            "limits: body {} bytes, {} messages, {} chars per message, {} response chars",
            self.server.max_body_bytes,
            self.validation.max_messages,
            self.validation.max_message_chars,
            self.validation.max_response_chars
        );
        let _ = writeln!(
            out,
            "default: provider `{}`, model `{}`",
            self.default_provider, self.default_model
        );
        let a = &self.access;
        let _ = writeln!(
            out,
            "access: admin API {}; key defaults {} rpm / {} tpm; in-flight cap {}; backend {}",
            if self.admin_key.is_some() {
                "on (GATEHOUSE_ADMIN_KEY set, ***)"
            } else {
                "off"
            },
            a.limits.key_rpm,
            a.limits.key_tpm,
            a.concurrency.max_in_flight,
            a.redis.as_ref().map_or_else(
                || "in-process".to_owned(),
                |r| format!("redis {}", mask_url(r.url.expose_secret()))
            ),
        );
        let _ = writeln!(out, "providers:");
        for p in &self.providers {
            let key = match (&p.api_key_env, &p.api_key) {
                (Some(var), Some(_)) => format!("key from ${var} (set, ***)"),
                _ => "no key".to_owned(),
            };
            let _ = writeln!(
                out,
                "  {} ({}) {} {} passthrough={}",
                p.name,
                p.kind.as_str(),
                p.base_url.as_deref().unwrap_or("built-in"),
                key,
                p.passthrough
            );
        }
        let w = &self.web;
        let _ = writeln!(
            out,
            "web: {}; chat access {}{}; user daily budget {}; session secret {}",
            if w.enabled {
                "/ and /admin served"
            } else {
                "off"
            },
            w.chat_access.as_str(),
            if w.invite_codes.is_empty() {
                String::new()
            } else {
                format!(" ({} invite codes, ***)", w.invite_codes.len())
            },
            dollars(w.user_daily_budget_micros),
            if w.session_secret.is_some() {
                "from the environment (***)"
            } else {
                "kept beside the SQLite database"
            }
        );
        let _ = writeln!(out, "models:");
        for m in &self.models {
            let caps: Vec<_> = m.capabilities.iter().map(|c| c.as_str()).collect();
            let _ = writeln!(
                out,
                "  {} -> {}/{} in {} out {} cached {} cache write {} per Mtok; {}",
                m.alias,
                m.provider,
                m.upstream_model,
                dollars(m.prices.input),
                dollars(m.prices.output),
                dollars(m.prices.cached_input),
                dollars(m.prices.cache_write),
                caps.join(", ")
            );
        }
        out
    }
}
