//! Cost reports from the ledger for dashboards: totals over a time range grouped by any of day,
//! assistant, variant, model and key, and per-assistant totals since a moment.
//!
//! "Messages" are requests answered with status 200 that a client asked for, i.e. not
//! conversation summaries Gatehouse made itself ([`UsageRecord::FLAG_SUMMARY`]).

use super::UsageRecord;
use crate::StoreError;
use crate::store::{Store, on_pool};

/// A dimension to group usage by. The SQL of each is fixed here, never taken from input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageDimension {
    /// UTC day, as days since 1970-01-01.
    Day,
    /// The assistant's slug (through the version the record points at).
    Assistant,
    Variant,
    Model,
    Key,
}

impl UsageDimension {
    fn expression(self) -> &'static str {
        match self {
            UsageDimension::Day => "(u.ts_ms / 86400000)",
            UsageDimension::Assistant => "a.slug",
            UsageDimension::Variant => "u.variant",
            UsageDimension::Model => "u.model",
            UsageDimension::Key => "u.key_id",
        }
    }

    fn null(self) -> &'static str {
        match self {
            UsageDimension::Day | UsageDimension::Key => "CAST(NULL AS BIGINT)",
            _ => "CAST(NULL AS TEXT)",
        }
    }
}

/// Totals of one group; a dimension not grouped by is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UsageGroup {
    pub day: Option<i64>,
    pub assistant: Option<String>,
    pub variant: Option<String>,
    pub model: Option<String>,
    pub key_id: Option<i64>,
    pub requests: i64,
    pub messages: i64,
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_micros: i64,
}

/// Totals of one assistant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AssistantUsage {
    pub slug: String,
    pub requests: i64,
    pub messages: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_micros: i64,
}

const TOTALS: &str = "COUNT(*), \
     CAST(COALESCE(SUM(CASE WHEN u.status = 200 AND (u.flags & 16) = 0 THEN 1 ELSE 0 END), 0) \
     AS BIGINT), \
     CAST(COALESCE(SUM(CASE WHEN u.status <> 200 THEN 1 ELSE 0 END), 0) AS BIGINT), \
     CAST(COALESCE(SUM(u.prompt_tokens), 0) AS BIGINT), \
     CAST(COALESCE(SUM(u.completion_tokens), 0) AS BIGINT), \
     CAST(COALESCE(SUM(u.cost_micros), 0) AS BIGINT)";
const JOIN_ASSISTANT: &str = "FROM usage_records u \
     LEFT JOIN assistant_versions v ON v.id = u.assistant_version_id \
     LEFT JOIN assistants a ON a.id = v.assistant_id";

type GroupRow = (
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
);

impl Store {
    /// Usage of requests started in `[from_ms, to_ms)`, grouped by `group_by` (all requests in
    /// one group when empty), ordered by the grouped dimensions.
    pub async fn usage_report(
        &self,
        from_ms: i64,
        to_ms: i64,
        group_by: &[UsageDimension],
    ) -> Result<Vec<UsageGroup>, StoreError> {
        debug_assert_eq!(UsageRecord::FLAG_SUMMARY, 16);
        let all = [
            UsageDimension::Day,
            UsageDimension::Assistant,
            UsageDimension::Variant,
            UsageDimension::Model,
            UsageDimension::Key,
        ];
        let select: Vec<&str> = all
            .iter()
            .map(|d| {
                if group_by.contains(d) {
                    d.expression()
                } else {
                    d.null()
                }
            })
            .collect();
        let grouped: Vec<&str> = all
            .iter()
            .filter(|d| group_by.contains(d))
            .map(|d| d.expression())
            .collect();
        let tail = if grouped.is_empty() {
            String::new()
        } else {
            let g = grouped.join(", ");
            format!(" GROUP BY {g} ORDER BY {g}")
        };
        let sql = format!(
            "SELECT {}, {TOTALS} {JOIN_ASSISTANT} WHERE u.ts_ms >= $1 AND u.ts_ms < $2{tail}",
            select.join(", ")
        );
        let rows: Vec<GroupRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(from_ms)
                .bind(to_ms)
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            // Without grouping an empty range still yields one row, of zeros.
            .filter(|r| r.5 > 0)
            .map(|r| UsageGroup {
                day: r.0,
                assistant: r.1,
                variant: r.2,
                model: r.3,
                key_id: r.4,
                requests: r.5,
                messages: r.6,
                errors: r.7,
                prompt_tokens: r.8,
                completion_tokens: r.9,
                cost_micros: r.10,
            })
            .collect())
    }

    /// Per-assistant totals of requests started at or after `since_ms`, by slug; assistants
    /// without requests are absent.
    pub async fn assistant_usage_since(
        &self,
        since_ms: i64,
    ) -> Result<Vec<AssistantUsage>, StoreError> {
        let sql = format!(
            "SELECT a.slug, {TOTALS} FROM usage_records u \
             JOIN assistant_versions v ON v.id = u.assistant_version_id \
             JOIN assistants a ON a.id = v.assistant_id \
             WHERE u.assistant_version_id IS NOT NULL AND u.ts_ms >= $1 \
             GROUP BY a.slug ORDER BY a.slug"
        );
        type Row = (String, i64, i64, i64, i64, i64, i64);
        let rows: Vec<Row> = on_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(since_ms).fetch_all(pool).await?
        });
        Ok(rows
            .into_iter()
            .map(|r| AssistantUsage {
                slug: r.0,
                requests: r.1,
                messages: r.2,
                prompt_tokens: r.4,
                completion_tokens: r.5,
                cost_micros: r.6,
            })
            .collect())
    }
}
