//! Conversations, their messages and the ratings of those messages.
//!
//! Every read and write that a client can reach is scoped by `owner`, the canonical string the
//! gateway derives from the API key and end-user id; a conversation that exists but belongs to
//! someone else is indistinguishable from one that does not exist.

use crate::StoreError;
use crate::store::{Store, on_pool};

/// A conversation without its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRecord {
    pub id: i64,
    pub owner: String,
    pub owner_key_id: Option<i64>,
    pub assistant_id: Option<i64>,
    /// `assistant/<slug>` or a model name.
    pub model: String,
    pub title: Option<String>,
    /// Summary of the messages up to and including `summary_through_id`.
    pub summary: Option<String>,
    pub summary_through_id: Option<i64>,
    /// Integer micro-USD of every request made for this conversation.
    pub cost_micros: i64,
    pub message_count: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// What a new conversation starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConversation {
    pub owner: String,
    pub owner_key_id: Option<i64>,
    pub assistant_id: Option<i64>,
    pub model: String,
    pub title: Option<String>,
}

/// One stored message. Assistant messages carry what produced them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageRecord {
    pub id: i64,
    pub conversation_id: i64,
    /// `user`, `assistant` or `system`.
    pub role: String,
    pub content: String,
    pub request_id: Option<String>,
    pub model: Option<String>,
    pub assistant_version_id: Option<i64>,
    pub experiment_id: Option<i64>,
    pub variant: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_micros: i64,
    pub created_at_ms: i64,
    /// +1 (thumbs up), -1 (thumbs down) or none.
    pub rating: Option<i64>,
    pub rating_comment: Option<String>,
}

type ConversationRow = (
    i64,
    String,
    Option<i64>,
    Option<i64>,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    i64,
    i64,
    i64,
    i64,
);

type MessageRow = (
    i64,
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<String>,
);

const CONVERSATION_COLUMNS: &str = "id, owner, owner_key_id, assistant_id, model, title, \
     summary, summary_through_id, cost_micros, message_count, created_at_ms, updated_at_ms";

fn message(r: MessageRow) -> MessageRecord {
    MessageRecord {
        id: r.0,
        conversation_id: r.1,
        role: r.2,
        content: r.3,
        request_id: r.4,
        model: r.5,
        assistant_version_id: r.6,
        experiment_id: r.7,
        variant: r.8,
        prompt_tokens: r.9,
        completion_tokens: r.10,
        cost_micros: r.11,
        created_at_ms: r.12,
        rating: r.13,
        rating_comment: r.14,
    }
}

fn conversation(r: ConversationRow) -> ConversationRecord {
    ConversationRecord {
        id: r.0,
        owner: r.1,
        owner_key_id: r.2,
        assistant_id: r.3,
        model: r.4,
        title: r.5,
        summary: r.6,
        summary_through_id: r.7,
        cost_micros: r.8,
        message_count: r.9,
        created_at_ms: r.10,
        updated_at_ms: r.11,
    }
}

impl Store {
    pub async fn create_conversation(
        &self,
        new: &NewConversation,
        now_ms: i64,
    ) -> Result<ConversationRecord, StoreError> {
        let sql = format!(
            "INSERT INTO conversations (owner, owner_key_id, assistant_id, model, title, \
             created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $6) \
             RETURNING {CONVERSATION_COLUMNS}"
        );
        let row: ConversationRow = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(&new.owner)
                .bind(new.owner_key_id)
                .bind(new.assistant_id)
                .bind(&new.model)
                .bind(&new.title)
                .bind(now_ms)
                .fetch_one(pool)
                .await?
        });
        Ok(conversation(row))
    }

    /// The conversation, when it exists and belongs to `owner`.
    pub async fn conversation(
        &self,
        id: i64,
        owner: &str,
    ) -> Result<Option<ConversationRecord>, StoreError> {
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1 AND owner = $2"
        );
        let row: Option<ConversationRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(id)
                .bind(owner)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(conversation))
    }

    /// `owner`'s conversations, newest first, with ids below `before` when given.
    pub async fn conversations(
        &self,
        owner: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE owner = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
        );
        let rows: Vec<ConversationRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(owner)
                .bind(before.unwrap_or(i64::MAX))
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(conversation).collect())
    }

    /// Deletes the conversation with its messages and ratings; false when `owner` has no such
    /// conversation.
    pub async fn delete_conversation(&self, id: i64, owner: &str) -> Result<bool, StoreError> {
        let n = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM conversations WHERE id = $1 AND owner = $2")
                .bind(id)
                .bind(owner)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }

    /// Messages of a conversation, oldest first, with their ratings. Callers check ownership
    /// first (through [`Store::conversation`]).
    pub async fn messages(&self, conversation_id: i64) -> Result<Vec<MessageRecord>, StoreError> {
        let rows: Vec<MessageRow> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT m.id, m.conversation_id, m.role, m.content, m.request_id, m.model, \
                 m.assistant_version_id, m.experiment_id, m.variant, m.prompt_tokens, \
                 m.completion_tokens, m.cost_micros, m.created_at_ms, r.rating, r.comment \
                 FROM conversation_messages m LEFT JOIN ratings r ON r.message_id = m.id \
                 WHERE m.conversation_id = $1 ORDER BY m.id",
            )
            .bind(conversation_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(message).collect())
    }

    /// Appends `messages` (their `id` and `conversation_id` are ignored) and adds `cost_micros`
    /// to the conversation, in one transaction. Returns the new message ids and the
    /// conversation's cost afterwards; `None` when the conversation is gone.
    pub async fn append_messages(
        &self,
        conversation_id: i64,
        messages: &[MessageRecord],
        cost_micros: i64,
        now_ms: i64,
    ) -> Result<Option<(Vec<i64>, i64)>, StoreError> {
        let count = i64::try_from(messages.len()).unwrap_or(i64::MAX);
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let total: Option<(i64,)> = sqlx::query_as(
                "UPDATE conversations SET cost_micros = cost_micros + $2, \
                 message_count = message_count + $3, updated_at_ms = $4 WHERE id = $1 \
                 RETURNING cost_micros",
            )
            .bind(conversation_id)
            .bind(cost_micros)
            .bind(count)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((total,)) = total else {
                return Ok(None);
            };
            let mut ids = Vec::with_capacity(messages.len());
            for m in messages {
                let (id,): (i64,) = sqlx::query_as(
                    "INSERT INTO conversation_messages (conversation_id, role, content, \
                     request_id, model, assistant_version_id, experiment_id, variant, \
                     prompt_tokens, completion_tokens, cost_micros, created_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
                )
                .bind(conversation_id)
                .bind(&m.role)
                .bind(&m.content)
                .bind(&m.request_id)
                .bind(&m.model)
                .bind(m.assistant_version_id)
                .bind(m.experiment_id)
                .bind(&m.variant)
                .bind(m.prompt_tokens)
                .bind(m.completion_tokens)
                .bind(m.cost_micros)
                .bind(now_ms)
                .fetch_one(&mut *tx)
                .await?;
                ids.push(id);
            }
            tx.commit().await?;
            Ok(Some((ids, total)))
        })
    }

    /// Adds cost that produced no stored message (summaries, failed or abandoned requests).
    /// Returns the conversation's cost afterwards, `None` when it is gone.
    pub async fn add_conversation_cost(
        &self,
        conversation_id: i64,
        cost_micros: i64,
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let row: Option<(i64,)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "UPDATE conversations SET cost_micros = cost_micros + $2, updated_at_ms = $3 \
                 WHERE id = $1 RETURNING cost_micros",
            )
            .bind(conversation_id)
            .bind(cost_micros)
            .bind(now_ms)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|r| r.0))
    }

    /// Stores the context summary covering messages up to `through_id`.
    pub async fn set_conversation_summary(
        &self,
        conversation_id: i64,
        summary: &str,
        through_id: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE conversations SET summary = $2, summary_through_id = $3 WHERE id = $1",
            )
            .bind(conversation_id)
            .bind(summary)
            .bind(through_id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Rates an assistant message of `owner`'s conversation (+1 or -1), replacing an earlier
    /// rating of it. The experiment and variant are copied from the message. `None` when the
    /// message is not an assistant message of that conversation.
    pub async fn rate_message(
        &self,
        conversation_id: i64,
        message_id: i64,
        owner: &str,
        rating: i64,
        comment: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<()>, StoreError> {
        let n = on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO ratings (message_id, conversation_id, experiment_id, variant, \
                 rating, comment, created_at_ms) \
                 SELECT m.id, m.conversation_id, m.experiment_id, m.variant, $4, $5, $6 \
                 FROM conversation_messages m JOIN conversations c ON c.id = m.conversation_id \
                 WHERE m.id = $1 AND m.conversation_id = $2 AND c.owner = $3 \
                 AND m.role = 'assistant' \
                 ON CONFLICT (message_id) DO UPDATE SET rating = excluded.rating, \
                 comment = excluded.comment, created_at_ms = excluded.created_at_ms",
            )
            .bind(message_id)
            .bind(conversation_id)
            .bind(owner)
            .bind(rating)
            .bind(comment)
            .bind(now_ms)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok((n > 0).then_some(()))
    }
}
