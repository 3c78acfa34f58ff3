//! SQL for `usage_records`, shared by both backends where the types allow it.
//!
//! Inserts are multi-row `INSERT … VALUES (…), (…)` statements inside one transaction: one
//! round trip per chunk and one commit per batch instead of one per row, which is what lets a
//! single writer task keep up with the request rate.

use std::borrow::Cow;
use std::sync::LazyLock;

use sqlx::query::Query;
use sqlx::{ColumnIndex, Database, Decode, Encode, PgPool, Row, SqlitePool, Type};

use super::{CacheStatus, Route, UsageRecord};
use crate::StoreError;

const INSERT_PREFIX: &str = "INSERT INTO usage_records (request_id, ts_ms, key_id, route, model, \
     provider, upstream_model, prompt_tokens, completion_tokens, cached_tokens, cost_micros, \
     latency_ms, ttft_ms, status, error_code, cache_status, flags, attempts, served_by, \
     fallback_reason, assistant_version_id, variant, conversation_id, cost_saved_micros) ";
const BINDS_PER_ROW: usize = 24;

macro_rules! select_usage {
    ($tail:literal) => {
        concat!(
            "SELECT id, request_id, ts_ms, key_id, route, model, provider, upstream_model, \
             prompt_tokens, completion_tokens, cached_tokens, cost_micros, latency_ms, ttft_ms, \
             status, error_code, cache_status, flags, attempts, served_by, fallback_reason, \
             assistant_version_id, variant, conversation_id, cost_saved_micros FROM usage_records ",
            $tail
        )
    };
}
pub(crate) const SELECT_BY_REQUEST_ID_SQLITE: &str =
    select_usage!("WHERE request_id = ?1 ORDER BY id");
pub(crate) const SELECT_BY_REQUEST_ID_POSTGRES: &str =
    select_usage!("WHERE request_id = $1 ORDER BY id");
pub(crate) const COUNT: &str = "SELECT COUNT(*) FROM usage_records";

/// Rows per multi-row statement. Every full chunk has the same SQL text, so the backends keep it
/// prepared (SQLite spent more time parsing a fresh 512-row statement per batch than inserting);
/// the remainder goes row by row through the single-row statement, also prepared once.
const ROWS_PER_STATEMENT: usize = 32;
const _: () = assert!(ROWS_PER_STATEMENT * BINDS_PER_ROW < 32_766);

/// The two insert statements of one backend: a full chunk of rows and a single row. Built
/// once, so a batch neither formats placeholders nor assembles SQL text.
struct InsertSql {
    full: String,
    one: String,
}

impl InsertSql {
    /// `numbered`: PostgreSQL's `$1, $2, …` instead of SQLite's `?`.
    fn new(numbered: bool) -> InsertSql {
        let values = |rows: usize| {
            let mut sql = format!("{INSERT_PREFIX}VALUES ");
            for r in 0..rows {
                sql.push_str(if r == 0 { "(" } else { ", (" });
                for c in 0..BINDS_PER_ROW {
                    if c > 0 {
                        sql.push_str(", ");
                    }
                    if numbered {
                        sql.push_str(&format!("${}", r * BINDS_PER_ROW + c + 1));
                    } else {
                        sql.push('?');
                    }
                }
                sql.push(')');
            }
            sql
        };
        InsertSql {
            full: values(ROWS_PER_STATEMENT),
            one: values(1),
        }
    }
}

static SQLITE_INSERT: LazyLock<InsertSql> = LazyLock::new(|| InsertSql::new(false));
static POSTGRES_INSERT: LazyLock<InsertSql> = LazyLock::new(|| InsertSql::new(true));

/// `insert_sqlite` / `insert_postgres`: inserts `rows` in one transaction.
macro_rules! insert_fn {
    ($(#[$doc:meta])* $name:ident, $pool:ty, $sql:ident) => {
        $(#[$doc])*
        pub(crate) async fn $name(pool: &$pool, rows: &[UsageRecord]) -> Result<(), sqlx::Error> {
            if rows.is_empty() {
                return Ok(());
            }
            let mut tx = pool.begin().await?;
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                if chunk.len() == ROWS_PER_STATEMENT {
                    let query = chunk
                        .iter()
                        .fold(sqlx::query(&$sql.full), |q, r| bind_row(q, r));
                    query.execute(&mut *tx).await?;
                } else {
                    for row in chunk {
                        bind_row(sqlx::query(&$sql.one), row)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
            }
            tx.commit().await
        }
    };
}

insert_fn!(
    /// Inserts `rows` in one transaction.
    insert_sqlite,
    SqlitePool,
    SQLITE_INSERT
);
insert_fn!(
    /// As [`insert_sqlite`], for PostgreSQL.
    insert_postgres,
    PgPool,
    POSTGRES_INSERT
);

type BoundQuery<'q, DB> = Query<'q, DB, <DB as Database>::Arguments<'q>>;

fn bind_row<'q, DB>(q: BoundQuery<'q, DB>, r: &'q UsageRecord) -> BoundQuery<'q, DB>
where
    DB: Database,
    i64: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    i32: Encode<'q, DB> + Type<DB>,
    i16: Encode<'q, DB> + Type<DB>,
    Cow<'q, str>: Encode<'q, DB> + Type<DB>,
    Option<Cow<'q, str>>: Encode<'q, DB> + Type<DB>,
{
    let text = |s: &'q str| clamp(s, UsageRecord::MAX_TEXT_CHARS);
    q.bind(clamp(&r.request_id, UsageRecord::MAX_REQUEST_ID_CHARS))
        .bind(r.ts_ms)
        .bind(r.key_id)
        .bind(r.route.as_i16())
        .bind(text(&r.model))
        .bind(text(&r.provider))
        .bind(text(&r.upstream_model))
        .bind(r.prompt_tokens)
        .bind(r.completion_tokens)
        .bind(r.cached_tokens)
        .bind(r.cost_micros)
        .bind(r.latency_ms)
        .bind(r.ttft_ms)
        .bind(r.status)
        .bind(r.error_code.as_deref().map(text))
        .bind(r.cache_status.as_i16())
        .bind(r.flags)
        .bind(r.attempts)
        .bind(r.served_by.as_deref().map(text))
        .bind(r.fallback_reason.as_deref().map(text))
        .bind(r.assistant_version_id)
        .bind(r.variant.as_deref().map(text))
        .bind(r.conversation_id)
        .bind(r.cost_saved_micros)
}

/// Cuts `text` to `max_chars` characters and drops NUL characters. PostgreSQL rejects NUL in
/// text, and one bad row would otherwise fail its whole batch on every retry.
pub(crate) fn clamp(text: &str, max_chars: usize) -> Cow<'_, str> {
    let text = match text.char_indices().nth(max_chars) {
        Some((cut, _)) => &text[..cut],
        None => text,
    };
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', ""))
    } else {
        Cow::Borrowed(text)
    }
}

pub(crate) fn record_from_row<'r, R>(row: &'r R) -> Result<UsageRecord, StoreError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    i32: Decode<'r, R::Database> + Type<R::Database>,
    i16: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let id: i64 = row.try_get("id")?;
    let route: i16 = row.try_get("route")?;
    let cache_status: i16 = row.try_get("cache_status")?;
    let unknown = |column, value: i16| StoreError::UnknownValue {
        id,
        column,
        value: i64::from(value),
    };
    Ok(UsageRecord {
        request_id: row.try_get("request_id")?,
        ts_ms: row.try_get("ts_ms")?,
        key_id: row.try_get("key_id")?,
        route: Route::from_i16(route).ok_or_else(|| unknown("route", route))?,
        model: row.try_get("model")?,
        provider: row.try_get("provider")?,
        upstream_model: row.try_get("upstream_model")?,
        prompt_tokens: row.try_get("prompt_tokens")?,
        completion_tokens: row.try_get("completion_tokens")?,
        cached_tokens: row.try_get("cached_tokens")?,
        cost_micros: row.try_get("cost_micros")?,
        latency_ms: row.try_get("latency_ms")?,
        ttft_ms: row.try_get("ttft_ms")?,
        status: row.try_get("status")?,
        error_code: row.try_get("error_code")?,
        cache_status: CacheStatus::from_i16(cache_status)
            .ok_or_else(|| unknown("cache_status", cache_status))?,
        flags: row.try_get("flags")?,
        attempts: row.try_get("attempts")?,
        served_by: row.try_get("served_by")?,
        fallback_reason: row.try_get("fallback_reason")?,
        assistant_version_id: row.try_get("assistant_version_id")?,
        variant: row.try_get("variant")?,
        conversation_id: row.try_get("conversation_id")?,
        cost_saved_micros: row.try_get("cost_saved_micros")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamp_cuts_on_char_boundaries_and_drops_nul() {
        assert_eq!(clamp("abc", 3), "abc");
        assert_eq!(clamp("abcd", 3), "abc");
        assert_eq!(clamp("ééé", 2), "éé");
        assert_eq!(clamp("a\0b", 10), "ab");
        assert!(matches!(clamp("plain", 10), Cow::Borrowed(_)));
    }

    /// The chunk sizes are derived from `BINDS_PER_ROW`; a column added to the statement but
    /// not to the count would push statements past the backends' limits.
    #[test]
    fn binds_per_row_matches_the_column_list() {
        let columns = INSERT_PREFIX.matches(',').count() + 1;
        assert_eq!(columns, BINDS_PER_ROW);
    }
}
