//! `gatehouse keys create|list|show|revoke|rotate`: the admin API's key operations straight on
//! the configured database. Running instances pick changes up within `keys.refresh_ms`. Each
//! change is audited with actor `cli:<user>`.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;
use store::{ApiKeyRow, Store};

use super::Priority;
use super::api::{CreateKey, create_key, rotate_key};
use super::keys::ApiKey;
use crate::audit;
use crate::config::Config;
use crate::config::raw::Price;
use crate::usage::now_ms;

#[derive(Debug, Subcommand)]
#[expect(clippy::large_enum_variant, reason = "parsed once per process run")]
pub enum KeysCommand {
    /// Create a key; it is printed once and cannot be shown again.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        team: Option<String>,
        /// Comma-separated model aliases the key may use (default: all).
        #[arg(long, value_delimiter = ',')]
        models: Option<Vec<String>>,
        /// Requests per minute (default: limits.key_rpm).
        #[arg(long)]
        rpm: Option<u64>,
        /// Tokens per minute (default: limits.key_tpm).
        #[arg(long)]
        tpm: Option<u64>,
        #[arg(long)]
        max_concurrent: Option<u64>,
        /// Daily budget in dollars, e.g. 5.00.
        #[arg(long)]
        daily_budget_usd: Option<String>,
        /// Monthly budget in dollars.
        #[arg(long)]
        monthly_budget_usd: Option<String>,
        /// Lifetime: 3600s, 90m, 12h or 30d.
        #[arg(long)]
        expires_in: Option<String>,
        /// high, normal or batch.
        #[arg(long)]
        priority: Option<String>,
        /// Serve budgets.downgrade_model when a budget is used up.
        #[arg(long)]
        allow_downgrade: bool,
        /// A JSON object.
        #[arg(long)]
        metadata: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List keys (secrets are never shown).
    List {
        /// Include revoked keys.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show one key.
    Show { id: i64 },
    /// Revoke a key (every instance refuses it within a second).
    Revoke { id: i64 },
    /// Give a key a new secret, printed once.
    Rotate {
        id: i64,
        /// How long the old secret keeps working.
        #[arg(long, default_value_t = 0)]
        grace_secs: u64,
        #[arg(long)]
        json: bool,
    },
}

/// `3600s`, `90m`, `12h`, `30d` → milliseconds.
pub fn parse_lifetime(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    let mult: i64 = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "`{s}` is not a lifetime like 3600s, 90m, 12h or 30d"
            ));
        }
    };
    num.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("`{s}` is not a lifetime like 3600s, 90m, 12h or 30d"))
}

fn usd(field: &str, v: Option<&String>) -> Result<Option<i64>, String> {
    v.map(|s| {
        crate::config::parse_price(&Price::Text(s.clone())).map_err(|m| format!("--{field}: {m}"))
    })
    .transpose()
}

fn actor() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

fn line(k: &ApiKey) -> String {
    let state = if k.revoked_at_ms.is_some() {
        "revoked"
    } else {
        "live"
    };
    format!(
        "{:>5}  {}  {:<24}  {:<7}  owner={} team={} rpm={} tpm={} daily={} monthly={}",
        k.id,
        k.prefix,
        k.name,
        state,
        k.owner.as_deref().unwrap_or("-"),
        k.team.as_deref().unwrap_or("-"),
        k.rpm.map_or("default".into(), |n| n.to_string()),
        k.tpm.map_or("default".into(), |n| n.to_string()),
        k.daily_budget_micros.map_or("-".into(), |n| n.to_string()),
        k.monthly_budget_micros
            .map_or("-".into(), |n| n.to_string()),
    )
}

async fn audit_cli(store: &Store, action: &str, row: &ApiKeyRow) {
    let mut e = audit::entry(actor(), action, Some(format!("key:{}", row.id)), "ok");
    e.ts_ms = now_ms();
    e.detail = Some(json!({ "prefix": row.prefix }).to_string());
    if let Err(err) = store.insert_audit(&[e]).await {
        eprintln!("warning: could not write the audit entry: {err}");
    }
}

fn print_secret(secret: &str, row: &ApiKeyRow, as_json: bool) {
    if as_json {
        let mut v = serde_json::to_value(ApiKey::from_row(row)).unwrap_or_default();
        v["key"] = json!(secret);
        println!("{v}");
    } else {
        println!("{secret}");
        eprintln!(
            "key {} ({}): store it now, it is not shown again",
            row.id, row.prefix
        );
    }
}

/// Run one `keys` command against the configured database.
pub async fn run(config: &Config, cmd: KeysCommand) -> Result<(), String> {
    use secrecy::ExposeSecret;
    let store = Store::connect(config.database_url.expose_secret())
        .await
        .map_err(|e| e.to_string())?;
    let result = run_on(&store, cmd).await;
    store.close().await;
    result
}

async fn run_on(store: &Store, cmd: KeysCommand) -> Result<(), String> {
    let api = |e: crate::error::ApiError| match e.param {
        Some(p) => format!("{p}: {}", e.message),
        None => e.message,
    };
    match cmd {
        KeysCommand::Create {
            name,
            owner,
            team,
            models,
            rpm,
            tpm,
            max_concurrent,
            daily_budget_usd,
            monthly_budget_usd,
            expires_in,
            priority,
            allow_downgrade,
            metadata,
            json,
        } => {
            let c = CreateKey {
                name,
                owner,
                team,
                allowed_models: models,
                rpm,
                tpm,
                max_concurrent,
                daily_budget_micros: usd("daily-budget-usd", daily_budget_usd.as_ref())?,
                monthly_budget_micros: usd("monthly-budget-usd", monthly_budget_usd.as_ref())?,
                expires_at_ms: expires_in
                    .map(|s| parse_lifetime(&s).map(|ms| now_ms().saturating_add(ms)))
                    .transpose()?,
                metadata: metadata
                    .map(|m| serde_json::from_str(&m).map_err(|e| format!("--metadata: {e}")))
                    .transpose()?,
                priority: priority
                    .map(|p| {
                        p.parse::<Priority>()
                            .map_err(|e| format!("--priority: {e}"))
                    })
                    .transpose()?,
                allow_downgrade: Some(allow_downgrade),
            };
            let (secret, row) = create_key(store, &c).await.map_err(api)?;
            audit_cli(store, "key.create", &row).await;
            print_secret(&secret, &row, json);
        }
        KeysCommand::List { all, json } => {
            let rows = store.list_keys().await.map_err(|e| e.to_string())?;
            let keys: Vec<ApiKey> = rows
                .iter()
                .filter(|r| all || r.revoked_at_ms.is_none())
                .map(ApiKey::from_row)
                .collect();
            if json {
                println!("{}", serde_json::to_string(&keys).unwrap_or_default());
            } else if keys.is_empty() {
                println!("no keys");
            } else {
                for k in &keys {
                    println!("{}", line(k));
                }
            }
        }
        KeysCommand::Show { id } => {
            let row = store
                .get_key(id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no key with id {id}"))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&ApiKey::from_row(&row)).unwrap_or_default()
            );
        }
        KeysCommand::Revoke { id } => {
            let row = store
                .revoke_key(id, now_ms())
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no key with id {id}"))?;
            audit_cli(store, "key.revoke", &row).await;
            println!("revoked key {} ({})", row.id, row.prefix);
        }
        KeysCommand::Rotate {
            id,
            grace_secs,
            json,
        } => {
            let (secret, row) = rotate_key(store, id, grace_secs).await.map_err(api)?;
            audit_cli(store, "key.rotate", &row).await;
            print_secret(&secret, &row, json);
        }
    }
    Ok(())
}

/// For the binary: run and turn the outcome into an exit code.
pub fn main(config: &Config, cmd: KeysCommand) -> ExitCode {
    // Errors of the store go to stderr (stdout carries keys and listings).
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .with_target(false)
        .try_init();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(config, cmd)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes() {
        assert_eq!(parse_lifetime("30d"), Ok(2_592_000_000));
        assert_eq!(parse_lifetime("90m"), Ok(5_400_000));
        assert_eq!(parse_lifetime("1s"), Ok(1_000));
        // Bad input: no unit, a zero, a negative, an unknown unit, nothing.
        for bad in ["30", "0d", "-1h", "3w", ""] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
    }
}
