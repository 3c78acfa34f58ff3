//! Response bodies and client-disconnect detection: JSON answers, SSE bodies that send one
//! frame per event (optionally delayed, optionally ending in a connection reset), and the drop
//! guards that count a response the client abandoned.

use std::collections::VecDeque;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::watch;

/// Counts abandoned responses and wakes whoever waits for one.
#[derive(Clone)]
pub(crate) struct DisconnectCounter(watch::Sender<usize>);

impl Default for DisconnectCounter {
    fn default() -> Self {
        Self(watch::Sender::new(0))
    }
}

impl DisconnectCounter {
    pub(crate) fn count(&self) -> usize {
        *self.0.borrow()
    }

    fn record(&self) {
        self.0.send_modify(|count| *count += 1);
    }

    pub(crate) async fn wait_for(&self, at_least: usize) {
        let mut count = self.0.subscribe();
        // The sender lives in the mock's shared state, which outlives this borrow.
        let _ = count.wait_for(|&c| c >= at_least).await;
    }
}

/// Records a disconnect when dropped while still armed: the future or stream holding it was
/// dropped by hyper because the client closed the connection.
pub(crate) struct CancelGuard {
    counter: Option<DisconnectCounter>,
}

impl CancelGuard {
    pub(crate) fn new(counter: DisconnectCounter) -> Self {
        Self {
            counter: Some(counter),
        }
    }

    pub(crate) fn disarm(mut self) {
        self.counter = None;
    }

    fn disarm_in_place(&mut self) {
        self.counter = None;
    }
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if let Some(counter) = self.counter.take() {
            counter.record();
        }
    }
}

/// A JSON answer with OpenAI's content type.
pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response {
    let mut response = (status, value.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

struct EventStream {
    events: VecDeque<Bytes>,
    fail_at_end: bool,
    chunk_delay: Duration,
    sent: usize,
    guard: CancelGuard,
}

/// A `text/event-stream` answer sending each event as its own body frame. With `fail_at_end`
/// the body errors after the last event, so hyper aborts the connection mid-response.
pub(crate) fn event_body(
    events: Vec<Bytes>,
    fail_at_end: bool,
    chunk_delay: Duration,
    disconnects: DisconnectCounter,
) -> Response {
    let state = EventStream {
        events: events.into(),
        fail_at_end,
        chunk_delay,
        sent: 0,
        guard: CancelGuard::new(disconnects),
    };
    let stream = futures_util::stream::unfold(state, |mut state| async move {
        if let Some(event) = state.events.pop_front() {
            if state.sent > 0 && !state.chunk_delay.is_zero() {
                tokio::time::sleep(state.chunk_delay).await;
            }
            state.sent += 1;
            return Some((Ok(event), state));
        }
        // Finished on our terms: dropping the stream from here on is not a client disconnect.
        state.guard.disarm_in_place();
        if state.fail_at_end {
            state.fail_at_end = false;
            // Pending once so hyper flushes what was sent; an error in the same poll would
            // discard the buffered events along with the connection.
            tokio::task::yield_now().await;
            let abort = std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "mock upstream aborted the stream",
            );
            return Some((Err(abort), state));
        }
        None
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// An answer the client never sees: the body errors on its first poll, before hyper has
/// flushed the status line, so hyper drops the connection and the client reads EOF where a
/// response should be (HTTP/1.1; over HTTP/2 the stream is reset).
pub(crate) fn reset_response() -> Response {
    let abort = futures_util::stream::once(async {
        Err::<Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "mock upstream reset the connection",
        ))
    });
    Response::new(Body::from_stream(abort))
}
