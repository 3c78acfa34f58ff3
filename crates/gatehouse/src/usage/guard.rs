//! `UsageGuard`: created when a request has a target, it ends in exactly one ledger record, one
//! log line and the matching metrics, whether the request succeeds, fails, or the client goes
//! away (its `Drop` records a 499).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use providers::Usage;
use store::{CacheStatus, Route, UsageRecord};

use super::{cost_micros, now_ms};
use crate::app::{AppState, RequestId};
use crate::error::ErrorCode;
use crate::routing::Target;
use crate::telemetry::metrics::{CodeLabel, RouteLabel};

/// Called once with the final record, just before it goes to the ledger.
pub type FinishHook = Box<dyn FnOnce(&UsageRecord) + Send + Sync>;

pub struct UsageGuard {
    state: Arc<AppState>,
    target: Arc<Target>,
    record: UsageRecord,
    started: Instant,
    route_label: &'static str,
    error: Option<ErrorCode>,
    /// For `tier:…` requests the record names the model that served, not the tier.
    model_follows_target: bool,
    done: bool,
    /// Rate-limit, lease and budget charges, settled with the recorded usage in `emit`.
    admission: Option<crate::access::Admission>,
    on_finish: Option<FinishHook>,
}

impl UsageGuard {
    pub fn new(
        state: Arc<AppState>,
        request_id: &RequestId,
        route: Route,
        target: Arc<Target>,
        started: Instant,
    ) -> UsageGuard {
        request_id.logged_by_guard.store(true, Ordering::Relaxed);
        let record = UsageRecord {
            request_id: request_id.id.to_string(),
            ts_ms: now_ms() - i64::try_from(started.elapsed().as_millis()).unwrap_or(0),
            key_id: None,
            route,
            model: target.alias.clone(),
            provider: target.provider_name.clone(),
            upstream_model: target.upstream_model.clone(),
            prompt_tokens: 0,
            completion_tokens: 0,
            cached_tokens: 0,
            cost_micros: 0,
            latency_ms: 0,
            ttft_ms: None,
            status: 0,
            error_code: None,
            cache_status: CacheStatus::None,
            flags: 0,
            attempts: 1,
            served_by: None,
            fallback_reason: None,
            assistant_version_id: None,
            variant: None,
            conversation_id: None,
            cost_saved_micros: 0,
        };
        let route_label = match route {
            Route::Chat => "chat",
            Route::Messages => "messages",
            Route::Embeddings => "embeddings",
            Route::Transcription => "transcriptions",
        };
        UsageGuard {
            state,
            target,
            record,
            started,
            route_label,
            error: None,
            model_follows_target: false,
            done: false,
            admission: None,
            on_finish: None,
        }
    }

    /// Attach the request's admission (and its key to the record): it is settled with the
    /// actual tokens and cost when this guard records the request, however that happens.
    pub fn set_admission(&mut self, admission: crate::access::Admission) {
        self.record.key_id = admission.key_id();
        self.admission = Some(admission);
    }

    /// The assistant version and experiment variant applied, and the conversation served.
    pub fn set_assistant(
        &mut self,
        assistant_version_id: Option<i64>,
        variant: Option<String>,
        conversation_id: Option<i64>,
    ) {
        self.record.assistant_version_id = assistant_version_id;
        self.record.variant = variant;
        self.record.conversation_id = conversation_id;
    }

    /// Run `hook` with the final record (for running totals kept outside the ledger).
    pub fn on_finish(&mut self, hook: FinishHook) {
        self.on_finish = Some(hook);
    }

    pub fn set_flag(&mut self, flag: i64) {
        self.record.flags |= flag;
    }

    /// Note the first content byte of a stream (only the first call counts).
    pub fn first_token(&mut self) {
        if self.record.ttft_ms.is_none() {
            let elapsed = self.started.elapsed();
            self.record.ttft_ms = Some(i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX));
            self.state
                .metrics
                .ttft
                .get_or_create(&RouteLabel {
                    route: self.route_label,
                })
                .observe(elapsed.as_secs_f64());
        }
    }

    /// Tokens consumed so far; `estimated` when counted locally rather than reported upstream.
    pub fn set_usage(&mut self, usage: &Usage, estimated: bool) {
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.record.prompt_tokens = as_i64(usage.prompt_tokens);
        self.record.completion_tokens = as_i64(usage.completion_tokens);
        self.record.cached_tokens = as_i64(usage.cached_tokens());
        self.record.cost_micros = cost_micros(&self.target.prices, usage);
        if estimated {
            self.record.flags |= UsageRecord::FLAG_TOKENS_ESTIMATED;
        } else {
            self.record.flags &= !UsageRecord::FLAG_TOKENS_ESTIMATED;
        }
    }

    /// The deployment that actually serves the request (its prices and names go on the record).
    pub fn set_target(&mut self, target: Arc<Target>) {
        if self.model_follows_target {
            self.record.model.clone_from(&target.alias);
        }
        self.record.provider.clone_from(&target.provider_name);
        self.record
            .upstream_model
            .clone_from(&target.upstream_model);
        self.target = target;
    }

    /// Name the serving model in the record (tier requests).
    pub fn follow_target_model(&mut self) {
        self.model_follows_target = true;
        self.record.model.clone_from(&self.target.alias);
    }

    /// What the response cache did; a hit also records what it saved (the original cost).
    pub fn set_cache(&mut self, status: CacheStatus, cost_saved_micros: i64) {
        self.record.cache_status = status;
        self.record.cost_saved_micros = cost_saved_micros;
    }

    pub fn set_attempts(&mut self, attempts: u32) {
        self.record.attempts = i32::try_from(attempts).unwrap_or(i32::MAX);
    }

    /// Where the request ended up when it was not the first choice, and why.
    pub fn set_route(&mut self, served_by: Option<String>, fallback_reason: Option<&str>) {
        if served_by.is_some() {
            self.record.served_by = served_by;
        }
        if let Some(r) = fallback_reason {
            self.record.fallback_reason = Some(r.to_owned());
        }
    }

    pub fn cost_micros(&self) -> i64 {
        self.record.cost_micros
    }

    pub fn finish_ok(mut self) {
        self.record.status = 200;
        self.emit();
    }

    pub fn finish_err(mut self, code: ErrorCode) {
        self.fail(code);
    }

    /// Record a failure without consuming the guard (for owners that cannot move it out).
    pub fn fail(&mut self, code: ErrorCode) {
        if self.done {
            return;
        }
        self.record.status = i32::from(code.status_and_type().0.as_u16());
        self.record.error_code = Some(code.as_str().to_owned());
        self.error = Some(code);
        self.emit();
    }

    /// Record success without consuming the guard.
    pub fn succeed(&mut self) {
        if self.done {
            return;
        }
        self.record.status = 200;
        self.emit();
    }

    fn emit(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let elapsed = self.started.elapsed();
        let r = &mut self.record;
        r.latency_ms = i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX);
        let m = &self.state.metrics;
        let c = &self.target.counters;
        let cache_hit = matches!(r.cache_status, CacheStatus::Hit | CacheStatus::SemanticHit);
        if !cache_hit {
            c.requests.inc();
        }
        c.cost_micros
            .inc_by(u64::try_from(r.cost_micros).unwrap_or(0));
        for (counter, n) in [
            (&c.prompt_tokens, r.prompt_tokens),
            (&c.completion_tokens, r.completion_tokens),
            (&c.cached_tokens, r.cached_tokens),
        ] {
            if n > 0 {
                counter.inc_by(u64::try_from(n).unwrap_or(0));
            }
        }
        if r.status == 499 {
            m.errors
                .get_or_create(&CodeLabel {
                    code: "client_cancelled",
                })
                .inc();
        } else if let Some(code) = self.error {
            // Errors returned as responses are counted by the request middleware; only
            // failures after the head was sent (streams) are counted here.
            if r.flags & UsageRecord::FLAG_STREAMED != 0 {
                m.errors
                    .get_or_create(&CodeLabel {
                        code: code.as_str(),
                    })
                    .inc();
            }
        }
        if let Some(tier) = self.target.tier
            && r.cost_micros > 0
        {
            self.state.router.tiers.record_spend(tier, r.cost_micros);
        }
        if r.flags & UsageRecord::FLAG_STREAMED != 0 {
            m.latency
                .get_or_create(&RouteLabel {
                    route: "chat_stream_total",
                })
                .observe(elapsed.as_secs_f64());
        }
        tracing::info!(
            request_id = %r.request_id,
            route = self.route_label,
            model = %r.model,
            provider = %r.provider,
            upstream_model = %r.upstream_model,
            status = r.status,
            latency_ms = r.latency_ms,
            ttft_ms = r.ttft_ms,
            prompt_tokens = r.prompt_tokens,
            completion_tokens = r.completion_tokens,
            cached_tokens = r.cached_tokens,
            cost_micros = r.cost_micros,
            streamed = r.flags & UsageRecord::FLAG_STREAMED != 0,
            error_code = r.error_code.as_deref(),
            attempts = r.attempts,
            served_by = r.served_by.as_deref(),
            fallback_reason = r.fallback_reason.as_deref(),
            "request"
        );
        if let Some(mut a) = self.admission.take() {
            let tokens = r.prompt_tokens.saturating_add(r.completion_tokens);
            a.settle(u64::try_from(tokens).unwrap_or(0), r.cost_micros);
        }
        self.state.web.spend.observe(&self.record);
        if let Some(hook) = self.on_finish.take() {
            hook(&self.record);
        }
        // Emitted once (`done`): the record is not read again, so it moves to the ledger.
        self.state.ledger.record(std::mem::take(&mut self.record));
    }
}

impl Drop for UsageGuard {
    fn drop(&mut self) {
        if !self.done {
            self.record.status = 499;
            self.record.error_code = Some("client_cancelled".into());
            self.record.flags |= UsageRecord::FLAG_CLIENT_CANCELLED;
            self.emit();
        }
    }
}
