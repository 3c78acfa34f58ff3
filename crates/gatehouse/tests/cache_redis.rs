//! The exact cache on Redis: against a real server when `GATEHOUSE_TEST_REDIS_URL` is set
//! (hits across instances, tenants, TTLs, purges), and failing open against a Redis that is
//! down or never answers.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod cache_support;
mod common;

use std::time::{Duration, Instant};

use cache_support::start;
use common::Gate;
use serde_json::{Value, json};
use test_support::{Behavior, MockUpstream};

fn redis_toml(url: &str, prefix: &str, extra: &str) -> String {
    format!(
        "[cache]\nenabled = true\nbackend = \"redis\"\nredis_url = \"{url}\"\n\
         redis_key_prefix = \"{prefix}\"\nttl_secs = 600\n{extra}"
    )
}

fn ask(text: &str) -> Value {
    json!({"model": "m1", "temperature": 0, "messages": [{"role": "user", "content": text}]})
}

/// (x-gatehouse-cache, content) after the previous writes landed.
async fn send(gate: &Gate, body: &Value) -> (String, String) {
    let (status, header, body) = cache_support::send(gate, body, None, "r").await;
    assert_eq!(status, 200);
    (header, cache_support::content(&body).to_owned())
}

async fn keys(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(conn)
        .await
        .unwrap();
    keys.sort();
    keys
}

#[tokio::test]
async fn redis_shares_entries_between_instances_with_ttls_and_purges() {
    let Ok(url) = std::env::var("GATEHOUSE_TEST_REDIS_URL") else {
        eprintln!("skipped: GATEHOUSE_TEST_REDIS_URL not set");
        return;
    };
    let prefix = format!("gh-test-{}", uuid::Uuid::new_v4());
    let up = MockUpstream::start(Behavior::ok("Four.").with_usage(12, 2, 0)).await;
    let mut a = start(&up.base_url, &redis_toml(&url, &prefix, "")).await;
    let mut b = start(&up.base_url, &redis_toml(&url, &prefix, "")).await;
    assert_eq!(send(&a, &ask("What is 2+2?")).await.0, "miss");
    // Another instance sees the entry.
    assert_eq!(
        send(&b, &ask("What is 2+2?")).await,
        ("hit".into(), "Four.".into())
    );
    let mut capped = ask("What is 2+2?");
    capped["max_tokens"] = 3.into();
    assert_eq!(send(&b, &capped).await.0, "miss");
    assert_eq!(up.hits(), 2);
    a.running.as_ref().unwrap().state.cache.drain().await;
    b.running.as_ref().unwrap().state.cache.drain().await;

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let stored = keys(&mut conn, &prefix).await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&stored[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 590_000 && ttl <= 600_000, "PTTL {ttl}");

    // Purge by model through the admin API of one instance: gone for both.
    let resp = a
        .client
        .post(a.url("/admin/api/cache/purge"))
        .bearer_auth("admin-secret")
        .json(&json!({"model": "m1", "tenant": "anonymous"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"exact": 2, "semantic": 0})
    );
    assert!(keys(&mut conn, &prefix).await.is_empty());
    assert_eq!(send(&b, &ask("What is 2+2?")).await.0, "miss");
    a.shutdown_and_store().await;
    b.shutdown_and_store().await;
    let leftover = keys(&mut conn, &prefix).await;
    if !leftover.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(&leftover)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

/// What `gatehouse_cache_errors_total{component="redis"}` says.
async fn redis_errors(gate: &Gate) -> f64 {
    cache_support::metric(gate, "gatehouse_cache_errors_total{component=\"redis\"}").await
}

#[tokio::test]
async fn a_dead_redis_fails_open() {
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let up = MockUpstream::start(Behavior::ok("Four.")).await;
    let url = format!("redis://127.0.0.1:{port}");
    let mut gate = start(&up.base_url, &redis_toml(&url, "gh-dead", "")).await;
    for _ in 0..3 {
        assert_eq!(
            send(&gate, &ask("What is 2+2?")).await,
            ("miss".into(), "Four.".into())
        );
    }
    assert_eq!(up.hits(), 3);
    assert!(redis_errors(&gate).await >= 1.0);
    gate.shutdown_and_store().await;
}

#[tokio::test]
async fn a_redis_that_never_answers_costs_at_most_the_timeout() {
    // Accepts connections, reads nothing, answers nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let up = MockUpstream::start(Behavior::ok("Four.")).await;
    let url = format!("redis://{addr}");
    let mut gate = start(
        &up.base_url,
        &redis_toml(&url, "gh-silent", "redis_timeout_ms = 50\n"),
    )
    .await;
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(send(&gate, &ask("What is 2+2?")).await.0, "miss");
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "{:?}",
            started.elapsed()
        );
    }
    assert!(redis_errors(&gate).await >= 1.0);
    gate.shutdown_and_store().await;
}
