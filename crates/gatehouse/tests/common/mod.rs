//! Starts a real Gatehouse on 127.0.0.1:0 with its own SQLite file, against a mock upstream.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use gatehouse::{Config, Running};
use serde_json::{Value, json};
use store::{Store, UsageRecord};

pub struct Gate {
    pub running: Option<Running>,
    pub base: String,
    pub client: reqwest::Client,
    pub db_url: String,
}

pub fn temp_db_url() -> String {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("gatehouse-test-{}", uuid::Uuid::new_v4()));
    format!("sqlite://{}/gatehouse.db", dir.display())
}

/// A config with provider `up` pointing at `upstream_base` (OpenAI-compatible) and model `m1`
/// priced $2.50 / $10.00 / cached $1.25 per Mtok, plus `extra` TOML appended.
pub fn config_toml(upstream_base: &str, db_url: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
shutdown_grace_secs = 10
[database]
url = "{db_url}"
[ledger]
flush_interval_ms = 20
[providers.up]
kind = "openai"
base_url = "{upstream_base}"
api_key_env = "TEST_UPSTREAM_KEY"
timeout_secs = 2
[[models]]
alias = "m1"
provider = "up"
upstream_model = "gpt-4o-mini"
input_usd_per_mtok = "2.50"
output_usd_per_mtok = "10.00"
cached_input_usd_per_mtok = "1.25"
max_output_tokens = 1000
{extra}
"#
    )
}

pub async fn start_with_toml(toml: &str) -> Gate {
    start_with_env(toml, &[]).await
}

/// As [`start_with_toml`], with extra environment variables (e.g. `GATEHOUSE_ADMIN_KEY`).
pub async fn start_with_env(toml: &str, extra_env: &[(&str, &str)]) -> Gate {
    let path = std::env::temp_dir().join(format!("gatehouse-test-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&path, toml).unwrap();
    let mut env: HashMap<String, String> = [(
        "TEST_UPSTREAM_KEY".to_owned(),
        "sk-upstream-secret".to_owned(),
    )]
    .into();
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let config = Config::load_with_env(Some(&path), &env).unwrap();
    let db_url = secrecy::ExposeSecret::expose_secret(&config.database_url).to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = gatehouse::start(listener, config).await.unwrap();
    let base = format!("http://{}", running.addr);
    Gate {
        running: Some(running),
        base,
        client: reqwest::Client::new(),
        db_url,
    }
}

pub async fn start(upstream_base: &str, extra: &str) -> Gate {
    start_with_toml(&config_toml(upstream_base, &temp_db_url(), extra)).await
}

impl Gate {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// The whole response body of a POST, as text (a stream read to its end).
    pub async fn post_text(&self, path: &str, body: &Value) -> String {
        self.post(path, body).await.text().await.unwrap()
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Shut down gracefully and open the store again to read what the ledger wrote.
    pub async fn shutdown_and_store(&mut self) -> Store {
        let running = self.running.take().unwrap();
        running.shutdown().await;
        Store::connect(&self.db_url).await.unwrap()
    }

    /// Send a request with a chosen request id.
    pub async fn post_with_id(&self, path: &str, body: &Value, id: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("x-request-id", id)
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

/// The one ledger row of a request id.
pub async fn row(store: &Store, id: &str) -> UsageRecord {
    let mut rows = store.usage_by_request_id(id).await.unwrap();
    assert_eq!(
        rows.len(),
        1,
        "expected exactly one ledger row for {id}, got {rows:?}"
    );
    rows.remove(0)
}

pub fn chat_body(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

/// Split an SSE body into its `data:` payloads.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|ev| {
            ev.lines()
                .find_map(|l| l.strip_prefix("data: "))
                .map(str::to_owned)
        })
        .collect()
}
