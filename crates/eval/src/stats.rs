//! Statistics across seeds: mean, bootstrap confidence interval, Cliff's delta.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Mean of the finite values; NaN when there are none.
pub fn mean(x: &[f64]) -> f64 {
    let v: Vec<f64> = x.iter().copied().filter(|v| v.is_finite()).collect();
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Percentile-bootstrap confidence interval of the mean at `level` (for example 0.95), with
/// `resamples` resamples from a generator seeded with `seed`. With one value the interval is
/// that value.
pub fn bootstrap_ci(x: &[f64], level: f64, resamples: usize, seed: u64) -> (f64, f64) {
    let v: Vec<f64> = x.iter().copied().filter(|v| v.is_finite()).collect();
    match v.len() {
        0 => return (f64::NAN, f64::NAN),
        1 => return (v[0], v[0]),
        _ => {}
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| {
            (0..v.len())
                .map(|_| v[rng.random_range(0..v.len())])
                .sum::<f64>()
                / v.len() as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let q = |p: f64| means[((p * (means.len() - 1) as f64).round() as usize).min(means.len() - 1)];
    let a = (1.0 - level) / 2.0;
    (q(a), q(1.0 - a))
}

/// Cliff's delta of `x` against `y`: P(x > y) - P(x < y), in -1..1.
pub fn cliffs_delta(x: &[f64], y: &[f64]) -> f64 {
    let (mut gt, mut lt, mut n) = (0i64, 0i64, 0i64);
    for a in x.iter().filter(|v| v.is_finite()) {
        for b in y.iter().filter(|v| v.is_finite()) {
            n += 1;
            if a > b {
                gt += 1;
            } else if a < b {
                lt += 1;
            }
        }
    }
    if n == 0 {
        f64::NAN
    } else {
        (gt - lt) as f64 / n as f64
    }
}

/// Magnitude of a Cliff's delta (Romano et al. thresholds 0.147, 0.33, 0.474).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Magnitude {
    /// |d| < 0.147
    Negligible,
    /// |d| < 0.33
    Small,
    /// |d| < 0.474
    Medium,
    /// otherwise
    Large,
}

impl Magnitude {
    /// The magnitude of `d`.
    pub fn of(d: f64) -> Self {
        let a = d.abs();
        if a.is_nan() || a < 0.147 {
            Magnitude::Negligible
        } else if a < 0.33 {
            Magnitude::Small
        } else if a < 0.474 {
            Magnitude::Medium
        } else {
            Magnitude::Large
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cliffs_delta_hand_computed() {
        // x = [1, 2, 3], y = [2, 2]: pairs 6; x > y: 3 > 2 twice = 2; x < y: 1 < 2 twice = 2 -> 0.
        assert_eq!(cliffs_delta(&[1.0, 2.0, 3.0], &[2.0, 2.0]), 0.0);
        assert_eq!(cliffs_delta(&[5.0, 6.0], &[1.0, 2.0]), 1.0);
        assert_eq!(cliffs_delta(&[1.0], &[2.0, 3.0]), -1.0);
        // x = [1, 3], y = [2]: one greater, one less -> 0; add 4: 2 greater of 3 pairs -> 1/3.
        assert!((cliffs_delta(&[1.0, 3.0, 4.0], &[2.0]) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(Magnitude::of(-0.5), Magnitude::Large);
        assert_eq!(Magnitude::of(0.2), Magnitude::Small);
        assert_eq!(Magnitude::of(f64::NAN), Magnitude::Negligible);
    }

    #[test]
    fn bootstrap_covers_the_mean_and_is_deterministic() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let (lo, hi) = bootstrap_ci(&x, 0.95, 2000, 7);
        assert!(lo < 3.0 && hi > 3.0 && lo >= 1.0 && hi <= 5.0, "{lo} {hi}");
        assert_eq!((lo, hi), bootstrap_ci(&x, 0.95, 2000, 7));
        assert_eq!(bootstrap_ci(&[2.0], 0.95, 100, 1), (2.0, 2.0));
        assert!(mean(&[]).is_nan());
    }
}
