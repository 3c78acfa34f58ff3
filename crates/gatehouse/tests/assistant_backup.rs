//! Backup of assistants: export as JSON or TOML, import in one transaction with exact
//! created/updated/unchanged counts, and bad files refused with the field named.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod assist;
mod common;

use assist::{ADMIN, admin, create_assistant, gate};
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
async fn export_and_import_round_trip_as_json_and_toml() {
    let up = MockUpstream::start(Behavior::ok("x")).await;
    let g = gate(&up.base_url).await;
    create_assistant(&g, &support()).await;
    let mut second = support();
    second["slug"] = json!("sales");
    second["at_ceiling"] = json!("downgrade");
    second["downgrade_model"] = json!("cheap");
    second["daily_ceiling_micros"] = json!(5_000_000);
    create_assistant(&g, &second).await;

    let json_file = admin(&g, Method::GET, "/admin/api/assistants/export", None).await;
    assert_eq!(json_file.header("content-type"), Some("application/json"));
    assert_eq!(json_file.body["format"], "gatehouse-assistants");
    let slugs: Vec<&str> = json_file.body["assistants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["sales", "support"]);
    let toml_file = admin(
        &g,
        Method::GET,
        "/admin/api/assistants/export?format=toml",
        None,
    )
    .await;
    assert_eq!(toml_file.header("content-type"), Some("application/toml"));
    assert!(
        toml_file.text.contains("[[assistants]]\nslug = \"sales\""),
        "{}",
        toml_file.text
    );
    // Bad input: an export format that does not exist.
    let r = admin(
        &g,
        Method::GET,
        "/admin/api/assistants/export?format=xml",
        None,
    )
    .await;
    assert_eq!(r.error(), (400, "invalid_request", Some("format")));

    // Into an empty gateway, from TOML.
    let fresh = gate(&up.base_url).await;
    let import = |body: String, content_type: &'static str| {
        let client = fresh.client.clone();
        let url = fresh.url("/admin/api/assistants/import");
        async move {
            let resp = client
                .post(url)
                .header("authorization", format!("Bearer {ADMIN}"))
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let (status, counts) = import(toml_file.text.clone(), "application/toml").await;
    assert_eq!(
        (status, counts),
        (200, json!({"created": 2, "updated": 0, "unchanged": 0}))
    );
    let again = admin(&fresh, Method::GET, "/admin/api/assistants/export", None).await;
    assert_eq!(again.body["assistants"], json_file.body["assistants"]);
    // The same file again changes nothing; an edited one makes exactly one new version.
    let (_, counts) = import(json_file.text.clone(), "application/json").await;
    assert_eq!(counts, json!({"created": 0, "updated": 0, "unchanged": 2}));
    let mut edited = json_file.body.clone();
    edited["assistants"][0]["name"] = json!("Sales desk");
    let (_, counts) = import(edited.to_string(), "application/json").await;
    assert_eq!(counts, json!({"created": 0, "updated": 1, "unchanged": 1}));
    let r = admin(&fresh, Method::GET, "/admin/api/assistants/sales", None).await;
    assert_eq!(
        (r.body["version"].as_i64(), r.body["name"].as_str()),
        (Some(2), Some("Sales desk"))
    );

    // Bad input: a bad model in the second entry — nothing is imported, the field is named.
    let mut bad = json_file.body.clone();
    bad["assistants"][0]["slug"] = json!("new-one");
    bad["assistants"][1]["model"] = json!("nope");
    let (status, err) = import(bad.to_string(), "application/json").await;
    assert_eq!(
        (status, err["error"]["param"].as_str()),
        (400, Some("assistants[1].model"))
    );
    let r = admin(&fresh, Method::GET, "/admin/api/assistants/new-one", None).await;
    assert_eq!(r.status, 404);
    // Bad input: the same slug twice.
    let mut twice = json_file.body.clone();
    twice["assistants"][1]["slug"] = json!("sales");
    let (status, err) = import(twice.to_string(), "application/json").await;
    assert_eq!(
        (status, err["error"]["param"].as_str()),
        (400, Some("assistants[1].slug"))
    );
    // Bad input: TOML that does not parse; a file of another format.
    let (status, err) = import("[[assistants]\nslug = ".into(), "application/toml").await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, err) = import(
        json!({"format": "other", "assistants": []}).to_string(),
        "application/json",
    )
    .await;
    assert_eq!(
        (status, err["error"]["param"].as_str()),
        (400, Some("format"))
    );
}
