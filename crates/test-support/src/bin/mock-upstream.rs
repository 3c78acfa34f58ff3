//! `mock-upstream`: a fast OpenAI-compatible upstream for benchmarks.
//!
//! Every answer is serialized once at startup; per request the server only scans the body for
//! `"stream": true` and `"include_usage": true` and hands out a shared `Bytes`. A streamed
//! reply (about ten content chunks, then `data: [DONE]`) is written as one body so the mock
//! stays far cheaper than whatever is measured in front of it.
//!
//! `--error-rate STATUS=RATE` (repeatable) answers that share of chat completions with OpenAI's
//! error body for the status, also serialized once; which requests fail is decided by a
//! splitmix64 hash of a request counter and `--seed`, so there is no lock and no RNG state, and
//! the same seed gives the same sequence. `GET /mock/stats` counts chat requests and injected
//! errors.
//!
//! ```text
//! mock-upstream [--listen 127.0.0.1:9001] [--threads N] [--model bench-model]
//!               [--error-rate STATUS=RATE]... [--seed N]
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use test_support::{DEFAULT_EMBEDDING_DIM, ErrorRate, FaultProfile, Reply, UpstreamError, openai};

const REPLY: &str = "This is a fixed reply from the Gatehouse benchmark mock upstream.";
const USAGE: &str = "usage: mock-upstream [--listen 127.0.0.1:9001] [--threads N] \
                     [--model bench-model] [--error-rate STATUS=RATE]... [--seed N]";

struct Args {
    listen: String,
    threads: Option<usize>,
    model: String,
    error_rates: Vec<ErrorRate>,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: "127.0.0.1:9001".to_owned(),
        threads: None,
        model: "bench-model".to_owned(),
        error_rates: Vec::new(),
        seed: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--listen" => args.listen = value()?,
            "--model" => args.model = value()?,
            "--threads" => {
                let n = value()?;
                args.threads = Some(
                    n.parse()
                        .map_err(|_| format!("--threads: not a number: {n}"))?,
                );
            }
            "--error-rate" => {
                let rate = value()?;
                args.error_rates
                    .push(rate.parse().map_err(|e| format!("--error-rate: {e}"))?);
            }
            "--seed" => {
                let n = value()?;
                args.seed = n
                    .parse()
                    .map_err(|_| format!("--seed: not a number: {n}"))?;
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    let mut check = FaultProfile::seeded(args.seed);
    for error in &args.error_rates {
        check = check.with_error_rate(error.status, error.rate);
    }
    check.check().map_err(|e| format!("--error-rate: {e}"))?;
    Ok(args)
}

/// splitmix64's finalizer: a well-mixed 64-bit value for each (seed, counter) pair.
fn splitmix64(seed: u64, n: u64) -> u64 {
    let mut z = seed.wrapping_add(n.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One injectable error: its cumulative threshold, answer and counter.
struct InjectedError {
    /// Requests whose hash is below this (and above the previous threshold) get this error.
    below: u64,
    status: StatusCode,
    body: Bytes,
    retry_after: bool,
    count: AtomicU64,
}

/// `--error-rate`: which chat requests fail, decided without locks.
struct Faults {
    seed: u64,
    requests: AtomicU64,
    errors: Vec<InjectedError>,
}

impl Faults {
    fn new(rates: &[ErrorRate], seed: u64) -> Self {
        let mut cumulative = 0.0;
        let errors = rates
            .iter()
            .map(|rate| {
                cumulative += rate.rate;
                let error = UpstreamError::for_status(rate.status);
                InjectedError {
                    // `as` saturates: a cumulative rate of 1 becomes u64::MAX.
                    below: (cumulative * 18_446_744_073_709_551_616.0) as u64,
                    status: StatusCode::from_u16(rate.status)
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    body: Bytes::from(openai::error_body(&error).to_string()),
                    retry_after: rate.status == 429,
                    count: AtomicU64::new(0),
                }
            })
            .collect();
        Self {
            seed,
            requests: AtomicU64::new(0),
            errors,
        }
    }

    /// Counts a chat request and says which error it gets, if any.
    fn pick(&self) -> Option<&InjectedError> {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        if self.errors.is_empty() {
            return None;
        }
        let draw = splitmix64(self.seed, n);
        let error = self.errors.iter().find(|e| draw < e.below)?;
        error.count.fetch_add(1, Ordering::Relaxed);
        Some(error)
    }

    fn stats(&self) -> serde_json::Value {
        let statuses: serde_json::Map<String, serde_json::Value> = self
            .errors
            .iter()
            .map(|e| {
                let count = e.count.load(Ordering::Relaxed);
                (e.status.as_u16().to_string(), count.into())
            })
            .collect();
        serde_json::json!({
            "requests": self.requests.load(Ordering::Relaxed),
            "statuses": statuses
        })
    }
}

/// Every answer, serialized once.
struct Canned {
    faults: Faults,
    completion: Bytes,
    stream: Bytes,
    stream_with_usage: Bytes,
    embeddings: Bytes,
    models: Bytes,
}

impl Canned {
    fn new(model: &str, faults: Faults) -> Self {
        let reply = Reply {
            content: Some(REPLY.to_owned()),
            tool_calls: Vec::new(),
            prompt_tokens: 20,
            completion_tokens: 12,
            cached_tokens: 0,
            finish_reason: None,
        };
        let joined = |events: Vec<Bytes>| Bytes::from(events.concat());
        let id = "chatcmpl-bench";
        let embeddings_request = serde_json::json!({"model": model, "input": "bench"});
        Self {
            faults,
            completion: Bytes::from(openai::chat_completion(&reply, id, model).to_string()),
            stream: joined(openai::chat_chunks(&reply, id, model, false)),
            stream_with_usage: joined(openai::chat_chunks(&reply, id, model, true)),
            embeddings: Bytes::from(
                test_support::embeddings_response(&embeddings_request, DEFAULT_EMBEDDING_DIM)
                    .to_string(),
            ),
            models: Bytes::from(openai::model_list(&[model.to_owned()]).to_string()),
        }
    }
}

/// Whether `"key"` appears followed by `: true` (any whitespace). No JSON parsing.
fn flag_is_true(body: &[u8], key: &[u8]) -> bool {
    let mut rest = body;
    while let Some(at) = rest.windows(key.len()).position(|w| w == key) {
        rest = &rest[at + key.len()..];
        let value = rest.trim_ascii_start();
        if let Some(after_colon) = value.strip_prefix(b":")
            && after_colon.trim_ascii_start().starts_with(b"true")
        {
            return true;
        }
    }
    false
}

fn with_type(body: Bytes, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

async fn chat(State(canned): State<Arc<Canned>>, body: Bytes) -> Response {
    if let Some(error) = canned.faults.pick() {
        let mut response = (error.status, error.body.clone()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if error.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        return response;
    }
    if flag_is_true(&body, b"\"stream\"") {
        let events = if flag_is_true(&body, b"\"include_usage\"") {
            &canned.stream_with_usage
        } else {
            &canned.stream
        };
        with_type(events.clone(), "text/event-stream; charset=utf-8")
    } else {
        with_type(canned.completion.clone(), "application/json")
    }
}

async fn embeddings(State(canned): State<Arc<Canned>>) -> Response {
    with_type(canned.embeddings.clone(), "application/json")
}

async fn models(State(canned): State<Arc<Canned>>) -> Response {
    with_type(canned.models.clone(), "application/json")
}

async fn stats(State(canned): State<Arc<Canned>>) -> Response {
    with_type(
        Bytes::from(canned.faults.stats().to_string()),
        "application/json",
    )
}

async fn serve(args: Args) -> Result<(), String> {
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route(test_support::STATS_PATH, get(stats))
        .with_state(Arc::new(Canned::new(
            &args.model,
            Faults::new(&args.error_rates, args.seed),
        )));
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("bind {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("mock-upstream listening on http://{addr}/v1");
    for rate in &args.error_rates {
        println!(
            "injecting status {} on {} of chat requests (seed {})",
            rate.status, rate.rate, args.seed
        );
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        builder.worker_threads(threads.max(1));
    }
    let result = builder
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(serve(args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mock-upstream: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Faults, flag_is_true};
    use test_support::ErrorRate;

    fn statuses(faults: &Faults, n: usize) -> Vec<Option<u16>> {
        (0..n)
            .map(|_| faults.pick().map(|e| e.status.as_u16()))
            .collect()
    }

    #[test]
    fn error_rates_are_seeded_and_close_to_the_rate() {
        let rates = [ErrorRate {
            status: 500,
            rate: 0.1,
        }];
        let faults = Faults::new(&rates, 7);
        let picked = statuses(&faults, 10_000);
        assert_eq!(picked, statuses(&Faults::new(&rates, 7), 10_000));
        assert_ne!(picked, statuses(&Faults::new(&rates, 8), 10_000));
        let failed = picked.iter().filter(|s| **s == Some(500)).count();
        // 10,000 × 0.1 = 1,000, σ = 30.
        assert!((880..=1120).contains(&failed), "{failed}");
        assert_eq!(
            faults.stats(),
            serde_json::json!({"requests": 10_000, "statuses": {"500": failed}})
        );
    }

    #[test]
    fn several_statuses_share_one_draw() {
        let rates = [
            ErrorRate {
                status: 500,
                rate: 0.5,
            },
            ErrorRate {
                status: 429,
                rate: 0.5,
            },
        ];
        let picked = statuses(&Faults::new(&rates, 1), 2_000);
        assert!(
            picked.iter().all(Option::is_some),
            "rates adding to 1 fail all"
        );
        let limited = picked.iter().filter(|s| **s == Some(429)).count();
        assert!((850..=1150).contains(&limited), "{limited}");
        assert_eq!(statuses(&Faults::new(&[], 1), 100), vec![None; 100]);
    }

    #[test]
    fn finds_stream_flag_cheaply() {
        assert!(flag_is_true(
            br#"{"model":"m","stream":true}"#,
            b"\"stream\""
        ));
        assert!(flag_is_true(br#"{"stream" :  true}"#, b"\"stream\""));
        assert!(!flag_is_true(
            br#"{"stream":false,"stream_options":{"include_usage":true}}"#,
            b"\"stream\""
        ));
        assert!(flag_is_true(
            br#"{"stream_options": {"include_usage": true}}"#,
            b"\"include_usage\""
        ));
        assert!(!flag_is_true(br#"{"model":"m"}"#, b"\"stream\""));
    }
}
