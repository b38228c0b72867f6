//! The estimates the analyze stage is built from: the newest period's rate under a windowed
//! rate, robust location and scale of forecast errors, and the normal quantile function.

use std::collections::VecDeque;

use graphscale_core::stats::median;

/// The rate of the newest sync period, recovered from windowed rates `R` taken one sync period
/// apart over a window of `w` periods (`recent` holds `R[k-w] ..= R[k]`, newest last).
///
/// `w (R[k] - R[k-1])` is the newest period's mean rate minus that of the period that just
/// left the window; that older period is estimated by `R[k-w]`, the window that ended when it
/// did. So `R[k-w] + w (R[k] - R[k-1])`: exact for a rate that was steady a window ago, and
/// only ever used when it is above what is planned anyway (a surge). `None` when a sample is
/// missing or the estimate is not finite.
pub fn surge_rps(recent: &VecDeque<Option<f64>>, w: usize) -> Option<f64> {
    if w < 2 || recent.len() < w + 1 {
        return None;
    }
    let n = recent.len();
    let now = recent[n - 1]?;
    let before = recent[n - 2]?;
    let old = recent[n - 1 - w]?;
    let est = old + w as f64 * (now - before);
    (est.is_finite() && est > 0.0).then_some(est)
}

pub(super) fn push(v: &mut VecDeque<f64>, x: f64, cap: usize) {
    if v.len() == cap {
        v.pop_front();
    }
    v.push_back(x);
}

/// Median and MAD-based standard deviation (1.4826 * MAD) of `v`, with at least 10 values.
pub(super) fn robust_location_scale(v: &VecDeque<f64>) -> Option<(f64, f64)> {
    if v.len() < 10 {
        return None;
    }
    let mut a: Vec<f64> = v.iter().copied().collect();
    let m = median(&mut a);
    let mut d: Vec<f64> = v.iter().map(|x| (x - m).abs()).collect();
    Some((m, 1.4826 * median(&mut d)))
}

/// The standard normal quantile function (Acklam's rational approximation, relative error
/// below 1.2e-9), for `p` in (0, 1).
pub fn probit(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probit_matches_tables() {
        for (p, z) in [
            (0.5, 0.0),
            (0.9, 1.281_551_565_5),
            (0.95, 1.644_853_626_95),
            (0.99, 2.326_347_874_04),
            (0.01, -2.326_347_874_04),
            (0.999, 3.090_232_306_17),
        ] {
            assert!((probit(p) - z).abs() < 1e-8, "{p}: {} vs {z}", probit(p));
        }
    }

    #[test]
    fn surge_rps_recovers_the_newest_period_of_a_windowed_rate() {
        // A per-second rate, windowed over 60 s and sampled every 15 s, as `rate()` gives it.
        let windowed =
            |rate: &dyn Fn(usize) -> f64, t: usize| (t - 60..t).map(rate).sum::<f64>() / 60.0;
        let recent = |rate: &dyn Fn(usize) -> f64, t: usize| -> VecDeque<Option<f64>> {
            (0..=4)
                .rev()
                .map(|k| Some(windowed(rate, t - 15 * k)))
                .collect()
        };
        // Steady: the estimate is the rate.
        let steady = |_: usize| 100.0;
        assert!((surge_rps(&recent(&steady, 600), 4).unwrap() - 100.0).abs() < 1e-9);
        // A step from 100 to 300 rps at t = 585: the window says 150 at 600, the estimate the
        // 300 the last 15 s carried.
        let step = |t: usize| if t >= 585 { 300.0 } else { 100.0 };
        let r = recent(&step, 600);
        assert!((r[4].unwrap() - 150.0).abs() < 1e-9);
        assert!((surge_rps(&r, 4).unwrap() - 300.0).abs() < 1e-9);
        // A ramp: the estimate is far closer to the newest rate than the window is.
        let ramp = |t: usize| 100.0 + 10.0 * t.saturating_sub(570) as f64;
        let r = recent(&ramp, 600);
        let truth = (585..600).map(ramp).sum::<f64>() / 15.0;
        let est = surge_rps(&r, 4).unwrap();
        assert!(
            (est - truth).abs() < 0.1 * truth && (r[4].unwrap() - truth).abs() > 0.4 * truth,
            "estimate {est}, window {}, truth {truth}",
            r[4].unwrap()
        );
        // Too few samples, a missing one, or no window: none.
        assert_eq!(surge_rps(&r.iter().skip(1).copied().collect(), 4), None);
        let mut gap = r.clone();
        gap[0] = None;
        assert_eq!(surge_rps(&gap, 4), None);
        assert_eq!(surge_rps(&r, 1), None);
    }

    #[test]
    fn robust_scale_ignores_a_few_huge_errors() {
        let mut v: VecDeque<f64> = (0..100)
            .map(|i| if i % 2 == 0 { 0.1 } else { -0.1 })
            .collect();
        let (_, sd) = robust_location_scale(&v).unwrap();
        for _ in 0..8 {
            v.push_back(3.0);
        }
        let (m2, sd2) = robust_location_scale(&v).unwrap();
        // The plain standard deviation jumps from 0.1 to 0.82; the robust one stays small.
        assert!((sd - 0.14826).abs() < 1e-9, "{sd}");
        assert!(m2.abs() <= 0.1 + 1e-12 && sd2 < 0.31, "{m2} {sd2}");
    }
}
