//! The statistics of experiment results: nearest-rank percentiles, the Wilson score interval
//! of a proportion, and the pooled two-proportion z-test with its two-sided p-value.

/// z of a two-sided 95% interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// Nearest-rank percentile of ascending `sorted` values: the smallest value with at least
/// `p`% of the values at or below it. `None` for no values.
pub fn percentile(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len() as u64;
    let rank = (u64::from(p) * n).div_ceil(100).max(1);
    sorted.get(usize::try_from(rank - 1).ok()?).copied()
}

/// The Wilson score interval of `positive` out of `total` at confidence `z`; `None` when there
/// is nothing to estimate from.
pub fn wilson(positive: u64, total: u64, z: f64) -> Option<(f64, f64)> {
    if total == 0 {
        return None;
    }
    let n = total as f64;
    let p = positive as f64 / n;
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denominator;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
    Some(((center - half).max(0.0), (center + half).min(1.0)))
}

/// The pooled two-proportion z-test of `x1/n1` against `x2/n2`: (z, two-sided p-value).
/// `None` when either sample is empty or the pooled rate is 0 or 1 (no variance to test).
pub fn two_proportion_z(x1: u64, n1: u64, x2: u64, n2: u64) -> Option<(f64, f64)> {
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let pooled = (x1 + x2) as f64 / (n1f + n2f);
    let variance = pooled * (1.0 - pooled) * (1.0 / n1f + 1.0 / n2f);
    if variance <= 0.0 {
        return None;
    }
    let z = (x1 as f64 / n1f - x2 as f64 / n2f) / variance.sqrt();
    Some((z, erfc(z.abs() / std::f64::consts::SQRT_2)))
}

/// The complementary error function (Numerical Recipes' Chebyshev fit, relative error under
/// 1.2e-7 everywhere), enough for p-values.
pub fn erfc(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<i64> = (1..=20).map(|i| i * 10).collect();
        // p50 of 20 values: rank ceil(10) = 10 → 100; p95: rank ceil(19) = 19 → 190.
        assert_eq!(
            (percentile(&v, 50), percentile(&v, 95)),
            (Some(100), Some(190))
        );
        // Five values: p50 rank ceil(2.5) = 3, p95 rank ceil(4.75) = 5.
        assert_eq!(percentile(&[3, 5, 8, 13, 21], 50), Some(8));
        assert_eq!(percentile(&[3, 5, 8, 13, 21], 95), Some(21));
        assert_eq!(percentile(&[7], 0), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }

    /// Reference values computed by hand (with Python's `math` module, formulas as documented).
    #[test]
    fn wilson_matches_hand_computed_values() {
        // 40/50: p = 0.8, center = (0.8 + 1.920729/50) / (1 + 3.841459/50) = 0.778596,
        // half = 1.959964 × sqrt(0.16/50 + 3.841459/10000) / 1.076829 = 0.108967.
        let (lo, hi) = wilson(40, 50, Z95).unwrap();
        assert!(
            close(lo, 0.669_629, 1e-6) && close(hi, 0.887_562, 1e-6),
            "{lo} {hi}"
        );
        let (lo, hi) = wilson(4, 5, Z95).unwrap();
        assert!(
            close(lo, 0.375_535, 1e-6) && close(hi, 0.963_776, 1e-6),
            "{lo} {hi}"
        );
        // All positive: the upper bound is 1, the lower n / (n + z²).
        let (lo, hi) = wilson(10, 10, Z95).unwrap();
        assert!(
            close(lo, 0.722_467, 1e-6) && close(hi, 1.0, 1e-12),
            "{lo} {hi}"
        );
        assert_eq!(wilson(0, 0, Z95), None);
    }

    #[test]
    fn z_test_matches_hand_computed_values() {
        // 40/50 vs 30/50: pooled 0.7, se = sqrt(0.21 × 0.04) = 0.0916515, z = 2.182179,
        // p = erfc(2.182179 / √2) = 0.029096.
        let (z, p) = two_proportion_z(40, 50, 30, 50).unwrap();
        assert!(
            close(z, 2.182_179, 1e-6) && close(p, 0.029_096, 1e-5),
            "{z} {p}"
        );
        // 4/5 vs 1/5: pooled 0.5, se = sqrt(0.25 × 0.4) = 0.316228, z = 1.897367, p = 0.057780.
        let (z, p) = two_proportion_z(4, 5, 1, 5).unwrap();
        assert!(
            close(z, 1.897_367, 1e-6) && close(p, 0.057_780, 1e-5),
            "{z} {p}"
        );
        // Symmetric: swapping the samples flips z, keeps p.
        let (z2, p2) = two_proportion_z(1, 5, 4, 5).unwrap();
        assert!(close(z2, -z, 1e-12) && close(p2, p, 1e-12));
        // Bad input: an empty sample; everything positive (no variance).
        assert_eq!(two_proportion_z(1, 0, 1, 2), None);
        assert_eq!(two_proportion_z(3, 3, 5, 5), None);
    }

    #[test]
    fn erfc_known_values() {
        assert!(close(erfc(0.0), 1.0, 1e-7));
        assert!(close(erfc(1.0), 0.157_299_207, 1e-7));
        assert!(close(erfc(-1.0), 1.842_700_793, 1e-7));
        // Two-sided p of z = 1.959964 is 0.05.
        assert!(close(erfc(Z95 / std::f64::consts::SQRT_2), 0.05, 1e-7));
    }
}
