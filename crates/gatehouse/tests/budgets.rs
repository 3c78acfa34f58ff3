//! Budgets on the in-process backend: reservations bound overshoot under concurrency, alerts
//! fire once per period, exhaustion answers 429 `budget_exceeded` or downgrades.
//!
//! Prices: `m1` is $2.50 in / $10.00 out per Mtok. The test request ("hi", max_tokens 100) has a
//! 7-token prompt estimate, so its reservation is 7 × 2.5 + 100 × 10 = 1017.5 → 1,018 micro-USD.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

#[path = "common/access.rs"]
mod access;
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use access::{burst, chat, count, create_key, eventually, small_chat, start};
use common::temp_db_url;
use serde_json::{Value, json};
use store::Store;
use test_support::{Behavior, MockUpstream};

const RESERVATION: i64 = 1_018;

async fn key_spend(db_url: &str, key_id: i64) -> i64 {
    let store = Store::connect(db_url).await.unwrap();
    let spent = store.cost_since(Some(key_id), 0).await.unwrap();
    store.close().await;
    spent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overshoot_is_bounded_by_reservations_under_100_concurrent_first_requests() {
    // Phase 1: every call costs exactly its reservation (7 prompt + 100 completion tokens).
    let up = MockUpstream::start(Behavior::ok("x").with_usage(7, 100, 0)).await;
    let db = temp_db_url();
    let mut gate = start(&up.base_url, &db, "").await;
    let budget = 10 * RESERVATION;
    let (key, info) = create_key(
        &gate,
        json!({"name": "exact", "daily_budget_micros": budget}),
    )
    .await;
    let statuses = burst(&[&gate], &key, 100, &small_chat()).await;
    assert_eq!((count(&statuses, 200), count(&statuses, 429)), (10, 90));
    // Phase 2: the upstream ignores max_tokens and writes 300 tokens (3,018 micro-USD per call,
    // 2,000 over its reservation). Only reservations gate admission, so the overshoot is at most
    // 2,000 per admitted call — never 90 more calls.
    up.set_behavior(Behavior::ok("x").with_usage(7, 300, 0));
    let (key2, info2) = create_key(
        &gate,
        json!({"name": "over", "daily_budget_micros": budget}),
    )
    .await;
    let statuses = burst(&[&gate], &key2, 100, &small_chat()).await;
    let admitted = count(&statuses, 200);
    assert!((1..=10).contains(&admitted), "{admitted}");
    assert_eq!(count(&statuses, 429), 100 - admitted);
    // A refusal says why and tells SDKs not to retry.
    let r = chat(&gate, &key).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-should-retry"], "false");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "budget_exceeded");
    assert_eq!(body["error"]["type"], "insufficient_quota");
    assert_eq!(
        body["error"]["message"],
        "Budget exceeded: this API key's daily budget of $0.010180 has $0.010180 spent and $0.000000 reserved by requests in flight; this request may cost up to $0.001018"
    );
    gate.running.take().unwrap().shutdown().await;
    let spent = key_spend(&db, info["id"].as_i64().unwrap()).await;
    assert_eq!(spent, budget, "phase 1 books exactly the budget");
    let spent2 = key_spend(&db, info2["id"].as_i64().unwrap()).await;
    let admitted = i64::try_from(admitted).unwrap();
    assert_eq!(spent2, admitted * 3_018);
    assert!(
        spent2 - budget <= admitted * (3_018 - RESERVATION),
        "{spent2}"
    );
}

#[tokio::test]
async fn alerts_fire_once_per_threshold_and_period() {
    let hooks: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = Arc::clone(&hooks);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let sink = Arc::clone(&sink);
            async move {
                sink.lock().unwrap().push(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let up = MockUpstream::start(Behavior::ok("x").with_usage(7, 100, 0)).await;
    let gate = start(
        &up.base_url,
        &temp_db_url(),
        &format!("[budgets]\nalert_webhook_url = \"{hook_url}\"\n"),
    )
    .await;
    // Five calls fit exactly; the fourth crosses 80 % (4,072 of 5,090), the fifth 100 %.
    let (key, info) = create_key(
        &gate,
        json!({"name": "alerts", "daily_budget_micros": 5 * RESERVATION}),
    )
    .await;
    for _ in 0..5 {
        assert_eq!(chat(&gate, &key).await.status(), 200);
    }
    assert_eq!(chat(&gate, &key).await.status(), 429);
    let arrived = eventually(Duration::from_secs(5), || async {
        hooks.lock().unwrap().len() >= 2
    })
    .await;
    assert!(arrived.is_some());
    let got = hooks.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "{got:?}");
    let id = info["id"].as_i64().unwrap();
    for (h, (pct, spent)) in got
        .iter()
        .zip([(80, 4 * RESERVATION), (100, 5 * RESERVATION)])
    {
        assert_eq!(h["event"], "budget_threshold");
        assert_eq!(h["scope"], "key_daily");
        assert_eq!(h["key_id"], id);
        assert_eq!(h["key_name"], "alerts");
        assert_eq!(h["percent"], pct);
        assert_eq!(h["spent_micros"], spent);
        assert_eq!(h["limit_micros"], 5 * RESERVATION);
    }
    // A budget reset re-arms the alerts and frees the budget.
    let r = access::admin_post(
        &gate,
        &format!("/admin/api/keys/{id}/budget/reset"),
        json!({}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(chat(&gate, &key).await.status(), 200);
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
        metrics.contains("gatehouse_budget_alerts_total{scope=\"key_daily\",percent=\"80\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gatehouse_budget_rejected_total{reason=\"exceeded\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn exhausted_budgets_downgrade_when_the_key_allows_it() {
    let up = MockUpstream::start(Behavior::ok("x").with_usage(7, 100, 0)).await;
    let extra = "[[models]]\nalias = \"cheap\"\nprovider = \"up\"\nupstream_model = \"tiny\"\ninput_usd_per_mtok = \"0.10\"\noutput_usd_per_mtok = \"0.10\"\n[budgets]\ndowngrade_model = \"cheap\"\n";
    let db = temp_db_url();
    let mut gate = start(&up.base_url, &db, extra).await;
    let (flex, flex_info) = create_key(
        &gate,
        json!({"name": "flex", "daily_budget_micros": 1_500, "allow_downgrade": true}),
    )
    .await;
    let (strict, _) = create_key(
        &gate,
        json!({"name": "strict", "daily_budget_micros": 1_500}),
    )
    .await;
    let r = chat(&gate, &flex).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-gatehouse-downgraded-from").is_none());
    // 1,018 spent: another m1 call does not fit in 1,500, the cheap model (11 micro-USD) does.
    let r = chat(&gate, &flex).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-gatehouse-downgraded-from"], "m1");
    let sent = up.requests();
    assert_eq!(sent.last().unwrap().body["model"], "tiny");
    assert_eq!(chat(&gate, &strict).await.status(), 200);
    assert_eq!(chat(&gate, &strict).await.status(), 429);
    gate.running.take().unwrap().shutdown().await;
    let store = Store::connect(&db).await.unwrap();
    // 1,018 + (7 + 100) × 0.10 = 10.7 → 11.
    assert_eq!(
        store
            .cost_since(Some(flex_info["id"].as_i64().unwrap()), 0)
            .await
            .unwrap(),
        1_029
    );
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_still_settles() {
    let up = MockUpstream::start(
        Behavior::ok("w1 w2 w3 w4 w5 w6 w7 w8 w9 w10").with_chunk_delay(Duration::from_millis(200)),
    )
    .await;
    let gate = start(&up.base_url, &temp_db_url(), "").await;
    let (key, _) = create_key(
        &gate,
        json!({"name": "leaver", "max_concurrent": 1, "daily_budget_micros": RESERVATION}),
    )
    .await;
    let mut body = small_chat();
    body["stream"] = json!(true);
    let mut resp = access::chat_with(&gate, &key, &body).await;
    assert_eq!(resp.status(), 200);
    let first = resp.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with("data: "));
    // While it streams, the key's only slot and its whole budget are taken.
    assert_eq!(chat(&gate, &key).await.status(), 429);
    drop(resp);
    tokio::time::timeout(Duration::from_secs(10), up.wait_for_disconnect())
        .await
        .unwrap();
    // The reservation was swapped for what was generated before the client left, and the slot
    // was given back, without the client's help.
    let usage = |k: String| {
        let (c, u) = (gate.client.clone(), gate.url("/v1/usage"));
        async move {
            c.get(u)
                .bearer_auth(k)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let settled = eventually(Duration::from_secs(3), || async {
        usage(key.clone()).await["budgets"]["daily"]["reserved_micros"] == 0
    })
    .await;
    assert!(settled.is_some());
    let spent = usage(key.clone()).await["budgets"]["daily"]["spent_micros"]
        .as_i64()
        .unwrap();
    // 7 prompt tokens (17.5) plus a word or two of output (10 per token): far below 1,018.
    assert!((18..RESERVATION).contains(&spent), "{spent}");
    up.set_behavior(Behavior::ok("x").with_usage(1, 1, 0));
    let r = chat(&gate, &key).await;
    assert_eq!(r.status(), 429, "the budget left is below one reservation");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "budget_exceeded");
}
