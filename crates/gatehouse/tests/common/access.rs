//! Helpers for the access tests: instances with an admin key, keys created through the admin
//! API, a real Redis (from `GATEHOUSE_TEST_REDIS_URL`, or a private `redis-server` process).

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::collections::HashMap;
use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gatehouse::Config;
use serde_json::{Value, json};

use crate::common::{Gate, chat_body, config_toml};

pub const ADMIN: &str = "admin-secret-for-tests-0123456789";

/// Start an instance on `db_url` with the admin key set and `extra` TOML appended.
pub async fn start(upstream: &str, db_url: &str, extra: &str) -> Gate {
    start_env(upstream, db_url, extra, &[("GATEHOUSE_ADMIN_KEY", ADMIN)]).await
}

pub async fn start_env(upstream: &str, db_url: &str, extra: &str, env: &[(&str, &str)]) -> Gate {
    let toml = config_toml(upstream, db_url, extra);
    let path = std::env::temp_dir().join(format!("gatehouse-test-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&path, toml).unwrap();
    let mut vars: HashMap<String, String> = [(
        "TEST_UPSTREAM_KEY".to_owned(),
        "sk-upstream-secret".to_owned(),
    )]
    .into();
    for (k, v) in env {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    let config = Config::load_with_env(Some(&path), &vars).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = gatehouse::start(listener, config).await.unwrap();
    let base = format!("http://{}", running.addr);
    Gate {
        running: Some(running),
        base,
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(512)
            .build()
            .unwrap(),
        db_url: db_url.to_owned(),
    }
}

/// POST /admin/api/keys; returns (secret, key object).
pub async fn create_key(gate: &Gate, body: Value) -> (String, Value) {
    let resp = gate
        .client
        .post(gate.url("/admin/api/keys"))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{:?}", resp.text().await);
    let v: Value = resp.json().await.unwrap();
    (v["key"].as_str().unwrap().to_owned(), v)
}

pub async fn admin_post(gate: &Gate, path: &str, body: Value) -> reqwest::Response {
    gate.client
        .post(gate.url(path))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap()
}

pub async fn admin_get(gate: &Gate, path: &str) -> Value {
    let resp = gate
        .client
        .get(gate.url(path))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// A chat request to `m1` with `max_tokens` 100, as `key`.
pub async fn chat(gate: &Gate, key: &str) -> reqwest::Response {
    chat_with(gate, key, &small_chat()).await
}

pub fn small_chat() -> Value {
    let mut b = chat_body("m1", "hi");
    b["max_tokens"] = json!(100);
    b
}

pub async fn chat_with(gate: &Gate, key: &str, body: &Value) -> reqwest::Response {
    gate.client
        .post(gate.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Send `n` chat requests at once, spread round-robin over `gates`; returns the statuses.
pub async fn burst(gates: &[&Gate], key: &str, n: usize, body: &Value) -> Vec<u16> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let g = gates[i % gates.len()];
            let (client, url, key, body) = (
                g.client.clone(),
                g.url("/v1/chat/completions"),
                key.to_owned(),
                body.clone(),
            );
            tokio::spawn(async move {
                let r = client
                    .post(url)
                    .bearer_auth(key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let s = r.status().as_u16();
                r.bytes().await.unwrap();
                s
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

pub fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

/// Poll `f` every 20 ms until it returns true or `limit` passes; returns the time it took.
pub async fn eventually<F, Fut>(limit: Duration, mut f: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if f().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// The shared test Redis, or `None` (test skipped) when it is not configured.
pub fn redis_url() -> Option<String> {
    match std::env::var("GATEHOUSE_TEST_REDIS_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            println!("skipped: GATEHOUSE_TEST_REDIS_URL not set");
            None
        }
    }
}

/// `[redis]` with a key prefix of its own, so tests sharing one server never meet.
pub fn redis_toml(url: &str, extra: &str) -> String {
    format!(
        "[redis]\nurl = \"{url}\"\nkey_prefix = \"t{}:\"\ntimeout_ms = 200\n{extra}\n",
        uuid::Uuid::new_v4().simple()
    )
}

/// A private `redis-server` this test can kill and restart.
pub struct RedisProcess {
    pub port: u16,
    child: Option<Child>,
}

impl RedisProcess {
    /// `None` (test skipped, reason printed) when `redis-server` is not installed.
    pub fn start() -> Option<RedisProcess> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            println!("skipped: redis-server is not installed");
            return None;
        }
        let port = StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut p = RedisProcess { port, child: None };
        p.restart();
        Some(p)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        // Real-process coordination: wait until it accepts connections.
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
