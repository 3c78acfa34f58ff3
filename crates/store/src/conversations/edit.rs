//! Editing a conversation after the fact: its title, and cutting it back to an earlier message
//! (for a regenerated reply or an edited question). Scoped by `owner` like every other read and
//! write; the cost already spent stays on the conversation.

use crate::StoreError;
use crate::store::{Store, on_pool};

impl Store {
    /// Sets (or clears) the title of `owner`'s conversation; false when there is none.
    pub async fn rename_conversation(
        &self,
        id: i64,
        owner: &str,
        title: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let n = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE conversations SET title = $3, updated_at_ms = $4 WHERE id = $1 AND owner = $2",
            )
            .bind(id)
            .bind(owner)
            .bind(title)
            .bind(now_ms)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n > 0)
    }

    /// Deletes the messages of `owner`'s conversation from `from_id` on, with their ratings,
    /// and drops a context summary that covered any of them. Returns how many messages were
    /// deleted; `None` when `owner` has no such conversation.
    pub async fn truncate_conversation(
        &self,
        id: i64,
        owner: &str,
        from_id: i64,
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            // A write comes first: on SQLite a transaction that starts by reading cannot take
            // the write lock later while another connection writes (it fails with "database is
            // locked" instead of waiting out the busy timeout).
            let found = sqlx::query(
                "UPDATE conversations SET updated_at_ms = $3 WHERE id = $1 AND owner = $2",
            )
            .bind(id)
            .bind(owner)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if found == 0 {
                return Ok(None);
            }
            sqlx::query(
                "DELETE FROM ratings WHERE message_id IN \
                 (SELECT id FROM conversation_messages WHERE conversation_id = $1 AND id >= $2)",
            )
            .bind(id)
            .bind(from_id)
            .execute(&mut *tx)
            .await?;
            let deleted = sqlx::query(
                "DELETE FROM conversation_messages WHERE conversation_id = $1 AND id >= $2",
            )
            .bind(id)
            .bind(from_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let deleted = i64::try_from(deleted).unwrap_or(i64::MAX);
            sqlx::query(
                "UPDATE conversations SET message_count = message_count - $2, \
                 summary = CASE WHEN summary_through_id >= $3 THEN NULL ELSE summary END, \
                 summary_through_id = CASE WHEN summary_through_id >= $3 THEN NULL \
                 ELSE summary_through_id END WHERE id = $1",
            )
            .bind(id)
            .bind(deleted)
            .bind(from_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Some(deleted))
        })
    }
}
