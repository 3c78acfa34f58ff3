//! The web UI's routes against a real server: embedded files (content types, ETags, 304s, the
//! service worker's list), `POST /v1/audio/transcriptions` (and its bad inputs), the admin
//! session cookie and its CSRF protection, the chat's anonymous session, its per-user usage
//! and daily budget, invite codes, and the server-side image size limit.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

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

#[tokio::test]
async fn pages_and_files_have_types_etags_and_revalidate() {
    let web = start("", &[]).await;
    let cases = [
        ("/", "text/html; charset=utf-8"),
        ("/admin", "text/html; charset=utf-8"),
        ("/assets/js/chat/app.js", "text/javascript; charset=utf-8"),
        ("/assets/css/base.css", "text/css; charset=utf-8"),
        ("/assets/icon.svg", "image/svg+xml"),
        ("/assets/manifest.webmanifest", "application/manifest+json"),
        ("/assets/vendor/marked/LICENSE", "text/plain; charset=utf-8"),
        ("/favicon.ico", "image/svg+xml"),
    ];
    for (path, ct) in cases {
        let resp = web.get(path).await;
        assert_eq!(resp.status(), 200, "{path}");
        let h = resp.headers().clone();
        assert_eq!(h["content-type"], ct, "{path}");
        assert_eq!(h["cache-control"], "no-cache", "{path}");
        let etag = h["etag"].to_str().unwrap().to_owned();
        assert!(etag.starts_with('"') && etag.len() == 18, "{path}: {etag}");
        let body = resp.bytes().await.unwrap();
        assert!(!body.is_empty());
        // The same ETag back: 304 without a body.
        let again = web
            .client
            .get(web.url(path))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
        assert!(again.bytes().await.unwrap().is_empty());
        // Bad input: a stale ETag gets the whole file.
        let stale = web
            .client
            .get(web.url(path))
            .header("if-none-match", "\"0000000000000000\"")
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status(), 200);
    }
    // Pages carry their own strict policy; the chat page is the chat.
    let page = web.get("/").await;
    // The security layer's UI policy, and the microphone for this origin (voice input).
    let h = page.headers().clone();
    assert_eq!(
        h["content-security-policy"],
        gatehouse::config::access::DEFAULT_UI_CSP
    );
    assert!(
        h["permissions-policy"]
            .to_str()
            .unwrap()
            .contains("microphone=(self)")
    );
    let csp = h["content-security-policy"].to_str().unwrap().to_owned();
    assert!(
        csp.starts_with("default-src 'self'; script-src 'self'; style-src 'self';"),
        "{csp}"
    );
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("<gh-composer id=\"composer\">")
    );
    assert!(
        web.get("/admin")
            .await
            .text()
            .await
            .unwrap()
            .contains("id=\"signin-form\"")
    );
    // The service worker may control the whole origin and carries the UI version.
    let sw = web.get("/assets/sw.js").await;
    assert_eq!(sw.headers()["service-worker-allowed"], "/");
    let sw_text = sw.text().await.unwrap();
    assert!(sw_text.contains(&format!(
        "const VERSION = '{}';",
        gatehouse::web::assets::UI_VERSION
    )));
    // Bad input: unknown files, a path escaping the folder, the unshipped browser tests.
    for path in [
        "/assets/nope.js",
        "/assets/../Cargo.toml",
        "/assets/%2e%2e/Cargo.toml",
        "/assets/tests/run.sh",
        "/assets/tests/package.json",
    ] {
        let resp = web.get(path).await;
        assert_eq!(resp.status(), 404, "{path}");
        assert_eq!(error_of(resp).await.1, "not_found", "{path}");
    }
}

#[tokio::test]
async fn every_file_the_service_worker_keeps_offline_is_served() {
    let web = start("", &[]).await;
    let sw = web.get("/assets/sw.js").await.text().await.unwrap();
    let shell = sw
        .split("const SHELL = [")
        .nth(1)
        .unwrap()
        .split("];")
        .next()
        .unwrap();
    let mut urls: Vec<String> = shell
        .split('\'')
        .filter(|s| s.starts_with("/assets/") || *s == "/" || *s == "/admin")
        .map(str::to_owned)
        .collect();
    // The highlight.js languages are listed by name.
    let langs = shell
        .split("...['")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap();
    for l in langs.split(',') {
        let l = l
            .trim()
            .trim_matches(|c: char| c == '\'' || c.is_whitespace());
        if !l.is_empty() {
            urls.push(format!("/assets/vendor/highlight/languages/{l}.min.js"));
        }
    }
    assert!(urls.len() > 40, "{urls:?}");
    for url in urls.iter().filter(|u| !u.contains("${")) {
        assert_eq!(web.get(url).await.status(), 200, "{url}");
    }
}

#[tokio::test]
async fn transcription_answers_json_and_text_and_is_recorded() {
    // A body limit far below the audio: the route has its own.
    let mut web = start_with(&server_lines("max_body_bytes = 4096"), "", &[]).await;
    let audio = vec![7u8; 50_000];
    let (ct, body) = multipart(
        &[("model", "mock-1"), ("language", "en")],
        &[("file", "memo.webm", "audio/webm", &audio)],
    );
    let resp = transcribe(&web, "/v1/audio/transcriptions", &ct, body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v, json!({"text": "Transcript of memo.webm (50000 bytes)"}));

    let (ct, body) = multipart(
        &[
            ("model", "mock-1"),
            ("response_format", "text"),
            ("prompt", "names"),
        ],
        &[("file", "note.m4a", "application/octet-stream", b"abc")],
    );
    let resp = web
        .client
        .post(web.url("/v1/audio/transcriptions"))
        .header("content-type", ct)
        .header("x-request-id", "tr-text")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(
        resp.text().await.unwrap(),
        "Transcript of note.m4a (3 bytes)"
    );

    let store = web.store().await;
    let row = common::row(&store, "tr-text").await;
    assert_eq!(
        (row.route, row.status, row.model.as_str(), row.cost_micros),
        (store::Route::Transcription, 200, "mock-1", 0)
    );
}

#[tokio::test]
async fn transcription_refuses_bad_input() {
    let web = start_with(&server_lines("max_audio_bytes = 1000"), "", &[]).await;
    let wav: &[u8] = &[1, 2, 3, 4];
    let file =
        |name: &'static str, ct: &'static str, bytes: &[u8]| ("file", name, ct, bytes.to_vec());
    // Bad input: no file at all.
    let r = post_form(&web, vec![("model", "mock-1")], vec![]).await;
    assert_eq!(
        error_of(r).await,
        (400, "invalid_request".into(), Some("file".into()))
    );
    // Bad input: no model.
    let r = post_form(&web, vec![], vec![file("a.wav", "audio/wav", wav)]).await;
    assert_eq!(
        error_of(r).await,
        (400, "invalid_request".into(), Some("model".into()))
    );
    // Bad input: an image instead of audio.
    let r = post_form(
        &web,
        vec![("model", "mock-1")],
        vec![file("cat.png", "image/png", wav)],
    )
    .await;
    assert_eq!(
        error_of(r).await,
        (415, "unsupported_media_type".into(), Some("file".into()))
    );
    // Bad input: a file over server.max_audio_bytes (1,000 bytes).
    let r = post_form(
        &web,
        vec![("model", "mock-1")],
        vec![file("big.wav", "audio/wav", &[0u8; 1_001])],
    )
    .await;
    assert_eq!(
        error_of(r).await,
        (413, "request_too_large".into(), Some("file".into()))
    );
    // Exactly at the limit passes.
    let r = post_form(
        &web,
        vec![("model", "mock-1")],
        vec![file("ok.wav", "audio/wav", &[0u8; 1_000])],
    )
    .await;
    assert_eq!(r.status(), 200);
    // Bad input: an empty file.
    let r = post_form(
        &web,
        vec![("model", "mock-1")],
        vec![file("empty.wav", "audio/wav", b"")],
    )
    .await;
    assert_eq!(
        error_of(r).await,
        (400, "invalid_request".into(), Some("file".into()))
    );
    // Bad input: a response format Gatehouse does not render.
    let r = post_form(
        &web,
        vec![("model", "mock-1"), ("response_format", "srt")],
        vec![file("a.wav", "audio/wav", wav)],
    )
    .await;
    assert_eq!(
        error_of(r).await,
        (
            400,
            "invalid_request".into(),
            Some("response_format".into())
        )
    );
    // Bad input: a language that is not an ISO-639-1 code.
    let r = post_form(
        &web,
        vec![("model", "mock-1"), ("language", "English")],
        vec![file("a.wav", "audio/wav", wav)],
    )
    .await;
    assert_eq!(
        error_of(r).await,
        (400, "invalid_request".into(), Some("language".into()))
    );
    // Bad input: an unknown field.
    let r = post_form(
        &web,
        vec![("model", "mock-1"), ("speed", "2")],
        vec![file("a.wav", "audio/wav", wav)],
    )
    .await;
    assert_eq!(
        error_of(r).await,
        (400, "invalid_request".into(), Some("speed".into()))
    );
    // Bad input: a model this gateway does not serve.
    let r = post_form(
        &web,
        vec![("model", "whisper-9")],
        vec![file("a.wav", "audio/wav", wav)],
    )
    .await;
    assert_eq!(
        error_of(r).await,
        (404, "model_not_found".into(), Some("model".into()))
    );
    // Bad input: a model name over the field limit.
    let long = "m".repeat(300);
    let r = post_form(
        &web,
        vec![("model", long.as_str())],
        vec![file("a.wav", "audio/wav", wav)],
    )
    .await;
    assert_eq!(
        error_of(r).await,
        (413, "request_too_large".into(), Some("model".into()))
    );
    // Bad input: JSON instead of multipart.
    let r = web
        .client
        .post(web.url("/v1/audio/transcriptions"))
        .json(&json!({"model": "mock-1", "file": "AAAA"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(r).await,
        (415, "unsupported_media_type".into(), None)
    );
    // Bad input: a multipart body cut off in the middle.
    let (ct, mut body) = multipart(
        &[("model", "mock-1")],
        &[("file", "a.wav", "audio/wav", wav)],
    );
    body.truncate(body.len() - 20);
    let r = transcribe(&web, "/v1/audio/transcriptions", &ct, body).await;
    assert_eq!(error_of(r).await, (400, "invalid_request".into(), None));
}

#[tokio::test]
async fn the_admin_session_cookie_is_httponly_strict_and_ends_at_sign_out() {
    let web = start("[web]\nadmin_session_ttl_secs = 600\n", &[]).await;
    // Bad input: a wrong admin key signs nobody in.
    let resp = web
        .client
        .post(web.url("/admin/api/session"))
        .json(&json!({"key": "not-the-key"}))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get(SET_COOKIE).is_none());
    assert_eq!(error_of(resp).await, (401, "invalid_api_key".into(), None));

    let resp = web
        .client
        .post(web.url("/admin/api/session"))
        .json(&json!({"key": ADMIN_KEY}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let set = set_cookie(resp.headers(), "gh_admin");
    let attrs: Vec<&str> = set.split("; ").skip(1).collect();
    assert_eq!(
        attrs,
        ["Path=/admin", "Max-Age=600", "HttpOnly", "SameSite=Strict"]
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (body["signed_in"].as_bool(), body["via"].as_str()),
        (Some(true), Some("session"))
    );
    let cookie = set.split(';').next().unwrap().to_owned();

    // Behind an HTTPS proxy the cookie is Secure.
    let resp = web
        .client
        .post(web.url("/admin/api/session"))
        .header("x-forwarded-proto", "https")
        .json(&json!({"key": ADMIN_KEY}))
        .send()
        .await
        .unwrap();
    assert!(
        set_cookie(resp.headers(), "gh_admin").ends_with("; HttpOnly; SameSite=Strict; Secure")
    );

    // The cookie opens the admin API, like the bearer key.
    let with_cookie = web
        .client
        .get(web.url("/admin/api/deployments"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(with_cookie.status(), 200);
    let with_key = web
        .client
        .get(web.url("/admin/api/deployments"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(with_key.status(), 200);
    // Bad input: no credential; a forged cookie; a cookie with its expiry pushed out.
    assert_eq!(
        error_of(web.get("/admin/api/deployments").await).await.0,
        401
    );
    for forged in [
        "gh_admin=v1.abc.99999999999999.AAAA".to_owned(),
        cookie.replacen(".1", ".9", 1),
    ] {
        let r = web
            .client
            .get(web.url("/admin/api/deployments"))
            .header("cookie", forged.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_of(r).await,
            (401, "invalid_api_key".into(), None),
            "{forged}"
        );
    }

    // Signing out clears the cookie and revokes the session on the server.
    let csrf = web
        .client
        .get(web.url("/admin/api/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = web
        .client
        .delete(web.url("/admin/api/session"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert!(
        set_cookie(out.headers(), "gh_admin").starts_with("gh_admin=; Path=/admin; Max-Age=0;")
    );
    // Bad input: the old cookie, replayed after sign-out.
    let replay = web
        .client
        .get(web.url("/admin/api/deployments"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(replay).await.0, 401);
}

#[tokio::test]
async fn cookie_authenticated_writes_need_the_csrf_token_and_the_same_origin() {
    let web = start("", &[]).await;
    let (cookie, csrf) = web.sign_in().await;
    let origin = format!("http://{}", web.host());
    let count = |token: Option<&str>, origin: &str| {
        let mut rb = web
            .client
            .post(web.url("/admin/api/tokens"))
            .header("cookie", &cookie)
            .header("origin", origin)
            .json(&json!({"text": "Hello, world"}));
        if let Some(t) = token {
            rb = rb.header("x-csrf-token", t);
        }
        rb.send()
    };
    // Bad input: no token.
    let r = count(None, &origin).await.unwrap();
    assert_eq!(error_of(r).await, (403, "forbidden".into(), None));
    // Bad input: a token of another session.
    let (_, other) = web.sign_in().await;
    let r = count(Some(&other), &origin).await.unwrap();
    assert_eq!(error_of(r).await, (403, "forbidden".into(), None));
    // Bad input: the right token sent from another site.
    let r = count(Some(&csrf), "https://evil.example").await.unwrap();
    assert_eq!(error_of(r).await, (403, "forbidden".into(), None));
    // The right token from this origin.
    let r = count(Some(&csrf), &origin).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!({"tokens": 3, "encoding": "o200k_base", "limit": 2000})
    );
    // The bearer key needs no token (no ambient credential to forge).
    let r = web
        .client
        .post(web.url("/admin/api/tokens"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"text": "Hello, world"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Bad input: signing in from another site (login CSRF).
    let r = web
        .client
        .post(web.url("/admin/api/session"))
        .header("origin", "https://evil.example")
        .json(&json!({"key": ADMIN_KEY}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await, (403, "forbidden".into(), None));
    // Bad input: sign-out without the token keeps the session.
    let r = web
        .client
        .delete(web.url("/admin/api/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let still = web
        .client
        .get(web.url("/admin/api/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), 200);
}

#[tokio::test]
async fn the_chat_runs_as_the_cookie_user_and_reports_its_usage() {
    let mut web = start("", &[]).await;
    let resp = web.get("/web/api/session").await;
    let set = set_cookie(resp.headers(), "gh_chat");
    let attrs: Vec<&str> = set.split("; ").skip(1).collect();
    assert_eq!(
        attrs,
        ["Path=/", "Max-Age=31536000", "HttpOnly", "SameSite=Strict"]
    );
    let info: Value = resp.json().await.unwrap();
    assert_eq!(info["access"], "open");
    assert_eq!(info["authorized"], true);
    assert_eq!(info["models"], json!(["mock-1"]));
    assert_eq!(info["limits"]["daily_budget_micros"], 1_000_000);
    assert_eq!(info["limits"]["max_image_bytes"], 3 * 1024 * 1024);
    assert_eq!(info["transcription_model"], "default");
    let cookie = set.split(';').next().unwrap().to_owned();
    let user = info["user"].as_str().unwrap().to_owned();
    assert!(user.starts_with("web:") && user.len() == 26, "{user}");
    // The same cookie keeps the same user (no new cookie).
    let again = web
        .client
        .get(web.url("/web/api/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert!(again.headers().get(SET_COOKIE).is_none());
    assert_eq!(again.json::<Value>().await.unwrap()["user"], user.as_str());

    let chat = |cookie: Option<&str>, id: &str, origin: Option<&str>| {
        let mut rb = web
            .client
            .post(web.url("/web/api/chat/completions"))
            .header("x-request-id", id)
            // A user chosen by the client is replaced by the cookie's.
            .header("x-gatehouse-user", "web:somebody-else")
            .json(&common::chat_body("mock-1", "[mock:echo] one two three"));
        if let Some(c) = cookie {
            rb = rb.header("cookie", c);
        }
        if let Some(o) = origin {
            rb = rb.header("origin", o);
        }
        rb.send()
    };
    // Bad input: no session; a forged session; a request from another site.
    let r = chat(None, "w0", None).await.unwrap();
    assert_eq!(error_of(r).await, (401, "invalid_api_key".into(), None));
    let r = chat(Some("gh_chat=v1.someone.o.AAAA"), "w0", None)
        .await
        .unwrap();
    assert_eq!(error_of(r).await, (401, "invalid_api_key".into(), None));
    let r = chat(Some(&cookie), "w0", Some("https://evil.example"))
        .await
        .unwrap();
    assert_eq!(error_of(r).await, (403, "forbidden".into(), None));

    let origin = format!("http://{}", web.host());
    let r = chat(Some(&cookie), "w1", Some(&origin)).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "one two three");
    let r = chat(Some(&cookie), "w2", Some(&origin)).await.unwrap();
    assert_eq!(r.status(), 200);

    let usage: Value = web
        .client
        .get(web.url("/web/api/usage"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Another browser sees only its own spend.
    let (other, _) = web.chat_session().await;
    let theirs: Value = web
        .client
        .get(web.url("/web/api/usage"))
        .header("cookie", &other)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (theirs["requests"].as_i64(), theirs["cost_micros"].as_i64()),
        (Some(0), Some(0))
    );

    let store = web.store().await;
    let (r1, r2) = (
        common::row(&store, "w1").await,
        common::row(&store, "w2").await,
    );
    assert_eq!(usage["user"], user.as_str());
    assert_eq!(usage["requests"], 2);
    assert_eq!(usage["messages"], 2);
    assert_eq!(usage["cost_micros"], r1.cost_micros + r2.cost_micros);
    assert_eq!(usage["prompt_tokens"], r1.prompt_tokens + r2.prompt_tokens);
    assert_eq!(
        usage["total_tokens"],
        r1.prompt_tokens + r1.completion_tokens + r2.prompt_tokens + r2.completion_tokens
    );
    assert_eq!(
        usage["average_cost_per_message_micros"],
        (r1.cost_micros + r2.cost_micros + 1) / 2
    );
    assert_eq!(usage["recent"][0]["request_id"], "w1");
    assert_eq!(usage["recent"][0]["cost_micros"], r1.cost_micros);
    assert_eq!(usage["recent"].as_array().unwrap().len(), 2);
    // mock-1: 4 + ⌈25/4⌉ + 3 = 14 prompt tokens at $1/Mtok, 3 completion tokens at $2/Mtok.
    assert_eq!(
        (r1.prompt_tokens, r1.completion_tokens, r1.cost_micros),
        (14, 3, 20)
    );
}

#[tokio::test]
async fn a_user_over_the_daily_budget_is_refused_until_midnight() {
    let web = start("[web]\nuser_daily_budget_usd = \"0.000030\"\n", &[]).await;
    let (cookie, _) = web.chat_session().await;
    let send = |id: &'static str| {
        web.client
            .post(web.url("/web/api/chat/completions"))
            .header("cookie", &cookie)
            .header("x-request-id", id)
            .json(&common::chat_body("mock-1", "[mock:echo] one two three"))
            .send()
    };
    // 20 micro-dollars each: the second request starts at 20 (< 30), the third at 40.
    assert_eq!(send("b1").await.unwrap().status(), 200);
    assert_eq!(send("b2").await.unwrap().status(), 200);
    let r = send("b3").await.unwrap();
    assert_eq!(r.headers()["x-should-retry"], "false");
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&wait), "{wait}");
    let (status, code, _) = error_of(r).await;
    assert_eq!((status, code.as_str()), (429, "budget_exceeded"));
    // Another browser still has its budget.
    let (other, _) = web.chat_session().await;
    let r = web
        .client
        .post(web.url("/web/api/chat/completions"))
        .header("cookie", &other)
        .json(&common::chat_body("mock-1", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn invite_codes_unlock_the_chat() {
    let web = start(
        "[web]\nchat_access = \"invite\"\n",
        &[("GATEHOUSE_INVITE_CODES", "alpha-123, beta-456")],
    )
    .await;
    let resp = web.get("/web/api/session").await;
    let cookie = cookie_pair(resp.headers(), "gh_chat");
    let info: Value = resp.json().await.unwrap();
    assert_eq!(
        (info["access"].as_str(), info["authorized"].as_bool()),
        (Some("invite"), Some(false))
    );
    let chat = |c: String| {
        web.client
            .post(web.url("/web/api/chat/completions"))
            .header("cookie", c)
            .json(&common::chat_body("mock-1", "hi"))
            .send()
    };
    // Bad input: chatting without an invitation.
    let r = chat(cookie.clone()).await.unwrap();
    assert_eq!(error_of(r).await, (403, "forbidden".into(), None));
    // Bad input: a wrong code, and a prefix of a right one.
    for code in ["gamma-789", "alpha"] {
        let r = web
            .client
            .post(web.url("/web/api/session/invite"))
            .header("cookie", &cookie)
            .json(&json!({"code": code}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_of(r).await,
            (403, "forbidden".into(), Some("code".into())),
            "{code}"
        );
    }
    let r = web
        .client
        .post(web.url("/web/api/session/invite"))
        .header("cookie", &cookie)
        .json(&json!({"code": " beta-456 "}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let invited = cookie_pair(r.headers(), "gh_chat");
    assert_ne!(invited, cookie);
    assert_eq!(chat(invited.clone()).await.unwrap().status(), 200);
    // The invitation keeps the user id.
    let info: Value = web
        .client
        .get(web.url("/web/api/session"))
        .header("cookie", &invited)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["authorized"], true);
}

#[tokio::test]
async fn invite_mode_without_codes_does_not_start() {
    let path = std::env::temp_dir().join(format!("gatehouse-web-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&path, "[web]\nchat_access = \"invite\"\n").unwrap();
    // Bad input: invite mode with no codes in the environment.
    let err = Config::load_with_env(Some(&path), &HashMap::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "web.chat_access: `invite` needs invite codes in $GATEHOUSE_INVITE_CODES (comma-separated)"
    );
    // With codes it starts, and check-config names how many, never which.
    let env: HashMap<String, String> = [(
        "GATEHOUSE_INVITE_CODES".to_owned(),
        "alpha-123,beta-456".to_owned(),
    )]
    .into();
    let described = Config::load_with_env(Some(&path), &env).unwrap().describe();
    assert!(
        described.contains("chat access invite (2 invite codes, ***)"),
        "{described}"
    );
    assert!(!described.contains("alpha-123") && !described.contains("beta-456"));
    // Bad input: an access mode that does not exist.
    std::fs::write(&path, "[web]\nchat_access = \"everyone\"\n").unwrap();
    let err = Config::load_with_env(Some(&path), &HashMap::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "web.chat_access: `everyone` is not one of open, invite, key"
    );
    // Bad input: a short session secret.
    std::fs::write(&path, "").unwrap();
    let env: HashMap<String, String> =
        [("GATEHOUSE_SESSION_SECRET".to_owned(), "short".to_owned())].into();
    let err = Config::load_with_env(Some(&path), &env).unwrap_err();
    assert_eq!(
        err.to_string(),
        "web.session_secret_env: $GATEHOUSE_SESSION_SECRET must be at least 32 characters"
    );
}

#[tokio::test]
async fn images_over_the_limit_are_refused_by_the_server() {
    let web = start("[validation]\nmax_image_bytes = 30\n", &[]).await;
    let image = |b64: &str| {
        json!({"model": "mock-1", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{b64}")}}
        ]}]})
    };
    // 40 base64 characters decode to 30 bytes: at the limit.
    let ok = web
        .client
        .post(web.url("/v1/chat/completions"))
        .json(&image(&"A".repeat(40)))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // Bad input: 33 bytes.
    let r = web
        .client
        .post(web.url("/v1/chat/completions"))
        .json(&image(&"A".repeat(44)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(r).await,
        (
            413,
            "request_too_large".into(),
            Some("messages[0].content[1].image_url.url".into())
        )
    );
}

#[tokio::test]
async fn the_web_chat_transcribes_for_its_session_only() {
    let web = start("", &[]).await;
    let (cookie, _) = web.chat_session().await;
    let (ct, body) = multipart(
        &[("model", "default")],
        &[("file", "voice.webm", "audio/webm", &[9u8; 321])],
    );
    // Bad input: no chat session.
    let r = transcribe(&web, "/web/api/audio/transcriptions", &ct, body.clone()).await;
    assert_eq!(error_of(r).await.0, 401);
    let r = web
        .client
        .post(web.url("/web/api/audio/transcriptions"))
        .header("content-type", ct)
        .header("cookie", cookie)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"text": "Transcript of voice.webm (321 bytes)"})
    );
}

#[tokio::test]
async fn each_browser_has_its_own_conversations_which_it_can_rename_cut_back_and_rate() {
    let web = start("", &[]).await;
    let (alice, alice_user) = web.chat_session().await;
    let (bob, _) = web.chat_session().await;
    let call = |method: reqwest::Method, path: &str, cookie: &str, body: Option<Value>| {
        let mut rb = web
            .client
            .request(method, web.url(path))
            .header("cookie", cookie);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        rb.send()
    };
    let created: Value = call(
        reqwest::Method::POST,
        "/web/api/conversations",
        &alice,
        Some(json!({"model": "mock-1", "title": "Trip"})),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["user"], alice_user.as_str());
    for text in ["[mock:echo] first", "[mock:echo] second"] {
        let r = call(
            reqwest::Method::POST,
            &format!("/web/api/conversations/{id}/messages"),
            &alice,
            Some(json!({"content": text})),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Bob sees none of it, and cannot reach it by id.
    let theirs: Value = call(reqwest::Method::GET, "/web/api/conversations", &bob, None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["data"], json!([]));
    let r = call(
        reqwest::Method::GET,
        &format!("/web/api/conversations/{id}"),
        &bob,
        None,
    )
    .await
    .unwrap();
    assert_eq!(error_of(r).await.0, 404);
    // Bad input: an API client claiming Alice's web id, to read her conversations.
    let r = web
        .client
        .get(web.url("/v1/conversations"))
        .header("x-gatehouse-user", alice_user.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(r).await,
        (400, "invalid_request".into(), Some("user".into()))
    );
    // Bad input: Bob claiming Alice's end-user id in the body.
    let r = call(
        reqwest::Method::POST,
        &format!("/web/api/conversations/{id}/messages"),
        &bob,
        Some(json!({"content": "hi", "user": alice_user})),
    )
    .await
    .unwrap();
    assert_eq!(
        error_of(r).await,
        (400, "invalid_request".into(), Some("user".into()))
    );

    let r = call(
        reqwest::Method::PATCH,
        &format!("/web/api/conversations/{id}"),
        &alice,
        Some(json!({"title": "  Trip to Rome "})),
    )
    .await
    .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["title"], "Trip to Rome");
    // Bad input: a title over 200 characters.
    let r = call(
        reqwest::Method::PATCH,
        &format!("/web/api/conversations/{id}"),
        &alice,
        Some(json!({"title": "x".repeat(201)})),
    )
    .await
    .unwrap();
    assert_eq!(
        error_of(r).await,
        (400, "invalid_request".into(), Some("title".into()))
    );

    let full: Value = call(
        reqwest::Method::GET,
        &format!("/web/api/conversations/{id}"),
        &alice,
        None,
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let messages = full["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant"]);
    let first_reply = messages[1]["id"].as_i64().unwrap();
    let second_question = messages[2]["id"].as_i64().unwrap();
    let cost = full["cost_micros"].as_i64().unwrap();
    let rated = call(
        reqwest::Method::POST,
        &format!("/web/api/conversations/{id}/messages/{first_reply}/rating"),
        &alice,
        Some(json!({"rating": "up"})),
    )
    .await
    .unwrap();
    assert_eq!(rated.status(), 200);
    // Bad input: cutting back without naming where.
    let r = call(
        reqwest::Method::DELETE,
        &format!("/web/api/conversations/{id}/messages"),
        &alice,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        error_of(r).await,
        (400, "invalid_request".into(), Some("from".into()))
    );
    // Bad input: Bob cutting Alice's conversation.
    let r = call(
        reqwest::Method::DELETE,
        &format!("/web/api/conversations/{id}/messages?from={second_question}"),
        &bob,
        None,
    )
    .await
    .unwrap();
    assert_eq!(error_of(r).await.0, 404);
    let r = call(
        reqwest::Method::DELETE,
        &format!("/web/api/conversations/{id}/messages?from={second_question}"),
        &alice,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"conversation_id": id, "deleted": 2})
    );
    let after: Value = call(
        reqwest::Method::GET,
        &format!("/web/api/conversations/{id}"),
        &alice,
        None,
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(after["message_count"], 2);
    assert_eq!(after["messages"][1]["rating"], "up");
    assert_eq!(after["messages"].as_array().unwrap().len(), 2);
    // The money spent stays spent.
    assert_eq!(after["cost_micros"].as_i64().unwrap(), cost);
}

/// What the fake Whisper upstream received: its fields (files as `name:type:len`) and the
/// `Authorization` header.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(Vec<(String, String)>, String)>>>;

/// A Whisper-compatible upstream: `POST /v1/audio/transcriptions` answering what it heard, or
/// the OpenAI error body for the status a `model` of `fail-<status>` asks for.
async fn whisper_upstream() -> (String, Received) {
    use axum::extract::{Multipart, State};
    let received: Received = std::sync::Arc::default();
    async fn handle(
        State(received): State<Received>,
        headers: axum::http::HeaderMap,
        mut form: Multipart,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let mut fields = Vec::new();
        while let Some(field) = form.next_field().await.unwrap() {
            let name = field.name().unwrap().to_owned();
            let value = match field.file_name().map(str::to_owned) {
                Some(file) => {
                    let ct = field.content_type().unwrap_or("").to_owned();
                    format!("{file}:{ct}:{}", field.bytes().await.unwrap().len())
                }
                None => field.text().await.unwrap(),
            };
            fields.push((name, value));
        }
        let auth = headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let model = fields.iter().find(|(k, _)| k == "model").unwrap().1.clone();
        let file = fields.iter().find(|(k, _)| k == "file").unwrap().1.clone();
        received.lock().unwrap().push((fields, auth));
        if let Some(status) = model.strip_prefix("fail-") {
            let status: u16 = status.parse().unwrap();
            let body = json!({"error": {"message": format!("upstream says {status}"), "type": "invalid_request_error", "param": null, "code": null}});
            return (
                axum::http::StatusCode::from_u16(status).unwrap(),
                axum::Json(body),
            )
                .into_response();
        }
        axum::Json(json!({"text": format!("heard {file}")})).into_response()
    }
    let app = axum::Router::new()
        .route("/v1/audio/transcriptions", axum::routing::post(handle))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1"), received)
}

#[tokio::test]
async fn transcriptions_are_proxied_to_a_whisper_compatible_upstream() {
    let (base, received) = whisper_upstream().await;
    let models = format!(
        "[providers.whisper]\nkind = \"openai\"\nbase_url = \"{base}\"\napi_key_env = \"TEST_WHISPER_KEY\"\n\
         [[models]]\nalias = \"speech\"\nprovider = \"whisper\"\nupstream_model = \"whisper-1\"\n\
         [[models]]\nalias = \"broken\"\nprovider = \"whisper\"\nupstream_model = \"fail-500\"\n\
         [[models]]\nalias = \"picky\"\nprovider = \"whisper\"\nupstream_model = \"fail-400\"\n"
    );
    let web = start(&models, &[("TEST_WHISPER_KEY", "sk-whisper-secret")]).await;
    let audio = vec![3u8; 2_048];
    let (ct, body) = multipart(
        &[
            ("model", "speech"),
            ("language", "de"),
            ("response_format", "text"),
        ],
        &[("file", "memo.ogg", "audio/ogg", &audio)],
    );
    let resp = transcribe(&web, "/v1/audio/transcriptions", &ct, body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "heard memo.ogg:audio/ogg:2048");
    let (fields, auth) = received.lock().unwrap()[0].clone();
    assert_eq!(auth, "Bearer sk-whisper-secret");
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // The upstream model name, JSON from the upstream (the gateway renders `text` itself).
    assert_eq!(
        fields,
        [
            ("model", "whisper-1"),
            ("response_format", "json"),
            ("language", "de"),
            ("file", "memo.ogg:audio/ogg:2048")
        ]
    );
    // Upstream failures follow the error contract: a 500 is a 502 with fixed text…
    let (ct, body) = multipart(
        &[("model", "broken")],
        &[("file", "a.wav", "audio/wav", b"RIFF")],
    );
    let resp = transcribe(&web, "/v1/audio/transcriptions", &ct, body).await;
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "provider_error");
    assert!(
        !v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("upstream says")
    );
    // …and a request the upstream refuses is the client's 400, with the upstream's reason.
    let (ct, body) = multipart(
        &[("model", "picky")],
        &[("file", "a.wav", "audio/wav", b"RIFF")],
    );
    let resp = transcribe(&web, "/v1/audio/transcriptions", &ct, body).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        (v["error"]["code"].as_str(), v["error"]["message"].as_str()),
        (
            Some("invalid_request"),
            Some("upstream rejected the request: upstream says 400")
        )
    );
}

#[tokio::test]
async fn web_chat_limits_apply_per_user_and_per_address() {
    let web = start("[limits]\nweb_chat_rpm = 2\n", &[]).await;
    let (alice, _) = web.chat_session().await;
    let (bob, _) = web.chat_session().await;
    let chat = |cookie: &str| {
        web.client
            .post(web.url("/web/api/chat/completions"))
            .header("cookie", cookie)
            .json(&common::chat_body("mock-1", "hi"))
            .send()
    };
    let first = chat(&alice).await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-ratelimit-limit-requests"], "2");
    assert_eq!(first.headers()["x-ratelimit-remaining-requests"], "1");
    assert_eq!(chat(&alice).await.unwrap().status(), 200);
    // Bad input: a third message within the minute.
    let r = chat(&alice).await.unwrap();
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(error_of(r).await, (429, "rate_limit_exceeded".into(), None));
    // Bad input: a fresh cookie from the same address (the address has used its two as well).
    let r = chat(&bob).await.unwrap();
    assert_eq!(error_of(r).await, (429, "rate_limit_exceeded".into(), None));
    // Reading is not limited.
    let r = web
        .client
        .get(web.url("/web/api/usage"))
        .header("cookie", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn key_mode_needs_a_valid_api_key_from_the_browser() {
    let mut web = start("[web]\nchat_access = \"key\"\n", &[]).await;
    let created: Value = web
        .client
        .post(web.url("/admin/api/keys"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"name": "browser"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let key_id = created["id"].as_i64().unwrap();
    let (cookie, _) = web.chat_session().await;
    let session = |bearer: Option<&str>| {
        let mut rb = web
            .client
            .get(web.url("/web/api/session"))
            .header("cookie", &cookie);
        if let Some(b) = bearer {
            rb = rb.bearer_auth(b);
        }
        rb.send()
    };
    let info: Value = session(None).await.unwrap().json().await.unwrap();
    assert_eq!(
        (info["access"].as_str(), info["authorized"].as_bool()),
        (Some("key"), Some(false))
    );
    let info: Value = session(Some(&key)).await.unwrap().json().await.unwrap();
    assert_eq!(info["authorized"], true);
    let chat = |bearer: Option<&str>, id: &'static str| {
        let mut rb = web
            .client
            .post(web.url("/web/api/chat/completions"))
            .header("cookie", &cookie)
            .header("x-request-id", id)
            .json(&common::chat_body("mock-1", "hi"));
        if let Some(b) = bearer {
            rb = rb.bearer_auth(b);
        }
        rb.send()
    };
    // Bad input: no key; a made-up key.
    let r = chat(None, "k0").await.unwrap();
    assert_eq!(error_of(r).await, (401, "invalid_api_key".into(), None));
    let r = chat(Some("gh-not-a-real-key-0000000000000000"), "k0")
        .await
        .unwrap();
    assert_eq!(error_of(r).await, (401, "invalid_api_key".into(), None));
    assert_eq!(chat(Some(&key), "k1").await.unwrap().status(), 200);
    // The request is the key's: its usage record names it.
    let store = web.store().await;
    assert_eq!(common::row(&store, "k1").await.key_id, Some(key_id));
}

#[tokio::test]
async fn a_signed_in_console_is_not_held_to_the_admin_rate_limit() {
    let web = start(
        "[limits]\nadmin_requests = 3\nadmin_period_secs = 300\n",
        &[],
    )
    .await;
    // One request of the three: signing in.
    let (cookie, _) = web.sign_in().await;
    for _ in 0..6 {
        let r = web
            .client
            .get(web.url("/admin/api/deployments"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Without a session (the bearer key, or guesses) the limit counts: two more, then 429.
    let bearer = || {
        web.client
            .get(web.url("/admin/api/deployments"))
            .bearer_auth(ADMIN_KEY)
            .send()
    };
    assert_eq!(bearer().await.unwrap().status(), 200);
    assert_eq!(bearer().await.unwrap().status(), 200);
    let r = bearer().await.unwrap();
    assert_eq!(error_of(r).await, (429, "rate_limit_exceeded".into(), None));
}
