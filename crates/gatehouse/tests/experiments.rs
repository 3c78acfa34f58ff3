//! A/B experiments end to end: sticky assignment per conversation, variants applied
//! to real requests, ratings, the results endpoint checked against numbers worked out by hand
//! from the ledger rows, the usage reports, and stop + promote in one call.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod assist;
mod common;

use std::collections::BTreeMap;

use assist::{admin, call, conversation, create_assistant, gate_on, postgres_url, send};
use common::temp_db_url;
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

fn close(v: &Value, expected: f64) -> bool {
    (v.as_f64().unwrap() - expected).abs() < 1e-6
}

/// Nearest rank, as documented: the value at rank ceil(p/100 × n).
fn nearest_rank(sorted: &[i64], p: usize) -> i64 {
    sorted[(p * sorted.len()).div_ceil(100).max(1) - 1]
}

/// Per variant: (conversation ids, request ids answered with 200).
type Arms = BTreeMap<String, (Vec<i64>, Vec<String>)>;

async fn experiment_flow(db_url: &str) {
    let up = MockUpstream::start(Behavior::ok("Fine").with_usage(10, 5, 0)).await;
    let mut g = gate_on(db_url, &up.base_url).await;
    create_assistant(
        &g,
        &json!({"slug": "exp", "name": "Exp", "model": "m1", "system_prompt": "Base prompt."}),
    )
    .await;
    let r = admin(
        &g,
        Method::POST,
        "/admin/api/assistants/exp/experiments",
        Some(&tone()),
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.body["status"].as_str()),
        (201, Some("running")),
        "{}",
        r.text
    );
    let eid = r.body["id"].as_i64().unwrap();

    let mut arms: Arms = BTreeMap::new();
    let mut rated: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    let mut n = 0;
    while arms.get("A").is_none_or(|a| a.0.len() < 5) || arms.get("B").is_none_or(|b| b.0.len() < 5)
    {
        n += 1;
        assert!(n < 80, "the split starves an arm: {arms:?}");
        let id = conversation(&g, "exp", "u").await;
        let r = send(&g, id, "u", &format!("question {n}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let variant = r.body["message"]["variant"].as_str().unwrap().to_owned();
        // The variant's prompt, model and temperature reached the upstream.
        let sent = up.requests().last().unwrap().body.clone();
        match variant.as_str() {
            "A" => assert_eq!(
                (
                    sent["messages"][0]["content"].as_str(),
                    sent["model"].as_str(),
                    sent.get("temperature")
                ),
                (Some("Prompt A."), Some("gpt-4o-mini"), None)
            ),
            _ => assert_eq!(
                (
                    sent["messages"][0]["content"].as_str(),
                    sent["model"].as_str(),
                    sent["temperature"].as_f64()
                ),
                (Some("Prompt B."), Some("gpt-4o-nano"), Some(0.9))
            ),
        }
        let arm = arms.entry(variant.clone()).or_default();
        arm.0.push(id);
        arm.1
            .push(r.body["message"]["request_id"].as_str().unwrap().to_owned());
        rated
            .entry(variant)
            .or_default()
            .push((id, r.body["message"]["id"].as_i64().unwrap()));
    }
    // Sticky: a conversation's next message gets the same variant.
    for (variant, (convs, ids)) in &mut arms {
        let r = send(&g, convs[0], "u", "follow-up").await;
        assert_eq!(
            r.body["message"]["variant"].as_str(),
            Some(variant.as_str())
        );
        ids.push(r.body["message"]["request_id"].as_str().unwrap().to_owned());
    }
    // One failed request in arm A (the upstream rejects it): an error of A, no message.
    up.set_behavior(Behavior::bad_request("no"));
    let a0 = arms["A"].0[0];
    let r = call(
        &g,
        Method::POST,
        &format!("/v1/conversations/{a0}/messages"),
        Some(&json!({"content": "x"})),
        &[("x-gatehouse-user", "u")],
    )
    .await;
    assert_eq!(r.status, 400);
    up.set_behavior(Behavior::ok("Fine").with_usage(10, 5, 0));
    // Ratings: A 4 up of 5, B 1 up of 5.
    for (variant, ups) in [("A", 4), ("B", 1)] {
        for (i, (conv, mid)) in rated[variant].iter().take(5).enumerate() {
            let rating = if i < ups { "up" } else { "down" };
            let r = call(
                &g,
                Method::POST,
                &format!("/v1/conversations/{conv}/messages/{mid}/rating"),
                Some(&json!({"rating": rating})),
                &[("x-gatehouse-user", "u")],
            )
            .await;
            assert_eq!(r.status, 200);
        }
    }

    // Restart so the ledger queue is flushed, then compare with the rows themselves.
    let store = g.shutdown_and_store().await;
    let mut latencies: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (variant, (_, ids)) in &arms {
        for id in ids {
            let row = common::row(&store, id).await;
            assert_eq!(
                (row.variant.as_deref(), row.status),
                (Some(variant.as_str()), 200)
            );
            latencies
                .entry(variant.clone())
                .or_default()
                .push(row.latency_ms);
        }
    }
    store.close().await;
    let g = gate_on(db_url, &up.base_url).await;
    let r = admin(
        &g,
        Method::GET,
        &format!("/admin/api/experiments/{eid}/results"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = &r.body["variants"];
    for (i, name) in ["A", "B"].iter().enumerate() {
        let (convs, ids) = &arms[*name];
        let ok = ids.len() as i64;
        let failed = i64::from(*name == "A");
        let cost_each = if *name == "A" { 75 } else { 3 }; // m1: 10×2.5+5×10; cheap: 10×0.1+5×0.4
        let mut lat = latencies[*name].clone();
        lat.sort_unstable();
        let got = &v[i];
        assert_eq!(got["name"], *name);
        assert_eq!(
            (
                got["conversations"].as_i64(),
                got["messages"].as_i64(),
                got["errors"].as_i64()
            ),
            (Some(convs.len() as i64), Some(ok + failed), Some(failed))
        );
        assert!(close(
            &got["error_rate"],
            failed as f64 / (ok + failed) as f64
        ));
        assert_eq!(
            (
                got["prompt_tokens"].as_i64(),
                got["completion_tokens"].as_i64(),
                got["total_tokens"].as_i64(),
                got["cost_micros"].as_i64()
            ),
            (
                Some(10 * ok),
                Some(5 * ok),
                Some(15 * ok),
                Some(cost_each * ok)
            )
        );
        let total = ok + failed;
        assert_eq!(
            got["cost_per_message_micros"].as_i64(),
            Some((cost_each * ok * 2 + total) / (2 * total))
        );
        assert_eq!(
            (
                got["latency_p50_ms"].as_i64(),
                got["latency_p95_ms"].as_i64()
            ),
            (Some(nearest_rank(&lat, 50)), Some(nearest_rank(&lat, 95)))
        );
    }
    // Ratings, by hand (Wilson 95%: z = 1.959964):
    // A 4/5: p 0.8, interval [0.375535, 0.963776]; B 1/5: p 0.2, interval [0.036224, 0.624465].
    let ra = &v[0]["ratings"];
    assert_eq!(
        (
            ra["positive"].as_i64(),
            ra["negative"].as_i64(),
            ra["total"].as_i64()
        ),
        (Some(4), Some(1), Some(5))
    );
    assert!(
        close(&ra["positive_rate"], 0.8)
            && close(&ra["ci95_low"], 0.375_535)
            && close(&ra["ci95_high"], 0.963_776),
        "{ra}"
    );
    let rb = &v[1]["ratings"];
    assert!(
        close(&rb["positive_rate"], 0.2)
            && close(&rb["ci95_low"], 0.036_224)
            && close(&rb["ci95_high"], 0.624_465),
        "{rb}"
    );
    // B against A: pooled p = 5/10, se = sqrt(0.25 × (1/5 + 1/5)) = 0.316228,
    // z = (0.2 − 0.8) / 0.316228 = −1.897367, two-sided p = 0.057780: not significant at 0.05.
    let c = &r.body["comparisons"][0];
    assert_eq!(
        (
            c["variant"].as_str(),
            c["baseline"].as_str(),
            c["significant"].as_bool()
        ),
        (Some("B"), Some("A"), Some(false))
    );
    assert!(
        close(&c["rate_difference"], -0.6)
            && close(&c["z"], -1.897_367)
            && (c["p_value"].as_f64().unwrap() - 0.057_780).abs() < 1e-5,
        "{c}"
    );

    // The dashboards' numbers come from the same rows.
    let (a_ok, b_ok) = (arms["A"].1.len() as i64, arms["B"].1.len() as i64);
    let r = admin(
        &g,
        Method::GET,
        "/admin/api/usage?group_by=assistant,variant",
        None,
    )
    .await;
    assert_eq!(r.body["group_by"], json!(["assistant", "variant"]));
    assert_eq!(
        r.body["data"],
        json!([
            {"assistant": "exp", "variant": "A", "requests": a_ok + 1, "messages": a_ok, "errors": 1, "prompt_tokens": 10 * a_ok, "completion_tokens": 5 * a_ok, "cost_micros": 75 * a_ok},
            {"assistant": "exp", "variant": "B", "requests": b_ok, "messages": b_ok, "errors": 0, "prompt_tokens": 10 * b_ok, "completion_tokens": 5 * b_ok, "cost_micros": 3 * b_ok},
        ])
    );
    let r = admin(&g, Method::GET, "/admin/api/usage?group_by=day,model", None).await;
    let today = gatehouse::dates::format_day(gatehouse::dates::day_of(gatehouse::usage::now_ms()));
    assert_eq!(r.body["data"][0]["day"], today);
    assert_eq!(r.body["data"][0]["model"], "cheap");
    assert_eq!(r.body["data"][1]["cost_micros"], 75 * a_ok);
    let r = admin(&g, Method::GET, "/admin/api/usage/today", None).await;
    let total = 75 * a_ok + 3 * b_ok;
    let messages = a_ok + b_ok;
    assert_eq!(
        r.body,
        json!({"day": today, "data": [{
            "assistant": "exp", "cost_micros": total, "messages": messages, "requests": messages + 1,
            "prompt_tokens": 10 * messages, "completion_tokens": 5 * messages, "total_tokens": 15 * messages,
            "average_cost_per_message_micros": (total * 2 + messages) / (2 * messages)
        }]})
    );

    // Stop and promote B in one call: the next version is B's prompt, model and temperature.
    let r = admin(
        &g,
        Method::POST,
        &format!("/admin/api/experiments/{eid}/stop"),
        Some(&json!({"promote": "B"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (
            r.body["experiment"]["status"].as_str(),
            r.body["experiment"]["promoted_variant"].as_str()
        ),
        (Some("stopped"), Some("B"))
    );
    let a = &r.body["assistant"];
    assert_eq!(
        (
            a["version"].as_i64(),
            a["system_prompt"].as_str(),
            a["model"].as_str(),
            a["temperature"].as_f64()
        ),
        (Some(2), Some("Prompt B."), Some("cheap"), Some(0.9))
    );
    assert_eq!(r.body["experiment"]["promoted_version_id"], a["version_id"]);
    // Bad input: stopping it again.
    let r = admin(
        &g,
        Method::POST,
        &format!("/admin/api/experiments/{eid}/stop"),
        None,
    )
    .await;
    assert_eq!(r.error(), (409, "conflict", None));
    let id = conversation(&g, "exp", "u").await;
    let r = send(&g, id, "u", "after").await;
    assert_eq!(r.body["message"].get("variant"), None);
    let sent = up.requests().last().unwrap().body.clone();
    assert_eq!(
        (
            sent["messages"][0]["content"].as_str(),
            sent["model"].as_str()
        ),
        (Some("Prompt B."), Some("gpt-4o-nano"))
    );
    // Bad input: promoting a variant that does not exist (the experiment stays running).
    let r = admin(
        &g,
        Method::POST,
        "/admin/api/assistants/exp/experiments",
        Some(&tone()),
    )
    .await;
    let second = r.body["id"].as_i64().unwrap();
    let r = admin(
        &g,
        Method::POST,
        &format!("/admin/api/experiments/{second}/stop"),
        Some(&json!({"promote": "Z"})),
    )
    .await;
    assert_eq!(r.error(), (400, "invalid_request", Some("promote")));
    let r = admin(
        &g,
        Method::GET,
        &format!("/admin/api/experiments/{second}"),
        None,
    )
    .await;
    assert_eq!(r.body["status"], "running");
    let r = admin(
        &g,
        Method::GET,
        "/admin/api/assistants/exp/experiments",
        None,
    )
    .await;
    let ids: Vec<i64> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [second, eid]);
}

#[tokio::test]
async fn sqlite_experiment_flow() {
    experiment_flow(&temp_db_url()).await;
}

#[tokio::test]
async fn postgres_experiment_flow() {
    if let Some(url) = postgres_url().await {
        experiment_flow(&url).await;
    }
}
