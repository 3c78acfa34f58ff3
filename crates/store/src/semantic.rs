//! Storage for the semantic response cache: one row per cached response with its embedding.
//!
//! The tables are created on demand by [`Store::semantic_prepare`] (only when the semantic cache
//! is switched on) rather than by the shared migrations, because on PostgreSQL they need the
//! pgvector extension, which a plain PostgreSQL lacks; cache rows are disposable, so nothing
//! else depends on them.
//!
//! - SQLite: `semantic_cache`, vectors as little-endian f32 BLOBs. Searching is done by the
//!   caller over an in-memory index loaded with [`Store::semantic_load`].
//! - PostgreSQL: `gatehouse_semantic_cache_<dims>` with a `vector(<dims>)` column, an HNSW index
//!   (cosine) and a B-tree index on the partition; [`Store::semantic_nearest`] searches in SQL.
//!   The table name carries the dimension so changing embedding models needs no manual step.

use sqlx::Row;

use crate::store::Backend;
use crate::{Store, StoreError};

/// A stored vector and the facts needed to filter it, without the response body.
#[derive(Debug, Clone, PartialEq)]
pub struct SemanticRow {
    pub id: i64,
    pub partition: String,
    pub tenant: String,
    pub model: String,
    pub assistant: String,
    pub embedding: Vec<f32>,
    pub expires_ms: i64,
}

/// A row to insert. `entry` is the serialized cached response.
#[derive(Debug, Clone, Copy)]
pub struct NewSemanticEntry<'a> {
    pub partition: &'a str,
    pub tenant: &'a str,
    pub model: &'a str,
    pub assistant: &'a str,
    pub embedding: &'a [f32],
    pub entry: &'a str,
    pub created_ms: i64,
    pub expires_ms: i64,
}

/// Which rows a purge removes; every `None` field matches anything.
#[derive(Debug, Clone, Copy, Default)]
pub struct SemanticFilter<'a> {
    pub tenant: Option<&'a str>,
    pub model: Option<&'a str>,
    pub assistant: Option<&'a str>,
}

/// Key for the advisory lock that serialises concurrent table creation ("gh-semcache").
const SEMANTIC_LOCK_KEY: i64 = 0x6768_2d73_656d_6361;

fn pg_table(dims: usize) -> String {
    format!("gatehouse_semantic_cache_{dims}")
}

/// pgvector's text form, `[1,2.5,-0.25]`.
fn pg_vector(v: &[f32]) -> String {
    let mut out = String::with_capacity(v.len() * 10 + 2);
    out.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&x.to_string());
    }
    out.push(']');
    out
}

fn to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_blob(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

const SQLITE_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS semantic_cache (\
    id INTEGER PRIMARY KEY AUTOINCREMENT, partition TEXT NOT NULL, tenant TEXT NOT NULL, \
    model TEXT NOT NULL, assistant TEXT NOT NULL, embedding BLOB NOT NULL, entry TEXT NOT NULL, \
    created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL);\
    CREATE INDEX IF NOT EXISTS semantic_cache_expires ON semantic_cache (expires_ms);";

impl Store {
    /// Creates the semantic-cache table (and on PostgreSQL the pgvector extension and the
    /// HNSW index). On PostgreSQL without pgvector this fails with the server's message.
    pub async fn semantic_prepare(&self, dims: usize) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(pool) => {
                sqlx::raw_sql(SQLITE_SCHEMA).execute(pool).await?;
            }
            Backend::Postgres(pool) => {
                let t = pg_table(dims);
                let mut tx = pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(SEMANTIC_LOCK_KEY)
                    .execute(&mut *tx)
                    .await?;
                sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS vector")
                    .execute(&mut *tx)
                    .await?;
                sqlx::raw_sql(&format!(
                    "CREATE TABLE IF NOT EXISTS {t} (id BIGSERIAL PRIMARY KEY, \
                     partition TEXT NOT NULL, tenant TEXT NOT NULL, model TEXT NOT NULL, \
                     assistant TEXT NOT NULL, embedding vector({dims}) NOT NULL, \
                     entry TEXT NOT NULL, created_ms BIGINT NOT NULL, expires_ms BIGINT NOT NULL);\
                     CREATE INDEX IF NOT EXISTS {t}_hnsw ON {t} USING hnsw (embedding vector_cosine_ops);\
                     CREATE INDEX IF NOT EXISTS {t}_partition ON {t} (partition);\
                     CREATE INDEX IF NOT EXISTS {t}_expires ON {t} (expires_ms);"
                ))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Stores one entry; returns its id.
    pub async fn semantic_insert(
        &self,
        dims: usize,
        e: NewSemanticEntry<'_>,
    ) -> Result<i64, StoreError> {
        let id = match &self.backend {
            Backend::Sqlite(pool) => sqlx::query_scalar(
                "INSERT INTO semantic_cache (partition, tenant, model, assistant, embedding, \
                 entry, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
            )
            .bind(e.partition)
            .bind(e.tenant)
            .bind(e.model)
            .bind(e.assistant)
            .bind(to_blob(e.embedding))
            .bind(e.entry)
            .bind(e.created_ms)
            .bind(e.expires_ms)
            .fetch_one(pool)
            .await?,
            Backend::Postgres(pool) => sqlx::query_scalar(&format!(
                "INSERT INTO {} (partition, tenant, model, assistant, embedding, entry, \
                 created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5::vector, $6, $7, $8) RETURNING id",
                pg_table(dims)
            ))
            .bind(e.partition)
            .bind(e.tenant)
            .bind(e.model)
            .bind(e.assistant)
            .bind(pg_vector(e.embedding))
            .bind(e.entry)
            .bind(e.created_ms)
            .bind(e.expires_ms)
            .fetch_one(pool)
            .await?,
        };
        Ok(id)
    }

    /// Every unexpired vector (SQLite, for the in-memory index), oldest first, after deleting the
    /// expired rows. Rows whose vector is not `dims` long are skipped. PostgreSQL searches in SQL
    /// and returns nothing here.
    pub async fn semantic_load(
        &self,
        dims: usize,
        now_ms: i64,
    ) -> Result<Vec<SemanticRow>, StoreError> {
        let Backend::Sqlite(pool) = &self.backend else {
            return Ok(Vec::new());
        };
        sqlx::query("DELETE FROM semantic_cache WHERE expires_ms <= ?1")
            .bind(now_ms)
            .execute(pool)
            .await?;
        let rows = sqlx::query(
            "SELECT id, partition, tenant, model, assistant, embedding, expires_ms \
             FROM semantic_cache ORDER BY id",
        )
        .fetch_all(pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let blob: Vec<u8> = r.try_get("embedding")?;
            let embedding = from_blob(&blob);
            if embedding.len() != dims {
                continue;
            }
            out.push(SemanticRow {
                id: r.try_get("id")?,
                partition: r.try_get("partition")?,
                tenant: r.try_get("tenant")?,
                model: r.try_get("model")?,
                assistant: r.try_get("assistant")?,
                embedding,
                expires_ms: r.try_get("expires_ms")?,
            });
        }
        Ok(out)
    }

    /// The serialized response of one entry.
    pub async fn semantic_entry(&self, dims: usize, id: i64) -> Result<Option<String>, StoreError> {
        let entry = match &self.backend {
            Backend::Sqlite(pool) => {
                sqlx::query_scalar("SELECT entry FROM semantic_cache WHERE id = ?1")
                    .bind(id)
                    .fetch_optional(pool)
                    .await?
            }
            Backend::Postgres(pool) => {
                sqlx::query_scalar(&format!(
                    "SELECT entry FROM {} WHERE id = $1",
                    pg_table(dims)
                ))
                .bind(id)
                .fetch_optional(pool)
                .await?
            }
        };
        Ok(entry)
    }

    /// PostgreSQL: the unexpired entry of `partition` nearest to `embedding` by cosine distance,
    /// as (id, distance, serialized response). SQLite answers `None` (search the index instead).
    pub async fn semantic_nearest(
        &self,
        dims: usize,
        partition: &str,
        embedding: &[f32],
        now_ms: i64,
    ) -> Result<Option<(i64, f64, String)>, StoreError> {
        let Backend::Postgres(pool) = &self.backend else {
            return Ok(None);
        };
        let row = sqlx::query(&format!(
            "SELECT id, (embedding <=> $1::vector)::float8 AS distance, entry FROM {} \
             WHERE partition = $2 AND expires_ms > $3 ORDER BY embedding <=> $1::vector LIMIT 1",
            pg_table(dims)
        ))
        .bind(pg_vector(embedding))
        .bind(partition)
        .bind(now_ms)
        .fetch_optional(pool)
        .await?;
        row.map(|r| {
            Ok((
                r.try_get("id")?,
                r.try_get("distance")?,
                r.try_get("entry")?,
            ))
        })
        .transpose()
    }

    /// Deletes rows by id.
    pub async fn semantic_delete(&self, dims: usize, ids: &[i64]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let n = match &self.backend {
            Backend::Sqlite(pool) => {
                sqlx::query(&format!("DELETE FROM semantic_cache WHERE id IN ({list})"))
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
            Backend::Postgres(pool) => sqlx::query(&format!(
                "DELETE FROM {} WHERE id IN ({list})",
                pg_table(dims)
            ))
            .execute(pool)
            .await?
            .rows_affected(),
        };
        Ok(n)
    }

    /// Deletes the rows matching `filter` (all rows when it is empty); returns how many.
    pub async fn semantic_purge(
        &self,
        dims: usize,
        filter: SemanticFilter<'_>,
    ) -> Result<u64, StoreError> {
        // `(?1 IS NULL OR tenant = ?1)`: one statement for every combination of filters.
        let n = match &self.backend {
            Backend::Sqlite(pool) => sqlx::query(
                "DELETE FROM semantic_cache WHERE (?1 IS NULL OR tenant = ?1) \
                 AND (?2 IS NULL OR model = ?2) AND (?3 IS NULL OR assistant = ?3)",
            )
            .bind(filter.tenant)
            .bind(filter.model)
            .bind(filter.assistant)
            .execute(pool)
            .await?
            .rows_affected(),
            Backend::Postgres(pool) => sqlx::query(&format!(
                "DELETE FROM {} WHERE ($1::text IS NULL OR tenant = $1) \
                 AND ($2::text IS NULL OR model = $2) AND ($3::text IS NULL OR assistant = $3)",
                pg_table(dims)
            ))
            .bind(filter.tenant)
            .bind(filter.model)
            .bind(filter.assistant)
            .execute(pool)
            .await?
            .rows_affected(),
        };
        Ok(n)
    }

    /// Deletes expired rows and, beyond `max_entries`, the oldest; returns how many went.
    pub async fn semantic_trim(
        &self,
        dims: usize,
        now_ms: i64,
        max_entries: usize,
    ) -> Result<u64, StoreError> {
        let keep = i64::try_from(max_entries).unwrap_or(i64::MAX);
        let n = match &self.backend {
            Backend::Sqlite(pool) => {
                let expired = sqlx::query("DELETE FROM semantic_cache WHERE expires_ms <= ?1")
                    .bind(now_ms)
                    .execute(pool)
                    .await?
                    .rows_affected();
                let over = sqlx::query(
                    "DELETE FROM semantic_cache WHERE id <= \
                     (SELECT id FROM semantic_cache ORDER BY id DESC LIMIT 1 OFFSET ?1)",
                )
                .bind(keep)
                .execute(pool)
                .await?
                .rows_affected();
                expired + over
            }
            Backend::Postgres(pool) => {
                let t = pg_table(dims);
                let expired = sqlx::query(&format!("DELETE FROM {t} WHERE expires_ms <= $1"))
                    .bind(now_ms)
                    .execute(pool)
                    .await?
                    .rows_affected();
                let over = sqlx::query(&format!(
                    "DELETE FROM {t} WHERE id <= (SELECT id FROM {t} ORDER BY id DESC LIMIT 1 OFFSET $1)"
                ))
                .bind(keep)
                .execute(pool)
                .await?
                .rows_affected();
                expired + over
            }
        };
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_encodings() {
        assert_eq!(pg_vector(&[1.0, -0.25, 2.5]), "[1,-0.25,2.5]");
        assert_eq!(pg_vector(&[]), "[]");
        let v = [0.1f32, -3.0, 7.25];
        assert_eq!(from_blob(&to_blob(&v)), v);
        assert_eq!(to_blob(&[1.0]), vec![0, 0, 0x80, 0x3f]);
    }
}
