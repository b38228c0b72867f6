//! The tract runtime of `onnx:PATH` models (the `onnx` feature).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use graphscale_core::{FittedForecaster, ForecastFailure, ForecastOutput, Forecaster};
use tract_onnx::prelude::*;

use super::{MAX_FILE_BYTES, MAX_OUTPUT, MAX_RUNS, MAX_WINDOW, PREFIX};

/// A loaded ONNX forecaster.
#[derive(Clone)]
pub struct OnnxForecaster {
    inner: Arc<Loaded>,
}

struct Loaded {
    name: String,
    path: PathBuf,
    plan: Arc<TypedRunnableModel>,
    window: usize,
    horizon: usize,
}

impl std::fmt::Debug for OnnxForecaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxForecaster")
            .field("path", &self.inner.path)
            .field("window", &self.inner.window)
            .field("horizon", &self.inner.horizon)
            .finish()
    }
}

impl OnnxForecaster {
    /// Loads and checks the ONNX file at `path`. Errors name the file and what is wrong.
    pub fn load(path: &Path) -> Result<Self, ForecastFailure> {
        let name = format!("{PREFIX}{}", path.display());
        let fail = |reason: String| ForecastFailure::new(name.clone(), reason);
        if path.as_os_str().is_empty() {
            return Err(fail("no file given: write onnx:PATH".into()));
        }
        let bytes = graphscale_fsio::read_at_most(path, MAX_FILE_BYTES).map_err(|e| {
            fail(format!(
                "{}: cannot read (at most {MAX_FILE_BYTES} bytes): {e}",
                path.display()
            ))
        })?;
        // tract is not hardened against malformed files (it indexes by names it has not
        // checked): a panic inside it is contained and reported as this file's error.
        let (plan, window, horizon) = super::contain::contained(|| compile(&bytes, path, &fail))
            .unwrap_or_else(|panic| {
                Err(fail(format!(
                    "{}: not a model tract can load (it failed inside: {panic})",
                    path.display()
                )))
            })?;
        Ok(OnnxForecaster {
            inner: Arc::new(Loaded {
                name,
                path: path.to_path_buf(),
                plan,
                window,
                horizon,
            }),
        })
    }

    /// Points the model reads (`W`).
    pub fn window(&self) -> usize {
        self.inner.window
    }

    /// Steps one run forecasts (`H`).
    pub fn horizon(&self) -> usize {
        self.inner.horizon
    }

    /// The model's output for one window of exactly [`Self::window`] values.
    pub fn run(&self, window: &[f64]) -> Result<Vec<f64>, ForecastFailure> {
        let l = &self.inner;
        let fail = |reason: String| ForecastFailure::new(l.name.clone(), reason);
        if window.len() != l.window {
            return Err(fail(format!(
                "needs a window of {} values, got {}",
                l.window,
                window.len()
            )));
        }
        if let Some(i) = window.iter().position(|v| !v.is_finite()) {
            return Err(fail(format!("input value {i} is not finite")));
        }
        let values: Vec<f32> = window.iter().map(|&v| v as f32).collect();
        let input = Tensor::from_shape(&[1, l.window], &values)
            .map_err(|e| fail(format!("input: {e:#}")))?;
        let out = super::contain::contained(|| l.plan.run(tvec!(input.into())))
            .map_err(|panic| {
                fail(format!(
                    "{}: run failed inside tract: {panic}",
                    l.path.display()
                ))
            })?
            .map_err(|e| fail(format!("{}: run failed: {e:#}", l.path.display())))?;
        let out = out
            .first()
            .ok_or_else(|| fail("the model gave no output".into()))?;
        let plain = out
            .try_as_plain_ram()
            .map_err(|e| fail(format!("output: {e:#}")))?;
        let view = plain
            .as_slice::<f32>()
            .map_err(|e| fail(format!("output: {e:#}")))?;
        if view.len() != l.horizon {
            return Err(fail(format!(
                "output has {} values, expected {}",
                view.len(),
                l.horizon
            )));
        }
        view.iter()
            .enumerate()
            .map(|(i, &v)| {
                if v.is_finite() {
                    Ok(f64::from(v))
                } else {
                    Err(fail(format!("output {i} is not finite ({v})")))
                }
            })
            .collect()
    }

    /// `horizon` steps after `history` (at least [`Self::window`] points, oldest first),
    /// recursively where `horizon` is longer than one run's output.
    pub fn forecast(&self, history: &[f64], horizon: usize) -> Result<Vec<f64>, ForecastFailure> {
        let l = &self.inner;
        if history.len() < l.window {
            return Err(ForecastFailure::new(
                l.name.clone(),
                format!(
                    "needs at least {} points (its input window), has {}",
                    l.window,
                    history.len()
                ),
            ));
        }
        let runs = horizon.div_ceil(l.horizon);
        if runs > MAX_RUNS {
            return Err(ForecastFailure::new(
                l.name.clone(),
                format!("horizon {horizon} needs {runs} runs of the model, more than {MAX_RUNS}"),
            ));
        }
        let mut tail = history[history.len() - l.window..].to_vec();
        let mut out = Vec::with_capacity(horizon);
        while out.len() < horizon {
            let next = self.run(&tail)?;
            out.extend_from_slice(&next);
            tail.extend_from_slice(&next);
            tail.drain(..tail.len() - l.window);
        }
        out.truncate(horizon);
        Ok(out)
    }
}

struct FittedOnnx {
    model: OnnxForecaster,
    tail: Vec<f64>,
}

impl Forecaster for OnnxForecaster {
    fn name(&self) -> String {
        self.inner.name.clone()
    }

    fn fit(&self, y: &[f64]) -> Result<Box<dyn FittedForecaster>, ForecastFailure> {
        let w = self.inner.window;
        if y.len() < w {
            return Err(ForecastFailure::new(
                self.name(),
                format!(
                    "needs at least {w} points (its input window), has {}",
                    y.len()
                ),
            ));
        }
        if let Some(i) = y[y.len() - w..].iter().position(|v| !v.is_finite()) {
            return Err(ForecastFailure::new(
                self.name(),
                format!("point {} of the series is not finite", y.len() - w + i),
            ));
        }
        Ok(Box::new(FittedOnnx {
            model: self.clone(),
            tail: y[y.len() - w..].to_vec(),
        }))
    }
}

impl FittedForecaster for FittedOnnx {
    fn predict(&self, horizon: usize, q: &[f64]) -> Result<ForecastOutput, ForecastFailure> {
        let point = self.model.forecast(&self.tail, horizon)?;
        crate::models::points_only(&self.model.name(), point, q)
    }

    fn predict_after(
        &self,
        history: &[f64],
        _advance: usize,
        horizon: usize,
        q: &[f64],
    ) -> Option<Result<ForecastOutput, ForecastFailure>> {
        // The weights do not depend on where the series ends: forecast from the newest data.
        Some(
            self.model
                .forecast(history, horizon)
                .and_then(|point| crate::models::points_only(&self.model.name(), point, q)),
        )
    }
}

/// Parses, checks and optimises the model in `bytes` (from `path`): its plan, `W` and `H`.
fn compile(
    bytes: &[u8],
    path: &Path,
    fail: &dyn Fn(String) -> ForecastFailure,
) -> Result<(Arc<TypedRunnableModel>, usize, usize), ForecastFailure> {
    let bad = |e: TractError| fail(format!("{}: {e:#}", path.display()));
    let model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .map_err(bad)?;
    let (ins, outs) = (model.inputs.len(), model.outputs.len());
    if ins != 1 || outs != 1 {
        return Err(fail(format!(
            "{}: the model must have one input and one output, it has {ins} and {outs}",
            path.display()
        )));
    }
    let typed = model.into_optimized().map_err(bad)?;
    let shape = |fact: &TypedFact, what: &str, max: usize| -> Result<usize, ForecastFailure> {
        if fact.datum_type != f32::datum_type() {
            return Err(fail(format!(
                "{}: the {what} must be float32, it is {:?}",
                path.display(),
                fact.datum_type
            )));
        }
        match fact.shape.as_concrete() {
            Some(&[1, n]) if (1..=max).contains(&n) => Ok(n),
            Some(dims) => Err(fail(format!(
                "{}: the {what} must have shape [1, N] with 1 <= N <= {max}, it has {dims:?}",
                path.display()
            ))),
            None => Err(fail(format!(
                "{}: the {what} must have a fixed shape [1, N], it has {:?} (export without dynamic axes)",
                path.display(),
                fact.shape
            ))),
        }
    };
    let window = shape(typed.input_fact(0).map_err(bad)?, "input", MAX_WINDOW)?;
    let horizon = shape(typed.output_fact(0).map_err(bad)?, "output", MAX_OUTPUT)?;
    let plan = typed.into_runnable().map_err(bad)?;
    Ok((plan, window, horizon))
}
