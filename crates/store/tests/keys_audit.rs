//! API keys, the key-set version and the audit log, identically on SQLite and (when
//! `GATEHOUSE_TEST_POSTGRES_URL` is set) PostgreSQL.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use common::{PgSchema, TempDir};
use store::{AuditEntry, AuditFilter, NewApiKey, Store, UsageRecord};

fn new_key(prefix: &str) -> NewApiKey {
    NewApiKey {
        prefix: prefix.into(),
        hash: format!("{prefix}-hash"),
        name: "ci".into(),
        owner: Some("ana".into()),
        team: Some("platform".into()),
        allowed_models: Some(r#"["m1"]"#.into()),
        rpm: Some(50),
        tpm: None,
        max_concurrent: Some(4),
        daily_budget_micros: Some(1_000_000),
        monthly_budget_micros: None,
        expires_at_ms: Some(9_000_000_000_000),
        metadata: r#"{"env":"prod"}"#.into(),
        priority: "high".into(),
        allow_downgrade: true,
    }
}

async fn check_keys(store: &Store) {
    assert_eq!(store.keys_version().await.unwrap(), 0);
    assert!(store.list_keys().await.unwrap().is_empty());
    let a = store.insert_key(&new_key("ghk_aaaa"), 1_000).await.unwrap();
    let b = store.insert_key(&new_key("ghk_bbbb"), 2_000).await.unwrap();
    assert_eq!(store.keys_version().await.unwrap(), 2);
    assert_eq!(
        (
            a.prefix.as_str(),
            a.hash.as_str(),
            a.rpm,
            a.tpm,
            a.max_concurrent,
            a.daily_budget_micros,
            a.created_at_ms,
            a.allow_downgrade,
            a.priority.as_str(),
            a.metadata.as_str(),
            a.allowed_models.as_deref(),
            a.revoked_at_ms,
        ),
        (
            "ghk_aaaa",
            "ghk_aaaa-hash",
            Some(50),
            None,
            Some(4),
            Some(1_000_000),
            1_000,
            true,
            "high",
            r#"{"env":"prod"}"#,
            Some(r#"["m1"]"#),
            None
        )
    );
    // Bad input: a second key with the same prefix violates the unique index.
    assert!(store.insert_key(&new_key("ghk_aaaa"), 3_000).await.is_err());
    assert_eq!(store.keys_version().await.unwrap(), 2);

    let revoked = store.revoke_key(a.id, 5_000).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at_ms, Some(5_000));
    // Revoking again keeps the first time; a missing id answers None.
    let again = store.revoke_key(a.id, 6_000).await.unwrap().unwrap();
    assert_eq!(again.revoked_at_ms, Some(5_000));
    assert!(store.revoke_key(999, 6_000).await.unwrap().is_none());

    let rotated = store
        .rotate_key(b.id, "ghk_cccc", "ghk_cccc-hash", Some(7_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            rotated.prefix.as_str(),
            rotated.previous_prefix.as_deref(),
            rotated.previous_hash.as_deref(),
            rotated.previous_expires_at_ms,
            rotated.id,
        ),
        (
            "ghk_cccc",
            Some("ghk_bbbb"),
            Some("ghk_bbbb-hash"),
            Some(7_000),
            b.id
        )
    );
    // Bad input: rotating a revoked key does nothing.
    assert!(
        store
            .rotate_key(a.id, "ghk_dddd", "h", None)
            .await
            .unwrap()
            .is_none()
    );
    let reset = store.reset_key_budget(b.id, 8_000).await.unwrap().unwrap();
    assert_eq!(reset.budget_reset_at_ms, Some(8_000));
    assert_eq!(store.get_key(b.id).await.unwrap().unwrap(), reset);
    assert!(store.get_key(12_345).await.unwrap().is_none());
    let all = store.list_keys().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].id, a.id);
    // create, create, revoke, revoke again, revoke(missing id: no row, still bumped), rotate,
    // rotate(revoked: no row, still bumped), reset.
    assert_eq!(store.keys_version().await.unwrap(), 8);

    let mut r = UsageRecord {
        key_id: Some(b.id),
        ts_ms: 10_000,
        cost_micros: 40,
        ..common::record(1)
    };
    let mut rows = vec![r.clone()];
    r.request_id = "r2".into();
    r.ts_ms = 20_000;
    rows.push(r.clone());
    r.request_id = "r3".into();
    r.key_id = None;
    rows.push(r);
    store.insert_usage(&rows).await.unwrap();
    assert_eq!(
        store.cost_by_key_since(15_000).await.unwrap(),
        vec![(b.id, 40)]
    );
    assert_eq!(store.cost_since(Some(b.id), 0).await.unwrap(), 80);
    assert_eq!(store.cost_since(None, 0).await.unwrap(), 120);
    assert_eq!(store.cost_since(Some(a.id), 0).await.unwrap(), 0);
}

async fn check_audit(store: &Store) {
    let entry = |i: i64, action: &str| AuditEntry {
        ts_ms: 1_000 * i,
        actor: if i % 2 == 0 { "admin" } else { "ip:127.0.0.1" }.into(),
        action: action.into(),
        target: Some(format!("key:{i}")),
        outcome: "ok".into(),
        request_id: Some(format!("req-{i}")),
        ip: Some("127.0.0.1".into()),
        detail: Some(format!("{{\"i\":{i}}}")),
        ..AuditEntry::default()
    };
    let mut entries: Vec<_> = (1..=10).map(|i| entry(i, "key.create")).collect();
    entries.push(entry(11, "auth.failure"));
    // Bad input: NUL characters and an over-long actor are cleaned, not fatal to the batch.
    entries.push(AuditEntry {
        actor: format!("a\0{}", "x".repeat(2_000)),
        ..entry(12, "auth.failure")
    });
    store.insert_audit(&entries).await.unwrap();
    assert_eq!(store.audit_count().await.unwrap(), 12);
    let all = store
        .query_audit(&AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 12);
    assert_eq!(all[0].ts_ms, 12_000);
    assert_eq!(all[0].actor.len(), 512);
    assert!(!all[0].actor.contains('\0'));
    assert_eq!(all[1].detail.as_deref(), Some(r#"{"i":11}"#));
    let failures = store
        .query_audit(&AuditFilter {
            action: Some("auth.failure".into()),
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(failures.len(), 2);
    let window = store
        .query_audit(&AuditFilter {
            actor: Some("admin".into()),
            since_ms: Some(3_000),
            until_ms: Some(9_000),
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let ts: Vec<i64> = window.iter().map(|e| e.ts_ms).collect();
    assert_eq!(ts, vec![8_000, 6_000, 4_000]);
    let page = store
        .query_audit(&AuditFilter {
            before_id: Some(all[2].id),
            limit: 2,
            target: None,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|e| e.ts_ms).collect::<Vec<_>>(),
        vec![9_000, 8_000]
    );
    let by_target = store
        .query_audit(&AuditFilter {
            target: Some("key:5".into()),
            outcome: Some("ok".into()),
            limit: 0,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(by_target.len(), 1);
    assert_eq!(by_target[0].request_id.as_deref(), Some("req-5"));
}

#[tokio::test]
async fn sqlite_keys_and_audit() {
    let dir = TempDir::new("keys");
    let store = Store::connect(&dir.sqlite_url()).await.unwrap();
    check_keys(&store).await;
    check_audit(&store).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_keys_and_audit() {
    let Some(base) = common::postgres_url() else {
        return;
    };
    let schema = PgSchema::create(&base).await;
    let store = Store::connect(&schema.url).await.unwrap();
    check_keys(&store).await;
    check_audit(&store).await;
    store.close().await;
    schema.drop().await;
}
