//! The Redis backend: the same plans as [`super::local`], applied atomically by two Lua scripts
//! (admit, settle) with Redis's own clock, so every instance sharing the server shares every
//! limit, lease and budget. One multiplexed, self-reconnecting connection (`ConnectionManager`),
//! made by the probe in [`RedisBackend::ping`] (so a Redis that is down at startup is picked up
//! when it comes); every call is bounded by the configured timeout, so a dead or black-holed
//! server costs at most that long before the caller falls back.
//!
//! Keys (under the configured prefix): `rl:…` GCRA TATs (integer µs, expiring once the bucket
//! is full again), `cc:…` sorted sets of leases scored by expiry, `bu:…` hashes with `spent`,
//! `reserved` and the alert flags `a80`/`a100`, expiring a day after their period.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};
use secrecy::ExposeSecret;

use super::gcra;
use super::plan::{BucketState, BudgetState, Crossed, Plan, Settlement, THRESHOLDS, Verdict};
use crate::config::access::RedisConfig;

/// `KEYS`: buckets, then the lease (0 or 1), then budgets. `ARGV`: counts, then per bucket
/// (increment µs, period µs), the lease (max, id, ttl ms), per budget (limit, amount, expire-at
/// s). Returns `{0, ahead µs per bucket…, spent, reserved per budget…}` when admitted,
/// `{1, index, retry µs or -1}`, `{2}` or `{3, index, spent, reserved}` when not.
const ADMIT: &str = r"
local nb, nl, ng = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local a = 4
local tats = {}
for i = 1, nb do
  local inc, period, limit, cost = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  a = a + 4
  if cost > limit then return {1, i, -1} end
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  local nt = tat + inc
  if nt - now > period then return {1, i, nt - period - now} end
  tats[i] = nt
end
local lease_max, lease_id, lease_ttl
if nl == 1 then
  lease_max, lease_id, lease_ttl = tonumber(ARGV[a]), ARGV[a + 1], tonumber(ARGV[a + 2])
  a = a + 3
  redis.call('ZREMRANGEBYSCORE', KEYS[nb + 1], '-inf', now)
  if redis.call('ZCARD', KEYS[nb + 1]) >= lease_max then return {2} end
end
local out = {0}
local budgets = {}
for j = 1, ng do
  local key = KEYS[nb + nl + j]
  local limit, amount, exp = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  a = a + 3
  local v = redis.call('HMGET', key, 'spent', 'reserved')
  local spent, reserved = tonumber(v[1] or '0'), tonumber(v[2] or '0')
  if amount > 0 and spent + reserved + amount > limit then return {3, j, spent, reserved} end
  budgets[j] = {key, amount, exp, spent, reserved}
end
for i = 1, nb do
  redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', math.floor((tats[i] - now) / 1000) + 1000)
  out[#out + 1] = tats[i] - now
end
if nl == 1 then
  redis.call('ZADD', KEYS[nb + 1], string.format('%.0f', now + lease_ttl * 1000), lease_id)
  redis.call('PEXPIRE', KEYS[nb + 1], lease_ttl)
end
for j = 1, ng do
  local b = budgets[j]
  redis.call('HINCRBY', b[1], 'reserved', string.format('%.0f', b[2]))
  redis.call('EXPIREAT', b[1], b[3])
  out[#out + 1] = b[4]
  out[#out + 1] = b[5]
end
return out
";

/// `KEYS`: token buckets, lease (0 or 1), budgets. `ARGV`: counts, per token bucket (signed
/// correction µs), the lease id, per budget (reserved, actual, limit, expire-at s). Returns the
/// thresholds crossed for the first time as `budget index × 1000 + percent`, each followed by
/// the spent amount.
const SETTLE: &str = r"
local nt, nl, ng = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local a = 4
for i = 1, nt do
  local delta = tonumber(ARGV[a])
  a = a + 1
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  local nt2 = tat + delta
  if nt2 <= now then
    redis.call('DEL', KEYS[i])
  else
    redis.call('SET', KEYS[i], string.format('%.0f', nt2), 'PX', math.floor((nt2 - now) / 1000) + 1000)
  end
end
if nl == 1 then
  redis.call('ZREM', KEYS[nt + 1], ARGV[a])
  a = a + 1
end
local out = {}
for j = 1, ng do
  local key = KEYS[nt + nl + j]
  local reserved, actual, limit, exp = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  a = a + 4
  local r = redis.call('HINCRBY', key, 'reserved', string.format('%.0f', -reserved))
  if r < 0 then redis.call('HSET', key, 'reserved', 0) end
  local spent = redis.call('HINCRBY', key, 'spent', string.format('%.0f', actual))
  redis.call('EXPIREAT', key, exp)
  if limit > 0 then
    for _, pct in ipairs({80, 100}) do
      if spent * 100 >= limit * pct and redis.call('HSETNX', key, 'a' .. pct, 1) == 1 then
        out[#out + 1] = j * 1000 + pct
        out[#out + 1] = spent
      end
    end
  end
end
return out
";

/// Current TAT ahead of now (µs), for `GET /v1/usage`.
const PEEK: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then return 0 end
return tat - now
";

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("redis timed out after {0:?}")]
    Timeout(Duration),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("unexpected redis reply: {0}")]
    Reply(String),
    #[error("not connected to redis")]
    NotConnected,
}

pub struct RedisBackend {
    client: redis::Client,
    conn: RwLock<Option<ConnectionManager>>,
    timeout: Duration,
    prefix: String,
    up: AtomicBool,
    admit: Script,
    settle: Script,
    peek: Script,
}

fn int(v: &Value) -> Result<i64, RedisError> {
    match v {
        Value::Int(i) => Ok(*i),
        other => Err(RedisError::Reply(format!("{other:?}"))),
    }
}

fn ints(v: Value) -> Result<Vec<i64>, RedisError> {
    match v {
        Value::Array(items) => items.iter().map(int).collect(),
        other => Err(RedisError::Reply(format!("{other:?}"))),
    }
}

fn expire_at_s(period_end_ms: i64) -> i64 {
    period_end_ms / 1_000 + 86_400
}

impl RedisBackend {
    /// Builds the client without connecting (the first [`RedisBackend::ping`] connects, and a
    /// server that is down at startup is retried by the probe); fails only on an invalid URL.
    pub fn new(cfg: &RedisConfig) -> Result<RedisBackend, RedisError> {
        let client = redis::Client::open(cfg.url.expose_secret())?;
        Ok(RedisBackend {
            client,
            conn: RwLock::new(None),
            timeout: cfg.timeout,
            prefix: cfg.key_prefix.clone(),
            up: AtomicBool::new(false),
            admit: Script::new(ADMIT),
            settle: Script::new(SETTLE),
            peek: Script::new(PEEK),
        })
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Record the server's state; returns true when it changed.
    pub fn set_up(&self, up: bool) -> bool {
        self.up.swap(up, Ordering::AcqRel) != up
    }

    /// The shared connection, if one was made.
    fn conn(&self) -> Result<ConnectionManager, RedisError> {
        self.conn
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(RedisError::NotConnected)
    }

    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.prefix)
    }

    async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, redis::RedisError>>,
    ) -> Result<T, RedisError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(RedisError::Timeout(self.timeout)),
        }
    }

    /// A round trip; connects first when there is no connection yet.
    pub async fn ping(&self) -> Result<(), RedisError> {
        if self.conn().is_err() {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(self.timeout)
                .set_response_timeout(self.timeout)
                .set_number_of_retries(1)
                .set_max_delay(500);
            let c = self
                .bounded(self.client.get_connection_manager_with_config(config))
                .await?;
            *self.conn.write().unwrap_or_else(PoisonError::into_inner) = Some(c);
        }
        let mut c = self.conn()?;
        let _: String = self.bounded(redis::cmd("PING").query_async(&mut c)).await?;
        Ok(())
    }

    pub async fn admit(&self, plan: &Plan) -> Result<Verdict, RedisError> {
        let mut inv = self.admit.prepare_invoke();
        for b in &plan.buckets {
            inv.key(self.key(&b.key));
        }
        if let Some(l) = &plan.lease {
            inv.key(self.key(&l.key));
        }
        for c in &plan.budgets {
            inv.key(self.key(&c.key));
        }
        inv.arg(plan.buckets.len())
            .arg(usize::from(plan.lease.is_some()))
            .arg(plan.budgets.len());
        for b in &plan.buckets {
            inv.arg(gcra::increment(b.cost, b.limit, b.period))
                .arg(gcra::micros(b.period))
                .arg(b.limit)
                .arg(b.cost);
        }
        if let Some(l) = &plan.lease {
            inv.arg(l.max)
                .arg(&l.id)
                .arg(u64::try_from(l.ttl.as_millis()).unwrap_or(u64::MAX));
        }
        for c in &plan.budgets {
            inv.arg(c.limit)
                .arg(c.amount)
                .arg(expire_at_s(c.period_end_ms));
        }
        let mut conn = self.conn()?;
        let reply: Value = self.bounded(inv.invoke_async(&mut conn)).await?;
        let v = ints(reply)?;
        let at = |i: usize| {
            v.get(i)
                .copied()
                .ok_or_else(|| RedisError::Reply(format!("{v:?}")))
        };
        let index = |i: usize| at(i).map(|n| usize::try_from(n - 1).unwrap_or(0));
        Ok(match at(0)? {
            0 => {
                let nb = plan.buckets.len();
                let buckets = (0..nb)
                    .map(|i| at(1 + i).map(|ahead_us| BucketState { ahead_us }))
                    .collect::<Result<_, _>>()?;
                let budgets = (0..plan.budgets.len())
                    .map(|j| {
                        Ok(BudgetState {
                            spent: at(1 + nb + 2 * j)?,
                            reserved: at(2 + nb + 2 * j)?,
                        })
                    })
                    .collect::<Result<_, RedisError>>()?;
                Verdict::Admitted { buckets, budgets }
            }
            1 => {
                let retry = at(2)?;
                Verdict::RateLimited {
                    index: index(1)?,
                    retry_after: (retry >= 0).then(|| Duration::from_micros(retry.unsigned_abs())),
                }
            }
            2 => Verdict::TooManyConcurrent,
            _ => Verdict::OverBudget {
                index: index(1)?,
                state: BudgetState {
                    spent: at(2)?,
                    reserved: at(3)?,
                },
            },
        })
    }

    pub async fn settle(&self, s: &Settlement) -> Result<Vec<Crossed>, RedisError> {
        let mut inv = self.settle.prepare_invoke();
        for t in &s.tokens {
            inv.key(self.key(&t.key));
        }
        if let Some((k, _)) = &s.lease {
            inv.key(self.key(k));
        }
        for b in &s.budgets {
            inv.key(self.key(&b.key));
        }
        inv.arg(s.tokens.len())
            .arg(usize::from(s.lease.is_some()))
            .arg(s.budgets.len());
        for t in &s.tokens {
            let step = gcra::increment(t.delta.unsigned_abs(), t.limit, t.period);
            inv.arg(if t.delta < 0 { -step } else { step });
        }
        if let Some((_, id)) = &s.lease {
            inv.arg(id);
        }
        for b in &s.budgets {
            inv.arg(b.reserved)
                .arg(b.actual)
                .arg(b.limit)
                .arg(expire_at_s(b.period_end_ms));
        }
        let mut conn = self.conn()?;
        let reply: Value = self.bounded(inv.invoke_async(&mut conn)).await?;
        let v = ints(reply)?;
        Ok(v.chunks(2)
            .filter_map(|c| match c {
                [code, spent] => Some(Crossed {
                    budget: usize::try_from(code / 1000 - 1).unwrap_or(0),
                    percent: u8::try_from(code % 1000).unwrap_or(0),
                    spent: *spent,
                }),
                _ => None,
            })
            .filter(|c| THRESHOLDS.contains(&c.percent))
            .collect())
    }

    /// Set a budget's spend unless the server already has it (several instances may seed).
    pub async fn seed_budget(
        &self,
        key: &str,
        spent: i64,
        period_end_ms: i64,
    ) -> Result<(), RedisError> {
        let k = self.key(key);
        let mut conn = self.conn()?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HSETNX")
            .arg(&k)
            .arg("spent")
            .arg(spent)
            .ignore()
            .cmd("EXPIREAT")
            .arg(&k)
            .arg(expire_at_s(period_end_ms))
            .ignore();
        self.bounded(pipe.query_async::<()>(&mut conn)).await
    }

    pub async fn reset_budget(&self, key: &str) -> Result<(), RedisError> {
        let k = self.key(key);
        let mut conn = self.conn()?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HSET")
            .arg(&k)
            .arg("spent")
            .arg(0)
            .ignore()
            .cmd("HDEL")
            .arg(&k)
            .arg("a80")
            .arg("a100")
            .ignore();
        self.bounded(pipe.query_async::<()>(&mut conn)).await
    }

    pub async fn budget_state(&self, key: &str) -> Result<BudgetState, RedisError> {
        let mut conn = self.conn()?;
        let (spent, reserved): (Option<i64>, Option<i64>) = self
            .bounded(
                redis::cmd("HMGET")
                    .arg(self.key(key))
                    .arg("spent")
                    .arg("reserved")
                    .query_async(&mut conn),
            )
            .await?;
        Ok(BudgetState {
            spent: spent.unwrap_or(0),
            reserved: reserved.unwrap_or(0),
        })
    }

    pub async fn bucket_ahead(&self, key: &str) -> Result<i64, RedisError> {
        let mut conn = self.conn()?;
        let mut inv = self.peek.prepare_invoke();
        inv.key(self.key(key));
        let v: Value = self.bounded(inv.invoke_async(&mut conn)).await?;
        int(&v)
    }
}
