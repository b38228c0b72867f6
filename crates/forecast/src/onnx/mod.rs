//! Per-series forecasters exported as ONNX (from PyTorch, Keras, ...), run by tract (pure Rust)
//! when graphscale is built with the `onnx` feature.
//!
//! The contract a file must follow (`docs/forecast.md`, "ONNX models"):
//! - one input, float32, of fixed shape `[1, W]`: the newest `W` raw values, oldest first;
//! - one output, float32, of fixed shape `[1, H]`: point forecasts for the next `H` steps.
//!
//! Normalisation belongs inside the graph, so the file alone says how it is used. A horizon
//! longer than `H` is forecast recursively (the forecasts are fed back as inputs). Intervals
//! come from split-conformal calibration ([`crate::conformal`]), as for every point model.
//!
//! The model's name is `onnx:PATH`; a checkpoint of it records that name and reloads the file.

use std::path::Path;

use graphscale_core::{ForecastFailure, Forecaster};

#[cfg(feature = "onnx")]
mod contain;
#[cfg(feature = "onnx")]
mod runtime;
#[cfg(feature = "onnx")]
pub use runtime::OnnxForecaster;

/// The prefix of an ONNX model's name: `onnx:PATH`.
pub const PREFIX: &str = "onnx:";
/// The largest ONNX file read (bytes).
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// The longest input window accepted.
pub const MAX_WINDOW: usize = 100_000;
/// The longest output accepted.
pub const MAX_OUTPUT: usize = 10_000;
/// The most model runs one forecast may take (a horizon of at most `MAX_RUNS * H` steps).
pub const MAX_RUNS: usize = 10_000;

/// The file of model name `onnx:PATH`, or `None` for another name.
pub fn path_of(name: &str) -> Option<&Path> {
    name.strip_prefix(PREFIX).map(Path::new)
}

/// The forecaster in the ONNX file at `path`; without the `onnx` feature, an error saying so.
pub fn load(path: &Path) -> Result<Box<dyn Forecaster>, ForecastFailure> {
    #[cfg(feature = "onnx")]
    return Ok(Box::new(OnnxForecaster::load(path)?));
    #[cfg(not(feature = "onnx"))]
    Err(ForecastFailure::new(
        format!("{PREFIX}{}", path.display()),
        "this build has no ONNX runtime: build with `--features onnx` (it adds tract)",
    ))
}
