//! The resilient call loop shared by every chat entry point (OpenAI and Anthropic routes):
//! pick a deployment, call it under its timeouts, retry retryable failures with backoff inside
//! the request deadline and the retry budget, skip open circuits, and move down the fallback
//! chain for the causes the model allows. Nothing is retried once a byte went to the client.

use std::sync::Arc;

use futures_util::StreamExt;
use providers::{ChatRequest, ChatResponse, ChunkStream, ProviderError, ProviderErrorKind};
use tokio::time::Instant;

use super::stream_fallback_allowed;
use crate::app::AppState;
use crate::config::resilience::FallbackCause;
use crate::error::{ApiError, ErrorCode};
use crate::resilience::breaker::Transition;
use crate::resilience::deployment::CallTicket;
use crate::resilience::retry::{backoff, is_retryable};
use crate::resilience::{Deployment, ModelGroup};
use crate::telemetry::metrics::{DeploymentLabel, FallbackLabels, TransitionLabels};
use crate::usage::{UsageGuard, estimate_prompt_tokens};

/// What the caller wants from a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    Complete,
    Stream,
}

/// A successful call.
pub enum Answer {
    Complete(Box<ChatResponse>),
    /// The first chunk already arrived (so the stream is known to work) and the rest.
    Stream(ChunkStream),
}

/// The loop's state; it outlives the first call so a stream can fail over mid-way.
pub struct Attempts {
    pub state: Arc<AppState>,
    chain: Vec<Arc<ModelGroup>>,
    group: usize,
    tried: Vec<usize>,
    in_group: u32,
    pub total: u32,
    deadline: Instant,
    rng: fastrand::Rng,
    pub fallback_reason: Option<FallbackCause>,
    first_deployment: Option<String>,
    /// The group whose context window was last checked against the prompt.
    context_checked: Option<usize>,
}

/// The deployment that answered, with its open call ticket (streams report the outcome when
/// they end).
pub struct Served {
    pub deployment: Arc<Deployment>,
    pub ticket: Option<CallTicket>,
}

impl Attempts {
    pub fn new(state: Arc<AppState>, chain: Vec<Arc<ModelGroup>>) -> Attempts {
        let deadline = Instant::now() + state.config.resilience.request_deadline;
        state.retry_budget.on_request();
        Attempts {
            state,
            chain,
            group: 0,
            tried: Vec::new(),
            in_group: 0,
            total: 0,
            deadline,
            rng: fastrand::Rng::new(),
            fallback_reason: None,
            first_deployment: None,
            context_checked: None,
        }
    }

    pub fn primary(&self) -> &Arc<ModelGroup> {
        &self.chain[0]
    }

    pub fn current_group(&self) -> Option<&Arc<ModelGroup>> {
        self.chain.get(self.group)
    }

    /// Move to the next group of the chain for `cause`, if the current group allows it.
    fn fall_back(&mut self, cause: FallbackCause) -> bool {
        let Some(g) = self.chain.get(self.group) else {
            return false;
        };
        if !g.fallback_on.contains(cause) {
            return false;
        }
        if cause == FallbackCause::ContextLength
            && let Some(alias) = g.context_fallback.clone()
            && let Some(bigger) = self.state.router.group(&alias)
        {
            self.chain.insert(self.group + 1, bigger);
        }
        if self.group + 1 >= self.chain.len() {
            return false;
        }
        let from = self.chain[self.group].alias.clone();
        self.group += 1;
        self.tried.clear();
        self.in_group = 0;
        self.fallback_reason = Some(cause);
        let to = &self.chain[self.group].alias;
        tracing::warn!(from = %from, to = %to, cause = cause.as_str(), "falling back");
        self.state
            .metrics
            .fallbacks
            .get_or_create(&FallbackLabels {
                from,
                to: to.clone(),
                cause: cause.as_str(),
            })
            .inc();
        true
    }

    fn note_transition(&self, dep: &Deployment, t: Option<Transition>) {
        if let Some(t) = t {
            let level_warn = t.to != crate::resilience::CircuitState::Closed;
            if level_warn {
                tracing::warn!(deployment = %dep.id, from = t.from.as_str(), to = t.to.as_str(), "circuit breaker");
            } else {
                tracing::info!(deployment = %dep.id, from = t.from.as_str(), to = t.to.as_str(), "circuit breaker");
            }
            let m = &self.state.metrics;
            m.circuit_transitions
                .get_or_create(&TransitionLabels {
                    deployment: dep.id.clone(),
                    to: t.to.as_str(),
                })
                .inc();
            m.circuit_state
                .get_or_create(&DeploymentLabel {
                    deployment: dep.id.clone(),
                })
                .set(t.to.as_gauge());
        }
    }

    /// Run the loop until a deployment answers or the chain is exhausted. `req` is the
    /// client's request (already validated); each call gets the deployment's model name and
    /// output cap.
    ///
    /// `req.model` and the output caps are set per call (no copy of the messages is made).
    pub async fn run(
        &mut self,
        req: &mut ChatRequest,
        kind: CallKind,
        guard: &mut UsageGuard,
    ) -> Result<(Answer, Served), ApiError> {
        let mut last: Option<ApiError> = None;
        let asked = (req.max_tokens, req.max_completion_tokens);
        loop {
            let Some(group) = self.chain.get(self.group).cloned() else {
                let err = last.unwrap_or_else(|| {
                    ApiError::new(
                        ErrorCode::NoHealthyDeployment,
                        "No healthy deployment can serve this model right now",
                    )
                });
                return Err(self.fail(guard, err));
            };
            if self.context_checked != Some(self.group) {
                self.context_checked = Some(self.group);
                // Entering a group: a prompt that cannot fit goes straight to the larger model.
                if let (Some(window), Some(_)) = (group.context_window, &group.context_fallback) {
                    let needed =
                        estimate_prompt_tokens(req) + u64::from(asked.1.or(asked.0).unwrap_or(0));
                    if needed > u64::from(window) && self.fall_back(FallbackCause::ContextLength) {
                        continue;
                    }
                }
            }
            let Some(idx) = group.pick(&self.tried, &mut self.rng) else {
                if self.fall_back(FallbackCause::CircuitOpen) {
                    continue;
                }
                let err = last.unwrap_or_else(|| {
                    ApiError::new(
                        ErrorCode::NoHealthyDeployment,
                        "No healthy deployment can serve this model right now (circuits open)",
                    )
                });
                return Err(self.fail(guard, err));
            };
            let dep = Arc::clone(&group.deployments[idx]);
            let ticket = match dep.begin() {
                Ok(t) => t,
                Err(t) => {
                    self.note_transition(&dep, t);
                    self.tried.push(idx);
                    continue;
                }
            };
            self.note_transition(&dep, ticket.transition);
            if self.first_deployment.is_none() {
                self.first_deployment = Some(dep.id.clone());
            }
            self.in_group += 1;
            self.total += 1;
            req.model.clone_from(&dep.target.upstream_model);
            (req.max_tokens, req.max_completion_tokens) = asked;
            super::cap_output_tokens(req, &dep.target);
            let now = Instant::now();
            let budget = if kind == CallKind::Stream {
                dep.timeouts.first_byte
            } else {
                dep.timeouts.total.max(dep.timeouts.first_byte)
            };
            let limit = budget.min(self.deadline.saturating_duration_since(now));
            let result = match tokio::time::timeout(limit, call_once(&dep, req, kind)).await {
                Ok(r) => r,
                Err(_) => Err(ProviderError::new(
                    ProviderErrorKind::Timeout,
                    "upstream timed out",
                )),
            };
            match result {
                Ok(answer) => {
                    let ticket = if kind == CallKind::Complete {
                        let t = ticket.finish(true);
                        self.note_transition(&dep, t);
                        None
                    } else {
                        Some(ticket)
                    };
                    self.settle_route(guard, &dep);
                    return Ok((
                        answer,
                        Served {
                            deployment: dep,
                            ticket,
                        },
                    ));
                }
                Err(e) => {
                    let healthy_answer = matches!(
                        e.kind,
                        ProviderErrorKind::BadRequest
                            | ProviderErrorKind::ContextLength
                            | ProviderErrorKind::ContentFilter
                    );
                    let t = ticket.finish(healthy_answer);
                    self.note_transition(&dep, t);
                    dep.note_error(&e.message);
                    if e.kind == ProviderErrorKind::RateLimited {
                        dep.cool_down(e.retry_after);
                    }
                    tracing::warn!(deployment = %dep.id, kind = ?e.kind, status = ?e.status, attempt = self.total, "upstream call failed");
                    self.tried.push(idx);
                    last = Some(ApiError::from(&e));
                    if !is_retryable(&e) {
                        let cause = match e.kind {
                            ProviderErrorKind::ContextLength => Some(FallbackCause::ContextLength),
                            ProviderErrorKind::ContentFilter => Some(FallbackCause::ContentFilter),
                            _ => None,
                        };
                        if let Some(c) = cause
                            && self.fall_back(c)
                        {
                            continue;
                        }
                        return Err(self.fail(guard, ApiError::from(&e)));
                    }
                    let cfg = &self.state.config.resilience;
                    let exhausted = self.in_group >= cfg.max_attempts
                        || Instant::now() >= self.deadline
                        || !self.state.retry_budget.try_retry();
                    if exhausted {
                        let cause = if e.kind == ProviderErrorKind::Timeout {
                            FallbackCause::Timeout
                        } else {
                            FallbackCause::ExhaustedRetries
                        };
                        if self.fall_back(cause) {
                            continue;
                        }
                        return Err(self.fail(guard, ApiError::from(&e)));
                    }
                    self.state
                        .metrics
                        .retries
                        .get_or_create(&DeploymentLabel {
                            deployment: dep.id.clone(),
                        })
                        .inc();
                    // Another usable deployment of the group is tried at once; the same one
                    // after the backoff (or its Retry-After).
                    let other_ready = (0..group.deployments.len())
                        .any(|i| !self.tried.contains(&i) && group.deployments[i].usable());
                    if !other_ready {
                        let wait = backoff(cfg, self.in_group, e.retry_after, &mut self.rng);
                        if Instant::now() + wait >= self.deadline {
                            return Err(self.fail(guard, ApiError::from(&e)));
                        }
                        tokio::time::sleep(wait).await;
                        self.tried.clear();
                    }
                }
            }
        }
    }

    fn settle_route(&self, guard: &mut UsageGuard, dep: &Arc<Deployment>) {
        guard.set_target(Arc::clone(&dep.target));
        guard.set_attempts(self.total);
        let moved = self.first_deployment.as_deref() != Some(dep.id.as_str()) || self.group > 0;
        guard.set_route(
            moved.then(|| dep.id.clone()),
            self.fallback_reason.map(FallbackCause::as_str),
        );
    }

    fn fail(&self, guard: &mut UsageGuard, err: ApiError) -> ApiError {
        guard.set_attempts(self.total);
        guard.set_route(None, self.fallback_reason.map(FallbackCause::as_str));
        err
    }

    /// Prepare to continue a stream that broke on `dep`: the attempt counter of the group
    /// starts over and `dep` is not picked again unless nothing else is usable. Returns false
    /// when no other deployment or fallback exists.
    pub fn prepare_failover(&mut self, dep: &Arc<Deployment>) -> bool {
        let Some(g) = self.chain.get(self.group) else {
            return false;
        };
        if let Some(i) = g.deployments.iter().position(|d| Arc::ptr_eq(d, dep)) {
            self.tried.push(i);
        }
        let others = (0..g.deployments.len()).any(|i| !self.tried.contains(&i));
        if others {
            self.in_group = 0;
            return true;
        }
        if self.group + 1 < self.chain.len() {
            self.group += 1;
            self.tried.clear();
            self.in_group = 0;
            return true;
        }
        false
    }
}

/// One call to one deployment. A stream counts as open once its first chunk arrived; a stream
/// that cannot be opened for a reason that allows it is replaced by a plain call replayed as a
/// stream.
async fn call_once(
    dep: &Deployment,
    req: &ChatRequest,
    kind: CallKind,
) -> Result<Answer, ProviderError> {
    let provider = &dep.target.provider;
    match kind {
        CallKind::Complete => provider
            .chat(req)
            .await
            .map(|resp| Answer::Complete(Box::new(resp))),
        CallKind::Stream => match provider.chat_stream(req).await {
            Ok(mut s) => match s.next().await {
                Some(Ok(first)) => {
                    let rest: ChunkStream =
                        Box::pin(futures_util::stream::once(async move { Ok(first) }).chain(s));
                    Ok(Answer::Stream(rest))
                }
                Some(Err(e)) => Err(e),
                None => Err(ProviderError::new(
                    ProviderErrorKind::StreamInterrupted,
                    "the upstream stream ended before any chunk",
                )),
            },
            Err(e) if stream_fallback_allowed(&e) => {
                let resp = provider.chat(req).await?;
                tracing::warn!(deployment = %dep.id, "stream could not be opened; replaying a plain completion as a stream");
                Ok(Answer::Stream(Box::pin(futures_util::stream::iter(
                    resp.into_chunks().into_iter().map(Ok),
                ))))
            }
            Err(e) => Err(e),
        },
    }
}
