//! The exact response cache (in-process backend) against a real server and a mock upstream:
//! what is part of the key, tenants, the `x-gatehouse-cache` directives, streaming replay,
//! which answers are stored, TTLs on a paused clock, size bounds, purges and accounting.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod cache_support;
mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use cache_support::{content, send, start, start_on_test_runtime};
use common::{row, sse_data};
use serde_json::{Value, json};
use store::CacheStatus;
use test_support::{Behavior, MockUpstream};
use tower::ServiceExt as _;

const CACHE: &str = "[cache]\nenabled = true\n";

fn ask(text: &str) -> Value {
    json!({"model": "m1", "temperature": 0, "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn hits_misses_and_what_is_part_of_the_key() {
    let up = MockUpstream::start(Behavior::ok("Four.").with_usage(12, 2, 0)).await;
    let mut gate = start(&up.base_url, CACHE).await;
    let q = ask("What is 2+2?");
    let (s, h, first) = send(&gate, &q, None, "k-miss").await;
    assert_eq!((s, h.as_str(), content(&first)), (200, "miss", "Four."));
    let (s, h, again) = send(&gate, &q, None, "k-hit").await;
    assert_eq!((s, h.as_str(), content(&again)), (200, "hit", "Four."));
    assert_eq!(again["usage"], first["usage"]);
    assert_ne!(again["id"], first["id"], "a hit gets its own id");
    assert_eq!(up.hits(), 1);
    // `user` is not part of the key.
    let mut with_user = q.clone();
    with_user["user"] = "alice".into();
    assert_eq!(send(&gate, &with_user, None, "k-user").await.1, "hit");
    // A parameter that changes the output is.
    let mut capped = q.clone();
    capped["max_tokens"] = 5.into();
    assert_eq!(send(&gate, &capped, None, "k-param").await.1, "miss");
    assert_eq!(up.hits(), 2);
    // Above the temperature threshold (default 0), or with none (= 1.0): not cached.
    let mut warm = q.clone();
    warm["temperature"] = 0.5.into();
    assert_eq!(send(&gate, &warm, None, "k-warm1").await.1, "skip");
    assert_eq!(send(&gate, &warm, None, "k-warm2").await.1, "skip");
    let mut unset = q.clone();
    unset.as_object_mut().unwrap().remove("temperature");
    assert_eq!(send(&gate, &unset, None, "k-unset").await.1, "skip");
    assert_eq!(up.hits(), 5);

    let metrics = gate.client.get(gate.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("gatehouse_cache_lookups_total{layer=\"exact\",result=\"hit\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("gatehouse_cache_lookups_total{layer=\"exact\",result=\"miss\"} 2"));
    assert!(metrics.contains("gatehouse_cache_writes_total{layer=\"exact\"} 2"));

    let store = gate.shutdown_and_store().await;
    let miss = row(&store, "k-miss").await;
    // 12 prompt tokens at $2.50/Mtok + 2 completion tokens at $10/Mtok = 30 + 20 micro-USD.
    assert_eq!(
        (
            miss.cache_status,
            miss.cost_micros,
            miss.cost_saved_micros,
            miss.attempts
        ),
        (CacheStatus::Miss, 50, 0, 1)
    );
    let hit = row(&store, "k-hit").await;
    assert_eq!(
        (
            hit.cache_status,
            hit.cost_micros,
            hit.cost_saved_micros,
            hit.attempts
        ),
        (CacheStatus::Hit, 0, 50, 0)
    );
    assert_eq!(
        (hit.prompt_tokens, hit.completion_tokens, hit.status),
        (0, 0, 200)
    );
    assert_eq!(row(&store, "k-warm1").await.cache_status, CacheStatus::Skip);
}

/// The app with two real API keys: `Some(1)` and `Some(2)` in [`send_as`].
async fn with_keys(state: Arc<gatehouse::AppState>) -> (axum::Router, Vec<String>) {
    let mut keys = Vec::new();
    for name in ["one", "two"] {
        let create = gatehouse::access::api::CreateKey {
            name: name.into(),
            ..Default::default()
        };
        let (secret, _) = gatehouse::access::api::create_key(&state.store, &create)
            .await
            .unwrap();
        keys.push(secret);
    }
    state.access.keys.refresh(&state.store).await.unwrap();
    (gatehouse::build_app(state), keys)
}

async fn send_as(
    (app, keys): &(axum::Router, Vec<String>),
    key: Option<i64>,
    body: &Value,
) -> (String, Value) {
    let mut req =
        http::Request::post("/v1/chat/completions").header("content-type", "application/json");
    if let Some(k) = key {
        let secret = &keys[usize::try_from(k - 1).unwrap()];
        req = req.header("authorization", format!("Bearer {secret}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let header = resp
        .headers()
        .get("x-gatehouse-cache")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (header, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn no_hit_across_tenants_unless_shared() {
    let up = MockUpstream::start(Behavior::ok("Secret answer.")).await;
    let mut gate = start(&up.base_url, CACHE).await;
    let app = with_keys(Arc::clone(&gate.running.as_ref().unwrap().state)).await;
    let q = ask("What did I tell you?");
    assert_eq!(send_as(&app, Some(1), &q).await.0, "miss");
    assert_eq!(
        send_as(&app, Some(2), &q).await.0,
        "miss",
        "key 2 saw key 1's entry"
    );
    assert_eq!(send_as(&app, Some(1), &q).await.0, "hit");
    assert_eq!(send_as(&app, Some(2), &q).await.0, "hit");
    assert_eq!(up.hits(), 2);
    gate.shutdown_and_store().await;

    let up = MockUpstream::start(Behavior::ok("Public answer.")).await;
    let mut gate = start(&up.base_url, "[cache]\nenabled = true\nshared = true\n").await;
    let app = with_keys(Arc::clone(&gate.running.as_ref().unwrap().state)).await;
    assert_eq!(send_as(&app, Some(1), &q).await.0, "miss");
    let (h, body) = send_as(&app, Some(2), &q).await;
    assert_eq!((h.as_str(), content(&body)), ("hit", "Public answer."));
    assert_eq!(up.hits(), 1);
    gate.shutdown_and_store().await;
}

#[tokio::test]
async fn skip_refresh_only_and_use_directives() {
    let up = MockUpstream::start(Behavior::ok("Four.")).await;
    let mut gate = start(&up.base_url, CACHE).await;
    let q = ask("What is 2+2?");
    // `only` with nothing cached: 404 cache_miss, and the provider is not called.
    let (s, h, body) = send(&gate, &q, Some("only"), "d-only-miss").await;
    assert_eq!((s, h.as_str()), (404, "miss"));
    assert_eq!(body["error"]["code"], "cache_miss");
    assert_eq!(up.hits(), 0);
    assert_eq!(send(&gate, &q, None, "d-fill").await.1, "miss");
    let (s, h, body) = send(&gate, &q, Some("only"), "d-only-hit").await;
    assert_eq!((s, h.as_str(), content(&body)), (200, "hit", "Four."));
    // `refresh` calls the provider and replaces the entry.
    up.set_behavior(Behavior::ok("Still four."));
    let (_, h, body) = send(&gate, &q, Some("refresh"), "d-refresh").await;
    assert_eq!((h.as_str(), content(&body)), ("miss", "Still four."));
    let (_, h, body) = send(&gate, &q, None, "d-after").await;
    assert_eq!((h.as_str(), content(&body)), ("hit", "Still four."));
    // `skip` neither reads nor writes.
    up.set_behavior(Behavior::ok("Skipped."));
    let (_, h, body) = send(&gate, &q, Some("skip"), "d-skip").await;
    assert_eq!((h.as_str(), content(&body)), ("skip", "Skipped."));
    assert_eq!(
        content(&send(&gate, &q, None, "d-kept").await.2),
        "Still four."
    );
    assert_eq!(up.hits(), 3);
    // `use` opts in above the temperature threshold.
    let mut hot = q.clone();
    hot["temperature"] = 1.2.into();
    assert_eq!(send(&gate, &hot, Some("use"), "d-use1").await.1, "miss");
    assert_eq!(send(&gate, &hot, Some("use"), "d-use2").await.1, "hit");
    assert_eq!(send(&gate, &hot, None, "d-use3").await.1, "skip");
    // Bad input: an unknown directive is a 400 naming the header.
    let (s, _, body) = send(&gate, &q, Some("maybe"), "d-bad").await;
    assert_eq!(
        (s, body["error"]["param"].as_str()),
        (400, Some("x-gatehouse-cache"))
    );
    let store = gate.shutdown_and_store().await;
    let r = row(&store, "d-only-miss").await;
    assert_eq!(
        (r.status, r.error_code.as_deref(), r.cache_status),
        (404, Some("cache_miss"), CacheStatus::Miss)
    );
}

/// The text, finish reason and usage chunk of an SSE body, and whether it ended with [DONE].
fn replay(body: &str) -> (String, String, Option<Value>, bool) {
    let data = sse_data(body);
    let mut text = String::new();
    let mut finish = String::new();
    let mut usage = None;
    for d in &data {
        let Ok(v) = serde_json::from_str::<Value>(d) else {
            continue;
        };
        for c in v["choices"].as_array().unwrap() {
            text.push_str(c["delta"]["content"].as_str().unwrap_or(""));
            if let Some(f) = c["finish_reason"].as_str() {
                finish = f.to_owned();
            }
        }
        if v["usage"].is_object() {
            // The counts; a relayed upstream report also has details a replay does not keep.
            let u = &v["usage"];
            usage = Some(json!({
                "prompt_tokens": u["prompt_tokens"],
                "completion_tokens": u["completion_tokens"],
                "total_tokens": u["total_tokens"],
            }));
        }
    }
    (
        text,
        finish,
        usage,
        data.last().map(String::as_str) == Some("[DONE]"),
    )
}

#[tokio::test]
async fn a_streamed_answer_is_replayed_with_the_same_content() {
    let up = MockUpstream::start(Behavior::ok("Two plus two is four.").with_usage(12, 6, 0)).await;
    let mut gate = start(&up.base_url, CACHE).await;
    let mut q = ask("What is 2+2?");
    q["stream"] = true.into();
    q["stream_options"] = json!({"include_usage": true});
    let (_, h, first) = send(&gate, &q, None, "s-miss").await;
    assert_eq!(h, "miss");
    let original = replay(first.as_str().unwrap());
    let usage = json!({"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18});
    assert_eq!(
        original,
        (
            "Two plus two is four.".into(),
            "stop".into(),
            Some(usage.clone()),
            true
        )
    );
    // The miss relayed the upstream's own usage chunk, details included.
    assert!(first.as_str().unwrap().contains(r#""reasoning_tokens":0"#));
    let (_, h, second) = send(&gate, &q, None, "s-hit").await;
    assert_eq!(h, "hit");
    assert_eq!(replay(second.as_str().unwrap()), original);
    // The same entry serves plain requests, and streams that asked for no usage chunk.
    let (_, h, plain) = send(&gate, &ask("What is 2+2?"), None, "s-plain").await;
    assert_eq!(
        (h.as_str(), content(&plain)),
        ("hit", "Two plus two is four.")
    );
    assert_eq!(plain["usage"], usage);
    q.as_object_mut().unwrap().remove("stream_options");
    let (_, h, bare) = send(&gate, &q, None, "s-bare").await;
    assert_eq!(h, "hit");
    assert_eq!(
        replay(bare.as_str().unwrap()),
        ("Two plus two is four.".into(), "stop".into(), None, true)
    );
    assert_eq!(up.hits(), 1);
    let store = gate.shutdown_and_store().await;
    let r = row(&store, "s-hit").await;
    assert!(r.has_flag(store::UsageRecord::FLAG_STREAMED));
    // 12 × $2.50 + 6 × $10 per Mtok = 30 + 60 micro-USD.
    assert_eq!(
        (r.cache_status, r.cost_micros, r.cost_saved_micros),
        (CacheStatus::Hit, 0, 90)
    );
}

#[tokio::test]
async fn cut_failed_or_oversized_answers_are_not_stored() {
    // A stream that breaks after two chunks.
    let up = MockUpstream::start(Behavior::stream_then_fail("one two three four", 2)).await;
    let mut gate = start(&up.base_url, CACHE).await;
    let mut q = ask("Count to four");
    q["stream"] = true.into();
    let (_, h, body) = send(&gate, &q, None, "c-fail1").await;
    assert_eq!(h, "miss");
    assert!(body.as_str().unwrap().contains("\"error\""), "{body}");
    up.set_behavior(Behavior::ok("one two three four"));
    assert_eq!(send(&gate, &q, None, "c-fail2").await.1, "miss");
    assert_eq!(send(&gate, &q, None, "c-fail3").await.1, "hit");
    gate.shutdown_and_store().await;

    // Answers cut at the response size cap, streamed or not.
    let up = MockUpstream::start(Behavior::ok("a rather long answer")).await;
    let extra = format!("{CACHE}[validation]\nmax_response_chars = 5\n");
    let mut gate = start(&up.base_url, &extra).await;
    for (i, stream) in [false, false, true, true].into_iter().enumerate() {
        let mut q = ask("Say something long");
        q["stream"] = stream.into();
        assert_eq!(send(&gate, &q, None, &format!("c-cut{i}")).await.1, "miss");
    }
    assert_eq!(up.hits(), 4);
    gate.shutdown_and_store().await;

    // Entries over max_entry_bytes.
    let up = MockUpstream::start(Behavior::ok("fine")).await;
    let mut gate = start(
        &up.base_url,
        "[cache]\nenabled = true\nmax_entry_bytes = 100\n",
    )
    .await;
    assert_eq!(send(&gate, &ask("x"), None, "c-big1").await.1, "miss");
    assert_eq!(send(&gate, &ask("x"), None, "c-big2").await.1, "miss");
    gate.shutdown_and_store().await;
}

#[tokio::test]
async fn entries_expire_by_model_route_and_global_ttl_on_a_paused_clock() {
    let up = MockUpstream::start(Behavior::ok("Four.")).await;
    let extra = "[[models]]\nalias = \"m2\"\nprovider = \"up\"\n\
        [cache]\nenabled = true\nttl_secs = 60\nroute_ttl_secs = { chat = 30 }\n\
        [cache.models.m1]\nttl_secs = 10\n";
    let mut gate = start_on_test_runtime(&up.base_url, extra).await;
    let mut q2 = ask("What is 2+2?");
    q2["model"] = "m2".into();
    let q1 = ask("What is 2+2?");
    assert_eq!(send(&gate, &q1, None, "t1").await.1, "miss");
    assert_eq!(send(&gate, &q2, None, "t2").await.1, "miss");
    // Only the cache clock moves; requests themselves run on real time (sqlx needs it).
    let advance = |secs| async move {
        tokio::time::pause();
        tokio::time::advance(Duration::from_secs(secs)).await;
        tokio::time::resume();
    };
    advance(9).await;
    assert_eq!(send(&gate, &q1, None, "t3").await.1, "hit");
    advance(2).await;
    assert_eq!(
        send(&gate, &q1, None, "t4").await.1,
        "miss",
        "m1's 10 s TTL"
    );
    assert_eq!(send(&gate, &q2, None, "t5").await.1, "hit");
    advance(20).await;
    assert_eq!(
        send(&gate, &q2, None, "t6").await.1,
        "miss",
        "the chat route's 30 s TTL"
    );
    assert_eq!(up.hits(), 4);
    gate.shutdown_and_store().await;
}

#[tokio::test]
async fn the_in_process_cache_is_bounded_by_bytes() {
    let up = MockUpstream::start(Behavior::ok("An answer of some length.")).await;
    let mut gate = start(&up.base_url, "[cache]\nenabled = true\nmax_bytes = 4000\n").await;
    for i in 0..40 {
        send(
            &gate,
            &ask(&format!("question {i}")),
            None,
            &format!("b{i}"),
        )
        .await;
    }
    let state = Arc::clone(&gate.running.as_ref().unwrap().state);
    state.cache.drain().await;
    let metrics = state.metrics.render(&state.ledger);
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let bytes = value("gatehouse_cache_bytes{layer=\"exact\"}");
    assert!(
        bytes > 0.0 && bytes <= 4000.0,
        "{bytes} bytes held\n{metrics}"
    );
    assert!(value("gatehouse_cache_evictions_total{layer=\"exact\",cause=\"size\"}") >= 1.0);
    gate.shutdown_and_store().await;
}

#[tokio::test]
async fn admin_purge_by_model_tenant_or_all() {
    let up = MockUpstream::start(Behavior::ok("Four.")).await;
    let extra = format!("[[models]]\nalias = \"m2\"\nprovider = \"up\"\n{CACHE}");
    let mut gate = start(&up.base_url, &extra).await;
    let mut q2 = ask("What is 2+2?");
    q2["model"] = "m2".into();
    let q1 = ask("What is 2+2?");
    send(&gate, &q1, None, "p1").await;
    send(&gate, &q2, None, "p2").await;
    let purge = |body: Value, key: Option<&'static str>| {
        let mut r = gate
            .client
            .post(gate.url("/admin/api/cache/purge"))
            .json(&body);
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        async move {
            let resp = r.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    // Bad input: no admin key, a wrong one, no filter, a filter with `all`, an unknown tenant.
    assert_eq!(purge(json!({"all": true}), None).await.0, 401);
    assert_eq!(purge(json!({"all": true}), Some("nope")).await.0, 401);
    assert_eq!(purge(json!({}), Some("admin-secret")).await.0, 400);
    assert_eq!(
        purge(json!({"all": true, "model": "m1"}), Some("admin-secret"))
            .await
            .0,
        400
    );
    assert_eq!(
        purge(json!({"tenant": "bob"}), Some("admin-secret"))
            .await
            .0,
        400
    );
    let (s, body) = purge(json!({"model": "m1"}), Some("admin-secret")).await;
    assert_eq!((s, body), (200, json!({"exact": 1, "semantic": 0})));
    assert_eq!(send(&gate, &q1, None, "p3").await.1, "miss");
    assert_eq!(send(&gate, &q2, None, "p4").await.1, "hit");
    let (_, body) = purge(json!({"tenant": "key:5"}), Some("admin-secret")).await;
    assert_eq!(body, json!({"exact": 0, "semantic": 0}));
    let (_, body) = purge(json!({"tenant": "anonymous"}), Some("admin-secret")).await;
    assert_eq!(body, json!({"exact": 2, "semantic": 0}));
    send(&gate, &q1, None, "p5").await;
    let (_, body) = purge(json!({"all": true}), Some("admin-secret")).await;
    assert_eq!(body, json!({"exact": 1, "semantic": 0}));
    assert_eq!(send(&gate, &q1, None, "p6").await.1, "miss");
    gate.shutdown_and_store().await;
}

#[tokio::test]
async fn no_header_when_the_cache_is_off_and_routes_are_documented() {
    let up = MockUpstream::start(Behavior::ok("Four.")).await;
    let mut gate = start(&up.base_url, "").await;
    let (s, h, _) = send(&gate, &ask("x"), None, "off").await;
    assert_eq!((s, h.as_str()), (200, ""));
    let doc: Value = gate
        .client
        .get(gate.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/admin/api/cache/purge"]["post"].is_object());
    let store = gate.shutdown_and_store().await;
    assert_eq!(row(&store, "off").await.cache_status, CacheStatus::None);
}
