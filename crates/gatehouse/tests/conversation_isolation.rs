//! Conversation isolation: end users and API keys never see each other's conversations (404 on
//! every route), paging stays within the owner's, and open mode's anonymous conversations are
//! shared only by anonymous callers.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod assist;
mod common;

use std::sync::Arc;

use assist::{call, conversation, create_assistant, gate};
use axum::body::Body;
use http::Method;
use serde_json::{Value, json};
use test_support::{Behavior, MockUpstream};
use tower::ServiceExt;

fn support() -> Value {
    json!({"slug": "support", "name": "Support", "system_prompt": "Be brief.", "model": "m1"})
}

#[tokio::test]
async fn users_cannot_see_each_others_conversations() {
    let up = MockUpstream::start(Behavior::ok("ok")).await;
    let g = gate(&up.base_url).await;
    create_assistant(&g, &support()).await;
    let alice = conversation(&g, "support", "alice").await;
    let mine = conversation(&g, "support", "bob").await;
    let anonymous = {
        let r = call(
            &g,
            Method::POST,
            "/v1/conversations",
            Some(&json!({"model": "m1"})),
            &[],
        )
        .await;
        assert_eq!(
            (r.status.as_u16(), r.body["user"].clone()),
            (201, Value::Null)
        );
        r.body["id"].as_i64().unwrap()
    };
    let bob = [("x-gatehouse-user", "bob")];
    // Bob tries every route on alice's conversation.
    for (method, path, body) in [
        (Method::GET, format!("/v1/conversations/{alice}"), None),
        (
            Method::GET,
            format!("/v1/conversations/{alice}/summary"),
            None,
        ),
        (Method::DELETE, format!("/v1/conversations/{alice}"), None),
        (
            Method::POST,
            format!("/v1/conversations/{alice}/messages"),
            Some(json!({"content": "hi"})),
        ),
        (
            Method::POST,
            format!("/v1/conversations/{alice}/messages/1/rating"),
            Some(json!({"rating": "up"})),
        ),
    ] {
        let r = call(&g, method.clone(), &path, body.as_ref(), &bob).await;
        assert_eq!(r.error(), (404, "not_found", None), "{method} {path}");
    }
    // Without a user id, alice's conversation is not visible either (and the anonymous one is).
    let r = call(
        &g,
        Method::GET,
        &format!("/v1/conversations/{alice}"),
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, 404);
    let r = call(
        &g,
        Method::GET,
        &format!("/v1/conversations/{anonymous}"),
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, 200);
    let listed = |user: Option<&str>| {
        let g = &g;
        let user = user.map(str::to_owned);
        async move {
            let headers: Vec<(&str, &str)> = user
                .iter()
                .map(|u| ("x-gatehouse-user", u.as_str()))
                .collect();
            let r = call(g, Method::GET, "/v1/conversations", None, &headers).await;
            r.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_i64().unwrap())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(Some("bob")).await, [mine]);
    assert_eq!(listed(Some("alice")).await, [alice]);
    assert_eq!(listed(None).await, [anonymous]);
    // The body `user` works like the header; both at once must agree.
    let r = call(
        &g,
        Method::GET,
        &format!("/v1/conversations/{alice}?user=alice"),
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, 200);
    // Bad input: header and query naming different users; a user id with a control character.
    let r = call(
        &g,
        Method::GET,
        &format!("/v1/conversations/{alice}?user=alice"),
        None,
        &bob,
    )
    .await;
    assert_eq!(r.error(), (400, "invalid_request", Some("user")));
    let r = call(
        &g,
        Method::POST,
        "/v1/conversations",
        Some(&json!({"model": "m1", "user": "a\u{1}b"})),
        &[],
    )
    .await;
    assert_eq!(r.error(), (400, "invalid_request", Some("user")));
    // Paging: newest first, `has_more`, `before`.
    let more: Vec<i64> = {
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(conversation(&g, "support", "carol").await);
        }
        ids
    };
    let r = call(
        &g,
        Method::GET,
        "/v1/conversations?limit=2",
        None,
        &[("x-gatehouse-user", "carol")],
    )
    .await;
    let page: Vec<i64> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        (page, r.body["has_more"].as_bool()),
        (vec![more[2], more[1]], Some(true))
    );
    let r = call(
        &g,
        Method::GET,
        &format!("/v1/conversations?limit=2&before={}", more[1]),
        None,
        &[("x-gatehouse-user", "carol")],
    )
    .await;
    assert_eq!(
        (
            r.body["data"][0]["id"].as_i64(),
            r.body["has_more"].as_bool()
        ),
        (Some(more[0]), Some(false))
    );
    // Bad input: limit 0; a limit that is not a number.
    for q in ["limit=0", "limit=many"] {
        let r = call(
            &g,
            Method::GET,
            &format!("/v1/conversations?{q}"),
            None,
            &[],
        )
        .await;
        assert_eq!(
            (r.status.as_u16(), r.error().1),
            (400, "invalid_request"),
            "{q}"
        );
    }
    // Deleting is the owner's; afterwards the conversation is gone.
    let r = call(
        &g,
        Method::DELETE,
        &format!("/v1/conversations/{alice}"),
        None,
        &[("x-gatehouse-user", "alice")],
    )
    .await;
    assert_eq!(r.status, 204);
    let r = call(
        &g,
        Method::GET,
        &format!("/v1/conversations/{alice}"),
        None,
        &[("x-gatehouse-user", "alice")],
    )
    .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn api_keys_cannot_see_each_others_conversations() {
    let up = MockUpstream::start(Behavior::ok("ok")).await;
    let g = gate(&up.base_url).await;
    let state = Arc::clone(&g.running.as_ref().unwrap().state);
    // Two real API keys ("1" and "2" below); from then on a key is required.
    let mut keys = Vec::new();
    for name in ["one", "two"] {
        let create = gatehouse::access::api::CreateKey {
            name: name.into(),
            ..Default::default()
        };
        let (secret, _) = gatehouse::access::api::create_key(&state.store, &create)
            .await
            .unwrap();
        keys.push(secret);
    }
    state.access.keys.refresh(&state.store).await.unwrap();
    let app = gatehouse::build_app(state);
    let request = |method: Method,
                   path: String,
                   key: Option<&str>,
                   user: Option<&str>,
                   body: Option<Value>| {
        let mut b = http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        if let Some(k) = key {
            let secret = &keys[if k == "1" { 0 } else { 1 }];
            b = b.header("authorization", format!("Bearer {secret}"));
        }
        if let Some(u) = user {
            b = b.header("x-gatehouse-user", u);
        }
        b.body(Body::from(body.map(|v| v.to_string()).unwrap_or_default()))
            .unwrap()
    };
    let run = |req: http::Request<Body>| {
        let app = app.clone();
        async move {
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status().as_u16();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            (
                status,
                serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
            )
        }
    };
    let (status, created) = run(request(
        Method::POST,
        "/v1/conversations".into(),
        Some("1"),
        None,
        Some(json!({"model": "m1"})),
    ))
    .await;
    assert_eq!(status, 201);
    let id = created["id"].as_i64().unwrap();
    let path = format!("/v1/conversations/{id}");
    assert_eq!(
        run(request(Method::GET, path.clone(), Some("1"), None, None))
            .await
            .0,
        200
    );
    // Another key; the same key with an end-user id: it does not exist for them.
    for (key, user) in [(Some("2"), None), (Some("1"), Some("u"))] {
        let (status, body) = run(request(Method::GET, path.clone(), key, user, None)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{key:?} {user:?}"
        );
    }
    // No key at all: refused before any lookup, now that keys exist.
    let (status, body) = run(request(Method::GET, path.clone(), None, None, None)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );
    let (_, list) = run(request(
        Method::GET,
        "/v1/conversations".into(),
        Some("2"),
        None,
        None,
    ))
    .await;
    assert_eq!(list["data"], json!([]));
    let (status, _) = run(request(
        Method::POST,
        format!("{path}/messages"),
        Some("2"),
        None,
        Some(json!({"content": "hi"})),
    ))
    .await;
    assert_eq!(status, 404);
    assert_eq!(up.hits(), 0);
    let (status, _) = run(request(Method::DELETE, path.clone(), Some("2"), None, None)).await;
    assert_eq!(status, 404);
    let (status, _) = run(request(Method::DELETE, path, Some("1"), None, None)).await;
    assert_eq!(status, 204);
}
