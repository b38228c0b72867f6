//! The order statistics every crate shares: one median and one quantile.

/// The median of `v`: its middle value, or the mean of the two middle values for an even
/// count; NaN when `v` is empty. Reorders `v` (a selection, not a sort: O(n)).
pub fn median(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let (below, &mut upper, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    if n % 2 == 1 {
        upper
    } else {
        let lower = below.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        0.5 * (lower + upper)
    }
}

/// The nearest-rank `q`-quantile of `v` (`q` in [0, 1]): the smallest value with at least a
/// share `q` of the values at or below it; `None` when `v` is empty. Reorders `v`.
pub fn quantile(v: &mut [f64], q: f64) -> Option<f64> {
    let n = v.len();
    if n == 0 {
        return None;
    }
    let q = if q.is_finite() {
        q.clamp(0.0, 1.0)
    } else {
        1.0
    };
    let i = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
    let (_, &mut x, _) = v.select_nth_unstable_by(i, f64::total_cmp);
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        // The mean of the two middle values, not the upper one.
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(quantile(&mut v.clone(), 0.5), Some(3.0));
        assert_eq!(quantile(&mut v.clone(), 0.9), Some(5.0));
        assert_eq!(quantile(&mut v.clone(), 0.0), Some(1.0));
        assert_eq!(quantile(&mut v.clone(), 0.2), Some(1.0));
        assert_eq!(quantile(&mut v.clone(), 0.21), Some(2.0));
        assert_eq!(quantile(&mut [], 0.5), None);
    }
}
