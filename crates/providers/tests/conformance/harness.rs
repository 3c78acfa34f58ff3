//! The conformance harness: fixtures on disk, a provider pointed at a [`FixtureUpstream`], and
//! the checks every case shares. A case is named by its fixture files:
//!
//! - `fixtures/cases/<case>.json`: the canonical (OpenAI) request, the same for every provider;
//! - `fixtures/<provider>/<case>.request.json`: the exact body the adapter must send;
//! - `fixtures/<provider>/<case>.response.json` or `.response.sse`: the recorded answer, in
//!   the provider's exact wire format;
//! - `fixtures/<provider>/<case>.expected.json`: the canonical result (`created` set to 0), or
//!   `{"error": {"kind", "message"}}` when the adapter must refuse the request without sending
//!   it;
//! - `fixtures/<provider>/errors.json`: every error answer with the classification expected.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use providers::anthropic::AnthropicProvider;
use providers::gemini::GeminiProvider;
use providers::openai::OpenAiProvider;
use providers::{ChatChunk, ChatRequest, Provider, ProviderError};
use secrecy::SecretString;
use serde_json::Value;
use test_support::{Canned, FixtureUpstream, RecordedRequest};

/// The key every adapter is given; it must reach the upstream in the provider's header and
/// never appear in an error message.
pub const KEY: &str = "sk-fixture-secret-key";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum P {
    OpenAi,
    Anthropic,
    Gemini,
}

impl P {
    fn dir(self) -> &'static str {
        match self {
            P::OpenAi => "openai",
            P::Anthropic => "anthropic",
            P::Gemini => "gemini",
        }
    }

    /// The upstream model name the gateway would set.
    pub fn model(self) -> &'static str {
        match self {
            P::OpenAi => "gpt-4o-mini",
            P::Anthropic => "claude-sonnet-4-5-20250929",
            P::Gemini => "gemini-2.5-flash",
        }
    }

    pub fn provider(self, base: &str) -> Arc<dyn Provider> {
        let client = providers::HttpClient::default();
        let key = Some(SecretString::from(KEY));
        let t = Duration::from_secs(5);
        match self {
            P::OpenAi => Arc::new(OpenAiProvider::new(client, &format!("{base}/v1"), key, t)),
            P::Anthropic => Arc::new(AnthropicProvider::new(client, base, key, t)),
            P::Gemini => Arc::new(GeminiProvider::new(
                client,
                &format!("{base}/v1beta"),
                key,
                t,
            )),
        }
    }

    /// Path and query the chat call must use.
    fn chat_target(self, stream: bool) -> (String, Option<&'static str>) {
        match (self, stream) {
            (P::OpenAi, _) => ("/v1/chat/completions".into(), None),
            (P::Anthropic, _) => ("/v1/messages".into(), None),
            (P::Gemini, false) => (
                format!("/v1beta/models/{}:generateContent", self.model()),
                None,
            ),
            (P::Gemini, true) => (
                format!("/v1beta/models/{}:streamGenerateContent", self.model()),
                Some("alt=sse"),
            ),
        }
    }

    /// The provider's authentication and version headers.
    pub fn assert_headers(self, sent: &RecordedRequest) {
        match self {
            P::OpenAi => {
                assert_eq!(
                    sent.header("authorization"),
                    Some(format!("Bearer {KEY}").as_str())
                );
            }
            P::Anthropic => {
                assert_eq!(sent.header("x-api-key"), Some(KEY));
                assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
                assert_eq!(sent.header("authorization"), None);
            }
            P::Gemini => {
                assert_eq!(sent.header("x-goog-api-key"), Some(KEY));
                assert_eq!(sent.header("authorization"), None);
            }
        }
        assert_eq!(sent.header("content-type"), Some("application/json"));
    }

    pub fn path(self, file: &str) -> PathBuf {
        fixtures().join(self.dir()).join(file)
    }

    pub fn read(self, file: &str) -> String {
        read(&self.path(file))
    }

    pub fn json(self, file: &str) -> Value {
        parse(&self.read(file), file)
    }
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read(path: &PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse(text: &str, what: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// The canonical request of a case, for provider `p`.
pub fn request(p: P, case: &str) -> ChatRequest {
    let text = read(&fixtures().join("cases").join(format!("{case}.json")));
    let mut req: ChatRequest =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{case}: {e}"));
    req.model = p.model().into();
    req
}

/// A serialized result with the clock-dependent `created` zeroed.
pub fn normalized<T: serde::Serialize>(v: &T) -> Value {
    let mut v = serde_json::to_value(v).unwrap_or_default();
    if v.get("created").is_some() {
        v["created"] = Value::from(0);
    }
    v
}

pub fn error_value(e: &ProviderError) -> Value {
    serde_json::json!({"kind": format!("{:?}", e.kind), "message": e.message})
}

fn check_sent(p: P, up: &FixtureUpstream, case: &str, request_case: &str, stream: bool) {
    let sent = up.requests();
    assert_eq!(sent.len(), 1, "{case}: one upstream request");
    let sent = &sent[0];
    let (path, query) = p.chat_target(stream);
    assert_eq!(
        (sent.path.as_str(), sent.query.as_deref()),
        (path.as_str(), query)
    );
    p.assert_headers(sent);
    assert_eq!(
        sent.body,
        p.json(&format!("{request_case}.request.json")),
        "{case}: the request body in {}'s format",
        p.dir()
    );
}

/// A non-streaming case.
pub async fn chat_case(p: P, case: &str) {
    let expected = p.json(&format!("{case}.expected.json"));
    let req = request(p, case);
    let canned = match std::fs::read_to_string(p.path(&format!("{case}.response.json"))) {
        Ok(body) => Canned::json(200, body),
        Err(_) => Canned::json(500, "{}"),
    };
    let up = FixtureUpstream::start(vec![canned]).await;
    let result = p.provider(&up.base_url).chat(&req).await;
    if let Some(err) = expected.get("error") {
        let e = result.expect_err(case);
        assert_eq!(&error_value(&e), err, "{case}");
        assert_eq!(up.hits(), 0, "{case}: refused before sending");
        return;
    }
    let resp = result.unwrap_or_else(|e| panic!("{case}: {e}"));
    check_sent(p, &up, case, case, false);
    assert_eq!(normalized(&resp), expected, "{case}: canonical response");
}

async fn collect_stream(
    p: P,
    req: &ChatRequest,
    canned: Canned,
) -> (FixtureUpstream, Vec<Result<ChatChunk, ProviderError>>) {
    let up = FixtureUpstream::start(vec![canned]).await;
    let s = p
        .provider(&up.base_url)
        .chat_stream(req)
        .await
        .unwrap_or_else(|e| panic!("stream did not open: {e}"));
    let items = s.collect().await;
    (up, items)
}

/// A streaming case that completes: every chunk, in order.
pub async fn stream_case(p: P, case: &str) {
    let req = request(p, case);
    let sse = p.read(&format!("{case}.response.sse"));
    let (up, items) = collect_stream(p, &req, Canned::sse(&sse)).await;
    check_sent(p, &up, case, case, true);
    let chunks: Vec<Value> = items
        .iter()
        .map(|i| normalized(i.as_ref().unwrap_or_else(|e| panic!("{case}: {e}"))))
        .collect();
    assert_eq!(
        Value::Array(chunks),
        p.json(&format!("{case}.expected.json")),
        "{case}: canonical chunks"
    );
}

/// A streaming case that fails: `stream_cut` cuts `stream_text` after some events with a
/// connection reset; `stream_error` has the upstream send its error event.
pub async fn failing_stream_case(p: P, case: &str) {
    let expected = p.json(&format!("{case}.expected.json"));
    let req = request(p, "stream_text");
    let canned = match expected.get("cut_after_events").and_then(Value::as_u64) {
        Some(n) => Canned::sse_cut(&p.read("stream_text.response.sse"), n as usize),
        None => Canned::sse(&p.read(&format!("{case}.response.sse"))),
    };
    let (up, items) = collect_stream(p, &req, canned).await;
    check_sent(p, &up, case, "stream_text", true);
    let (last, chunks) = items
        .split_last()
        .unwrap_or_else(|| panic!("{case}: no items"));
    let chunks: Vec<Value> = chunks
        .iter()
        .map(|i| normalized(i.as_ref().unwrap_or_else(|e| panic!("{case}: {e}"))))
        .collect();
    assert_eq!(
        Value::Array(chunks),
        expected["chunks"],
        "{case}: chunks before the failure"
    );
    let err = last
        .as_ref()
        .err()
        .unwrap_or_else(|| panic!("{case}: ends in an error"));
    assert_eq!(error_value(err), expected["error"], "{case}");
}

/// Every error answer of `errors.json`: classification, retry delay, client-safe message.
pub async fn error_cases(p: P) {
    let cases = p.json("errors.json");
    for c in cases
        .as_array()
        .unwrap_or_else(|| panic!("errors.json is a list"))
    {
        let name = c["name"].as_str().unwrap_or_default();
        let status = u16::try_from(c["status"].as_u64().unwrap_or(500)).unwrap_or(500);
        let body = match c.get("raw") {
            Some(raw) => raw.as_str().unwrap_or_default().to_owned(),
            None => c["body"].to_string(),
        };
        let mut canned = Canned::json(status, body);
        for (k, v) in c["headers"].as_object().into_iter().flatten() {
            canned = canned.header(k, v.as_str().unwrap_or_default());
        }
        let up = FixtureUpstream::start(vec![canned]).await;
        let e = p
            .provider(&up.base_url)
            .chat(&request(p, "text"))
            .await
            .expect_err(name);
        let expect = &c["expect"];
        assert_eq!(format!("{:?}", e.kind), expect["kind"], "{name}: kind");
        assert_eq!(e.message, expect["message"], "{name}: message");
        assert_eq!(
            e.retry_after.map(|d| d.as_secs()),
            expect["retry_after_secs"].as_u64(),
            "{name}: retry delay"
        );
        assert_eq!(
            e.retryable(),
            matches!(
                expect["kind"].as_str(),
                Some("RateLimited" | "Unavailable" | "Timeout")
            )
        );
        assert!(!e.message.contains(KEY), "{name}: no key in messages");
    }
}
