//! GCRA (the generic cell rate algorithm), the arithmetic both backends share. Times are integer
//! microseconds. A bucket keeps one number, its theoretical arrival time (TAT). A charge of `cost`
//! units moves the TAT by `cost × period / limit`; it is allowed while the TAT stays within one
//! `period` of now. So a full `limit` may be used at once, after which units come back one per
//! `period / limit`: nothing resets at a window edge, so there is no double burst there.
//!
//! The Redis Lua scripts in [`super::redis`] implement exactly these formulas.

use std::time::Duration;

pub fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// TAT increment of `cost` units (rounded down to whole microseconds).
pub fn increment(cost: u64, limit: u64, period: Duration) -> i64 {
    if limit == 0 {
        return 0;
    }
    let v = i128::from(micros(period)) * i128::from(cost) / i128::from(limit);
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Allowed; the bucket's new TAT.
    Allow { new_tat: i64 },
    /// Denied; allowed again after this many microseconds (`None`: never, cost > limit).
    Deny { retry_us: Option<i64> },
}

/// Would charging `cost` to a bucket with TAT `tat` (absent: full) at `now` pass?
pub fn check(tat: Option<i64>, now: i64, cost: u64, limit: u64, period: Duration) -> Check {
    if cost > limit {
        return Check::Deny { retry_us: None };
    }
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat.saturating_add(increment(cost, limit, period));
    let period = micros(period);
    if new_tat - now > period {
        Check::Deny {
            retry_us: Some(new_tat - period - now),
        }
    } else {
        Check::Allow { new_tat }
    }
}

/// Apply a correction of `delta` units (negative gives capacity back) to a TAT.
pub fn correct(tat: Option<i64>, now: i64, delta: i64, limit: u64, period: Duration) -> i64 {
    let tat = tat.unwrap_or(now).max(now);
    let step = increment(delta.unsigned_abs(), limit, period);
    if delta >= 0 {
        tat.saturating_add(step)
    } else {
        (tat - step).max(now)
    }
}

/// Units that could still be charged right now, for a bucket whose TAT is `ahead_us` ahead.
pub fn remaining(ahead_us: i64, limit: u64, period: Duration) -> u64 {
    let period = micros(period);
    if period == 0 {
        return 0;
    }
    let free = (period - ahead_us.max(0)).max(0);
    u64::try_from(i128::from(free) * i128::from(limit) / i128::from(period)).unwrap_or(0)
}

/// OpenAI's duration format for `x-ratelimit-reset-*`: `20ms`, `1.2s`, `6m0s`.
pub fn format_reset(us: i64) -> String {
    let ms = (us.max(0) + 999) / 1_000;
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    if ms < 60_000 {
        let tenths = (ms + 99) / 100;
        return if tenths % 10 == 0 {
            format!("{}s", tenths / 10)
        } else {
            format!("{}.{}s", tenths / 10, tenths % 10)
        };
    }
    let secs = (ms + 999) / 1_000;
    format!("{}m{}s", secs / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn a_full_burst_then_one_per_interval() {
        // 50 per minute: 50 pass at t=0, the 51st waits 1.2 s.
        let mut tat = None;
        for i in 0..50 {
            match check(tat, 0, 1, 50, MIN) {
                Check::Allow { new_tat } => tat = Some(new_tat),
                Check::Deny { .. } => panic!("request {i} denied"),
            }
        }
        assert_eq!(tat, Some(60_000_000));
        assert_eq!(
            check(tat, 0, 1, 50, MIN),
            Check::Deny {
                retry_us: Some(1_200_000)
            }
        );
        // No reset at the minute edge: at t=60 s the bucket is full again (50 more), not doubled
        // early; at t=1.2 s exactly one more passes.
        assert_eq!(
            check(tat, 1_200_000, 1, 50, MIN),
            Check::Allow {
                new_tat: 61_200_000
            }
        );
        assert_eq!(
            check(tat, 1_199_999, 1, 50, MIN),
            Check::Deny { retry_us: Some(1) }
        );
        assert_eq!(remaining(60_000_000 - 1_200_000, 50, MIN), 1);
        assert_eq!(remaining(1_200_000, 50, MIN), 49);
        assert_eq!(remaining(0, 50, MIN), 50);
    }

    #[test]
    fn weighted_costs_and_corrections() {
        // 1,000 tokens per minute: a 600-token estimate passes, a further 500 does not.
        let Check::Allow { new_tat } = check(None, 0, 600, 1_000, MIN) else {
            panic!("denied")
        };
        assert_eq!(new_tat, 36_000_000);
        assert_eq!(
            check(Some(new_tat), 0, 500, 1_000, MIN),
            Check::Deny {
                retry_us: Some(6_000_000)
            }
        );
        // The call used 100 tokens: 500 come back, and then 500 more fit.
        let corrected = correct(Some(new_tat), 0, -500, 1_000, MIN);
        assert_eq!(corrected, 6_000_000);
        assert!(matches!(
            check(Some(corrected), 0, 500, 1_000, MIN),
            Check::Allow { .. }
        ));
        // A refund never moves the TAT before now; overuse is debt.
        assert_eq!(correct(Some(1_000), 5_000, -900, 1_000, MIN), 5_000);
        assert_eq!(correct(None, 0, 2_000, 1_000, MIN), 120_000_000);
        // Bad input: a cost larger than the whole limit can never pass.
        assert_eq!(
            check(None, 0, 1_001, 1_000, MIN),
            Check::Deny { retry_us: None }
        );
    }

    #[test]
    fn reset_format() {
        assert_eq!(format_reset(20_000), "20ms");
        assert_eq!(format_reset(1), "1ms");
        assert_eq!(format_reset(1_200_000), "1.2s");
        assert_eq!(format_reset(1_000_000), "1s");
        assert_eq!(format_reset(360_000_000), "6m0s");
        assert_eq!(format_reset(-5), "0ms");
    }
}
