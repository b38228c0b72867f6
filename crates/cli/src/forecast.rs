//! `graphscale forecast backtest`: rolling-origin backtests of every model on one CSV series.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use graphscale_forecast::backtest::{backtest, BacktestConfig, ModelBacktest};
use graphscale_forecast::preprocess::{
    detect_season, fill_gaps, filter_glitches, resample, Aggregate,
};
use graphscale_nn::rnn::RnnConfig;
use plotters::prelude::*;
use serde::Serialize;

/// Flags of `forecast backtest`, parsed.
pub struct BacktestArgs {
    pub series: SeriesArgs,
    pub horizons_s: Vec<u64>,
    pub window_s: u64,
    pub every_s: u64,
    pub models: Vec<String>,
    pub season: Option<usize>,
    pub level: f64,
    pub calibration: usize,
    pub scale_window: usize,
    pub refit_every: usize,
    pub nn_config: Option<PathBuf>,
    pub out: PathBuf,
}

/// Reads neural network settings from a JSON file (unknown fields are an error that names them).
pub fn read_nn_config(path: Option<&std::path::Path>) -> Result<Option<RnnConfig>> {
    let Some(path) = path else { return Ok(None) };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let cfg: RnnConfig = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid neural network settings", path.display()))?;
    Ok(Some(cfg))
}

#[derive(Serialize)]
struct Report {
    graphscale_version: String,
    csv: String,
    value_col: String,
    from_unix: f64,
    points: usize,
    step_s: u64,
    aggregate: &'static str,
    gaps_filled: usize,
    glitches_replaced: usize,
    season_steps: usize,
    season_source: &'static str,
    config: BacktestConfig,
    horizons_s: Vec<u64>,
    results: Vec<ModelBacktest>,
    series_tail: Vec<f64>,
    series_tail_start: usize,
}

fn steps(what: &str, secs: u64, step: u64) -> Result<usize> {
    if secs == 0 || !secs.is_multiple_of(step) {
        bail!("{what} ({secs} s) must be a positive multiple of --step ({step} s)");
    }
    Ok((secs / step) as usize)
}

fn time_arg(flag: &str, v: &Option<String>) -> Result<Option<f64>> {
    v.as_deref()
        .map(|s| {
            graphscale_sim::workload::parse_time(s).with_context(|| {
                format!("{flag} `{s}` is not a unix timestamp or an RFC 3339 UTC time")
            })
        })
        .transpose()
}

/// Where a series comes from and how it is prepared.
pub struct SeriesArgs {
    pub csv: PathBuf,
    pub time_col: Option<String>,
    pub value_col: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub step_s: u64,
    pub sum: bool,
    pub filter: bool,
}

/// Reads, filters by time, resamples, fills gaps and (optionally) replaces glitches:
/// `(start unix, series, gaps filled, glitches replaced)`.
fn load_series(a: &SeriesArgs) -> Result<(f64, Vec<f64>, usize, usize)> {
    if a.step_s == 0 {
        bail!("--step must be > 0");
    }
    let text =
        std::fs::read_to_string(&a.csv).with_context(|| format!("reading {}", a.csv.display()))?;
    let name = a.csv.display().to_string();
    let (t, v) = graphscale_sim::workload::parse_series_csv(
        &text,
        &name,
        a.time_col.as_deref(),
        a.value_col.as_deref(),
    )?;
    let (from, to) = (time_arg("--from", &a.from)?, time_arg("--to", &a.to)?);
    let keep: Vec<usize> = (0..t.len())
        .filter(|&i| from.is_none_or(|f| t[i] >= f) && to.is_none_or(|e| t[i] < e))
        .collect();
    if keep.len() < 2 {
        bail!("{name}: fewer than 2 rows between --from and --to");
    }
    let (t, v): (Vec<f64>, Vec<f64>) = keep.iter().map(|&i| (t[i], v[i])).unzip();
    let agg = if a.sum {
        Aggregate::Sum
    } else {
        Aggregate::Mean
    };
    let (start, mut y) = resample(&t, &v, a.step_s as f64, agg)?;
    let gaps = fill_gaps(&mut y)?;
    let glitches = if a.filter {
        filter_glitches(&mut y, 7, 6.0).len()
    } else {
        0
    };
    Ok((start, y, gaps, glitches))
}

/// Flags of `forecast fit`.
pub struct FitArgs {
    pub series: SeriesArgs,
    pub model: String,
    pub season: usize,
    pub max_horizon_s: u64,
    pub nn_config: Option<PathBuf>,
    pub out: PathBuf,
}

/// Fits one model with conformal calibration and saves a checkpoint.
pub fn fit_cmd(a: FitArgs) -> Result<ExitCode> {
    let (start, y, gaps, glitches) = load_series(&a.series)?;
    let h = steps("--max-horizon", a.max_horizon_s, a.series.step_s)?;
    let nn = read_nn_config(a.nn_config.as_deref())?;
    let (ck, _) = graphscale_nn::checkpoint::fit(
        &a.model,
        a.season,
        &y,
        a.series.step_s,
        start,
        h,
        nn.as_ref(),
    )?;
    ck.save_with(&a.out, crate::app::existing())?;
    crate::say!(
        "fitted {} on {} points of {} s ({} gaps filled, {} glitches replaced); calibrated up to {} steps; calibration MAE at step 1: {:.3}",
        ck.manifest.kind,
        y.len(),
        a.series.step_s,
        gaps,
        glitches,
        h,
        ck.manifest.calibration_mae.first().copied().unwrap_or(f64::NAN)
    )?;
    crate::say!("wrote {} and {}.json", a.out.display(), a.out.display())?;
    Ok(ExitCode::SUCCESS)
}

/// Loads a checkpoint and prints the forecast after its training data.
pub fn predict_cmd(
    model: &std::path::Path,
    horizon_s: u64,
    quantiles: &[f64],
    json: bool,
) -> Result<ExitCode> {
    let ck = graphscale_nn::checkpoint::load(model)?;
    let h = steps("--horizon", horizon_s, ck.manifest.step_s)?;
    let fitted = graphscale_nn::checkpoint::restore(&ck)?;
    let p = fitted.predict(h, quantiles)?;
    let t0 = ck.next_unix();
    let unix = |k: usize| t0 + (k as u64 * ck.manifest.step_s) as f64;
    if json {
        let rows: Vec<serde_json::Value> = (0..h)
            .map(|k| {
                let mut row = serde_json::json!({"unix": unix(k), "point": p.point[k]});
                for (q, v) in &p.quantiles {
                    row[format!("q{q}")] = serde_json::json!(v[k]);
                }
                row
            })
            .collect();
        crate::say!("{}", serde_json::to_string_pretty(&rows)?)?;
    } else {
        let mut header = format!("{:>12} {:>14}", "unix", "point");
        for (q, _) in &p.quantiles {
            header.push_str(&format!(" {:>14}", format!("q{q}")));
        }
        crate::say!("{header}")?;
        for k in 0..h {
            let mut line = format!("{:>12} {:>14.3}", unix(k), p.point[k]);
            for (_, v) in &p.quantiles {
                line.push_str(&format!(" {:>14.3}", v[k]));
            }
            crate::say!("{line}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the backtest and writes `backtest.json` and `backtest.html` into `out`.
pub fn backtest_cmd(a: BacktestArgs) -> Result<ExitCode> {
    if a.series.step_s == 0 {
        bail!("--step must be > 0");
    }
    if !(a.level > 0.0 && a.level < 1.0) {
        bail!("--level must be in (0, 1), got {}", a.level);
    }
    let (start, y, gaps, glitches) = load_series(&a.series)?;
    let name = a.series.csv.display().to_string();
    let horizons: Vec<usize> = a
        .horizons_s
        .iter()
        .map(|h| steps("--horizon", *h, a.series.step_s))
        .collect::<Result<_>>()?;
    let max_h = horizons.iter().copied().max().unwrap_or(1);
    let window = steps("--window", a.window_s, a.series.step_s)?;
    let every = steps("--every", a.every_s, a.series.step_s)?.max(max_h);
    let (season, season_source) = match a.season {
        Some(s) => (s, "given"),
        None => {
            let day = (86_400 / a.series.step_s) as u32;
            match detect_season(
                &y[..window.min(y.len())],
                2,
                day.max(3).min((window / 2) as u32),
            ) {
                Some(s) => (s, "detected"),
                None => (day.max(2) as usize, "default (one day)"),
            }
        }
    };
    let cfg = BacktestConfig {
        window,
        every,
        horizons: horizons.clone(),
        level: a.level,
        calibration: a.calibration.max(1),
        min_calibration: 20.min(a.calibration.max(1)),
        keep_last: 6,
        scale_window: a.scale_window,
        refit_every: a.refit_every,
    };
    let nn = read_nn_config(a.nn_config.as_deref())?;
    let longest = horizons.iter().copied().max().unwrap_or(1);
    let models = a
        .models
        .iter()
        .map(|m| graphscale_nn::by_name(m, season, a.series.step_s, longest, nn.as_ref()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    // One thread per model, two at a time on this size of machine.
    let mut results: Vec<Option<Result<ModelBacktest, graphscale_forecast::ForecastError>>> =
        (0..models.len()).map(|_| None).collect();
    for chunk in (0..models.len()).collect::<Vec<_>>().chunks(2) {
        let out: Vec<_> = std::thread::scope(|s| {
            let (models, y, cfg) = (&models, &y, &cfg);
            let handles: Vec<_> = chunk
                .iter()
                .map(|&i| (i, s.spawn(move || backtest(models[i].as_ref(), y, cfg))))
                .collect();
            handles.into_iter().map(|(i, h)| (i, h.join())).collect()
        });
        for (i, r) in out {
            results[i] =
                Some(r.map_err(|_| anyhow::anyhow!("backtest of {} panicked", a.models[i]))?);
        }
    }
    let results: Vec<ModelBacktest> = results
        .into_iter()
        .flatten()
        .collect::<std::result::Result<_, _>>()?;
    let tail_start = y.len().saturating_sub(cfg.every * 8 + window.min(288));
    let report = Report {
        graphscale_version: env!("CARGO_PKG_VERSION").into(),
        csv: name.clone(),
        value_col: a
            .series
            .value_col
            .clone()
            .unwrap_or_else(|| "(last column)".into()),
        from_unix: start,
        points: y.len(),
        step_s: a.series.step_s,
        aggregate: if a.series.sum { "sum" } else { "mean" },
        gaps_filled: gaps,
        glitches_replaced: glitches,
        season_steps: season,
        season_source,
        config: cfg.clone(),
        horizons_s: a.horizons_s.clone(),
        results,
        series_tail: y[tail_start..].to_vec(),
        series_tail_start: tail_start,
    };
    crate::say!("{}", table(&report))?;
    let json = serde_json::to_string_pretty(&report)?;
    graphscale_eval::report::write_atomic(
        &a.out.join("backtest.json"),
        json.as_bytes(),
        crate::app::existing(),
    )?;
    graphscale_eval::report::write_atomic(
        &a.out.join("backtest.html"),
        html(&report).as_bytes(),
        crate::app::existing(),
    )?;
    crate::say!(
        "wrote {} and {}",
        a.out.join("backtest.json").display(),
        a.out.join("backtest.html").display()
    )?;
    Ok(ExitCode::SUCCESS)
}

fn table(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} points of {} s from {} ({}); season {} steps ({}); {} gaps filled, {} glitches replaced; window {} steps, origin every {} steps, {:.0} % intervals (split conformal, rolling)\n",
        r.points, r.step_s, r.csv, r.aggregate, r.season_steps, r.season_source, r.gaps_filled, r.glitches_replaced,
        r.config.window, r.config.every, r.config.level * 100.0
    );
    // The model column is as wide as the longest name (`onnx:PATH` can be long).
    let w = r
        .results
        .iter()
        .map(|m| m.model.chars().count())
        .max()
        .unwrap_or(0)
        .max(16);
    let _ = writeln!(
        s,
        "{:<w$} {:>8} {:>6} {:>12} {:>12} {:>8} {:>7} {:>12} {:>8} {:>12}",
        "model", "horizon", "n", "MAE", "RMSE", "sMAPE%", "MASE", "pinball", "cover%", "width"
    );
    for m in &r.results {
        for (k, sc) in m.scores.iter().enumerate() {
            let _ = writeln!(
                s,
                "{:<w$} {:>7}s {:>6} {:>12.2} {:>12.2} {:>8.2} {:>7.3} {:>12.2} {:>8.1} {:>12.2}",
                m.model,
                r.horizons_s[k],
                sc.n,
                sc.mae,
                sc.rmse,
                sc.smape,
                sc.mase,
                sc.pinball,
                sc.coverage * 100.0,
                sc.width
            );
        }
        if m.failures > 0 {
            let _ = writeln!(
                s,
                "{:<w$} {} origins failed; first: {}",
                m.model,
                m.failures,
                m.first_failure.as_deref().unwrap_or("")
            );
        }
    }
    s
}

fn plot(r: &Report, m: &ModelBacktest) -> std::result::Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let x0 = r.series_tail_start as f64;
        let x1 = (r.series_tail_start + r.series_tail.len()) as f64;
        let mut ymax = r.series_tail.iter().cloned().fold(0.0, f64::max);
        for f in &m.forecasts {
            ymax = f
                .upper
                .iter()
                .chain(&f.point)
                .cloned()
                .filter(|v| v.is_finite())
                .fold(ymax, f64::max);
        }
        let mut c = ChartBuilder::on(&root)
            .caption(
                format!(
                    "{}: forecast vs actual (last origins, {:.0} % band)",
                    m.model,
                    r.config.level * 100.0
                ),
                ("sans-serif", 15),
            )
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, 0.0..ymax * 1.1 + 1e-9)
            .map_err(|e| e.to_string())?;
        c.configure_mesh()
            .x_desc("step")
            .draw()
            .map_err(|e| e.to_string())?;
        c.draw_series(LineSeries::new(
            r.series_tail
                .iter()
                .enumerate()
                .map(|(i, v)| (x0 + i as f64, *v)),
            BLACK,
        ))
        .map_err(|e| e.to_string())?;
        for f in m.forecasts.iter().filter(|f| f.start as f64 >= x0) {
            let xs = |k: usize| (f.start + k) as f64;
            if !f.lower.is_empty() {
                let band: Vec<(f64, f64)> = (0..f.point.len())
                    .map(|k| (xs(k), f.upper[k]))
                    .chain((0..f.point.len()).rev().map(|k| (xs(k), f.lower[k])))
                    .collect();
                c.draw_series(std::iter::once(Polygon::new(
                    band,
                    RGBColor(31, 119, 180).mix(0.2),
                )))
                .map_err(|e| e.to_string())?;
            }
            c.draw_series(LineSeries::new(
                (0..f.point.len()).map(|k| (xs(k), f.point[k])),
                RGBColor(214, 39, 40),
            ))
            .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

fn html(r: &Report) -> String {
    let mut h = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>graphscale forecast backtest</title>\
         <style>body{font-family:sans-serif;margin:2em;max-width:1100px}pre{background:#f6f6f6;padding:1em;overflow-x:auto}</style></head><body>\
         <h1>graphscale forecast backtest</h1>",
    );
    let _ = write!(
        h,
        "<pre>{}</pre>",
        table(r).replace('&', "&amp;").replace('<', "&lt;")
    );
    for m in &r.results {
        match plot(r, m) {
            Ok(svg) => h.push_str(&svg),
            Err(e) => {
                let _ = write!(h, "<p>plot failed: {e}</p>");
            }
        }
    }
    h.push_str("<p>Black: the series; red: point forecasts from the last origins; blue: the interval.</p></body></html>");
    h
}
