//! Retries, circuit breakers, fallbacks, cooldowns and tiers against misbehaving mock
//! upstreams, on a paused clock (no test sleeps; waits are virtual).

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use std::time::Duration;

use common::{chat_body, row, sse_data, start_with_toml, temp_db_url};
use serde_json::{Value, json};
use test_support::{Behavior, FaultProfile, MockUpstream};

/// Two upstreams (`up1`, `up2`) and whatever models and resilience settings a test needs.
fn toml(up1: &str, up2: &str, body: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
# Served on the test's runtime, whose clock the tests pause and advance.
threads = 0
[database]
url = "{db}"
[ledger]
flush_interval_ms = 20
[providers.up1]
kind = "openai"
base_url = "{up1}"
[providers.up2]
kind = "openai"
base_url = "{up2}"
{body}
"#,
        db = temp_db_url()
    )
}

const PRICES: &str = "input_usd_per_mtok = \"2.50\"\noutput_usd_per_mtok = \"10.00\"\n";

#[tokio::test]
async fn retries_honour_retry_after() {
    let up1 =
        MockUpstream::start_sequence(vec![Behavior::rate_limited(7), Behavior::ok("finally")])
            .await;
    let up2 = MockUpstream::start(Behavior::ok("unused")).await;
    let models = format!("[[models]]\nalias = \"a\"\nprovider = \"up1\"\n{PRICES}");
    let mut gate = start_with_toml(&toml(&up1.base_url, &up2.base_url, &models)).await;
    tokio::time::pause();
    let t0 = tokio::time::Instant::now();
    let resp = gate
        .post_with_id("/v1/chat/completions", &chat_body("a", "hi"), "r-429")
        .await;
    assert_eq!(resp.status(), 200);
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_secs(7),
        "retried after {waited:?}, before the 7 s Retry-After"
    );
    assert!(waited < Duration::from_secs(8), "waited {waited:?}");
    assert_eq!(up1.hits(), 2);
    tokio::time::resume();
    let store = gate.shutdown_and_store().await;
    let r = row(&store, "r-429").await;
    assert_eq!(
        (r.status, r.attempts, r.served_by, r.fallback_reason),
        (200, 2, None, None)
    );
}

#[tokio::test]
async fn client_errors_fail_fast_and_server_errors_exhaust_retries() {
    let up1 = MockUpstream::start_sequence(vec![
        Behavior::bad_request("bad tool schema"),
        Behavior::ok("x"),
    ])
    .await;
    let up2 = MockUpstream::start(Behavior::server_error()).await;
    let models = format!(
        "[[models]]\nalias = \"a\"\nprovider = \"up1\"\n{PRICES}\n[[models]]\nalias = \"b\"\nprovider = \"up2\"\n{PRICES}"
    );
    let mut gate = start_with_toml(&toml(&up1.base_url, &up2.base_url, &models)).await;
    tokio::time::pause();
    let resp = gate
        .post_with_id("/v1/chat/completions", &chat_body("a", "hi"), "r-400")
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(up1.hits(), 1, "a 400 must not be retried");
    let resp = gate
        .post_with_id("/v1/chat/completions", &chat_body("b", "hi"), "r-500")
        .await;
    assert_eq!(resp.status(), 502);
    assert_eq!(up2.hits(), 3, "default: 3 attempts");
    tokio::time::resume();
    let store = gate.shutdown_and_store().await;
    assert_eq!(row(&store, "r-400").await.attempts, 1);
    let r = row(&store, "r-500").await;
    assert_eq!(
        (r.status, r.attempts, r.error_code.as_deref()),
        (502, 3, Some("provider_error"))
    );
}

#[tokio::test]
async fn no_retry_after_the_first_byte() {
    let up1 = MockUpstream::start(Behavior::stream_then_fail("one two three four", 2)).await;
    let up2 = MockUpstream::start(Behavior::ok("unused")).await;
    let models = format!(
        "[[models]]\nalias = \"a\"\nprovider = \"up1\"\n{PRICES}fallbacks = [\"b\"]\n[[models]]\nalias = \"b\"\nprovider = \"up2\"\n{PRICES}"
    );
    let gate = start_with_toml(&toml(&up1.base_url, &up2.base_url, &models)).await;
    tokio::time::pause();
    let mut body = chat_body("a", "hi");
    body["stream"] = json!(true);
    let text = gate
        .post("/v1/chat/completions", &body)
        .await
        .text()
        .await
        .unwrap();
    let last: Value = serde_json::from_str(sse_data(&text).last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "provider_error");
    assert_eq!(
        (up1.hits(), up2.hits()),
        (1, 0),
        "mid-stream failover is off by default"
    );
}

#[tokio::test]
async fn breaker_opens_half_opens_and_closes() {
    let up1 = MockUpstream::start(Behavior::server_error()).await;
    let up2 = MockUpstream::start(Behavior::ok("unused")).await;
    let body = format!(
        "[resilience]\nmax_attempts = 1\nbreaker_min_requests = 4\nbreaker_failure_rate = 0.5\nbreaker_cooldown_secs = 3600\nbreaker_cooldown_max_secs = 7200\n\n[[models]]\nalias = \"a\"\nprovider = \"up1\"\n{PRICES}"
    );
    let gate = start_with_toml(&toml(&up1.base_url, &up2.base_url, &body)).await;
    tokio::time::pause();
    for _ in 0..4 {
        assert_eq!(
            gate.post("/v1/chat/completions", &chat_body("a", "x"))
                .await
                .status(),
            502
        );
    }
    // Open: refused without calling the upstream.
    let resp = gate
        .post("/v1/chat/completions", &chat_body("a", "x"))
        .await;
    assert_eq!(resp.status(), 503);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "no_healthy_provider");
    assert_eq!(up1.hits(), 4);
    // The database ping of /ready needs the real clock.
    tokio::time::resume();
    let ready = gate.client.get(gate.url("/ready")).send().await.unwrap();
    tokio::time::pause();
    // Still serving (the built-in mock model is healthy), but degraded.
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "degraded");
    assert_eq!(ready["deployments"][0]["deployment"], "up1/a");
    assert_eq!(ready["deployments"][0]["circuit"], "open");
    assert_eq!(
        ready["deployments"][0]["last_error"],
        "the upstream provider failed"
    );
    let metrics = gate
        .client
        .get(gate.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gatehouse_circuit_state{deployment=\"up1/a\"} 2"),
        "{metrics}"
    );

    // After the cooldown (an hour, so no idle jump of the paused clock reaches it early) one
    // probe goes through; the upstream has recovered, so it closes.
    tokio::time::advance(Duration::from_secs(3600)).await;
    up1.set_behavior(Behavior::ok("back"));
    assert_eq!(
        gate.post("/v1/chat/completions", &chat_body("a", "x"))
            .await
            .status(),
        200
    );
    tokio::time::resume();
    let ready: Value = gate
        .client
        .get(gate.url("/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokio::time::pause();
    assert_eq!(ready["status"], "healthy");
    assert_eq!(ready["deployments"][0]["circuit"], "closed");
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
        "gatehouse_circuit_transitions_total{deployment=\"up1/a\",to=\"open\"} 1",
        "gatehouse_circuit_transitions_total{deployment=\"up1/a\",to=\"half_open\"} 1",
        "gatehouse_circuit_transitions_total{deployment=\"up1/a\",to=\"closed\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line}");
    }
}

#[tokio::test]
async fn fallback_chain_order_and_causes() {
    let up1 = MockUpstream::start(Behavior::server_error()).await;
    let up2 = MockUpstream::start(Behavior::ok("from b").with_usage(100, 10, 0)).await;
    let body = format!(
        "[[models]]\nalias = \"a\"\nprovider = \"up1\"\n{PRICES}fallbacks = [\"b\"]\n\
         [[models]]\nalias = \"b\"\nprovider = \"up2\"\nupstream_model = \"model-b\"\ninput_usd_per_mtok = \"1.00\"\noutput_usd_per_mtok = \"1.00\"\n"
    );
    let mut gate = start_with_toml(&toml(&up1.base_url, &up2.base_url, &body)).await;
    tokio::time::pause();
    let resp = gate
        .post_with_id("/v1/chat/completions", &chat_body("a", "hi"), "fb-1")
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "from b");
    assert_eq!((up1.hits(), up2.hits()), (3, 1));
    tokio::time::resume();
    let store = gate.shutdown_and_store().await;
    let r = row(&store, "fb-1").await;
    assert_eq!(r.model, "a");
    assert_eq!(
        (r.provider.as_str(), r.upstream_model.as_str()),
        ("up2", "model-b")
    );
    assert_eq!(r.served_by.as_deref(), Some("up2/model-b"));
    assert_eq!(r.fallback_reason.as_deref(), Some("exhausted_retries"));
    assert_eq!(r.attempts, 4);
    // Priced at the model that served it: 100 × $1 + 10 × $1 per Mtok.
    assert_eq!(r.cost_micros, 110);
}

#[tokio::test]
async fn context_length_goes_to_the_larger_model() {
    let up1 = MockUpstream::start(Behavior::ok("small")).await;
    let up2 = MockUpstream::start(Behavior::ok("big")).await;
    let body = format!(
        "[[models]]\nalias = \"small\"\nprovider = \"up1\"\n{PRICES}context_window = 50\ncontext_fallback = \"big\"\n\
         [[models]]\nalias = \"big\"\nprovider = \"up2\"\n{PRICES}context_window = 100000\n"
    );
    let mut gate = start_with_toml(&toml(&up1.base_url, &up2.base_url, &body)).await;
    tokio::time::pause();
    // Fits: served by the small model.
    let v: Value = gate
        .post("/v1/chat/completions", &chat_body("small", "short"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "small");
    // Does not fit (about 200 tokens): goes straight to the big one, no call to the small one.
    let long = "word ".repeat(200);
    let v: Value = gate
        .post_with_id("/v1/chat/completions", &chat_body("small", &long), "ctx-1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "big");
    assert_eq!((up1.hits(), up2.hits()), (1, 1));
    // The upstream itself reporting context length also moves to the big model.
    up1.set_behavior(
        Behavior::error(
            400,
            "invalid_request_error",
            "This model's maximum context length is 50 tokens",
        )
        .with_code("context_length_exceeded"),
    );
    let v: Value = gate
        .post("/v1/chat/completions", &chat_body("small", "tiny"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "big");
    assert_eq!((up1.hits(), up2.hits()), (2, 2));
    tokio::time::resume();
    let store = gate.shutdown_and_store().await;
    let r = row(&store, "ctx-1").await;
    assert_eq!(
        (r.fallback_reason.as_deref(), r.attempts),
        (Some("context_length"), 1)
    );
}

#[tokio::test]
async fn rate_limited_deployment_cools_down() {
    let up1 = MockUpstream::start(Behavior::rate_limited(30)).await;
    let up2 = MockUpstream::start(Behavior::ok("b")).await;
    let body = format!(
        "[resilience]\nmax_attempts = 1\n\n[[models]]\nalias = \"a\"\nprovider = \"up1\"\n{PRICES}fallbacks = [\"b\"]\n\
         [[models]]\nalias = \"b\"\nprovider = \"up2\"\n{PRICES}"
    );
    let mut gate = start_with_toml(&toml(&up1.base_url, &up2.base_url, &body)).await;
    tokio::time::pause();
    assert_eq!(
        gate.post("/v1/chat/completions", &chat_body("a", "x"))
            .await
            .status(),
        200
    );
    for i in 0..5 {
        let resp = gate
            .post_with_id(
                "/v1/chat/completions",
                &chat_body("a", "x"),
                &format!("cool-{i}"),
            )
            .await;
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(
        up1.hits(),
        1,
        "a deployment cooling down after a 429 must not be called"
    );
    tokio::time::advance(Duration::from_secs(30)).await;
    up1.set_behavior(Behavior::ok("a again"));
    let v: Value = gate
        .post("/v1/chat/completions", &chat_body("a", "x"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "a again");
    tokio::time::resume();
    let store = gate.shutdown_and_store().await;
    let r = row(&store, "cool-0").await;
    assert_eq!(
        (r.fallback_reason.as_deref(), r.attempts),
        (Some("circuit_open"), 1)
    );
}

#[tokio::test]
async fn mid_stream_failover_continues_coherently() {
    let up1 = MockUpstream::start(Behavior::stream_then_fail("The quick brown fox", 3)).await;
    let up2 = MockUpstream::start(Behavior::ok("jumps over the dog.")).await;
    let body = format!(
        "[[models]]\nalias = \"a\"\nprovider = \"up1\"\n{PRICES}fallbacks = [\"b\"]\nmid_stream_failover = true\n\
         [[models]]\nalias = \"b\"\nprovider = \"up2\"\n{PRICES}"
    );
    let mut gate = start_with_toml(&toml(&up1.base_url, &up2.base_url, &body)).await;
    tokio::time::pause();
    let mut body = chat_body("a", "tell me");
    body["stream"] = json!(true);
    let resp = gate
        .post_with_id("/v1/chat/completions", &body, "mid-1")
        .await;
    let text = resp.text().await.unwrap();
    assert!(
        text.contains(": gatehouse-failover: continuing on up2/b"),
        "{text}"
    );
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let ids: std::collections::BTreeSet<_> = chunks
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "one stream id across the failover");
    let roles = chunks
        .iter()
        .filter(|c| c["choices"][0]["delta"].get("role").is_some())
        .count();
    assert_eq!(roles, 1, "one role chunk");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    let sent_first: String = content.split("jumps").next().unwrap().to_owned();
    assert!(!sent_first.is_empty());
    assert!(content.ends_with("jumps over the dog."), "{content}");
    // The continuation carried what was already sent as an assistant prefix.
    let cont = &up2.requests()[0].body["messages"];
    assert_eq!(cont[1]["role"], "assistant");
    assert_eq!(cont[1]["content"], sent_first.as_str());
    tokio::time::resume();
    let store = gate.shutdown_and_store().await;
    let r = row(&store, "mid-1").await;
    assert_eq!(
        (
            r.status,
            r.fallback_reason.as_deref(),
            r.served_by.as_deref()
        ),
        (200, Some("mid_stream_failover"), Some("up2/b"))
    );
}

#[tokio::test]
async fn tiers_escalate_and_respect_the_daily_cap() {
    let up1 = MockUpstream::start(Behavior::server_error()).await;
    let up2 = MockUpstream::start(Behavior::ok("mid").with_usage(1_000, 100, 0)).await;
    let body = "[routing]\ntier_daily_cap_usd = { \"1\" = \"0.003\" }\n\
         [[models]]\nalias = \"cheap\"\nprovider = \"up1\"\ninput_usd_per_mtok = \"0.10\"\noutput_usd_per_mtok = \"0.10\"\ntier = 0\n\
         [[models]]\nalias = \"mid\"\nprovider = \"up2\"\ninput_usd_per_mtok = \"2.50\"\noutput_usd_per_mtok = \"10.00\"\ntier = 1\n";
    let mut gate = start_with_toml(&toml(&up1.base_url, &up2.base_url, body)).await;
    tokio::time::pause();
    // tier:auto starts at the cheapest tier and escalates when it fails.
    let resp = gate
        .post_with_id(
            "/v1/chat/completions",
            &chat_body("tier:auto", "x"),
            "tier-1",
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!((up1.hits(), up2.hits()), (3, 1));
    // That call cost 1000 × 2.5 + 100 × 10 = 3500 micro-USD ≥ the $0.003 cap of tier 1, so
    // tier 1 is closed for the day: an explicit tier:1 request goes to the cheaper tier.
    up1.set_behavior(Behavior::ok("cheap"));
    let v: Value = gate
        .post("/v1/chat/completions", &chat_body("tier:1", "x"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "cheap");
    assert_eq!(up2.hits(), 1);
    // Bad input: a tier that does not exist.
    let resp = gate
        .post("/v1/chat/completions", &chat_body("tier:9", "x"))
        .await;
    assert_eq!(resp.status(), 400);
    tokio::time::resume();
    let store = gate.shutdown_and_store().await;
    let r = row(&store, "tier-1").await;
    assert_eq!(
        (r.model.as_str(), r.provider.as_str(), r.attempts),
        ("mid", "up2", 4)
    );
    assert_eq!(r.fallback_reason.as_deref(), Some("exhausted_retries"));
}

#[tokio::test]
async fn a_silent_stream_hits_the_idle_timeout() {
    let up1 = MockUpstream::start(
        Behavior::ok("slow drip words").with_chunk_delay(Duration::from_secs(5)),
    )
    .await;
    let up2 = MockUpstream::start(Behavior::ok("unused")).await;
    let models = format!(
        "[[models]]\nalias = \"a\"\nprovider = \"up1\"\n{PRICES}idle_timeout_ms = 2000\nfirst_byte_timeout_ms = 10000\n"
    );
    let gate = start_with_toml(&toml(&up1.base_url, &up2.base_url, &models)).await;
    tokio::time::pause();
    let mut body = chat_body("a", "x");
    body["stream"] = json!(true);
    let text = gate
        .post("/v1/chat/completions", &body)
        .await
        .text()
        .await
        .unwrap();
    let last: Value = serde_json::from_str(sse_data(&text).last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_requests_under_thirty_percent_failures() {
    // 30% of upstream calls fail with a 500, decided by a seeded fault profile.
    let faults = FaultProfile::seeded(7).with_error_rate(500, 0.3);
    let up1 =
        MockUpstream::start_with_faults(Behavior::ok("fine").with_usage(10, 1, 0), faults).await;
    let up2 = MockUpstream::start(Behavior::ok("unused")).await;
    // The breaker is kept out of the way (a high minimum volume) so every failure has used all
    // three attempts.
    let body = format!(
        "[resilience]\nretry_budget_ratio = 1.0\nbackoff_base_ms = 1\nbackoff_max_ms = 5\nbreaker_min_requests = 100000\n\
         [[models]]\nalias = \"f\"\nprovider = \"up1\"\n{PRICES}"
    );
    let mut gate = start_with_toml(&toml(&up1.base_url, &up2.base_url, &body)).await;
    let client = reqwest::Client::new();
    let tasks: Vec<_> = (0..500)
        .map(|i| {
            let client = client.clone();
            let url = gate.url("/v1/chat/completions");
            let mut body = chat_body("f", "hello");
            if i % 2 == 1 {
                body["stream"] = json!(true);
            }
            tokio::spawn(async move {
                let resp = tokio::time::timeout(
                    Duration::from_secs(60),
                    client
                        .post(url)
                        .header("x-request-id", format!("flaky-{i}"))
                        .json(&body)
                        .send(),
                )
                .await
                .expect("a request hung")
                .unwrap();
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap();
                (i, status, text)
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    let store = gate.shutdown_and_store().await;
    assert_eq!(store.usage_count().await.unwrap(), 500);
    let mut failures = 0;
    let mut attempts = 0;
    for (i, status, text) in outcomes {
        let r = row(&store, &format!("flaky-{i}")).await;
        match status {
            200 if i % 2 == 1 => assert!(text.ends_with("data: [DONE]\n\n"), "{text}"),
            200 => assert!(serde_json::from_str::<Value>(&text).unwrap()["choices"].is_array()),
            502 => {
                let v: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["error"]["code"], "provider_error");
                failures += 1;
            }
            other => panic!("unexpected status {other}: {text}"),
        }
        assert_eq!(i32::from(status), r.status);
        // A failure used every attempt; a success needed between one and three.
        if status == 502 {
            assert_eq!(r.attempts, 3, "{i} {r:?} {text}");
        } else {
            assert!((1..=3).contains(&r.attempts), "{r:?}");
        }
        attempts += i64::from(r.attempts);
    }
    // Every upstream call is accounted for on exactly one ledger row.
    assert_eq!(i64::try_from(up1.injected().requests).unwrap(), attempts);
    // 0.3³ = 2.7% of requests fail all three attempts: about 13 of 500.
    assert!(failures < 50, "{failures} failures");
}
