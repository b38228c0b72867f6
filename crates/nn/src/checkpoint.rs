//! Checkpoints of every model, in the forecast crate's format
//! ([`graphscale_forecast::checkpoint`]): a neural model's weights are f32 tensors
//! `weights.<parameter path>`, its [`RnnConfig`] is the manifest's `hyper`, and the scale the
//! network saw, the kept epoch and the validation losses are its `training`. The calibration
//! errors are the network's validation errors. A hybrid refits its base model on the stored
//! series when loaded (deterministic) and restores the network's weights.

use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use graphscale_core::FittedForecaster;
use graphscale_forecast::checkpoint::{
    classical_kind, f32_tensors, Checkpoint, Manifest, Normalization, Weight, FORMAT,
    FORMAT_VERSION,
};
use graphscale_forecast::ForecastError;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::hybrid::{FittedHybrid, Hybrid};
use crate::rnn::{train, FittedRnn, RnnConfig, RnnNet, Scale, TrainedRnn};
use crate::{by_name, is_neural, rnn_config};

/// What a neural checkpoint records about its training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Training {
    /// Normalisation of the series the network was trained on (residuals for a hybrid).
    pub scale: Scale,
    /// The epoch whose weights were kept (1-based).
    pub best_epoch: usize,
    /// Validation mean squared error per epoch (normalised units).
    pub val_loss: Vec<f64>,
    /// Training windows.
    pub train_windows: usize,
}

fn model_err(path: &str, reason: String) -> ForecastError {
    ForecastError::Checkpoint {
        path: path.into(),
        reason,
    }
}

/// The network's weights as named tensors.
pub fn weights_of(net: &RnnNet) -> Result<Vec<Weight>, ForecastError> {
    let err = |e: String| model_err("(weights)", e);
    let mut store = SafetensorsStore::from_bytes(None);
    net.save_into(&mut store)
        .map_err(|e| err(format!("{e:?}")))?;
    let bytes = store.get_bytes().map_err(|e| err(format!("{e:?}")))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| err(e.to_string()))?;
    f32_tensors(&st, "").map_err(err)
}

/// A network for `cfg` with `weights` loaded; every parameter must be present with its shape.
pub fn net_from(cfg: &RnnConfig, weights: &[Weight], path: &str) -> Result<RnnNet, ForecastError> {
    let err = |e: String| model_err(path, e);
    let bytes: Vec<Vec<u8>> = weights
        .iter()
        .map(|w| w.values.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views = weights
        .iter()
        .zip(&bytes)
        .map(|(w, b)| {
            TensorView::new(Dtype::F32, w.shape.clone(), b)
                .map(|v| (w.name.as_str(), v))
                .map_err(|e| err(format!("weight `{}`: {e}", w.name)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let data = safetensors::tensor::serialize(views, None).map_err(|e| err(e.to_string()))?;
    let mut net = RnnNet::new(cfg, &Device::flex());
    let mut store = SafetensorsStore::from_bytes(Some(data));
    let applied = net.load_from(&mut store).map_err(|e| {
        err(format!(
            "weights do not fit the {} network: {e:?}",
            cfg.cell.name()
        ))
    })?;
    if !applied.missing.is_empty() || !applied.unused.is_empty() || !applied.errors.is_empty() {
        return Err(err(format!(
            "weights do not fit the {} network: missing {:?}, unused {:?}, errors {:?}",
            cfg.cell.name(),
            applied.missing,
            applied.unused,
            applied.errors
        )));
    }
    Ok(net)
}

/// Fits `kind` on `series` and returns its checkpoint and the fitted model. Neural kinds use
/// `rnn` (or the defaults) with `season` as their period and `max_horizon` as their output
/// width; classical kinds are calibrated by split conformal up to `max_horizon` steps.
pub fn fit(
    kind: &str,
    season: usize,
    series: &[f64],
    step_s: u64,
    start_unix: f64,
    max_horizon: usize,
    rnn: Option<&RnnConfig>,
) -> Result<(Checkpoint, Box<dyn FittedForecaster>), ForecastError> {
    if !is_neural(kind) {
        return Checkpoint::fit(kind, season, series, step_s, start_unix, max_horizon);
    }
    let cfg = rnn_config(kind, season, max_horizon, rnn);
    let (trained, fitted): (TrainedRnn, Box<dyn FittedForecaster>) = if kind.starts_with("hybrid") {
        let base = by_name(
            kind.trim_start_matches("hybrid-"),
            season.max(2),
            step_s,
            max_horizon,
            None,
        )?;
        let h = Hybrid {
            base,
            rnn: cfg.clone(),
        }
        .fit_hybrid(series)?;
        (h.trained.clone(), Box::new(h))
    } else {
        let trained = train(&cfg, series, 0)?;
        let fitted = FittedRnn {
            trained: trained.clone(),
            tail: series[series.len() - cfg.window..].to_vec(),
            points: series.len(),
        };
        (trained, Box::new(fitted))
    };
    let n = series.len() as f64;
    let mean = series.iter().sum::<f64>() / n;
    let std = (series.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let training = Training {
        scale: trained.scale,
        best_epoch: trained.best_epoch,
        val_loss: trained.val_loss.clone(),
        train_windows: trained.train_windows,
    };
    let manifest = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        kind: kind.into(),
        season,
        max_horizon: cfg.max_horizon,
        calibration_origins: trained.errors.first().map_or(0, Vec::len),
        step_s,
        start_unix,
        points: series.len(),
        normalization: Normalization { mean, std },
        calibration_mae: trained
            .errors
            .iter()
            .map(|e| e.iter().map(|x| x.abs()).sum::<f64>() / e.len().max(1) as f64)
            .collect(),
        refit_on_load: kind.starts_with("hybrid"),
        hyper: serde_json::to_value(&cfg).map_err(|e| model_err("(manifest)", e.to_string()))?,
        training: serde_json::to_value(&training)
            .map_err(|e| model_err("(manifest)", e.to_string()))?,
        graphscale_version: env!("CARGO_PKG_VERSION").into(),
    };
    Ok((
        Checkpoint {
            manifest,
            series: series.to_vec(),
            calibration_errors: trained.errors.clone(),
            weights: weights_of(&trained.net)?,
        },
        fitted,
    ))
}

/// Reads and checks a checkpoint of any model this build knows.
pub fn load(path: &std::path::Path) -> Result<Checkpoint, ForecastError> {
    Checkpoint::load_with(path, &|k| classical_kind(k) || is_neural(k))
}

/// Restores the fitted model of a checkpoint.
pub fn restore(ck: &Checkpoint) -> Result<Box<dyn FittedForecaster>, ForecastError> {
    let m = &ck.manifest;
    if !is_neural(&m.kind) {
        return ck.restore();
    }
    let path = format!("checkpoint of kind {}", m.kind);
    let cfg: RnnConfig = serde_json::from_value(m.hyper.clone())
        .map_err(|e| model_err(&path, format!("manifest `hyper`: {e}")))?;
    let training: Training = serde_json::from_value(m.training.clone())
        .map_err(|e| model_err(&path, format!("manifest `training`: {e}")))?;
    if cfg.max_horizon != m.max_horizon || ck.calibration_errors.len() != cfg.max_horizon {
        return Err(model_err(
            &path,
            format!(
                "max_horizon {} in `hyper` does not match the manifest ({}) or the calibration errors ({})",
                cfg.max_horizon,
                m.max_horizon,
                ck.calibration_errors.len()
            ),
        ));
    }
    if ck.series.len() < cfg.window {
        return Err(model_err(&path, "series shorter than the window".into()));
    }
    let net = net_from(&cfg, &ck.weights, &path)?;
    let trained = TrainedRnn {
        host: net.host(),
        net,
        config: cfg.clone(),
        scale: training.scale,
        errors: ck.calibration_errors.clone(),
        val_loss: training.val_loss,
        best_epoch: training.best_epoch,
        train_windows: training.train_windows,
    };
    if m.kind.starts_with("hybrid") {
        let base = by_name(
            m.kind.trim_start_matches("hybrid-"),
            m.season.max(2),
            m.step_s,
            m.max_horizon,
            None,
        )?;
        let fitted = base.fit(&ck.series)?;
        Ok(Box::new(FittedHybrid::from_parts(
            &m.kind,
            fitted,
            trained,
            ck.series.clone(),
        )?))
    } else {
        Ok(Box::new(FittedRnn {
            tail: ck.series[ck.series.len() - cfg.window..].to_vec(),
            points: ck.series.len(),
            trained,
        }))
    }
}
