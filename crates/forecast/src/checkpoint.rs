//! Fitted forecasters on disk: one safetensors file whose header metadata holds the JSON
//! manifest (`__metadata__["manifest"]`), with a readable copy of the manifest beside it
//! (`<file>.json`).
//!
//! Tensors (f64): `series` (the training series, `[n]`) and `calibration_errors` (the signed
//! split-conformal errors per step ahead, `[max_horizon, origins]`). The classical models have no
//! learned weights worth storing apart from their data: loading refits the model on `series`,
//! which is deterministic, and the manifest says so (`refit_on_load`). Neural models (the
//! `graphscale-nn` crate) store their weights as f32 tensors `weights.<name>` in the same file, with
//! their hyper-parameters (`hyper`) and training summary (`training`) in the manifest.
//!
//! Loading checks the format name, the format version, the model kind and every tensor's
//! shape, and says which one is wrong. Writes go to a temporary file that is renamed, so an
//! existing checkpoint is never left half-written.

use graphscale_fsio::Existing;
use std::path::{Path, PathBuf};

use graphscale_core::FittedForecaster;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::conformal::{from_parts, Conformal};
use crate::models::by_name_with_step;
use crate::ForecastError;

/// The format name in every manifest.
pub const FORMAT: &str = "graphscale-forecast";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Mean and standard deviation of the training series (kept for models that normalise).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub std: f64,
}

/// What a checkpoint says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// Model kind: `persistence`, `seasonal-naive`, `ets`, `mstl`.
    pub kind: String,
    /// Season length in steps.
    pub season: usize,
    /// Longest calibrated horizon, steps.
    pub max_horizon: usize,
    /// Calibration cut points.
    pub calibration_origins: usize,
    /// Step of the series, seconds.
    pub step_s: u64,
    /// Unix time of the first training point.
    pub start_unix: f64,
    /// Training points.
    pub points: usize,
    /// Normalisation statistics of the training series.
    pub normalization: Normalization,
    /// Mean absolute calibration error per step ahead (a validation metric of the fit).
    pub calibration_mae: Vec<f64>,
    /// Whether loading refits the model on the stored series.
    pub refit_on_load: bool,
    /// Hyper-parameters of models that have them (neural networks); null otherwise.
    #[serde(default)]
    pub hyper: serde_json::Value,
    /// How training went (epochs, validation loss, normalisation of what the network saw), for
    /// models that train; null otherwise.
    #[serde(default)]
    pub training: serde_json::Value,
    /// The graphscale version that wrote it.
    pub graphscale_version: String,
}

/// A saved model.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The manifest.
    pub manifest: Manifest,
    /// The training series.
    pub series: Vec<f64>,
    /// Calibration errors per step ahead.
    pub calibration_errors: Vec<Vec<f64>>,
    /// Learned weights (f32), stored as tensors `weights.<name>`; empty for classical models.
    pub weights: Vec<Weight>,
}

/// One learned tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Weight {
    /// Its name inside the model (e.g. `head.weight`).
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub values: Vec<f32>,
}

/// The model kinds this crate restores by refitting.
pub fn classical_kind(kind: &str) -> bool {
    by_name_with_step(kind, 24, 60).is_ok() || kind == "prophet"
}

impl Checkpoint {
    /// Fits `kind` on `series` with conformal calibration up to `max_horizon` steps.
    pub fn fit(
        kind: &str,
        season: usize,
        series: &[f64],
        step_s: u64,
        start_unix: f64,
        max_horizon: usize,
    ) -> Result<(Self, Box<dyn FittedForecaster>), ForecastError> {
        let model = Conformal::new(by_name_with_step(kind, season, step_s)?, max_horizon);
        let (fitted, errors) = model.fit_with_errors(series)?;
        let n = series.len() as f64;
        let mean = series.iter().sum::<f64>() / n;
        let std = (series.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        let manifest = Manifest {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            kind: by_name_with_step(kind, season, step_s)?.name(),
            season,
            max_horizon,
            calibration_origins: model.origins,
            step_s,
            start_unix,
            points: series.len(),
            normalization: Normalization { mean, std },
            calibration_mae: errors
                .iter()
                .map(|e| e.iter().map(|x| x.abs()).sum::<f64>() / e.len().max(1) as f64)
                .collect(),
            refit_on_load: true,
            hyper: serde_json::Value::Null,
            training: serde_json::Value::Null,
            graphscale_version: env!("CARGO_PKG_VERSION").into(),
        };
        Ok((
            Checkpoint {
                manifest,
                series: series.to_vec(),
                calibration_errors: errors,
                weights: Vec::new(),
            },
            fitted,
        ))
    }

    /// Unix time of the step after the last training point.
    pub fn next_unix(&self) -> f64 {
        self.manifest.start_unix + (self.manifest.points as f64) * self.manifest.step_s as f64
    }

    /// Restores the fitted model.
    pub fn restore(&self) -> Result<Box<dyn FittedForecaster>, ForecastError> {
        let inner = by_name_with_step(
            &self.manifest.kind,
            self.manifest.season,
            self.manifest.step_s,
        )?
        .fit(&self.series)?;
        Ok(from_parts(
            self.manifest.kind.clone(),
            inner,
            self.calibration_errors.clone(),
        ))
    }

    /// Writes `path` (and `path.json`) atomically, replacing them ([`Checkpoint::save_with`]).
    pub fn save(&self, path: &Path) -> Result<(), ForecastError> {
        self.save_with(path, Existing::Replace)
    }

    /// Writes `path` (and `path.json`) atomically; with [`Existing::Keep`], nothing is written
    /// when either exists.
    pub fn save_with(&self, path: &Path, existing: Existing) -> Result<(), ForecastError> {
        graphscale_fsio::ensure_absent([path, json_path(path).as_path()], existing)?;
        let err = |reason: String| ForecastError::Checkpoint {
            path: path.display().to_string(),
            reason,
        };
        let bytes = |v: &[f64]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let series = bytes(&self.series);
        let k = self.calibration_errors.first().map_or(0, Vec::len);
        if self.calibration_errors.iter().any(|e| e.len() != k) {
            return Err(err(
                "calibration errors must have the same count for every step".into(),
            ));
        }
        let errors = bytes(&self.calibration_errors.concat());
        let manifest =
            serde_json::to_string_pretty(&self.manifest).map_err(|e| err(e.to_string()))?;
        let weight_bytes: Vec<Vec<u8>> = self
            .weights
            .iter()
            .map(|w| w.values.iter().flat_map(|x| x.to_le_bytes()).collect())
            .collect();
        let weight_names: Vec<String> = self
            .weights
            .iter()
            .map(|w| format!("weights.{}", w.name))
            .collect();
        let mut tensors = vec![
            (
                "series",
                TensorView::new(Dtype::F64, vec![self.series.len()], &series)
                    .map_err(|e| err(e.to_string()))?,
            ),
            (
                "calibration_errors",
                TensorView::new(Dtype::F64, vec![self.calibration_errors.len(), k], &errors)
                    .map_err(|e| err(e.to_string()))?,
            ),
        ];
        for ((w, bytes), name) in self.weights.iter().zip(&weight_bytes).zip(&weight_names) {
            if w.shape.iter().product::<usize>() != w.values.len() {
                return Err(err(format!(
                    "weight `{}`: shape {:?} does not hold {} values",
                    w.name,
                    w.shape,
                    w.values.len()
                )));
            }
            tensors.push((
                name.as_str(),
                TensorView::new(Dtype::F32, w.shape.clone(), bytes)
                    .map_err(|e| err(e.to_string()))?,
            ));
        }
        let meta = [("manifest".to_string(), manifest.clone())]
            .into_iter()
            .collect();
        let data =
            safetensors::tensor::serialize(tensors, Some(meta)).map_err(|e| err(e.to_string()))?;
        graphscale_fsio::write(path, &data, existing)?;
        graphscale_fsio::write(&json_path(path), manifest.as_bytes(), existing)?;
        Ok(())
    }

    /// Reads and checks a checkpoint of a classical model (see [`classical_kind`]).
    pub fn load(path: &Path) -> Result<Self, ForecastError> {
        Self::load_with(path, &classical_kind)
    }

    /// Reads and checks a checkpoint whose kind `known` accepts.
    pub fn load_with(path: &Path, known: &dyn Fn(&str) -> bool) -> Result<Self, ForecastError> {
        let err = |reason: String| ForecastError::Checkpoint {
            path: path.display().to_string(),
            reason,
        };
        let data = graphscale_fsio::read_at_most(path, graphscale_fsio::MAX_CHECKPOINT_BYTES)
            .map_err(|e| err(e.to_string()))?;
        let st = SafeTensors::deserialize(&data)
            .map_err(|e| err(format!("not a safetensors file: {e}")))?;
        let (_, meta) = SafeTensors::read_metadata(&data)
            .map_err(|e| err(format!("not a safetensors file: {e}")))?;
        let text = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("manifest"))
            .ok_or_else(|| {
                err(
                    "no graphscale manifest in the header: not a graphscale forecaster checkpoint"
                        .into(),
                )
            })?;
        let raw: serde_json::Value =
            serde_json::from_str(text).map_err(|e| err(format!("manifest: {e}")))?;
        if raw.get("format").and_then(|v| v.as_str()) != Some(FORMAT) {
            return Err(err(format!(
                "manifest format is {}, not `{FORMAT}`",
                raw.get("format").unwrap_or(&serde_json::Value::Null)
            )));
        }
        let version = raw
            .get("format_version")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        if version != FORMAT_VERSION as u64 {
            return Err(err(format!(
                "format version {version}; this build reads version {FORMAT_VERSION}"
            )));
        }
        let manifest: Manifest =
            serde_json::from_value(raw).map_err(|e| err(format!("manifest: {e}")))?;
        if !known(&manifest.kind) {
            return Err(err(format!(
                "model kind `{}` is not one this build can restore",
                manifest.kind
            )));
        }
        let read = |name: &str, shape: &[usize]| -> Result<Vec<f64>, ForecastError> {
            let t = st
                .tensor(name)
                .map_err(|e| err(format!("tensor `{name}`: {e}")))?;
            if t.dtype() != Dtype::F64 || t.shape() != shape {
                return Err(err(format!(
                    "tensor `{name}`: expected f64 {shape:?}, found {:?} {:?}",
                    t.dtype(),
                    t.shape()
                )));
            }
            Ok(t.data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect())
        };
        let series = read("series", &[manifest.points])?;
        let errs_shape = st
            .tensor("calibration_errors")
            .map_err(|e| err(format!("tensor `calibration_errors`: {e}")))?
            .shape()
            .to_vec();
        if errs_shape.len() != 2 || errs_shape[0] != manifest.max_horizon {
            return Err(err(format!(
                "tensor `calibration_errors`: expected [{}, origins], found {errs_shape:?}",
                manifest.max_horizon
            )));
        }
        let flat = read("calibration_errors", &errs_shape)?;
        let k = errs_shape[1];
        let calibration_errors = (0..errs_shape[0])
            .map(|h| flat[h * k..(h + 1) * k].to_vec())
            .collect();
        let weights = f32_tensors(&st, "weights.").map_err(err)?;
        Ok(Checkpoint {
            manifest,
            series,
            calibration_errors,
            weights,
        })
    }
}

/// The f32 tensors of `st` whose names start with `prefix`, named without it and sorted by
/// name; any other dtype under the prefix is an error naming the tensor.
pub fn f32_tensors(st: &SafeTensors, prefix: &str) -> Result<Vec<Weight>, String> {
    let mut out = Vec::new();
    for name in st.names() {
        let Some(short) = name.strip_prefix(prefix) else {
            continue;
        };
        let t = st
            .tensor(name)
            .map_err(|e| format!("tensor `{name}`: {e}"))?;
        if t.dtype() != Dtype::F32 {
            return Err(format!(
                "tensor `{name}`: expected f32, found {:?}",
                t.dtype()
            ));
        }
        out.push(Weight {
            name: short.to_string(),
            shape: t.shape().to_vec(),
            values: t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap_or([0; 4])))
                .collect(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn json_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".json");
    PathBuf::from(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series() -> Vec<f64> {
        (0..400)
            .map(|i| {
                100.0 + 20.0 * (std::f64::consts::TAU * i as f64 / 24.0).sin() + (i % 5) as f64
            })
            .collect()
    }

    #[test]
    fn round_trip_predicts_the_same() {
        let dir = std::env::temp_dir().join(format!("gs-ckpt-{}", std::process::id()));
        let path = dir.join("m.safetensors");
        let (ck, fitted) = Checkpoint::fit("mstl", 24, &series(), 300, 1_000_000.0, 6).unwrap();
        ck.save(&path).unwrap();
        let back = Checkpoint::load(&path).unwrap();
        assert_eq!(back, ck);
        let a = fitted.predict(6, &[0.05, 0.95]).unwrap();
        let b = back.restore().unwrap().predict(6, &[0.05, 0.95]).unwrap();
        assert_eq!(a, b, "bit-exact after a round trip");
        assert_eq!(back.next_unix(), 1_000_000.0 + 400.0 * 300.0);
        assert!(std::fs::read_to_string(dir.join("m.safetensors.json"))
            .unwrap()
            .contains("\"kind\": \"mstl\""));
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary files left: {names:?}");
    }

    #[test]
    fn another_version_kind_or_file_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("gs-ckpt-bad-{}", std::process::id()));
        let path = dir.join("m.safetensors");
        let (mut ck, _) = Checkpoint::fit("persistence", 24, &series(), 60, 0.0, 3).unwrap();
        ck.manifest.format_version = 2;
        ck.save(&path).unwrap();
        let e = Checkpoint::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("m.safetensors")
                && e.contains("format version 2; this build reads version 1"),
            "{e}"
        );
        ck.manifest.format_version = 1;
        ck.manifest.kind = "arima".into();
        ck.save(&path).unwrap();
        let e = Checkpoint::load(&path).unwrap_err().to_string();
        assert!(e.contains("model kind `arima`"), "{e}");
        std::fs::write(&path, b"not a checkpoint").unwrap();
        assert!(Checkpoint::load(&path)
            .unwrap_err()
            .to_string()
            .contains("not a safetensors file"));
        let other = safetensors::tensor::serialize(
            vec![(
                "x",
                TensorView::new(Dtype::F64, vec![1], &[0u8; 8]).unwrap(),
            )],
            None,
        )
        .unwrap();
        std::fs::write(&path, other).unwrap();
        assert!(Checkpoint::load(&path)
            .unwrap_err()
            .to_string()
            .contains("no graphscale manifest"));
        assert!(Checkpoint::load(&dir.join("missing.safetensors")).is_err());
    }

    fn mutated_checkpoint_case(
        base: &std::sync::OnceLock<Vec<u8>>,
        kind: &str,
        points: usize,
        edits: Vec<(proptest::sample::Index, u8)>,
        cut: Option<proptest::sample::Index>,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        let base = base.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("m.safetensors");
            let (ck, _) = Checkpoint::fit(kind, 24, &series()[..points], 60, 0.0, 3).unwrap();
            ck.save(&p).unwrap();
            std::fs::read(&p).unwrap()
        });
        let mut b = base.clone();
        for (i, byte) in edits {
            let at = i.index(b.len());
            b[at] = byte;
        }
        if let Some(c) = cut {
            b.truncate(c.index(b.len()));
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.safetensors");
        std::fs::write(&p, &b).unwrap();
        if let Ok(ck) = Checkpoint::load(&p) {
            if let Ok(f) = ck.restore() {
                if let Ok(out) = f.predict(3, &[0.1, 0.9]) {
                    proptest::prop_assert!(
                        out.point.iter().all(|x| x.is_finite()),
                        "{:?}",
                        out.point
                    );
                }
            }
        }
        Ok(())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64), ..Default::default() })]
        /// A forecaster checkpoint with bytes changed or cut loads and forecasts finite numbers,
        /// or is refused; never a panic. ETS refits on restore: on four seasons (96 points) rather
        /// than the 400 of the other tests, so that a case costs about 2 ms and the long run
        /// reaches a million cases (docs/reliability.md); the loader and refit are the same.
        #[test]
        fn mutated_checkpoints_load_or_are_refused(
            edits in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()), 1..6),
            cut in proptest::option::of(proptest::prelude::any::<proptest::sample::Index>()),
        ) {
            static BASE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
            mutated_checkpoint_case(&BASE, "ets", 96, edits, cut)?;
        }

        /// The same with a model whose refit is cheap, so that the loader (manifest, tensors,
        /// checks) runs a million cases in minutes.
        #[test]
        fn mutated_cheap_checkpoints_load_or_are_refused(
            edits in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()), 1..6),
            cut in proptest::option::of(proptest::prelude::any::<proptest::sample::Index>()),
        ) {
            static BASE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
            mutated_checkpoint_case(&BASE, "seasonal-naive", 400, edits, cut)?;
        }
    }
}
