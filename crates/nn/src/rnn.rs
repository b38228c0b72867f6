//! LSTM and GRU forecasters: a recurrent network reads a window of the normalised series (and,
//! with a season, the phase of each step as sine and cosine) and a linear head predicts every
//! step up to `max_horizon` at once (direct multi-horizon forecasting).
//!
//! The head predicts the change from the last observed value, in units of the training series'
//! standard deviation, so an untrained network is the persistence forecast and training can only
//! learn corrections to it. Training: Adam on the mean squared error over windows of the first
//! `1 - validation_share` of the series, early stopping on the rest (the weights of the best
//! epoch are kept). The validation forecasts' signed errors per step ahead calibrate the
//! intervals (split conformal, see `graphscale_forecast::conformal`).

use burn::module::Module;
use burn::nn::{Gru, GruConfig, Linear, LinearConfig, Lstm, LstmConfig};

use crate::rnn_host::HostRnn;
use crate::rnn_train::HostTrainer;
use burn::tensor::{Device, Tensor, TensorData};
use graphscale_core::{FittedForecaster, ForecastFailure, ForecastOutput, Forecaster};
use graphscale_forecast::conformal::{check_request, with_quantiles};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// The recurrent cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cell {
    /// Long short-term memory.
    Lstm,
    /// Gated recurrent unit.
    Gru,
}

impl Cell {
    /// `lstm` or `gru`.
    pub fn name(self) -> &'static str {
        match self {
            Cell::Lstm => "lstm",
            Cell::Gru => "gru",
        }
    }
}

/// Settings of a recurrent forecaster. Defaults suit minute-to-five-minute load series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RnnConfig {
    /// The cell; default LSTM.
    pub cell: Cell,
    /// Input window, steps; default 48.
    pub window: usize,
    /// Hidden units; default 32.
    pub hidden: usize,
    /// Steps predicted at once (the longest horizon that can be asked for); default 12.
    pub max_horizon: usize,
    /// Season length in steps; > 1 adds the phase of each step (sine, cosine) to the input;
    /// default 0 (none).
    pub period: usize,
    /// Most epochs; default 30.
    pub epochs: usize,
    /// Epochs without a better validation loss before stopping; default 4.
    pub patience: usize,
    /// Windows per batch; default 64.
    pub batch: usize,
    /// Adam's learning rate; default 0.003.
    pub learning_rate: f64,
    /// Share of the windows (the newest) used for early stopping and calibration; default 0.2.
    pub validation_share: f64,
    /// Most training windows (the newest are kept); default 2,048.
    pub max_windows: usize,
    /// Seed of the weights and of the batch order; default 42.
    pub seed: u64,
}

impl Default for RnnConfig {
    fn default() -> Self {
        RnnConfig {
            cell: Cell::Lstm,
            window: 48,
            hidden: 32,
            max_horizon: 12,
            period: 0,
            epochs: 30,
            patience: 4,
            batch: 64,
            learning_rate: 3e-3,
            validation_share: 0.2,
            max_windows: 2048,
            seed: 42,
        }
    }
}

impl RnnConfig {
    fn check(&self) -> Result<(), ForecastFailure> {
        let bad = |what: String| Err(ForecastFailure::new(self.cell.name(), what));
        if self.window < 2 {
            return bad(format!("window must be >= 2 steps, got {}", self.window));
        }
        if self.hidden == 0 || self.max_horizon == 0 || self.batch == 0 || self.epochs == 0 {
            return bad("hidden, max_horizon, batch and epochs must be >= 1".into());
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad(format!(
                "learning_rate must be > 0, got {}",
                self.learning_rate
            ));
        }
        if !(self.validation_share > 0.0 && self.validation_share < 0.9) {
            return bad(format!(
                "validation_share must be in (0, 0.9), got {}",
                self.validation_share
            ));
        }
        Ok(())
    }

    /// Input features per step.
    pub fn features(&self) -> usize {
        if self.period > 1 {
            3
        } else {
            1
        }
    }

    /// The fewest points a fit needs: a window, the horizon, and at least 8 validation windows
    /// besides 8 training windows.
    pub fn min_points(&self) -> usize {
        self.window + self.max_horizon + 16
    }
}

/// The network: a recurrent layer and a linear head on its last hidden state.
#[derive(Module, Debug)]
pub struct RnnNet {
    pub(crate) lstm: Option<Lstm>,
    pub(crate) gru: Option<Gru>,
    pub(crate) head: Linear,
}

impl RnnNet {
    /// A network for `cfg`, with weights drawn from `cfg.seed`.
    pub fn new(cfg: &RnnConfig, device: &Device) -> Self {
        crate::seeded(cfg.seed, device, || {
            let f = cfg.features();
            let (lstm, gru) = match cfg.cell {
                Cell::Lstm => (
                    Some(LstmConfig::new(f, cfg.hidden, true).init(device)),
                    None,
                ),
                Cell::Gru => (None, Some(GruConfig::new(f, cfg.hidden, true).init(device))),
            };
            RnnNet {
                lstm,
                gru,
                head: LinearConfig::new(cfg.hidden, cfg.max_horizon).init(device),
            }
        })
    }

    /// Sum of the head's weights, read back to the host: forces pending work to finish (for
    /// timings).
    pub fn weight_sum(&self) -> f32 {
        self.head.weight.val().sum().into_scalar()
    }

    /// The same weights laid out for one-window forwards on the host ([`HostRnn`]).
    pub fn host(&self) -> Option<HostRnn> {
        let cell = if self.lstm.is_some() {
            Cell::Lstm
        } else {
            Cell::Gru
        };
        HostRnn::new(cell, self.lstm.as_ref(), self.gru.as_ref(), &self.head)
    }

    /// The weights laid out for training steps on the host ([`crate::rnn_train`]).
    pub fn host_trainer(&self) -> Option<HostTrainer> {
        HostTrainer::of(self)
    }

    /// `x`: `[batch, window, features]` -> `[batch, max_horizon]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<2> {
        let [b, w, _] = x.dims();
        let last = if let Some(lstm) = &self.lstm {
            lstm.forward(x, None).1.hidden
        } else if let Some(gru) = &self.gru {
            let out = gru.forward(x, None);
            let h = out.dims()[2];
            out.narrow(1, w - 1, 1).reshape([b, h])
        } else {
            unreachable!("RnnNet is built with one cell")
        };
        self.head.forward(last)
    }
}

/// Mean and standard deviation of a series (a standard deviation of 0 becomes 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scale {
    /// Mean.
    pub mean: f64,
    /// Standard deviation (> 0).
    pub std: f64,
}

impl Scale {
    fn of(y: &[f64]) -> Self {
        let n = y.len().max(1) as f64;
        let mean = y.iter().sum::<f64>() / n;
        let std = (y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        Scale {
            mean,
            std: if std > 1e-12 { std } else { 1.0 },
        }
    }
}

/// Builds the input of the windows ending before each `end` (exclusive) of `y`, whose first
/// point has the absolute index `first_index` (for the season phase).
fn inputs(
    cfg: &RnnConfig,
    scale: Scale,
    y: &[f64],
    first_index: usize,
    ends: &[usize],
) -> Vec<f32> {
    let f = cfg.features();
    let mut x = Vec::with_capacity(ends.len() * cfg.window * f);
    for &end in ends {
        for (i, v) in y.iter().enumerate().take(end).skip(end - cfg.window) {
            x.push(((v - scale.mean) / scale.std) as f32);
            if f == 3 {
                let phase = std::f64::consts::TAU * ((first_index + i) % cfg.period) as f64
                    / cfg.period as f64;
                x.push(phase.sin() as f32);
                x.push(phase.cos() as f32);
            }
        }
    }
    x
}

fn targets(cfg: &RnnConfig, scale: Scale, y: &[f64], ends: &[usize]) -> Vec<f32> {
    let mut t = Vec::with_capacity(ends.len() * cfg.max_horizon);
    for &end in ends {
        let last = y[end - 1];
        for h in 0..cfg.max_horizon {
            t.push(((y[end + h] - last) / scale.std) as f32);
        }
    }
    t
}

fn tensor3(x: Vec<f32>, shape: [usize; 3], device: &Device) -> Tensor<3> {
    Tensor::from_data(TensorData::new(x, shape), device)
}

fn to_vec(t: Tensor<2>) -> Result<Vec<f32>, ForecastFailure> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| ForecastFailure::new("rnn", format!("reading a tensor: {e:?}")))
}

/// A trained network with what it needs to forecast: its settings, the series scale, and the
/// signed validation errors per step ahead (series units).
#[derive(Debug, Clone)]
pub struct TrainedRnn {
    /// Settings it was trained with.
    pub config: RnnConfig,
    /// Normalisation of the training series.
    pub scale: Scale,
    /// The network (plain device, no autodiff).
    pub net: RnnNet,
    /// Its weights in the host layout, for predictions ([`RnnNet::host`]); `None` falls back
    /// to the network's modules.
    pub host: Option<HostRnn>,
    /// Validation errors `y - yhat` per step ahead.
    pub errors: Vec<Vec<f64>>,
    /// Validation mean squared error (normalised units) per epoch.
    pub val_loss: Vec<f64>,
    /// The epoch whose weights were kept (1-based).
    pub best_epoch: usize,
    /// Training windows used.
    pub train_windows: usize,
}

/// Windows per forward pass when the network in training predicts its validation windows.
const VALIDATION_BATCH: usize = 256;

/// What the epochs gave: the validation loss per epoch, the kept epoch and its validation
/// predictions.
struct Epochs {
    val_loss: Vec<f64>,
    best_epoch: usize,
    pred: Vec<f32>,
}

/// Epochs of `step` over shuffled batches of `train_ends`, each followed by `validate` against
/// `vt`; the best epoch's `keep` is returned. Stops after `patience` epochs without a better
/// validation loss, and fails when the loss is not finite.
fn epochs<S, K>(
    cfg: &RnnConfig,
    train_ends: &[usize],
    mut state: S,
    mut step: impl FnMut(&mut S, &[usize]) -> Result<(), ForecastFailure>,
    mut validate: impl FnMut(&mut S) -> Result<Vec<f32>, ForecastFailure>,
    keep: impl Fn(&S) -> K,
    vt: &[f32],
) -> Result<(K, Epochs), ForecastFailure> {
    let name = cfg.cell.name();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut best: Option<(f64, K, Vec<f32>)> = None;
    let mut val_loss = Vec::new();
    let mut best_epoch = 0;
    let mut order: Vec<usize> = train_ends.to_vec();
    for epoch in 1..=cfg.epochs {
        order.shuffle(&mut rng);
        for batch in order.chunks(cfg.batch) {
            step(&mut state, batch)?;
        }
        let pred = validate(&mut state)?;
        let mse = pred
            .iter()
            .zip(vt)
            .map(|(p, t)| f64::from(p - t).powi(2))
            .sum::<f64>()
            / vt.len().max(1) as f64;
        if !mse.is_finite() {
            return Err(ForecastFailure::new(
                name,
                format!("training diverged at epoch {epoch} (validation loss {mse})"),
            ));
        }
        tracing::debug!(epoch, val_mse = mse, "epoch");
        val_loss.push(mse);
        if best.as_ref().is_none_or(|b| mse < b.0) {
            best = Some((mse, keep(&state), pred));
            best_epoch = epoch;
        } else if epoch - best_epoch >= cfg.patience {
            break;
        }
    }
    let (_, kept, pred) = best.ok_or_else(|| ForecastFailure::new(name, "no epoch ran"))?;
    Ok((
        kept,
        Epochs {
            val_loss,
            best_epoch,
            pred,
        },
    ))
}

/// Trains a network on `y` (finite values, oldest first), whose first point has absolute index
/// `first_index`.
pub fn train(
    cfg: &RnnConfig,
    y: &[f64],
    first_index: usize,
) -> Result<TrainedRnn, ForecastFailure> {
    cfg.check()?;
    let name = cfg.cell.name();
    if y.len() < cfg.min_points() {
        return Err(ForecastFailure::new(
            name,
            format!(
                "needs at least {} points (window {} + horizon {} + 16 windows), got {}",
                cfg.min_points(),
                cfg.window,
                cfg.max_horizon,
                y.len()
            ),
        ));
    }
    if let Some(i) = y.iter().position(|v| !v.is_finite()) {
        return Err(ForecastFailure::new(
            name,
            format!("point {i} is not finite ({}); fill gaps first", y[i]),
        ));
    }
    let span = tracing::debug_span!("train_rnn", cell = name, points = y.len());
    let _e = span.enter();
    let scale = Scale::of(y);
    // Window ends (exclusive) with a full horizon after them.
    let all: Vec<usize> = (cfg.window..=y.len() - cfg.max_horizon).collect();
    let n_val =
        ((all.len() as f64 * cfg.validation_share).round() as usize).clamp(8, all.len() - 8);
    let (train_ends, val_ends) = all.split_at(all.len() - n_val);
    let train_ends = &train_ends[train_ends.len().saturating_sub(cfg.max_windows)..];
    let plain = Device::flex();
    let f = cfg.features();
    let val_x = inputs(cfg, scale, y, first_index, val_ends);
    let vt = targets(cfg, scale, y, val_ends);
    let batch_of = |ends: &[usize]| {
        (
            inputs(cfg, scale, y, first_index, ends),
            targets(cfg, scale, y, ends),
        )
    };
    // On the host (`rnn_train`): the same steps as burn's autodiff and Adam, several times
    // faster.
    let mut net = RnnNet::new(cfg, &plain);
    let start = HostTrainer::of(&net)
        .ok_or_else(|| ForecastFailure::new(name, "the network's weights cannot be read"))?;
    let (host, run) = epochs(
        cfg,
        train_ends,
        start,
        |h, ends| {
            let (x, t) = batch_of(ends);
            h.step(&x, &t, ends.len(), cfg.learning_rate as f32)
                .map(|_| ())
                .ok_or_else(|| ForecastFailure::new(name, "a training batch of the wrong size"))
        },
        |h| {
            let mut pred = Vec::with_capacity(vt.len());
            let per = cfg.window * f;
            for chunk in val_x.chunks(per * VALIDATION_BATCH) {
                pred.extend(h.outputs(chunk, chunk.len() / per));
            }
            Ok(pred)
        },
        |h| h.weights(),
        &vt,
    )?;
    host.write(&mut net, &plain);
    let Epochs {
        val_loss,
        best_epoch,
        pred,
    } = run;
    let h = cfg.max_horizon;
    let errors = (0..h)
        .map(|s| {
            val_ends
                .iter()
                .enumerate()
                .map(|(k, &end)| y[end + s] - (y[end - 1] + f64::from(pred[k * h + s]) * scale.std))
                .collect()
        })
        .collect();
    Ok(TrainedRnn {
        config: cfg.clone(),
        scale,
        host: net.host(),
        net,
        errors,
        val_loss,
        best_epoch,
        train_windows: train_ends.len(),
    })
}

impl TrainedRnn {
    /// The next `horizon` values after `history` (at least a window of it), whose last point has
    /// absolute index `last_index`.
    pub fn forecast(
        &self,
        history: &[f64],
        last_index: usize,
        horizon: usize,
    ) -> Result<Vec<f64>, ForecastFailure> {
        let cfg = &self.config;
        let name = cfg.cell.name();
        if horizon > cfg.max_horizon {
            return Err(ForecastFailure::new(
                name,
                format!(
                    "trained for up to {} steps ahead, asked for {horizon}",
                    cfg.max_horizon
                ),
            ));
        }
        if history.len() < cfg.window {
            return Err(ForecastFailure::new(
                name,
                format!(
                    "needs the last {} points, got {}",
                    cfg.window,
                    history.len()
                ),
            ));
        }
        if let Some(i) = history.iter().position(|v| !v.is_finite()) {
            return Err(ForecastFailure::new(
                name,
                format!("point {i} of the history is not finite"),
            ));
        }
        let n = history.len();
        let first_index = (last_index + 1).saturating_sub(n);
        let window = inputs(cfg, self.scale, history, first_index, &[n]);
        // The host kernel when the weights have its layout (always, for a network of this
        // module), else burn's modules: the same arithmetic.
        let out = match &self.host {
            Some(host) if host.inputs() == cfg.features() => host.forward(&window),
            _ => {
                let x = tensor3(window, [1, cfg.window, cfg.features()], &self.device());
                to_vec(self.net.forward(x))?
            }
        };
        let last = history[n - 1];
        Ok(out[..horizon]
            .iter()
            .map(|d| last + f64::from(*d) * self.scale.std)
            .collect())
    }

    fn device(&self) -> Device {
        Device::flex()
    }
}

/// An LSTM or GRU forecaster (`RnnConfig::cell`).
#[derive(Debug, Clone, Default)]
pub struct Rnn {
    /// Its settings.
    pub config: RnnConfig,
}

/// A fitted recurrent forecaster: the network and the end of its training series.
pub struct FittedRnn {
    /// The trained network.
    pub trained: TrainedRnn,
    /// The last `window` training points.
    pub tail: Vec<f64>,
    /// Training points.
    pub points: usize,
}

impl Forecaster for Rnn {
    fn name(&self) -> String {
        self.config.cell.name().into()
    }

    fn fit(&self, y: &[f64]) -> Result<Box<dyn FittedForecaster>, ForecastFailure> {
        let trained = train(&self.config, y, 0)?;
        Ok(Box::new(FittedRnn {
            tail: y[y.len() - self.config.window..].to_vec(),
            points: y.len(),
            trained,
        }))
    }
}

impl FittedForecaster for FittedRnn {
    fn predict(
        &self,
        horizon: usize,
        quantiles: &[f64],
    ) -> Result<ForecastOutput, ForecastFailure> {
        let name = self.trained.config.cell.name();
        check_request(name, &self.trained.errors, horizon, quantiles)?;
        let point = self
            .trained
            .forecast(&self.tail, self.points - 1, horizon)?;
        Ok(with_quantiles(point, &self.trained.errors, quantiles))
    }

    fn predict_after(
        &self,
        history: &[f64],
        advance: usize,
        horizon: usize,
        quantiles: &[f64],
    ) -> Option<Result<ForecastOutput, ForecastFailure>> {
        let name = self.trained.config.cell.name();
        Some(
            check_request(name, &self.trained.errors, horizon, quantiles)
                .and_then(|()| {
                    self.trained
                        .forecast(history, self.points - 1 + advance, horizon)
                })
                .map(|point| with_quantiles(point, &self.trained.errors, quantiles)),
        )
    }
}
