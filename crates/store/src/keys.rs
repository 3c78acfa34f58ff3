//! API keys and the key-set version. Every change to `api_keys` bumps `access_state.keys_version`
//! in the same transaction, so instances that poll the version see each change exactly once.
//!
//! Only the SHA-256 of a key is stored (as hex), with its visible prefix; JSON columns
//! (`allowed_models`, `metadata`) are opaque text here and parsed by the gateway.

use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::store::Backend;
use crate::{Store, StoreError};

/// Runs one statement on whichever pool backs the store and maps the result with `$map`
/// (a closure literal, expanded once per backend so it is typed for each row type).
macro_rules! on_pool {
    ($store:expr, $sql:expr, [$($arg:expr),*], $fetch:ident, $map:expr) => {
        match &$store.backend {
            Backend::Sqlite(pool) => ($map)(sqlx::query($sql)$(.bind($arg))*.$fetch(pool).await?),
            Backend::Postgres(pool) => ($map)(sqlx::query($sql)$(.bind($arg))*.$fetch(pool).await?),
        }
    };
}
pub(crate) use on_pool;

/// Runs `$sql` and then the version bump in one transaction; `$map` gets the first statement's
/// optional row.
macro_rules! with_version_bump {
    ($store:expr, $sql:expr, [$($arg:expr),*], $map:expr) => {
        match &$store.backend {
            Backend::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let row = sqlx::query($sql)$(.bind($arg))*.fetch_optional(&mut *tx).await?;
                sqlx::query(BUMP_VERSION).execute(&mut *tx).await?;
                tx.commit().await?;
                ($map)(row)
            }
            Backend::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let row = sqlx::query($sql)$(.bind($arg))*.fetch_optional(&mut *tx).await?;
                sqlx::query(BUMP_VERSION).execute(&mut *tx).await?;
                tx.commit().await?;
                ($map)(row)
            }
        }
    };
}

const BUMP_VERSION: &str = "UPDATE access_state SET keys_version = keys_version + 1 WHERE id = 1";

const COLUMNS: &str = "id, prefix, hash, name, owner, team, allowed_models, rpm, tpm, \
     max_concurrent, daily_budget_micros, monthly_budget_micros, expires_at_ms, metadata, \
     priority, allow_downgrade, created_at_ms, revoked_at_ms, budget_reset_at_ms, \
     previous_prefix, previous_hash, previous_expires_at_ms";

/// One stored key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    pub id: i64,
    pub prefix: String,
    /// Hex SHA-256 of the whole key.
    pub hash: String,
    pub name: String,
    pub owner: Option<String>,
    pub team: Option<String>,
    /// JSON array of model aliases; `None` allows every model.
    pub allowed_models: Option<String>,
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub max_concurrent: Option<i64>,
    pub daily_budget_micros: Option<i64>,
    pub monthly_budget_micros: Option<i64>,
    pub expires_at_ms: Option<i64>,
    /// JSON object.
    pub metadata: String,
    /// `high`, `normal` or `batch`: the highest lane the key may use, and its default.
    pub priority: String,
    pub allow_downgrade: bool,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
    /// Spend before this instant does not count against the key's budgets.
    pub budget_reset_at_ms: Option<i64>,
    /// The secret replaced by the last rotation, valid until `previous_expires_at_ms`.
    pub previous_prefix: Option<String>,
    pub previous_hash: Option<String>,
    pub previous_expires_at_ms: Option<i64>,
}

/// What a new key is created with.
#[derive(Debug, Clone, Default)]
pub struct NewApiKey {
    pub prefix: String,
    pub hash: String,
    pub name: String,
    pub owner: Option<String>,
    pub team: Option<String>,
    pub allowed_models: Option<String>,
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub max_concurrent: Option<i64>,
    pub daily_budget_micros: Option<i64>,
    pub monthly_budget_micros: Option<i64>,
    pub expires_at_ms: Option<i64>,
    pub metadata: String,
    pub priority: String,
    pub allow_downgrade: bool,
}

fn key_from_row<'r, R>(row: &'r R) -> Result<ApiKeyRow, sqlx::Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(ApiKeyRow {
        id: row.try_get(0)?,
        prefix: row.try_get(1)?,
        hash: row.try_get(2)?,
        name: row.try_get(3)?,
        owner: row.try_get(4)?,
        team: row.try_get(5)?,
        allowed_models: row.try_get(6)?,
        rpm: row.try_get(7)?,
        tpm: row.try_get(8)?,
        max_concurrent: row.try_get(9)?,
        daily_budget_micros: row.try_get(10)?,
        monthly_budget_micros: row.try_get(11)?,
        expires_at_ms: row.try_get(12)?,
        metadata: row.try_get(13)?,
        priority: row.try_get(14)?,
        allow_downgrade: row.try_get::<i64, _>(15)? != 0,
        created_at_ms: row.try_get(16)?,
        revoked_at_ms: row.try_get(17)?,
        budget_reset_at_ms: row.try_get(18)?,
        previous_prefix: row.try_get(19)?,
        previous_hash: row.try_get(20)?,
        previous_expires_at_ms: row.try_get(21)?,
    })
}

impl Store {
    /// Stores a new key and returns it with its id.
    pub async fn insert_key(&self, k: &NewApiKey, now_ms: i64) -> Result<ApiKeyRow, StoreError> {
        let sql = format!(
            "INSERT INTO api_keys (prefix, hash, name, owner, team, allowed_models, rpm, tpm, \
             max_concurrent, daily_budget_micros, monthly_budget_micros, expires_at_ms, metadata, \
             priority, allow_downgrade, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
             $10, $11, $12, $13, $14, $15, $16) RETURNING {COLUMNS}"
        );
        let row = with_version_bump!(
            self,
            &sql,
            [
                &k.prefix,
                &k.hash,
                &k.name,
                &k.owner,
                &k.team,
                &k.allowed_models,
                k.rpm,
                k.tpm,
                k.max_concurrent,
                k.daily_budget_micros,
                k.monthly_budget_micros,
                k.expires_at_ms,
                &k.metadata,
                &k.priority,
                i64::from(k.allow_downgrade),
                now_ms
            ],
            |r: Option<_>| -> Result<Option<ApiKeyRow>, StoreError> {
                Ok(r.as_ref().map(key_from_row).transpose()?)
            }
        )?;
        row.ok_or(StoreError::Query(sqlx::Error::RowNotFound))
    }

    /// Every key, revoked ones included, oldest first.
    pub async fn list_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys ORDER BY id");
        on_pool!(self, &sql, [], fetch_all, |rows: Vec<_>| {
            rows.iter()
                .map(key_from_row)
                .collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::from)
        })
    }

    pub async fn get_key(&self, id: i64) -> Result<Option<ApiKeyRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1");
        on_pool!(self, &sql, [id], fetch_optional, |r: Option<_>| -> Result<
            Option<ApiKeyRow>,
            StoreError,
        > {
            Ok(r.as_ref().map(key_from_row).transpose()?)
        })
    }

    /// Revokes a key now; `None` when there is no such key. Revoking twice keeps the first time.
    pub async fn revoke_key(&self, id: i64, now_ms: i64) -> Result<Option<ApiKeyRow>, StoreError> {
        let sql = format!(
            "UPDATE api_keys SET revoked_at_ms = COALESCE(revoked_at_ms, $1), \
             previous_expires_at_ms = NULL WHERE id = $2 RETURNING {COLUMNS}"
        );
        with_version_bump!(self, &sql, [now_ms, id], |r: Option<_>| -> Result<
            Option<ApiKeyRow>,
            StoreError,
        > {
            Ok(r.as_ref().map(key_from_row).transpose()?)
        })
    }

    /// Gives a live key a new secret; the old one keeps working until `grace_until_ms`
    /// (`None`: stops at once). `None` when the key does not exist or is revoked.
    pub async fn rotate_key(
        &self,
        id: i64,
        new_prefix: &str,
        new_hash: &str,
        grace_until_ms: Option<i64>,
    ) -> Result<Option<ApiKeyRow>, StoreError> {
        let sql = format!(
            "UPDATE api_keys SET previous_prefix = prefix, previous_hash = hash, \
             previous_expires_at_ms = $1, prefix = $2, hash = $3 \
             WHERE id = $4 AND revoked_at_ms IS NULL RETURNING {COLUMNS}"
        );
        with_version_bump!(
            self,
            &sql,
            [grace_until_ms, new_prefix, new_hash, id],
            |r: Option<_>| -> Result<Option<ApiKeyRow>, StoreError> {
                Ok(r.as_ref().map(key_from_row).transpose()?)
            }
        )
    }

    /// Starts the key's budgets over from now (spend before `now_ms` no longer counts).
    pub async fn reset_key_budget(
        &self,
        id: i64,
        now_ms: i64,
    ) -> Result<Option<ApiKeyRow>, StoreError> {
        let sql = format!(
            "UPDATE api_keys SET budget_reset_at_ms = $1 WHERE id = $2 RETURNING {COLUMNS}"
        );
        with_version_bump!(self, &sql, [now_ms, id], |r: Option<_>| -> Result<
            Option<ApiKeyRow>,
            StoreError,
        > {
            Ok(r.as_ref().map(key_from_row).transpose()?)
        })
    }

    /// The key-set version: it changes whenever any key does.
    pub async fn keys_version(&self) -> Result<i64, StoreError> {
        let sql = "SELECT keys_version FROM access_state WHERE id = 1";
        on_pool!(
            self,
            sql,
            [],
            fetch_one,
            |row: _| -> Result<i64, StoreError> { Ok(Row::try_get(&row, 0)?) }
        )
    }

    /// Spend per key since `since_ms` (keys with spend only).
    pub async fn cost_by_key_since(&self, since_ms: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows: Vec<(i64, i64)> = match &self.backend {
            Backend::Sqlite(pool) => {
                sqlx::query_as("SELECT key_id, CAST(SUM(cost_micros) AS INTEGER) FROM usage_records WHERE ts_ms >= ?1 AND key_id IS NOT NULL GROUP BY key_id")
                    .bind(since_ms)
                    .fetch_all(pool)
                    .await?
            }
            Backend::Postgres(pool) => {
                sqlx::query_as("SELECT key_id, CAST(SUM(cost_micros) AS BIGINT) FROM usage_records WHERE ts_ms >= $1 AND key_id IS NOT NULL GROUP BY key_id")
                    .bind(since_ms)
                    .fetch_all(pool)
                    .await?
            }
        };
        Ok(rows)
    }

    /// Spend of one key (or of all traffic, `None`) since `since_ms`.
    pub async fn cost_since(&self, key_id: Option<i64>, since_ms: i64) -> Result<i64, StoreError> {
        let total: Option<i64> = match (&self.backend, key_id) {
            (Backend::Sqlite(pool), Some(k)) => sqlx::query_scalar("SELECT CAST(SUM(cost_micros) AS INTEGER) FROM usage_records WHERE key_id = ?1 AND ts_ms >= ?2").bind(k).bind(since_ms).fetch_one(pool).await?,
            (Backend::Sqlite(pool), None) => sqlx::query_scalar("SELECT CAST(SUM(cost_micros) AS INTEGER) FROM usage_records WHERE ts_ms >= ?1").bind(since_ms).fetch_one(pool).await?,
            (Backend::Postgres(pool), Some(k)) => sqlx::query_scalar("SELECT CAST(SUM(cost_micros) AS BIGINT) FROM usage_records WHERE key_id = $1 AND ts_ms >= $2").bind(k).bind(since_ms).fetch_one(pool).await?,
            (Backend::Postgres(pool), None) => sqlx::query_scalar("SELECT CAST(SUM(cost_micros) AS BIGINT) FROM usage_records WHERE ts_ms >= $1").bind(since_ms).fetch_one(pool).await?,
        };
        Ok(total.unwrap_or(0))
    }
}
