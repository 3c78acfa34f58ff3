//! Frames → Anthropic's SSE wire format, every event named with an `event:` line (the
//! Anthropic SDKs ignore unnamed events): chunks go through the stateful
//! [`EventEncoder`](providers::anthropic::inbound::EventEncoder), keep-alives become `ping`
//! events, a failure after the start an `error` event, and the end `message_delta` (stop
//! reason, final usage) and `message_stop`. One write per batch.

use axum::body::Body;
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use providers::anthropic::inbound::{EventEncoder, encode_event};
use providers::anthropic::wire::StreamEvent;

use crate::chat::render::sse_response;
use crate::chat::stream::{Frame, FrameStream};

pub fn anthropic_sse(frames: FrameStream, model: String, input_estimate: u64) -> Response {
    let mut encoder = EventEncoder::new(model, input_estimate);
    let mut events = Vec::new();
    let body = frames.map(move |batch| {
        let mut buf = BytesMut::with_capacity(256 * batch.len());
        for frame in batch {
            match frame {
                Frame::Chunk(chunk) => encoder.chunk(&chunk, &mut events),
                Frame::KeepAlive => events.push(StreamEvent::Ping),
                Frame::Note(text) => {
                    buf.put_slice(b": ");
                    buf.put_slice(text.replace('\n', " ").as_bytes());
                    buf.put_slice(b"\n\n");
                }
                Frame::Error(err) => {
                    encoder.error(err.status().as_u16(), &err.message, &mut events);
                }
                Frame::Done => encoder.finish(&mut events),
            }
            for ev in events.drain(..) {
                buf.put_slice(encode_event(&ev).as_bytes());
            }
        }
        Ok::<Bytes, std::convert::Infallible>(buf.freeze())
    });
    sse_response(Body::from_stream(body))
}
