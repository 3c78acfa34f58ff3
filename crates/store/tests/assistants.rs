//! Assistants, conversations, experiments and usage reports on both backends: each check runs
//! on a fresh SQLite file, and on a fresh PostgreSQL schema when `GATEHOUSE_TEST_POSTGRES_URL`
//! is set.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use common::{PgSchema, TempDir};
use store::{
    ImportCounts, MessageRecord, NewConversation, NewExperiment, Store, UsageDimension, UsageGroup,
    UsageRecord, VariantRatings, VariantUsage,
};

const NOW: i64 = 1_750_000_000_000;
const DAY: i64 = 86_400_000;

async fn on_both<F, Fut>(check: F)
where
    F: Fn(Store) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = TempDir::new("assistants");
    let store = Store::connect(&dir.sqlite_url()).await.unwrap();
    check(store.clone()).await;
    store.close().await;
    if let Some(base) = common::postgres_url() {
        let schema = PgSchema::create(&base).await;
        let store = Store::connect(&schema.url).await.unwrap();
        check(store.clone()).await;
        store.close().await;
        schema.drop().await;
    }
}

#[tokio::test]
async fn every_edit_is_a_version_and_delete_keeps_history_for_revival() {
    on_both(|s| async move {
        let a = s
            .create_assistant("help", "{\"v\":1}", None, NOW)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (a.slug.as_str(), a.version, a.spec.as_str()),
            ("help", 1, "{\"v\":1}")
        );
        // Bad input: the same slug again while it is live.
        assert_eq!(
            s.create_assistant("help", "{}", None, NOW).await.unwrap(),
            None
        );
        let b = s
            .update_assistant("help", "{\"v\":2}", None, NOW + 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((b.id, b.version, b.updated_at_ms), (a.id, 2, NOW + 1));
        assert_ne!(b.version_id, a.version_id);
        // An identical spec is not an edit.
        let same = s
            .update_assistant("help", "{\"v\":2}", None, NOW + 2)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((same.version, same.version_id), (2, b.version_id));
        // Bad input: updating a slug that does not exist.
        assert_eq!(
            s.update_assistant("nope", "{}", None, NOW).await.unwrap(),
            None
        );
        let versions = s.assistant_versions("help").await.unwrap();
        let numbers: Vec<(i64, &str)> = versions
            .iter()
            .map(|v| (v.version, v.spec.as_str()))
            .collect();
        assert_eq!(numbers, [(1, "{\"v\":1}"), (2, "{\"v\":2}")]);
        assert_eq!(
            s.assistant_version("help", 1).await.unwrap().unwrap().id,
            a.version_id
        );
        assert_eq!(s.assistant_version("help", 3).await.unwrap(), None);

        assert!(s.delete_assistant("help", NOW + 3).await.unwrap());
        assert!(!s.delete_assistant("help", NOW + 3).await.unwrap());
        assert_eq!(s.assistant("help").await.unwrap(), None);
        assert!(s.assistants().await.unwrap().is_empty());
        let revived = s
            .create_assistant("help", "{\"v\":3}", Some("again"), NOW + 4)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((revived.id, revived.version), (a.id, 3));
        let v3 = s.assistant_version("help", 3).await.unwrap().unwrap();
        assert_eq!(v3.note.as_deref(), Some("again"));
    })
    .await;
}

#[tokio::test]
async fn import_is_one_transaction_with_exact_counts() {
    on_both(|s| async move {
        s.create_assistant("a", "{\"x\":1}", None, NOW)
            .await
            .unwrap();
        s.create_assistant("b", "{\"x\":1}", None, NOW)
            .await
            .unwrap();
        let items = vec![
            ("a".to_owned(), "{\"x\":1}".to_owned()),
            ("b".to_owned(), "{\"x\":2}".to_owned()),
            ("c".to_owned(), "{\"x\":3}".to_owned()),
        ];
        let counts = s
            .import_assistants(&items, Some("import"), NOW + 1)
            .await
            .unwrap();
        assert_eq!(
            counts,
            ImportCounts {
                created: 1,
                updated: 1,
                unchanged: 1
            }
        );
        let all: Vec<(String, i64)> = s
            .assistants()
            .await
            .unwrap()
            .into_iter()
            .map(|a| (a.slug, a.version))
            .collect();
        assert_eq!(all, [("a".into(), 1), ("b".into(), 2), ("c".into(), 1)]);
    })
    .await;
}

fn reply(content: &str, cost: i64, variant: Option<&str>) -> MessageRecord {
    MessageRecord {
        role: "assistant".into(),
        content: content.into(),
        variant: variant.map(str::to_owned),
        experiment_id: variant.map(|_| 1),
        cost_micros: cost,
        prompt_tokens: 10,
        completion_tokens: 5,
        ..MessageRecord::default()
    }
}

fn user(content: &str) -> MessageRecord {
    MessageRecord {
        role: "user".into(),
        content: content.into(),
        ..MessageRecord::default()
    }
}

#[tokio::test]
async fn conversations_are_scoped_by_owner() {
    on_both(|s| async move {
        let new = |owner: &str| NewConversation {
            owner: owner.into(),
            owner_key_id: None,
            assistant_id: None,
            model: "m1".into(),
            title: Some("t".into()),
        };
        let c = s.create_conversation(&new("-:alice"), NOW).await.unwrap();
        let other = s.create_conversation(&new("-:bob"), NOW).await.unwrap();
        assert_eq!((c.cost_micros, c.message_count), (0, 0));
        let (ids, total) = s
            .append_messages(c.id, &[user("hi"), reply("hello", 35, None)], 35, NOW + 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((ids.len(), total), (2, 35));
        assert_eq!(
            s.add_conversation_cost(c.id, 7, NOW + 2).await.unwrap(),
            Some(42)
        );
        let got = s.conversation(c.id, "-:alice").await.unwrap().unwrap();
        assert_eq!(
            (got.cost_micros, got.message_count, got.updated_at_ms),
            (42, 2, NOW + 2)
        );
        // Bad input: another owner asks for, lists, rates and deletes alice's conversation.
        assert_eq!(s.conversation(c.id, "-:bob").await.unwrap(), None);
        let bobs: Vec<i64> = s
            .conversations("-:bob", None, 10)
            .await
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(bobs, [other.id]);
        assert_eq!(
            s.rate_message(c.id, ids[1], "-:bob", 1, None, NOW)
                .await
                .unwrap(),
            None
        );
        assert!(!s.delete_conversation(c.id, "-:bob").await.unwrap());
        // Bad input: rating a user message, and a message of another conversation.
        assert_eq!(
            s.rate_message(c.id, ids[0], "-:alice", 1, None, NOW)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            s.rate_message(other.id, ids[1], "-:bob", 1, None, NOW)
                .await
                .unwrap(),
            None
        );

        s.rate_message(c.id, ids[1], "-:alice", 1, Some("good"), NOW)
            .await
            .unwrap()
            .unwrap();
        s.rate_message(c.id, ids[1], "-:alice", -1, None, NOW)
            .await
            .unwrap()
            .unwrap();
        let msgs = s.messages(c.id).await.unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(
            (msgs[1].rating, msgs[1].rating_comment.as_deref()),
            (Some(-1), None)
        );
        assert_eq!(
            (msgs[1].content.as_str(), msgs[1].cost_micros),
            ("hello", 35)
        );

        s.set_conversation_summary(c.id, "they greeted", ids[1])
            .await
            .unwrap();
        let got = s.conversation(c.id, "-:alice").await.unwrap().unwrap();
        assert_eq!(
            (got.summary.as_deref(), got.summary_through_id),
            (Some("they greeted"), Some(ids[1]))
        );
        assert!(s.delete_conversation(c.id, "-:alice").await.unwrap());
        assert!(s.messages(c.id).await.unwrap().is_empty());
        assert_eq!(
            s.append_messages(c.id, &[user("x")], 1, NOW).await.unwrap(),
            None
        );
    })
    .await;
}

fn ledger_row(i: i64, version_id: i64, variant: &str, latency: i64, status: i32) -> UsageRecord {
    UsageRecord {
        request_id: format!("r{i}"),
        ts_ms: NOW + i,
        key_id: Some(i % 2),
        route: store::Route::Chat,
        model: "m1".into(),
        provider: "up".into(),
        upstream_model: "u".into(),
        prompt_tokens: 10,
        completion_tokens: i,
        cached_tokens: 0,
        cost_micros: 100 + i,
        latency_ms: latency,
        ttft_ms: None,
        status,
        error_code: None,
        cache_status: store::CacheStatus::None,
        flags: 0,
        attempts: 1,
        served_by: None,
        fallback_reason: None,
        assistant_version_id: Some(version_id),
        variant: Some(variant.into()),
        conversation_id: Some(i % 3),
        cost_saved_micros: 0,
    }
}

#[tokio::test]
async fn experiments_do_not_overlap_and_promotion_is_a_version() {
    on_both(|s| async move {
        let a = s
            .create_assistant("exp", "{}", None, NOW)
            .await
            .unwrap()
            .unwrap();
        let new = |start: i64, end: Option<i64>| NewExperiment {
            assistant_id: a.id,
            name: "e".into(),
            variants: "[]".into(),
            starts_at_ms: start,
            ends_at_ms: end,
        };
        let first = s
            .create_experiment(&new(NOW, Some(NOW + DAY)), NOW)
            .await
            .unwrap()
            .unwrap();
        // Bad input: windows overlapping the first one, at either end and inside it.
        for (start, end) in [
            (NOW - DAY, Some(NOW + 1)),
            (NOW + DAY - 1, None),
            (NOW + 5, Some(NOW + 6)),
        ] {
            assert_eq!(
                s.create_experiment(&new(start, end), NOW).await.unwrap(),
                Err(first.id)
            );
        }
        let later = s
            .create_experiment(&new(NOW + DAY, None), NOW)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            s.live_experiment(a.id, NOW).await.unwrap().unwrap().id,
            first.id
        );
        assert_eq!(
            s.live_experiment(a.id, NOW + DAY)
                .await
                .unwrap()
                .unwrap()
                .id,
            later.id
        );

        // Ledger rows: variant A 3 requests (one failed), B 2; rows outside the window and of
        // plain requests do not count.
        let mut rows = vec![
            ledger_row(1, a.version_id, "A", 30, 200),
            ledger_row(2, a.version_id, "A", 10, 200),
            ledger_row(3, a.version_id, "A", 99, 502),
            ledger_row(4, a.version_id, "B", 20, 200),
            ledger_row(5, a.version_id, "B", 40, 200),
        ];
        let mut outside = ledger_row(6, a.version_id, "A", 1, 200);
        outside.ts_ms = NOW + DAY + 1;
        rows.push(outside);
        let mut plain = ledger_row(7, a.version_id, "A", 1, 200);
        plain.variant = None;
        rows.push(plain);
        s.insert_usage(&rows).await.unwrap();
        let usage = s
            .variant_usage(a.id, NOW, first.effective_end_ms())
            .await
            .unwrap();
        assert_eq!(
            usage,
            [
                VariantUsage {
                    variant: "A".into(),
                    requests: 3,
                    conversations: 3,
                    errors: 1,
                    prompt_tokens: 30,
                    completion_tokens: 6,
                    cost_micros: 306,
                },
                VariantUsage {
                    variant: "B".into(),
                    requests: 2,
                    conversations: 2,
                    errors: 0,
                    prompt_tokens: 20,
                    completion_tokens: 9,
                    cost_micros: 209,
                },
            ]
        );
        assert_eq!(
            s.variant_latencies(a.id, NOW, NOW + DAY, "A")
                .await
                .unwrap(),
            [10, 30]
        );

        let stopped = s
            .stop_experiment(
                first.id,
                NOW + 10,
                Some(("B", "{\"promoted\":true}", "promoted B")),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stopped.stopped_at_ms, Some(NOW + 10));
        assert_eq!(stopped.effective_end_ms(), NOW + 10);
        assert_eq!(stopped.promoted_variant.as_deref(), Some("B"));
        let current = s.assistant("exp").await.unwrap().unwrap();
        assert_eq!(
            (current.version, current.spec.as_str()),
            (2, "{\"promoted\":true}")
        );
        assert_eq!(stopped.promoted_version_id, Some(current.version_id));
        // Bad input: stopping it twice.
        assert_eq!(
            s.stop_experiment(first.id, NOW + 11, None).await.unwrap(),
            None
        );
        assert_eq!(s.experiments(a.id).await.unwrap().len(), 2);
        assert!(s.variant_ratings(first.id).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn ratings_count_per_variant() {
    on_both(|s| async move {
        let c = s
            .create_conversation(
                &NewConversation {
                    owner: "7:".into(),
                    owner_key_id: Some(7),
                    assistant_id: None,
                    model: "m".into(),
                    title: None,
                },
                NOW,
            )
            .await
            .unwrap();
        let msgs: Vec<MessageRecord> = ["A", "A", "A", "B"]
            .iter()
            .map(|v| reply("r", 1, Some(v)))
            .collect();
        let (ids, _) = s
            .append_messages(c.id, &msgs, 4, NOW)
            .await
            .unwrap()
            .unwrap();
        for (id, r) in ids.iter().zip([1, 1, -1, -1]) {
            s.rate_message(c.id, *id, "7:", r, None, NOW)
                .await
                .unwrap()
                .unwrap();
        }
        assert_eq!(
            s.variant_ratings(1).await.unwrap(),
            [
                (
                    "A".into(),
                    VariantRatings {
                        positive: 2,
                        total: 3
                    }
                ),
                (
                    "B".into(),
                    VariantRatings {
                        positive: 0,
                        total: 1
                    }
                ),
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn usage_report_groups_exactly() {
    on_both(|s| async move {
        let a = s
            .create_assistant("rep", "{}", None, NOW)
            .await
            .unwrap()
            .unwrap();
        let mut rows = vec![
            ledger_row(1, a.version_id, "A", 5, 200),
            ledger_row(2, a.version_id, "B", 5, 200),
            ledger_row(3, a.version_id, "A", 5, 500),
        ];
        let mut summary = ledger_row(4, a.version_id, "A", 5, 200);
        summary.flags = UsageRecord::FLAG_SUMMARY;
        summary.variant = None;
        rows.push(summary);
        let mut plain = ledger_row(5, 0, "x", 5, 200);
        plain.assistant_version_id = None;
        plain.variant = None;
        plain.model = "m2".into();
        plain.ts_ms = NOW + DAY;
        rows.push(plain);
        s.insert_usage(&rows).await.unwrap();
        let day = NOW / DAY;
        let by = s
            .usage_report(
                NOW,
                NOW + 2 * DAY,
                &[UsageDimension::Day, UsageDimension::Assistant],
            )
            .await
            .unwrap();
        assert_eq!(
            by,
            [
                UsageGroup {
                    day: Some(day),
                    assistant: Some("rep".into()),
                    requests: 4,
                    messages: 2,
                    errors: 1,
                    prompt_tokens: 40,
                    completion_tokens: 10,
                    cost_micros: 410,
                    ..UsageGroup::default()
                },
                UsageGroup {
                    day: Some(day + 1),
                    requests: 1,
                    messages: 1,
                    prompt_tokens: 10,
                    completion_tokens: 5,
                    cost_micros: 105,
                    ..UsageGroup::default()
                },
            ]
        );
        let by = s
            .usage_report(
                NOW,
                NOW + DAY,
                &[UsageDimension::Variant, UsageDimension::Key],
            )
            .await
            .unwrap();
        let keys: Vec<(Option<&str>, Option<i64>, i64)> = by
            .iter()
            .map(|g| (g.variant.as_deref(), g.key_id, g.cost_micros))
            .collect();
        // NULL sorts first on SQLite and last on PostgreSQL; compare as sets.
        let mut keys = keys;
        keys.sort();
        assert_eq!(
            keys,
            [
                (None, Some(0), 104),
                (Some("A"), Some(1), 204),
                (Some("B"), Some(0), 102)
            ]
        );
        let all = s.usage_report(NOW, NOW + 2 * DAY, &[]).await.unwrap();
        assert_eq!(
            (all.len(), all[0].requests, all[0].cost_micros),
            (1, 5, 515)
        );
        // An empty range has no groups.
        assert!(s.usage_report(0, 1, &[]).await.unwrap().is_empty());
        let today = s.assistant_usage_since(NOW).await.unwrap();
        assert_eq!(today.len(), 1);
        assert_eq!(
            (
                today[0].slug.as_str(),
                today[0].requests,
                today[0].messages,
                today[0].cost_micros
            ),
            ("rep", 4, 2, 410)
        );
        assert_eq!(
            s.assistant_cost_since(a.id, NOW + 2).await.unwrap(),
            102 + 103 + 104
        );
    })
    .await;
}
