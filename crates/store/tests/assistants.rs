//! Assistants (versions, import) and conversations (owner scoping, messages, ratings, cost) on
//! both backends: each check runs on a fresh SQLite file, and on a fresh PostgreSQL schema when
//! `GATEHOUSE_TEST_POSTGRES_URL` is set. Experiments and reports are in `experiments.rs`.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod both;
mod common;

use both::{NOW, on_both, reply, user};
use store::{ImportCounts, NewConversation};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_back_a_conversation_waits_for_other_writers() {
    on_both(|s| async move {
        let new = NewConversation {
            owner: "-:alice".into(),
            owner_key_id: None,
            assistant_id: None,
            model: "m1".into(),
            title: None,
        };
        let busy = s.create_conversation(&new, NOW).await.unwrap();
        let cut = s.create_conversation(&new, NOW).await.unwrap();
        const ROUNDS: i64 = 60;
        // Another connection keeps writing while the conversation is cut back and refilled.
        let writer = {
            let s = s.clone();
            tokio::spawn(async move {
                for i in 0..ROUNDS * 4 {
                    s.add_conversation_cost(busy.id, 1, NOW + i).await.unwrap();
                }
            })
        };
        for i in 0..ROUNDS {
            let (ids, _) = s
                .append_messages(cut.id, &[user("q"), reply("a", 1, None)], 1, NOW + i)
                .await
                .unwrap()
                .unwrap();
            let deleted = s
                .truncate_conversation(cut.id, "-:alice", ids[1], NOW + i)
                .await
                .unwrap();
            assert_eq!(deleted, Some(1));
        }
        writer.await.unwrap();
        let got = s.conversation(cut.id, "-:alice").await.unwrap().unwrap();
        assert_eq!((got.message_count, got.cost_micros), (ROUNDS, ROUNDS));
        let busy = s.conversation(busy.id, "-:alice").await.unwrap().unwrap();
        assert_eq!(busy.cost_micros, ROUNDS * 4);
    })
    .await;
}
