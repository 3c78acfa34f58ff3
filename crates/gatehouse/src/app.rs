//! `AppState` and `build_app()`: the one place the layer stack is assembled.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use http::HeaderValue;
use store::{Ledger, Store};

use crate::cache::context::StatusSlot;
use crate::config::Config;
use crate::error::{ApiError, ErrorCode, ErrorMarker};
use crate::routes;
use crate::routing::ModelRouter;
use crate::telemetry::metrics::{CodeLabel, Metrics, RequestLabels, RouteLabel};

/// Everything a handler may need, built once at startup.
pub struct AppState {
    pub config: Arc<Config>,
    pub router: ModelRouter,
    pub store: Store,
    pub ledger: Ledger,
    pub metrics: Arc<Metrics>,
    pub retry_budget: crate::resilience::RetryBudget,
    /// The web UI's sessions and per-user spend.
    pub web: crate::web::WebState,
    pub assistants: Arc<crate::assistants::Runtime>,
    pub cache: crate::cache::ResponseCache,
    /// Keys, limits, concurrency and budgets.
    pub access: Arc<crate::access::Access>,
    /// Hardening headers, computed once from the configuration.
    pub security_headers: crate::security::SecurityHeaders,
}

/// The request id (the client's `x-request-id` when well-formed, a fresh UUIDv7 otherwise), and
/// whether a usage guard took over logging this request's line.
#[derive(Debug, Clone)]
pub struct RequestId {
    pub id: Arc<str>,
    pub logged_by_guard: Arc<AtomicBool>,
}

/// Assemble the application. Layers, outermost first:
/// 1. `observe`: request id in and out, in-flight gauge, request metrics and the access log line
///    — outermost so it sees every response, including errors from the layers below; it also
///    sets the security headers on every response (errors and preflights included) and gives
///    each request the slot the chat pipeline reports the cache outcome in, turning it into the
///    `x-gatehouse-cache` response header (JSON and SSE alike). One layer instead of three:
///    each `from_fn` layer costs a boxed future and a service clone per request;
/// 2. CORS (configured origins only): answers preflights before authentication;
/// 3. sensitive headers: `Authorization` and key headers marked before anything traces them;
/// 4. trace: a DEBUG span per request (headers included, the sensitive ones redacted), present
///    only when `tower_http` DEBUG spans are enabled at startup (`RUST_LOG`), so the default
///    filter pays nothing for it;
/// 5. body limit (`DefaultBodyLimit`): enforced while extracting, so oversized bodies get the
///    413 of the error contract from `ValidJson`;
/// 6. access: authentication outside the allowlist, the admin rate limit, `x-ratelimit-*`
///    headers — inside the body limit so it never buffers a body, outside the routes so unknown
///    paths need a key too;
/// 7. routes, with OpenAI-style JSON for unknown paths and methods.
pub fn build_app(state: Arc<AppState>) -> Router {
    let limit = state.config.server.max_body_bytes;
    let security = &state.config.access.security;
    // DEBUG only: `observe` writes the access log line; failures are not logged twice.
    let trace = tracing::enabled!(target: "tower_http::trace", tracing::Level::DEBUG).then(|| {
        tower::ServiceBuilder::new()
            .map_response(|r: Response<_>| r.map(axum::body::Body::new))
            .layer(
                tower_http::trace::TraceLayer::new_for_http()
                    .make_span_with(
                        tower_http::trace::DefaultMakeSpan::new()
                            .level(tracing::Level::DEBUG)
                            .include_headers(true),
                    )
                    .on_failure(
                        tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG),
                    ),
            )
    });
    routes::router()
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            crate::access::layer::access_layer,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .layer(tower::util::option_layer(trace))
        .layer(
            tower_http::sensitive_headers::SetSensitiveHeadersLayer::new(
                crate::security::sensitive_headers(),
            ),
        )
        .layer(tower::util::option_layer(crate::security::cors(security)))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), observe))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "No such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "Method not allowed on this route",
    )
}

fn valid_request_id(v: &HeaderValue) -> Option<&str> {
    let s = v.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then_some(s)
}

fn route_label(path: &str) -> &'static str {
    match path {
        "/v1/chat/completions" => "chat",
        "/v1/messages" => "messages",
        "/v1/embeddings" => "embeddings",
        "/v1/models" => "models",
        "/v1/audio/transcriptions" => "transcriptions",
        "/web/api/chat/completions" => "web_chat",
        "/health" => "health",
        "/ready" => "ready",
        "/metrics" => "metrics",
        "/openapi.json" => "openapi",
        _ => "other",
    }
}

async fn observe(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id: Arc<str> = match req.headers().get("x-request-id").and_then(valid_request_id) {
        Some(s) => Arc::from(s),
        // Time-ordered (v7), so the ledger's request-id index grows at its end.
        None => Arc::from(uuid::Uuid::now_v7().to_string()),
    };
    let path = req.uri().path();
    let route = route_label(path);
    let ui = crate::access::layer::classify(path) == crate::access::layer::RouteClass::Ui;
    let method = req.method().clone();
    let logged_by_guard = Arc::new(AtomicBool::new(false));
    let cache_slot = StatusSlot::default();
    let ext = req.extensions_mut();
    ext.insert(RequestId {
        id: Arc::clone(&id),
        logged_by_guard: Arc::clone(&logged_by_guard),
    });
    ext.insert(cache_slot.clone());
    let m = &state.metrics;
    m.in_flight.inc();
    let mut resp = next.run(req).await;
    m.in_flight.dec();
    let status = resp.status().as_u16();
    m.requests
        .get_or_create(&RequestLabels { route, status })
        .inc();
    m.latency
        .get_or_create(&RouteLabel { route })
        .observe(started.elapsed().as_secs_f64());
    let error = resp.extensions().get::<ErrorMarker>().map(|e| e.0);
    if let Some(code) = error {
        m.errors
            .get_or_create(&CodeLabel {
                code: code.as_str(),
            })
            .inc();
    }
    if !logged_by_guard.load(Ordering::Relaxed) && route != "metrics" && route != "health" {
        tracing::info!(
            request_id = %id,
            method = %method,
            route,
            status,
            latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            error_code = error.map(ErrorCode::as_str),
            "request"
        );
    }
    let headers = resp.headers_mut();
    state.security_headers.apply(ui, headers);
    if let Some(v) = crate::cache::context::header_value(cache_slot.get()) {
        headers.insert(crate::cache::context::HEADER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert(REQUEST_ID, v);
    }
    resp
}

const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");
