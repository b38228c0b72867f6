//! # graphscale-forecast
//!
//! Per-series forecasters behind the core [`graphscale_core::Forecaster`] seam, and the tools to
//! compare them honestly.
//!
//! - [`preprocess`]: resampling to a fixed step (gaps stay gaps), a glitch filter that keeps
//!   real flash crowds, season detection on the differenced series;
//! - [`models`]: persistence, seasonal naive, AutoETS and MSTL (from augurs);
//! - [`onnx`]: forecasters exported as ONNX (`onnx:PATH`), run by tract;
//! - [`conformal`]: split-conformal quantiles for any model;
//! - [`checkpoint`]: fitted models saved as safetensors with a JSON manifest;
//! - [`backtest`]: rolling-origin backtests with MAE, RMSE, sMAPE, MASE, pinball loss and
//!   interval coverage and width per model and horizon.
//!
//! ```
//! use graphscale_core::Forecaster;
//! use graphscale_forecast::models::SeasonalNaive;
//! let y: Vec<f64> = (0..48).map(|i| (i % 24) as f64).collect();
//! let f = SeasonalNaive { period: 24 }.fit(&y).unwrap();
//! assert_eq!(f.predict(3, &[]).unwrap().point, vec![0.0, 1.0, 2.0]);
//! ```

pub mod backtest;
pub mod checkpoint;
pub mod conformal;
pub mod models;
pub mod onnx;
pub mod preprocess;
pub mod prophet_native;

/// Errors of the forecast crate.
#[derive(Debug, thiserror::Error)]
pub enum ForecastError {
    /// A file could not be written (or exists and replacing it was not asked for).
    #[error(transparent)]
    Write(#[from] graphscale_fsio::WriteError),
    /// The input series cannot be used (empty, too short, NaN, unsorted...).
    #[error("invalid series: {0}")]
    Series(String),
    /// A setting is out of range.
    #[error("invalid {field}: {reason}")]
    Config {
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
    /// A model failed.
    #[error(transparent)]
    Model(#[from] graphscale_core::ForecastFailure),
    /// A checkpoint could not be read or written.
    #[error("{path}: {reason}")]
    Checkpoint {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}
