//! `Store`: one handle over the SQLite and PostgreSQL backends, chosen by URL at connect.
//!
//! Callers never see which pool is underneath; every query method matches on the backend in
//! one place. Cloning is cheap (the pools are reference counted).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use crate::database_url::{self, Target};
use crate::usage::sql;
use crate::{StoreError, UsageRecord, migrations};

/// Bounds how long `/ready` and a ledger write wait for a pooled connection; the sqlx default
/// of 30 s would hide an outage behind hanging probes.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) backend: Backend,
}

#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever pool the store has. The body is written once
/// and type-checked for each backend; SQL in it uses `$N` placeholders, which both accept.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store.pool() {
            $crate::store::Backend::Sqlite($pool) => $body,
            $crate::store::Backend::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

impl Store {
    /// Connects and brings the schema up to date.
    ///
    /// - `sqlite://PATH` (relative or, with a third slash, absolute): creates missing parent
    ///   directories and the file; WAL journal, `synchronous=NORMAL`, 5 s busy timeout, foreign
    ///   keys on. `sqlite::memory:` gives a private in-memory database on one connection.
    /// - `postgres://…` or `postgresql://…`: any libpq-style URL. To use a schema other than
    ///   `public`, add `options=-csearch_path%3DNAME`; the schema must already exist.
    ///
    /// Errors never contain the URL's password.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let store = match database_url::parse(url)? {
            Target::SqliteFile(path) => connect_sqlite_file(&path).await?,
            Target::SqliteMemory => connect_sqlite_memory().await?,
            Target::Postgres(url) => connect_postgres(url).await?,
        };
        let migrated = match &store.backend {
            Backend::Sqlite(pool) => migrations::run_sqlite(pool).await,
            Backend::Postgres(pool) => migrations::run_postgres(pool).await,
        };
        if let Err(err) = migrated {
            store.close().await;
            return Err(err);
        }
        Ok(store)
    }

    pub(crate) fn pool(&self) -> &Backend {
        &self.backend
    }

    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// A round trip to the database, for `/ready`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
            Backend::Postgres(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }

    /// Writes all `rows` in one transaction: either every row is stored or none is.
    ///
    /// Text longer than the caps on [`UsageRecord`] is cut, and NUL characters are dropped, so
    /// that no single record can make its batch fail.
    pub async fn insert_usage(&self, rows: &[UsageRecord]) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(pool) => {
                sql::insert_sqlite(pool, rows).await?;
            }
            Backend::Postgres(pool) => {
                sql::insert_postgres(pool, rows).await?;
            }
        }
        Ok(())
    }

    /// Every record with this request id (normally one), oldest first.
    pub async fn usage_by_request_id(
        &self,
        request_id: &str,
    ) -> Result<Vec<UsageRecord>, StoreError> {
        // Stored ids were clamped the same way, so an over-long id still finds its row.
        let request_id = sql::clamp(request_id, UsageRecord::MAX_REQUEST_ID_CHARS);
        match &self.backend {
            Backend::Sqlite(pool) => sqlx::query(sql::SELECT_BY_REQUEST_ID_SQLITE)
                .bind(request_id)
                .fetch_all(pool)
                .await?
                .iter()
                .map(sql::record_from_row)
                .collect(),
            Backend::Postgres(pool) => sqlx::query(sql::SELECT_BY_REQUEST_ID_POSTGRES)
                .bind(request_id)
                .fetch_all(pool)
                .await?
                .iter()
                .map(sql::record_from_row)
                .collect(),
        }
    }

    pub async fn usage_count(&self) -> Result<i64, StoreError> {
        let count = match &self.backend {
            Backend::Sqlite(pool) => sqlx::query_scalar(sql::COUNT).fetch_one(pool).await?,
            Backend::Postgres(pool) => sqlx::query_scalar(sql::COUNT).fetch_one(pool).await?,
        };
        Ok(count)
    }

    /// Total cost per model alias of requests started at or after `since_ms`.
    pub async fn cost_by_model_since(
        &self,
        since_ms: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let rows: Vec<(String, i64)> = match &self.backend {
            Backend::Sqlite(pool) => {
                sqlx::query_as("SELECT model, CAST(SUM(cost_micros) AS INTEGER) FROM usage_records WHERE ts_ms >= ?1 GROUP BY model")
                    .bind(since_ms)
                    .fetch_all(pool)
                    .await?
            }
            Backend::Postgres(pool) => {
                sqlx::query_as("SELECT model, CAST(SUM(cost_micros) AS BIGINT) FROM usage_records WHERE ts_ms >= $1 GROUP BY model")
                    .bind(since_ms)
                    .fetch_all(pool)
                    .await?
            }
        };
        Ok(rows)
    }

    /// Waits for checked-out connections to return, then closes them all. Later calls on this
    /// store (or any clone) fail.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(pool) => pool.close().await,
            Backend::Postgres(pool) => pool.close().await,
        }
    }
}

async fn connect_sqlite_file(path: &Path) -> Result<Store, StoreError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        // Blocking, but once at startup and before any traffic.
        std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
            path: path.to_owned(),
            source,
        })?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // NORMAL is durable against application crashes in WAL mode; only an OS crash or
        // power loss can lose the last transactions, which is an acceptable trade for usage rows.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .foreign_keys(true);
    // A local file: connections do not go stale, so no ping before use and no recycling. This
    // also keeps the pool free of timers, which matters to tests that run on a paused clock.
    let pool = SqlitePoolOptions::new()
        .test_before_acquire(false)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Connect {
            backend: "sqlite",
            url: format!("sqlite://{}", path.display()),
            source,
        })?;
    Ok(Store {
        backend: Backend::Sqlite(pool),
    })
}

async fn connect_sqlite_memory() -> Result<Store, StoreError> {
    let options = SqliteConnectOptions::new()
        .in_memory(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .foreign_keys(true);
    // Each connection would open its own empty database, so keep exactly one, forever.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Connect {
            backend: "sqlite",
            url: "sqlite::memory:".to_owned(),
            source,
        })?;
    Ok(Store {
        backend: Backend::Sqlite(pool),
    })
}

async fn connect_postgres(url: &str) -> Result<Store, StoreError> {
    let options = PgConnectOptions::from_str(url).map_err(|err| StoreError::InvalidUrl {
        reason: format!("{err} in {}", database_url::redact(url)),
    })?;
    let pool = PgPoolOptions::new()
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Connect {
            backend: "postgres",
            url: database_url::redact(url),
            source,
        })?;
    Ok(Store {
        backend: Backend::Postgres(pool),
    })
}
