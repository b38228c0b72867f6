//! Prophet fitted in Rust (L-BFGS, the default) against augurs' Stan model in WebAssembly (the
//! `prophet-stan` feature) on the same series: the same parameters and forecasts within the
//! tolerances stated in docs/forecast.md.
#![cfg(feature = "prophet-stan")]

use std::sync::{Arc, Mutex};

use augurs::prophet::optimizer::{Data, InitialParams, OptimizeOpts, OptimizedParams};
use augurs::prophet::wasmstan::WasmstanOptimizer;
use augurs::prophet::{Optimizer, PredictionData, Prophet, TrainingData};
use graphscale_forecast::prophet_native::{objective, NativeOptimizer};

/// What a fit found: the parameters, the objective they reach, and the seasonal part of the
/// fit at each point (`X beta`: augurs orders the seasonality columns differently from one fit
/// to the next, so coefficients are compared through it).
type Found = (OptimizedParams, f64, Vec<f64>);

/// Keeps what the inner optimiser found.
#[derive(Debug, Clone)]
struct Keep<O> {
    inner: O,
    found: Arc<Mutex<Option<Found>>>,
}

impl<O: Optimizer> Optimizer for Keep<O> {
    fn optimize(
        &self,
        init: &InitialParams,
        data: &Data,
        opts: &OptimizeOpts,
    ) -> Result<OptimizedParams, augurs::prophet::optimizer::Error> {
        let p = self.inner.optimize(init, data, opts)?;
        let k = p.beta.len();
        let seasonal = (0..data.y.len())
            .map(|i| (0..k).map(|j| data.X[i * k + j] * p.beta[j]).sum())
            .collect();
        *self.found.lock().unwrap() = Some((p.clone(), objective(data, &p), seasonal));
        Ok(p)
    }
}

/// Fitted values and a 60-step forecast, and the parameters.
fn fit<O: Optimizer + Clone>(opt: O, y: &[f64], step_s: i64) -> (Vec<f64>, Found) {
    let keep = Keep {
        inner: opt,
        found: Arc::default(),
    };
    let ds: Vec<i64> = (0..y.len() as i64).map(|i| i * step_s).collect();
    let mut model = Prophet::new(Default::default(), keep.clone());
    model
        .fit(
            TrainingData::new(ds, y.to_vec()).unwrap(),
            Default::default(),
        )
        .unwrap();
    let n = y.len() as i64;
    let mut out = model.predict(None).unwrap().yhat.point;
    let ahead: Vec<i64> = (n..n + 60).map(|i| i * step_s).collect();
    out.extend(
        model
            .predict(PredictionData::new(ahead))
            .unwrap()
            .yhat
            .point,
    );
    let p = keep.found.lock().unwrap().clone().unwrap();
    (out, p)
}

fn noise(i: usize) -> f64 {
    // A fixed pseudo-random sequence in [-1, 1].
    let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
    2.0 * (x as f64 / (1u64 << 53) as f64) - 1.0
}

#[test]
fn native_fit_matches_the_stan_fit() {
    let day =
        |i: usize, per_day: usize| std::f64::consts::TAU * (i % per_day) as f64 / per_day as f64;
    let worldcup = {
        let csv = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/data/worldcup98/worldcup98_requests_per_minute.csv"),
        )
        .unwrap();
        // Two days per minute from 1998-06-10 (line order is time order).
        let from = 897_436_800.0; // 1998-06-10T00:00:00Z
        let mut y = Vec::new();
        for line in csv.lines().skip(1) {
            // unix_ts,time_utc,requests
            let f: Vec<&str> = line.split(',').collect();
            let (t, v) = (f[0], f[2]);
            if t.parse::<f64>().unwrap() >= from {
                y.push(v.parse::<f64>().unwrap());
            }
            if y.len() == 2 * 1440 {
                break;
            }
        }
        y
    };
    let series: Vec<(&str, Vec<f64>, i64)> = vec![
        (
            "hourly, trend + daily wave",
            (0..480)
                .map(|i| 100.0 + 0.5 * i as f64 + 20.0 * day(i, 24).sin() + 3.0 * noise(i))
                .collect(),
            3600,
        ),
        (
            "per minute, a week, daily shape + noise",
            (0..7 * 1440)
                .map(|i| {
                    200.0
                        + 60.0 * (day(i, 1440) - 2.0).sin()
                        + 20.0 * (2.0 * day(i, 1440) - 1.0).sin()
                        + 0.002 * i as f64
                        + 8.0 * noise(i)
                })
                .collect(),
            60,
        ),
        (
            "per 15 s, a trend that turns",
            (0..2000)
                .map(|i| {
                    let t = i as f64;
                    50.0 + if i < 1200 {
                        0.05 * t
                    } else {
                        60.0 - 0.02 * (t - 1200.0)
                    } + 2.0 * noise(i)
                })
                .collect(),
            15,
        ),
        ("WorldCup98, two days per minute", worldcup, 60),
    ];
    for (name, y, step) in series {
        let (ours, (po, fo, so)) = fit(NativeOptimizer::default(), &y, step);
        let (stan, (ps, fs, ss)) = fit(WasmstanOptimizer::new(), &y, step);
        let range =
            y.iter().copied().fold(f64::MIN, f64::max) - y.iter().copied().fold(f64::MAX, f64::min);
        let worst = ours
            .iter()
            .zip(&stan)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        let sigma = (*po.sigma_obs / *ps.sigma_obs - 1.0).abs();
        let trend = [0, po.trend.len() - 1]
            .iter()
            .map(|&i| (po.trend[i] - ps.trend[i]).abs())
            .fold(0.0, f64::max);
        let beta = so
            .iter()
            .zip(&ss)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        eprintln!(
            "{name}: fitted values and forecast within {:.3} % of the range; sigma_obs {:.5} vs {:.5}; \
             trend ends within {trend:.5}, seasonal part within {beta:.5} (scaled); \
             objective {fo:.4} (ours) vs {fs:.4} (Stan)",
            100.0 * worst / range,
            *po.sigma_obs,
            *ps.sigma_obs,
        );
        // Ours is the exact minimum: never above where Stan's L-BFGS stops.
        assert!(
            fo <= fs + 1e-9 * fs.abs(),
            "{name}: objective {fo} > Stan's {fs}"
        );
        // Fitted values and forecasts within 2 % of the series' range everywhere, the noise
        // estimate within 2 %, the trend's ends and the seasonal part at every point within
        // 0.02 on the scaled series (whose largest value is 1).
        assert!(
            worst <= 0.02 * range,
            "{name}: fitted/forecast differ by {worst} (range {range})"
        );
        assert!(
            sigma <= 0.02,
            "{name}: sigma_obs {} vs {}",
            *po.sigma_obs,
            *ps.sigma_obs
        );
        assert!(trend <= 0.02, "{name}: trend ends differ by {trend}");
        assert!(beta <= 0.02, "{name}: seasonal parts differ by {beta}");
    }
}
