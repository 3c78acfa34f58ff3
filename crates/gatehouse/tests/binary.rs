//! The real `gatehouse` binary: zero-config serve on the mock, SIGTERM drains and flushes,
//! `check-config` masks secrets and names bad fields, `version`.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
}

#[tokio::test]
async fn serve_zero_config_then_sigterm_flushes_the_ledger() {
    let dir = std::env::temp_dir().join(format!("gatehouse-bin-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = bin()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(&dir)
        .env_remove("OPENAI_API_KEY")
        .env_remove("DATABASE_URL")
        .env_remove("GATEHOUSE_CONFIG")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("gatehouse exited before listening")
            .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if v["message"] == "gatehouse listening" {
            break v["addr"].as_str().unwrap().to_owned();
        }
    };
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("http://{addr}/v1/chat/completions"))
        .header("x-request-id", "bin-1")
        .json(&json!({"model": "mock-1", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "This is the Gatehouse mock provider. You said: hi"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    // The default database lives under ./gatehouse-data/.
    let db = dir.join("gatehouse-data/gatehouse.db");
    assert!(db.exists());
    let store = store::Store::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let rows = store.usage_by_request_id("bin-1").await.unwrap();
    assert_eq!(rows.len(), 1);
    // The mock counts 4 per message + ⌈chars/4⌉ + 3 = 8 prompt tokens and one token per word of
    // its 9-word reply; at $1 and $2 per Mtok that is 8 + 18 = 26 micro-USD.
    assert_eq!(
        (
            rows[0].prompt_tokens,
            rows[0].completion_tokens,
            rows[0].cost_micros
        ),
        (8, 9, 26)
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), store.close()).await;
}

#[test]
fn check_config_masks_secrets_and_names_bad_fields() {
    let out = bin()
        .arg("check-config")
        .env("OPENAI_API_KEY", "sk-very-secret")
        .env("DATABASE_URL", "postgres://u:dbpass@localhost/db")
        .env_remove("GATEHOUSE_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(
            "openai (openai) https://api.openai.com/v1 key from $OPENAI_API_KEY (set, ***)"
        ),
        "{text}"
    );
    assert!(text.contains("postgres://u:***@localhost/db"), "{text}");
    assert!(!text.contains("sk-very-secret") && !text.contains("dbpass"));

    // Bad input: a typo in a field name.
    let path = std::env::temp_dir().join(format!("gatehouse-bad-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&path, "[server]\nlistn = \"x\"\n").unwrap();
    let out = bin()
        .arg("check-config")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("listn") && err.contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn version_prints_the_version() {
    let out = bin().arg("version").output().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("gatehouse {}\n", env!("CARGO_PKG_VERSION"))
    );
}
