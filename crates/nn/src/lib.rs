//! # graphscale-nn
//!
//! Neural forecasters on burn with its `flex` CPU backend, behind the core
//! [`graphscale_core::Forecaster`] seam:
//!
//! - [`rnn`]: LSTM and GRU forecasters (direct multi-horizon, residual to the last value, early
//!   stopping, conformal intervals from the validation range);
//! - [`hybrid`]: a classical model (MSTL or Prophet) for trend and
//!   seasonality, plus a recurrent network on its residuals;
//! - [`checkpoint`]: fitting and restoring every model, neural or classical, through the
//!   forecast crate's checkpoint format (weights as safetensors, manifest in JSON).
//!
//! [`by_name`] resolves every model name the command line accepts.

pub mod bench;
pub mod checkpoint;
mod error;
pub mod gnn;
pub mod graphdata;
pub mod graphmodel;
pub mod hgt;
pub mod hgt_host;
pub mod hybrid;
mod linalg;
pub mod online;
pub mod rnn;
pub mod rnn_host;
pub mod rnn_train;

pub use error::NnError;

use std::sync::{Mutex, MutexGuard};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};

use graphscale_core::{ForecastFailure, Forecaster};
use graphscale_forecast::models::{by_name_with_step, Mstl};

use crate::hybrid::Hybrid;
use crate::rnn::{Cell, Rnn, RnnConfig};

/// burn seeds its generator per backend, process-wide: every seeded initialisation in this crate
/// (recurrent and graph networks alike) holds this lock from the seed to the last weight drawn,
/// so concurrent fits (experiments run on several threads) cannot interleave their draws.
static SEED_LOCK: Mutex<()> = Mutex::new(());

/// Takes [`SEED_LOCK`] (a poisoned lock is still a lock: the guarded data is `()`).
fn seed_lock() -> MutexGuard<'static, ()> {
    SEED_LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Builds a module whose weights come from `seed` and nothing else: seeds `device`, runs `build`
/// and draws every parameter, all under [`SEED_LOCK`].
///
/// burn initialises parameters lazily, on their first use. Without the last step the weights
/// would be drawn at the first forward pass, outside the lock, from whatever state the
/// process-wide generator had reached by then: another network built (or trained) meanwhile, on
/// this thread or another, would change them. That made two same-seed graph models differ once.
pub fn seeded<M: Module>(seed: u64, device: &Device, build: impl FnOnce() -> M) -> M {
    struct Draw;
    impl ModuleVisitor for Draw {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    let _guard = seed_lock();
    device.seed(seed);
    let module = build();
    module.visit(&mut Draw);
    module
}

/// Model names of this crate.
pub const NEURAL: [&str; 4] = ["lstm", "gru", "hybrid-mstl", "hybrid-prophet"];

/// Every per-series model name [`by_name`] accepts: the forecast crate's and this crate's.
pub fn model_names() -> Vec<&'static str> {
    graphscale_forecast::models::MODELS
        .iter()
        .chain(NEURAL.iter())
        .copied()
        .collect()
}

/// Whether `name` is one of this crate's models.
pub fn is_neural(name: &str) -> bool {
    NEURAL.contains(&name)
}

/// The settings of a neural model `name` for a season of `period` steps and forecasts up to
/// `max_horizon` steps, from `base` (defaults when `None`): the cell follows the name, the output
/// width follows `max_horizon`, and the season phase inputs follow `period` unless `base` sets
/// its own period.
pub fn rnn_config(
    name: &str,
    period: usize,
    max_horizon: usize,
    base: Option<&RnnConfig>,
) -> RnnConfig {
    let mut cfg = base.cloned().unwrap_or_default();
    cfg.cell = if name == "gru" { Cell::Gru } else { Cell::Lstm };
    cfg.max_horizon = max_horizon.max(1);
    if cfg.period == 0 && period > 1 {
        cfg.period = period;
    }
    cfg
}

/// Any model by name: `lstm`, `gru`, `hybrid-mstl`, `hybrid-prophet` and every model of [`graphscale_forecast::models::by_name_with_step`], `onnx:PATH`
/// among them. `period` is
/// the season length in steps, `step_s` the step in seconds and `max_horizon` the longest
/// horizon that will be asked of a neural model (its output width).
pub fn by_name(
    name: &str,
    period: usize,
    step_s: u64,
    max_horizon: usize,
    rnn: Option<&RnnConfig>,
) -> Result<Box<dyn Forecaster>, ForecastFailure> {
    let cfg = rnn_config(name, period, max_horizon, rnn);
    Ok(match name {
        "lstm" | "gru" => Box::new(Rnn { config: cfg }),
        "hybrid-mstl" => Box::new(Hybrid {
            base: Box::new(Mstl {
                periods: vec![period.max(2)],
            }),
            rnn: cfg,
        }),
        "hybrid-prophet" => Box::new(Hybrid {
            base: by_name_with_step("prophet", period, step_s)?,
            rnn: cfg,
        }),
        other
            if graphscale_forecast::models::MODELS.contains(&other)
                || other == "snaive"
                || other == "prophet-stan"
                || graphscale_forecast::onnx::path_of(other).is_some() =>
        {
            by_name_with_step(other, period, step_s)?
        }
        other => {
            return Err(ForecastFailure::new(
                other,
                format!(
                    "unknown model (known: {}, onnx:PATH)",
                    model_names().join(", ")
                ),
            ))
        }
    })
}
