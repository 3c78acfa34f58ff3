//! The chat's anonymous sessions: its user, usage and budget, limits per user and address,
//! invite and key modes, conversations per browser, the server-side image limit.

use std::collections::HashMap;

use gatehouse::Config;
use reqwest::header::SET_COOKIE;
use serde_json::{Value, json};

use crate::*;

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
