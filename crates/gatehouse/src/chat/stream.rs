//! Streaming: upstream chunks become frames as they arrive, and every chunk already received is
//! handed over together so a renderer can write them in one go. Keep-alive frames fill long
//! silences; the idle and total timeouts, the response size cap and upstream failures end a
//! stream cleanly; with `mid_stream_failover` a broken stream continues on the next deployment;
//! a client that goes away drops the upstream call (and is recorded as a 499). A stream that
//! completes whole (not cut, not failed over) is assembled and handed to the response cache.

use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::stream::ReadyChunks;
use futures_util::{Stream, StreamExt, stream};
use providers::{
    ChatChunk, ChatRequest, ChunkStream, FinishReason, Message, ProviderError, Role, Usage,
    UsageField,
};
use store::UsageRecord;
use tokio::time::Instant;

use super::accumulate::Accumulator;
use super::pipeline::{Answer, Attempts, CallKind, Served};
use crate::app::AppState;
use crate::cache::Pending;
use crate::error::{ApiError, ErrorCode};
use crate::usage::{UsageGuard, count_tokens, estimate_prompt_tokens};

/// Most chunks coalesced into one frame batch.
const MAX_BATCH: usize = 256;

/// One unit of a response stream, independent of the wire format it is rendered in.
#[derive(Debug)]
pub enum Frame {
    /// A chunk. A chunk with no choices and `usage` set is the usage report.
    Chunk(ChatChunk),
    KeepAlive,
    /// Out-of-band note (rendered as an SSE comment), e.g. a mid-stream failover.
    Note(String),
    /// The stream failed after it started; nothing follows.
    Error(ApiError),
    /// The stream completed.
    Done,
}

pub type FrameStream = Pin<Box<dyn Stream<Item = Vec<Frame>> + Send>>;

/// Open a stream through the resilient loop and return its frames.
pub async fn start(
    mut attempts: Attempts,
    mut req: ChatRequest,
    mut guard: UsageGuard,
    pending: Option<Pending>,
) -> Result<FrameStream, ApiError> {
    guard.set_flag(UsageRecord::FLAG_STREAMED);
    let (answer, served) = match attempts.run(&mut req, CallKind::Stream, &mut guard).await {
        Ok(ok) => ok,
        Err(e) => {
            guard.finish_err(e.code);
            return Err(e);
        }
    };
    let Answer::Stream(upstream) = answer else {
        return Err(ApiError::new(ErrorCode::Internal, "unexpected answer kind"));
    };
    // A fallback model's answer is not cached under the requested model.
    let cache = pending
        .filter(|_| attempts.fallback_reason.is_none())
        .map(|p| (p, Accumulator::default()));
    let state = Arc::clone(&attempts.state);
    let timeouts = served.deployment.timeouts;
    let now = Instant::now();
    let st = StreamState {
        upstream: upstream.ready_chunks(MAX_BATCH),
        keepalive: state.config.server.sse_keepalive,
        idle: timeouts.idle,
        deadline: now + timeouts.total,
        last_data: now,
        remaining_chars: state.config.validation.max_response_chars,
        text: String::with_capacity(256),
        usage: None,
        carried: Usage::default(),
        skip_role: false,
        template: None,
        usage_report: None,
        finished: false,
        failover: attempts.primary().mid_stream_failover,
        req,
        served: Some(served),
        attempts,
        guard: Some(guard),
        state,
        cache,
    };
    // Boxed, so each batch moves a pointer rather than the whole state.
    let frames = stream::unfold(Box::new(st), |mut st| async move {
        let out = st.next_frames().await?;
        Some((out, st))
    });
    Ok(Box::pin(frames))
}

struct StreamState {
    upstream: ReadyChunks<ChunkStream>,
    keepalive: Duration,
    idle: Duration,
    deadline: Instant,
    last_data: Instant,
    remaining_chars: usize,
    /// Completion text so far, for the failover prefix and for counting tokens when the
    /// upstream reports none.
    text: String,
    usage: Option<Usage>,
    /// Tokens of upstream calls abandoned by a failover (estimated).
    carried: Usage,
    /// After a failover, the new upstream's opening role chunk is dropped.
    skip_role: bool,
    /// id/created/model of the stream, for chunks Gatehouse writes itself.
    template: Option<ChatChunk>,
    /// The upstream's own usage chunk, held back until the stream ends.
    usage_report: Option<ChatChunk>,
    finished: bool,
    failover: bool,
    req: ChatRequest,
    served: Option<Served>,
    attempts: Attempts,
    guard: Option<UsageGuard>,
    state: Arc<AppState>,
    /// The pending cache write and the response assembled so far; dropped when the stream is
    /// cut, fails or fails over.
    cache: Option<(Pending, Accumulator)>,
}

impl StreamState {
    async fn next_frames(&mut self) -> Option<Vec<Frame>> {
        if self.finished {
            return None;
        }
        let now = Instant::now();
        let idle_at = self.last_data + self.idle;
        let wait = self
            .keepalive
            .min(idle_at.saturating_duration_since(now))
            .min(self.deadline.saturating_duration_since(now));
        let batch = match tokio::time::timeout(wait, self.upstream.next()).await {
            Err(_) => {
                let now = Instant::now();
                if now >= idle_at || now >= self.deadline {
                    let mut frames = Vec::new();
                    let e = ProviderError::new(
                        providers::ProviderErrorKind::Timeout,
                        "upstream timed out",
                    );
                    Box::pin(self.upstream_failed(&e, &mut frames)).await;
                    return Some(frames);
                }
                return Some(vec![Frame::KeepAlive]);
            }
            Ok(None) => {
                let mut frames = Vec::with_capacity(2);
                self.finish_ok_with(&mut frames);
                return Some(frames);
            }
            Ok(Some(batch)) => batch,
        };
        let mut frames = Vec::with_capacity(batch.len() + 2);
        self.take(batch, &mut frames).await;
        // Whatever else is already here (often the stream's end) joins this batch, so it goes
        // out in the same write.
        while !self.finished {
            let polled =
                std::future::poll_fn(|cx| Poll::Ready(self.upstream.poll_next_unpin(cx))).await;
            match polled {
                Poll::Ready(Some(batch)) => self.take(batch, &mut frames).await,
                Poll::Ready(None) => self.finish_ok_with(&mut frames),
                Poll::Pending => break,
            }
        }
        Some(frames)
    }

    /// Forward one batch of upstream items.
    async fn take(
        &mut self,
        batch: Vec<Result<ChatChunk, ProviderError>>,
        frames: &mut Vec<Frame>,
    ) {
        self.last_data = Instant::now();
        for item in batch {
            match item {
                Ok(chunk) => {
                    if self.forward(chunk, frames) {
                        break;
                    }
                }
                Err(e) => {
                    Box::pin(self.upstream_failed(&e, frames)).await;
                    break;
                }
            }
        }
    }

    /// Take one upstream chunk; returns true when the stream ended here (size cap).
    fn forward(&mut self, mut chunk: ChatChunk, frames: &mut Vec<Frame>) -> bool {
        // The upstream's encoding goes on only with a chunk left exactly as it came.
        let raw = chunk.raw.take();
        let mut changed = false;
        match &self.template {
            None => {
                let mut t = chunk.clone();
                t.choices.clear();
                t.usage = UsageField::Absent;
                self.template = Some(t);
            }
            // Keep one id and model for the whole stream, across failovers.
            Some(t) => {
                if chunk.id != t.id || chunk.model != t.model {
                    chunk.id.clone_from(&t.id);
                    chunk.model.clone_from(&t.model);
                    changed = true;
                }
            }
        }
        if let Some(u) = chunk.usage.usage() {
            self.usage = Some(u);
            if chunk.choices.is_empty() {
                // Reported when the stream ends: as sent, unless other calls add to it.
                if !changed {
                    chunk.raw = raw;
                }
                self.usage_report = Some(chunk);
                return false;
            }
        }
        if self.skip_role {
            changed = true;
            for c in &mut chunk.choices {
                c.delta.role = None;
            }
            chunk.choices.retain(|c| {
                c.delta.content.as_deref().is_some_and(|s| !s.is_empty())
                    || c.delta.tool_calls.is_some()
                    || c.finish_reason.is_some()
            });
            if chunk.choices.is_empty() {
                return false;
            }
            self.skip_role = false;
        }
        let mut cut = false;
        for c in &mut chunk.choices {
            if let Some(content) = &mut c.delta.content {
                if !content.is_empty()
                    && let Some(g) = self.guard.as_mut()
                {
                    g.first_token();
                }
                let n = content.chars().count();
                if n > self.remaining_chars {
                    let at = content
                        .char_indices()
                        .nth(self.remaining_chars)
                        .map_or(content.len(), |(i, _)| i);
                    content.truncate(at);
                    c.finish_reason = Some(FinishReason::Length);
                    cut = true;
                }
                self.remaining_chars = self.remaining_chars.saturating_sub(n);
                self.text.push_str(content);
            }
            if let Some(calls) = &c.delta.tool_calls {
                if let Some(g) = self.guard.as_mut() {
                    g.first_token();
                }
                for call in calls {
                    if let Some(f) = &call.function {
                        self.text.push_str(f.name.as_deref().unwrap_or(""));
                        self.text.push_str(f.arguments.as_deref().unwrap_or(""));
                    }
                }
            }
        }
        if let Some((_, acc)) = self.cache.as_mut() {
            acc.push(&chunk);
        }
        if !cut && !changed {
            chunk.raw = raw;
        }
        frames.push(Frame::Chunk(chunk));
        if cut {
            self.cache = None;
            self.state.metrics.responses_truncated.inc();
            if let Some(g) = self.guard.as_mut() {
                g.set_flag(UsageRecord::FLAG_TRUNCATED);
            }
            // The upstream is still generating; its final usage will never arrive.
            self.usage = None;
            self.finish_ok_with(frames);
            return true;
        }
        false
    }

    /// An upstream failure after the stream started: fail over when allowed, else end with an
    /// error frame.
    async fn upstream_failed(&mut self, e: &ProviderError, frames: &mut Vec<Frame>) {
        let Some(served) = self.served.take() else {
            return;
        };
        self.cache = None;
        served.deployment.note_error(&e.message);
        if let Some(ticket) = served.ticket {
            let _ = ticket.finish(false);
        }
        if self.failover && self.attempts.prepare_failover(&served.deployment) {
            // What was generated so far is charged as estimated tokens of the failed call.
            let partial = Usage::new(
                estimate_prompt_tokens(&self.req),
                count_tokens(&self.text),
                0,
            );
            let mut cont = self.req.clone();
            if !self.text.is_empty() {
                cont.messages
                    .push(Message::text(Role::Assistant, self.text.clone()));
                cont.messages.push(Message::text(
                    Role::User,
                    "Continue your previous answer exactly where it stopped, without repeating any of it.",
                ));
            }
            let Some(mut guard) = self.guard.take() else {
                return;
            };
            let result = self
                .attempts
                .run(&mut cont, CallKind::Stream, &mut guard)
                .await;
            self.guard = Some(guard);
            if let Ok((Answer::Stream(s), served)) = result {
                tracing::warn!(from = %self.attempts_label(), to = %served.deployment.id, "mid-stream failover");
                self.carried = add(self.carried, partial);
                self.usage = None;
                self.usage_report = None;
                if let Some(g) = self.guard.as_mut() {
                    g.set_route(
                        Some(served.deployment.id.clone()),
                        Some("mid_stream_failover"),
                    );
                }
                frames.push(Frame::Note(format!(
                    "gatehouse-failover: continuing on {}",
                    served.deployment.id
                )));
                self.upstream = s.ready_chunks(MAX_BATCH);
                self.deadline = Instant::now() + served.deployment.timeouts.total;
                self.idle = served.deployment.timeouts.idle;
                self.last_data = Instant::now();
                self.served = Some(served);
                self.skip_role = true;
                return;
            }
        }
        let err = ApiError::from(e);
        frames.push(Frame::Error(err.clone()));
        self.finished = true;
        self.settle_usage();
        if let Some(g) = self.guard.take() {
            g.finish_err(err.code);
        }
    }

    fn attempts_label(&self) -> String {
        self.attempts
            .current_group()
            .map_or_else(String::new, |g| g.alias.clone())
    }

    /// Settle token counts on the guard: the upstream's own when it sent them, else counted,
    /// plus whatever abandoned calls consumed. Returns the total.
    fn settle_usage(&mut self) -> Usage {
        let (own, estimated) = match self.usage {
            Some(u) => (u, false),
            None => (
                Usage::new(
                    estimate_prompt_tokens(&self.req),
                    count_tokens(&self.text),
                    0,
                ),
                true,
            ),
        };
        let total = add(own, self.carried);
        let estimated = estimated || self.carried != Usage::default();
        if let Some(g) = self.guard.as_mut() {
            g.set_usage(&total, estimated);
        }
        total
    }

    /// End successfully: the usage chunk, then Done.
    fn finish_ok_with(&mut self, frames: &mut Vec<Frame>) {
        self.finished = true;
        if let Some(served) = self.served.take()
            && let Some(ticket) = served.ticket
        {
            let _ = ticket.finish(true);
        }
        let usage = self.settle_usage();
        if let Some((pending, acc)) = self.cache.take()
            && let Some(resp) = acc.finish(usage)
            && let Some(g) = self.guard.as_ref()
        {
            pending.store(&resp, g.cost_micros());
        }
        if let Some(t) = &self.template {
            let report = match self.usage_report.take() {
                // Nothing was added to the upstream's own count.
                Some(own)
                    if self.carried == Usage::default() && own.usage.usage() == self.usage =>
                {
                    own
                }
                _ => {
                    let mut u = t.clone();
                    u.usage = UsageField::Present(usage);
                    u
                }
            };
            frames.push(Frame::Chunk(report));
        }
        if !matches!(frames.last(), Some(Frame::Done)) {
            frames.push(Frame::Done);
        }
        if let Some(g) = self.guard.take() {
            g.finish_ok();
        }
    }
}

fn add(a: Usage, b: Usage) -> Usage {
    Usage::with_cache(
        a.prompt_tokens + b.prompt_tokens,
        a.completion_tokens + b.completion_tokens,
        a.cached_tokens() + b.cached_tokens(),
        a.cache_creation_tokens() + b.cache_creation_tokens(),
    )
}

impl Drop for StreamState {
    fn drop(&mut self) {
        // The client went away mid-stream: charge what was generated; the guard records a 499.
        if self.guard.is_some() {
            self.settle_usage();
        }
    }
}
