//! The Redis backend: two instances share one limit and one budget; a Redis that dies mid-run
//! leaves limits per instance (fail open), refuses budgeted requests (fail closed, or open when
//! configured), never hangs a request, and is picked up again when it returns. The shared-server
//! tests need `GATEHOUSE_TEST_REDIS_URL`; the kill test starts its own `redis-server`.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

#[path = "common/access.rs"]
mod access;
mod common;

use std::time::{Duration, Instant};

use access::{
    RedisProcess, burst, chat, count, create_key, eventually, redis_toml, redis_url, small_chat,
    start,
};
use common::temp_db_url;
use gatehouse::access::local::LocalBackend;
use gatehouse::access::plan::{
    Bucket, BudgetCharge, BudgetScope, BudgetSettle, BudgetState, Dim, Lease, Plan, Scope,
    Settlement, TokenCorrection, Verdict,
};
use gatehouse::access::redis::RedisBackend;
use gatehouse::config::access::RedisConfig;
use serde_json::{Value, json};
use test_support::{Behavior, MockUpstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_limit_and_one_budget() {
    let Some(url) = redis_url() else { return };
    let up = MockUpstream::start(Behavior::ok("x").with_usage(7, 100, 0)).await;
    let db = temp_db_url();
    let toml = redis_toml(&url, "");
    let a = start(&up.base_url, &db, &toml).await;
    let b = start(&up.base_url, &db, &toml).await;
    let (limited, _) = create_key(&a, json!({"name": "rpm", "rpm": 50})).await;
    // 1,018 micro-USD per call (see budgets.rs): room for exactly ten.
    let (budgeted, _) =
        create_key(&a, json!({"name": "budget", "daily_budget_micros": 10_180})).await;
    let seen = eventually(Duration::from_secs(2), || async {
        b.running.as_ref().unwrap().state.access.keys.len() == 2
    })
    .await;
    assert!(seen.is_some());
    let statuses = burst(&[&a, &b], &limited, 200, &small_chat()).await;
    assert_eq!((count(&statuses, 200), count(&statuses, 429)), (50, 150));
    let statuses = burst(&[&a, &b], &budgeted, 100, &small_chat()).await;
    assert_eq!((count(&statuses, 200), count(&statuses, 429)), (10, 90));
    assert_eq!(up.hits(), 60);
    let ready: Value = a
        .client
        .get(a.url("/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            ready["access"]["backend"].as_str(),
            ready["access"]["redis"].as_str()
        ),
        (Some("redis"), Some("up"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_killed_mid_run_fails_open_for_limits_closed_for_budgets_and_recovers() {
    let Some(mut redis) = RedisProcess::start() else {
        return;
    };
    let up = MockUpstream::start(Behavior::ok("x").with_usage(7, 100, 0)).await;
    let db = temp_db_url();
    let closed = start(&up.base_url, &db, &redis_toml(&redis.url(), "")).await;
    let open = start(
        &up.base_url,
        &db,
        &redis_toml(&redis.url(), "budget_fail_open = true"),
    )
    .await;
    let (limited, _) = create_key(&closed, json!({"name": "rpm", "rpm": 3})).await;
    let (budgeted, _) = create_key(
        &closed,
        json!({"name": "budget", "daily_budget_micros": 100_000}),
    )
    .await;
    let both = eventually(Duration::from_secs(2), || async {
        open.running.as_ref().unwrap().state.access.keys.len() == 2
    })
    .await;
    assert!(both.is_some());
    assert_eq!(chat(&closed, &limited).await.status(), 200);
    assert_eq!(chat(&closed, &budgeted).await.status(), 200);

    redis.kill();
    // Nothing hangs: the first request after the crash pays at most the 200 ms Redis timeout.
    let started = Instant::now();
    assert_eq!(chat(&closed, &limited).await.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // Limits fall back to this instance's own state: 3 per minute here, none used yet locally.
    assert_eq!(chat(&closed, &limited).await.status(), 200);
    assert_eq!(chat(&closed, &limited).await.status(), 200);
    let r = chat(&closed, &limited).await;
    assert_eq!(r.status(), 429);
    // Budgets fail closed...
    let started = Instant::now();
    let r = chat(&closed, &budgeted).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "budget_unavailable");
    // ...unless configured to fail open.
    assert_eq!(chat(&open, &budgeted).await.status(), 200);
    let ready: Value = closed
        .client
        .get(closed.url("/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (ready["status"].as_str(), ready["access"]["redis"].as_str()),
        (Some("degraded"), Some("down"))
    );
    let metrics = closed
        .client
        .get(closed.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("gatehouse_redis_up 0"), "{metrics}");
    assert!(
        metrics.contains("gatehouse_budget_rejected_total{reason=\"unavailable\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gatehouse_redis_fallbacks_total{op=\"admit\"}"),
        "{metrics}"
    );

    // Redis returns (empty: it kept nothing): the probe notices, budgets are re-seeded from the
    // ledger, and budgeted requests pass again.
    redis.restart();
    let back = eventually(Duration::from_secs(5), || async {
        let v: Value = closed
            .client
            .get(closed.url("/ready"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["access"]["redis"] == "up"
    })
    .await;
    assert!(back.is_some(), "redis was not picked up again");
    assert_eq!(chat(&closed, &budgeted).await.status(), 200);
    let r = closed
        .client
        .get(closed.url("/v1/usage"))
        .bearer_auth(&budgeted)
        .send()
        .await
        .unwrap();
    let u: Value = r.json().await.unwrap();
    // Two calls booked before the crash and after it (1,018 each) plus the fail-open one, whose
    // spend the re-seed read from the ledger (if it was flushed by then) or not: at least 2,036.
    let spent = u["budgets"]["daily"]["spent_micros"].as_i64().unwrap();
    assert!(spent >= 2_036, "{u}");
}

fn bucket(key: &str, limit: u64, cost: u64) -> Bucket {
    Bucket {
        key: key.into(),
        dim: Dim::Tokens,
        scope: Scope::Key,
        limit,
        period: Duration::from_secs(60),
        cost,
    }
}

/// The same plans give the same verdicts on both backends.
#[tokio::test]
async fn both_backends_agree() {
    let Some(url) = redis_url() else { return };
    let redis = RedisBackend::new(&RedisConfig {
        url: url.into(),
        timeout: Duration::from_secs(1),
        key_prefix: format!("conf{}:", uuid::Uuid::new_v4().simple()),
    })
    .unwrap();
    // The first ping connects.
    redis.ping().await.unwrap();
    let local = LocalBackend::new();
    let plan = |cost: u64, amount: i64| Plan {
        buckets: vec![bucket("r", 10, 1), bucket("t", 1_000, cost)],
        lease: Some(Lease {
            key: "l".into(),
            max: 2,
            id: uuid::Uuid::new_v4().to_string(),
            ttl: Duration::from_secs(60),
        }),
        budgets: vec![BudgetCharge {
            key: "b".into(),
            scope: BudgetScope::KeyDaily,
            limit: 100,
            amount,
            period_end_ms: 4_102_444_800_000,
        }],
    };
    // (plan, expected verdict kind); nothing is charged by a refusal.
    let steps = [
        (plan(1_001, 1), "rate"),  // bad input: more tokens than the limit
        (plan(10, 101), "budget"), // bad input: more than the whole budget
        (plan(500, 60), "ok"),
        (plan(10, 60), "budget"),
        (plan(10, 40), "ok"),
        (plan(10, 0), "concurrency"),
    ];
    let mut leases = Vec::new();
    for (i, (p, want)) in steps.iter().enumerate() {
        let l = local.admit(p, 0);
        let r = redis.admit(p).await.unwrap();
        let kind = |v: &Verdict| match v {
            Verdict::Admitted { .. } => "ok",
            Verdict::RateLimited { .. } => "rate",
            Verdict::OverBudget { .. } => "budget",
            Verdict::TooManyConcurrent => "concurrency",
        };
        assert_eq!((kind(&l), kind(&r)), (*want, *want), "step {i}");
        if let (Verdict::Admitted { budgets: lb, .. }, Verdict::Admitted { budgets: rb, .. }) =
            (&l, &r)
        {
            assert_eq!(lb, rb, "step {i}");
            leases.push(p.lease.clone().unwrap());
        }
    }
    // Settle the first admission: 100 tokens used (400 back), 85 spent: 80 % crossed once.
    let settle = |lease: &Lease, local_id: bool| Settlement {
        tokens: vec![TokenCorrection {
            key: "t".into(),
            limit: 1_000,
            period: Duration::from_secs(60),
            delta: -400,
        }],
        lease: Some((
            "l".into(),
            if local_id {
                String::new()
            } else {
                lease.id.clone()
            },
        )),
        budgets: vec![BudgetSettle {
            key: "b".into(),
            scope: BudgetScope::KeyDaily,
            limit: 100,
            reserved: 60,
            actual: 85,
            period_end_ms: 4_102_444_800_000,
        }],
    };
    let lc = local.settle(&settle(&leases[0], true), 0);
    let rc = redis.settle(&settle(&leases[0], false)).await.unwrap();
    assert_eq!(lc, rc);
    assert_eq!((lc.len(), lc[0].percent, lc[0].spent), (1, 80, 85));
    let want = BudgetState {
        spent: 85,
        reserved: 40,
    };
    assert_eq!(
        (
            local.budget_state("b"),
            redis.budget_state("b").await.unwrap()
        ),
        (want, want)
    );
    // 110 tokens charged in total: both buckets are 6.6 s ahead, less the few ms since.
    for ahead in [
        local.bucket_ahead("t"),
        redis.bucket_ahead("t").await.unwrap(),
    ] {
        assert!((6_500_000..=6_600_000).contains(&ahead), "{ahead}");
    }
    // The lease was released on both: one more request fits.
    assert!(matches!(
        local.admit(&plan(10, 0), 0),
        Verdict::Admitted { .. }
    ));
    assert!(matches!(
        redis.admit(&plan(10, 0)).await.unwrap(),
        Verdict::Admitted { .. }
    ));
}
