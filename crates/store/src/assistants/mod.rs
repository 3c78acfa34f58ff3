//! Assistants and their version history.
//!
//! An assistant is a slug plus a chain of immutable versions; the gateway owns the shape of a
//! version's `spec` (a JSON document) and this module only stores it. Every change of the spec
//! adds a version and moves `current_version_id`; writing an identical spec adds nothing.
//! Deleting hides an assistant but keeps its versions, so usage records that point at them still
//! resolve; creating the same slug again revives it with a new version.

use crate::StoreError;
use crate::store::{Store, on_pool};

/// An assistant at its current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssistantRecord {
    pub id: i64,
    pub slug: String,
    /// Id of the current version (what usage records point at).
    pub version_id: i64,
    /// 1 for the first version, then 2, 3, …
    pub version: i64,
    pub spec: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// One stored version of an assistant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssistantVersion {
    pub id: i64,
    pub assistant_id: i64,
    pub version: i64,
    pub spec: String,
    /// Why the version exists when it was not a plain edit (import, promoted variant).
    pub note: Option<String>,
    pub created_at_ms: i64,
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportCounts {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
}

type RecordRow = (i64, String, i64, i64, String, i64, i64);
type VersionRow = (i64, i64, i64, String, Option<String>, i64);

const SELECT_LIVE: &str = "SELECT a.id, a.slug, v.id, v.version, v.spec, a.created_at_ms, \
     a.updated_at_ms FROM assistants a JOIN assistant_versions v ON v.id = a.current_version_id \
     WHERE a.deleted_at_ms IS NULL";
const SELECT_VERSIONS: &str = "SELECT v.id, v.assistant_id, v.version, v.spec, v.note, \
     v.created_at_ms FROM assistant_versions v JOIN assistants a ON a.id = v.assistant_id \
     WHERE a.slug = $1 AND a.deleted_at_ms IS NULL";
/// Locks a live assistant for the rest of the transaction (a write is the first statement, so
/// SQLite takes its write lock at once and PostgreSQL locks the row).
const TOUCH_LIVE: &str = "UPDATE assistants SET updated_at_ms = $2 \
     WHERE slug = $1 AND deleted_at_ms IS NULL RETURNING id";
/// Creates the slug, or revives it when deleted; no row when a live assistant has it.
const UPSERT: &str = "INSERT INTO assistants (slug, created_at_ms, updated_at_ms) \
     VALUES ($1, $2, $2) ON CONFLICT (slug) DO UPDATE SET deleted_at_ms = NULL, \
     updated_at_ms = excluded.updated_at_ms WHERE assistants.deleted_at_ms IS NOT NULL \
     RETURNING id";
const CURRENT_SPEC: &str = "SELECT v.spec FROM assistant_versions v \
     JOIN assistants a ON a.current_version_id = v.id WHERE a.id = $1";

fn record(
    (id, slug, version_id, version, spec, created_at_ms, updated_at_ms): RecordRow,
) -> AssistantRecord {
    AssistantRecord {
        id,
        slug,
        version_id,
        version,
        spec,
        created_at_ms,
        updated_at_ms,
    }
}

fn version((id, assistant_id, version, spec, note, created_at_ms): VersionRow) -> AssistantVersion {
    AssistantVersion {
        id,
        assistant_id,
        version,
        spec,
        note,
        created_at_ms,
    }
}

/// Adds the next version of assistant `$id` inside transaction `$tx` and makes it current.
macro_rules! insert_version {
    ($tx:expr, $id:expr, $spec:expr, $note:expr, $now:expr) => {{
        let (next,): (i64,) = sqlx::query_as(
            "SELECT CAST(COALESCE(MAX(version), 0) + 1 AS BIGINT) FROM assistant_versions \
             WHERE assistant_id = $1",
        )
        .bind($id)
        .fetch_one(&mut *$tx)
        .await?;
        let (version_id,): (i64,) = sqlx::query_as(
            "INSERT INTO assistant_versions (assistant_id, version, spec, note, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind($id)
        .bind(next)
        .bind($spec)
        .bind($note)
        .bind($now)
        .fetch_one(&mut *$tx)
        .await?;
        sqlx::query(
            "UPDATE assistants SET current_version_id = $1, updated_at_ms = $2 WHERE id = $3",
        )
        .bind(version_id)
        .bind($now)
        .bind($id)
        .execute(&mut *$tx)
        .await?;
        version_id
    }};
}
pub(crate) use insert_version;

impl Store {
    /// Creates an assistant with its first version (or revives a deleted slug with a new
    /// version). `None` when a live assistant already has the slug.
    pub async fn create_assistant(
        &self,
        slug: &str,
        spec: &str,
        note: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<AssistantRecord>, StoreError> {
        let created = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let row: Option<(i64,)> = sqlx::query_as(UPSERT)
                .bind(slug)
                .bind(now_ms)
                .fetch_optional(&mut *tx)
                .await?;
            match row {
                None => false,
                Some((id,)) => {
                    insert_version!(tx, id, spec, note, now_ms);
                    tx.commit().await?;
                    true
                }
            }
        });
        if created {
            self.assistant(slug).await
        } else {
            Ok(None)
        }
    }

    /// Stores `spec` as the next version of a live assistant, unless it equals the current
    /// one. `None` when there is no such assistant.
    pub async fn update_assistant(
        &self,
        slug: &str,
        spec: &str,
        note: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<AssistantRecord>, StoreError> {
        let found = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let row: Option<(i64,)> = sqlx::query_as(TOUCH_LIVE)
                .bind(slug)
                .bind(now_ms)
                .fetch_optional(&mut *tx)
                .await?;
            match row {
                None => false,
                Some((id,)) => {
                    let (current,): (String,) = sqlx::query_as(CURRENT_SPEC)
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await?;
                    if current == spec {
                        tx.rollback().await?;
                    } else {
                        insert_version!(tx, id, spec, note, now_ms);
                        tx.commit().await?;
                    }
                    true
                }
            }
        });
        if found {
            self.assistant(slug).await
        } else {
            Ok(None)
        }
    }

    /// Creates or updates every `(slug, spec)` in one transaction: all are stored or none.
    pub async fn import_assistants(
        &self,
        items: &[(String, String)],
        note: Option<&str>,
        now_ms: i64,
    ) -> Result<ImportCounts, StoreError> {
        let mut counts = ImportCounts::default();
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            for (slug, spec) in items {
                let live: Option<(i64,)> = sqlx::query_as(TOUCH_LIVE)
                    .bind(slug)
                    .bind(now_ms)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some((id,)) = live {
                    let (current,): (String,) = sqlx::query_as(CURRENT_SPEC)
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await?;
                    if current == *spec {
                        counts.unchanged += 1;
                    } else {
                        insert_version!(tx, id, spec, note, now_ms);
                        counts.updated += 1;
                    }
                    continue;
                }
                let (id,): (i64,) = sqlx::query_as(UPSERT)
                    .bind(slug)
                    .bind(now_ms)
                    .fetch_one(&mut *tx)
                    .await?;
                insert_version!(tx, id, spec, note, now_ms);
                counts.created += 1;
            }
            tx.commit().await?;
        });
        Ok(counts)
    }

    /// A live assistant at its current version.
    pub async fn assistant(&self, slug: &str) -> Result<Option<AssistantRecord>, StoreError> {
        let sql = format!("{SELECT_LIVE} AND a.slug = $1");
        let row: Option<RecordRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(slug).fetch_optional(pool).await?
        });
        Ok(row.map(record))
    }

    /// A live assistant by id.
    pub async fn assistant_by_id(&self, id: i64) -> Result<Option<AssistantRecord>, StoreError> {
        let sql = format!("{SELECT_LIVE} AND a.id = $1");
        let row: Option<RecordRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        Ok(row.map(record))
    }

    /// Every live assistant, by slug.
    pub async fn assistants(&self) -> Result<Vec<AssistantRecord>, StoreError> {
        let sql = format!("{SELECT_LIVE} ORDER BY a.slug");
        let rows: Vec<RecordRow> =
            on_pool!(self, |pool| sqlx::query_as(&sql).fetch_all(pool).await?);
        Ok(rows.into_iter().map(record).collect())
    }

    /// The version history of a live assistant, oldest first (empty when there is none).
    pub async fn assistant_versions(
        &self,
        slug: &str,
    ) -> Result<Vec<AssistantVersion>, StoreError> {
        let sql = format!("{SELECT_VERSIONS} ORDER BY v.version");
        let rows: Vec<VersionRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(slug).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(version).collect())
    }

    /// One version of a live assistant.
    pub async fn assistant_version(
        &self,
        slug: &str,
        number: i64,
    ) -> Result<Option<AssistantVersion>, StoreError> {
        let sql = format!("{SELECT_VERSIONS} AND v.version = $2");
        let row: Option<VersionRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(slug)
                .bind(number)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(version))
    }

    /// Hides a live assistant; false when there was none.
    pub async fn delete_assistant(&self, slug: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE assistants SET deleted_at_ms = $2, updated_at_ms = $2 \
                 WHERE slug = $1 AND deleted_at_ms IS NULL",
            )
            .bind(slug)
            .bind(now_ms)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done > 0)
    }

    /// Ledger cost of every version of the assistant since `since_ms` (seeds the daily
    /// ceiling after a restart).
    pub async fn assistant_cost_since(
        &self,
        assistant_id: i64,
        since_ms: i64,
    ) -> Result<i64, StoreError> {
        let (cost,): (i64,) = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(u.cost_micros), 0) AS BIGINT) FROM usage_records u \
                 JOIN assistant_versions v ON v.id = u.assistant_version_id \
                 WHERE u.assistant_version_id IS NOT NULL AND v.assistant_id = $1 \
                 AND u.ts_ms >= $2",
            )
            .bind(assistant_id)
            .bind(since_ms)
            .fetch_one(pool)
            .await?
        });
        Ok(cost)
    }
}
