//! The mock upstream server: binds `127.0.0.1:0` (or serves a given listener until shutdown),
//! records every request, and answers `POST /v1/chat/completions`, `POST /v1/embeddings` and
//! `GET /v1/models` as the current [`Behavior`] says, with faults from a [`FaultProfile`] or
//! the request's `x-mock-fault` directives on top. `GET /mock/stats` reports what was injected.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::behavior::{Action, Behavior, Reply};
use crate::body::{CancelGuard, DisconnectCounter, event_body, json_response, reset_response};
use crate::fault::{self, CutAt, FaultProfile, Faults, Injected, PlannedFault, directive};
use crate::{embedding, openai};

/// Path of the injected-fault counters (`GET`); not recorded, never faulted.
pub const STATS_PATH: &str = "/mock/stats";

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
    /// Every request, unless `record` is off (a long-running `serve` keeps only the count).
    requests: Vec<RecordedRequest>,
    record: bool,
    hits: usize,
    steps: Vec<Behavior>,
    /// Number of the first request answered by `steps[0]`.
    first_request: usize,
}

pub(crate) struct Shared {
    script: Mutex<Script>,
    hits: watch::Sender<usize>,
    pub(crate) disconnects: DisconnectCounter,
    faults: Faults,
}

impl Shared {
    fn new(behaviors: Vec<Behavior>, faults: Option<FaultProfile>, record: bool) -> Arc<Self> {
        assert!(
            !behaviors.is_empty(),
            "MockUpstream needs at least one behavior"
        );
        Arc::new(Shared {
            script: Mutex::new(Script {
                requests: Vec::new(),
                record,
                hits: 0,
                steps: behaviors,
                first_request: 0,
            }),
            hits: watch::Sender::new(0),
            disconnects: DisconnectCounter::default(),
            faults: Faults::new(faults),
        })
    }

    fn script(&self) -> MutexGuard<'_, Script> {
        self.script
            .lock()
            .expect("mock upstream state lock poisoned")
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
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
        Self::launch(vec![behavior], None).await
    }

    /// Starts a mock that answers with `behavior` but misbehaves at random as `faults` says.
    ///
    /// # Panics
    /// If `faults` does not pass [`FaultProfile::check`] or the listener cannot be bound.
    pub async fn start_with_faults(behavior: Behavior, faults: FaultProfile) -> MockUpstream {
        Self::launch(vec![behavior], Some(faults)).await
    }

    /// Starts a mock whose n-th request gets `behaviors[n]`; the last one repeats
    /// (e.g. `[server_error(), ok(..)]` for retry tests).
    ///
    /// # Panics
    /// If `behaviors` is empty or the listener cannot be bound.
    pub async fn start_sequence(behaviors: Vec<Behavior>) -> MockUpstream {
        Self::launch(behaviors, None).await
    }

    async fn launch(behaviors: Vec<Behavior>, faults: Option<FaultProfile>) -> MockUpstream {
        let shared = Shared::new(behaviors, faults, true);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mock upstream on 127.0.0.1:0");
        let addr = listener.local_addr().expect("mock upstream local address");
        let app = router(Arc::clone(&shared));
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

    /// Serves `listener` until `shutdown` resolves, then returns what was injected: the
    /// long-running form behind `gatehouse mock-upstream`. Requests are counted, not recorded,
    /// so memory stays flat however long it runs.
    ///
    /// # Panics
    /// If `faults` does not pass [`FaultProfile::check`] (check it first for a clean error).
    ///
    /// # Errors
    /// If serving fails.
    pub async fn serve(
        listener: TcpListener,
        behavior: Behavior,
        faults: Option<FaultProfile>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<Injected> {
        let shared = Shared::new(vec![behavior], faults, false);
        axum::serve(listener, router(Arc::clone(&shared)))
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(shared.faults.injected())
    }

    /// `base_url` joined with a path such as `/chat/completions`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.script().requests.clone()
    }

    /// How many requests arrived (any route but [`STATS_PATH`]).
    pub fn hits(&self) -> usize {
        self.shared.script().hits
    }

    /// What was injected so far (also served as JSON at `GET /mock/stats`).
    pub fn injected(&self) -> Injected {
        self.shared.faults.injected()
    }

    /// Replaces the fault profile (`None`: no random faults) and restarts its generator from
    /// the new seed; the [`MockUpstream::injected`] counters carry on.
    ///
    /// # Panics
    /// If the profile does not pass [`FaultProfile::check`].
    pub fn set_faults(&self, faults: Option<FaultProfile>) {
        self.shared.faults.set(faults);
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
        script.first_request = script.hits;
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

impl Route {
    /// Faults (random or requested) apply to the model calls only, so `/v1/models` keeps
    /// working as a health probe.
    fn faultable(self) -> bool {
        matches!(self, Route::Chat | Route::Embeddings)
    }
}

fn route(method: &Method, path: &str) -> Route {
    match (method.as_str(), path.trim_end_matches('/')) {
        ("POST", "/v1/chat/completions") => Route::Chat,
        ("POST", "/v1/embeddings") => Route::Embeddings,
        ("GET", "/v1/models") => Route::Models,
        _ => Route::Unknown,
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if parts.method == Method::GET && parts.uri.path() == STATS_PATH {
        return json_response(StatusCode::OK, &shared.faults.injected().to_json());
    }
    let bytes = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .unwrap_or_default();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    let recorded = RecordedRequest {
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
    };
    let (behavior, number) = {
        let mut script = shared.script();
        script.hits += 1;
        let number = script.hits;
        let step = (number - 1 - script.first_request).min(script.steps.len() - 1);
        let behavior = script.steps[step].clone();
        if script.record {
            script.requests.push(recorded.clone());
        }
        (behavior, number)
    };
    // max, not replace: concurrent requests may publish out of order.
    shared.hits.send_modify(|hits| *hits = (*hits).max(number));

    let route = route(&parts.method, &recorded.path);
    let plan = if route.faultable() {
        match directive::requested(&parts.headers, &bytes) {
            Ok(requested) => Some(shared.faults.plan(requested)),
            Err(error) => {
                let body = json!({"error": {
                    "message": error.to_string(),
                    "type": "invalid_request_error",
                    "param": null,
                    "code": "invalid_mock_fault"
                }});
                return finish(json_response(StatusCode::BAD_REQUEST, &body), &[], number);
            }
        }
    } else {
        None
    };
    let faults = plan.unwrap_or_default();

    // Counts a disconnect if the client goes away while we delay or hang.
    let guard = CancelGuard::new(shared.disconnects.clone());
    let delay = behavior.delay.saturating_add(faults.latency);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let streamed =
        route == Route::Chat && recorded.body.get("stream").and_then(Value::as_bool) == Some(true);
    let chunk_delay = faults.drip.unwrap_or(behavior.chunk_delay);
    let (response, answered_a_stream) = match faults.action {
        Some(PlannedFault::Reset) => (reset_response(), false),
        Some(PlannedFault::Status {
            status,
            retry_after,
        }) => (fault::status_response(status, retry_after), false),
        Some(PlannedFault::Cut(at)) => {
            let reply = behavior.reply_or_default();
            let answer = Answer {
                route,
                behavior: &behavior,
                request: &recorded,
                number,
                chunk_delay,
                shared: &shared,
            };
            (answer.reply(&reply, Some(at)), streamed)
        }
        None => {
            if matches!(behavior.action, Action::Hang) {
                std::future::pending::<()>().await;
            }
            let answer = Answer {
                route,
                behavior: &behavior,
                request: &recorded,
                number,
                chunk_delay,
                shared: &shared,
            };
            let replies = matches!(
                behavior.action,
                Action::Reply(_) | Action::StreamThenFail { .. }
            );
            (answer.respond(), streamed && replies)
        }
    };
    if let Some(plan) = &plan {
        shared
            .faults
            .record(plan, answered_a_stream && plan.drip.is_some());
    }
    guard.disarm();
    finish(response, &behavior.headers, number)
}

/// Adds the request id and the behavior's extra headers.
fn finish(
    mut response: Response,
    extra: &[(header::HeaderName, HeaderValue)],
    number: usize,
) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        "x-request-id",
        HeaderValue::from_str(&format!("req_mock{number:08}")).expect("ascii request id"),
    );
    for (name, value) in extra {
        headers.append(name.clone(), value.clone());
    }
    response
}

/// Everything needed to answer one request as its behavior says.
struct Answer<'a> {
    route: Route,
    behavior: &'a Behavior,
    request: &'a RecordedRequest,
    number: usize,
    chunk_delay: Duration,
    shared: &'a Shared,
}

impl Answer<'_> {
    fn respond(&self) -> Response {
        match &self.behavior.action {
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
            Action::Reply(reply) => self.reply(reply, None),
            Action::StreamThenFail {
                reply,
                chunks_before_failure,
            } => self.reply(reply, Some(CutAt::Events(*chunks_before_failure))),
        }
    }

    /// The route's answer built from `reply`, cut short at `cut` if given.
    fn reply(&self, reply: &Reply, cut: Option<CutAt>) -> Response {
        let body = &self.request.body;
        let value = match self.route {
            Route::Chat => {
                let model = body
                    .get("model")
                    .and_then(Value::as_str)
                    .unwrap_or("mock-model");
                let id = format!("chatcmpl-mock{:08}", self.number);
                if body.get("stream").and_then(Value::as_bool) == Some(true) {
                    let include_usage = body
                        .pointer("/stream_options/include_usage")
                        .and_then(Value::as_bool)
                        == Some(true);
                    let mut events = openai::chat_chunks(reply, &id, model, include_usage);
                    if let Some(cut) = cut {
                        events.truncate(cut.events_sent(events.len()));
                    }
                    return event_body(
                        events,
                        cut.is_some(),
                        self.chunk_delay,
                        self.shared.disconnects.clone(),
                    );
                }
                openai::chat_completion(reply, &id, model)
            }
            Route::Embeddings => embedding::embeddings_response(body, self.behavior.embedding_dim),
            Route::Models => openai::model_list(&self.behavior.models),
            Route::Unknown => {
                return json_response(
                    StatusCode::NOT_FOUND,
                    &openai::unknown_route_body(&self.request.method, &self.request.path),
                );
            }
        };
        if cut.is_none() {
            return json_response(StatusCode::OK, &value);
        }
        // Half a JSON document, then a reset.
        let text = value.to_string();
        let half = Bytes::copy_from_slice(&text.as_bytes()[..text.len() / 2]);
        let mut response = event_body(
            vec![half],
            true,
            self.chunk_delay,
            self.shared.disconnects.clone(),
        );
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
