//! Prophet's maximum a posteriori fit in Rust, as an [`augurs::prophet::Optimizer`]: the
//! objective of Prophet's Stan model (`prophet.stan`), minimised exactly. It replaces the Stan
//! model compiled to WebAssembly (wasmtime) in the default build; the `prophet-stan` feature
//! keeps that one, for comparison.
//!
//! The model, on the scaled data augurs prepares (time in `[0, 1]`, `y` divided by its largest
//! absolute value), with `A[i][j] = 1` where `t[i] >= t_change[j]`:
//! - trend (linear): `(k + A delta) .* t + (m - A (t_change .* delta))`; flat: `m`;
//! - mean: `trend + X beta` (additive regressors and seasonalities);
//! - priors: `k, m ~ N(0, 5)`, `delta ~ Laplace(0, tau)`, `sigma_obs ~ N(0, 0.5)` (on
//!   `sigma_obs > 0`), `beta ~ N(0, sigmas)`; likelihood `y ~ N(mean, sigma_obs)`.
//!
//! The negative log posterior (without constants and, as Stan's `optimize` by default, without
//! the Jacobian for `sigma_obs > 0`) is, for a fixed `sigma_obs`, a lasso with a ridge: a
//! quadratic in `theta = (k, m, delta, beta)` plus `|delta| / tau`. So the fit alternates two
//! exact steps until `sigma_obs` stops moving: `theta` by a feature-sign search (an active-set
//! method for the lasso: exact solves of `p x p` systems, `p` = 2 + changepoints + regressors,
//! on the design's Gram matrix, built once in one pass over the points), then `sigma_obs` in
//! closed form. Stan's L-BFGS reaches the same optimum only approximately, as the Laplace prior has a
//! kink at 0 (docs/forecast.md compares the two). Multiplicative seasonalities and logistic
//! growth are not implemented (graphscale never asks for them): they are errors.

use augurs::prophet::optimizer::{
    Data, Error, InitialParams, OptimizeOpts, OptimizedParams, TrendIndicator,
};
use augurs::prophet::{Optimizer, PositiveFloat};

/// The exact MAP fit; see the module docs.
#[derive(Debug, Clone, Copy)]
pub struct NativeOptimizer {
    /// Most rounds of (theta, sigma_obs) updates; default 100 (fits of a week per minute take
    /// 4-8).
    pub max_rounds: usize,
    /// Most feature-sign steps per round; default 1,000 (those fits take 18-42 in all). With
    /// both bounds a fit costs at most 100,000 solves of `p x p` systems, whatever the data.
    pub max_steps: usize,
    /// A round that moves `log sigma_obs` by at most this ends the fit; default 1e-12.
    pub tolerance: f64,
}

impl Default for NativeOptimizer {
    fn default() -> Self {
        NativeOptimizer {
            max_rounds: 100,
            max_steps: 1_000,
            tolerance: 1e-12,
        }
    }
}

/// The design: `theta`'s columns `[t, 1, hinge per changepoint, regressors]`.
struct Design {
    /// Gram matrix `A^T A`, `p x p`, row-major.
    gram: Vec<f64>,
    /// `A^T y`.
    aty: Vec<f64>,
    /// `y^T y`.
    yty: f64,
    /// Prior precision per coefficient (ridge), 0 for the changepoints.
    ridge: Vec<f64>,
    /// Laplace weight per coefficient, `1 / tau` for the changepoints, 0 otherwise.
    l1: Vec<f64>,
    p: usize,
    n: f64,
}

impl Design {
    fn new(d: &Data, flat: bool) -> Self {
        let (s, k) = (d.t_change.len(), d.sigmas.len());
        let p = 2 + s + k;
        let mut gram = vec![0.0; p * p];
        let mut aty = vec![0.0; p];
        let mut row = vec![0.0; p];
        for (i, (&t, &y)) in d.t.iter().zip(&d.y).enumerate() {
            row[0] = if flat { 0.0 } else { t };
            row[1] = 1.0;
            for (j, &c) in d.t_change.iter().enumerate() {
                row[2 + j] = if !flat && t >= c { t - c } else { 0.0 };
            }
            row[2 + s..].copy_from_slice(&d.X[i * k..(i + 1) * k]);
            for a in 0..p {
                if row[a] == 0.0 {
                    continue;
                }
                aty[a] += row[a] * y;
                for b in a..p {
                    gram[a * p + b] += row[a] * row[b];
                }
            }
        }
        for a in 0..p {
            for b in 0..a {
                gram[a * p + b] = gram[b * p + a];
            }
        }
        let mut ridge = vec![1.0 / 25.0; 2];
        ridge.extend(std::iter::repeat_n(0.0, s));
        ridge.extend(d.sigmas.iter().map(|v| 1.0 / (**v * **v)));
        let mut l1 = vec![0.0; 2];
        l1.extend(std::iter::repeat_n(1.0 / *d.tau, s));
        l1.extend(std::iter::repeat_n(0.0, k));
        Design {
            gram,
            aty,
            yty: d.y.iter().map(|y| y * y).sum(),
            ridge,
            l1,
            p,
            n: d.y.len() as f64,
        }
    }

    /// Sum of squared residuals of `theta`: `y'y - 2 theta' A'y + theta' G theta`.
    fn sse(&self, theta: &[f64]) -> f64 {
        let p = self.p;
        let mut quad = 0.0;
        for a in 0..p {
            let row = &self.gram[a * p..(a + 1) * p];
            quad += theta[a] * row.iter().zip(theta).map(|(g, t)| g * t).sum::<f64>();
        }
        let lin: f64 = theta.iter().zip(&self.aty).map(|(t, b)| t * b).sum();
        (self.yty - 2.0 * lin + quad).max(0.0)
    }

    /// The objective (negative log posterior without constants).
    fn objective(&self, theta: &[f64], sigma: f64) -> f64 {
        let penalty: f64 = theta
            .iter()
            .zip(self.ridge.iter().zip(&self.l1))
            .map(|(t, (r, l))| r * t * t / 2.0 + l * t.abs())
            .sum();
        self.sse(theta) / (2.0 * sigma * sigma)
            + self.n * sigma.ln()
            + 2.0 * sigma * sigma
            + penalty
    }

    /// The `sigma_obs` that minimises the objective for residuals of sum of squares `sse`:
    /// the positive root of `4 v^2 + n v - sse = 0` in `v = sigma^2`.
    fn best_sigma(&self, sse: f64) -> f64 {
        let v = (-self.n + (self.n * self.n + 16.0 * sse).sqrt()) / 8.0;
        v.max(f64::MIN_POSITIVE).sqrt()
    }

    /// `Q = w G + diag(ridge)` and `b = w A'y`: the quadratic part of the objective in
    /// `theta` for `w = 1 / sigma^2`.
    fn quadratic(&self, sigma: f64) -> (Vec<f64>, Vec<f64>) {
        let w = 1.0 / (sigma * sigma);
        let p = self.p;
        let mut q: Vec<f64> = self.gram.iter().map(|g| w * g).collect();
        for a in 0..p {
            q[a * p + a] += self.ridge[a];
        }
        (q, self.aty.iter().map(|b| w * b).collect())
    }
}

/// `1/2 x'Qx - b'x + sum l1 |x|`.
fn lasso_value(q: &[f64], b: &[f64], l1: &[f64], x: &[f64]) -> f64 {
    let p = x.len();
    let mut f = 0.0;
    for a in 0..p {
        let qx: f64 = q[a * p..(a + 1) * p]
            .iter()
            .zip(x)
            .map(|(q, x)| q * x)
            .sum();
        f += 0.5 * x[a] * qx - b[a] * x[a] + l1[a] * x[a].abs();
    }
    f
}

/// Solves the square system `m x = r` (row-major, `n x n`) by Gaussian elimination with
/// partial pivoting; `None` when it is singular.
fn solve(mut m: Vec<f64>, mut r: Vec<f64>) -> Option<Vec<f64>> {
    let n = r.len();
    for c in 0..n {
        let piv = (c..n).max_by(|&i, &j| m[i * n + c].abs().total_cmp(&m[j * n + c].abs()))?;
        if m[piv * n + c].abs() < 1e-300 || !m[piv * n + c].is_finite() {
            return None;
        }
        if piv != c {
            for k in 0..n {
                m.swap(piv * n + k, c * n + k);
            }
            r.swap(piv, c);
        }
        for i in c + 1..n {
            let f = m[i * n + c] / m[c * n + c];
            if f != 0.0 {
                for k in c..n {
                    m[i * n + k] -= f * m[c * n + k];
                }
                r[i] -= f * r[c];
            }
        }
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| m[i * n + k] * x[k]).sum();
        x[i] = (r[i] - s) / m[i * n + i];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// The exact minimiser of `1/2 x'Qx - b'x + sum l1 |x|` (weights 0 for the unpenalised
/// coefficients) by the feature-sign search of Lee, Battle, Raina and Ng (NIPS 2006), from
/// `x`: an active set with fixed signs, each step an exact solve on it and a line search over
/// the points where a coefficient changes sign, until every coefficient meets its optimality
/// condition. Returns the steps taken.
fn feature_sign(q: &[f64], b: &[f64], l1: &[f64], x: &mut [f64], max_steps: usize) -> usize {
    let p = x.len();
    let grad = |x: &[f64], a: usize| -> f64 {
        q[a * p..(a + 1) * p]
            .iter()
            .zip(x)
            .map(|(q, x)| q * x)
            .sum::<f64>()
            - b[a]
    };
    let scale = 1e-9 * (1.0 + b.iter().map(|v| v.abs()).fold(0.0, f64::max));
    // A coefficient with no curvature (a changepoint no point has passed) stays at 0.
    let usable = |a: usize| q[a * p + a] > 0.0;
    let mut active: Vec<bool> = (0..p)
        .map(|a| usable(a) && (l1[a] == 0.0 || x[a] != 0.0))
        .collect();
    for (a, xa) in x.iter_mut().enumerate() {
        if !usable(a) {
            *xa = 0.0;
        }
    }
    let mut steps = 0;
    while steps < max_steps {
        steps += 1;
        // Optimal on the active set? Signs of the active penalised coefficients.
        let sign: Vec<f64> = (0..p)
            .map(|a| {
                if x[a] > 0.0 {
                    1.0
                } else if x[a] < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            })
            .collect();
        let on_set = (0..p)
            .filter(|&a| active[a] && (x[a] != 0.0 || l1[a] == 0.0))
            .all(|a| (grad(x, a) + l1[a] * sign[a]).abs() <= scale);
        if on_set {
            // Every zero coefficient optimal too? Else the most violating one enters, with
            // the sign that lowers the objective.
            let worst = (0..p)
                .filter(|&a| usable(a) && l1[a] > 0.0 && x[a] == 0.0)
                .map(|a| (a, grad(x, a)))
                .filter(|(a, g)| g.abs() > l1[*a] + scale)
                .max_by(|u, v| (u.1.abs() - l1[u.0]).total_cmp(&(v.1.abs() - l1[v.0])));
            match worst {
                None => return steps,
                Some((a, _)) => active[a] = true,
            }
        }
        // The signs the step assumes: the current one, or for an entering coefficient the
        // one against its gradient.
        let idx: Vec<usize> = (0..p).filter(|&a| active[a]).collect();
        let sgn: Vec<f64> = idx
            .iter()
            .map(|&a| {
                if l1[a] == 0.0 {
                    0.0
                } else if x[a] != 0.0 {
                    x[a].signum()
                } else {
                    -grad(x, a).signum()
                }
            })
            .collect();
        let m = idx.len();
        let mut sub = vec![0.0; m * m];
        for (i, &a) in idx.iter().enumerate() {
            for (j, &c) in idx.iter().enumerate() {
                sub[i * m + j] = q[a * p + c];
            }
        }
        let rhs: Vec<f64> = idx
            .iter()
            .zip(&sgn)
            .map(|(&a, s)| b[a] - l1[a] * s)
            .collect();
        let Some(target) = solve(sub, rhs) else {
            return steps;
        };
        // Line search from x to the target over the sign changes on the way.
        let mut ts: Vec<f64> = vec![1.0];
        for (i, &a) in idx.iter().enumerate() {
            let (from, to) = (x[a], target[i]);
            if l1[a] > 0.0 && from != 0.0 && from.signum() != to.signum() {
                ts.push(from / (from - to));
            }
        }
        let point = |t: f64| -> Vec<f64> {
            let mut y = x.to_vec();
            for (i, &a) in idx.iter().enumerate() {
                y[a] = x[a] + t * (target[i] - x[a]);
                // At its own crossing a coefficient is exactly 0.
                if l1[a] > 0.0
                    && x[a] != 0.0
                    && x[a].signum() != target[i].signum()
                    && (t - x[a] / (x[a] - target[i])).abs() <= 1e-15
                {
                    y[a] = 0.0;
                }
            }
            y
        };
        let best = ts
            .iter()
            .map(|&t| {
                let y = point(t);
                (lasso_value(q, b, l1, &y), y)
            })
            .min_by(|u, v| u.0.total_cmp(&v.0));
        let Some((_, y)) = best else {
            return steps;
        };
        x.copy_from_slice(&y);
        // Coefficients that reached 0 leave the active set.
        for a in 0..p {
            if active[a] && l1[a] > 0.0 && x[a] == 0.0 {
                active[a] = false;
            }
        }
    }
    steps
}

impl Optimizer for NativeOptimizer {
    fn optimize(
        &self,
        init: &InitialParams,
        data: &Data,
        _opts: &OptimizeOpts,
    ) -> Result<OptimizedParams, Error> {
        let flat = match data.trend_indicator {
            TrendIndicator::Linear => false,
            TrendIndicator::Flat => true,
            TrendIndicator::Logistic => {
                return Err(Error::static_str(
                    "logistic growth is not implemented by the native optimiser",
                ))
            }
        };
        let (n, s, k) = (data.y.len(), data.t_change.len(), data.sigmas.len());
        if data.t.len() != n || data.X.len() != n * k || data.s_a.len() != k || data.s_m.len() != k
        {
            return Err(Error::string(format!(
                "inconsistent Prophet data: {n} points, {} times, {} regressor values for {k} regressors",
                data.t.len(),
                data.X.len()
            )));
        }
        if data.s_m.iter().any(|&m| m != 0) {
            return Err(Error::static_str(
                "multiplicative seasonalities are not implemented by the native optimiser",
            ));
        }
        if init.delta.len() != s || init.beta.len() != k {
            return Err(Error::string(format!(
                "initial parameters of {} changepoints and {} regressors for data of {s} and {k}",
                init.delta.len(),
                init.beta.len(),
            )));
        }
        let design = Design::new(data, flat);
        let mut theta = vec![init.k, init.m];
        theta.extend(&init.delta);
        theta.extend(&init.beta);
        if theta.iter().any(|v| !v.is_finite()) || !design.yty.is_finite() {
            return Err(Error::static_str("non-finite data or initial parameters"));
        }
        let mut sigma = *init.sigma_obs;
        let (mut rounds, mut steps) = (0, 0);
        // Alternate the exact lasso in theta and the exact sigma_obs; both lower the
        // objective, and a round that moves sigma_obs by less than the tolerance ends it.
        loop {
            rounds += 1;
            let (q, b) = design.quadratic(sigma);
            steps += feature_sign(&q, &b, &design.l1, &mut theta, self.max_steps);
            // A series the model fits exactly would take sigma_obs to 0: 1e-9 of the scaled
            // series is the floor.
            let next = design.best_sigma(design.sse(&theta)).max(1e-9);
            let moved = (next.ln() - sigma.ln()).abs();
            sigma = next;
            if moved <= self.tolerance || rounds >= self.max_rounds {
                break;
            }
        }
        if theta.iter().any(|v| !v.is_finite()) {
            return Err(Error::static_str("the fit reached a non-finite parameter"));
        }
        tracing::debug!(
            rounds,
            steps,
            objective = design.objective(&theta, sigma),
            "prophet: MAP fit"
        );
        let sigma_obs = PositiveFloat::try_from(sigma)
            .map_err(|_| Error::static_str("the fit reached sigma_obs = 0"))?;
        let trend = trend(data, flat, theta[0], theta[1], &theta[2..2 + s]);
        Ok(OptimizedParams {
            k: theta[0],
            m: theta[1],
            delta: theta[2..2 + s].to_vec(),
            sigma_obs,
            beta: theta[2 + s..].to_vec(),
            trend,
        })
    }
}

/// The trend at every time: `(k + A delta) t + (m - A (t_change .* delta))`, or `m` if flat.
fn trend(data: &Data, flat: bool, k: f64, m: f64, delta: &[f64]) -> Vec<f64> {
    data.t
        .iter()
        .map(|&t| {
            if flat {
                return m;
            }
            let (mut rate, mut offset) = (k, m);
            for (&c, &d) in data.t_change.iter().zip(delta) {
                if t >= c {
                    rate += d;
                    offset -= c * d;
                }
            }
            rate * t + offset
        })
        .collect()
}

/// The objective this fit minimises (Prophet's negative log posterior without constants, as
/// Stan's `optimize` takes it) at `params`, for comparing fits: lower is better. Additive
/// regressors only, as [`NativeOptimizer`].
pub fn objective(data: &Data, params: &OptimizedParams) -> f64 {
    let flat = data.trend_indicator == TrendIndicator::Flat;
    let design = Design::new(data, flat);
    let mut theta = vec![params.k, params.m];
    theta.extend(&params.delta);
    theta.extend(&params.beta);
    design.objective(&theta, *params.sigma_obs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, s: usize, k: usize, trend: TrendIndicator) -> Data {
        let t: Vec<f64> = (0..n).map(|i| i as f64 / (n - 1) as f64).collect();
        let x: Vec<f64> = (0..n * k)
            .map(|v| ((v as f64) * 0.37).sin() * 0.5)
            .collect();
        let y: Vec<f64> = (0..n)
            .map(|i| {
                0.3 + 0.4 * t[i]
                    + if t[i] > 0.6 { 0.5 * (t[i] - 0.6) } else { 0.0 }
                    + 0.1 * x[i * k]
                    + 0.05 * ((i * 7 % 11) as f64 / 11.0)
            })
            .collect();
        Data {
            T: n as i32,
            y,
            cap: vec![0.0; n],
            S: s as i32,
            t_change: (1..=s).map(|j| j as f64 / (s + 1) as f64).collect(),
            trend_indicator: trend,
            K: k as i32,
            s_a: vec![1; k],
            s_m: vec![0; k],
            X: x,
            sigmas: vec![PositiveFloat::try_from(10.0).unwrap(); k],
            tau: PositiveFloat::try_from(0.05).unwrap(),
            t,
        }
    }

    fn init(s: usize, k: usize) -> InitialParams {
        InitialParams {
            k: 0.0,
            m: 0.0,
            delta: vec![0.0; s],
            beta: vec![0.0; k],
            sigma_obs: PositiveFloat::try_from(1.0).unwrap(),
        }
    }

    /// The objective computed point by point from its definition, for the checks.
    fn objective(d: &Data, p: &OptimizedParams) -> f64 {
        let k = d.sigmas.len();
        let sigma = *p.sigma_obs;
        let mut f = 0.0;
        for i in 0..d.y.len() {
            let xb: f64 = (0..k).map(|j| d.X[i * k + j] * p.beta[j]).sum();
            let r = d.y[i] - (p.trend[i] + xb);
            f += r * r / (2.0 * sigma * sigma);
        }
        f += d.y.len() as f64 * sigma.ln() + 2.0 * sigma * sigma;
        f += (p.k * p.k + p.m * p.m) / 50.0;
        f += p.delta.iter().map(|d| d.abs()).sum::<f64>() / *d.tau;
        f += (0..k)
            .map(|j| p.beta[j] * p.beta[j] / (2.0 * *d.sigmas[j] * *d.sigmas[j]))
            .sum::<f64>();
        f
    }

    fn with(p: &OptimizedParams, d: &Data, change: impl Fn(&mut Vec<f64>)) -> OptimizedParams {
        // Parameters as one vector [k, m, delta, log sigma, beta], changed, and back.
        let s = p.delta.len();
        let mut v = vec![p.k, p.m];
        v.extend(&p.delta);
        v.push(p.sigma_obs.ln());
        v.extend(&p.beta);
        change(&mut v);
        let mut q = p.clone();
        q.k = v[0];
        q.m = v[1];
        q.delta = v[2..2 + s].to_vec();
        q.sigma_obs = PositiveFloat::try_from(v[2 + s].exp()).unwrap();
        q.beta = v[3 + s..].to_vec();
        q.trend = trend(d, false, q.k, q.m, &q.delta);
        q
    }

    /// `opt`'s fit of `d` from the default start.
    fn fit(opt: NativeOptimizer, d: &Data) -> OptimizedParams {
        opt.optimize(
            &init(d.t_change.len(), d.sigmas.len()),
            d,
            &OptimizeOpts::default(),
        )
        .unwrap()
    }

    /// Prophet through this optimiser on `y` at `step` seconds: its in-sample predictions.
    fn prophet_fitted(y: &[f64], step: i64) -> Result<Vec<f64>, augurs::prophet::Error> {
        use augurs::prophet::{Prophet, TrainingData};
        let ds: Vec<i64> = (0..y.len() as i64).map(|i| i * step).collect();
        let mut model = Prophet::new(Default::default(), NativeOptimizer::default());
        model.fit(TrainingData::new(ds, y.to_vec())?, Default::default())?;
        Ok(model.predict(None)?.yhat.point)
    }

    #[test]
    fn it_reaches_the_minimum() {
        let d = data(300, 6, 4, TrendIndicator::Linear);
        let got = fit(NativeOptimizer::default(), &d);
        let f = objective(&d, &got);
        // No step of any parameter, up or down, lowers the objective: a minimum of this
        // convex-in-theta, unimodal-in-sigma objective.
        for i in 0..2 + 6 + 1 + 4 {
            for h in [1e-3, -1e-3, 1e-6, -1e-6] {
                let q = with(&got, &d, |v| v[i] += h);
                let fq = objective(&d, &q);
                assert!(
                    fq >= f - 1e-9 * (1.0 + f.abs()),
                    "parameter {i} step {h}: {fq} < {f}"
                );
            }
        }
        // The slope before and after the turn at t = 0.6 is found.
        let slope = |t: f64| {
            got.k
                + got
                    .delta
                    .iter()
                    .zip(&d.t_change)
                    .filter(|(_, c)| **c <= t)
                    .map(|(dl, _)| dl)
                    .sum::<f64>()
        };
        assert!((slope(0.3) - 0.4).abs() < 0.1, "{}", slope(0.3));
        assert!((slope(0.95) - 0.9).abs() < 0.15, "{}", slope(0.95));
        // Changepoints that are not needed are exactly zero (the lasso's soft threshold).
        assert!(got.delta.contains(&0.0), "{:?}", got.delta);
    }

    #[test]
    fn the_work_is_bounded() {
        // One round of one step: an answer (not the optimum), finite, in bounded time.
        let d = data(300, 6, 4, TrendIndicator::Linear);
        let opt = NativeOptimizer {
            max_rounds: 1,
            max_steps: 1,
            ..NativeOptimizer::default()
        };
        let (got, full) = (fit(opt, &d), fit(NativeOptimizer::default(), &d));
        let (f1, f) = (objective(&d, &got), objective(&d, &full));
        assert!(f1.is_finite() && f1 > f, "{f1} vs {f}");
    }

    #[test]
    fn a_flat_trend_is_its_offset() {
        let d = data(200, 4, 3, TrendIndicator::Flat);
        let got = fit(NativeOptimizer::default(), &d);
        assert!(got.trend.iter().all(|t| *t == got.m));
        assert!(got.delta.iter().all(|d| *d == 0.0) && got.k == 0.0);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Any finite series, of any scale and shape: Prophet through this optimiser fits and
        /// predicts finite numbers or says why not, never a panic.
        #[test]
        fn any_series_fits_or_fails_cleanly(
            y in proptest::collection::vec(-1e12f64..1e12, 3..200),
            step in 1i64..7200,
        ) {
            use augurs::prophet::{Prophet, TrainingData};
            let ds: Vec<i64> = (0..y.len() as i64).map(|i| i * step).collect();
            let mut model = Prophet::new(Default::default(), NativeOptimizer::default());
            if let Ok(data) = TrainingData::new(ds, y.clone()) {
                // A fit that succeeds predicts, and only finite numbers.
                if model.fit(data, Default::default()).is_ok() {
                    let p = model.predict(None).unwrap().yhat.point;
                    proptest::prop_assert!(p.iter().all(|v| v.is_finite()));
                }
            }
        }
    }

    #[test]
    fn flat_and_zero_series_fit() {
        for y in [vec![0.0; 50], vec![5.0; 50], vec![-3.0; 50]] {
            let p = prophet_fitted(&y, 60).unwrap();
            for (a, b) in p.iter().zip(&y) {
                assert!((a - b).abs() < 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn what_it_cannot_fit_is_an_error() {
        let d = data(50, 3, 2, TrendIndicator::Linear);
        let opt = NativeOptimizer::default();
        let o = OptimizeOpts::default();
        let mut logistic = d.clone();
        logistic.trend_indicator = TrendIndicator::Logistic;
        let e = opt.optimize(&init(3, 2), &logistic, &o).unwrap_err();
        assert!(e.to_string().contains("logistic"), "{e}");
        let mut mult = d.clone();
        mult.s_m[1] = 1;
        let e = opt.optimize(&init(3, 2), &mult, &o).unwrap_err();
        assert!(e.to_string().contains("multiplicative"), "{e}");
        let e = opt.optimize(&init(2, 2), &d, &o).unwrap_err();
        assert!(e.to_string().contains("changepoints"), "{e}");
        let mut nan = d.clone();
        nan.y[3] = f64::NAN;
        let e = opt.optimize(&init(3, 2), &nan, &o).unwrap_err();
        assert!(e.to_string().contains("non-finite"), "{e}");
        let mut short = d;
        short.X.pop();
        let e = opt.optimize(&init(3, 2), &short, &o).unwrap_err();
        assert!(e.to_string().contains("inconsistent"), "{e}");
    }
}
