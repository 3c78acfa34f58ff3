//! The in-process backend: rate-limit buckets, per-key concurrency counts and budget
//! reservations in one sharded map. An admission locks the shards it touches (in index order, so
//! two admissions never deadlock), checks everything, and only then charges everything: the
//! same all-or-nothing contract as the Redis script.
//!
//! Memory stays bounded: a bucket whose TAT has passed is identical to an absent one, a count at
//! zero is removed, and a budget is kept one day past its period; the sweeper drops them all.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::time::Instant;

use super::gcra::{self, Check};
use super::plan::{BucketState, BudgetState, Crossed, Plan, Settlement, THRESHOLDS, Verdict};

const SHARDS: usize = 32;
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy)]
enum Slot {
    Tat(i64),
    Lease(u64),
    Budget(Budget),
}

#[derive(Debug, Clone, Copy, Default)]
struct Budget {
    spent: i64,
    reserved: i64,
    /// Bit i set: threshold `THRESHOLDS[i]` already alerted this period.
    alerted: u8,
    expires_ms: i64,
}

type Shard = HashMap<String, Slot>;

pub struct LocalBackend {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    base: Instant,
}

impl Default for LocalBackend {
    fn default() -> Self {
        LocalBackend::new()
    }
}

struct Locked<'a> {
    guards: Vec<(usize, MutexGuard<'a, Shard>)>,
    backend: &'a LocalBackend,
}

impl Locked<'_> {
    fn map(&mut self, key: &str) -> &mut Shard {
        let idx = self.backend.shard_of(key);
        let pos = self.guards.iter().position(|(i, _)| *i == idx).unwrap_or(0);
        &mut self.guards[pos].1
    }

    fn tat(&mut self, key: &str) -> Option<i64> {
        match self.map(key).get(key) {
            Some(Slot::Tat(t)) => Some(*t),
            _ => None,
        }
    }

    fn count(&mut self, key: &str) -> u64 {
        match self.map(key).get(key) {
            Some(Slot::Lease(n)) => *n,
            _ => 0,
        }
    }

    fn budget(&mut self, key: &str) -> Budget {
        match self.map(key).get(key) {
            Some(Slot::Budget(b)) => *b,
            _ => Budget::default(),
        }
    }

    fn put(&mut self, key: &str, slot: Slot) {
        self.map(key).insert(key.to_owned(), slot);
    }

    fn remove(&mut self, key: &str) {
        self.map(key).remove(key);
    }
}

impl LocalBackend {
    pub fn new() -> LocalBackend {
        LocalBackend {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            base: Instant::now(),
        }
    }

    fn shard_of(&self, key: &str) -> usize {
        usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0)
    }

    /// Monotonic microseconds (tokio's clock, so tests can pause it).
    pub fn now_us(&self) -> i64 {
        gcra::micros(Instant::now().duration_since(self.base))
    }

    fn lock<'a>(&'a self, keys: impl Iterator<Item = &'a str>) -> Locked<'a> {
        let mut idx: Vec<usize> = keys.map(|k| self.shard_of(k)).collect();
        idx.sort_unstable();
        idx.dedup();
        let guards = idx
            .into_iter()
            .map(|i| {
                (
                    i,
                    self.shards[i]
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner),
                )
            })
            .collect();
        Locked {
            guards,
            backend: self,
        }
    }

    /// Check and charge everything in `plan`, or nothing.
    pub fn admit(&self, plan: &Plan, now_ms: i64) -> Verdict {
        let now = self.now_us();
        let keys = plan
            .buckets
            .iter()
            .map(|b| b.key.as_str())
            .chain(plan.lease.iter().map(|l| l.key.as_str()))
            .chain(plan.budgets.iter().map(|b| b.key.as_str()));
        let mut locked = self.lock(keys);
        let mut tats = Vec::with_capacity(plan.buckets.len());
        for (index, b) in plan.buckets.iter().enumerate() {
            match gcra::check(locked.tat(&b.key), now, b.cost, b.limit, b.period) {
                Check::Allow { new_tat } => tats.push(new_tat),
                Check::Deny { retry_us } => {
                    return Verdict::RateLimited {
                        index,
                        retry_after: retry_us
                            .map(|us| std::time::Duration::from_micros(us.unsigned_abs())),
                    };
                }
            }
        }
        if let Some(l) = &plan.lease
            && locked.count(&l.key) >= l.max
        {
            return Verdict::TooManyConcurrent;
        }
        let mut budgets = Vec::with_capacity(plan.budgets.len());
        for (index, c) in plan.budgets.iter().enumerate() {
            let b = locked.budget(&c.key);
            let state = BudgetState {
                spent: b.spent,
                reserved: b.reserved,
            };
            if c.amount > 0 && b.spent + b.reserved + c.amount > c.limit {
                return Verdict::OverBudget { index, state };
            }
            budgets.push(state);
        }
        for (b, tat) in plan.buckets.iter().zip(&tats) {
            locked.put(&b.key, Slot::Tat(*tat));
        }
        if let Some(l) = &plan.lease {
            let n = locked.count(&l.key);
            locked.put(&l.key, Slot::Lease(n + 1));
        }
        for c in &plan.budgets {
            let mut b = locked.budget(&c.key);
            b.reserved += c.amount;
            b.expires_ms = b
                .expires_ms
                .max(c.period_end_ms + DAY_MS)
                .max(now_ms + DAY_MS);
            locked.put(&c.key, Slot::Budget(b));
        }
        Verdict::Admitted {
            buckets: tats
                .iter()
                .map(|t| BucketState { ahead_us: t - now })
                .collect(),
            budgets,
        }
    }

    /// Correct token buckets, release the lease, book actual costs; returns the thresholds
    /// crossed for the first time.
    pub fn settle(&self, s: &Settlement, now_ms: i64) -> Vec<Crossed> {
        let now = self.now_us();
        let keys = s
            .tokens
            .iter()
            .map(|t| t.key.as_str())
            .chain(s.lease.iter().map(|(k, _)| k.as_str()))
            .chain(s.budgets.iter().map(|b| b.key.as_str()));
        let mut locked = self.lock(keys);
        for t in &s.tokens {
            if t.delta == 0 {
                continue;
            }
            let tat = gcra::correct(locked.tat(&t.key), now, t.delta, t.limit, t.period);
            if tat <= now {
                locked.remove(&t.key);
            } else {
                locked.put(&t.key, Slot::Tat(tat));
            }
        }
        if let Some((key, _)) = &s.lease {
            match locked.count(key) {
                0 | 1 => locked.remove(key),
                n => locked.put(key, Slot::Lease(n - 1)),
            }
        }
        let mut crossed = Vec::new();
        for (i, c) in s.budgets.iter().enumerate() {
            let mut b = locked.budget(&c.key);
            b.reserved = (b.reserved - c.reserved).max(0);
            b.spent += c.actual;
            b.expires_ms = b
                .expires_ms
                .max(c.period_end_ms + DAY_MS)
                .max(now_ms + DAY_MS);
            for (bit, pct) in THRESHOLDS.iter().enumerate() {
                let flag = 1u8 << bit;
                if c.limit > 0
                    && i128::from(b.spent) * 100 >= i128::from(c.limit) * i128::from(*pct)
                    && b.alerted & flag == 0
                {
                    b.alerted |= flag;
                    crossed.push(Crossed {
                        budget: i,
                        percent: *pct,
                        spent: b.spent,
                    });
                }
            }
            locked.put(&c.key, Slot::Budget(b));
        }
        crossed
    }

    /// Set a budget's spent amount (seeding from the ledger at startup).
    pub fn seed_budget(&self, key: &str, spent: i64, period_end_ms: i64) {
        let mut locked = self.lock(std::iter::once(key));
        let mut b = locked.budget(key);
        b.spent = spent;
        b.expires_ms = period_end_ms + DAY_MS;
        locked.put(key, Slot::Budget(b));
    }

    /// Start a budget over: nothing spent, alerts re-armed (reservations in flight stay).
    pub fn reset_budget(&self, key: &str) {
        let mut locked = self.lock(std::iter::once(key));
        let mut b = locked.budget(key);
        b.spent = 0;
        b.alerted = 0;
        locked.put(key, Slot::Budget(b));
    }

    pub fn budget_state(&self, key: &str) -> BudgetState {
        let b = self.lock(std::iter::once(key)).budget(key);
        BudgetState {
            spent: b.spent,
            reserved: b.reserved,
        }
    }

    /// How far a bucket's TAT is ahead of now (0: full).
    pub fn bucket_ahead(&self, key: &str) -> i64 {
        let now = self.now_us();
        self.lock(std::iter::once(key))
            .tat(key)
            .map_or(0, |t| (t - now).max(0))
    }

    /// Drop state that no longer matters; returns how many entries remain.
    pub fn sweep(&self, now_ms: i64) -> usize {
        let now = self.now_us();
        let mut left = 0;
        for shard in &*self.shards {
            let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
            map.retain(|_, slot| match slot {
                Slot::Tat(t) => *t > now,
                Slot::Lease(n) => *n > 0,
                Slot::Budget(b) => b.expires_ms > now_ms || b.reserved > 0,
            });
            left += map.len();
        }
        left
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

#[cfg(test)]
#[path = "local_tests.rs"]
mod tests;
