//! Helpers for the assistant, conversation and experiment tests: a gateway with the admin key
//! and the models those tests use, JSON calls that return status, headers and body, and the
//! per-test PostgreSQL schema.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Gate, config_toml, start_with_env, temp_db_url};

pub const ADMIN: &str = "test-admin-key";

/// Models beside `m1` ($2.50 / $10 per Mtok): `cheap` ($0.10 / $0.40, upstream
/// `gpt-4o-nano`) and `small` (`m1`'s prices, a 400-token window, 50 output tokens).
pub const MODELS: &str = r#"
[[models]]
alias = "cheap"
provider = "up"
upstream_model = "gpt-4o-nano"
input_usd_per_mtok = "0.10"
output_usd_per_mtok = "0.40"
[[models]]
alias = "small"
provider = "up"
upstream_model = "gpt-4o-mini"
input_usd_per_mtok = "2.50"
output_usd_per_mtok = "10.00"
context_window = 400
max_output_tokens = 50
"#;

pub async fn gate(upstream: &str) -> Gate {
    gate_on(&temp_db_url(), upstream).await
}

pub async fn gate_on(db_url: &str, upstream: &str) -> Gate {
    start_with_env(
        &config_toml(upstream, db_url, MODELS),
        &[("GATEHOUSE_ADMIN_KEY", ADMIN)],
    )
    .await
}

/// The response of a JSON call.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `(status, error code, param)` of an error reply.
    pub fn error(&self) -> (u16, &str, Option<&str>) {
        (
            self.status.as_u16(),
            self.body["error"]["code"].as_str().unwrap_or(""),
            self.body["error"]["param"].as_str(),
        )
    }
}

pub async fn call(
    gate: &Gate,
    method: Method,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = gate.client.request(method, gate.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}

pub async fn admin(gate: &Gate, method: Method, path: &str, body: Option<&Value>) -> Reply {
    call(
        gate,
        method,
        path,
        body,
        &[("authorization", &format!("Bearer {ADMIN}"))],
    )
    .await
}

/// Creates an assistant; panics unless 201.
pub async fn create_assistant(gate: &Gate, spec: &Value) -> Value {
    let r = admin(
        gate,
        Method::POST,
        "/admin/api/assistants?force=true",
        Some(spec),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

/// Starts a conversation with `assistant` as end user `user`; returns its id.
pub async fn conversation(gate: &Gate, assistant: &str, user: &str) -> i64 {
    let r = call(
        gate,
        Method::POST,
        "/v1/conversations",
        Some(&json!({"assistant": assistant})),
        &[("x-gatehouse-user", user)],
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_i64().unwrap()
}

/// Sends `text` in conversation `id` as `user`.
pub async fn send(gate: &Gate, id: i64, user: &str, text: &str) -> Reply {
    call(
        gate,
        Method::POST,
        &format!("/v1/conversations/{id}/messages"),
        Some(&json!({"content": text})),
        &[("x-gatehouse-user", user)],
    )
    .await
}

/// A fresh schema on the test PostgreSQL, or `None` (test skipped) when it is not configured.
pub async fn postgres_url() -> Option<String> {
    let Ok(base) = std::env::var("GATEHOUSE_TEST_POSTGRES_URL") else {
        println!("skipped: GATEHOUSE_TEST_POSTGRES_URL not set");
        return None;
    };
    let schema = format!("gh_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-csearch_path%3D{schema}"))
}
