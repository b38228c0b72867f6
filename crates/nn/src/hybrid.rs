//! A hybrid forecaster: a classical model (MSTL or Prophet) captures trend and seasonality, and
//! a recurrent network forecasts what it leaves, the in-sample residuals `y - fitted` (the
//! ARIMA + neural network scheme of Zhang, 2003, with Prophet or MSTL as the first stage).
//!
//! Forecast = base forecast + network's forecast of the residuals. The network's validation
//! errors on the residual series calibrate the intervals; they are in-sample for the base model,
//! so these intervals can be narrower than the hybrid's out-of-sample errors (the backtest
//! calibrates its own).

use graphscale_core::{FittedForecaster, ForecastFailure, ForecastOutput, Forecaster};
use graphscale_forecast::conformal::{check_request, with_quantiles};

use crate::rnn::{train, RnnConfig, TrainedRnn};

/// Base model + residual network.
pub struct Hybrid {
    /// The base model; it must provide in-sample fitted values.
    pub base: Box<dyn Forecaster>,
    /// The residual network's settings.
    pub rnn: RnnConfig,
}

/// A fitted hybrid.
pub struct FittedHybrid {
    /// The fitted base model.
    pub base: Box<dyn FittedForecaster>,
    /// The residual network.
    pub trained: TrainedRnn,
    /// The training series (for the residual history in `predict_after`).
    pub series: Vec<f64>,
    /// In-sample fitted values of the base.
    pub fitted: Vec<f64>,
    name: String,
}

impl Forecaster for Hybrid {
    fn name(&self) -> String {
        format!("hybrid-{}", self.base.name())
    }

    fn fit(&self, y: &[f64]) -> Result<Box<dyn FittedForecaster>, ForecastFailure> {
        Ok(Box::new(self.fit_hybrid(y)?))
    }
}

impl Hybrid {
    /// Fits the base, then the network on its residuals.
    pub fn fit_hybrid(&self, y: &[f64]) -> Result<FittedHybrid, ForecastFailure> {
        let name = self.name();
        let base = self.base.fit(y)?;
        let fitted = base.fitted_values().ok_or_else(|| {
            ForecastFailure::new(
                &name,
                format!("the base model {} has no in-sample fit", self.base.name()),
            )
        })?;
        if fitted.len() != y.len() {
            return Err(ForecastFailure::new(
                &name,
                format!(
                    "the base model's in-sample fit has {} values for {} points",
                    fitted.len(),
                    y.len()
                ),
            ));
        }
        let residuals: Vec<f64> = y.iter().zip(&fitted).map(|(a, b)| a - b).collect();
        let trained = train(&self.rnn, &residuals, 0)
            .map_err(|e| ForecastFailure::new(&name, format!("residual network: {}", e.reason)))?;
        FittedHybrid::from_parts(&name, base, trained, y.to_vec())
    }
}

impl FittedHybrid {
    /// A fitted hybrid from its fitted base and trained network (how a checkpoint is restored):
    /// the base's in-sample fit is recomputed.
    pub fn from_parts(
        name: &str,
        base: Box<dyn FittedForecaster>,
        trained: TrainedRnn,
        series: Vec<f64>,
    ) -> Result<Self, ForecastFailure> {
        let fitted = base
            .fitted_values()
            .ok_or_else(|| ForecastFailure::new(name, "the base model has no in-sample fit"))?;
        if fitted.len() != series.len() || fitted.iter().any(|v| !v.is_finite()) {
            return Err(ForecastFailure::new(
                name,
                format!(
                    "the base model's in-sample fit has {} values for {} points or is not finite",
                    fitted.len(),
                    series.len()
                ),
            ));
        }
        Ok(FittedHybrid {
            base,
            trained,
            series,
            fitted,
            name: name.into(),
        })
    }

    fn residual_forecast(
        &self,
        residuals: &[f64],
        last_index: usize,
        horizon: usize,
    ) -> Result<Vec<f64>, ForecastFailure> {
        self.trained
            .forecast(residuals, last_index, horizon)
            .map_err(|e| ForecastFailure::new(&self.name, e.reason))
    }
}

impl FittedForecaster for FittedHybrid {
    fn predict(
        &self,
        horizon: usize,
        quantiles: &[f64],
    ) -> Result<ForecastOutput, ForecastFailure> {
        check_request(&self.name, &self.trained.errors, horizon, quantiles)?;
        let base = self.base.predict(horizon, &[])?.point;
        let n = self.series.len();
        let w = self.trained.config.window;
        let residuals: Vec<f64> = (n - w..n)
            .map(|i| self.series[i] - self.fitted[i])
            .collect();
        let r = self.residual_forecast(&residuals, n - 1, horizon)?;
        let point = base.iter().zip(&r).map(|(b, r)| b + r).collect();
        Ok(with_quantiles(point, &self.trained.errors, quantiles))
    }

    fn fitted_values(&self) -> Option<Vec<f64>> {
        Some(self.fitted.clone())
    }

    fn predict_after(
        &self,
        history: &[f64],
        advance: usize,
        horizon: usize,
        quantiles: &[f64],
    ) -> Option<Result<ForecastOutput, ForecastFailure>> {
        let run = || -> Result<ForecastOutput, ForecastFailure> {
            check_request(&self.name, &self.trained.errors, horizon, quantiles)?;
            let n = self.series.len();
            let w = self.trained.config.window;
            if history.len() < w {
                return Err(ForecastFailure::new(
                    &self.name,
                    format!("needs the last {w} points, got {}", history.len()),
                ));
            }
            let history = &history[history.len() - w..];
            // Base values over the history and the horizon: in-sample inside the training
            // series, forecast after it.
            let ahead = self.base.predict(advance + horizon, &[])?.point;
            let end = n + advance; // absolute index after the history's last point
            let base_at = |i: usize| {
                if i < n {
                    self.fitted[i]
                } else {
                    ahead[i - n]
                }
            };
            let residuals: Vec<f64> = history
                .iter()
                .enumerate()
                .map(|(k, v)| v - base_at(end - w + k))
                .collect();
            let r = self.residual_forecast(&residuals, end - 1, horizon)?;
            let point = (0..horizon).map(|s| base_at(end + s) + r[s]).collect();
            Ok(with_quantiles(point, &self.trained.errors, quantiles))
        };
        Some(run())
    }
}
