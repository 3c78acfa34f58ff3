//! Access control: API keys, rate limits, the concurrency cap and budgets, on an in-process or
//! a Redis backend with the same semantics.
//!
//! [`Access`] is built once at startup. The [`layer`] authenticates every request outside an
//! explicit allowlist; [`admit`] turns a chat or embeddings request into one all-or-nothing
//! [`plan::Plan`] (rate buckets, per-key concurrency lease, budget reservations), then takes a
//! concurrency permit; the [`admit::Admission`] it returns rides on the usage guard and is
//! settled when the guard records the request, whether it succeeded, failed or the client left.
//!
//! Failure policy with Redis: while Redis does not answer (every call is bounded by
//! `redis.timeout_ms`), rate limits and leases fall back to this instance's in-process state
//! (fail open: per-instance limits, logged once per outage, `gatehouse_redis_fallbacks_total`),
//! and requests that carry a budget are refused with 503 `budget_unavailable` (fail closed)
//! unless `redis.budget_fail_open = true`. A background probe notices recovery within half a
//! second and re-seeds budgets from the usage ledger.

pub mod admit;
pub mod alerts;
pub mod api;
pub mod cli;
pub mod gate;
pub mod gcra;
pub mod headers;
pub mod keys;
pub mod layer;
pub mod local;
pub mod metrics;
pub mod plan;
pub mod public;
pub mod redis;
pub mod reject;
mod tasks;
pub mod usage;

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use store::Store;
use utoipa::ToSchema;

pub use self::admit::{Admission, admit_chat, admit_embeddings, admit_transcription};
use self::alerts::Alerter;
use self::gate::Gate;
use self::keys::KeyCache;
use self::local::LocalBackend;
use self::plan::{Plan, Settlement, Verdict};
use self::redis::RedisBackend;
pub use self::tasks::AccessTasks;
use crate::audit::Audit;
use crate::config::Config;
use crate::config::access::AccessConfig;
use crate::telemetry::metrics::Metrics;
use crate::usage::now_ms;

/// Concurrency lanes, highest first. A key's priority is its default lane and the highest it
/// may ask for with `x-gatehouse-priority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    High,
    Normal,
    Batch,
}

impl Priority {
    pub fn index(self) -> usize {
        match self {
            Priority::High => 0,
            Priority::Normal => 1,
            Priority::Batch => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Batch => "batch",
        }
    }

    /// The lane used: the requested one, but never above `max`.
    pub fn clamp(requested: Option<Priority>, max: Priority) -> Priority {
        requested.map_or(max, |r| r.max(max))
    }
}

impl FromStr for Priority {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "high" => Ok(Priority::High),
            "normal" => Ok(Priority::Normal),
            "batch" => Ok(Priority::Batch),
            other => Err(format!("`{other}` is not a priority (high, normal, batch)")),
        }
    }
}

/// Which backend served an admission (its settlement goes to the same one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Used {
    Local,
    Redis,
}

pub struct Access {
    pub cfg: AccessConfig,
    pub keys: KeyCache,
    pub local: LocalBackend,
    pub redis: Option<RedisBackend>,
    pub gate: Arc<Gate>,
    pub alerts: Alerter,
    pub audit: Arc<Audit>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// The listener is on a loopback address (open mode is possible).
    loopback: bool,
}

/// The listener must not be reachable from other machines without an admin credential.
pub fn check_listener(config: &Config, addr: SocketAddr) -> Result<(), String> {
    if addr.ip().is_loopback() || config.admin_key.is_some() {
        return Ok(());
    }
    Err(format!(
        "refusing to listen on {addr} without an admin credential: set GATEHOUSE_ADMIN_KEY to a \
         long random secret (for example the output of `openssl rand -hex 32`) and create API \
         keys with `gatehouse keys create`, or listen on a loopback address such as 127.0.0.1:8080"
    ))
}

impl Access {
    /// Loads the key set, connects Redis (without waiting for it) and seeds budgets.
    pub async fn start(
        config: &Config,
        store: Store,
        metrics: Arc<Metrics>,
        audit: Arc<Audit>,
        addr: SocketAddr,
    ) -> Result<(Arc<Access>, AccessTasks), String> {
        let cfg = config.access.clone();
        let keys = KeyCache::default();
        let version = store.keys_version().await.map_err(|e| e.to_string())?;
        let rows = store.list_keys().await.map_err(|e| e.to_string())?;
        keys.load(&rows, version);
        metrics
            .access
            .keys_loaded
            .set(i64::try_from(keys.len()).unwrap_or(0));
        let redis = match &cfg.redis {
            Some(r) => Some(RedisBackend::new(r).map_err(|e| format!("redis.url: {e}"))?),
            None => None,
        };
        let gate = Arc::new(Gate::new(
            cfg.concurrency.max_in_flight,
            cfg.concurrency.max_queued,
            metrics.access.upstream_in_flight.clone(),
            metrics.access.queued.clone(),
        ));
        let alerts = Alerter::new(
            cfg.budgets.alert_webhook_url.clone(),
            cfg.budgets.alert_timeout,
            metrics.access.alert_failures.clone(),
        );
        let access = Arc::new(Access {
            cfg,
            keys,
            local: LocalBackend::new(),
            redis,
            gate,
            alerts,
            audit,
            store,
            metrics,
            loopback: addr.ip().is_loopback(),
        });
        if let Some(r) = &access.redis {
            let up = r.ping().await.is_ok();
            r.set_up(up);
            access.metrics.access.redis_up.set(i64::from(up));
            if up {
                tracing::info!("redis backend connected: limits, leases and budgets are shared");
            } else {
                tracing::error!(
                    "redis backend unreachable at startup: rate limits are per instance and budgeted requests are refused until it answers"
                );
            }
        }
        access.seed_budgets().await;
        if access.open_mode() {
            tracing::warn!(
                "OPEN MODE: no API keys exist, so every program on this machine can use this \
                 gateway without a key. Create one with `gatehouse keys create --name NAME` (or \
                 POST /admin/api/keys) to require keys from then on."
            );
        } else if !access.keys.any_keys() {
            tracing::warn!(
                "no API keys exist yet: API calls are refused (401) until one is created"
            );
        }
        let tasks = tasks::spawn(Arc::clone(&access));
        Ok((access, tasks))
    }

    /// No key was ever created and the listener is loopback: requests need no key.
    pub fn open_mode(&self) -> bool {
        self.loopback && !self.keys.any_keys()
    }

    /// Run a plan on Redis when it is up, else in process. A Redis failure marks it down and
    /// falls back: rate buckets and leases locally, budgets per the failure policy.
    pub async fn run_plan(&self, plan: &Plan) -> Result<(Verdict, Used), BudgetUnavailable> {
        if plan.is_empty() {
            // Nothing to check (open mode without global limits): no backend round trip.
            let none = Verdict::Admitted {
                buckets: Vec::new(),
                budgets: Vec::new(),
            };
            return Ok((none, Used::Local));
        }
        if let Some(r) = &self.redis {
            if r.is_up() {
                match r.admit(plan).await {
                    Ok(v) => return Ok((v, Used::Redis)),
                    Err(e) => self.redis_failed("admit", &e),
                }
            }
            self.metrics
                .access
                .redis_fallbacks
                .get_or_create(&metrics::OpLabel { op: "admit" })
                .inc();
            if !plan.budgets.is_empty() {
                if !self.cfg.budget_fail_open {
                    return Err(BudgetUnavailable);
                }
                let mut without = plan.clone();
                without.budgets.clear();
                return Ok((self.local.admit(&without, now_ms()), Used::Local));
            }
        }
        Ok((self.local.admit(plan, now_ms()), Used::Local))
    }

    pub fn redis_failed(&self, op: &'static str, e: &redis::RedisError) {
        self.metrics
            .access
            .redis_errors
            .get_or_create(&metrics::OpLabel { op })
            .inc();
        if let Some(r) = &self.redis
            && r.set_up(false)
        {
            self.metrics.access.redis_up.set(0);
            tracing::error!(error = %e, op, "redis backend down: rate limits fall back to per-instance limits; budgeted requests are refused unless redis.budget_fail_open");
        }
    }

    /// Settle on Redis, retrying a little: an unsettled reservation would hold budget until
    /// its period ends. `None` when it could not be applied (logged and counted).
    pub async fn settle_on_redis(
        &self,
        s: &Settlement,
        alert: &admit::AlertContext,
    ) -> Option<Vec<plan::Crossed>> {
        let r = self.redis.as_ref()?;
        for attempt in 0..3u32 {
            match r.settle(s).await {
                Ok(c) => return Some(c),
                Err(e) => {
                    self.redis_failed("settle", &e);
                    tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
                }
            }
        }
        self.metrics.access.settle_failures.inc();
        tracing::error!(
            key_id = alert.key_id,
            "could not settle a request on redis: its token estimate and budget reservation stay charged"
        );
        None
    }

    /// Alert (once per period and threshold) for the budgets a settlement pushed over a mark.
    pub fn fire_crossed(
        &self,
        s: &Settlement,
        crossed: Vec<plan::Crossed>,
        alert: &admit::AlertContext,
    ) {
        for c in crossed {
            let Some(b) = s.budgets.get(c.budget) else {
                continue;
            };
            self.metrics
                .access
                .budget_alerts
                .get_or_create(&metrics::ThresholdLabel {
                    scope: b.scope.as_str(),
                    percent: c.percent,
                })
                .inc();
            let keyed = b.scope != plan::BudgetScope::GlobalDaily;
            self.alerts.fire(alerts::BudgetAlert {
                event: "budget_threshold",
                scope: b.scope.as_str(),
                key_id: alert.key_id.filter(|_| keyed),
                key_name: alert.key_name.clone().filter(|_| keyed),
                period: b.key.rsplit(':').next().unwrap_or_default().to_owned(),
                percent: c.percent,
                limit_micros: b.limit,
                spent_micros: c.spent,
            });
        }
    }

    /// Budget state keys of a key (daily, monthly) and the global daily budget, for now.
    pub fn budget_keys(key_id: Option<i64>, now: i64) -> BudgetKeys {
        let (day, _, day_end) = plan::period::day(now);
        let (month, _, month_end) = plan::period::month(now);
        BudgetKeys {
            key_daily: key_id.map(|k| format!("bu:k:{k}:d:{day}")),
            key_monthly: key_id.map(|k| format!("bu:k:{k}:m:{month}")),
            global_daily: format!("bu:g:d:{day}"),
            day_end,
            month_end,
        }
    }

    /// Spend of the current periods from the ledger into the backend, so a restart (or a Redis
    /// that lost its data) does not forget what was spent.
    pub async fn seed_budgets(&self) {
        let now = now_ms();
        let (_, day_start, day_end) = plan::period::day(now);
        let (_, month_start, month_end) = plan::period::month(now);
        let mut seeds: Vec<(String, i64, i64)> = Vec::new();
        let keys: Vec<_> = self
            .store
            .list_keys()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|k| {
                k.revoked_at_ms.is_none()
                    && (k.daily_budget_micros.is_some() || k.monthly_budget_micros.is_some())
            })
            .collect();
        for k in &keys {
            let bk = Access::budget_keys(Some(k.id), now);
            let reset = k.budget_reset_at_ms.unwrap_or(0);
            for (key, since, end, on) in [
                (
                    bk.key_daily,
                    day_start,
                    day_end,
                    k.daily_budget_micros.is_some(),
                ),
                (
                    bk.key_monthly,
                    month_start,
                    month_end,
                    k.monthly_budget_micros.is_some(),
                ),
            ] {
                if let (Some(key), true) = (key, on) {
                    match self.store.cost_since(Some(k.id), since.max(reset)).await {
                        Ok(spent) => seeds.push((key, spent, end)),
                        Err(e) => {
                            tracing::error!(error = %e, key_id = k.id, "could not read spend to seed a budget")
                        }
                    }
                }
            }
        }
        if self.cfg.budgets.global_daily_micros.is_some() {
            match self.store.cost_since(None, day_start).await {
                Ok(spent) => {
                    seeds.push((Access::budget_keys(None, now).global_daily, spent, day_end))
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not read today's spend to seed the global budget")
                }
            }
        }
        for (key, spent, end) in seeds {
            match &self.redis {
                Some(r) if r.is_up() => {
                    if let Err(e) = r.seed_budget(&key, spent, end).await {
                        self.redis_failed("seed", &e);
                    }
                }
                Some(_) => {}
                None => self.local.seed_budget(&key, spent, end),
            }
        }
    }
}

/// Budgets could not be checked (Redis down, `budget_fail_open` off).
#[derive(Debug, Clone, Copy)]
pub struct BudgetUnavailable;

pub struct BudgetKeys {
    pub key_daily: Option<String>,
    pub key_monthly: Option<String>,
    pub global_daily: String,
    pub day_end: i64,
    pub month_end: i64,
}

/// The access part of `/ready`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessStatus {
    /// `healthy`, or `degraded` while a configured Redis does not answer (rate limits per
    /// instance, budgeted requests refused unless `redis.budget_fail_open`).
    pub status: &'static str,
    /// `in-process` or `redis`.
    pub backend: &'static str,
    /// `up` or `down`, when Redis is configured.
    pub redis: Option<&'static str>,
    /// No API key exists and the listener is loopback: requests need no key.
    pub open_mode: bool,
    pub keys: usize,
    pub concurrency: ConcurrencyStatus,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConcurrencyStatus {
    pub in_flight: usize,
    pub capacity: usize,
    pub queued_high: usize,
    pub queued_normal: usize,
    pub queued_batch: usize,
}

impl Access {
    pub fn status(&self) -> AccessStatus {
        let (in_flight, [high, normal, batch]) = self.gate.snapshot();
        let redis = self
            .redis
            .as_ref()
            .map(|r| if r.is_up() { "up" } else { "down" });
        AccessStatus {
            status: if redis == Some("down") {
                "degraded"
            } else {
                "healthy"
            },
            backend: if self.redis.is_some() {
                "redis"
            } else {
                "in-process"
            },
            redis,
            open_mode: self.open_mode(),
            keys: self.keys.len(),
            concurrency: ConcurrencyStatus {
                in_flight,
                capacity: self.gate.capacity(),
                queued_high: high,
                queued_normal: normal,
                queued_batch: batch,
            },
        }
    }
}
