//! A/B experiments on an assistant: variants that change its prompt, model or temperature,
//! split by integer weights, between a start and an optional end date.
//!
//! Assignment is sticky: the variant is a pure function of the experiment id and the unit (the
//! conversation id; without a conversation, the request's `user`, else its request id), namely
//! the first 8 bytes of SHA-256(`<experiment id>:<unit>`) modulo the total weight, walked over
//! the cumulative weights. Every usage record of an assigned request carries the variant name.

pub mod admin;
pub mod results;
pub mod stats;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use store::ExperimentRecord;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::assistants::spec::{check_model, check_prompt, check_sampling};
use crate::error::ApiError;

/// One arm of an experiment. Fields left out keep the assistant's own value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantSpec {
    /// 1–64 of `A-Z`, `a-z`, `0-9`, `-`, `_`; unique in the experiment.
    pub name: String,
    /// Share of traffic relative to the other variants' weights (70/30, 1/1/2, …); 0 pauses it.
    #[serde(default = "one")]
    pub weight: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
}

fn one() -> u32 {
    1
}

/// A stored experiment with its variants parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    pub id: i64,
    pub name: String,
    pub variants: Vec<VariantSpec>,
    pub starts_at_ms: i64,
    pub ends_at_ms: Option<i64>,
    pub stopped_at_ms: Option<i64>,
}

impl Experiment {
    /// `None` when the stored variants no longer parse or carry no weight.
    pub fn from_record(r: &ExperimentRecord) -> Option<Experiment> {
        let variants: Vec<VariantSpec> = serde_json::from_str(&r.variants).ok()?;
        (total_weight(&variants) > 0).then(|| Experiment {
            id: r.id,
            name: r.name.clone(),
            variants,
            starts_at_ms: r.starts_at_ms,
            ends_at_ms: r.ends_at_ms,
            stopped_at_ms: r.stopped_at_ms,
        })
    }

    /// Assigning traffic at `now_ms`: started, not ended, not stopped.
    pub fn is_running(&self, now_ms: i64) -> bool {
        self.stopped_at_ms.is_none()
            && self.starts_at_ms <= now_ms
            && self.ends_at_ms.is_none_or(|e| now_ms < e)
    }

    /// The variant of `unit`; the same unit always gets the same variant.
    pub fn assign(&self, unit: &str) -> &VariantSpec {
        &self.variants[assign_index(self.id, &self.variants, unit)]
    }
}

fn total_weight(variants: &[VariantSpec]) -> u64 {
    variants.iter().map(|v| u64::from(v.weight)).sum()
}

/// A uniform number in `[0, total)` from the experiment and the unit.
pub fn bucket(experiment_id: i64, unit: &str, total: u64) -> u64 {
    let digest = Sha256::new()
        .chain_update(experiment_id.to_string().as_bytes())
        .chain_update(b":")
        .chain_update(unit.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // The modulo bias is below total / 2^64: nil for any realistic weights.
    u64::from_be_bytes(first) % total.max(1)
}

/// Index of the variant `unit` falls in (variants with weight 0 never get traffic).
pub fn assign_index(experiment_id: i64, variants: &[VariantSpec], unit: &str) -> usize {
    let mut b = bucket(experiment_id, unit, total_weight(variants));
    for (i, v) in variants.iter().enumerate() {
        let w = u64::from(v.weight);
        if b < w {
            return i;
        }
        b -= w;
    }
    0
}

/// Variants are valid when there are 2 to 16 with unique names, some weight, and fields a
/// request could use; prompts over the token limit fail unless `force`.
pub fn validate_variants(
    state: &AppState,
    variants: &[VariantSpec],
    assistant_model: &str,
    force: bool,
) -> Result<(), ApiError> {
    if !(2..=16).contains(&variants.len()) {
        return Err(ApiError::invalid(
            "variants",
            "an experiment has 2 to 16 variants",
        ));
    }
    for (i, v) in variants.iter().enumerate() {
        let at = format!("variants[{i}].");
        let name_ok = (1..=64).contains(&v.name.len())
            && v.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(ApiError::invalid(
                format!("{at}name"),
                "variant names are 1 to 64 characters of A-Z, a-z, 0-9, '-' and '_'",
            ));
        }
        if variants[..i].iter().any(|o| o.name == v.name) {
            return Err(ApiError::invalid(
                format!("{at}name"),
                format!("variant `{}` is named twice", v.name),
            ));
        }
        if let Some(m) = &v.model {
            check_model(state, &format!("{at}model"), m)?;
        }
        check_sampling(v.temperature, None, &at)?;
        if let Some(p) = &v.system_prompt {
            let model = v.model.as_deref().unwrap_or(assistant_model);
            check_prompt(state, &format!("{at}system_prompt"), p, model, force)?;
        }
    }
    if total_weight(variants) == 0 {
        return Err(ApiError::invalid(
            "variants",
            "at least one variant needs a weight above 0",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variants(weights: &[u32]) -> Vec<VariantSpec> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| VariantSpec {
                name: format!("v{i}"),
                weight: *w,
                system_prompt: None,
                model: None,
                temperature: None,
            })
            .collect()
    }

    /// Counts per variant over conversation ids 1..=10,000.
    fn split(experiment_id: i64, weights: &[u32]) -> Vec<u32> {
        let vs = variants(weights);
        let mut counts = vec![0u32; weights.len()];
        for id in 1..=10_000 {
            counts[assign_index(experiment_id, &vs, &id.to_string())] += 1;
        }
        counts
    }

    #[test]
    fn assignment_is_sticky() {
        let vs = variants(&[50, 50]);
        for id in 1..=1_000 {
            let unit = id.to_string();
            let first = assign_index(7, &vs, &unit);
            assert!((0..5).all(|_| assign_index(7, &vs, &unit) == first));
        }
        // A different experiment reshuffles: not every unit keeps its arm.
        let moved = (1..=1_000)
            .filter(|id| {
                assign_index(7, &vs, &id.to_string()) != assign_index(8, &vs, &id.to_string())
            })
            .count();
        assert!((400..=600).contains(&moved), "{moved}");
    }

    /// Over 10,000 ids each share is within 2.5 percentage points of its weight: at least 5
    /// standard deviations (sqrt(0.25 / 10,000) = 0.5 pp at worst), so the check is not flaky,
    /// yet a biased assignment (e.g. always the first arm, or an off-by-one walk) fails it.
    #[test]
    fn split_proportions_are_within_tolerance_over_10_000_ids() {
        for (experiment, weights) in [
            (1, vec![50, 50]),
            (2, vec![70, 30]),
            (3, vec![90, 10]),
            (4, vec![1, 1, 2]),
            (5, vec![3, 0, 1]),
        ] {
            let counts = split(experiment, &weights);
            let total: u32 = weights.iter().sum();
            for (c, w) in counts.iter().zip(&weights) {
                let share = f64::from(*c) / 10_000.0;
                let expected = f64::from(*w) / f64::from(total);
                assert!(
                    (share - expected).abs() < 0.025,
                    "weights {weights:?}: got {counts:?}"
                );
            }
            assert_eq!(counts.iter().sum::<u32>(), 10_000);
        }
        // A zero weight gets nothing at all.
        assert_eq!(split(5, &[3, 0, 1])[1], 0);
    }

    #[test]
    fn running_window() {
        let e = Experiment {
            id: 1,
            name: "e".into(),
            variants: variants(&[1, 1]),
            starts_at_ms: 100,
            ends_at_ms: Some(200),
            stopped_at_ms: None,
        };
        assert_eq!(
            [99, 100, 199, 200].map(|t| e.is_running(t)),
            [false, true, true, false]
        );
        let stopped = Experiment {
            stopped_at_ms: Some(150),
            ..e
        };
        assert!(!stopped.is_running(120));
    }
}
