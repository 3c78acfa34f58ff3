//! Metrics of keys, limits, concurrency, budgets, Redis and the audit log. Labels come from
//! closed sets (scopes, lanes, reasons).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScopeLabel {
    pub scope: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LaneLabel {
    pub lane: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    pub op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ThresholdLabel {
    pub scope: &'static str,
    pub percent: u8,
}

#[derive(Default)]
pub struct AccessMetrics {
    pub rate_limited: Family<ScopeLabel, Counter>,
    pub budget_rejected: Family<ReasonLabel, Counter>,
    pub budget_downgrades: Counter,
    pub budget_alerts: Family<ThresholdLabel, Counter>,
    pub auth_failures: Family<ReasonLabel, Counter>,
    pub upstream_in_flight: Gauge,
    pub queued: [Gauge; 3],
    pub queue_rejected: Family<LaneLabel, Counter>,
    pub redis_up: Gauge,
    pub redis_errors: Family<OpLabel, Counter>,
    pub redis_fallbacks: Family<OpLabel, Counter>,
    pub settle_failures: Counter,
    pub keys_loaded: Gauge,
    pub key_refresh_errors: Counter,
    pub limiter_entries: Gauge,
    pub audit_dropped: Counter,
    pub alert_failures: Counter,
}

impl AccessMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "rate_limited",
            "Requests refused by a rate limit, by scope",
            self.rate_limited.clone(),
        );
        r.register(
            "budget_rejected",
            "Requests refused by a budget (exceeded, unavailable)",
            self.budget_rejected.clone(),
        );
        r.register(
            "budget_downgrades",
            "Requests moved to the downgrade model by a budget",
            self.budget_downgrades.clone(),
        );
        r.register(
            "budget_alerts",
            "Budget threshold alerts sent",
            self.budget_alerts.clone(),
        );
        r.register(
            "auth_failures",
            "Refused API keys, by reason",
            self.auth_failures.clone(),
        );
        r.register(
            "upstream_in_flight",
            "Upstream calls holding a concurrency permit",
            self.upstream_in_flight.clone(),
        );
        for (lane, g) in ["high", "normal", "batch"].iter().zip(&self.queued) {
            r.register(
                format!("concurrency_queue_depth_{lane}"),
                format!("Requests waiting for a concurrency permit in the {lane} lane"),
                g.clone(),
            );
        }
        r.register(
            "concurrency_rejected",
            "Requests refused after waiting for a permit, by lane",
            self.queue_rejected.clone(),
        );
        r.register(
            "redis_up",
            "1 when the Redis backend answers",
            self.redis_up.clone(),
        );
        r.register(
            "redis_errors",
            "Failed or timed-out Redis calls, by operation",
            self.redis_errors.clone(),
        );
        r.register(
            "redis_fallbacks",
            "Admissions served by the in-process backend because Redis was down",
            self.redis_fallbacks.clone(),
        );
        r.register(
            "settle_failures",
            "Settlements (token corrections, budget bookings) that could not be applied",
            self.settle_failures.clone(),
        );
        r.register(
            "api_keys_loaded",
            "Live API keys in this instance's key set",
            self.keys_loaded.clone(),
        );
        r.register(
            "key_refresh_errors",
            "Failed key-set refreshes",
            self.key_refresh_errors.clone(),
        );
        r.register(
            "limiter_entries",
            "In-process limiter and budget entries",
            self.limiter_entries.clone(),
        );
        r.register(
            "audit_dropped",
            "Audit entries dropped (queue full or database down)",
            self.audit_dropped.clone(),
        );
        r.register(
            "alert_failures",
            "Budget alert webhooks that failed",
            self.alert_failures.clone(),
        );
    }
}
