//! Cost tiers: models carry a tier from 0 (cheapest) to 3. `model: "tier:auto"` picks the
//! cheapest viable tier for the request (context fits, the task rule allows it) and escalates
//! one tier at a time on failure; `model: "tier:N"` asks for a tier outright. A tier whose daily
//! spend cap is reached is closed for the rest of the UTC day, and requests go to the next
//! cheaper viable tier.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use providers::ChatRequest;

use crate::config::Config;
use crate::error::{ApiError, ErrorCode};
use crate::resilience::ModelGroup;

pub const TIERS: usize = 4;

pub struct TierTable {
    /// Groups per tier, cheapest first.
    tiers: [Vec<Arc<ModelGroup>>; TIERS],
    rules: Vec<(String, u8)>,
    caps: [Option<i64>; TIERS],
    spent: [AtomicI64; TIERS],
    alerted: [AtomicBool; TIERS],
    /// The UTC day (days since the epoch) `spent` belongs to.
    day: AtomicI64,
}

/// What a tier request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierRequest {
    Auto,
    Exact(u8),
}

impl TierRequest {
    /// `tier:auto`, `tier:0` … `tier:3`; anything else is not a tier request.
    pub fn parse(model: &str) -> Option<Result<TierRequest, ApiError>> {
        let rest = model.strip_prefix("tier:")?;
        Some(match rest {
            "auto" => Ok(TierRequest::Auto),
            n => match n.parse::<u8>() {
                Ok(t) if usize::from(t) < TIERS => Ok(TierRequest::Exact(t)),
                _ => Err(ApiError::invalid(
                    "model",
                    format!("`{model}`: tiers are tier:auto and tier:0 to tier:3"),
                )),
            },
        })
    }
}

fn price_key(g: &ModelGroup) -> i64 {
    g.deployments
        .first()
        .map_or(0, |d| d.target.prices.input + d.target.prices.output)
}

impl TierTable {
    pub fn build(config: &Config, groups: &HashMap<String, Arc<ModelGroup>>) -> TierTable {
        let mut tiers: [Vec<Arc<ModelGroup>>; TIERS] = Default::default();
        for g in groups.values() {
            if let Some(t) = g.tier {
                tiers[usize::from(t)].push(Arc::clone(g));
            }
        }
        for t in &mut tiers {
            t.sort_by(|a, b| {
                price_key(a)
                    .cmp(&price_key(b))
                    .then_with(|| a.alias.cmp(&b.alias))
            });
        }
        TierTable {
            tiers,
            rules: config.tier_rules.clone(),
            caps: config.tier_daily_caps,
            spent: Default::default(),
            alerted: Default::default(),
            day: AtomicI64::new(utc_day(crate::usage::now_ms())),
        }
    }

    fn roll_day(&self) {
        let today = utc_day(crate::usage::now_ms());
        if self.day.swap(today, Ordering::Relaxed) != today {
            for (s, a) in self.spent.iter().zip(&self.alerted) {
                s.store(0, Ordering::Relaxed);
                a.store(false, Ordering::Relaxed);
            }
        }
    }

    /// Add spend served by a tier model.
    pub fn record_spend(&self, tier: u8, cost_micros: i64) {
        self.roll_day();
        let t = usize::from(tier).min(TIERS - 1);
        let now = self.spent[t].fetch_add(cost_micros, Ordering::Relaxed) + cost_micros;
        if let Some(cap) = self.caps[t]
            && now >= cap
            && !self.alerted[t].swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                tier = t,
                spent_micros = now,
                cap_micros = cap,
                "tier daily spend cap reached; routing to cheaper tiers until midnight UTC"
            );
        }
    }

    /// Seed today's spend (from the ledger at startup).
    pub fn seed_spend(&self, tier: u8, cost_micros: i64) {
        self.spent[usize::from(tier).min(TIERS - 1)].store(cost_micros, Ordering::Relaxed);
    }

    pub fn closed(&self, tier: usize) -> bool {
        self.roll_day();
        self.caps[tier].is_some_and(|cap| self.spent[tier].load(Ordering::Relaxed) >= cap)
    }

    pub fn spent(&self, tier: usize) -> i64 {
        self.spent[tier].load(Ordering::Relaxed)
    }

    fn viable(&self, tier: usize, needed_tokens: u64) -> Vec<Arc<ModelGroup>> {
        self.tiers[tier]
            .iter()
            .filter(|g| {
                g.context_window
                    .is_none_or(|w| u64::from(w) >= needed_tokens)
            })
            .cloned()
            .collect()
    }

    /// The chain of groups to try for a tier request: the chosen tier's viable models, cheapest
    /// first, then (for `auto`) each higher tier in turn.
    pub fn plan(
        &self,
        ask: TierRequest,
        req: &ChatRequest,
        needed_tokens: u64,
    ) -> Result<Vec<Arc<ModelGroup>>, ApiError> {
        let min_tier = match ask {
            TierRequest::Exact(t) => usize::from(t),
            TierRequest::Auto => task(req)
                .and_then(|task| self.rules.iter().find(|(t, _)| t == task))
                .map_or(0, |(_, t)| usize::from(*t)),
        };
        let open = |t: usize| !self.closed(t) && !self.viable(t, needed_tokens).is_empty();
        // The cheapest open viable tier at or above the minimum; if the wanted tier is closed by
        // its cap, the next cheaper open one.
        let start = match ask {
            TierRequest::Auto => (min_tier..TIERS).find(|t| open(*t)),
            TierRequest::Exact(t) => {
                let t = usize::from(t);
                if open(t) {
                    Some(t)
                } else {
                    (0..t).rev().find(|c| open(*c))
                }
            }
        };
        let Some(start) = start.or_else(|| (0..min_tier).rev().find(|c| open(*c))) else {
            return Err(ApiError::new(
                ErrorCode::NoViableModel,
                "No model of the requested tier can serve this request (context too long, or the tier's daily spend cap is reached)",
            ));
        };
        let mut chain = self.viable(start, needed_tokens);
        if ask == TierRequest::Auto {
            for t in start + 1..TIERS {
                if !self.closed(t) {
                    chain.extend(self.viable(t, needed_tokens));
                }
            }
        }
        Ok(chain)
    }
}

/// The request's task label: `metadata.task`.
fn task(req: &ChatRequest) -> Option<&str> {
    req.extra.get("metadata")?.get("task")?.as_str()
}

fn utc_day(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

/// Midnight UTC of today, in Unix milliseconds.
pub fn today_start_ms() -> i64 {
    utc_day(crate::usage::now_ms()) * 86_400_000
}
