//! Embedded schema migrations and the small runner that applies them at connect.
//!
//! # Adding a migration
//! 1. Write `migrations/sqlite/NNNN_name.sql` and `migrations/postgres/NNNN_name.sql`, where
//!    `NNNN` is the next version, zero-padded. Both files must exist (the build fails
//!    otherwise); keep the columns the same on both backends.
//! 2. Append `migration!(NNNN, "NNNN_name"),` to [`MIGRATIONS`].
//!
//! Never edit or renumber a migration that has shipped: databases remember versions, not
//! contents. A file may hold several statements.
//!
//! # How they run
//! Applied versions are recorded in `schema_migrations`. Each missing version is applied in its
//! own transaction together with its `schema_migrations` row, so a failure leaves nothing half
//! done. Instances starting together do not race: on PostgreSQL each transaction first takes a
//! transaction-scoped advisory lock, on SQLite it begins with `BEGIN IMMEDIATE` (the write
//! lock); either way the version is re-checked under the lock.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{PgPool, SqlitePool};

use crate::StoreError;

pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

macro_rules! migration {
    ($version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sqlite: include_str!(concat!("../migrations/sqlite/", $name, ".sql")),
            postgres: include_str!(concat!("../migrations/postgres/", $name, ".sql")),
        }
    };
}

/// Every migration, in version order.
pub(crate) const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_usage_records"),
    migration!(2, "0002_usage_routing"),
    migration!(3, "0003_assistants"),
    migration!(4, "0004_keys_and_audit"),
    migration!(5, "0005_partial_key_index"),
];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Any fixed key works as long as nothing else in the database uses it; this one is
/// "gatehous" in ASCII.
const POSTGRES_LOCK_KEY: i64 = 0x6761_7465_686f_7573;

const CREATE_TABLE_SQLITE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
     version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL)";
const CREATE_TABLE_POSTGRES: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
     version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)";

pub(crate) async fn run_sqlite(pool: &SqlitePool) -> Result<(), StoreError> {
    sqlx::raw_sql(CREATE_TABLE_SQLITE).execute(pool).await?;
    let applied = applied_versions(
        sqlx::query_scalar("SELECT version FROM schema_migrations")
            .fetch_all(pool)
            .await?,
    );
    for migration in pending(&applied) {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let already: Option<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?1")
                .bind(migration.version)
                .fetch_optional(&mut *tx)
                .await?;
        if already.is_some() {
            continue;
        }
        sqlx::raw_sql(migration.sqlite)
            .execute(&mut *tx)
            .await
            .map_err(|source| migration.error(source))?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (?1, ?2, ?3)",
        )
        .bind(migration.version)
        .bind(migration.name)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        migration.log_applied("sqlite");
    }
    Ok(())
}

pub(crate) async fn run_postgres(pool: &PgPool) -> Result<(), StoreError> {
    // Under the lock too: concurrent `CREATE TABLE IF NOT EXISTS` can still fail on PostgreSQL
    // with a unique violation in the catalog.
    let mut tx = pool.begin().await?;
    lock_postgres(&mut tx).await?;
    sqlx::raw_sql(CREATE_TABLE_POSTGRES)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;

    let applied = applied_versions(
        sqlx::query_scalar("SELECT version FROM schema_migrations")
            .fetch_all(pool)
            .await?,
    );
    for migration in pending(&applied) {
        let mut tx = pool.begin().await?;
        lock_postgres(&mut tx).await?;
        let already: Option<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(migration.version)
                .fetch_optional(&mut *tx)
                .await?;
        if already.is_some() {
            continue;
        }
        sqlx::raw_sql(migration.postgres)
            .execute(&mut *tx)
            .await
            .map_err(|source| migration.error(source))?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES ($1, $2, $3)",
        )
        .bind(migration.version)
        .bind(migration.name)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        migration.log_applied("postgres");
    }
    Ok(())
}

async fn lock_postgres(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(POSTGRES_LOCK_KEY)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn applied_versions(versions: Vec<i64>) -> BTreeSet<i64> {
    let applied: BTreeSet<i64> = versions.into_iter().collect();
    let newest_known = MIGRATIONS.last().map_or(0, |m| m.version);
    if let Some(&newest) = applied.last().filter(|&&v| v > newest_known) {
        // Typically a rollback to an older binary. Migrations only add, so carry on.
        tracing::warn!(
            database_version = newest,
            binary_version = newest_known,
            "database schema is newer than this binary"
        );
    }
    applied
}

fn pending(applied: &BTreeSet<i64>) -> impl Iterator<Item = &'static Migration> + '_ {
    MIGRATIONS.iter().filter(|m| !applied.contains(&m.version))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Migration {
    fn error(&self, source: sqlx::Error) -> StoreError {
        StoreError::Migration {
            version: self.version,
            name: self.name,
            source,
        }
    }

    fn log_applied(&self, backend: &'static str) {
        tracing::info!(
            backend,
            version = self.version,
            name = self.name,
            "applied migration"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_consecutive_and_match_names() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            let expected = i64::try_from(i).unwrap() + 1;
            assert_eq!(m.version, expected, "{}", m.name);
            assert!(
                m.name.starts_with(&format!("{expected:04}_")),
                "{} must start with {expected:04}_",
                m.name
            );
        }
    }

    /// Catches a file dropped into a folder but never added to `MIGRATIONS`.
    #[test]
    fn every_file_is_listed() {
        let listed: BTreeSet<String> = MIGRATIONS
            .iter()
            .map(|m| format!("{}.sql", m.name))
            .collect();
        for backend in ["sqlite", "postgres"] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(backend);
            let files: BTreeSet<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            assert_eq!(files, listed, "{}", dir.display());
        }
    }
}
