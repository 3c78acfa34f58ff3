//! Rate limits and the concurrency cap on the in-process backend, through the real server.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

#[path = "common/access.rs"]
mod access;
mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use access::{ADMIN, burst, chat, chat_with, count, create_key, small_chat, start};
use common::{chat_body, temp_db_url};
use serde_json::{Value, json};
use test_support::{Behavior, MockUpstream};

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_against_fifty_per_minute_admit_exactly_fifty() {
    let up = MockUpstream::start(Behavior::ok("fine").with_usage(10, 1, 0)).await;
    let gate = start(&up.base_url, &temp_db_url(), "").await;
    let (key, _) = create_key(&gate, json!({"name": "burst", "rpm": 50})).await;
    let started = Instant::now();
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (client, url, key) = (
                gate.client.clone(),
                gate.url("/v1/chat/completions"),
                key.clone(),
            );
            tokio::spawn(async move {
                let r = client
                    .post(url)
                    .bearer_auth(key)
                    .json(&small_chat())
                    .send()
                    .await
                    .unwrap();
                let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
                let out = (
                    r.status().as_u16(),
                    h("x-ratelimit-limit-requests"),
                    h("x-ratelimit-remaining-requests"),
                    h("retry-after"),
                );
                let body: Value = r.json().await.unwrap();
                (out, body)
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let spread = started.elapsed();
    let ok: Vec<_> = results.iter().filter(|((s, ..), _)| *s == 200).collect();
    let limited: Vec<_> = results.iter().filter(|((s, ..), _)| *s == 429).collect();
    assert_eq!((ok.len(), limited.len()), (50, 150), "took {spread:?}");
    assert_eq!(up.hits(), 50);
    // Every admitted request saw the limit and a distinct remaining count, 49 down to 0: exactly
    // 50 admitted means every decision fell within the first emission interval (1.2 s), as a
    // later request would have been admitted.
    let remaining: BTreeSet<u64> = ok
        .iter()
        .map(|((_, limit, rem, _), _)| {
            assert_eq!(limit.as_deref(), Some("50"));
            rem.as_deref().unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(remaining, (0..50).collect());
    let ((_, limit, rem, retry), body) = limited[0];
    assert_eq!((limit.as_deref(), rem.as_deref()), (Some("50"), Some("0")));
    // The next slot opens 1.2 s after the first admission: Retry-After rounds up to 1 or 2 s.
    let retry: u64 = retry.as_deref().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Rate limit reached for requests per minute on this API key: limit 50"),
        "{body}"
    );
}

#[tokio::test]
async fn tokens_are_estimated_before_the_call_and_corrected_after() {
    let up = MockUpstream::start(Behavior::ok("fine").with_usage(10, 1, 0)).await;
    let gate = start(&up.base_url, &temp_db_url(), "").await;
    // 1,000 tokens per minute: one token comes back every 60 ms.
    let (key, _) = create_key(&gate, json!({"name": "tokens", "tpm": 1000, "rpm": 100})).await;
    // The estimate is the prompt ("hi": 3 + 1 + 3 = 7 tokens) plus max_tokens 100 = 107.
    let r = chat(&gate, &key).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-ratelimit-limit-tokens"), "1000");
    assert_eq!(header(&r, "x-ratelimit-remaining-tokens"), "893");
    assert_eq!(header(&r, "x-ratelimit-remaining-requests"), "99");
    assert_eq!(header(&r, "x-ratelimit-limit-requests"), "100");
    // 107 × 60 ms ahead: the bucket is full again in 6.42 s, shown rounded up to a tenth.
    assert_eq!(header(&r, "x-ratelimit-reset-tokens"), "6.5s");
    // The upstream used 11 tokens, so 96 came back: 1000 − 11 − 107 = 882 for the next one.
    let r = chat(&gate, &key).await;
    assert_eq!(header(&r, "x-ratelimit-remaining-tokens"), "882");
    // Bad input: max_tokens above the whole per-minute allowance can never pass (2,000 is capped
    // at the model's 1,000 output tokens; 1,007 still exceeds 1,000).
    let mut big = small_chat();
    big["max_tokens"] = json!(2_000);
    let r = chat_with(&gate, &key, &big).await;
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "This request needs 1007 tokens, more than the 1000 tokens per minute allowed for this API key; reduce max_tokens or the prompt."
    );
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn end_user_and_global_limits() {
    let up = MockUpstream::start(Behavior::ok("fine").with_usage(1, 1, 0)).await;
    let gate = start(
        &up.base_url,
        &temp_db_url(),
        "[limits]\nuser_rpm = 2\nglobal_rpm = 6\n",
    )
    .await;
    let (a, _) = create_key(&gate, json!({"name": "a"})).await;
    let (b, _) = create_key(&gate, json!({"name": "b"})).await;
    let as_user = |key: &str, user: &str| {
        gate.client
            .post(gate.url("/v1/chat/completions"))
            .bearer_auth(key.to_owned())
            .header("x-gatehouse-user", user.to_owned())
            .json(&small_chat())
            .send()
    };
    assert_eq!(as_user(&a, "alice").await.unwrap().status(), 200);
    assert_eq!(as_user(&a, "alice").await.unwrap().status(), 200);
    let third = as_user(&a, "alice").await.unwrap();
    assert_eq!(third.status(), 429);
    let body: Value = third.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("on this end user"),
        "{body}"
    );
    // Another user of the same key, and the body's `user` field, count separately.
    assert_eq!(as_user(&a, "bob").await.unwrap().status(), 200);
    let mut carol = small_chat();
    carol["user"] = json!("carol");
    assert_eq!(chat_with(&gate, &a, &carol).await.status(), 200);
    assert_eq!(chat_with(&gate, &a, &carol).await.status(), 200);
    assert_eq!(chat_with(&gate, &a, &carol).await.status(), 429);
    // Five admitted so far (refused requests charge nothing); the global 6 per minute lets one
    // more through, from any key.
    assert_eq!(chat(&gate, &b).await.status(), 200);
    let r = chat(&gate, &b).await;
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("on the gateway"),
        "{body}"
    );
    // Bad input: an unknown priority and an over-long user header.
    let r = gate
        .client
        .post(gate.url("/v1/chat/completions"))
        .bearer_auth(&b)
        .header("x-gatehouse-priority", "urgent")
        .json(&small_chat())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["param"], "x-gatehouse-priority");
    assert_eq!(as_user(&b, &"x".repeat(300)).await.unwrap().status(), 400);
}

#[tokio::test]
async fn admin_api_is_limited_per_address() {
    let up = MockUpstream::start(Behavior::ok("x")).await;
    let gate = start(
        &up.base_url,
        &temp_db_url(),
        "[limits]\nadmin_requests = 3\n",
    )
    .await;
    for i in 0..3 {
        let r = gate
            .client
            .get(gate.url("/admin/api/keys"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            header(&r, "x-ratelimit-remaining-requests"),
            (2 - i).to_string()
        );
    }
    let r = gate
        .client
        .get(gate.url("/admin/api/keys"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // 50 per 5 minutes by default; here 3 per 300 s: one more after 100 s.
    assert_eq!(header(&r, "retry-after"), "100");
}

#[tokio::test]
async fn per_key_concurrency_and_the_instance_cap() {
    let up = MockUpstream::start(Behavior::ok("slow").with_delay(Duration::from_millis(400))).await;
    let gate = start(
        &up.base_url,
        &temp_db_url(),
        "[concurrency]\nmax_in_flight = 1\nqueue_timeout_ms = 100\n",
    )
    .await;
    let (one, _) = create_key(&gate, json!({"name": "one", "max_concurrent": 1})).await;
    let (other, _) = create_key(&gate, json!({"name": "other"})).await;
    // A first keyed request loads the tokenizer (slow in a debug build); with it loaded, the
    // request below is admitted well within the 100 ms before the next one arrives.
    assert_eq!(chat(&gate, &other).await.status(), 200);
    let first = {
        let (c, u, k) = (
            gate.client.clone(),
            gate.url("/v1/chat/completions"),
            one.clone(),
        );
        tokio::spawn(async move {
            c.post(u)
                .bearer_auth(k)
                .json(&small_chat())
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The key's own cap: refused at once.
    let r = chat(&gate, &one).await;
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "Too many concurrent requests for this API key (at most 1 at a time)"
    );
    // The instance cap (1 in flight): another key waits 100 ms for a slot, then gets 503.
    let ready: Value = gate
        .client
        .get(gate.url("/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["access"]["concurrency"]["in_flight"], 1);
    assert_eq!(ready["access"]["concurrency"]["capacity"], 1);
    let r = chat(&gate, &other).await;
    assert_eq!(r.status(), 503);
    assert_eq!(header(&r, "retry-after"), "1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "queue_timeout");
    assert_eq!(first.await.unwrap(), 200);
    // Both slots are free again.
    assert_eq!(chat(&gate, &one).await.status(), 200);
    let metrics = gate
        .client
        .get(gate.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "gatehouse_concurrency_queue_depth_normal 0",
        "gatehouse_upstream_in_flight 0",
        "gatehouse_concurrency_rejected_total{lane=\"normal\"} 1",
        "gatehouse_rate_limited_total{scope=\"concurrency\"} 1",
    ] {
        assert!(metrics.contains(line), "missing `{line}` in\n{metrics}");
    }
}

#[tokio::test]
async fn streams_hold_their_permit_until_they_end_and_open_mode_reports_no_key_limits() {
    let up = MockUpstream::start(Behavior::ok("a b c").with_usage(2, 3, 0)).await;
    let gate = start(&up.base_url, &temp_db_url(), "[limits]\nglobal_rpm = 100\n").await;
    // Open mode (no key yet, loopback): the global limit still reports its headers.
    let mut body = chat_body("m1", "x");
    body["stream"] = json!(true);
    let r = gate.post("/v1/chat/completions", &body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-ratelimit-limit-requests"), "100");
    assert_eq!(header(&r, "x-ratelimit-remaining-requests"), "99");
    assert!(r.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    let statuses = burst(&[&gate], "unused", 5, &chat_body("m1", "y")).await;
    assert_eq!(count(&statuses, 200), 5);
    let ready: Value = gate
        .client
        .get(gate.url("/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["access"]["concurrency"]["in_flight"], 0);
    assert_eq!(ready["access"]["open_mode"], true);
}

#[tokio::test]
async fn public_routes_are_limited_per_subject_and_anonymous_traffic_together() {
    let up = MockUpstream::start(Behavior::ok("x")).await;
    let gate = start(
        &up.base_url,
        &temp_db_url(),
        "[limits]\nanonymous_rpm = 25\n",
    )
    .await;
    let access = &gate.running.as_ref().unwrap().state.access;
    use gatehouse::access::public::PublicRoute::{WebChat, WhatsApp};
    // Web chat: 20 per minute per user (the default).
    for i in 0..20 {
        let info = access.limit_public(WebChat, "user-1", false).await.unwrap();
        assert_eq!(info.requests.unwrap().remaining, 19 - i);
    }
    let e = access
        .limit_public(WebChat, "user-1", false)
        .await
        .unwrap_err();
    assert_eq!(e.code.as_str(), "rate_limit_exceeded");
    assert_eq!(
        e.message,
        "Rate limit reached for you: 20 requests per minute. Try again in 3s."
    );
    // WhatsApp: 10 per minute per number, counted apart from the web.
    for _ in 0..10 {
        assert!(
            access
                .limit_public(WhatsApp, "+4915100000", false)
                .await
                .is_ok()
        );
    }
    assert!(
        access
            .limit_public(WhatsApp, "+4915100000", false)
            .await
            .is_err()
    );
    // Anonymous traffic (signed-out web users, by IP): 25 per minute for all of them together.
    for i in 0..25 {
        assert!(
            access
                .limit_public(WebChat, &format!("ip:10.0.0.{}", i % 2), true)
                .await
                .is_ok()
                || i >= 20
        );
    }
    let e = access
        .limit_public(WebChat, "ip:10.0.0.9", true)
        .await
        .unwrap_err();
    assert!(
        e.message
            .starts_with("Rate limit reached for anonymous traffic: 25 requests per minute"),
        "{}",
        e.message
    );
}
