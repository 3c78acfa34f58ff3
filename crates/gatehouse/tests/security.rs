//! Secure defaults: refusing an exposed listener without an admin key, security headers on every
//! route, CORS only when configured, credentials redacted from traces.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

#[path = "common/access.rs"]
mod access;
mod common;

use std::collections::HashMap;

use access::{ADMIN, create_key, start};
use common::{config_toml, temp_db_url};
use gatehouse::{Config, StartupError};
use serde_json::{Value, json};
use test_support::{Behavior, MockUpstream};

fn config(upstream: &str, extra: &str, admin: bool) -> Config {
    let path = std::env::temp_dir().join(format!("gatehouse-sec-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&path, config_toml(upstream, &temp_db_url(), extra)).unwrap();
    let mut env: HashMap<String, String> =
        [("TEST_UPSTREAM_KEY".to_owned(), "k".to_owned())].into();
    if admin {
        env.insert("GATEHOUSE_ADMIN_KEY".into(), ADMIN.into());
    }
    Config::load_with_env(Some(&path), &env).unwrap()
}

#[tokio::test]
async fn a_non_loopback_listener_without_an_admin_key_is_refused() {
    let up = MockUpstream::start(Behavior::ok("x")).await;
    // Bad input: every interface, no admin key.
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let Err(err) = gatehouse::start(listener, config(&up.base_url, "", false)).await else {
        panic!("started without an admin key on a public address");
    };
    assert!(matches!(err, StartupError::Insecure(_)));
    let msg = err.to_string();
    assert!(msg.starts_with("refusing to listen on 0.0.0.0:"), "{msg}");
    assert!(msg.contains("set GATEHOUSE_ADMIN_KEY"), "{msg}");
    // With the admin key it starts (and is not in open mode: keys are required).
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let running = gatehouse::start(listener, config(&up.base_url, "", true))
        .await
        .unwrap();
    assert!(!running.state.access.open_mode());
    let port = running.addr.port();
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
        .json(&common::chat_body("m1", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    running.shutdown().await;
}

#[test]
fn the_binary_says_what_to_set() {
    let dir = std::env::temp_dir().join(format!("gatehouse-sec-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["serve", "--listen", "0.0.0.0:0"])
        .current_dir(&dir)
        .env_remove("GATEHOUSE_ADMIN_KEY")
        .env_remove("GATEHOUSE_CONFIG")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:") && err.contains("GATEHOUSE_ADMIN_KEY"),
        "{err}"
    );
}

const UI_CSP_START: &str = "default-src 'self'";
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

fn check(resp: &reqwest::Response, what: &str, ui: bool, hsts: bool) {
    let h = resp.headers();
    let get = |n: &str| h.get(n).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(
        get("x-content-type-options").as_deref(),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(get("x-frame-options").as_deref(), Some("DENY"), "{what}");
    assert_eq!(
        get("referrer-policy").as_deref(),
        Some("no-referrer"),
        "{what}"
    );
    assert!(
        get("permissions-policy").unwrap().contains("camera=()"),
        "{what}"
    );
    let csp = get("content-security-policy").unwrap();
    if ui {
        assert!(
            csp.starts_with(UI_CSP_START) && csp.contains("frame-ancestors 'none'"),
            "{what}: {csp}"
        );
    } else {
        assert_eq!(csp, API_CSP, "{what}");
    }
    assert_eq!(
        get("strict-transport-security"),
        hsts.then(|| "max-age=600; includeSubDomains".to_owned()),
        "{what}"
    );
    assert!(get("x-request-id").is_some(), "{what}");
}

#[tokio::test]
async fn security_headers_are_on_every_route() {
    let up = MockUpstream::start(Behavior::ok("x")).await;
    let gate = access::start_env(
        &up.base_url,
        &temp_db_url(),
        "[security]\nhsts = true\nhsts_max_age_secs = 600\n",
        &[
            ("GATEHOUSE_ADMIN_KEY", ADMIN),
            ("GATEHOUSE_SERVER__MAX_BODY_BYTES", "2048"),
        ],
    )
    .await;
    let (key, _) = create_key(&gate, json!({"name": "k"})).await;
    let doc: Value = gate
        .client
        .get(gate.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut seen = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path
                .replace("{id}", "1")
                .replace("{slug}", "x")
                .replace("{version}", "1")
                .replace("{message_id}", "1")
                .replace("{path}", "icon.svg");
            let url = gate.url(&concrete);
            let req = match method.as_str() {
                "get" => gate.client.get(url),
                "post" => gate.client.post(url).json(&common::chat_body("m1", "x")),
                "put" => gate.client.put(url).json(&common::chat_body("m1", "x")),
                "delete" => gate.client.delete(url),
                "patch" => gate.client.patch(url).json(&json!({"title": "x"})),
                other => panic!("unexpected method {other}"),
            };
            let token = if path.starts_with("/admin") {
                ADMIN
            } else {
                key.as_str()
            };
            let resp = req.bearer_auth(token).send().await.unwrap();
            // The web UI's pages and files get the UI policy; everything else the API one.
            let ui = matches!(path.as_str(), "/" | "/admin" | "/assets/{path}");
            check(
                &resp,
                &format!("{method} {path} ({})", resp.status()),
                ui,
                true,
            );
            seen += 1;
        }
    }
    // Every operation of the document (route and method): 41 before the web UI, whose pages,
    // files, chat API, console session, transcriptions and conversation edits added 23.
    assert_eq!(seen, 64);
    // Errors, unknown routes, wrong methods, oversized bodies, unauthenticated calls, UI pages.
    let c = &gate.client;
    let cases = [
        (c.get(gate.url("/nope")).bearer_auth(&key), "404", false),
        (c.get(gate.url("/nope")), "401", false),
        (
            c.delete(gate.url("/v1/models")).bearer_auth(&key),
            "405",
            false,
        ),
        (
            c.post(gate.url("/v1/chat/completions"))
                .bearer_auth(&key)
                .body("x".repeat(4096)),
            "413",
            false,
        ),
        (c.get(gate.url("/admin/api/keys")), "admin 401", false),
        (c.get(gate.url("/")), "ui root", true),
        (c.get(gate.url("/admin")), "ui admin", true),
    ];
    for (req, what, ui) in cases {
        let resp = req.send().await.unwrap();
        check(&resp, what, ui, true);
    }
}

#[tokio::test]
async fn hsts_and_cors_only_when_configured() {
    let up = MockUpstream::start(Behavior::ok("x")).await;
    let plain = start(&up.base_url, &temp_db_url(), "").await;
    let r = plain.client.get(plain.url("/health")).send().await.unwrap();
    check(&r, "health", false, false);
    let pre = plain
        .client
        .request(reqwest::Method::OPTIONS, plain.url("/v1/chat/completions"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(pre.headers().get("access-control-allow-origin").is_none());

    let cors = start(
        &up.base_url,
        &temp_db_url(),
        "[security]\ncors_allowed_origins = [\"https://app.example.com\"]\n",
    )
    .await;
    let _ = create_key(&cors, json!({"name": "k"})).await;
    let preflight = |origin: &'static str| {
        cors.client
            .request(reqwest::Method::OPTIONS, cors.url("/v1/chat/completions"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    // Preflights are answered before authentication, with the security headers.
    let ok = preflight("https://app.example.com").await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    check(&ok, "preflight", false, false);
    // Bad input: an origin not on the list.
    let other = preflight("https://evil.example.com").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    // Bad config: credentials with a wildcard origin.
    let path = std::env::temp_dir().join(format!("gatehouse-sec-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(
        &path,
        "[security]\ncors_allowed_origins = [\"*\"]\ncors_allow_credentials = true\n",
    )
    .unwrap();
    let err = Config::load_with_env(Some(&path), &HashMap::new())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "security.cors_allow_credentials: cannot be combined with the \"*\" origin; list the origins"
    );
}
