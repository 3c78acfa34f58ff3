//! API keys end to end: the admin API and the CLI, open mode, revocation across instances,
//! rotation, `GET /v1/usage`, the audit log.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

#[path = "common/access.rs"]
mod access;
mod common;

use std::process::Command;
use std::time::Duration;

use access::{ADMIN, admin_get, admin_post, chat, create_key, eventually, start};
use common::{chat_body, temp_db_url};
use serde_json::{Value, json};
use test_support::{Behavior, MockUpstream};

#[tokio::test]
async fn open_mode_ends_with_the_first_key_and_keys_work_through_the_admin_api() {
    let up = MockUpstream::start(Behavior::ok("x").with_usage(10, 1, 0)).await;
    let db = temp_db_url();
    let mut gate = start(&up.base_url, &db, "").await;
    // No key exists and the listener is loopback: open mode.
    assert_eq!(
        gate.post("/v1/chat/completions", &chat_body("m1", "a"))
            .await
            .status(),
        200
    );
    let (key, info) = create_key(
        &gate,
        json!({"name": "ci", "owner": "ana", "team": "web", "allowed_models": ["m1"], "rpm": 10,
               "metadata": {"env": "test"}, "priority": "high"}),
    )
    .await;
    assert_eq!(key.len(), 45);
    assert!(key.starts_with(info["prefix"].as_str().unwrap()));
    assert_eq!(
        (
            &info["name"],
            &info["owner"],
            &info["team"],
            &info["rpm"],
            &info["priority"],
            &info["metadata"]["env"]
        ),
        (
            &json!("ci"),
            &json!("ana"),
            &json!("web"),
            &json!(10),
            &json!("high"),
            &json!("test")
        )
    );
    // From now on a key is required, on this instance at once.
    let r = gate
        .post("/v1/chat/completions", &chat_body("m1", "b"))
        .await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert_eq!(
        body["error"]["message"],
        "Missing API key: send it as `Authorization: Bearer <key>`"
    );
    // Unknown paths need a key too: a new route cannot skip authentication.
    let r = gate.client.get(gate.url("/v1/nope")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = gate
        .client
        .get(gate.url("/v1/nope"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = chat(&gate, &key).await;
    assert_eq!(r.status(), 200);
    // Also as x-api-key.
    let r = gate
        .client
        .post(gate.url("/v1/chat/completions"))
        .header("x-api-key", &key)
        .json(&access::small_chat())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Bad input: a model the key may not use.
    let r = access::chat_with(&gate, &key, &chat_body("mock-1", "x")).await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (
            body["error"]["code"].as_str(),
            body["error"]["param"].as_str()
        ),
        (Some("model_not_allowed"), Some("model"))
    );
    // Bad input: a wrong key, a truncated key, another scheme.
    for bad in [
        format!("{}x", &key[..44]),
        key[..20].to_owned(),
        "sk-abc".to_owned(),
    ] {
        let r = chat(&gate, &bad).await;
        assert_eq!(r.status(), 401, "{bad}");
    }
    // The secret is never listed or shown again.
    let id = info["id"].as_i64().unwrap();
    let list = admin_get(&gate, "/admin/api/keys").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains(&key[13..]));
    let shown = admin_get(&gate, &format!("/admin/api/keys/{id}")).await;
    assert!(!shown.to_string().contains(&key[13..]));
    assert_eq!(shown["limits"]["requests_per_minute"], 10);
    // Bad input to the admin API: no name; an unknown field; a wrong admin key.
    let r = admin_post(&gate, "/admin/api/keys", json!({"name": ""})).await;
    assert_eq!(r.status(), 400);
    let r = admin_post(&gate, "/admin/api/keys", json!({"name": "x", "rpn": 3})).await;
    assert_eq!(r.status(), 400);
    let r = gate
        .client
        .get(gate.url("/admin/api/keys"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Rotation with a grace period: both secrets work, then only the new one after revoking.
    let r = admin_post(
        &gate,
        &format!("/admin/api/keys/{id}/rotate"),
        json!({"grace_secs": 60}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let rotated: Value = r.json().await.unwrap();
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    assert_eq!(rotated["id"], id);
    assert_eq!(chat(&gate, &key).await.status(), 200);
    assert_eq!(chat(&gate, &new_key).await.status(), 200);
    let r = admin_post(&gate, &format!("/admin/api/keys/{id}/revoke"), json!({})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(chat(&gate, &key).await.status(), 401);
    assert_eq!(chat(&gate, &new_key).await.status(), 401);
    // Revoking the last key does not reopen the gateway.
    assert_eq!(
        gate.post("/v1/chat/completions", &chat_body("m1", "c"))
            .await
            .status(),
        401
    );
    let r = admin_post(&gate, "/admin/api/keys/999/revoke", json!({})).await;
    assert_eq!(r.status(), 404);

    // The audit log: admin actions (written at once) and failures (queued, sampled for limits).
    let found = eventually(Duration::from_secs(5), || async {
        let v = admin_get(&gate, "/admin/api/audit?action=auth.failure").await;
        v["data"].as_array().unwrap().len() >= 5
    })
    .await;
    assert!(found.is_some());
    let all = admin_get(&gate, &format!("/admin/api/audit?target=key:{id}")).await;
    let actions: Vec<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["key.revoke", "key.rotate", "key.create"]);
    let created = &all["data"][2];
    assert_eq!(
        (created["actor"].as_str(), created["outcome"].as_str()),
        (Some("admin"), Some("ok"))
    );
    assert_eq!(created["detail"]["prefix"], info["prefix"]);
    let failures = admin_get(&gate, "/admin/api/audit?action=auth.failure&limit=100").await;
    let reasons: Vec<&str> = failures["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"]["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.contains(&"mismatch")
            && reasons.contains(&"malformed")
            && reasons.contains(&"missing"),
        "{reasons:?}"
    );
    // No audit entry holds a secret.
    let everything = admin_get(&gate, "/admin/api/audit?limit=1000")
        .await
        .to_string();
    assert!(
        !everything.contains(&key[13..])
            && !everything.contains(&new_key[13..])
            && !everything.contains(ADMIN)
    );
    let admin_fail = admin_get(&gate, "/admin/api/audit?action=admin.auth_failure").await;
    assert_eq!(admin_fail["data"][0]["target"], "/admin/api/keys");

    // The usage ledger carries the key id.
    let store = gate.shutdown_and_store().await;
    assert_eq!(store.cost_since(Some(id), 0).await.unwrap(), 4 * 35);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_by_another_instance_within_a_second() {
    let up = MockUpstream::start(Behavior::ok("x")).await;
    let db = temp_db_url();
    let a = start(&up.base_url, &db, "").await;
    let b = start(&up.base_url, &db, "").await;
    let (key, info) = create_key(&a, json!({"name": "shared"})).await;
    let seen = eventually(Duration::from_secs(2), || async {
        chat(&b, &key).await.status() == 200
    })
    .await;
    assert!(seen.is_some(), "instance B never accepted the new key");
    let r = admin_post(
        &a,
        &format!("/admin/api/keys/{}/revoke", info["id"]),
        json!({}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let took = eventually(Duration::from_secs(1), || async {
        chat(&b, &key).await.status() == 401
    })
    .await;
    assert!(
        took.is_some(),
        "instance B still accepted a revoked key after 1 s"
    );
}

#[tokio::test]
async fn usage_reports_the_callers_own_limits_budgets_and_spend() {
    let up = MockUpstream::start(Behavior::ok("x").with_usage(10, 1, 0)).await;
    let gate = start(&up.base_url, &temp_db_url(), "").await;
    let (key, info) = create_key(
        &gate,
        json!({"name": "me", "rpm": 10, "tpm": 100000, "max_concurrent": 3,
               "daily_budget_micros": 1000000, "monthly_budget_micros": 5000000}),
    )
    .await;
    let (other, _) = create_key(&gate, json!({"name": "them"})).await;
    for _ in 0..2 {
        assert_eq!(chat(&gate, &key).await.status(), 200);
    }
    assert_eq!(chat(&gate, &other).await.status(), 200);
    let get = |k: String| {
        let (c, u) = (gate.client.clone(), gate.url("/v1/usage"));
        async move {
            c.get(u)
                .bearer_auth(k)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    // Each call costs 10 × 2.5 + 1 × 10 = 35 micro-USD; the ledger is flushed every 20 ms.
    let flushed = eventually(Duration::from_secs(3), || async {
        get(key.clone()).await["spend"]["today_micros"] == 70
    })
    .await;
    assert!(flushed.is_some());
    let u = get(key.clone()).await;
    assert_eq!(u["object"], "usage");
    assert_eq!(u["key"]["id"], info["id"]);
    assert_eq!(
        u["limits"],
        json!({"requests_per_minute": 10, "tokens_per_minute": 100000, "max_concurrent": 3})
    );
    assert_eq!(u["rate_limits"]["requests"]["limit"], 10);
    assert_eq!(u["rate_limits"]["requests"]["remaining"], 8);
    let daily = &u["budgets"]["daily"];
    assert_eq!(
        (
            &daily["limit_micros"],
            &daily["spent_micros"],
            &daily["reserved_micros"],
            &daily["remaining_micros"]
        ),
        (&json!(1_000_000), &json!(70), &json!(0), &json!(999_930))
    );
    assert_eq!(u["budgets"]["monthly"]["remaining_micros"], 4_999_930);
    assert_eq!(u["spend"]["this_month_micros"], 70);
    assert_eq!(u["key"]["prefix"], info["prefix"]);
    // Another key sees only itself.
    let them = get(other.clone()).await;
    assert_eq!(them["spend"]["today_micros"], 35);
    assert_eq!(them["budgets"]["daily"], Value::Null);
    // Bad input: no key at all.
    let r = gate.client.get(gate.url("/v1/usage")).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

/// Run the CLI off the runtime's thread: the server under test shares this runtime, and a
/// blocked thread would stall its database writes (holding SQLite's write lock) meanwhile.
async fn cli(db: &str, args: &[&str]) -> (bool, String, String) {
    let db = db.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(&args)
            .env("DATABASE_URL", db)
            .env_remove("GATEHOUSE_CONFIG")
            .env_remove("OPENAI_API_KEY")
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_manages_keys_a_running_instance_honours() {
    let up = MockUpstream::start(Behavior::ok("x")).await;
    let db = temp_db_url();
    let gate = start(&up.base_url, &db, "").await;
    let (ok, out, err) = cli(
        &db,
        &[
            "keys",
            "create",
            "--name",
            "from-cli",
            "--models",
            "m1,mock-1",
            "--rpm",
            "5",
            "--daily-budget-usd",
            "1.50",
            "--expires-in",
            "30d",
            "--priority",
            "batch",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let key = out.trim().to_owned();
    assert_eq!(key.len(), 45);
    assert!(err.contains("store it now"), "{err}");
    let seen = eventually(Duration::from_secs(2), || async {
        chat(&gate, &key).await.status() == 200
    })
    .await;
    assert!(seen.is_some());
    let (ok, out, _) = cli(&db, &["keys", "list", "--json"]).await;
    assert!(ok);
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["daily_budget_micros"], 1_500_000);
    assert_eq!(list[0]["allowed_models"], json!(["m1", "mock-1"]));
    assert_eq!(list[0]["priority"], "batch");
    assert!(!out.contains(&key[13..]));
    let id = list[0]["id"].as_i64().unwrap().to_string();
    let (ok, out, _) = cli(&db, &["keys", "show", &id]).await;
    assert!(ok && out.contains("from-cli"));
    let (ok, out, _) = cli(&db, &["keys", "rotate", &id]).await;
    assert!(ok);
    let rotated = out.trim().to_owned();
    let (ok, out, _) = cli(&db, &["keys", "revoke", &id]).await;
    assert!(ok && out.starts_with("revoked key"), "{out}");
    let refused = eventually(Duration::from_secs(2), || async {
        chat(&gate, &rotated).await.status() == 401
    })
    .await;
    assert!(refused.is_some());
    // Bad input: a budget with too many decimals, a lifetime without a unit, a missing key.
    let (ok, _, err) = cli(
        &db,
        &[
            "keys",
            "create",
            "--name",
            "x",
            "--daily-budget-usd",
            "0.0000001",
        ],
    )
    .await;
    assert!(!ok && err.contains("--daily-budget-usd"), "{err}");
    let (ok, _, err) = cli(
        &db,
        &["keys", "create", "--name", "x", "--expires-in", "30"],
    )
    .await;
    assert!(!ok && err.contains("lifetime"), "{err}");
    let (ok, _, err) = cli(&db, &["keys", "revoke", "424242"]).await;
    assert!(!ok && err.contains("no key with id 424242"), "{err}");
    let audit = admin_get(&gate, &format!("/admin/api/audit?target=key:{id}")).await;
    // Key changes only (a sampled rate-limit refusal of the 5 rpm key may be there too).
    let changes: Vec<(&str, &str)> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .filter(|(action, _)| action.starts_with("key."))
        .collect();
    let actions: Vec<&str> = changes.iter().map(|c| c.0).collect();
    assert_eq!(actions, vec!["key.revoke", "key.rotate", "key.create"]);
    assert!(
        changes.iter().all(|c| c.1.starts_with("cli:")),
        "{changes:?}"
    );
}
