//! A latency model per service, learned online from what the cluster exposes: the ready
//! replicas `c`, the request rate `lambda` and the observed p95 latency.
//!
//! The model is an M/M/c queue with an off-CPU term: `p95(c, lambda) = base + q95(c, mu,
//! lambda)`, where `mu` is the requests/s one replica serves and `q95` the 95th percentile of
//! the time in the queue and in service: Sakasegawa's probability of waiting
//! (`rho^(sqrt(2(c+1)) - 1)`, exact for c = 1), exponential service and waiting times, and the
//! quantile of their sum ([`graphscale_core::queueing`]), as the simulator prices it, so on
//! simulated data the model is well specified. (Until 2026-12-07 it added the two 95th
//! percentiles, an upper bound.)
//!
//! Two parameters are fitted, `mu` and `base`: for each `mu` on a logarithmic grid (and the CPU
//! prior `mu0 = CPU limit / CPU per request` when known) `base` is the mean residual (never
//! negative) and the fit is the least sum of squares. At light load `base` and `1/mu` trade off
//! (both add a constant); among fits within 2 % of the best, the one nearest the prior is taken,
//! or without a prior the smallest `mu` (the most cautious capacity). The fitted `mu` is the
//! service's capacity signal also when it is not CPU-bound (a lock, a pool, a slow disk): its
//! latency says how much one replica serves, whatever its CPU says.
//!
//! Only steady samples enter: the ready count unchanged over the last
//! [`STEADY_OBSERVATIONS`] observations (the rate and p95 are windowed), no backlog, errors
//! under 1 %, the ready pods' CPU under 90 % of their limit (a saturated queue has no steady
//! state).

use std::collections::VecDeque;

use graphscale_core::queueing::{
    sojourn_quantile, sojourn_quantiles, wait_probability, NEG_LN_TAILS, RHO_MAX,
};
use graphscale_core::{PodPhase, WorkloadObservation};
use serde::{Deserialize, Serialize};

/// Observations in a row with the same ready count before one is a sample: the observed rate
/// and p95 are windowed (60 s by default, four 15-s syncs), so a window must hold one replica
/// count only.
pub const STEADY_OBSERVATIONS: u32 = 4;

/// `-ln(0.05)`: the 95th percentile of a unit exponential.
const NEG_LN_5PCT: f64 = NEG_LN_TAILS[1];

/// The 95th-percentile response time of an M/M/c queue without the off-CPU term, ms; infinite
/// when the queue is unstable (`lambda >= c * mu`) or there is no replica. The quantile of the
/// time in the system (service plus wait, [`graphscale_core::queueing`]), as the simulator
/// prices it.
pub fn mmc_p95_ms(c: u32, mu: f64, lambda: f64) -> f64 {
    if c == 0 || !(mu.is_finite() && mu > 0.0) || !(lambda.is_finite() && lambda >= 0.0) {
        return f64::INFINITY;
    }
    let cmu = c as f64 * mu;
    if lambda >= cmu {
        return f64::INFINITY;
    }
    let rho = lambda / cmu;
    let q = if rho <= RHO_MAX {
        sojourn_quantiles(c, mu, rho)[1]
    } else {
        // Past the tables' range the bisection answers (the p95 grows without bound).
        sojourn_quantile(mu, cmu - lambda, wait_probability(c, rho), 0.05)
    };
    1000.0 * q
}

/// What was learned about one service's latency.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyModel {
    /// Off-CPU latency (downstream I/O, network), ms.
    pub base_ms: f64,
    /// Requests per second one replica serves.
    pub mu: f64,
    /// Samples behind the fit.
    pub samples: usize,
    /// Root-mean-square error of the fit as a share of the mean observed p95.
    pub rel_error: f64,
    /// Highest utilisation `lambda / (c mu)` among the samples: how far up the curve the fit
    /// has seen.
    pub max_rho: f64,
}

impl LatencyModel {
    /// The predicted p95 at `c` replicas and `lambda` requests/s, ms; infinite when unstable.
    pub fn p95_ms(&self, c: u32, lambda: f64) -> f64 {
        self.base_ms + mmc_p95_ms(c, self.mu, lambda)
    }
}

/// Fits a [`LatencyModel`] over a sliding window of observations of one service.
#[derive(Debug, Clone, Default)]
pub struct LatencyEstimator {
    window: usize,
    /// (ready replicas, rps, p95 ms)
    samples: VecDeque<(u32, f64, f64)>,
    last_ready: Option<u32>,
    /// Observations in a row with the same ready count, less one.
    steady_for: u32,
    /// Samples pushed since the cached fit, the prior it used, and the fit.
    cached: Option<(usize, Option<f64>, Option<LatencyModel>)>,
}

impl LatencyEstimator {
    /// An estimator over the last `window` steady observations.
    pub fn new(window: usize) -> Self {
        LatencyEstimator {
            window: window.max(2),
            samples: VecDeque::new(),
            last_ready: None,
            steady_for: 0,
            cached: None,
        }
    }

    /// Adds one observation when it is steady (see the module docs).
    pub fn observe(&mut self, w: &WorkloadObservation) {
        let ready: Vec<_> = w
            .pods
            .iter()
            .filter(|p| p.ready == Some(true) && !p.deleting && p.phase == PodPhase::Running)
            .collect();
        let c = ready.len() as u32;
        self.steady_for = if self.last_ready == Some(c) {
            self.steady_for.saturating_add(1)
        } else {
            0
        };
        self.last_ready = Some(c);
        let quiet = w.backlog.is_none_or(|b| b <= 0.0) && w.error_rate.is_none_or(|e| e <= 0.01);
        // Pods at their CPU limit are an unstable queue: no steady state to fit.
        let used: f64 = ready
            .iter()
            .filter_map(|p| p.cpu)
            .map(|c| c.millicores)
            .sum();
        let limit: f64 = ready.iter().map(|p| p.limits.cpu_millicores).sum();
        let saturated = limit > 0.0 && used >= 0.9 * limit;
        if let (true, true, false, Some(rps), Some(p95)) = (
            self.steady_for >= STEADY_OBSERVATIONS,
            quiet,
            saturated,
            w.rps,
            w.latency_p95_ms,
        ) {
            self.push(c, rps, p95);
        }
    }

    /// Adds one sample taken elsewhere; ignored unless `ready` > 0, the rate is finite and
    /// non-negative and the p95 finite and positive.
    pub fn push(&mut self, ready: u32, rps: f64, p95_ms: f64) {
        if ready == 0 || !(rps.is_finite() && rps >= 0.0) || !(p95_ms.is_finite() && p95_ms > 0.0) {
            return;
        }
        if self.samples.len() == self.window {
            self.samples.pop_front();
        }
        self.samples.push_back((ready, rps, p95_ms));
        if let Some(c) = self.cached.as_mut() {
            c.0 += 1;
        }
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether no sample is held.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The fitted model, with `prior_mu` (requests/s per replica from the CPU model) preferred
    /// where the data cannot tell; `None` without samples.
    pub fn model(&self, prior_mu: Option<f64>) -> Option<LatencyModel> {
        fit(self.samples.iter().copied(), prior_mu)
    }

    /// [`LatencyEstimator::model`], refitted only when `every` samples have arrived since the
    /// last fit or the prior moved by more than 5 % (a fit costs about 70 evaluations of the
    /// window; the planner asks every sync period).
    pub fn model_every(&mut self, prior_mu: Option<f64>, every: usize) -> Option<LatencyModel> {
        let moved = |old: Option<f64>| match (old, prior_mu) {
            (Some(a), Some(b)) => (a / b - 1.0).abs() > 0.05,
            (None, None) => false,
            _ => true,
        };
        match self.cached {
            Some((since, old, m)) if since < every.max(1) && !moved(old) => m,
            _ => {
                let m = self.model(prior_mu);
                self.cached = Some((0, prior_mu, m));
                m
            }
        }
    }
}

/// Fits `(ready, rps, p95 ms)` samples; see the module docs.
pub fn fit(
    samples: impl IntoIterator<Item = (u32, f64, f64)>,
    prior_mu: Option<f64>,
) -> Option<LatencyModel> {
    let s: Vec<(u32, f64, f64)> = samples
        .into_iter()
        .filter(|&(c, l, p)| c > 0 && l.is_finite() && l >= 0.0 && p.is_finite() && p > 0.0)
        .collect();
    if s.is_empty() {
        return None;
    }
    let prior = prior_mu.filter(|m| m.is_finite() && *m > 0.0);
    // Every sample was served: mu is above the highest per-replica rate seen.
    let floor = s
        .iter()
        .map(|&(c, l, _)| l / c as f64)
        .fold(0.0, f64::max)
        .max(1e-6)
        * 1.0001;
    // The slowest plausible server answers within the lowest p95 seen: mu >= 3 / p95.
    let p_min = s.iter().map(|x| x.2).fold(f64::INFINITY, f64::min);
    let lo = floor.max(NEG_LN_5PCT * 1000.0 / p_min);
    let hi = (lo * 1e4).max(prior.unwrap_or(0.0) * 4.0);
    let score = |mu: f64| -> Option<(f64, f64)> {
        let q: Vec<f64> = s.iter().map(|&(c, l, _)| mmc_p95_ms(c, mu, l)).collect();
        if q.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let base = (s.iter().zip(&q).map(|(x, q)| x.2 - q).sum::<f64>() / s.len() as f64).max(0.0);
        let sse = s
            .iter()
            .zip(&q)
            .map(|(x, q)| (x.2 - q - base).powi(2))
            .sum::<f64>();
        Some((base, sse))
    };
    // A coarse logarithmic grid, then a fine one around its best point.
    const COARSE: usize = 48;
    const FINE: usize = 24;
    let step = (hi / lo).powf(1.0 / COARSE as f64);
    let mut cands: Vec<(f64, f64, f64)> = (0..=COARSE)
        .map(|i| lo * step.powi(i as i32))
        .chain(prior.filter(|m| *m > floor))
        .filter_map(|mu| score(mu).map(|(b, e)| (mu, b, e)))
        .collect();
    let coarse_best = cands
        .iter()
        .min_by(|a, b| a.2.total_cmp(&b.2))
        .map(|c| c.0)?;
    let (f_lo, f_hi) = ((coarse_best / step).max(lo), coarse_best * step);
    cands.extend(
        (1..FINE)
            .map(|i| f_lo * (f_hi / f_lo).powf(i as f64 / FINE as f64))
            .filter_map(|mu| score(mu).map(|(b, e)| (mu, b, e))),
    );
    let best = cands.iter().map(|c| c.2).fold(f64::INFINITY, f64::min);
    let scale: f64 = s.iter().map(|x| x.2 * x.2).sum::<f64>();
    let tol = best * 1.02 + 1e-9 * scale;
    cands.retain(|c| c.2 <= tol);
    let pick = match prior {
        Some(p) => cands
            .iter()
            .min_by(|a, b| (a.0 / p).ln().abs().total_cmp(&(b.0 / p).ln().abs()))
            .copied(),
        None => cands.iter().min_by(|a, b| a.0.total_cmp(&b.0)).copied(),
    }?;
    let (mu, base, sse) = pick;
    let mean = s.iter().map(|x| x.2).sum::<f64>() / s.len() as f64;
    let max_rho = s
        .iter()
        .map(|&(c, l, _)| l / (c as f64 * mu))
        .fold(0.0, f64::max);
    Some(LatencyModel {
        base_ms: base,
        mu,
        samples: s.len(),
        rel_error: (sse / s.len() as f64).sqrt() / mean.max(1e-9),
        max_rho,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mm1_matches_the_closed_form() {
        // M/M/1: the response time is Exp(mu - lambda); p95 = ln(20) / (mu - lambda).
        for lambda in [1.0, 50.0, 90.0, 99.9] {
            let p = mmc_p95_ms(1, 100.0, lambda);
            let exact = 1000.0 * 20f64.ln() / (100.0 - lambda);
            assert!((p - exact).abs() / exact < 1e-6, "{lambda}: {p} vs {exact}");
        }
        assert!(mmc_p95_ms(1, 100.0, 100.0).is_infinite());
        assert!(mmc_p95_ms(0, 100.0, 1.0).is_infinite());
        assert!(mmc_p95_ms(4, 10.0, 39.0) > mmc_p95_ms(4, 10.0, 20.0));
        assert!(mmc_p95_ms(5, 10.0, 39.0) < mmc_p95_ms(4, 10.0, 39.0));
    }

    #[test]
    fn recovers_known_parameters_from_noisy_samples() {
        // base 25 ms, mu 40/s, replicas 1..=6, load 5 %..85 %, 3 % multiplicative noise.
        let (base, mu) = (25.0, 40.0);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut noise = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 10_000) as f64 / 10_000.0 * 0.06 - 0.03
        };
        let mut est = LatencyEstimator::new(500);
        for c in 1..=6u32 {
            for k in 1..=17 {
                let l = c as f64 * mu * 0.05 * k as f64;
                let p = (base + mmc_p95_ms(c, mu, l)) * (1.0 + noise());
                est.push(c, l, p);
            }
        }
        let m = est.model(None).unwrap();
        assert!((m.mu - mu).abs() / mu < 0.08, "{m:?}");
        assert!((m.base_ms - base).abs() / base < 0.15, "{m:?}");
        assert!(m.rel_error < 0.05, "{m:?}");
        // The prior does not pull an identified fit away from the data.
        let m2 = est.model(Some(80.0)).unwrap();
        assert!((m2.mu - mu).abs() / mu < 0.1, "{m2:?}");
    }

    #[test]
    fn light_load_keeps_the_prior_and_no_data_no_model() {
        // At 1 % load base and 1/mu cannot be told apart; the CPU prior decides.
        let mut est = LatencyEstimator::new(50);
        for _ in 0..20 {
            est.push(2, 1.0, 20.0 + 1000.0 * NEG_LN_5PCT / 50.0);
        }
        let m = est.model(Some(50.0)).unwrap();
        assert!((m.mu - 50.0).abs() < 1.0, "{m:?}");
        assert!((m.base_ms - 20.0).abs() < 1.0, "{m:?}");
        assert!(LatencyEstimator::new(5).model(Some(1.0)).is_none());
        let mut bad = LatencyEstimator::new(5);
        bad.push(0, 1.0, 1.0);
        bad.push(1, f64::NAN, 1.0);
        bad.push(1, 1.0, -1.0);
        assert!(bad.is_empty());
    }
}
