//! Streaming responses: upstream chunks are forwarded as they arrive; all chunks already
//! received are written together in one body frame. Keep-alive comments fill long silences,
//! the response size cap ends a stream cleanly, an upstream failure ends it with an error event,
//! and a client that goes away drops the upstream call (and is recorded as a 499).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::stream::ReadyChunks;
use futures_util::{StreamExt, stream};
use providers::{
    ChatChunk, ChatRequest, ChunkStream, FinishReason, ProviderError, Usage, UsageField,
};
use store::UsageRecord;

use super::stream_fallback_allowed;
use crate::app::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::routing::Target;
use crate::usage::{UsageGuard, count_tokens, estimate_prompt_tokens};

/// Most chunks coalesced into one write.
const MAX_BATCH: usize = 256;

pub async fn respond(
    state: Arc<AppState>,
    target: Arc<Target>,
    req: ChatRequest,
    mut guard: UsageGuard,
) -> Result<Response, ApiError> {
    guard.set_flag(UsageRecord::FLAG_STREAMED);
    let upstream: ChunkStream = match target.provider.chat_stream(&req).await {
        Ok(s) => s,
        Err(e) if stream_fallback_allowed(&e) => match target.provider.chat(&req).await {
            Ok(resp) => {
                tracing::warn!(provider = %target.provider_name, "stream could not be opened; replaying a plain completion as a stream");
                Box::pin(stream::iter(resp.into_chunks().into_iter().map(Ok)))
            }
            Err(e2) => return Err(fail(guard, &e2)),
        },
        Err(e) => return Err(fail(guard, &e)),
    };
    let st = StreamState {
        upstream: upstream.ready_chunks(MAX_BATCH),
        include_usage: req.wants_usage_chunk(),
        keepalive: state.config.server.sse_keepalive,
        remaining_chars: state.config.validation.max_response_chars,
        text: String::new(),
        usage: None,
        template: None,
        finished: false,
        req,
        guard: Some(guard),
        state,
    };
    let body = stream::unfold(st, |mut st| async move {
        let out = st.next_frame().await?;
        Some((Ok::<_, std::convert::Infallible>(out), st))
    });
    Ok(Response::builder()
        .header(http::header::CONTENT_TYPE, "text/event-stream")
        .header(http::header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| Response::new(Body::empty())))
}

fn fail(guard: UsageGuard, e: &ProviderError) -> ApiError {
    let err = ApiError::from(e);
    guard.finish_err(err.code);
    err
}

struct StreamState {
    upstream: ReadyChunks<ChunkStream>,
    include_usage: bool,
    keepalive: Duration,
    remaining_chars: usize,
    /// Completion text so far, counted only if the upstream reports no usage.
    text: String,
    usage: Option<Usage>,
    /// id/created/model of the stream, for chunks Gatehouse writes itself.
    template: Option<ChatChunk>,
    finished: bool,
    req: ChatRequest,
    guard: Option<UsageGuard>,
    state: Arc<AppState>,
}

impl StreamState {
    async fn next_frame(&mut self) -> Option<Bytes> {
        if self.finished {
            return None;
        }
        let batch = match tokio::time::timeout(self.keepalive, self.upstream.next()).await {
            Err(_) => return Some(Bytes::from_static(b": keep-alive\n\n")),
            Ok(None) => {
                self.finish_ok();
                return Some(Bytes::from_static(b"data: [DONE]\n\n"));
            }
            Ok(Some(batch)) => batch,
        };
        let mut buf = BytesMut::with_capacity(256 * batch.len());
        for item in batch {
            match item {
                Ok(chunk) => {
                    if self.forward(chunk, &mut buf) {
                        break;
                    }
                }
                Err(e) => {
                    let err = ApiError::from(&e);
                    write_event(&mut buf, &err.body());
                    self.finish_err(err.code);
                    break;
                }
            }
        }
        Some(buf.freeze())
    }

    /// Write one upstream chunk; returns true when the stream ended here (size cap).
    fn forward(&mut self, mut chunk: ChatChunk, buf: &mut BytesMut) -> bool {
        if self.template.is_none() {
            let mut t = chunk.clone();
            t.choices.clear();
            t.usage = UsageField::Absent;
            self.template = Some(t);
        }
        if let Some(u) = chunk.usage.usage() {
            self.usage = Some(u);
            if chunk.choices.is_empty() {
                if self.include_usage {
                    write_event(buf, &chunk);
                }
                return false;
            }
        }
        chunk.usage = match (self.include_usage, chunk.usage) {
            (false, _) => UsageField::Absent,
            (true, UsageField::Present(u)) => UsageField::Present(u),
            (true, _) => UsageField::Null,
        };
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
        write_event(buf, &chunk);
        if cut {
            self.state.metrics.responses_truncated.inc();
            if let Some(g) = self.guard.as_mut() {
                g.set_flag(UsageRecord::FLAG_TRUNCATED);
            }
            // The upstream is still generating; its final usage will never arrive.
            self.usage = None;
            let usage = self.settle_usage();
            if self.include_usage
                && let Some(mut u) = self.template.clone()
            {
                u.usage = UsageField::Present(usage);
                write_event(buf, &u);
            }
            buf.put_slice(b"data: [DONE]\n\n");
            self.finish_ok();
            return true;
        }
        false
    }

    /// Settle the token counts on the guard: the upstream's own when it sent them, else counted.
    fn settle_usage(&mut self) -> Usage {
        let (usage, estimated) = match self.usage {
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
        if let Some(g) = self.guard.as_mut() {
            g.set_usage(&usage, estimated);
        }
        usage
    }

    fn finish_ok(&mut self) {
        self.finished = true;
        self.settle_usage();
        if let Some(g) = self.guard.take() {
            g.finish_ok();
        }
    }

    fn finish_err(&mut self, code: ErrorCode) {
        self.finished = true;
        self.settle_usage();
        if let Some(g) = self.guard.take() {
            g.finish_err(code);
        }
    }
}

impl Drop for StreamState {
    fn drop(&mut self) {
        // The client went away mid-stream: charge what was generated; the guard records a 499.
        if self.guard.is_some() {
            self.settle_usage();
        }
    }
}

fn write_event<T: serde::Serialize>(buf: &mut BytesMut, value: &T) {
    buf.put_slice(b"data: ");
    let mut w = buf.writer();
    if serde_json::to_writer(&mut w, value).is_err() {
        tracing::error!("failed to encode a stream event");
    }
    let buf = w.into_inner();
    buf.put_slice(b"\n\n");
}
