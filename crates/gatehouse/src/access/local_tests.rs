use std::time::Duration;

use super::*;
use crate::access::plan::{
    Bucket, BudgetCharge, BudgetScope, BudgetSettle, Dim, Lease, Scope, TokenCorrection,
};

const MIN: Duration = Duration::from_secs(60);

fn bucket(key: &str, dim: Dim, limit: u64, cost: u64) -> Bucket {
    Bucket {
        key: key.into(),
        dim,
        scope: Scope::Key,
        limit,
        period: MIN,
        cost,
    }
}

fn budget(key: &str, limit: i64, amount: i64) -> BudgetCharge {
    BudgetCharge {
        key: key.into(),
        scope: BudgetScope::KeyDaily,
        limit,
        amount,
        period_end_ms: 86_400_000,
    }
}

#[tokio::test(start_paused = true)]
async fn gcra_over_paused_time_and_sweeping() {
    let b = LocalBackend::new();
    let plan = Plan {
        buckets: vec![bucket("r", Dim::Requests, 50, 1)],
        ..Plan::default()
    };
    let admitted = (0..200)
        .filter(|_| matches!(b.admit(&plan, 0), Verdict::Admitted { .. }))
        .count();
    assert_eq!(admitted, 50);
    assert_eq!(
        b.admit(&plan, 0),
        Verdict::RateLimited {
            index: 0,
            retry_after: Some(Duration::from_millis(1_200))
        }
    );
    tokio::time::advance(Duration::from_millis(1_199)).await;
    assert!(matches!(b.admit(&plan, 0), Verdict::RateLimited { .. }));
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(matches!(b.admit(&plan, 0), Verdict::Admitted { .. }));
    assert!(matches!(b.admit(&plan, 0), Verdict::RateLimited { .. }));
    // Idle state is evicted once the bucket is full again (TAT passed), and not before.
    assert_eq!(b.sweep(0), 1);
    tokio::time::advance(MIN).await;
    assert_eq!(b.sweep(0), 0);
    assert_eq!(b.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn all_or_nothing_across_buckets_leases_and_budgets() {
    let b = LocalBackend::new();
    let plan = |tokens: u64, amount: i64| Plan {
        buckets: vec![
            bucket("r", Dim::Requests, 10, 1),
            bucket("t", Dim::Tokens, 1_000, tokens),
        ],
        lease: Some(Lease {
            key: "l".into(),
            max: 2,
            id: "x".into(),
            ttl: MIN,
        }),
        budgets: vec![budget("d", 100, amount)],
    };
    // Bad input: a token cost over the whole limit is denied for good and charges nothing.
    assert_eq!(
        b.admit(&plan(1_001, 10), 0),
        Verdict::RateLimited {
            index: 1,
            retry_after: None
        }
    );
    assert_eq!(b.bucket_ahead("r"), 0);
    // Over budget: nothing charged either.
    assert!(matches!(
        b.admit(&plan(10, 101), 0),
        Verdict::OverBudget { index: 0, .. }
    ));
    assert_eq!(b.bucket_ahead("r"), 0);
    assert_eq!(
        b.budget_state("d"),
        BudgetState {
            spent: 0,
            reserved: 0
        }
    );
    let Verdict::Admitted { buckets, budgets } = b.admit(&plan(500, 60), 0) else {
        panic!("denied")
    };
    assert_eq!(
        buckets,
        vec![
            BucketState {
                ahead_us: 6_000_000
            },
            BucketState {
                ahead_us: 30_000_000
            }
        ]
    );
    assert_eq!(
        budgets,
        vec![BudgetState {
            spent: 0,
            reserved: 0
        }]
    );
    // 60 reserved: a second 60 does not fit in 100, 40 does.
    assert!(matches!(
        b.admit(&plan(10, 60), 0),
        Verdict::OverBudget { .. }
    ));
    assert!(matches!(
        b.admit(&plan(10, 40), 0),
        Verdict::Admitted { .. }
    ));
    // Two leases held: the third request is refused.
    assert_eq!(b.admit(&plan(10, 0), 0), Verdict::TooManyConcurrent);
    // Settle the first: it used 100 tokens (400 back) and cost 85, crossing 80%.
    let crossed = b.settle(
        &Settlement {
            tokens: vec![TokenCorrection {
                key: "t".into(),
                limit: 1_000,
                period: MIN,
                delta: -400,
            }],
            lease: Some(("l".into(), "x".into())),
            budgets: vec![BudgetSettle {
                key: "d".into(),
                scope: BudgetScope::KeyDaily,
                limit: 100,
                reserved: 60,
                actual: 85,
                period_end_ms: 86_400_000,
            }],
        },
        0,
    );
    assert_eq!(
        crossed,
        vec![Crossed {
            budget: 0,
            percent: 80,
            spent: 85
        }]
    );
    assert_eq!(
        b.budget_state("d"),
        BudgetState {
            spent: 85,
            reserved: 40
        }
    );
    // 500 + 10 - 400 tokens charged so far: 110 → 6.6 s ahead.
    assert_eq!(b.bucket_ahead("t"), 6_600_000);
    // A free request (amount 0) still passes a full budget.
    assert!(matches!(b.admit(&plan(10, 0), 0), Verdict::Admitted { .. }));
    b.reset_budget("d");
    assert_eq!(
        b.budget_state("d"),
        BudgetState {
            spent: 0,
            reserved: 40
        }
    );
    b.seed_budget("d", 7, 86_400_000);
    assert_eq!(b.budget_state("d").spent, 7);
    // Budgets outlive their period by a day, then go.
    b.sweep(3 * 86_400_000);
    assert_eq!(
        b.budget_state("d").reserved,
        40,
        "kept while a reservation is open"
    );
}
