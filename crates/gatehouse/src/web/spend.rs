//! What each chat user spent today, from the usage records of their requests: the numbers of
//! the chat's cost widget (`GET /web/api/usage`) and the per-user daily budget.
//!
//! The web API registers each request id with its user; the usage guard reports every record it
//! writes ([`Spend::observe`]), before the last byte of a stream goes out, so the numbers are
//! current when the client sees `[DONE]`. Totals are kept in memory per instance and start from
//! zero after a restart; a request in flight is not reserved against the budget (a user can
//! overshoot by the requests they have running at once).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use store::{Route, UsageRecord};
use utoipa::ToSchema;

pub const DAY_MS: i64 = 86_400_000;
/// Requests per user kept for the widget to match costs to messages.
const RECENT: usize = 50;
/// Users tracked before yesterday's entries are swept.
const SWEEP_AT: usize = 10_000;

/// One request of the user, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RequestCost {
    pub request_id: String,
    pub model: String,
    pub status: i32,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_micros: i64,
}

/// A user's totals for one UTC day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserDay {
    pub day: i64,
    pub cost_micros: i64,
    pub requests: i64,
    /// Chat requests answered with status 200.
    pub messages: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub recent: VecDeque<RequestCost>,
}

#[derive(Default)]
pub struct Spend {
    /// Request id → user, while the request runs.
    pending: Mutex<HashMap<String, String>>,
    days: Mutex<HashMap<String, UserDay>>,
}

impl Spend {
    /// Attribute the usage records of `request_id` to `user`.
    pub fn register(&self, request_id: &str, user: &str) {
        if let Ok(mut p) = self.pending.lock() {
            p.insert(request_id.to_owned(), user.to_owned());
        }
    }

    /// The request is over: nothing more will be recorded for it.
    pub fn unregister(&self, request_id: &str) {
        if let Ok(mut p) = self.pending.lock() {
            p.remove(request_id);
        }
    }

    /// Called by the usage guard for every record it writes.
    pub fn observe(&self, r: &UsageRecord) {
        let user = match self.pending.lock() {
            Ok(p) => match p.get(&r.request_id) {
                Some(u) => u.clone(),
                None => return,
            },
            Err(_) => return,
        };
        self.add(&user, r, r.ts_ms.div_euclid(DAY_MS));
    }

    fn add(&self, user: &str, r: &UsageRecord, day: i64) {
        let Ok(mut days) = self.days.lock() else {
            return;
        };
        if days.len() >= SWEEP_AT && !days.contains_key(user) {
            days.retain(|_, d| d.day >= day);
        }
        let d = days.entry(user.to_owned()).or_default();
        if d.day != day {
            *d = UserDay {
                day,
                ..UserDay::default()
            };
        }
        d.cost_micros += r.cost_micros;
        d.requests += 1;
        if r.status == 200 && r.route == Route::Chat {
            d.messages += 1;
        }
        d.prompt_tokens += r.prompt_tokens;
        d.completion_tokens += r.completion_tokens;
        if let Some(same) = d.recent.iter_mut().find(|c| c.request_id == r.request_id) {
            // A second record of one request (a conversation summary before the reply).
            same.cost_micros += r.cost_micros;
            same.prompt_tokens += r.prompt_tokens;
            same.completion_tokens += r.completion_tokens;
            same.status = r.status;
            return;
        }
        if d.recent.len() == RECENT {
            d.recent.pop_front();
        }
        d.recent.push_back(RequestCost {
            request_id: r.request_id.clone(),
            model: r.model.clone(),
            status: r.status,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            cost_micros: r.cost_micros,
        });
    }

    /// The user's totals for `day` (zeros when they spent nothing).
    pub fn today(&self, user: &str, day: i64) -> UserDay {
        self.days
            .lock()
            .ok()
            .and_then(|d| d.get(user).filter(|u| u.day == day).cloned())
            .unwrap_or(UserDay {
                day,
                ..UserDay::default()
            })
    }
}

/// Dollars with two decimals, more only when the amount needs them: `$1.00`, `$0.001234`.
pub fn format_usd(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    let mut frac = format!("{:06}", m % 1_000_000);
    while frac.len() > 2 && frac.ends_with('0') {
        frac.pop();
    }
    format!("{sign}${}.{frac}", m / 1_000_000)
}

/// `YYYY-MM-DD` of a day number since the Unix epoch (the proleptic Gregorian calendar).
pub fn format_day(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, cost: i64, status: i32, route: Route) -> UsageRecord {
        UsageRecord {
            request_id: id.into(),
            ts_ms: 20_000 * DAY_MS + 5,
            key_id: None,
            route,
            model: "mock-1".into(),
            provider: "mock".into(),
            upstream_model: "mock-1".into(),
            prompt_tokens: 10,
            completion_tokens: 5,
            cached_tokens: 0,
            cost_micros: cost,
            latency_ms: 1,
            ttft_ms: None,
            status,
            error_code: None,
            cache_status: store::CacheStatus::None,
            flags: 0,
            attempts: 1,
            served_by: None,
            fallback_reason: None,
            assistant_version_id: None,
            variant: None,
            conversation_id: None,
            cost_saved_micros: 0,
        }
    }

    #[test]
    fn only_registered_requests_count_and_days_roll_over() {
        let s = Spend::default();
        s.register("r1", "web:a");
        s.register("r2", "web:a");
        s.observe(&record("r1", 30, 200, Route::Chat));
        s.observe(&record("r2", 12, 502, Route::Chat));
        // Not registered: another user's or an API client's request.
        s.observe(&record("r3", 1_000, 200, Route::Chat));
        s.unregister("r1");
        // After unregistering nothing more is attributed.
        s.observe(&record("r1", 7, 200, Route::Chat));
        let t = s.today("web:a", 20_000);
        assert_eq!(
            (
                t.cost_micros,
                t.requests,
                t.messages,
                t.prompt_tokens,
                t.completion_tokens
            ),
            (42, 2, 1, 20, 10)
        );
        assert_eq!(t.recent.len(), 2);
        assert_eq!(t.recent[1].status, 502);
        // The next day starts from zero.
        assert_eq!(s.today("web:a", 20_001).cost_micros, 0);
        assert_eq!(s.today("web:b", 20_000).requests, 0);
    }

    #[test]
    fn two_records_of_one_request_add_up() {
        let s = Spend::default();
        s.register("r1", "u");
        s.observe(&record("r1", 3, 200, Route::Chat));
        s.observe(&record("r1", 4, 200, Route::Chat));
        let t = s.today("u", 20_000);
        assert_eq!(t.recent.len(), 1);
        assert_eq!(t.recent[0].cost_micros, 7);
        assert_eq!(t.cost_micros, 7);
    }

    #[test]
    fn dollars_keep_the_digits_that_matter() {
        assert_eq!(format_usd(1_000_000), "$1.00");
        assert_eq!(format_usd(250_000), "$0.25");
        assert_eq!(format_usd(1_234), "$0.001234");
        assert_eq!(format_usd(12_345_600), "$12.3456");
        assert_eq!(format_usd(0), "$0.00");
        assert_eq!(format_usd(-5), "-$0.000005");
    }

    #[test]
    fn days_format_as_dates() {
        assert_eq!(format_day(0), "1970-01-01");
        assert_eq!(format_day(19_723), "2024-01-01");
        assert_eq!(format_day(19_782), "2024-02-29");
        assert_eq!(format_day(-1), "1969-12-31");
    }
}
