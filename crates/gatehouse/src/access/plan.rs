//! What one admission asks of a backend ([`Plan`]), what it answers ([`Verdict`]), and what is
//! given back afterwards ([`Settlement`]). Both backends (in-process and Redis) take the same
//! plans and apply them all-or-nothing with the same arithmetic ([`super::gcra`]).

use std::time::Duration;

/// What a rate-limit bucket counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    Requests,
    Tokens,
}

/// Who a bucket belongs to (metric label and error message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Key,
    User,
    Global,
    Anonymous,
    Ip,
    Admin,
    WebChat,
    WhatsApp,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::User => "user",
            Scope::Global => "global",
            Scope::Anonymous => "anonymous",
            Scope::Ip => "ip",
            Scope::Admin => "admin",
            Scope::WebChat => "web_chat",
            Scope::WhatsApp => "whatsapp",
        }
    }
}

/// One GCRA bucket to charge `cost` units against `limit` per `period`.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// Backend key, e.g. `rl:k:12:r`.
    pub key: String,
    pub dim: Dim,
    pub scope: Scope,
    pub limit: u64,
    pub period: Duration,
    pub cost: u64,
}

/// A per-key concurrency slot.
#[derive(Debug, Clone)]
pub struct Lease {
    pub key: String,
    pub max: u64,
    /// Unique per admission (the Redis lease member).
    pub id: String,
    /// A lease not released by then (a crashed instance) stops counting.
    pub ttl: Duration,
}

/// Which budget a reservation is held against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetScope {
    KeyDaily,
    KeyMonthly,
    GlobalDaily,
}

impl BudgetScope {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetScope::KeyDaily => "key_daily",
            BudgetScope::KeyMonthly => "key_monthly",
            BudgetScope::GlobalDaily => "global_daily",
        }
    }
}

/// A reservation of `amount` micro-USD against `limit` for the period named in `key`.
#[derive(Debug, Clone)]
pub struct BudgetCharge {
    pub key: String,
    pub scope: BudgetScope,
    pub limit: i64,
    pub amount: i64,
    /// Unix ms when the period ends (state is kept a day longer).
    pub period_end_ms: i64,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub buckets: Vec<Bucket>,
    pub lease: Option<Lease>,
    pub budgets: Vec<BudgetCharge>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty() && self.lease.is_none() && self.budgets.is_empty()
    }
}

/// A bucket after an admitted charge: how far its theoretical arrival time is ahead of now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketState {
    pub ahead_us: i64,
}

/// A budget before this reservation was added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetState {
    pub spent: i64,
    pub reserved: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Everything was charged; one state per bucket and per budget, in plan order.
    Admitted {
        buckets: Vec<BucketState>,
        budgets: Vec<BudgetState>,
    },
    /// Bucket `index` is full; nothing was charged. `retry_after` is `None` when the cost is
    /// larger than the whole limit (it can never pass).
    RateLimited {
        index: usize,
        retry_after: Option<Duration>,
    },
    /// The key already has `max` requests in flight; nothing was charged.
    TooManyConcurrent,
    /// Budget `index` cannot take the reservation; nothing was charged.
    OverBudget { index: usize, state: BudgetState },
}

/// A token bucket to correct by the difference between estimated and actual tokens.
#[derive(Debug, Clone)]
pub struct TokenCorrection {
    pub key: String,
    pub limit: u64,
    pub period: Duration,
    /// Actual minus estimated tokens (negative gives capacity back).
    pub delta: i64,
}

/// A reservation to release, and the actual cost to book instead.
#[derive(Debug, Clone)]
pub struct BudgetSettle {
    pub key: String,
    pub scope: BudgetScope,
    pub limit: i64,
    pub reserved: i64,
    pub actual: i64,
    pub period_end_ms: i64,
}

#[derive(Debug, Clone, Default)]
pub struct Settlement {
    pub tokens: Vec<TokenCorrection>,
    /// (lease key, lease id)
    pub lease: Option<(String, String)>,
    pub budgets: Vec<BudgetSettle>,
}

/// A budget threshold crossed for the first time in its period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crossed {
    pub budget: usize,
    pub percent: u8,
    pub spent: i64,
}

/// Alert thresholds, percent of a budget.
pub const THRESHOLDS: [u8; 2] = [80, 100];

/// UTC calendar periods for budgets, without a date library.
pub mod period {
    const DAY_MS: i64 = 86_400_000;

    /// (year, month, day) of a day count since 1970-01-01 (H. Hinnant's algorithm).
    pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
        let z = z + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let y = yoe + era * 400;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
        let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
        (if m <= 2 { y + 1 } else { y }, m, d)
    }

    /// Days since 1970-01-01 of a civil date.
    pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let m = i64::from(m);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// `20261122` and the day's [start, end) in Unix ms.
    pub fn day(now_ms: i64) -> (String, i64, i64) {
        let days = now_ms.div_euclid(DAY_MS);
        let (y, m, d) = civil_from_days(days);
        (
            format!("{y:04}{m:02}{d:02}"),
            days * DAY_MS,
            (days + 1) * DAY_MS,
        )
    }

    /// `202611` and the month's [start, end) in Unix ms.
    pub fn month(now_ms: i64) -> (String, i64, i64) {
        let (y, m, _) = civil_from_days(now_ms.div_euclid(DAY_MS));
        let start = days_from_civil(y, m, 1) * DAY_MS;
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        let end = days_from_civil(ny, nm, 1) * DAY_MS;
        (format!("{y:04}{m:02}"), start, end)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn calendar_periods() {
            // 2024-02-29T12:00:00Z (a leap day) is 1709208000000 ms.
            let (id, start, end) = day(1_709_208_000_000);
            assert_eq!(
                (id.as_str(), start, end),
                ("20240229", 1_709_164_800_000, 1_709_251_200_000)
            );
            let (id, start, end) = month(1_709_208_000_000);
            // 2024-02-01T00:00Z and 2024-03-01T00:00Z.
            assert_eq!(
                (id.as_str(), start, end),
                ("202402", 1_706_745_600_000, 1_709_251_200_000)
            );
            // December rolls into January of the next year: 2025-12-31T23:59:59.999Z.
            let (id, _, end) = month(1_767_225_599_999);
            assert_eq!((id.as_str(), end), ("202512", 1_767_225_600_000));
            assert_eq!(day(0).0, "19700101");
            for days in [-1, 0, 59, 365, 11_016, 20_000, 60_000] {
                let (y, m, d) = civil_from_days(days);
                assert_eq!(days_from_civil(y, m, d), days);
            }
        }
    }
}
