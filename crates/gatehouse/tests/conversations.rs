//! Conversations end to end: create, send (history, stored messages, running cost in the
//! header and the stream trailer), fetch, rate, summarise; chat completions joined to a
//! conversation. Isolation between users and keys is in `conversation_isolation.rs`.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod assist;
mod common;

use assist::{call, conversation, create_assistant, gate, gate_on, postgres_url, send};
use common::{row, sse_data, temp_db_url};
use http::Method;
use serde_json::{Value, json};
use test_support::{Behavior, MockUpstream};

fn support() -> Value {
    json!({"slug": "support", "name": "Support", "system_prompt": "Be brief.", "model": "m1"})
}

async fn conversation_flow(db_url: &str) {
    let up = MockUpstream::start(Behavior::ok("Sure thing").with_usage(10, 5, 0)).await;
    let mut g = gate_on(db_url, &up.base_url).await;
    create_assistant(&g, &support()).await;
    let id = conversation(&g, "support", "alice").await;

    let r = send(&g, id, "alice", "first").await;
    assert_eq!(r.status, 200, "{}", r.text);
    // 10 prompt × $2.50 + 5 completion × $10 per Mtok = 75 micro-USD a message.
    assert_eq!(
        (
            r.body["cost_micros"].as_i64(),
            r.body["conversation_cost_micros"].as_i64()
        ),
        (Some(75), Some(75))
    );
    assert_eq!(r.header("x-gatehouse-conversation-cost-micros"), Some("75"));
    assert_eq!(r.body["user_message"]["content"], "first");
    assert_eq!(
        (
            r.body["message"]["role"].as_str(),
            r.body["message"]["content"].as_str()
        ),
        (Some("assistant"), Some("Sure thing"))
    );
    let first_reply = r.body["message"]["id"].as_i64().unwrap();
    assert_eq!(
        r.header("x-gatehouse-message-id"),
        Some(first_reply.to_string().as_str())
    );

    let r = send(&g, id, "alice", "second").await;
    assert_eq!(r.body["conversation_cost_micros"], 150);
    // The pipeline got the whole history, after the assistant's prompt.
    assert_eq!(
        up.requests()[1].body["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "Sure thing"},
            {"role": "user", "content": "second"}
        ])
    );
    assert_eq!(up.requests()[1].body["user"], "alice");

    // A stream ends with the trailer comment, then [DONE].
    let r = call(
        &g,
        Method::POST,
        &format!("/v1/conversations/{id}/messages"),
        Some(&json!({"content": "third", "stream": true})),
        &[
            ("x-gatehouse-user", "alice"),
            ("x-request-id", "conv-stream"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let raw = r
        .text
        .lines()
        .find_map(|l| l.strip_prefix(": gatehouse "))
        .unwrap();
    assert!(
        r.text
            .ends_with(&format!(": gatehouse {raw}\n\ndata: [DONE]\n\n")),
        "{}",
        r.text
    );
    let trailer: Value = serde_json::from_str(raw).unwrap();
    assert_eq!(
        (
            trailer["conversation_id"].as_i64(),
            trailer["cost_micros"].as_i64(),
            trailer["conversation_cost_micros"].as_i64()
        ),
        (Some(id), Some(75), Some(225))
    );
    let content: String = sse_data(&r.text)
        .iter()
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| {
            serde_json::from_str::<Value>(d).unwrap()["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(content, "Sure thing");

    // Stored without a reply; no upstream call.
    let calls = up.requests().len();
    let r = call(
        &g,
        Method::POST,
        &format!("/v1/conversations/{id}/messages"),
        Some(&json!({"content": "a note", "role": "system", "reply": false})),
        &[("x-gatehouse-user", "alice")],
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.body["role"].as_str()),
        (201, Some("system"))
    );
    assert_eq!(up.requests().len(), calls);
    // Bad input: an empty message; a non-user message that asks for a reply.
    let r = send(&g, id, "alice", "  ").await;
    assert_eq!(r.error(), (400, "invalid_request", Some("content")));
    let r = call(
        &g,
        Method::POST,
        &format!("/v1/conversations/{id}/messages"),
        Some(&json!({"content": "x", "role": "assistant"})),
        &[("x-gatehouse-user", "alice")],
    )
    .await;
    assert_eq!(r.error(), (400, "invalid_request", Some("role")));

    let r = call(
        &g,
        Method::GET,
        &format!("/v1/conversations/{id}"),
        None,
        &[("x-gatehouse-user", "alice")],
    )
    .await;
    assert_eq!(
        (
            r.body["cost_micros"].as_i64(),
            r.body["message_count"].as_i64()
        ),
        (Some(225), Some(7))
    );
    let roles: Vec<&str> = r.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
            "assistant",
            "system"
        ]
    );
    assert_eq!(
        (r.body["model"].as_str(), r.body["user"].as_str()),
        (Some("assistant/support"), Some("alice"))
    );

    // Ratings: up with a comment, then changed to down.
    let rate = |mid: i64, body: Value| {
        let g = &g;
        async move {
            call(
                g,
                Method::POST,
                &format!("/v1/conversations/{id}/messages/{mid}/rating"),
                Some(&body),
                &[("x-gatehouse-user", "alice")],
            )
            .await
        }
    };
    let r = rate(first_reply, json!({"rating": "up", "comment": "helpful"})).await;
    assert_eq!(
        r.body,
        json!({"conversation_id": id, "message_id": first_reply, "rating": "up", "comment": "helpful"})
    );
    rate(first_reply, json!({"rating": "down"})).await;
    // Bad input: a rating that is neither up nor down; rating a user message; a message id
    // that is not a number.
    let r = rate(first_reply, json!({"rating": "meh"})).await;
    assert_eq!(r.error(), (400, "invalid_request", Some("rating")));
    let r = rate(first_reply - 1, json!({"rating": "up"})).await;
    assert_eq!(r.error(), (404, "not_found", None));
    let r = call(
        &g,
        Method::POST,
        &format!("/v1/conversations/{id}/messages/x/rating"),
        Some(&json!({"rating": "up"})),
        &[("x-gatehouse-user", "alice")],
    )
    .await;
    assert_eq!(r.status, 404);
    let r = call(
        &g,
        Method::GET,
        &format!("/v1/conversations/{id}"),
        None,
        &[("x-gatehouse-user", "alice")],
    )
    .await;
    assert_eq!(
        (
            r.body["messages"][1]["rating"].as_str(),
            r.body["messages"][1].get("rating_comment")
        ),
        (Some("down"), None)
    );

    // The on-demand summary is a real call to the summary model, charged to the conversation.
    let r = call(
        &g,
        Method::GET,
        &format!("/v1/conversations/{id}/summary"),
        None,
        &[("x-gatehouse-user", "alice")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (
            r.body["summary"].as_str(),
            r.body["cost_micros"].as_i64(),
            r.body["conversation_cost_micros"].as_i64()
        ),
        (Some("Sure thing"), Some(75), Some(300))
    );
    let asked = up.requests().last().unwrap().body.clone();
    assert!(
        asked["messages"][0]["content"]
            .as_str()
            .unwrap()
            .starts_with("Summarise the conversation below in two or three sentences.")
    );
    assert!(
        asked["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("user: second\nassistant: Sure thing\n")
    );

    // Chat completions joined to the conversation: the cost header, and the exchange stored.
    let body = json!({"model": "assistant/support", "messages": [{"role": "user", "content": "via sdk"}], "user": "alice"});
    let r = call(
        &g,
        Method::POST,
        "/v1/chat/completions",
        Some(&body),
        &[
            ("x-gatehouse-conversation-id", &id.to_string()),
            ("x-request-id", "conv-sdk"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("x-gatehouse-conversation-cost-micros"),
        Some("375")
    );
    assert_eq!(r.body["object"], "chat.completion");
    // Bad input: a conversation id that is not a number; one of another user.
    let r = call(
        &g,
        Method::POST,
        "/v1/chat/completions",
        Some(&body),
        &[("x-gatehouse-conversation-id", "abc")],
    )
    .await;
    assert_eq!(
        r.error(),
        (400, "invalid_request", Some("x-gatehouse-conversation-id"))
    );
    let mut bobs = body.clone();
    bobs["user"] = json!("bob");
    let r = call(
        &g,
        Method::POST,
        "/v1/chat/completions",
        Some(&bobs),
        &[("x-gatehouse-conversation-id", &id.to_string())],
    )
    .await;
    assert_eq!(r.error(), (404, "not_found", None));

    let r = call(
        &g,
        Method::GET,
        &format!("/v1/conversations/{id}"),
        None,
        &[("x-gatehouse-user", "alice")],
    )
    .await;
    assert_eq!(
        (
            r.body["cost_micros"].as_i64(),
            r.body["message_count"].as_i64()
        ),
        (Some(375), Some(9))
    );
    assert_eq!(r.body["messages"][7]["content"], "via sdk");

    let store = g.shutdown_and_store().await;
    let streamed = row(&store, "conv-stream").await;
    assert_eq!(
        (streamed.conversation_id, streamed.cost_micros),
        (Some(id), 75)
    );
    assert_eq!(row(&store, "conv-sdk").await.conversation_id, Some(id));
}

#[tokio::test]
async fn sqlite_conversation_flow() {
    conversation_flow(&temp_db_url()).await;
}

#[tokio::test]
async fn postgres_conversation_flow() {
    if let Some(url) = postgres_url().await {
        conversation_flow(&url).await;
    }
}

#[tokio::test]
async fn creating_checks_the_assistant_or_model() {
    let up = MockUpstream::start(Behavior::ok("ok")).await;
    let g = gate(&up.base_url).await;
    create_assistant(&g, &support()).await;
    let cases = [
        // Bad input: an assistant that does not exist.
        (
            json!({"assistant": "ghost"}),
            404,
            "model_not_found",
            Some("assistant"),
        ),
        // Bad input: both an assistant and a model.
        (
            json!({"assistant": "support", "model": "m1"}),
            400,
            "invalid_request",
            Some("model"),
        ),
        // Bad input: a model that is not served.
        (
            json!({"model": "nope"}),
            400,
            "invalid_request",
            Some("model"),
        ),
        // Bad input: an unknown field.
        (
            json!({"model": "m1", "colour": 1}),
            400,
            "invalid_request",
            None,
        ),
    ];
    for (body, status, code, param) in cases {
        let r = call(&g, Method::POST, "/v1/conversations", Some(&body), &[]).await;
        assert_eq!((r.status.as_u16(), r.error().1), (status, code), "{body}");
        if param.is_some() {
            assert_eq!(r.error().2, param, "{body}");
        }
    }
    // `model: "assistant/<slug>"` is the same as `assistant`.
    let r = call(
        &g,
        Method::POST,
        "/v1/conversations",
        Some(&json!({"model": "assistant/support", "title": "t"})),
        &[],
    )
    .await;
    assert_eq!(
        (
            r.status.as_u16(),
            r.body["model"].as_str(),
            r.body["title"].as_str()
        ),
        (201, Some("assistant/support"), Some("t"))
    );
    // Bad input: ids that are not numbers, or do not exist.
    for path in ["/v1/conversations/abc", "/v1/conversations/999999"] {
        let r = call(&g, Method::GET, path, None, &[]).await;
        assert_eq!(r.error(), (404, "not_found", None));
    }
}
