//! `mock-upstream`: a fast OpenAI-compatible upstream for benchmarks.
//!
//! Every answer is serialized once at startup; per request the server only scans the body for
//! `"stream": true` and `"include_usage": true` and hands out a shared `Bytes`. A streamed
//! reply (about ten content chunks, then `data: [DONE]`) is written as one body so the mock
//! stays far cheaper than whatever is measured in front of it.
//!
//! ```text
//! mock-upstream [--listen 127.0.0.1:9001] [--threads N] [--model bench-model]
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use test_support::{DEFAULT_EMBEDDING_DIM, Reply, openai};

const REPLY: &str = "This is a fixed reply from the Gatehouse benchmark mock upstream.";
const USAGE: &str =
    "usage: mock-upstream [--listen 127.0.0.1:9001] [--threads N] [--model bench-model]";

struct Args {
    listen: String,
    threads: Option<usize>,
    model: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: "127.0.0.1:9001".to_owned(),
        threads: None,
        model: "bench-model".to_owned(),
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
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

/// Every answer, serialized once.
struct Canned {
    completion: Bytes,
    stream: Bytes,
    stream_with_usage: Bytes,
    embeddings: Bytes,
    models: Bytes,
}

impl Canned {
    fn new(model: &str) -> Self {
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

async fn serve(args: Args) -> Result<(), String> {
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .with_state(Arc::new(Canned::new(&args.model)));
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("bind {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("mock-upstream listening on http://{addr}/v1");
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
    use super::flag_is_true;

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
