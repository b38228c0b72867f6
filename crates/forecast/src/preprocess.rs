//! Preparing a monitored series for forecasting.

use crate::ForecastError;

/// How values falling into one step are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// Sum (counts per step: requests per minute -> per 5 minutes).
    Sum,
    /// Mean (rates and gauges).
    Mean,
}

/// Most steps a resampled series may span (about 10 years of 1-minute steps).
pub const MAX_GRID_POINTS: usize = 5_000_000;

/// Resamples `(t, v)` points (Unix seconds, strictly increasing) onto a grid of `step` seconds
/// starting at the first point's step. Steps with no point are `NaN` (gaps stay gaps); use
/// [`fill_gaps`] to interpolate them. Errors: empty input, mismatched lengths, non-finite values,
/// unsorted or duplicate timestamps, `step <= 0`, a span of more than [`MAX_GRID_POINTS`] steps.
pub fn resample(
    t: &[f64],
    v: &[f64],
    step: f64,
    agg: Aggregate,
) -> Result<(f64, Vec<f64>), ForecastError> {
    if !(step.is_finite() && step > 0.0) {
        return Err(ForecastError::Config {
            field: "step".into(),
            reason: format!("must be > 0, got {step}"),
        });
    }
    if t.is_empty() || t.len() != v.len() {
        return Err(ForecastError::Series(format!(
            "need matching, non-empty time and value vectors ({} and {})",
            t.len(),
            v.len()
        )));
    }
    for i in 0..t.len() {
        if !t[i].is_finite() || !v[i].is_finite() {
            return Err(ForecastError::Series(format!(
                "point {i}: time and value must be finite, got ({}, {})",
                t[i], v[i]
            )));
        }
        if i > 0 && t[i] <= t[i - 1] {
            return Err(ForecastError::Series(format!(
                "point {i}: timestamps must strictly increase ({} after {})",
                t[i],
                t[i - 1]
            )));
        }
    }
    let start = (t[0] / step).floor() * step;
    let last = t[t.len() - 1];
    let span = ((last - start) / step).floor();
    // The grid is allocated from the span, so a far-off timestamp (mixed seconds and
    // milliseconds, a stray 0) must be refused, not allocated.
    if span >= MAX_GRID_POINTS as f64 {
        return Err(ForecastError::Series(format!(
            "the series spans {span:.0} steps of {step} s (from {} to {last}), at most \
             {MAX_GRID_POINTS}: are seconds and milliseconds mixed, or is a timestamp far off?",
            t[0]
        )));
    }
    let n = span as usize + 1;
    let (mut sum, mut count) = (vec![0.0; n], vec![0u32; n]);
    for (ti, vi) in t.iter().zip(v) {
        // Rounding may put the last point one past the grid: it belongs to the last step.
        let k = (((ti - start) / step).floor() as usize).min(n - 1);
        sum[k] += vi;
        count[k] += 1;
    }
    let out = sum
        .iter()
        .zip(&count)
        .map(|(s, c)| match (c, agg) {
            (0, _) => f64::NAN,
            (_, Aggregate::Sum) => *s,
            (c, Aggregate::Mean) => s / *c as f64,
        })
        .collect();
    Ok((start, out))
}

/// Fills `NaN` gaps by linear interpolation between their neighbours (a gap at either end takes
/// the nearest value). Returns how many points were filled. Errors when every value is `NaN`.
pub fn fill_gaps(y: &mut [f64]) -> Result<usize, ForecastError> {
    let known: Vec<usize> = (0..y.len()).filter(|&i| y[i].is_finite()).collect();
    let (Some(&first), Some(&last)) = (known.first(), known.last()) else {
        return Err(ForecastError::Series(
            "no finite value to fill gaps from".into(),
        ));
    };
    let mut filled = 0;
    for i in 0..first {
        y[i] = y[first];
        filled += 1;
    }
    for i in last + 1..y.len() {
        y[i] = y[last];
        filled += 1;
    }
    for w in known.windows(2) {
        let (a, b) = (w[0], w[1]);
        for i in a + 1..b {
            let f = (i - a) as f64 / (b - a) as f64;
            y[i] = y[a] + (y[b] - y[a]) * f;
            filled += 1;
        }
    }
    Ok(filled)
}

/// Replaces monitoring glitches, keeping real flash crowds.
///
/// Rule: a point is a glitch when it is **isolated**: it deviates from the median of its
/// `2 * half_window + 1` neighbourhood by more than `k` scaled MADs (`1.4826 * MAD`, floor 1 %
/// of the median), while both of its direct neighbours do not. A flash crowd lasts more than
/// one step, so its points have deviating neighbours and are kept; a lone spike or a lone drop
/// to zero (a scrape or log gap) is replaced by the neighbourhood median. Returns the indices
/// replaced. Defaults used by graphscale: `half_window = 7`, `k = 6`.
pub fn filter_glitches(y: &mut [f64], half_window: usize, k: f64) -> Vec<usize> {
    let n = y.len();
    if n < 3 {
        return Vec::new();
    }
    let mut med = vec![0.0; n];
    let mut scale = vec![0.0; n];
    for i in 0..n {
        let lo = i.saturating_sub(half_window);
        let hi = (i + half_window + 1).min(n);
        let mut w: Vec<f64> = y[lo..hi].to_vec();
        let m = graphscale_core::stats::median(&mut w);
        let mut dev: Vec<f64> = y[lo..hi].iter().map(|x| (x - m).abs()).collect();
        med[i] = m;
        scale[i] = (1.4826 * graphscale_core::stats::median(&mut dev))
            .max(0.01 * m.abs())
            .max(1e-12);
    }
    let out_of_line = |i: usize, y: &[f64]| (y[i] - med[i]).abs() > k * scale[i];
    let flagged: Vec<usize> = (0..n)
        .filter(|&i| {
            out_of_line(i, y)
                && (i == 0 || !out_of_line(i - 1, y))
                && (i + 1 == n || !out_of_line(i + 1, y))
        })
        .collect();
    for &i in &flagged {
        y[i] = med[i];
    }
    flagged
}

/// The dominant season length of `y` in steps, detected on the first differences (the trend
/// makes a periodogram of the raw series prefer long periods), between `min` and `max` steps:
/// augurs' periodogram finds the peak, and the autocorrelation of the differences refines it to
/// the best lag within +/- 2 steps. `None` when no period stands out.
pub fn detect_season(y: &[f64], min: u32, max: u32) -> Option<usize> {
    use augurs::seasons::{Detector, PeriodogramDetector};
    if y.len() < 2 * max as usize + 2 || min < 2 || max <= min {
        return None;
    }
    let diff: Vec<f64> = y.windows(2).map(|w| w[1] - w[0]).collect();
    let detector = PeriodogramDetector::builder()
        .min_period(min)
        .max_period(max)
        .build();
    let rough = *detector.detect(&diff).first()? as usize;
    // The periodogram's frequency grid is coarse at long periods (it may say 25 for 24):
    // refine to the lag within +/- 2 with the highest autocorrelation.
    let mean = diff.iter().sum::<f64>() / diff.len() as f64;
    let var: f64 = diff.iter().map(|x| (x - mean).powi(2)).sum();
    let acf = |lag: usize| -> f64 {
        if var <= 0.0 || lag >= diff.len() {
            return f64::NEG_INFINITY;
        }
        diff.iter()
            .zip(&diff[lag..])
            .map(|(a, b)| (a - mean) * (b - mean))
            .sum::<f64>()
            / var
    };
    (rough.saturating_sub(2).max(min as usize)..=(rough + 2).min(max as usize))
        .max_by(|a, b| acf(*a).total_cmp(&acf(*b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_apart_timestamps_are_refused_not_allocated() {
        // 0 and 1e12 (a stray zero, or milliseconds after seconds): 1.7e10 one-minute steps.
        for t in [[0.0, 1e12], [1.7e9, 1.7e12]] {
            let e = resample(&t, &[1.0, 2.0], 60.0, Aggregate::Mean)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("at most 5000000") && e.contains("milliseconds"),
                "{e}"
            );
        }
        // The most the grid allows still works.
        let t = [0.0, 60.0 * (MAX_GRID_POINTS - 1) as f64];
        let (_, y) = resample(&t, &[1.0, 2.0], 60.0, Aggregate::Mean).unwrap();
        assert_eq!(y.len(), MAX_GRID_POINTS);
    }

    proptest::proptest! {
        /// Any finite, increasing timestamps and any step: a grid or an error, never a panic,
        /// and every point lands on the grid.
        #[test]
        fn resample_never_panics(
            mut t in proptest::collection::vec(-1e13f64..1e13, 1..20),
            step in 1e-3f64..1e6,
        ) {
            t.sort_by(f64::total_cmp);
            t.dedup();
            let v = vec![1.0; t.len()];
            if let Ok((_, y)) = resample(&t, &v, step, Aggregate::Sum) {
                proptest::prop_assert!(y.len() <= MAX_GRID_POINTS);
                let total: f64 = y.iter().filter(|x| x.is_finite()).sum();
                proptest::prop_assert_eq!(total, t.len() as f64);
            }
        }
    }

    #[test]
    fn resample_sums_and_keeps_gaps() {
        let t = [0.0, 30.0, 60.0, 200.0];
        let v = [1.0, 2.0, 3.0, 4.0];
        let (start, y) = resample(&t, &v, 60.0, Aggregate::Sum).unwrap();
        assert_eq!(start, 0.0);
        assert_eq!(y[0], 3.0);
        assert_eq!(y[1], 3.0);
        assert!(y[2].is_nan());
        assert_eq!(y[3], 4.0);
        let mut y2 = y.clone();
        assert_eq!(fill_gaps(&mut y2).unwrap(), 1);
        assert_eq!(y2[2], 3.5);
        let (_, m) = resample(&t, &v, 60.0, Aggregate::Mean).unwrap();
        assert_eq!(m[0], 1.5);
    }

    #[test]
    fn bad_series_are_rejected() {
        assert!(resample(&[], &[], 60.0, Aggregate::Sum).is_err());
        assert!(resample(&[1.0, 1.0], &[1.0, 2.0], 60.0, Aggregate::Sum)
            .unwrap_err()
            .to_string()
            .contains("strictly increase"));
        assert!(resample(&[2.0, 1.0], &[1.0, 2.0], 60.0, Aggregate::Sum).is_err());
        assert!(
            resample(&[1.0, 2.0], &[f64::NAN, 2.0], 60.0, Aggregate::Sum)
                .unwrap_err()
                .to_string()
                .contains("finite")
        );
        assert!(resample(&[1.0], &[1.0], 0.0, Aggregate::Sum).is_err());
        assert!(fill_gaps(&mut [f64::NAN, f64::NAN]).is_err());
    }

    #[test]
    fn glitches_go_flash_crowds_stay() {
        let mut y: Vec<f64> = (0..60).map(|i| 100.0 + (i % 3) as f64).collect();
        y[10] = 0.0; // a log gap
        y[20] = 5000.0; // a lone spike
        for v in y.iter_mut().skip(40).take(8) {
            *v = 900.0; // a flash crowd: eight steps
        }
        let replaced = filter_glitches(&mut y, 7, 6.0);
        assert_eq!(replaced, vec![10, 20]);
        assert!((y[10] - 101.0).abs() < 2.0 && (y[20] - 101.0).abs() < 2.0);
        assert!(
            y[40..48].iter().all(|v| *v == 900.0),
            "the flash crowd is kept"
        );
    }

    #[test]
    fn season_is_found_after_differencing() {
        let y: Vec<f64> = (0..24 * 30)
            .map(|i| 0.5 * i as f64 + 10.0 * (std::f64::consts::TAU * i as f64 / 24.0).sin())
            .collect();
        assert_eq!(detect_season(&y, 4, 100), Some(24));
    }
}
