//! Split-conformal quantiles for any point forecaster.
//!
//! The model is fitted at `origins` cut points spread over the last `calibration_share` of the
//! series, each time on the data before the cut, and forecasts `max_horizon` steps; the signed
//! errors `y - yhat` per step ahead form the calibration set. The quantile `tau` at step `h` is
//! the point forecast plus the `ceil((n + 1) tau) / n` empirical quantile of the step-`h` errors
//! (the finite-sample correction of split conformal prediction). The model is then refitted on
//! the whole series.

use graphscale_core::{FittedForecaster, ForecastFailure, ForecastOutput, Forecaster};

/// The `tau` quantile of `errors` with the split-conformal finite-sample correction; `None` for
/// an empty set.
pub fn conformal_quantile(errors: &[f64], tau: f64) -> Option<f64> {
    if errors.is_empty() {
        return None;
    }
    let mut e = errors.to_vec();
    e.sort_by(f64::total_cmp);
    let n = e.len() as f64;
    let rank = if tau >= 0.5 {
        ((n + 1.0) * tau).ceil()
    } else {
        ((n + 1.0) * tau).floor()
    };
    let idx = (rank as i64 - 1).clamp(0, e.len() as i64 - 1) as usize;
    Some(e[idx])
}

/// A fitted model and its calibration errors per step ahead.
pub type FittedWithErrors = (Box<dyn FittedForecaster>, Vec<Vec<f64>>);

/// Wraps a model with split-conformal quantiles.
pub struct Conformal {
    /// The point model.
    pub inner: Box<dyn Forecaster>,
    /// Calibration cut points; default 24.
    pub origins: usize,
    /// Share of the series the cut points are spread over; default 0.3.
    pub calibration_share: f64,
    /// Longest horizon that will be asked for.
    pub max_horizon: usize,
}

struct FittedConformal {
    name: String,
    inner: Box<dyn FittedForecaster>,
    errors: Vec<Vec<f64>>,
}

impl Conformal {
    /// Wraps `inner` with the default calibration (24 cut points over the last 30 %).
    pub fn new(inner: Box<dyn Forecaster>, max_horizon: usize) -> Self {
        Conformal {
            inner,
            origins: 24,
            calibration_share: 0.3,
            max_horizon,
        }
    }
}

impl Conformal {
    /// Fits and also returns the calibration errors per step ahead (for checkpoints).
    pub fn fit_with_errors(&self, y: &[f64]) -> Result<FittedWithErrors, ForecastFailure> {
        let errors = self.calibration_errors(y)?;
        let fitted = self.inner.fit(y)?;
        Ok((
            from_parts(self.inner.name(), fitted, errors.clone()),
            errors,
        ))
    }

    fn calibration_errors(&self, y: &[f64]) -> Result<Vec<Vec<f64>>, ForecastFailure> {
        let name = self.inner.name();
        let h = self.max_horizon.max(1);
        let n = y.len();
        let cal = ((n as f64 * self.calibration_share) as usize).max(h + self.origins);
        if n < cal + 2 * h || self.origins == 0 {
            return Err(ForecastFailure::new(
                &name,
                format!(
                    "conformal calibration needs at least {} points, got {n}",
                    cal + 2 * h
                ),
            ));
        }
        let first = n - cal;
        let last = n - h;
        let mut errors = vec![Vec::new(); h];
        for k in 0..self.origins {
            let o = first + (last - first) * k / self.origins.max(1);
            let fitted = self.inner.fit(&y[..o])?;
            let p = fitted.predict(h, &[])?;
            for (step, errs) in errors.iter_mut().enumerate() {
                errs.push(y[o + step] - p.point[step]);
            }
        }
        Ok(errors)
    }
}

/// A fitted model with its calibration errors (per step ahead): how a checkpoint is restored.
pub fn from_parts(
    name: String,
    inner: Box<dyn FittedForecaster>,
    errors: Vec<Vec<f64>>,
) -> Box<dyn FittedForecaster> {
    Box::new(FittedConformal {
        name,
        inner,
        errors,
    })
}

impl Forecaster for Conformal {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn fit(&self, y: &[f64]) -> Result<Box<dyn FittedForecaster>, ForecastFailure> {
        Ok(self.fit_with_errors(y)?.0)
    }
}

impl FittedForecaster for FittedConformal {
    fn predict(
        &self,
        horizon: usize,
        quantiles: &[f64],
    ) -> Result<ForecastOutput, ForecastFailure> {
        check_request(&self.name, &self.errors, horizon, quantiles)?;
        let point = self.inner.predict(horizon, &[])?.point;
        Ok(with_quantiles(point, &self.errors, quantiles))
    }

    fn fitted_values(&self) -> Option<Vec<f64>> {
        self.inner.fitted_values()
    }

    fn predict_after(
        &self,
        history: &[f64],
        advance: usize,
        horizon: usize,
        quantiles: &[f64],
    ) -> Option<Result<ForecastOutput, ForecastFailure>> {
        if let Err(e) = check_request(&self.name, &self.errors, horizon, quantiles) {
            return Some(Err(e));
        }
        let point = match self.inner.predict_after(history, advance, horizon, &[])? {
            Ok(p) => p.point,
            Err(e) => return Some(Err(e)),
        };
        Some(Ok(with_quantiles(point, &self.errors, quantiles)))
    }
}

/// Checks a request against calibration errors per step ahead: the horizon must be calibrated
/// and every quantile level in (0, 1).
pub fn check_request(
    name: &str,
    errors: &[Vec<f64>],
    horizon: usize,
    quantiles: &[f64],
) -> Result<(), ForecastFailure> {
    if horizon > errors.len() {
        return Err(ForecastFailure::new(
            name,
            format!(
                "calibrated for up to {} steps, asked for {horizon}",
                errors.len()
            ),
        ));
    }
    if let Some(q) = quantiles.iter().find(|q| !(**q > 0.0 && **q < 1.0)) {
        return Err(ForecastFailure::new(
            name,
            format!("quantile levels must be in (0, 1), got {q}"),
        ));
    }
    Ok(())
}

/// `point` with the split-conformal quantiles of `errors` (signed errors `y - yhat` per step
/// ahead) added for each level in `quantiles`.
pub fn with_quantiles(point: Vec<f64>, errors: &[Vec<f64>], quantiles: &[f64]) -> ForecastOutput {
    let quantiles = quantiles
        .iter()
        .map(|&tau| {
            let v = (0..point.len())
                .map(|s| point[s] + conformal_quantile(&errors[s], tau).unwrap_or(0.0))
                .collect();
            (tau, v)
        })
        .collect();
    ForecastOutput { point, quantiles }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Persistence;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    #[test]
    fn quantile_with_finite_sample_correction() {
        let e: Vec<f64> = (1..=9).map(f64::from).collect();
        // n = 9, tau = 0.9: rank ceil(10 * 0.9) = 9 -> 9.0; tau = 0.1: floor(1.0) = 1 -> 1.0.
        assert_eq!(conformal_quantile(&e, 0.9), Some(9.0));
        assert_eq!(conformal_quantile(&e, 0.1), Some(1.0));
        assert_eq!(conformal_quantile(&e, 0.5), Some(5.0));
        assert_eq!(conformal_quantile(&[], 0.5), None);
    }

    #[test]
    fn intervals_cover_known_noise() {
        // A random walk with N(0, 1) steps: persistence's one-step error is N(0, 1), so a 90 %
        // interval should be about +/- 1.645 wide and cover about 90 % of the next points.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let noise = Normal::new(0.0, 1.0).unwrap();
        let mut y = vec![0.0];
        for _ in 0..6000 {
            let last = y[y.len() - 1];
            y.push(last + noise.sample(&mut rng));
        }
        let model = Conformal {
            inner: Box::new(Persistence),
            origins: 400,
            calibration_share: 0.3,
            max_horizon: 1,
        };
        let (mut covered, mut total, mut width) = (0, 0, 0.0);
        for o in (3000..6000).step_by(10) {
            let f = model.fit(&y[..o]).unwrap();
            let p = f.predict(1, &[0.05, 0.95]).unwrap();
            let (lo, hi) = (p.quantile(0.05).unwrap()[0], p.quantile(0.95).unwrap()[0]);
            covered += usize::from(y[o] >= lo && y[o] <= hi);
            total += 1;
            width += hi - lo;
        }
        let coverage = covered as f64 / total as f64;
        assert!((0.86..=0.94).contains(&coverage), "coverage {coverage}");
        let mean_width = width / total as f64;
        assert!((mean_width - 2.0 * 1.645).abs() < 0.5, "width {mean_width}");
    }
}
