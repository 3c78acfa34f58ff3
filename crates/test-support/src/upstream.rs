//! The mock upstream server: binds `127.0.0.1:0`, records every request, and answers
//! `POST /v1/chat/completions`, `POST /v1/embeddings` and `GET /v1/models` as the current
//! [`Behavior`] says.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::behavior::{Action, Behavior, Reply};
use crate::body::{CancelGuard, DisconnectCounter, event_body, json_response};
use crate::{embedding, openai};

/// Largest request body the mock reads.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// One request as the mock received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// Path without the query, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Headers in arrival order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body parsed as JSON; `Value::Null` when empty, a `Value::String` of the raw text when it
    /// is not JSON.
    pub body: Value,
}

impl RecordedRequest {
    /// First value of a header (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Script {
    requests: Vec<RecordedRequest>,
    steps: Vec<Behavior>,
    /// Index of the first request answered by `steps[0]`.
    first_request: usize,
}

pub(crate) struct Shared {
    script: Mutex<Script>,
    hits: watch::Sender<usize>,
    pub(crate) disconnects: DisconnectCounter,
}

impl Shared {
    fn script(&self) -> MutexGuard<'_, Script> {
        self.script
            .lock()
            .expect("mock upstream state lock poisoned")
    }
}

/// A running mock OpenAI-compatible upstream. Stops accepting connections when dropped.
pub struct MockUpstream {
    /// Base URL including `/v1`, e.g. `http://127.0.0.1:40123/v1`.
    pub base_url: String,
    /// The bound address.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl MockUpstream {
    /// Starts a mock on `127.0.0.1:0` that answers every request with `behavior`.
    ///
    /// # Panics
    /// If the listener cannot be bound.
    pub async fn start(behavior: Behavior) -> MockUpstream {
        Self::start_sequence(vec![behavior]).await
    }

    /// Starts a mock whose n-th request gets `behaviors[n]`; the last one repeats
    /// (e.g. `[server_error(), ok(..)]` for retry tests).
    ///
    /// # Panics
    /// If `behaviors` is empty or the listener cannot be bound.
    pub async fn start_sequence(behaviors: Vec<Behavior>) -> MockUpstream {
        assert!(
            !behaviors.is_empty(),
            "MockUpstream needs at least one behavior"
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mock upstream on 127.0.0.1:0");
        let addr = listener.local_addr().expect("mock upstream local address");
        let shared = Arc::new(Shared {
            script: Mutex::new(Script {
                requests: Vec::new(),
                steps: behaviors,
                first_request: 0,
            }),
            hits: watch::Sender::new(0),
            disconnects: DisconnectCounter::default(),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("mock upstream server failed");
        });
        MockUpstream {
            base_url: format!("http://{addr}/v1"),
            addr,
            shared,
            server,
        }
    }

    /// `base_url` joined with a path such as `/chat/completions`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.script().requests.clone()
    }

    /// How many requests arrived (any route).
    pub fn hits(&self) -> usize {
        self.shared.script().requests.len()
    }

    /// Resolves once at least `n` requests have arrived (no sleeping in tests).
    pub async fn wait_for_hits(&self, n: usize) {
        let mut hits = self.shared.hits.subscribe();
        hits.wait_for(|&h| h >= n)
            .await
            .expect("mock upstream hit counter closed");
    }

    /// How many responses were abandoned by the client: a streaming body dropped before its
    /// end, or a request dropped while the mock was still delaying or hanging.
    pub fn disconnects(&self) -> usize {
        self.shared.disconnects.count()
    }

    /// Resolves once a client has dropped a response before it finished (see
    /// [`MockUpstream::disconnects`]); returns at once if that already happened.
    pub async fn wait_for_disconnect(&self) {
        self.shared.disconnects.wait_for(1).await;
    }

    /// Answers every later request with `behavior`.
    pub fn set_behavior(&self, behavior: Behavior) {
        self.set_sequence(vec![behavior]);
    }

    /// Answers later requests with `behaviors` in turn, repeating the last.
    ///
    /// # Panics
    /// If `behaviors` is empty.
    pub fn set_sequence(&self, behaviors: Vec<Behavior>) {
        assert!(
            !behaviors.is_empty(),
            "MockUpstream needs at least one behavior"
        );
        let mut script = self.shared.script();
        script.first_request = script.requests.len();
        script.steps = behaviors;
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Chat,
    Embeddings,
    Models,
    Unknown,
}

fn route(method: &Method, path: &str) -> Route {
    match (method.as_str(), path.trim_end_matches('/')) {
        ("POST", "/v1/chat/completions") => Route::Chat,
        ("POST", "/v1/embeddings") => Route::Embeddings,
        ("GET", "/v1/models") => Route::Models,
        _ => Route::Unknown,
    }
}

/// Read a request into a [`RecordedRequest`].
pub(crate) async fn record(request: Request) -> RecordedRequest {
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

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let recorded = record(request).await;
    let (behavior, number) = {
        let mut script = shared.script();
        let number = script.requests.len();
        let step = (number - script.first_request).min(script.steps.len() - 1);
        let behavior = script.steps[step].clone();
        script.requests.push(recorded.clone());
        (behavior, number + 1)
    };
    // max, not replace: concurrent requests may publish out of order.
    shared.hits.send_modify(|hits| *hits = (*hits).max(number));

    // Counts a disconnect if the client goes away while we delay or hang.
    let guard = CancelGuard::new(shared.disconnects.clone());
    if !behavior.delay.is_zero() {
        tokio::time::sleep(behavior.delay).await;
    }
    if matches!(behavior.action, Action::Hang) {
        std::future::pending::<()>().await;
    }
    let mut response = respond(&behavior, &recorded, number, &shared);
    guard.disarm();
    let headers = response.headers_mut();
    headers.insert(
        "x-request-id",
        HeaderValue::from_str(&format!("req_mock{number:08}")).expect("ascii request id"),
    );
    for (name, value) in &behavior.headers {
        headers.append(name.clone(), value.clone());
    }
    response
}

fn respond(
    behavior: &Behavior,
    request: &RecordedRequest,
    number: usize,
    shared: &Shared,
) -> Response {
    let route = route(
        &request.method.parse().unwrap_or(Method::GET),
        &request.path,
    );
    match &behavior.action {
        // `handle` never gets here for a hang; answering nothing is the closest fallback.
        Action::Hang => Response::new(Body::empty()),
        Action::Raw {
            status,
            content_type,
            body,
        } => {
            let mut response = (status_code(*status), body.clone()).into_response();
            if let Ok(value) = HeaderValue::from_str(content_type) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            response
        }
        Action::Error(error) => {
            json_response(status_code(error.status), &openai::error_body(error))
        }
        Action::Reply(reply) => answer(route, behavior, reply, request, number, shared, None),
        Action::StreamThenFail {
            reply,
            chunks_before_failure,
        } => answer(
            route,
            behavior,
            reply,
            request,
            number,
            shared,
            Some(*chunks_before_failure),
        ),
    }
}

fn answer(
    route: Route,
    behavior: &Behavior,
    reply: &Reply,
    request: &RecordedRequest,
    number: usize,
    shared: &Shared,
    fail_after: Option<usize>,
) -> Response {
    let body = &request.body;
    let value = match route {
        Route::Chat => {
            let model = body
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("mock-model");
            let id = format!("chatcmpl-mock{number:08}");
            if body.get("stream").and_then(Value::as_bool) == Some(true) {
                let include_usage = body
                    .pointer("/stream_options/include_usage")
                    .and_then(Value::as_bool)
                    == Some(true);
                let mut events = openai::chat_chunks(reply, &id, model, include_usage);
                if let Some(n) = fail_after {
                    events.truncate(n);
                }
                return event_body(
                    events,
                    fail_after.is_some(),
                    behavior.chunk_delay,
                    shared.disconnects.clone(),
                );
            }
            openai::chat_completion(reply, &id, model)
        }
        Route::Embeddings => embedding::embeddings_response(body, behavior.embedding_dim),
        Route::Models => openai::model_list(&behavior.models),
        Route::Unknown => {
            return json_response(
                StatusCode::NOT_FOUND,
                &openai::unknown_route_body(&request.method, &request.path),
            );
        }
    };
    match fail_after {
        None => json_response(StatusCode::OK, &value),
        Some(_) => {
            // Half a JSON document, then a reset.
            let text = value.to_string();
            let half = Bytes::copy_from_slice(&text.as_bytes()[..text.len() / 2]);
            let mut response = event_body(
                vec![half],
                true,
                behavior.chunk_delay,
                shared.disconnects.clone(),
            );
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
    }
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
