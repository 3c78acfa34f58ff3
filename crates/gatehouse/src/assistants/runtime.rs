//! What the request path keeps in memory about assistants: their current definitions (read
//! from the store at most once per `cache_ttl`, dropped at once when edited through this
//! instance) and each one's spend today for the daily ceiling.
//!
//! The daily spend starts from the ledger (so a restart does not reopen a reached ceiling)
//! and then grows with every finished request of this instance. Instances do not see each
//! other's requests until they next seed, so with N instances an assistant can overshoot its
//! daily ceiling by what the others spent since; the check is done before each request, so a
//! request that starts under the ceiling is served in full.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use store::Store;

use super::spec::AssistantSpec;
use crate::dates::{DAY_MS, day_of};
use crate::experiments::Experiment;

/// An assistant as the request path uses it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub id: i64,
    pub slug: String,
    pub version_id: i64,
    pub version: i64,
    pub spec: AssistantSpec,
    /// The experiment running now or scheduled next.
    pub experiment: Option<Experiment>,
}

pub struct Runtime {
    ttl: Duration,
    cache: RwLock<HashMap<String, (Instant, Arc<Loaded>)>>,
    spend: Mutex<HashMap<i64, DaySpend>>,
}

#[derive(Debug, Clone, Copy)]
struct DaySpend {
    day: i64,
    micros: i64,
}

impl Runtime {
    pub fn new(ttl: Duration) -> Runtime {
        Runtime {
            ttl,
            cache: RwLock::new(HashMap::new()),
            spend: Mutex::new(HashMap::new()),
        }
    }

    /// The live assistant `slug`, from memory when fresh. Only assistants that exist are kept,
    /// so the map is bounded by the number of assistants.
    pub async fn get(
        &self,
        store: &Store,
        slug: &str,
    ) -> Result<Option<Arc<Loaded>>, store::StoreError> {
        if let Some((at, a)) = self
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(slug)
            && at.elapsed() < self.ttl
        {
            return Ok(Some(Arc::clone(a)));
        }
        let Some(record) = store.assistant(slug).await? else {
            self.forget(slug);
            return Ok(None);
        };
        let Ok(spec) = serde_json::from_str::<AssistantSpec>(&record.spec) else {
            tracing::error!(
                slug,
                version = record.version,
                "stored assistant definition does not parse"
            );
            return Ok(None);
        };
        let experiment = store
            .live_experiment(record.id, crate::usage::now_ms())
            .await?
            .and_then(|e| Experiment::from_record(&e));
        let loaded = Arc::new(Loaded {
            id: record.id,
            slug: record.slug,
            version_id: record.version_id,
            version: record.version,
            spec,
            experiment,
        });
        self.cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(slug.to_owned(), (Instant::now(), Arc::clone(&loaded)));
        Ok(Some(loaded))
    }

    /// Drop a cached definition (after an edit, a delete or an experiment change).
    pub fn forget(&self, slug: &str) {
        self.cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(slug);
    }

    pub fn forget_all(&self) {
        self.cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// What the assistant spent on the UTC day of `now_ms`, seeded from the ledger the first
    /// time it is asked for that day.
    pub async fn spent_today(
        &self,
        store: &Store,
        assistant_id: i64,
        now_ms: i64,
    ) -> Result<i64, store::StoreError> {
        let day = day_of(now_ms);
        if let Some(s) = self.lock_spend().get(&assistant_id)
            && s.day == day
        {
            return Ok(s.micros);
        }
        let seeded = store
            .assistant_cost_since(assistant_id, day * DAY_MS)
            .await?;
        let mut map = self.lock_spend();
        let entry = map.entry(assistant_id).or_insert(DaySpend {
            day,
            micros: seeded,
        });
        if entry.day != day {
            *entry = DaySpend {
                day,
                micros: seeded,
            };
        }
        Ok(entry.micros)
    }

    /// Count a finished request's cost. Ignored until the day's spend was seeded: the seed
    /// reads the ledger, which has it.
    pub fn add_spend(&self, assistant_id: i64, cost_micros: i64, ts_ms: i64) {
        if cost_micros == 0 {
            return;
        }
        let day = day_of(ts_ms);
        if let Some(s) = self.lock_spend().get_mut(&assistant_id)
            && s.day == day
        {
            s.micros = s.micros.saturating_add(cost_micros);
        }
    }

    fn lock_spend(&self) -> std::sync::MutexGuard<'_, HashMap<i64, DaySpend>> {
        self.spend.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
