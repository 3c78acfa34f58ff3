//! Credentials never reach traces or logs. Alone in its own test binary: it installs a
//! tracing subscriber, and tracing caches per-callsite interest process-wide.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

#[path = "common/access.rs"]
mod access;
mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use access::{ADMIN, create_key, start_env};
use common::temp_db_url;
use serde_json::json;
use test_support::{Behavior, MockUpstream};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn credentials_are_redacted_from_traces_and_logs() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    // Current-thread runtime, and the server on it (no serving threads): its tasks run on this
    // thread, under this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
    let up = MockUpstream::start(Behavior::ok("x")).await;
    let gate = start_env(
        &up.base_url,
        &temp_db_url(),
        "",
        &[
            ("GATEHOUSE_ADMIN_KEY", ADMIN),
            ("GATEHOUSE_SERVER__THREADS", "0"),
        ],
    )
    .await;
    let (key, _) = create_key(&gate, json!({"name": "k"})).await;
    let r = access::chat(&gate, &key).await;
    assert_eq!(r.status(), 200);
    // The same key with its last character changed (whatever it was).
    let last = if key.ends_with('0') { "1" } else { "0" };
    let bad = format!("{}{last}", &key[..44]);
    assert_eq!(access::chat(&gate, &bad).await.status(), 401);
    let r = gate
        .client
        .get(gate.url("/v1/models"))
        .header("x-api-key", &key)
        .header("cookie", "session=cookie-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The trace span lists headers, so the test would see a leak.
    assert!(text.contains("\"authorization\": Sensitive"), "{text}");
    assert!(text.contains("\"x-api-key\": Sensitive"), "{text}");
    assert!(text.contains("\"cookie\": Sensitive"), "{text}");
    for secret in [
        &key[13..],
        &bad[13..],
        ADMIN,
        "cookie-secret",
        "sk-upstream-secret",
    ] {
        assert!(!text.contains(secret), "`{secret}` leaked into the logs");
    }
}
