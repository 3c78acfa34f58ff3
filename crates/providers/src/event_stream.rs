//! The read loop shared by the adapters whose streams are SSE: bytes in, [`SseEvent`]s through
//! a provider-specific [`Translate`], canonical chunks out. All events of one network read are
//! translated before the next read, so a consumer using `ready_chunks` writes them together.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_util::{Stream, StreamExt};

use crate::sse::{SseEvent, SseParser};
use crate::{ChatChunk, ProviderError, ProviderErrorKind};

/// Translated items waiting to be yielded.
pub(crate) type Out = VecDeque<Result<ChatChunk, ProviderError>>;

/// One provider's event semantics.
pub(crate) trait Translate: Send {
    /// Translate one event into zero or more items. An `Err` item ends the stream. The event
    /// is handed over, so a translator may keep its data.
    fn event(&mut self, ev: SseEvent, out: &mut Out);

    /// Whether the provider's stream is complete (its final event was seen); no more events
    /// are read after that.
    fn done(&self) -> bool;

    /// The bytes ended. Returns whether the stream was complete at that point; a translator
    /// may push final items (a usage chunk held back until the end) when it was.
    fn end(&mut self, out: &mut Out) -> bool {
        let _ = out;
        self.done()
    }
}

struct State<S, T> {
    body: S,
    parser: SseParser,
    translate: T,
    ready: Out,
    events: Vec<SseEvent>,
    finished: bool,
}

/// Translate an SSE byte stream. Ends after the translator says it is done, after an error
/// item, or with `StreamInterrupted` when the bytes stop or fail before the stream was complete.
pub(crate) fn translate<S, B, E, T>(
    body: S,
    translate: T,
) -> impl Stream<Item = Result<ChatChunk, ProviderError>> + Send
where
    S: Stream<Item = Result<B, E>> + Send + Unpin,
    B: AsRef<[u8]>,
    T: Translate + Unpin,
{
    State {
        body,
        parser: SseParser::new(),
        translate,
        // Sized for a typical read's worth of events, so a stream does not grow them.
        ready: VecDeque::with_capacity(16),
        events: Vec::with_capacity(16),
        finished: false,
    }
}

// Polled in place: the state never moves between items.
impl<S, B, E, T> Stream for State<S, T>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    T: Translate + Unpin,
{
    type Item = Result<ChatChunk, ProviderError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let st = self.get_mut();
        loop {
            if let Some(item) = st.ready.pop_front() {
                if item.is_err() {
                    st.finished = true;
                    st.ready.clear();
                }
                return Poll::Ready(Some(item));
            }
            if st.finished {
                return Poll::Ready(None);
            }
            if st.translate.done() {
                st.finished = true;
                st.translate.end(&mut st.ready);
                continue;
            }
            match ready!(st.body.poll_next_unpin(cx)) {
                Some(Ok(bytes)) => {
                    if st.parser.push(bytes.as_ref(), &mut st.events).is_err() {
                        st.ready.push_back(Err(interrupted(
                            "an upstream event exceeded the size limit",
                        )));
                        continue;
                    }
                    let mut events = std::mem::take(&mut st.events);
                    for ev in events.drain(..) {
                        if st.translate.done() || st.ready.iter().any(Result::is_err) {
                            break;
                        }
                        st.translate.event(ev, &mut st.ready);
                    }
                    st.events = events;
                }
                Some(Err(_)) => {
                    st.finished = true;
                    st.ready
                        .push_back(Err(interrupted("the upstream stream was interrupted")));
                }
                None => {
                    st.finished = true;
                    if !st.translate.end(&mut st.ready) {
                        st.ready
                            .push_back(Err(interrupted("the upstream stream ended early")));
                    }
                }
            }
        }
    }
}

pub(crate) fn interrupted(msg: &str) -> ProviderError {
    ProviderError::new(ProviderErrorKind::StreamInterrupted, msg)
}
