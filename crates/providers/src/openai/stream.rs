//! OpenAI SSE → canonical chunks. Every event of one network read is parsed before the next read,
//! so a consumer polling with `ready_chunks` gets them together and can write them in one go.

use futures_util::Stream;

use super::scan::ChunkReader;
use super::{ErrorBody, relayed_message};
use crate::event_stream::{Out, Translate};
use crate::sse::SseEvent;
use crate::{ChatChunk, ChunkStream, ProviderError, ProviderErrorKind};

/// OpenAI's event semantics: every event is a chunk, an error object, or `[DONE]`.
#[derive(Default)]
struct Events {
    done: bool,
    saw_finish_reason: bool,
    reader: ChunkReader,
}

pub(crate) fn chunk_stream(resp: crate::client::UpstreamResponse) -> ChunkStream {
    Box::pin(parse_chunks(resp.bytes_stream()))
}

/// Parse an SSE byte stream of OpenAI chunks. Ends after `[DONE]`, after an `error` event, or
/// with `StreamInterrupted` when the bytes stop before the stream was complete (a stream that
/// reached a `finish_reason` counts as complete without `[DONE]`).
pub fn parse_chunks<S, B, E>(body: S) -> impl Stream<Item = Result<ChatChunk, ProviderError>> + Send
where
    S: Stream<Item = Result<B, E>> + Send + Unpin,
    B: AsRef<[u8]>,
{
    crate::event_stream::translate(body, Events::default())
}

impl Translate for Events {
    fn event(&mut self, ev: SseEvent, out: &mut Out) {
        handle_event(self, ev, out);
    }

    fn done(&self) -> bool {
        self.done
    }

    fn end(&mut self, _out: &mut Out) -> bool {
        self.done || self.saw_finish_reason
    }
}

fn handle_event(st: &mut Events, ev: SseEvent, out: &mut Out) {
    let data = ev.data.trim_ascii();
    if data == "[DONE]" {
        st.done = true;
        return;
    }
    if data.is_empty() {
        return;
    }
    let parsed = match st.reader.read(data) {
        Some(read) => Ok(read),
        None => serde_json::from_str::<ChatChunk>(data).map(|chunk| {
            (
                chunk,
                memchr::memchr2(b'\n', b'\r', data.as_bytes()).is_some(),
            )
        }),
    };
    match parsed {
        Ok((mut chunk, breaks)) => {
            if chunk.choices.iter().any(|c| c.finish_reason.is_some()) {
                st.saw_finish_reason = true;
            }
            // Kept only when it fits on one `data:` line again.
            if !breaks {
                chunk.raw = Some(if data.len() == ev.data.len() {
                    ev.data
                } else {
                    data.to_owned()
                });
            }
            out.push_back(Ok(chunk));
        }
        Err(_) => {
            let err = match serde_json::from_str::<ErrorBody>(data) {
                Ok(body) => {
                    let hint =
                        format!("{:?} {:?}", body.error.kind, body.error.code).to_lowercase();
                    let mut e = ProviderError::from_status(500, &hint, "");
                    if e.kind == ProviderErrorKind::Unavailable {
                        e.kind = ProviderErrorKind::StreamInterrupted;
                    }
                    e.message = relayed_message(e.kind, body.error.message.as_deref());
                    e.status = None;
                    e
                }
                Err(_) => ProviderError::new(
                    ProviderErrorKind::Decode,
                    "upstream sent an invalid stream event",
                ),
            };
            out.push_back(Err(err));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{StreamExt, stream};

    fn chunk(content: &str, finish: Option<&str>) -> String {
        let fr = finish.map_or("null".to_owned(), |f| format!("\"{f}\""));
        format!(
            "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}},\"finish_reason\":{fr}}}]}}\n\n"
        )
    }

    async fn collect(parts: Vec<Result<String, ()>>) -> Vec<Result<ChatChunk, ProviderError>> {
        let s = stream::iter(parts.into_iter().map(|p| p.map(String::into_bytes)));
        parse_chunks(s).collect().await
    }

    #[tokio::test]
    async fn complete_stream() {
        let body = format!(
            "{}{}data: [DONE]\n\n",
            chunk("Hel", None),
            chunk("lo", Some("stop"))
        );
        let out = collect(vec![Ok(body)]).await;
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0].as_ref().unwrap().choices[0].delta.content.as_deref(),
            Some("Hel")
        );
    }

    #[tokio::test]
    async fn cut_stream_reports_interruption() {
        let out = collect(vec![Ok(chunk("Hel", None)), Err(())]).await;
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[1].as_ref().unwrap_err().kind,
            ProviderErrorKind::StreamInterrupted
        );
        let out = collect(vec![Ok(chunk("Hel", None))]).await;
        assert_eq!(
            out[1].as_ref().unwrap_err().message,
            "the upstream stream ended early"
        );
    }

    #[tokio::test]
    async fn error_event_ends_stream() {
        let body = format!(
            "{}data: {{\"error\":{{\"message\":\"boom\",\"type\":\"server_error\",\"param\":null,\"code\":null}}}}\n\n{}",
            chunk("a", None),
            chunk("b", None)
        );
        let out = collect(vec![Ok(body)]).await;
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[1].as_ref().unwrap_err().kind,
            ProviderErrorKind::StreamInterrupted
        );
    }
}
