//! Bad experiment definitions and bad usage-report queries are refused with the field named.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod assist;
mod common;

use assist::{admin, call, create_assistant, gate};
use http::Method;
use serde_json::{Value, json};
use test_support::{Behavior, MockUpstream};

fn tone() -> Value {
    json!({
        "name": "tone",
        "variants": [
            {"name": "A", "system_prompt": "Prompt A."},
            {"name": "B", "system_prompt": "Prompt B.", "model": "cheap", "temperature": 0.9}
        ]
    })
}

#[tokio::test]
async fn bad_experiments_name_the_field() {
    let up = MockUpstream::start(Behavior::ok("x")).await;
    let g = gate(&up.base_url).await;
    create_assistant(&g, &json!({"slug": "exp", "name": "Exp", "model": "m1"})).await;
    let with = |path: &str, v: Value| {
        let mut e = tone();
        let mut target = &mut e;
        let parts: Vec<&str> = path.split('.').collect();
        for p in &parts[..parts.len() - 1] {
            target = match p.parse::<usize>() {
                Ok(i) => &mut target[i],
                Err(_) => &mut target[*p],
            };
        }
        target[parts[parts.len() - 1]] = v;
        e
    };
    let cases = [
        // Bad input: a single variant.
        (
            json!({"name": "x", "variants": [{"name": "A"}]}),
            "variants",
        ),
        // Bad input: two variants with one name.
        (with("variants.1.name", json!("A")), "variants[1].name"),
        // Bad input: a variant name with a space.
        (with("variants.0.name", json!("a b")), "variants[0].name"),
        // Bad input: no weight anywhere.
        (
            json!({"name": "x", "variants": [{"name": "A", "weight": 0}, {"name": "B", "weight": 0}]}),
            "variants",
        ),
        // Bad input: a model that is not served.
        (with("variants.1.model", json!("nope")), "variants[1].model"),
        // Bad input: temperature 5.
        (
            with("variants.0.temperature", json!(5)),
            "variants[0].temperature",
        ),
        // Bad input: a date that is not a date.
        (with("starts_at", json!("tomorrow")), "starts_at"),
        // Bad input: an end before the start.
        (
            json!({"name": "x", "starts_at": "2099-02-01", "ends_at": "2099-01-01", "variants": [{"name": "A"}, {"name": "B"}]}),
            "ends_at",
        ),
        // Bad input: an end in the past.
        (with("ends_at", json!("2001-01-01T00:00:00Z")), "ends_at"),
        // Bad input: an empty name.
        (with("name", json!("")), "name"),
    ];
    for (body, param) in cases {
        let r = admin(
            &g,
            Method::POST,
            "/admin/api/assistants/exp/experiments",
            Some(&body),
        )
        .await;
        assert_eq!(r.error(), (400, "invalid_request", Some(param)), "{body}");
    }
    // Bad input: a variant prompt over the token limit (accepted with force).
    let long = with(
        "variants.0.system_prompt",
        json!(vec!["tea"; 2_001].join(" ")),
    );
    let r = admin(
        &g,
        Method::POST,
        "/admin/api/assistants/exp/experiments",
        Some(&long),
    )
    .await;
    assert_eq!(
        r.error(),
        (400, "prompt_too_long", Some("variants[0].system_prompt"))
    );
    // Bad input: an assistant that does not exist; an experiment id that is not a number.
    let r = admin(
        &g,
        Method::POST,
        "/admin/api/assistants/ghost/experiments",
        Some(&tone()),
    )
    .await;
    assert_eq!(r.error(), (404, "not_found", None));
    let r = admin(&g, Method::GET, "/admin/api/experiments/x/results", None).await;
    assert_eq!(r.error(), (404, "not_found", None));
    // A scheduled experiment, then an overlapping one.
    let r = admin(
        &g,
        Method::POST,
        "/admin/api/assistants/exp/experiments?force=true",
        Some(&with("starts_at", json!("2099-01-01"))),
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.body["status"].as_str()),
        (201, Some("scheduled"))
    );
    let r = admin(
        &g,
        Method::POST,
        "/admin/api/assistants/exp/experiments",
        Some(&tone()),
    )
    .await;
    assert_eq!(r.error(), (409, "conflict", None));
}

#[tokio::test]
async fn usage_report_rejects_bad_ranges() {
    let up = MockUpstream::start(Behavior::ok("x")).await;
    let g = gate(&up.base_url).await;
    for (query, param) in [
        // Bad input: an unknown dimension.
        ("group_by=colour", "group_by"),
        // Bad input: a start that is not a date.
        ("from=yesterday", "from"),
        // Bad input: an end before the start.
        ("from=2025-02-01&to=2025-01-01", "to"),
    ] {
        let r = admin(&g, Method::GET, &format!("/admin/api/usage?{query}"), None).await;
        assert_eq!(r.error(), (400, "invalid_request", Some(param)), "{query}");
    }
    let r = admin(
        &g,
        Method::GET,
        "/admin/api/usage?group_by=none&from=2025-01-01&to=2025-01-31",
        None,
    )
    .await;
    assert_eq!(
        r.body,
        json!({"from": "2025-01-01T00:00:00Z", "to": "2025-02-01T00:00:00Z", "group_by": [], "data": []})
    );
    // Bad input: no admin key.
    let r = call(&g, Method::GET, "/admin/api/usage", None, &[]).await;
    assert_eq!(r.error(), (401, "invalid_api_key", None));
}
