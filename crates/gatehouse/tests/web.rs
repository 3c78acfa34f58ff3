//! The web UI's routes against a real server: embedded files (content types, ETags, 304s, the
//! service worker's list), `POST /v1/audio/transcriptions` (and its bad inputs), the admin
//! session cookie and its CSRF protection, the chat's anonymous session, its per-user usage
//! limits and daily budget, invite and key modes, and the server-side image size limit. The
//! shared harness is here; the tests are in `web/`.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;
mod web {
    mod admin_session;
    mod chat;
    mod files;
    mod transcription;
}

use std::collections::HashMap;

use gatehouse::{Config, Running};
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{Value, json};

const ADMIN_KEY: &str = "admin-key-for-tests-0123456789";

struct Web {
    running: Option<Running>,
    base: String,
    client: reqwest::Client,
    db_url: String,
}

/// A Gatehouse on the built-in mock with `extra` TOML and the admin key set.
async fn start(extra: &str, env: &[(&str, &str)]) -> Web {
    start_with(&server_lines(""), extra, env).await
}

fn server_lines(more: &str) -> String {
    format!("listen = \"127.0.0.1:0\"\nshutdown_grace_secs = 5\n{more}")
}

/// `server` goes into `[server]`, `extra` after the other sections.
async fn start_with(server: &str, extra: &str, env: &[(&str, &str)]) -> Web {
    let db_url = common::temp_db_url();
    let toml = format!(
        "[server]\n{server}\n[database]\nurl = \"{db_url}\"\n[ledger]\nflush_interval_ms = 20\n{extra}\n"
    );
    let path = std::env::temp_dir().join(format!("gatehouse-web-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&path, toml).unwrap();
    let mut vars: HashMap<String, String> =
        [("GATEHOUSE_ADMIN_KEY".to_owned(), ADMIN_KEY.to_owned())].into();
    for (k, v) in env {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    let config = Config::load_with_env(Some(&path), &vars).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = gatehouse::start(listener, config).await.unwrap();
    Web {
        base: format!("http://{}", running.addr),
        running: Some(running),
        client: reqwest::Client::new(),
        db_url,
    }
}

impl Web {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn host(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    async fn store(&mut self) -> store::Store {
        self.running.take().unwrap().shutdown().await;
        store::Store::connect(&self.db_url).await.unwrap()
    }

    /// Signs in; returns (cookie header value, CSRF token).
    async fn sign_in(&self) -> (String, String) {
        let resp = self
            .client
            .post(self.url("/admin/api/session"))
            .json(&json!({"key": ADMIN_KEY}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let cookie = cookie_pair(resp.headers(), "gh_admin");
        let body: Value = resp.json().await.unwrap();
        (cookie, body["csrf_token"].as_str().unwrap().to_owned())
    }

    /// A chat session cookie (`gh_chat=…`) and the end-user id it stands for.
    async fn chat_session(&self) -> (String, String) {
        let resp = self.get("/web/api/session").await;
        assert_eq!(resp.status(), 200);
        let cookie = cookie_pair(resp.headers(), "gh_chat");
        let body: Value = resp.json().await.unwrap();
        (cookie, body["user"].as_str().unwrap().to_owned())
    }
}

/// `name=value` of the `Set-Cookie` header for `name`.
fn cookie_pair(headers: &HeaderMap, name: &str) -> String {
    set_cookie(headers, name)
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

fn set_cookie(headers: &HeaderMap, name: &str) -> String {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no Set-Cookie for {name} in {headers:?}"))
}

/// A multipart body: text fields and files (name, filename, content type, bytes).
fn multipart(fields: &[(&str, &str)], files: &[(&str, &str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "test-boundary-7d3f";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    for (name, filename, ct, bytes) in files {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {ct}\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn transcribe(web: &Web, path: &str, ct: &str, body: Vec<u8>) -> reqwest::Response {
    web.client
        .post(web.url(path))
        .header("content-type", ct)
        .header("x-request-id", "tr-1")
        .body(body)
        .send()
        .await
        .unwrap()
}

type FileField = (&'static str, &'static str, &'static str, Vec<u8>);

async fn post_form(
    web: &Web,
    fields: Vec<(&str, &str)>,
    files: Vec<FileField>,
) -> reqwest::Response {
    let files: Vec<(&str, &str, &str, &[u8])> = files
        .iter()
        .map(|(a, b, c, d)| (*a, *b, *c, d.as_slice()))
        .collect();
    let (ct, body) = multipart(&fields, &files);
    transcribe(web, "/v1/audio/transcriptions", &ct, body).await
}

async fn error_of(resp: reqwest::Response) -> (u16, String, Option<String>) {
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap();
    (
        status,
        v["error"]["code"].as_str().unwrap().to_owned(),
        v["error"]["param"].as_str().map(str::to_owned),
    )
}
