//! `gatehouse lint-prompts`, the real binary against the configured database: exit 0 when every
//! prompt is within the limit, 1 with a report naming each one over it, 2 when it cannot check.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod assist;
mod common;

use std::process::{Command, Output};

use assist::{MODELS, admin, create_assistant, gate_on};
use common::{config_toml, temp_db_url};
use http::Method;
use serde_json::json;
use test_support::{Behavior, MockUpstream};

fn lint(config: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("lint-prompts")
        .arg("--config")
        .arg(config)
        .args(args)
        .env("TEST_UPSTREAM_KEY", "k")
        .env_remove("DATABASE_URL")
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    (
        status.code().unwrap(),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

#[tokio::test]
async fn exit_codes_and_report() {
    let up = MockUpstream::start(Behavior::ok("x")).await;
    let db = temp_db_url();
    let mut g = gate_on(&db, &up.base_url).await;
    let long = vec!["word"; 2_100].join(" ");
    create_assistant(
        &g,
        &json!({"slug": "short", "name": "S", "model": "m1", "system_prompt": "Be kind."}),
    )
    .await;
    create_assistant(
        &g,
        &json!({"slug": "long", "name": "L", "model": "m1", "system_prompt": long}),
    )
    .await;
    // gpt-3.5-turbo counts with cl100k_base; the variant prompt is over the limit too.
    create_assistant(&g, &json!({"slug": "legacy", "name": "G", "model": "up/gpt-3.5-turbo", "system_prompt": "Be kind."})).await;
    let r = admin(
        &g,
        Method::POST,
        "/admin/api/assistants/short/experiments?force=true",
        Some(&json!({"name": "e", "variants": [{"name": "A"}, {"name": "B", "system_prompt": long}]})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    g.shutdown_and_store().await.close().await;

    let dir = std::env::temp_dir().join(format!("gatehouse-lint-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gatehouse.toml");
    std::fs::write(&config, config_toml(&up.base_url, &db, MODELS)).unwrap();

    let kind = gatehouse::usage::count_tokens("Be kind.");
    let kind_cl100k = tiktoken_rs::cl100k_base_singleton()
        .encode_ordinary("Be kind.")
        .len();
    let (code, out, _) = lint(&config, &[]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out,
        format!(
            "ok   assistant `legacy` v1: {kind_cl100k} tokens (cl100k_base for `up/gpt-3.5-turbo`)\n\
             FAIL assistant `long` v1: 2100 tokens (o200k_base for `m1`)\n\
             ok   assistant `short` v1: {kind} tokens (o200k_base for `m1`)\n\
             FAIL assistant `short` experiment 1 variant `B`: 2100 tokens (o200k_base for `m1`)\n\
             2 of 4 prompt(s) over the limit of 2000 tokens\n"
        )
    );
    let (code, out, _) = lint(&config, &["--limit", "2100"]);
    assert_eq!(
        (code, out.lines().last()),
        (
            0,
            Some("4 prompt(s) checked; all within the limit of 2100 tokens")
        )
    );
    let (code, out, _) = lint(&config, &["--limit", "2"]);
    assert_eq!(
        (code, out.lines().last()),
        (1, Some("4 of 4 prompt(s) over the limit of 2 tokens"))
    );
    // The configured limit is the default.
    let raised = dir.join("raised.toml");
    std::fs::write(
        &raised,
        format!(
            "{}\n[assistants]\nprompt_token_limit = 5000\n",
            config_toml(&up.base_url, &db, MODELS)
        ),
    )
    .unwrap();
    assert_eq!(lint(&raised, &[]).0, 0);

    // Bad input: a config file that does not exist; a database that cannot be opened; a limit
    // that is not a number.
    let (code, _, err) = lint(&dir.join("missing.toml"), &[]);
    assert_eq!(code, 2, "{err}");
    let dead = dir.join("dead.toml");
    let under_a_file = format!("sqlite://{}/sub/gatehouse.db", config.display());
    std::fs::write(&dead, config_toml(&up.base_url, &under_a_file, MODELS)).unwrap();
    let (code, out, err) = lint(&dead, &[]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(
        err.starts_with("error: cannot create the directory for SQLite database"),
        "{err}"
    );
    let (code, _, err) = lint(&config, &["--limit", "many"]);
    assert_eq!(code, 2, "{err}");
}
