//! What the cache test files share: a gateway started with extra environment (the admin key),
//! and requests that report the `x-gatehouse-cache` header.

#![allow(dead_code)]

use std::collections::HashMap;

use serde_json::Value;

use super::common::{Gate, config_toml};

pub const ADMIN_KEY: &str = "admin-secret";

/// Starts a gateway on `db` with provider `up` at `upstream`, model `m1` and `extra` TOML, with
/// `GATEHOUSE_ADMIN_KEY` set.
pub async fn start_on(
    upstream: &str,
    db: &str,
    extra: &str,
) -> Result<Gate, gatehouse::StartupError> {
    start_with(upstream, db, extra, &[]).await
}

/// Like [`start`], but serving on the test's own runtime (`server.threads = 0`), so a paused
/// test clock is the clock requests see.
pub async fn start_on_test_runtime(upstream: &str, extra: &str) -> Gate {
    let db = super::common::temp_db_url();
    start_with(upstream, &db, extra, &[("GATEHOUSE_SERVER__THREADS", "0")])
        .await
        .unwrap()
}

async fn start_with(
    upstream: &str,
    db: &str,
    extra: &str,
    more_env: &[(&str, &str)],
) -> Result<Gate, gatehouse::StartupError> {
    let path = std::env::temp_dir().join(format!("gatehouse-test-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&path, config_toml(upstream, db, extra)).unwrap();
    let env: HashMap<String, String> = [
        ("TEST_UPSTREAM_KEY", "sk-upstream-secret"),
        ("GATEHOUSE_ADMIN_KEY", ADMIN_KEY),
    ]
    .into_iter()
    .chain(more_env.iter().copied())
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let config = gatehouse::Config::load_with_env(Some(&path), &env).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = gatehouse::start(listener, config).await?;
    Ok(Gate {
        base: format!("http://{}", running.addr),
        running: Some(running),
        client: reqwest::Client::new(),
        db_url: db.to_owned(),
    })
}

pub async fn start(upstream: &str, extra: &str) -> Gate {
    start_on(upstream, &super::common::temp_db_url(), extra)
        .await
        .unwrap()
}

/// Waits for the cache writes in flight (Redis and semantic writes run off the request path).
pub async fn settle(gate: &Gate) {
    gate.running.as_ref().unwrap().state.cache.drain().await;
}

/// (status, x-gatehouse-cache header or "", body as JSON or as a string) of one chat request,
/// sent after earlier cache writes landed.
pub async fn send(
    gate: &Gate,
    body: &Value,
    directive: Option<&str>,
    id: &str,
) -> (u16, String, Value) {
    settle(gate).await;
    let mut req = gate
        .client
        .post(gate.url("/v1/chat/completions"))
        .header("x-request-id", id)
        .json(body);
    if let Some(d) = directive {
        req = req.header("x-gatehouse-cache", d);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let header = resp
        .headers()
        .get("x-gatehouse-cache")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, header, body)
}

/// The first choice's message content.
pub fn content(body: &Value) -> &str {
    body["choices"][0]["message"]["content"].as_str().unwrap()
}

/// A metric's value from `/metrics`, 0 when absent.
pub async fn metric(gate: &Gate, series: &str) -> f64 {
    let text = gate
        .client
        .get(gate.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}
