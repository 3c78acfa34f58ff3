//! Prometheus metrics of one Gatehouse instance. Label values come from closed sets (routes,
//! configured model aliases, error codes) so cardinality stays bounded.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub model: String,
    pub provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub model: String,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeploymentLabel {
    pub deployment: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    pub deployment: String,
    pub to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FallbackLabels {
    pub from: String,
    pub to: String,
    pub cause: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabel, Histogram>,
    pub ttft: Family<RouteLabel, Histogram>,
    pub model_requests: Family<ModelLabels, Counter>,
    pub tokens: Family<TokenLabels, Counter>,
    pub cost_micros: Family<ModelLabels, Counter>,
    pub errors: Family<CodeLabel, Counter>,
    pub in_flight: Gauge,
    pub control_chars_stripped: Counter,
    pub responses_truncated: Counter,
    pub retries: Family<DeploymentLabel, Counter>,
    pub fallbacks: Family<FallbackLabels, Counter>,
    pub circuit_state: Family<DeploymentLabel, Gauge>,
    pub circuit_transitions: Family<TransitionLabels, Counter>,
    pub ledger_queue_depth: Gauge,
    pub ledger_written: Counter<u64, AtomicU64>,
    pub ledger_dropped: Counter<u64, AtomicU64>,
    pub ledger_write_errors: Counter<u64, AtomicU64>,
    pub access: crate::access::metrics::AccessMetrics,
    pub cache: crate::cache::metrics::CacheMetrics,
    pub log_lines_dropped: Counter<u64, AtomicU64>,
}

/// Counters of one deployment target, looked up once when the target is built so the request
/// path does not hash label sets.
#[derive(Clone, Debug)]
pub struct TargetCounters {
    pub requests: Counter,
    pub cost_micros: Counter,
    pub prompt_tokens: Counter,
    pub completion_tokens: Counter,
    pub cached_tokens: Counter,
}

impl Metrics {
    pub fn target_counters(&self, model: &str, provider: &str) -> TargetCounters {
        let ml = ModelLabels {
            model: model.to_owned(),
            provider: provider.to_owned(),
        };
        let tokens = |kind| {
            self.tokens
                .get_or_create(&TokenLabels {
                    model: model.to_owned(),
                    kind,
                })
                .clone()
        };
        TargetCounters {
            requests: self.model_requests.get_or_create(&ml).clone(),
            cost_micros: self.cost_micros.get_or_create(&ml).clone(),
            prompt_tokens: tokens("prompt"),
            completion_tokens: tokens("completion"),
            cached_tokens: tokens("cached"),
        }
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        120.0,
    ])
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("gatehouse");
        let cache = crate::cache::metrics::CacheMetrics::register(&mut registry);
        let m = Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            ttft: Family::new_with_constructor(latency_histogram),
            model_requests: Family::default(),
            tokens: Family::default(),
            cost_micros: Family::default(),
            errors: Family::default(),
            in_flight: Gauge::default(),
            control_chars_stripped: Counter::default(),
            responses_truncated: Counter::default(),
            retries: Family::default(),
            fallbacks: Family::default(),
            circuit_state: Family::default(),
            circuit_transitions: Family::default(),
            ledger_queue_depth: Gauge::default(),
            ledger_written: Counter::default(),
            ledger_dropped: Counter::default(),
            ledger_write_errors: Counter::default(),
            access: crate::access::metrics::AccessMetrics::default(),
            log_lines_dropped: Counter::default(),
            cache,
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            m.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to the response head (streams: to stream end)",
            m.latency.clone(),
        );
        registry.register(
            "time_to_first_token_seconds",
            "Streaming time to the first content chunk",
            m.ttft.clone(),
        );
        registry.register(
            "model_requests",
            "Upstream requests by model alias and provider",
            m.model_requests.clone(),
        );
        registry.register(
            "tokens",
            "Tokens by model alias and kind (prompt, completion, cached)",
            m.tokens.clone(),
        );
        registry.register(
            "cost_micro_usd",
            "Cost in micro-USD by model alias and provider",
            m.cost_micros.clone(),
        );
        registry.register(
            "errors",
            "Errors returned to clients by code",
            m.errors.clone(),
        );
        registry.register(
            "in_flight_requests",
            "Requests being served",
            m.in_flight.clone(),
        );
        registry.register(
            "control_chars_stripped",
            "Control characters removed from inputs",
            m.control_chars_stripped.clone(),
        );
        registry.register(
            "responses_truncated",
            "Responses cut at the response size cap",
            m.responses_truncated.clone(),
        );
        registry.register(
            "upstream_retries",
            "Upstream calls retried, by deployment",
            m.retries.clone(),
        );
        registry.register(
            "fallbacks",
            "Requests moved to a fallback model, by cause",
            m.fallbacks.clone(),
        );
        registry.register(
            "circuit_state",
            "Circuit breaker state per deployment (0 closed, 1 half-open, 2 open)",
            m.circuit_state.clone(),
        );
        registry.register(
            "circuit_transitions",
            "Circuit breaker state changes per deployment",
            m.circuit_transitions.clone(),
        );
        registry.register(
            "log_lines_dropped",
            "Log lines dropped because the log writer fell behind",
            m.log_lines_dropped.clone(),
        );
        registry.register(
            "ledger_queue_depth",
            "Usage records waiting to be written",
            m.ledger_queue_depth.clone(),
        );
        registry.register(
            "ledger_written",
            "Usage records written",
            m.ledger_written.clone(),
        );
        registry.register(
            "ledger_dropped",
            "Usage records dropped (queue full or database down)",
            m.ledger_dropped.clone(),
        );
        registry.register(
            "ledger_write_errors",
            "Failed ledger batch writes (retried)",
            m.ledger_write_errors.clone(),
        );
        m.access.register(&mut registry);
        Arc::new(Metrics { registry, ..m })
    }

    /// Prometheus text exposition, after refreshing gauges read from elsewhere.
    pub fn render(&self, ledger: &store::Ledger) -> String {
        let stats = ledger.stats();
        let snap = stats.snapshot();
        self.ledger_queue_depth
            .set(i64::try_from(ledger.queue_depth()).unwrap_or(i64::MAX));
        set_counter(&self.ledger_written, snap.written);
        set_counter(&self.ledger_dropped, snap.dropped);
        set_counter(&self.ledger_write_errors, snap.write_errors);
        set_counter(&self.log_lines_dropped, super::logging::dropped_lines());
        let mut out = String::with_capacity(8 * 1024);
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Mirror a monotonic count kept elsewhere into a counter.
fn set_counter(c: &Counter<u64, AtomicU64>, value: u64) {
    let cur = c.get();
    if value > cur {
        c.inc_by(value - cur);
    }
}
