//! The audit log: who did what to which target, when, and how it ended. Rows are written in
//! batches (one transaction) and read newest first with optional filters.

use sqlx::{ColumnIndex, Decode, QueryBuilder, Row, Type};

use crate::keys::on_pool;
use crate::store::Backend;
use crate::{Store, StoreError};

/// Longest text kept per column; longer values are cut (at a character boundary).
const MAX_TEXT: usize = 512;
const MAX_DETAIL: usize = 4_096;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditEntry {
    /// Assigned by the database; ignored on insert.
    pub id: i64,
    pub ts_ms: i64,
    /// `admin`, `cli`, `key:<id>`, `ip:<addr>`, `anonymous`.
    pub actor: String,
    /// Dotted verb: `key.create`, `key.revoke`, `auth.failure`, `ratelimit.reject`, …
    pub action: String,
    pub target: Option<String>,
    /// `ok`, `denied` or `error`.
    pub outcome: String,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    /// JSON object with action-specific facts.
    pub detail: Option<String>,
}

/// Filters for [`Store::query_audit`]; unset fields match everything.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub target: Option<String>,
    pub outcome: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Only rows with a smaller id (paging backwards).
    pub before_id: Option<i64>,
    pub limit: i64,
}

fn cut(s: &str, max: usize) -> String {
    let s = s.replace('\0', "");
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_owned(),
        None => s,
    }
}

fn entry_from_row<'r, R>(row: &'r R) -> Result<AuditEntry, sqlx::Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(AuditEntry {
        id: row.try_get(0)?,
        ts_ms: row.try_get(1)?,
        actor: row.try_get(2)?,
        action: row.try_get(3)?,
        target: row.try_get(4)?,
        outcome: row.try_get(5)?,
        request_id: row.try_get(6)?,
        ip: row.try_get(7)?,
        detail: row.try_get(8)?,
    })
}

macro_rules! push_filters {
    ($b:expr, $f:expr) => {{
        let f = $f;
        $b.push(" WHERE 1 = 1");
        if let Some(v) = &f.action {
            $b.push(" AND action = ").push_bind(v.clone());
        }
        if let Some(v) = &f.actor {
            $b.push(" AND actor = ").push_bind(v.clone());
        }
        if let Some(v) = &f.target {
            $b.push(" AND target = ").push_bind(v.clone());
        }
        if let Some(v) = &f.outcome {
            $b.push(" AND outcome = ").push_bind(v.clone());
        }
        if let Some(v) = f.since_ms {
            $b.push(" AND ts_ms >= ").push_bind(v);
        }
        if let Some(v) = f.until_ms {
            $b.push(" AND ts_ms < ").push_bind(v);
        }
        if let Some(v) = f.before_id {
            $b.push(" AND id < ").push_bind(v);
        }
        $b.push(" ORDER BY id DESC LIMIT ")
            .push_bind(f.limit.clamp(1, 1_000));
    }};
}

const SELECT: &str =
    "SELECT id, ts_ms, actor, action, target, outcome, request_id, ip, detail FROM audit_log";
const INSERT: &str =
    "INSERT INTO audit_log (ts_ms, actor, action, target, outcome, request_id, ip, detail) ";

impl Store {
    /// Writes all entries in one transaction.
    pub async fn insert_audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        // 8 binds per row keeps a chunk far below both backends' parameter limits.
        for chunk in entries.chunks(500) {
            macro_rules! build {
                ($db:ty) => {{
                    let mut b = QueryBuilder::<$db>::new(INSERT);
                    b.push_values(chunk, |mut r, e| {
                        r.push_bind(e.ts_ms)
                            .push_bind(cut(&e.actor, MAX_TEXT))
                            .push_bind(cut(&e.action, MAX_TEXT))
                            .push_bind(e.target.as_deref().map(|s| cut(s, MAX_TEXT)))
                            .push_bind(cut(&e.outcome, MAX_TEXT))
                            .push_bind(e.request_id.as_deref().map(|s| cut(s, MAX_TEXT)))
                            .push_bind(e.ip.as_deref().map(|s| cut(s, MAX_TEXT)))
                            .push_bind(e.detail.as_deref().map(|s| cut(s, MAX_DETAIL)));
                    });
                    b
                }};
            }
            match &self.backend {
                Backend::Sqlite(pool) => {
                    build!(sqlx::Sqlite)
                        .build()
                        .persistent(false)
                        .execute(pool)
                        .await?;
                }
                Backend::Postgres(pool) => {
                    build!(sqlx::Postgres)
                        .build()
                        .persistent(false)
                        .execute(pool)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Entries matching `filter`, newest first, at most `filter.limit` (1 to 1,000).
    pub async fn query_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = match &self.backend {
            Backend::Sqlite(pool) => {
                let mut b = QueryBuilder::<sqlx::Sqlite>::new(SELECT);
                push_filters!(b, filter);
                b.build()
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(entry_from_row)
                    .collect::<Result<Vec<_>, _>>()?
            }
            Backend::Postgres(pool) => {
                let mut b = QueryBuilder::<sqlx::Postgres>::new(SELECT);
                push_filters!(b, filter);
                b.build()
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(entry_from_row)
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        Ok(rows)
    }

    pub async fn audit_count(&self) -> Result<i64, StoreError> {
        on_pool!(
            self,
            "SELECT COUNT(*) FROM audit_log",
            [],
            fetch_one,
            |row: _| -> Result<i64, StoreError> { Ok(Row::try_get(&row, 0)?) }
        )
    }
}
