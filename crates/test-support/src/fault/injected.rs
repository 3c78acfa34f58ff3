//! What the mock injected, counted per kind, for tests ([`crate::MockUpstream::injected`]) and
//! operators (`GET /mock/stats`) to compare with what the gateway reports.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Plan, PlannedFault};

/// Counts of injected faults. Faults apply to `POST /v1/chat/completions` and
/// `POST /v1/embeddings`; other routes are not counted.
///
/// `requests` is counted on arrival, everything else when the answer is produced (after the
/// delay), so a request whose client gave up during the delay counts in `requests` only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Injected {
    /// Requests faults applied to (random or requested with `x-mock-fault`).
    pub requests: u64,
    /// Answered as the behavior says, with no status, reset or cut injected (latency and drips
    /// may still have been added).
    pub clean: u64,
    /// Injected error answers by status (429s included).
    pub statuses: BTreeMap<u16, u64>,
    /// Connections closed without a response.
    pub resets: u64,
    /// Answers cut short (stream without `[DONE]`, or half a JSON body), then aborted.
    pub cuts: u64,
    /// Streamed answers sent with a per-chunk drip delay.
    pub drips: u64,
    /// Answers delayed by injected latency (> 0).
    pub delayed: u64,
    /// Sum of injected latency, in milliseconds (rounded down per answer).
    pub delay_ms_total: u64,
}

impl Injected {
    /// Injected answers with this status.
    pub fn status(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    /// Status, reset and cut faults together: the answers that were not clean.
    pub fn faults(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.resets + self.cuts
    }

    /// The `GET /mock/stats` body: the fields above, `statuses` keyed by the status as text.
    pub fn to_json(&self) -> Value {
        let statuses: serde_json::Map<String, Value> = self
            .statuses
            .iter()
            .map(|(status, count)| (status.to_string(), json!(count)))
            .collect();
        json!({
            "requests": self.requests,
            "clean": self.clean,
            "statuses": statuses,
            "resets": self.resets,
            "cuts": self.cuts,
            "drips": self.drips,
            "delayed": self.delayed,
            "delay_ms_total": self.delay_ms_total,
        })
    }

    pub(crate) fn record(&mut self, plan: &Plan, dripped: bool) {
        match plan.action {
            None => self.clean += 1,
            Some(PlannedFault::Status { status, .. }) => {
                *self.statuses.entry(status).or_default() += 1;
            }
            Some(PlannedFault::Reset) => self.resets += 1,
            Some(PlannedFault::Cut(_)) => self.cuts += 1,
        }
        if dripped {
            self.drips += 1;
        }
        if !plan.latency.is_zero() {
            self.delayed += 1;
            self.delay_ms_total += u64::try_from(plan.latency.as_millis()).unwrap_or(u64::MAX);
        }
    }
}
