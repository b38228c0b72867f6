//! Rolling-origin backtests.
//!
//! Every `every` steps from the first point with a full `window` of history, each model is
//! fitted on the last `window` points and forecasts `max(horizons)` steps. Intervals are split
//! conformal with a rolling calibration set: at an origin, the quantile `tau` at step `h` is the
//! point forecast plus the finite-sample-corrected `tau` quantile of the step-`h` errors of the
//! previous `calibration` origins (only errors already observed at that origin: origins are at
//! least `max(horizons)` apart). Interval metrics are scored once at least `min_calibration`
//! errors exist.
//!
//! Metrics per model and horizon `h` (errors `e = y - yhat` at step `h`):
//! - MAE, RMSE;
//! - sMAPE `= mean(200 |e| / (|y| + |yhat|))` (pairs with both zero are skipped);
//! - MASE `= mean(|e| / s)`, `s` = in-window mean absolute one-step change of the series (the
//!   in-sample MAE of the naive forecast), so MASE < 1 beats the naive forecast's in-sample error;
//! - pinball loss averaged over the interval's two quantiles;
//! - coverage of the interval and its mean width.

use graphscale_core::Forecaster;
use serde::{Deserialize, Serialize};

use crate::conformal::conformal_quantile;
use crate::ForecastError;

/// Backtest settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestConfig {
    /// Training points per fit (>= 2).
    pub window: usize,
    /// Steps between origins (>= max horizon, so that calibration errors are observed).
    pub every: usize,
    /// Horizons to score, in steps (each >= 1).
    pub horizons: Vec<usize>,
    /// Nominal coverage of the interval, e.g. 0.9.
    pub level: f64,
    /// Previous origins whose errors calibrate the interval; default 60.
    pub calibration: usize,
    /// Fewest calibration errors before intervals are scored; default 20.
    pub min_calibration: usize,
    /// How many origins to keep forecasts of, for plots (the last ones).
    pub keep_last: usize,
    /// Locally scaled conformal intervals: errors are divided by the mean absolute one-step
    /// change over the last `scale_window` steps of their origin's training data, and the
    /// interval is that quantile times the current origin's scale, so intervals narrow when the
    /// series calms down. 0 = plain (unscaled) split conformal.
    #[serde(default)]
    pub scale_window: usize,
    /// Origins between refits for models that can forecast from new data without refitting
    /// (neural networks, see `FittedForecaster::predict_after`): they are fitted at the first
    /// origin and every `refit_every` origins, and in between forecast from the latest window
    /// with the weights they have. Other models are refitted at every origin. 0 or 1: refit at
    /// every origin.
    #[serde(default)]
    pub refit_every: usize,
}

impl BacktestConfig {
    fn validate(&self, n: usize) -> Result<usize, ForecastError> {
        let bad = |field: &str, reason: String| ForecastError::Config {
            field: field.into(),
            reason,
        };
        let h = self
            .horizons
            .iter()
            .copied()
            .max()
            .ok_or_else(|| bad("horizons", "give at least one".into()))?;
        if self.horizons.contains(&0) {
            return Err(bad("horizons", "each must be >= 1 step".into()));
        }
        if self.window < 2 {
            return Err(bad(
                "window",
                format!("must be >= 2 points, got {}", self.window),
            ));
        }
        if self.every < h {
            return Err(bad(
                "every",
                format!(
                    "must be >= the longest horizon ({h} steps), got {}",
                    self.every
                ),
            ));
        }
        if !(self.level > 0.0 && self.level < 1.0) {
            return Err(bad(
                "level",
                format!("must be in (0, 1), got {}", self.level),
            ));
        }
        if n < self.window + h {
            return Err(ForecastError::Series(format!(
                "a horizon of {h} steps after a window of {} needs at least {} points, got {n}",
                self.window,
                self.window + h
            )));
        }
        Ok(h)
    }
}

/// Scores of one model at one horizon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HorizonScore {
    /// Steps ahead.
    pub horizon: usize,
    /// Forecasts scored.
    pub n: usize,
    /// Mean absolute error.
    pub mae: f64,
    /// Root mean squared error.
    pub rmse: f64,
    /// Symmetric MAPE, %.
    pub smape: f64,
    /// Mean absolute scaled error.
    pub mase: f64,
    /// Pinball loss, mean of the interval's two quantiles.
    pub pinball: f64,
    /// Share of points inside the interval.
    pub coverage: f64,
    /// Mean interval width.
    pub width: f64,
    /// Forecasts with an interval.
    pub n_interval: usize,
}

/// One origin's forecast, for plots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OriginForecast {
    /// Index of the first forecast point.
    pub start: usize,
    /// Point forecasts.
    pub point: Vec<f64>,
    /// Lower and upper interval bounds, when calibrated.
    pub lower: Vec<f64>,
    /// Upper bounds.
    pub upper: Vec<f64>,
}

/// A model's backtest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelBacktest {
    /// Model name.
    pub model: String,
    /// Scores per horizon.
    pub scores: Vec<HorizonScore>,
    /// Origins at which the model failed to fit or predict, with the first reason.
    pub failures: usize,
    /// First failure, if any.
    pub first_failure: Option<String>,
    /// The last origins' forecasts.
    pub forecasts: Vec<OriginForecast>,
}

/// Runs the backtest of `model` on `y`.
pub fn backtest(
    model: &dyn Forecaster,
    y: &[f64],
    cfg: &BacktestConfig,
) -> Result<ModelBacktest, ForecastError> {
    let h = cfg.validate(y.len())?;
    if let Some(i) = y.iter().position(|v| !v.is_finite()) {
        return Err(ForecastError::Series(format!(
            "point {i} is not finite: fill gaps first"
        )));
    }
    let name = model.name();
    let span = tracing::info_span!("backtest", model = %name, points = y.len());
    let _e = span.enter();
    let lo_tau = (1.0 - cfg.level) / 2.0;
    let hi_tau = 1.0 - lo_tau;
    // errors[step] over past origins
    let mut errors: Vec<Vec<f64>> = vec![Vec::new(); h];
    #[derive(Default, Clone)]
    struct Acc {
        n: usize,
        abs: f64,
        sq: f64,
        smape: f64,
        smape_n: usize,
        mase: f64,
        pinball: f64,
        covered: usize,
        width: f64,
        ni: usize,
    }
    let mut acc = vec![Acc::default(); cfg.horizons.len()];
    let mut failures = 0;
    let mut first_failure = None;
    let mut forecasts = Vec::new();
    let mut origin = cfg.window;
    let mut origins_seen = 0usize;
    let mut current: Option<(Box<dyn graphscale_core::FittedForecaster>, usize)> = None;
    while origin + h <= y.len() {
        let train = &y[origin - cfg.window..origin];
        let scale =
            train.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>() / (train.len() - 1) as f64;
        let local = if cfg.scale_window >= 1 {
            let recent = &train[train.len().saturating_sub(cfg.scale_window + 1)..];
            let s = recent.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>()
                / (recent.len().max(2) - 1) as f64;
            // Never zero: fall back to the window's scale, then to 1.
            if s > 0.0 {
                s
            } else if scale > 0.0 {
                scale
            } else {
                1.0
            }
        } else {
            1.0
        };
        let due = cfg.refit_every <= 1 || origins_seen.is_multiple_of(cfg.refit_every);
        origins_seen += 1;
        let reused = match (&current, due) {
            (Some((fitted, at)), false) => fitted.predict_after(train, origin - at, h, &[]),
            _ => None,
        };
        let result = match reused {
            Some(r) => r,
            None => model.fit(train).and_then(|f| {
                let p = f.predict(h, &[]);
                current = Some((f, origin));
                p
            }),
        };
        match result {
            Err(e) => {
                failures += 1;
                first_failure.get_or_insert_with(|| e.to_string());
            }
            Ok(p) => {
                let calibrated = errors[0].len() >= cfg.min_calibration;
                let mut fc = OriginForecast {
                    start: origin,
                    point: p.point.clone(),
                    lower: Vec::new(),
                    upper: Vec::new(),
                };
                let bounds: Vec<Option<(f64, f64)>> = (0..h)
                    .map(|s| {
                        if !calibrated {
                            return None;
                        }
                        let past = &errors[s][errors[s].len().saturating_sub(cfg.calibration)..];
                        Some((
                            p.point[s] + local * conformal_quantile(past, lo_tau).unwrap_or(0.0),
                            p.point[s] + local * conformal_quantile(past, hi_tau).unwrap_or(0.0),
                        ))
                    })
                    .collect();
                if calibrated {
                    fc.lower = bounds.iter().map(|b| b.map_or(f64::NAN, |x| x.0)).collect();
                    fc.upper = bounds.iter().map(|b| b.map_or(f64::NAN, |x| x.1)).collect();
                }
                for (k, &hz) in cfg.horizons.iter().enumerate() {
                    let (actual, pred) = (y[origin + hz - 1], p.point[hz - 1]);
                    let e = actual - pred;
                    let a = &mut acc[k];
                    a.n += 1;
                    a.abs += e.abs();
                    a.sq += e * e;
                    if actual.abs() + pred.abs() > 0.0 {
                        a.smape += 200.0 * e.abs() / (actual.abs() + pred.abs());
                        a.smape_n += 1;
                    }
                    a.mase += if scale > 0.0 { e.abs() / scale } else { 0.0 };
                    if let Some((lo, hi)) = bounds[hz - 1] {
                        a.ni += 1;
                        a.covered += usize::from(actual >= lo && actual <= hi);
                        a.width += hi - lo;
                        let pin =
                            |q: f64, tau: f64| (tau * (actual - q)).max((tau - 1.0) * (actual - q));
                        a.pinball += 0.5 * (pin(lo, lo_tau) + pin(hi, hi_tau));
                    }
                }
                for (s, errs) in errors.iter_mut().enumerate() {
                    errs.push((y[origin + s] - p.point[s]) / local);
                }
                forecasts.push(fc);
                if forecasts.len() > cfg.keep_last {
                    forecasts.remove(0);
                }
            }
        }
        origin += cfg.every;
    }
    let nan_div = |a: f64, n: usize| if n > 0 { a / n as f64 } else { f64::NAN };
    let scores = cfg
        .horizons
        .iter()
        .zip(acc)
        .map(|(&hz, a)| HorizonScore {
            horizon: hz,
            n: a.n,
            mae: nan_div(a.abs, a.n),
            rmse: nan_div(a.sq, a.n).sqrt(),
            smape: nan_div(a.smape, a.smape_n),
            mase: nan_div(a.mase, a.n),
            pinball: nan_div(a.pinball, a.ni),
            coverage: nan_div(a.covered as f64, a.ni),
            width: nan_div(a.width, a.ni),
            n_interval: a.ni,
        })
        .collect();
    Ok(ModelBacktest {
        model: name,
        scores,
        failures,
        first_failure,
        forecasts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Persistence, SeasonalNaive};

    fn cfg(window: usize, every: usize, horizons: Vec<usize>) -> BacktestConfig {
        BacktestConfig {
            window,
            every,
            horizons,
            level: 0.9,
            calibration: 60,
            min_calibration: 2,
            keep_last: 3,
            scale_window: 0,
            refit_every: 0,
        }
    }

    #[test]
    fn metrics_match_a_hand_computed_case() {
        // y = 0, 1, 2, ..., 9; window 4, every 2, horizon 1 and 2; persistence.
        // Origins 4, 6, 8: forecasts of y[4..6], y[6..8], y[8..10] are 3, 5, 7.
        // Step-1 errors are 1, 1, 1; step-2 errors 2, 2, 2; the scale is 1 everywhere.
        let y: Vec<f64> = (0..10).map(f64::from).collect();
        let r = backtest(&Persistence, &y, &cfg(4, 2, vec![1, 2])).unwrap();
        let s1 = &r.scores[0];
        assert_eq!((s1.n, s1.mae, s1.rmse, s1.mase), (3, 1.0, 1.0, 1.0));
        // sMAPE at step 1: 200 * 1 / (4 + 3), (6 + 5), (8 + 7).
        let want = (200.0 / 7.0 + 200.0 / 11.0 + 200.0 / 15.0) / 3.0;
        assert!((s1.smape - want).abs() < 1e-9);
        assert_eq!(r.scores[1].mae, 2.0);
        // Intervals from the first two origins' errors (all 1 at step 1) score at the third.
        assert_eq!(s1.n_interval, 1);
        assert_eq!(s1.coverage, 1.0);
        assert_eq!(s1.width, 0.0);
        assert_eq!(r.forecasts.len(), 3);
    }

    #[test]
    fn seasonal_naive_is_exact_on_a_pure_season() {
        let y: Vec<f64> = (0..200).map(|i| (i % 10) as f64 * 3.0 + 1.0).collect();
        let r = backtest(&SeasonalNaive { period: 10 }, &y, &cfg(30, 5, vec![1, 5])).unwrap();
        assert!(r.scores.iter().all(|s| s.mae == 0.0 && s.n > 20));
        let p = backtest(&Persistence, &y, &cfg(30, 5, vec![1, 5])).unwrap();
        assert!(p.scores[0].mase > 0.5);
    }

    #[test]
    fn local_scaling_narrows_intervals_in_calm_periods() {
        // Volatile first half (steps of +/- 50), calm second half (+/- 1): plain conformal keeps
        // the wide intervals; scaled conformal narrows them once the series calms down.
        let y: Vec<f64> = (0..400)
            .map(|i| {
                1000.0
                    + if (i / 2) % 2 == 0 { 1.0 } else { -1.0 } * if i < 200 { 50.0 } else { 1.0 }
            })
            .collect();
        let mut c = cfg(20, 1, vec![1]);
        c.min_calibration = 20;
        c.calibration = 400;
        c.keep_last = 1;
        let plain = backtest(&Persistence, &y, &c).unwrap();
        c.scale_window = 4;
        let scaled = backtest(&Persistence, &y, &c).unwrap();
        let last_width = |r: &ModelBacktest| r.forecasts[0].upper[0] - r.forecasts[0].lower[0];
        assert!(
            last_width(&scaled) < last_width(&plain) / 5.0,
            "{} vs {}",
            last_width(&scaled),
            last_width(&plain)
        );
    }

    #[test]
    fn bad_settings_and_series_are_rejected() {
        let y = vec![1.0; 50];
        assert!(backtest(&Persistence, &y, &cfg(40, 1, vec![5]))
            .unwrap_err()
            .to_string()
            .contains("every"));
        assert!(backtest(&Persistence, &y, &cfg(48, 5, vec![5]))
            .unwrap_err()
            .to_string()
            .contains("needs at least 53"));
        assert!(backtest(&Persistence, &y, &cfg(10, 5, vec![])).is_err());
        assert!(backtest(&Persistence, &y, &cfg(10, 5, vec![0])).is_err());
        let mut z = y.clone();
        z[3] = f64::NAN;
        assert!(backtest(&Persistence, &z, &cfg(10, 5, vec![1]))
            .unwrap_err()
            .to_string()
            .contains("point 3"));
        // A constant series is fine: every metric finite, MASE 0 (the scale is 0 and so is the error).
        let r = backtest(&Persistence, &y, &cfg(10, 5, vec![1])).unwrap();
        assert_eq!(r.scores[0].mae, 0.0);
    }
}
