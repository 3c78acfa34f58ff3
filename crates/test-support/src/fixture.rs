//! [`FixtureUpstream`]: a mock upstream for any provider's wire format. It answers requests
//! with canned responses (typically recorded fixtures read from files) in order, the last one
//! repeating, and records every request so tests can compare what a provider adapter sent with
//! the provider's exact request format.
//!
//! ```no_run
//! # async fn demo() {
//! use test_support::{Canned, FixtureUpstream};
//!
//! let up = FixtureUpstream::start(vec![Canned::sse(
//!     "event: ping\ndata: {\"type\": \"ping\"}\n\n",
//! )])
//! .await;
//! // point an adapter at `up.base_url` (http://127.0.0.1:PORT), call it, then:
//! assert_eq!(up.requests()[0].path, "/v1/messages");
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::body::{DisconnectCounter, event_body};
use crate::upstream::RecordedRequest;

/// Largest request body the fixture upstream reads.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Read a request into a [`RecordedRequest`] (body parsed as JSON when it is JSON).
async fn record(request: Request) -> RecordedRequest {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .unwrap_or_default();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    RecordedRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    }
}

/// What the body of a canned response is.
#[derive(Clone, Debug)]
enum CannedBody {
    /// One `application/json` body.
    Json(Bytes),
    /// A `text/event-stream` body sent one event per frame; with `cut` the connection is reset
    /// after the last event sent.
    Sse { events: Vec<Bytes>, cut: bool },
}

/// One canned response.
#[derive(Clone, Debug)]
pub struct Canned {
    status: u16,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: CannedBody,
}

impl Canned {
    /// A JSON answer with `status`, the body exactly as given.
    pub fn json(status: u16, body: impl Into<Bytes>) -> Canned {
        Canned {
            status,
            headers: Vec::new(),
            body: CannedBody::Json(body.into()),
        }
    }

    /// A 200 JSON answer built from a value.
    pub fn json_value(value: &Value) -> Canned {
        Canned::json(200, value.to_string())
    }

    /// A complete SSE answer: `text` is split after every blank line, each event its own frame.
    pub fn sse(text: &str) -> Canned {
        Canned {
            status: 200,
            headers: Vec::new(),
            body: CannedBody::Sse {
                events: split_events(text),
                cut: false,
            },
        }
    }

    /// An SSE answer that stops after its first `events` events with a connection reset, as a
    /// stream cut mid-way.
    pub fn sse_cut(text: &str, events: usize) -> Canned {
        let mut all = split_events(text);
        all.truncate(events);
        Canned {
            status: 200,
            headers: Vec::new(),
            body: CannedBody::Sse {
                events: all,
                cut: true,
            },
        }
    }

    /// Adds a response header.
    ///
    /// # Panics
    /// If the name or value is not a valid header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Canned {
        self.headers.push((
            HeaderName::from_bytes(name.as_bytes()).expect("valid header name"),
            HeaderValue::from_str(value).expect("valid header value"),
        ));
        self
    }
}

/// Splits SSE text after each blank line (LF or CRLF), keeping every byte.
fn split_events(text: &str) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let end = if bytes[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if bytes[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        };
        if let Some(e) = end {
            out.push(Bytes::copy_from_slice(&bytes[start..e]));
            start = e;
            i = e;
        } else {
            i += 1;
        }
    }
    if start < bytes.len() {
        out.push(Bytes::copy_from_slice(&bytes[start..]));
    }
    out
}

struct Script {
    responses: Vec<Canned>,
    requests: Vec<RecordedRequest>,
}

struct Shared {
    script: Mutex<Script>,
    disconnects: DisconnectCounter,
}

impl Shared {
    fn script(&self) -> MutexGuard<'_, Script> {
        self.script.lock().expect("fixture upstream lock poisoned")
    }
}

/// A running fixture upstream on `127.0.0.1:0`. Stops when dropped.
pub struct FixtureUpstream {
    /// `http://127.0.0.1:PORT`, without a path: adapters add their own (`/v1/messages`,
    /// `/v1beta/models/…`), so point them at `base_url` plus whatever prefix they expect.
    pub base_url: String,
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl FixtureUpstream {
    /// Answers the n-th request with `responses[n]`, the last one repeating.
    ///
    /// # Panics
    /// If `responses` is empty or the listener cannot be bound.
    pub async fn start(responses: Vec<Canned>) -> FixtureUpstream {
        assert!(!responses.is_empty(), "FixtureUpstream needs a response");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fixture upstream on 127.0.0.1:0");
        let addr = listener.local_addr().expect("fixture upstream address");
        let shared = Arc::new(Shared {
            script: Mutex::new(Script {
                responses,
                requests: Vec::new(),
            }),
            disconnects: DisconnectCounter::default(),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("fixture upstream server failed");
        });
        FixtureUpstream {
            base_url: format!("http://{addr}"),
            addr,
            shared,
            server,
        }
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.script().requests.clone()
    }

    /// How many requests arrived.
    pub fn hits(&self) -> usize {
        self.shared.script().requests.len()
    }
}

impl Drop for FixtureUpstream {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let recorded = record(request).await;
    let canned = {
        let mut script = shared.script();
        let n = script.requests.len().min(script.responses.len() - 1);
        script.requests.push(recorded);
        script.responses[n].clone()
    };
    let status = StatusCode::from_u16(canned.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match canned.body {
        CannedBody::Json(body) => {
            let mut r = (status, body).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        CannedBody::Sse { events, cut } => {
            let mut r = event_body(events, cut, Duration::ZERO, shared.disconnects.clone());
            *r.status_mut() = status;
            r
        }
    };
    for (name, value) in canned.headers {
        response.headers_mut().append(name, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_after_blank_lines() {
        let e = split_events("a: 1\n\nb: 2\r\n\r\ntail");
        assert_eq!(
            e,
            vec![
                Bytes::from_static(b"a: 1\n\n"),
                Bytes::from_static(b"b: 2\r\n\r\n"),
                Bytes::from_static(b"tail")
            ]
        );
    }
}
