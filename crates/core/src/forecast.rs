//! The forecaster seam: configure -> fit -> fitted model -> predict(horizon, quantiles).
//!
//! One series per service and metric, on a fixed step (see the forecast crate for resampling).
//! The traits are object safe, so a backtest or a planner can hold any model behind
//! `Box<dyn Forecaster>`.

use serde::{Deserialize, Serialize};

/// Why a model could not fit or predict.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{model}: {reason}")]
pub struct ForecastFailure {
    /// The model's name.
    pub model: String,
    /// What went wrong.
    pub reason: String,
}

impl ForecastFailure {
    /// A new failure.
    pub fn new(model: impl Into<String>, reason: impl Into<String>) -> Self {
        ForecastFailure {
            model: model.into(),
            reason: reason.into(),
        }
    }
}

/// Point forecasts and quantiles for the next `horizon` steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastOutput {
    /// Point forecast per step ahead (1..=horizon).
    pub point: Vec<f64>,
    /// `(quantile level in (0, 1), values per step)`, in the order asked for.
    pub quantiles: Vec<(f64, Vec<f64>)>,
}

impl ForecastOutput {
    /// The values of quantile `level`, if it was asked for.
    pub fn quantile(&self, level: f64) -> Option<&[f64]> {
        self.quantiles
            .iter()
            .find(|(l, _)| (l - level).abs() < 1e-9)
            .map(|(_, v)| v.as_slice())
    }
}

/// A configured model that can be fitted to a series.
pub trait Forecaster: Send + Sync {
    /// A short, stable name (`persistence`, `seasonal-naive`, `ets`, `mstl`, ...).
    fn name(&self) -> String;
    /// Fits to `y` (regular step, finite values, oldest first).
    fn fit(&self, y: &[f64]) -> Result<Box<dyn FittedForecaster>, ForecastFailure>;
}

/// A fitted model.
pub trait FittedForecaster: Send {
    /// Forecasts `horizon` steps after the end of the fitted series, with the given quantile
    /// levels (each in (0, 1)).
    fn predict(&self, horizon: usize, quantiles: &[f64])
        -> Result<ForecastOutput, ForecastFailure>;

    /// One-step in-sample fitted values over the training series (same length, oldest first),
    /// where the model has them: what a residual model (a hybrid) learns from. Default: none.
    fn fitted_values(&self) -> Option<Vec<f64>> {
        None
    }

    /// Forecasts `horizon` steps after `history` (the newest points, oldest first) with the
    /// parameters already fitted, without refitting. `history` ends `advance` steps after the
    /// end of the fitted series (0: at its end). Models whose parameters do not depend on where
    /// the series ends (neural networks) answer; the default `None` means "refit instead".
    fn predict_after(
        &self,
        history: &[f64],
        advance: usize,
        horizon: usize,
        quantiles: &[f64],
    ) -> Option<Result<ForecastOutput, ForecastFailure>> {
        let _ = (history, advance, horizon, quantiles);
        None
    }
}
