//! What the `x-ratelimit-*` headers report, and where admission leaves it for the access
//! layer: the tightest request and token limits that applied to a request.

use std::sync::{Mutex, PoisonError};

use super::gcra;
use super::plan::{BucketState, Dim, Plan};

/// `x-ratelimit-*` values of one dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Triple {
    pub limit: u64,
    pub remaining: u64,
    pub reset_us: i64,
}

/// What the response headers report: the tightest request and token limits that applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitInfo {
    pub requests: Option<Triple>,
    pub tokens: Option<Triple>,
}

/// Where admission leaves [`LimitInfo`] (and a budget downgrade) for the layer to turn into
/// headers.
#[derive(Debug, Default)]
pub struct LimitSlot(Mutex<(Option<LimitInfo>, Option<String>)>);

impl LimitSlot {
    pub fn set(&self, info: LimitInfo) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).0 = Some(info);
    }

    pub fn get(&self) -> Option<LimitInfo> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).0
    }

    pub fn set_downgraded_from(&self, alias: String) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).1 = Some(alias);
    }

    pub fn downgraded_from(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .clone()
    }
}

/// The tightest limit of each dimension after an admitted plan.
pub fn limit_info(plan: &Plan, states: &[BucketState]) -> LimitInfo {
    let mut info = LimitInfo::default();
    for (b, s) in plan.buckets.iter().zip(states) {
        let t = Triple {
            limit: b.limit,
            remaining: gcra::remaining(s.ahead_us, b.limit, b.period),
            reset_us: s.ahead_us,
        };
        let slot = match b.dim {
            Dim::Requests => &mut info.requests,
            Dim::Tokens => &mut info.tokens,
        };
        if slot.is_none_or(|cur| t.remaining < cur.remaining) {
            *slot = Some(t);
        }
    }
    info
}
