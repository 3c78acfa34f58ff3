//! A/B experiments on assistants and the raw numbers of their results.
//!
//! An experiment's variants are a JSON document owned by the gateway. The windows of one
//! assistant's experiments never overlap (checked under a lock when one is created), so the
//! usage records of an experiment are exactly the assistant's records inside its window that
//! carry a variant; ratings carry the experiment id itself.

use crate::StoreError;
use crate::assistants::insert_version;
use crate::store::{Store, on_pool};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExperimentRecord {
    pub id: i64,
    pub assistant_id: i64,
    pub name: String,
    pub variants: String,
    pub starts_at_ms: i64,
    pub ends_at_ms: Option<i64>,
    pub stopped_at_ms: Option<i64>,
    pub promoted_variant: Option<String>,
    pub promoted_version_id: Option<i64>,
    pub created_at_ms: i64,
}

impl ExperimentRecord {
    /// When the experiment stops counting: its end date or the time it was stopped, whichever
    /// is first; `i64::MAX` while open-ended and running.
    pub fn effective_end_ms(&self) -> i64 {
        match (self.ends_at_ms, self.stopped_at_ms) {
            (Some(e), Some(s)) => e.min(s),
            (Some(t), None) | (None, Some(t)) => t,
            (None, None) => i64::MAX,
        }
    }
}

/// What a new experiment is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewExperiment {
    pub assistant_id: i64,
    pub name: String,
    pub variants: String,
    pub starts_at_ms: i64,
    pub ends_at_ms: Option<i64>,
}

/// Ledger totals of one variant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VariantUsage {
    pub variant: String,
    pub requests: i64,
    pub conversations: i64,
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_micros: i64,
}

/// Ratings of one variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VariantRatings {
    pub positive: i64,
    pub total: i64,
}

type ExperimentRow = (
    i64,
    i64,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    i64,
);

const COLUMNS: &str = "id, assistant_id, name, variants, starts_at_ms, ends_at_ms, \
     stopped_at_ms, promoted_variant, promoted_version_id, created_at_ms";

/// SQL for an experiment's effective end, as in [`ExperimentRecord::effective_end_ms`].
const EFFECTIVE_END: &str = "CASE WHEN stopped_at_ms IS NOT NULL AND (ends_at_ms IS NULL \
     OR stopped_at_ms < ends_at_ms) THEN stopped_at_ms \
     ELSE COALESCE(ends_at_ms, 9223372036854775807) END";

/// The assistant's records in an experiment's window that carry a variant.
const IN_WINDOW: &str = "FROM usage_records u JOIN assistant_versions v \
     ON v.id = u.assistant_version_id WHERE u.assistant_version_id IS NOT NULL \
     AND v.assistant_id = $1 AND u.ts_ms >= $2 AND u.ts_ms < $3 AND u.variant IS NOT NULL";

fn experiment(r: ExperimentRow) -> ExperimentRecord {
    ExperimentRecord {
        id: r.0,
        assistant_id: r.1,
        name: r.2,
        variants: r.3,
        starts_at_ms: r.4,
        ends_at_ms: r.5,
        stopped_at_ms: r.6,
        promoted_variant: r.7,
        promoted_version_id: r.8,
        created_at_ms: r.9,
    }
}

impl Store {
    /// Creates an experiment unless its window overlaps another experiment of the same
    /// assistant: `Err(id)` names the one in the way.
    pub async fn create_experiment(
        &self,
        new: &NewExperiment,
        now_ms: i64,
    ) -> Result<Result<ExperimentRecord, i64>, StoreError> {
        let end = new.ends_at_ms.unwrap_or(i64::MAX);
        let overlap = format!(
            "SELECT id FROM experiments WHERE assistant_id = $1 AND starts_at_ms < $2 \
             AND $3 < {EFFECTIVE_END} ORDER BY id LIMIT 1"
        );
        let insert = format!(
            "INSERT INTO experiments (assistant_id, name, variants, starts_at_ms, ends_at_ms, \
             created_at_ms) VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
        );
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            // Serialises experiment creation per assistant (a write comes first).
            sqlx::query("UPDATE assistants SET updated_at_ms = updated_at_ms WHERE id = $1")
                .bind(new.assistant_id)
                .execute(&mut *tx)
                .await?;
            let clash: Option<(i64,)> = sqlx::query_as(&overlap)
                .bind(new.assistant_id)
                .bind(end)
                .bind(new.starts_at_ms)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some((id,)) = clash {
                return Ok(Err(id));
            }
            let row: ExperimentRow = sqlx::query_as(&insert)
                .bind(new.assistant_id)
                .bind(&new.name)
                .bind(&new.variants)
                .bind(new.starts_at_ms)
                .bind(new.ends_at_ms)
                .bind(now_ms)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Ok(experiment(row)))
        })
    }

    pub async fn experiment(&self, id: i64) -> Result<Option<ExperimentRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM experiments WHERE id = $1");
        let row: Option<ExperimentRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        Ok(row.map(experiment))
    }

    /// The assistant's experiments, newest first.
    pub async fn experiments(
        &self,
        assistant_id: i64,
    ) -> Result<Vec<ExperimentRecord>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM experiments WHERE assistant_id = $1 ORDER BY id DESC");
        let rows: Vec<ExperimentRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(assistant_id)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(experiment).collect())
    }

    /// The experiment running now or next: not stopped and not past its end.
    pub async fn live_experiment(
        &self,
        assistant_id: i64,
        now_ms: i64,
    ) -> Result<Option<ExperimentRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM experiments WHERE assistant_id = $1 \
             AND stopped_at_ms IS NULL AND (ends_at_ms IS NULL OR ends_at_ms > $2) \
             ORDER BY starts_at_ms LIMIT 1"
        );
        let row: Option<ExperimentRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(assistant_id)
                .bind(now_ms)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(experiment))
    }

    /// Stops a running experiment and, with `promote = (variant, spec, note)`, stores `spec` as
    /// the assistant's next version, all in one transaction. `None` when the experiment does
    /// not exist, is already stopped, or (when promoting) its assistant was deleted.
    pub async fn stop_experiment(
        &self,
        id: i64,
        now_ms: i64,
        promote: Option<(&str, &str, &str)>,
    ) -> Result<Option<ExperimentRecord>, StoreError> {
        let stopped = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let row: Option<(i64,)> = sqlx::query_as(
                "UPDATE experiments SET stopped_at_ms = $2 \
                 WHERE id = $1 AND stopped_at_ms IS NULL RETURNING assistant_id",
            )
            .bind(id)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((assistant_id,)) = row else {
                return Ok(None);
            };
            if let Some((variant, spec, note)) = promote {
                let live: Option<(i64,)> = sqlx::query_as(
                    "UPDATE assistants SET updated_at_ms = $2 \
                     WHERE id = $1 AND deleted_at_ms IS NULL RETURNING id",
                )
                .bind(assistant_id)
                .bind(now_ms)
                .fetch_optional(&mut *tx)
                .await?;
                if live.is_none() {
                    return Ok(None);
                }
                let version_id = insert_version!(tx, assistant_id, spec, note, now_ms);
                sqlx::query(
                    "UPDATE experiments SET promoted_variant = $2, promoted_version_id = $3 \
                     WHERE id = $1",
                )
                .bind(id)
                .bind(variant)
                .bind(version_id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            true
        });
        if stopped {
            self.experiment(id).await
        } else {
            Ok(None)
        }
    }

    /// Ledger totals per variant of the assistant's records in `[from_ms, to_ms)`. Errors are
    /// records whose status is not 200.
    pub async fn variant_usage(
        &self,
        assistant_id: i64,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<VariantUsage>, StoreError> {
        let sql = format!(
            "SELECT u.variant, COUNT(*), COUNT(DISTINCT u.conversation_id), \
             CAST(SUM(CASE WHEN u.status <> 200 THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(u.prompt_tokens) AS BIGINT), CAST(SUM(u.completion_tokens) AS BIGINT), \
             CAST(SUM(u.cost_micros) AS BIGINT) {IN_WINDOW} GROUP BY u.variant ORDER BY u.variant"
        );
        type Row = (String, i64, i64, i64, i64, i64, i64);
        let rows: Vec<Row> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(assistant_id)
                .bind(from_ms)
                .bind(to_ms)
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| VariantUsage {
                variant: r.0,
                requests: r.1,
                conversations: r.2,
                errors: r.3,
                prompt_tokens: r.4,
                completion_tokens: r.5,
                cost_micros: r.6,
            })
            .collect())
    }

    /// Latencies of the successful requests of one variant in `[from_ms, to_ms)`, ascending.
    pub async fn variant_latencies(
        &self,
        assistant_id: i64,
        from_ms: i64,
        to_ms: i64,
        variant: &str,
    ) -> Result<Vec<i64>, StoreError> {
        let sql = format!(
            "SELECT u.latency_ms {IN_WINDOW} AND u.variant = $4 AND u.status = 200 \
             ORDER BY u.latency_ms"
        );
        let rows: Vec<(i64,)> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(assistant_id)
                .bind(from_ms)
                .bind(to_ms)
                .bind(variant)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Ratings of an experiment per variant.
    pub async fn variant_ratings(
        &self,
        experiment_id: i64,
    ) -> Result<Vec<(String, VariantRatings)>, StoreError> {
        let rows: Vec<(String, i64, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT variant, CAST(SUM(CASE WHEN rating > 0 THEN 1 ELSE 0 END) AS BIGINT), \
                 COUNT(*) FROM ratings WHERE experiment_id = $1 AND variant IS NOT NULL \
                 GROUP BY variant ORDER BY variant",
            )
            .bind(experiment_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(v, positive, total)| (v, VariantRatings { positive, total }))
            .collect())
    }
}
