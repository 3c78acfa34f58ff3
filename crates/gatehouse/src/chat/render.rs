//! Frames → OpenAI's SSE wire format: `data: {chunk}\n\n` events, `usage: null` on every chunk
//! and a final usage chunk only when the client asked (`stream_options.include_usage`), errors
//! as `data: {"error": …}`, and `data: [DONE]` after a complete stream. One write per batch.
//! A chunk the pipeline left as the upstream sent it is written in the upstream's own encoding.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use providers::UsageField;

use super::stream::{Frame, FrameStream};

pub fn openai_sse(frames: FrameStream, include_usage: bool) -> Response {
    let body = frames.map(move |batch| {
        // Relayed chunks need exactly their size; a chunk encoded again is rarely over 384.
        let size: usize = batch
            .iter()
            .map(|f| match f {
                Frame::Chunk(c) => c.raw.as_ref().map_or(384, |r| r.len() + 8),
                _ => 64,
            })
            .sum();
        let mut buf = BytesMut::with_capacity(size);
        for frame in batch {
            match frame {
                Frame::Chunk(mut chunk) => {
                    let usage_only = chunk.choices.is_empty() && chunk.usage.usage().is_some();
                    if usage_only && !include_usage {
                        continue;
                    }
                    if !usage_only {
                        let usage = if include_usage {
                            UsageField::Null
                        } else {
                            UsageField::Absent
                        };
                        if chunk.usage != usage {
                            chunk.usage = usage;
                            chunk.raw = None;
                        }
                    }
                    match &chunk.raw {
                        // Relayed as the upstream wrote it (already valid JSON on one line).
                        Some(raw) => {
                            buf.put_slice(b"data: ");
                            buf.put_slice(raw.as_bytes());
                            buf.put_slice(b"\n\n");
                        }
                        None => write_event(&mut buf, &chunk),
                    }
                }
                Frame::KeepAlive => buf.put_slice(b": keep-alive\n\n"),
                Frame::Note(text) => {
                    buf.put_slice(b": ");
                    buf.put_slice(text.replace('\n', " ").as_bytes());
                    buf.put_slice(b"\n\n");
                }
                Frame::Error(err) => write_event(&mut buf, &err.body()),
                Frame::Done => buf.put_slice(b"data: [DONE]\n\n"),
            }
        }
        Ok::<Bytes, std::convert::Infallible>(buf.freeze())
    });
    sse_response(Body::from_stream(body))
}

/// A `chat.completion` response: the upstream's own bytes when the pipeline left the response
/// as received, the typed response encoded otherwise.
pub fn completion_response(mut completion: Box<providers::ChatResponse>) -> Response {
    match completion.raw.take() {
        Some(raw) => {
            let mut resp = Response::new(Body::from(raw));
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            resp
        }
        None => axum::Json(completion).into_response(),
    }
}

/// A `text/event-stream` response around `body`, with caching and proxy buffering off.
pub fn sse_response(body: Body) -> Response {
    Response::builder()
        .header(http::header::CONTENT_TYPE, "text/event-stream")
        .header(http::header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(body)
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

pub fn write_event<T: serde::Serialize>(buf: &mut BytesMut, value: &T) {
    buf.put_slice(b"data: ");
    let mut w = buf.writer();
    if serde_json::to_writer(&mut w, value).is_err() {
        tracing::error!("failed to encode a stream event");
    }
    let buf = w.into_inner();
    buf.put_slice(b"\n\n");
}
