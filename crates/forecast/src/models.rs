//! Point forecasters. Quantiles come from [`crate::conformal`], so every model gets
//! calibrated intervals the same way; a bare model answers quantile requests with an error.

use crate::prophet_native::NativeOptimizer;
use augurs::ets::{trend::AutoETSTrendModel, AutoETS};
use augurs::mstl::MSTLModel;
use augurs::{Fit, Predict};
use graphscale_core::{FittedForecaster, ForecastFailure, ForecastOutput, Forecaster};

fn check(name: &str, y: &[f64], min: usize) -> Result<(), ForecastFailure> {
    if y.len() < min {
        return Err(ForecastFailure::new(
            name,
            format!("needs at least {min} points, got {}", y.len()),
        ));
    }
    if let Some(i) = y.iter().position(|v| !v.is_finite()) {
        return Err(ForecastFailure::new(
            name,
            format!("point {i} is not finite ({}); fill gaps first", y[i]),
        ));
    }
    Ok(())
}

pub(crate) fn points_only(
    name: &str,
    point: Vec<f64>,
    quantiles: &[f64],
) -> Result<ForecastOutput, ForecastFailure> {
    if !quantiles.is_empty() {
        return Err(ForecastFailure::new(
            name,
            "quantiles need calibration: wrap the model in Conformal",
        ));
    }
    Ok(ForecastOutput {
        point,
        quantiles: Vec::new(),
    })
}

/// The last value, repeated.
#[derive(Debug, Clone, Copy, Default)]
pub struct Persistence;

struct FittedPersistence(f64);

impl Forecaster for Persistence {
    fn name(&self) -> String {
        "persistence".into()
    }
    fn fit(&self, y: &[f64]) -> Result<Box<dyn FittedForecaster>, ForecastFailure> {
        check("persistence", y, 1)?;
        Ok(Box::new(FittedPersistence(y[y.len() - 1])))
    }
}

impl FittedForecaster for FittedPersistence {
    fn predict(&self, horizon: usize, q: &[f64]) -> Result<ForecastOutput, ForecastFailure> {
        points_only("persistence", vec![self.0; horizon], q)
    }
}

/// Local linear trend: the least-squares line through the last `window` points, extended
/// (never below zero) for as many steps as it was fitted on, then held level. It follows a ramp
/// at once, at the price of noise: a short-range model for control loops. A line through
/// `window` noisy points says nothing about the slope beyond that span, and extending it
/// further multiplies the noise of its slope by the horizon (with Train Ticket's 160 s start-ups
/// the planner looks 12 steps ahead of a 4-point fit and over-provisioned by half).
#[derive(Debug, Clone, Copy)]
pub struct LocalTrend {
    /// Points the line is fitted on (>= 2); also the farthest step the slope is extended to.
    pub window: usize,
}

struct FittedTrend {
    level: f64,
    slope: f64,
    reach: usize,
}

impl Forecaster for LocalTrend {
    fn name(&self) -> String {
        "trend".into()
    }
    fn fit(&self, y: &[f64]) -> Result<Box<dyn FittedForecaster>, ForecastFailure> {
        let w = self.window.max(2);
        check("trend", y, 2)?;
        let tail = &y[y.len().saturating_sub(w)..];
        let n = tail.len() as f64;
        let xm = (n - 1.0) / 2.0;
        let ym = tail.iter().sum::<f64>() / n;
        let (mut sxy, mut sxx) = (0.0, 0.0);
        for (i, v) in tail.iter().enumerate() {
            let dx = i as f64 - xm;
            sxy += dx * (v - ym);
            sxx += dx * dx;
        }
        let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
        Ok(Box::new(FittedTrend {
            level: ym + slope * (n - 1.0 - xm),
            slope,
            reach: tail.len(),
        }))
    }
}

impl FittedForecaster for FittedTrend {
    fn predict(&self, horizon: usize, q: &[f64]) -> Result<ForecastOutput, ForecastFailure> {
        let point = (1..=horizon)
            .map(|h| (self.level + self.slope * h.min(self.reach) as f64).max(0.0))
            .collect();
        points_only("trend", point, q)
    }
}

/// The value one season earlier.
#[derive(Debug, Clone, Copy)]
pub struct SeasonalNaive {
    /// Season length in steps (>= 1).
    pub period: usize,
}

struct FittedSeasonalNaive(Vec<f64>);

impl Forecaster for SeasonalNaive {
    fn name(&self) -> String {
        "seasonal-naive".into()
    }
    fn fit(&self, y: &[f64]) -> Result<Box<dyn FittedForecaster>, ForecastFailure> {
        if self.period == 0 {
            return Err(ForecastFailure::new(
                "seasonal-naive",
                "period must be >= 1",
            ));
        }
        check("seasonal-naive", y, self.period)?;
        Ok(Box::new(FittedSeasonalNaive(
            y[y.len() - self.period..].to_vec(),
        )))
    }
}

impl FittedForecaster for FittedSeasonalNaive {
    fn predict(&self, horizon: usize, q: &[f64]) -> Result<ForecastOutput, ForecastFailure> {
        let m = self.0.len();
        points_only(
            "seasonal-naive",
            (0..horizon).map(|h| self.0[h % m]).collect(),
            q,
        )
    }
}

/// AutoETS from augurs: error and trend (none, additive, damped) chosen by AICc.
///
/// augurs-ets 0.10 implements no seasonal ETS model (a seasonal candidate's initial state is
/// `unimplemented!`, `augurs-ets/src/model.rs:507`): with a season of 2 or 4 its search reached
/// that and panicked, found by the long checkpoint fuzz run of #19, and with any other season
/// its parameter check rejected every seasonal candidate first, so the fit was non-seasonal
/// anyway. So the search is over the non-seasonal models only; with a `period` of 2 to 24 the
/// damped and undamped trends both compete (as before), without one only the damped trend.
/// Seasons longer than 24 steps are refused; seasonality belongs to [`Mstl`].
#[derive(Debug, Clone, Copy)]
pub struct Ets {
    /// Season length in steps, or `None`.
    pub period: Option<usize>,
}

struct FittedEts(augurs::ets::FittedAutoETS);

impl Forecaster for Ets {
    fn name(&self) -> String {
        "ets".into()
    }
    fn fit(&self, y: &[f64]) -> Result<Box<dyn FittedForecaster>, ForecastFailure> {
        let err = |e: &dyn std::fmt::Display| ForecastFailure::new("ets", e.to_string());
        check("ets", y, 10)?;
        let model = match self.period.filter(|p| *p > 1) {
            Some(p) if p > 24 => {
                return Err(ForecastFailure::new(
                    "ets",
                    format!("season {p} is too long for ETS (<= 24): use mstl"),
                ))
            }
            // "ZZN": no seasonal candidate (see above); the same models as "ZZZ" fitted.
            Some(p) => AutoETS::new(p, "ZZN").map_err(|e| err(&e))?,
            None => AutoETS::non_seasonal().damped(true).map_err(|e| err(&e))?,
        };
        Ok(Box::new(FittedEts(model.fit(y).map_err(|e| err(&e))?)))
    }
}

impl FittedForecaster for FittedEts {
    fn predict(&self, horizon: usize, q: &[f64]) -> Result<ForecastOutput, ForecastFailure> {
        let f = self
            .0
            .predict(horizon, None)
            .map_err(|e| ForecastFailure::new("ets", e.to_string()))?;
        points_only("ets", f.point, q)
    }

    fn fitted_values(&self) -> Option<Vec<f64>> {
        self.0.predict_in_sample(None).ok().map(|f| f.point)
    }
}

/// MSTL from augurs: seasonal components for each period (STL), an AutoETS trend on the
/// seasonally adjusted series.
#[derive(Debug, Clone)]
pub struct Mstl {
    /// Season lengths in steps (each >= 2).
    pub periods: Vec<usize>,
}

struct FittedMstl(augurs::mstl::FittedMSTLModel);

impl Forecaster for Mstl {
    fn name(&self) -> String {
        "mstl".into()
    }
    fn fit(&self, y: &[f64]) -> Result<Box<dyn FittedForecaster>, ForecastFailure> {
        let err = |e: &dyn std::fmt::Display| ForecastFailure::new("mstl", e.to_string());
        if self.periods.is_empty() || self.periods.iter().any(|p| *p < 2) {
            return Err(ForecastFailure::new(
                "mstl",
                "needs at least one period >= 2",
            ));
        }
        let longest = self.periods.iter().copied().max().unwrap_or(2);
        check("mstl", y, 2 * longest + 1)?;
        let trend = AutoETS::non_seasonal().damped(true).map_err(|e| err(&e))?;
        let model = MSTLModel::new(self.periods.clone(), AutoETSTrendModel::from(trend));
        Ok(Box::new(FittedMstl(model.fit(y).map_err(|e| err(&e))?)))
    }
}

impl FittedForecaster for FittedMstl {
    fn predict(&self, horizon: usize, q: &[f64]) -> Result<ForecastOutput, ForecastFailure> {
        let f = self
            .0
            .predict(horizon, None)
            .map_err(|e| ForecastFailure::new("mstl", e.to_string()))?;
        points_only("mstl", f.point, q)
    }

    /// The decomposition's trend plus seasonal components: smooth, so that the remainder (what
    /// a residual model learns) is the part MSTL does not explain, not its trend model's
    /// one-step errors.
    fn fitted_values(&self) -> Option<Vec<f64>> {
        let fit = self.0.fit();
        let mut v: Vec<f64> = fit.trend().iter().map(|t| f64::from(*t)).collect();
        for component in fit.seasonal() {
            for (x, c) in v.iter_mut().zip(component) {
                *x += f64::from(*c);
            }
        }
        Some(v)
    }
}

/// Prophet from augurs. The series is placed on a time axis of `step_s` seconds per point;
/// Prophet picks its daily and weekly seasonalities from that axis. Its MAP fit is made by
/// `O`: [`NativeOptimizer`] (L-BFGS in Rust, the default, model `prophet`) or, built with the
/// `prophet-stan` feature, augurs' Stan model compiled to WebAssembly (model `prophet-stan`).
#[derive(Debug, Clone)]
pub struct Prophet<O = NativeOptimizer> {
    /// Seconds per step.
    pub step_s: u64,
    /// The optimiser, built once and cloned per fit.
    optimizer: O,
    /// The model's name.
    name: &'static str,
}

impl Prophet {
    /// A Prophet model for steps of `step_s` seconds, fitted in Rust.
    pub fn new(step_s: u64) -> Self {
        Prophet {
            step_s,
            optimizer: NativeOptimizer::default(),
            name: "prophet",
        }
    }
}

#[cfg(feature = "prophet-stan")]
impl Prophet<augurs::prophet::wasmstan::WasmstanOptimizer> {
    /// A Prophet model for steps of `step_s` seconds, fitted by the Stan model (WebAssembly).
    pub fn stan(step_s: u64) -> Self {
        Prophet {
            step_s,
            optimizer: augurs::prophet::wasmstan::WasmstanOptimizer::new(),
            name: "prophet-stan",
        }
    }
}

struct FittedProphet<O> {
    model: augurs::prophet::Prophet<O>,
    n: usize,
    step_s: i64,
    name: &'static str,
}

impl<O> Forecaster for Prophet<O>
where
    O: augurs::prophet::Optimizer + Clone + Send + Sync + 'static,
{
    fn name(&self) -> String {
        self.name.into()
    }
    fn fit(&self, y: &[f64]) -> Result<Box<dyn FittedForecaster>, ForecastFailure> {
        use augurs::prophet::TrainingData;
        let name = self.name;
        let err = |e: &dyn std::fmt::Display| ForecastFailure::new(name, e.to_string());
        check(name, y, 3)?;
        if self.step_s == 0 {
            return Err(ForecastFailure::new(name, "step_s must be > 0"));
        }
        let step = self.step_s as i64;
        let ds: Vec<i64> = (0..y.len() as i64).map(|i| i * step).collect();
        let data = TrainingData::new(ds, y.to_vec()).map_err(|e| err(&e))?;
        let mut model = augurs::prophet::Prophet::new(Default::default(), self.optimizer.clone());
        model.fit(data, Default::default()).map_err(|e| err(&e))?;
        Ok(Box::new(FittedProphet {
            model,
            n: y.len(),
            step_s: step,
            name,
        }))
    }
}

impl<O> FittedForecaster for FittedProphet<O>
where
    O: augurs::prophet::Optimizer + Send + Sync,
{
    fn predict(&self, horizon: usize, q: &[f64]) -> Result<ForecastOutput, ForecastFailure> {
        use augurs::prophet::PredictionData;
        let ds: Vec<i64> = (0..horizon as i64)
            .map(|h| (self.n as i64 + h) * self.step_s)
            .collect();
        let p = self
            .model
            .predict(PredictionData::new(ds))
            .map_err(|e| ForecastFailure::new(self.name, e.to_string()))?;
        points_only(self.name, p.yhat.point, q)
    }

    fn fitted_values(&self) -> Option<Vec<f64>> {
        self.model.predict(None).ok().map(|p| p.yhat.point)
    }
}

/// A model by name: `persistence`, `seasonal-naive`, `ets`, `mstl`, `prophet` (it uses
/// `step_s`), `prophet-stan` when built with the `prophet-stan` feature, and `onnx:PATH` (the
/// ONNX file at `PATH`, [`crate::onnx`]); `period` is the season length in steps where the
/// model uses one.
pub fn by_name_with_step(
    name: &str,
    period: usize,
    step_s: u64,
) -> Result<Box<dyn Forecaster>, ForecastFailure> {
    if let Some(path) = crate::onnx::path_of(name) {
        return crate::onnx::load(path);
    }
    if name == "prophet" {
        return Ok(Box::new(Prophet::new(step_s)));
    }
    if name == "prophet-stan" {
        #[cfg(feature = "prophet-stan")]
        return Ok(Box::new(Prophet::stan(step_s)));
        #[cfg(not(feature = "prophet-stan"))]
        return Err(ForecastFailure::new(
            "prophet-stan",
            "this build has no Stan optimiser: build with `--features prophet-stan` (it adds wasmtime); `prophet` is the same model fitted in Rust",
        ));
    }
    by_name(name, period)
}

/// The names [`by_name_with_step`] accepts, besides `prophet-stan` (with the `prophet-stan`
/// feature) and `onnx:PATH` ([`crate::onnx`]).
pub const MODELS: [&str; 6] = [
    "persistence",
    "trend",
    "seasonal-naive",
    "ets",
    "mstl",
    "prophet",
];

/// A model by name: `persistence`, `seasonal-naive`, `ets`, `mstl`; `period` is the season
/// length in steps where the model uses one.
pub fn by_name(name: &str, period: usize) -> Result<Box<dyn Forecaster>, ForecastFailure> {
    Ok(match name {
        "persistence" => Box::new(Persistence),
        "trend" => Box::new(LocalTrend { window: 4 }),
        "seasonal-naive" | "snaive" => Box::new(SeasonalNaive { period }),
        "ets" => Box::new(Ets {
            period: (period <= 24 && period > 1).then_some(period),
        }),
        "mstl" => Box::new(Mstl {
            periods: vec![period],
        }),
        other => {
            return Err(ForecastFailure::new(
                other,
                format!("unknown model (known: {}, onnx:PATH)", MODELS.join(", ")),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baselines_match_hand_computed_answers() {
        let y = [3.0, 5.0, 7.0, 1.0, 2.0, 4.0];
        assert_eq!(
            Persistence.fit(&y).unwrap().predict(2, &[]).unwrap().point,
            vec![4.0, 4.0]
        );
        // Line through (0, 1), (1, 2), (2, 4): slope 1.5, fitted end 2 * 1.5 + 5/6 = 3.8333.
        let t = LocalTrend { window: 3 }.fit(&[9.0, 1.0, 2.0, 4.0]).unwrap();
        let p = t.predict(2, &[]).unwrap().point;
        assert!((p[0] - (23.0 / 6.0 + 1.5)).abs() < 1e-12, "{p:?}");
        assert!((p[1] - (23.0 / 6.0 + 3.0)).abs() < 1e-12, "{p:?}");
        // Extended for the 3 steps it was fitted on, then level.
        let p = t.predict(5, &[]).unwrap().point;
        assert!((p[2] - (23.0 / 6.0 + 4.5)).abs() < 1e-12, "{p:?}");
        assert_eq!((p[3], p[4]), (p[2], p[2]));
        let down = LocalTrend { window: 2 }.fit(&[10.0, 2.0]).unwrap();
        assert_eq!(down.predict(1, &[]).unwrap().point, vec![0.0]);
        let f = SeasonalNaive { period: 3 }.fit(&y).unwrap();
        assert_eq!(
            f.predict(5, &[]).unwrap().point,
            vec![1.0, 2.0, 4.0, 1.0, 2.0]
        );
        assert!(SeasonalNaive { period: 7 }.fit(&y).is_err());
        assert!(Persistence.fit(&[]).is_err());
        assert!(Persistence
            .fit(&[1.0, f64::NAN])
            .err()
            .unwrap()
            .to_string()
            .contains("point 1"));
        assert!(Persistence.fit(&y).unwrap().predict(1, &[0.9]).is_err());
    }

    #[test]
    fn ets_follows_a_trend_and_mstl_a_season() {
        // A clean line: a damped-trend ETS must continue it closely for a few steps.
        let y: Vec<f64> = (0..60).map(|i| 10.0 + 2.0 * i as f64).collect();
        let p = Ets { period: None }
            .fit(&y)
            .unwrap()
            .predict(3, &[])
            .unwrap()
            .point;
        for (h, v) in p.iter().enumerate() {
            let want = 10.0 + 2.0 * (60 + h) as f64;
            assert!((v - want).abs() < 2.0, "step {h}: {v} vs {want}");
        }
        // A pure season of 12 with a level: MSTL reproduces it.
        let y: Vec<f64> = (0..120)
            .map(|i| 50.0 + 10.0 * (std::f64::consts::TAU * i as f64 / 12.0).sin())
            .collect();
        let p = Mstl { periods: vec![12] }
            .fit(&y)
            .unwrap()
            .predict(12, &[])
            .unwrap()
            .point;
        for (h, v) in p.iter().enumerate() {
            let want = 50.0 + 10.0 * (std::f64::consts::TAU * (120 + h) as f64 / 12.0).sin();
            assert!((v - want).abs() < 1.5, "step {h}: {v} vs {want}");
        }
        // Seasons of 2 and 4 made augurs panic in a seasonal candidate it does not implement;
        // every season now fits the non-seasonal models, the same fit "ZZZ" gave where it did
        // not panic.
        let y: Vec<f64> = (0..96)
            .map(|i| 100.0 + 20.0 * (std::f64::consts::TAU * i as f64 / 24.0).sin())
            .collect();
        for period in 2..=24 {
            let ours = Ets {
                period: Some(period),
            }
            .fit(&y)
            .unwrap_or_else(|e| panic!("season {period}: {e}"))
            .predict(6, &[])
            .unwrap()
            .point;
            if period != 2 && period != 4 {
                let zzz = AutoETS::new(period, "ZZZ").unwrap().fit(&y).unwrap();
                let want = augurs::Predict::predict(&zzz, 6, None).unwrap().point;
                assert_eq!(ours, want, "season {period}");
            }
        }
        assert!(Ets { period: Some(288) }
            .fit(&y)
            .err()
            .unwrap()
            .to_string()
            .contains("use mstl"));
        assert!(by_name("arima", 12).is_err());
    }

    #[test]
    fn prophet_follows_a_trend_and_a_daily_season() {
        // Hourly points over 20 days: a rising line plus a daily wave.
        let y: Vec<f64> = (0..480)
            .map(|i| {
                100.0 + 0.5 * i as f64 + 20.0 * (std::f64::consts::TAU * i as f64 / 24.0).sin()
            })
            .collect();
        let p = Prophet::new(3600)
            .fit(&y)
            .unwrap()
            .predict(24, &[])
            .unwrap()
            .point;
        for (h, v) in p.iter().enumerate() {
            let t = (480 + h) as f64;
            let want = 100.0 + 0.5 * t + 20.0 * (std::f64::consts::TAU * t / 24.0).sin();
            assert!((v - want).abs() < 5.0, "step {h}: {v} vs {want}");
        }
    }

    #[cfg(not(feature = "prophet-stan"))]
    #[test]
    fn prophet_stan_says_how_to_get_it() {
        let e = by_name_with_step("prophet-stan", 24, 60)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("--features prophet-stan"), "{e}");
        assert!(by_name_with_step("prophet", 24, 60).is_ok());
    }
}
