//! Assistants end to end: admin CRUD with version history and prompt limits, and an OpenAI
//! SDK-style request to `assistant/<slug>` with the prompt and parameters applied server-side;
//! on SQLite and (when configured) PostgreSQL. Export/import is in `assistant_backup.rs`.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod assist;
mod common;

use assist::{ADMIN, admin, call, create_assistant, gate, gate_on, postgres_url};
use common::{row, sse_data, start, temp_db_url};
use http::Method;
use serde_json::{Value, json};
use test_support::{Behavior, MockUpstream};

fn support() -> Value {
    json!({
        "slug": "support",
        "name": "Support",
        "system_prompt": "You are Gatehouse support.",
        "model": "m1",
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 50
    })
}

#[tokio::test]
async fn admin_api_fails_closed_and_checks_the_key() {
    let up = MockUpstream::start(Behavior::ok("x")).await;
    // No GATEHOUSE_ADMIN_KEY: the admin API is off.
    let off = start(&up.base_url, "").await;
    let r = call(&off, Method::GET, "/admin/api/assistants", None, &[]).await;
    assert_eq!(r.error(), (403, "forbidden", None));
    let on = gate(&up.base_url).await;
    // Bad input: no key, then a wrong key.
    let r = call(&on, Method::GET, "/admin/api/assistants", None, &[]).await;
    assert_eq!(r.error(), (401, "invalid_api_key", None));
    let r = call(
        &on,
        Method::POST,
        "/admin/api/assistants",
        Some(&support()),
        &[("authorization", "Bearer wrong")],
    )
    .await;
    assert_eq!(r.error(), (401, "invalid_api_key", None));
    let r = call(
        &on,
        Method::GET,
        "/admin/api/assistants",
        None,
        &[("authorization", &format!("Bearer {ADMIN}"))],
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.body["data"].as_array().unwrap().len()),
        (200, 0)
    );
}

#[tokio::test]
async fn bad_definitions_name_the_field() {
    let up = MockUpstream::start(Behavior::ok("x")).await;
    let g = gate(&up.base_url).await;
    let with = |k: &str, v: Value| {
        let mut s = support();
        s[k] = v;
        s
    };
    let cases = [
        // Bad input: uppercase and space in the slug.
        (with("slug", json!("Bad Slug")), "slug"),
        // Bad input: a reserved slug (a route word).
        (with("slug", json!("export")), "slug"),
        // Bad input: an empty name.
        (with("name", json!(" ")), "name"),
        // Bad input: a model this gateway does not serve.
        (with("model", json!("nope")), "model"),
        // Bad input: an assistant as the model.
        (with("model", json!("assistant/other")), "model"),
        // Bad input: a tier that does not exist.
        (with("model", json!("tier:9")), "model"),
        // Bad input: temperature 3.
        (with("temperature", json!(3)), "temperature"),
        // Bad input: top_p above 1.
        (with("top_p", json!(1.5)), "top_p"),
        // Bad input: max_tokens 0.
        (with("max_tokens", json!(0)), "max_tokens"),
        // Bad input: a zero ceiling.
        (
            with("conversation_ceiling_micros", json!(0)),
            "conversation_ceiling_micros",
        ),
        // Bad input: downgrade without a model to downgrade to.
        (with("at_ceiling", json!("downgrade")), "downgrade_model"),
        // Bad input: a downgrade model that does not exist.
        (with("downgrade_model", json!("nope")), "downgrade_model"),
        // Bad input: a context window too small to be useful.
        (with("context_window", json!(10)), "context_window"),
    ];
    for (spec, param) in cases {
        let r = admin(&g, Method::POST, "/admin/api/assistants", Some(&spec)).await;
        assert_eq!(r.error(), (400, "invalid_request", Some(param)), "{spec}");
    }
    // Bad input: an unknown field, and an unknown `at_ceiling` value.
    let r = admin(
        &g,
        Method::POST,
        "/admin/api/assistants",
        Some(&with("colour", json!("red"))),
    )
    .await;
    assert_eq!((r.status.as_u16(), r.error().1), (400, "invalid_request"));
    let r = admin(
        &g,
        Method::POST,
        "/admin/api/assistants",
        Some(&with("at_ceiling", json!("panic"))),
    )
    .await;
    assert_eq!(r.error(), (400, "invalid_request", Some("at_ceiling")));
    // Bad input: `force` that is not a boolean.
    let r = admin(
        &g,
        Method::POST,
        "/admin/api/assistants?force=maybe",
        Some(&support()),
    )
    .await;
    assert_eq!((r.status.as_u16(), r.error().1), (400, "invalid_request"));
    let r = admin(&g, Method::GET, "/admin/api/assistants", None).await;
    assert_eq!(r.body["data"], json!([]));
}

async fn crud_and_versions(db_url: &str) {
    let up = MockUpstream::start(Behavior::ok("x")).await;
    let g = gate_on(db_url, &up.base_url).await;
    let r = admin(&g, Method::POST, "/admin/api/assistants", Some(&support())).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let v1 = r.body["version_id"].as_i64().unwrap();
    assert_eq!(
        (r.body["version"].as_i64(), r.body["enabled"].as_bool()),
        (Some(1), Some(true))
    );
    assert_eq!(r.body["at_ceiling"], "refuse");
    assert_eq!(r.body["system_prompt"], "You are Gatehouse support.");
    // Bad input: the same slug again.
    let r = admin(&g, Method::POST, "/admin/api/assistants", Some(&support())).await;
    assert_eq!(r.error(), (409, "conflict", None));

    let mut edited = support();
    edited["system_prompt"] = json!("You are terse.");
    edited.as_object_mut().unwrap().remove("slug");
    let r = admin(
        &g,
        Method::PUT,
        "/admin/api/assistants/support",
        Some(&edited),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v2 = r.body["version_id"].as_i64().unwrap();
    assert_eq!(
        (r.body["version"].as_i64(), r.body["slug"].as_str()),
        (Some(2), Some("support"))
    );
    assert_ne!(v1, v2);
    // The same definition again is not a new version.
    let r = admin(
        &g,
        Method::PUT,
        "/admin/api/assistants/support",
        Some(&edited),
    )
    .await;
    assert_eq!(
        (r.body["version"].as_i64(), r.body["version_id"].as_i64()),
        (Some(2), Some(v2))
    );
    // Bad input: renaming through the body; editing an assistant that does not exist.
    let mut renamed = edited.clone();
    renamed["slug"] = json!("other");
    let r = admin(
        &g,
        Method::PUT,
        "/admin/api/assistants/support",
        Some(&renamed),
    )
    .await;
    assert_eq!(r.error(), (400, "invalid_request", Some("slug")));
    let r = admin(
        &g,
        Method::PUT,
        "/admin/api/assistants/ghost",
        Some(&edited),
    )
    .await;
    assert_eq!(r.error(), (404, "not_found", None));

    // Over the 2,000-token limit: refused, then saved with force.
    let mut long = edited.clone();
    long["system_prompt"] = json!(vec!["word"; 2_100].join(" "));
    let r = admin(
        &g,
        Method::PUT,
        "/admin/api/assistants/support",
        Some(&long),
    )
    .await;
    assert_eq!(r.error(), (400, "prompt_too_long", Some("system_prompt")));
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is 2100 tokens (o200k_base encoding of `m1`); the limit is 2000"),
        "{}",
        r.text
    );
    let r = admin(
        &g,
        Method::PUT,
        "/admin/api/assistants/support?force=true",
        Some(&long),
    )
    .await;
    assert_eq!(r.body["version"].as_i64(), Some(3));

    let r = admin(
        &g,
        Method::GET,
        "/admin/api/assistants/support/versions",
        None,
    )
    .await;
    let prompts: Vec<(i64, String)> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap(),
                v["spec"]["system_prompt"]
                    .as_str()
                    .unwrap()
                    .chars()
                    .take(14)
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        prompts,
        [
            (1, "You are Gatehou".chars().take(14).collect()),
            (2, "You are terse.".into()),
            (3, "word word word".into())
        ]
    );
    let r = admin(
        &g,
        Method::GET,
        "/admin/api/assistants/support/versions/1",
        None,
    )
    .await;
    assert_eq!(
        (
            r.body["version_id"].as_i64(),
            r.body["spec"]["system_prompt"].as_str()
        ),
        (Some(v1), Some("You are Gatehouse support."))
    );
    // Bad input: a version that does not exist, and one that is not a number.
    for bad in ["9", "abc"] {
        let r = admin(
            &g,
            Method::GET,
            &format!("/admin/api/assistants/support/versions/{bad}"),
            None,
        )
        .await;
        assert_eq!(r.error(), (404, "not_found", None));
    }

    let r = admin(&g, Method::DELETE, "/admin/api/assistants/support", None).await;
    assert_eq!(r.status, 204);
    let r = admin(&g, Method::GET, "/admin/api/assistants/support", None).await;
    assert_eq!(r.error(), (404, "not_found", None));
    let r = admin(&g, Method::DELETE, "/admin/api/assistants/support", None).await;
    assert_eq!(r.error(), (404, "not_found", None));
    // Created again: the history continues.
    let r = admin(&g, Method::POST, "/admin/api/assistants", Some(&support())).await;
    assert_eq!(
        (r.status.as_u16(), r.body["version"].as_i64()),
        (201, Some(4))
    );
}

#[tokio::test]
async fn sqlite_crud_and_versions() {
    crud_and_versions(&temp_db_url()).await;
}

#[tokio::test]
async fn postgres_crud_and_versions() {
    if let Some(url) = postgres_url().await {
        crud_and_versions(&url).await;
    }
}

async fn openai_style_request_gets_the_assistant(db_url: &str) {
    let up = MockUpstream::start(Behavior::ok("Sure thing").with_usage(10, 5, 0)).await;
    let mut g = gate_on(db_url, &up.base_url).await;
    let created = create_assistant(&g, &support()).await;
    let v1 = created["version_id"].as_i64().unwrap();
    // What the OpenAI SDK sends: its own key, a client system message and parameters.
    let body = json!({
        "model": "assistant/support",
        "messages": [
            {"role": "system", "content": "client system"},
            {"role": "user", "content": "hi"}
        ],
        "temperature": 1.5,
        "max_tokens": 500
    });
    let sdk = [
        ("authorization", "Bearer sk-client"),
        ("x-request-id", "asst-1"),
    ];
    let r = call(&g, Method::POST, "/v1/chat/completions", Some(&body), &sdk).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["object"], "chat.completion");
    assert_eq!(r.body["choices"][0]["message"]["content"], "Sure thing");
    assert_eq!(r.header("x-gatehouse-conversation-cost-micros"), None);
    let sent = &up.requests()[0].body;
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "system", "content": "You are Gatehouse support."},
            {"role": "system", "content": "client system"},
            {"role": "user", "content": "hi"}
        ])
    );
    assert_eq!(
        (
            sent["temperature"].as_f64(),
            sent["top_p"].as_f64(),
            sent["max_tokens"].as_u64()
        ),
        (Some(0.2), Some(0.9), Some(50))
    );
    // A client asking for fewer tokens than the cap keeps its number.
    let mut fewer = body.clone();
    fewer["max_tokens"] = json!(20);
    call(&g, Method::POST, "/v1/chat/completions", Some(&fewer), &[]).await;
    assert_eq!(up.requests()[1].body["max_tokens"], 20);

    // An edit applies to the next request at once, and the ledger names the new version.
    let mut edited = support();
    edited["system_prompt"] = json!("Version two.");
    let v2 = admin(
        &g,
        Method::PUT,
        "/admin/api/assistants/support",
        Some(&edited),
    )
    .await
    .body["version_id"]
        .as_i64()
        .unwrap();
    let mut stream = body.clone();
    stream["stream"] = json!(true);
    let r = call(
        &g,
        Method::POST,
        "/v1/chat/completions",
        Some(&stream),
        &[("x-request-id", "asst-2")],
    )
    .await;
    assert_eq!(r.status, 200);
    let data = sse_data(&r.text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert!(
        !r.text.contains(": gatehouse"),
        "no conversation, no trailer"
    );
    assert_eq!(
        up.requests()[2].body["messages"][0]["content"],
        "Version two."
    );

    // Bad input: an assistant that does not exist; then a disabled one.
    let mut ghost = body.clone();
    ghost["model"] = json!("assistant/ghost");
    let r = call(&g, Method::POST, "/v1/chat/completions", Some(&ghost), &[]).await;
    assert_eq!(r.error(), (404, "model_not_found", Some("model")));
    edited["enabled"] = json!(false);
    admin(
        &g,
        Method::PUT,
        "/admin/api/assistants/support",
        Some(&edited),
    )
    .await;
    let r = call(&g, Method::POST, "/v1/chat/completions", Some(&body), &[]).await;
    assert_eq!(r.error(), (403, "forbidden", None));
    assert_eq!(up.requests().len(), 3);

    let store = g.shutdown_and_store().await;
    let first = row(&store, "asst-1").await;
    assert_eq!(
        (
            first.assistant_version_id,
            first.variant,
            first.conversation_id
        ),
        (Some(v1), None, None)
    );
    assert_eq!((first.model.as_str(), first.cost_micros), ("m1", 75)); // 10 × $2.50 + 5 × $10 per Mtok
    let second = row(&store, "asst-2").await;
    assert_eq!(second.assistant_version_id, Some(v2));
}

#[tokio::test]
async fn sqlite_openai_style_request_gets_the_assistant() {
    openai_style_request_gets_the_assistant(&temp_db_url()).await;
}

#[tokio::test]
async fn postgres_openai_style_request_gets_the_assistant() {
    if let Some(url) = postgres_url().await {
        openai_style_request_gets_the_assistant(&url).await;
    }
}
