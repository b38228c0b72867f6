//! Reports of an experiment: a terminal table, JSON with every number, and a self-contained
//! HTML page with SVG plots (SLO violations vs cost per scenario; per-run timelines of load,
//! latency and replicas). Files are written to a temporary name and renamed, so an existing
//! report is never left half-written.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::{EvalError, ExperimentResult, RunResult, SummaryRow};

/// Columns of the terminal table: (metric, header, decimals).
const COLUMNS: [(&str, &str, usize); 8] = [
    ("slo_violation_time_pct", "SLO viol %time", 2),
    ("slo_violation_requests_pct", "SLO viol %req", 2),
    ("latency_p95_ms", "p95 ms", 0),
    ("error_pct", "err %", 2),
    ("cpu_core_hours", "CPU core-h", 2),
    ("memory_gib_hours", "mem GiB-h", 2),
    ("scaling_actions", "actions", 0),
    ("scaling_lag_mean_s", "lag s", 0),
];

fn cell(row: &SummaryRow, metric: &str, decimals: usize) -> String {
    match row.get(metric) {
        Some(m) if m.mean.is_finite() => {
            let half = (m.ci_high - m.ci_low) / 2.0;
            if half > 0.0 {
                format!("{:.*} ±{:.*}", decimals, m.mean, decimals, half)
            } else {
                format!("{:.*}", decimals, m.mean)
            }
        }
        _ => "-".into(),
    }
}

fn delta(row: &SummaryRow, metric: &str) -> String {
    match row
        .get(metric)
        .and_then(|m| m.cliffs_delta_vs_baseline.zip(m.magnitude))
    {
        Some((d, mag)) => format!("{d:+.2} {}", format!("{mag:?}").to_lowercase()),
        None => "baseline".into(),
    }
}

/// The comparison as a plain-text table: means ± half the 95 % CI width, and Cliff's delta of
/// SLO violations (share of time) and CPU cost against the baseline.
pub fn table(result: &ExperimentResult) -> String {
    let mut header = vec!["app".to_string(), "scenario".into(), "autoscaler".into()];
    header.extend(COLUMNS.iter().map(|c| c.1.to_string()));
    header.push("δ viol vs base".into());
    header.push("δ CPU vs base".into());
    let mut rows = vec![header];
    for r in &result.summary {
        let mut line = vec![r.app.clone(), r.scenario.clone(), r.autoscaler.clone()];
        line.extend(COLUMNS.iter().map(|(m, _, d)| cell(r, m, *d)));
        line.push(delta(r, "slo_violation_time_pct"));
        line.push(delta(r, "cpu_core_hours"));
        rows.push(line);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (s, w))| {
                if c < 3 {
                    format!("{s:<w$}")
                } else {
                    format!("{s:>w$}")
                }
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  "));
        if i == 0 {
            let _ = writeln!(
                out,
                "{}",
                widths
                    .iter()
                    .map(|w| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .join("  ")
            );
        }
    }
    let seeds = result.spec.seeds.len();
    let _ = writeln!(
        out,
        "\n{seeds} seeds per cell; ± is half the 95 % bootstrap CI of the mean; δ is Cliff's delta against `{}` \
         (negative = lower than the baseline).",
        result.spec.baseline
    );
    if let Some(w) = few_seeds_warning(seeds) {
        let _ = writeln!(out, "{w}");
    }
    out
}

/// Fewer seeds than this and Cliff's delta is too coarse to read alone.
pub const FEW_SEEDS: usize = 5;

/// The warning for a table of `seeds` seeds per cell, if they are too few for Cliff's delta.
pub fn few_seeds_warning(seeds: usize) -> Option<String> {
    (seeds > 0 && seeds < FEW_SEEDS).then(|| {
        let pairs = seeds * seeds;
        format!(
            "warning: with {seeds} seed{} per cell Cliff's delta compares only {pairs} pair{} of runs, so it moves in \
             steps of {:.2} and one seed can change its label (negligible to large) while the means barely differ: \
             use at least {FEW_SEEDS} seeds to read δ",
            if seeds == 1 { "" } else { "s" },
            if pairs == 1 { "" } else { "s" },
            1.0 / pairs as f64
        )
    })
}

/// Writes `contents` to `path` atomically and symlink-safely ([`graphscale_fsio::write`]);
/// `existing` says whether a file already there may be replaced.
pub fn write_atomic(
    path: &Path,
    contents: &[u8],
    existing: graphscale_fsio::Existing,
) -> Result<(), EvalError> {
    Ok(graphscale_fsio::write(path, contents, existing)?)
}

/// The result as pretty JSON.
pub fn json(result: &ExperimentResult) -> String {
    // Non-finite numbers become null in JSON.
    serde_json::to_string_pretty(result).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn pareto_svg(rows: &[&SummaryRow], title: &str) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, 380)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let pts: Vec<(f64, f64, f64, f64, f64, f64)> = rows
            .iter()
            .filter_map(|r| {
                let c = r.get("cpu_core_hours")?;
                let v = r.get("slo_violation_time_pct")?;
                Some((c.mean, v.mean, c.ci_low, c.ci_high, v.ci_low, v.ci_high))
            })
            .collect();
        let xmax = pts.iter().map(|p| p.3).fold(0.0, f64::max) * 1.15 + 1e-6;
        let ymax = pts.iter().map(|p| p.5).fold(0.0, f64::max) * 1.15 + 1.0;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..xmax, 0.0..ymax)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("CPU core-hours requested")
            .y_desc("SLO violation, % of time")
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, (r, p)) in rows.iter().zip(&pts).enumerate() {
            let col = COLORS[i % COLORS.len()];
            chart
                .draw_series(std::iter::once(Circle::new((p.0, p.1), 5, col.filled())))
                .map_err(|e| e.to_string())?
                .label(r.autoscaler.clone())
                .legend(move |(x, y)| Circle::new((x, y), 4, col.filled()));
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(p.2, p.1), (p.3, p.1)],
                    col,
                )))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(p.0, p.4), (p.0, p.5)],
                    col,
                )))
                .map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

fn timeline_svg(run: &RunResult) -> Result<String, String> {
    let t = &run.timeline;
    if t.is_empty() {
        return Ok(String::new());
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (top, bottom) = root.split_vertically(280);
        let xmax = t.len() as f64;
        // Load and latency.
        let load_max = t.iter().map(|p| p.load_rps).fold(0.0, f64::max) * 1.1 + 1e-6;
        let lat_max = t
            .iter()
            .map(|p| p.e2e_p95_ms)
            .filter(|v| v.is_finite())
            .fold(run.slo_ms, f64::max)
            * 1.25;
        let mut c = ChartBuilder::on(&top)
            .caption(
                format!(
                    "{} / {} / {} (seed {}): load and end-to-end p95",
                    run.app, run.scenario, run.autoscaler, run.seed
                ),
                ("sans-serif", 15),
            )
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(55)
            .right_y_label_area_size(55)
            .build_cartesian_2d(0.0..xmax, 0.0..load_max)
            .map_err(|e| e.to_string())?
            .set_secondary_coord(0.0..xmax, 0.0..lat_max);
        c.configure_mesh()
            .x_desc("minute")
            .y_desc("load, rps")
            .draw()
            .map_err(|e| e.to_string())?;
        c.configure_secondary_axes()
            .y_desc("e2e p95, ms")
            .draw()
            .map_err(|e| e.to_string())?;
        c.draw_series(LineSeries::new(
            t.iter().enumerate().map(|(i, p)| (i as f64, p.load_rps)),
            COLORS[0],
        ))
        .map_err(|e| e.to_string())?
        .label("load (rps)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], COLORS[0]));
        c.draw_secondary_series(LineSeries::new(
            t.iter()
                .enumerate()
                .filter(|(_, p)| p.e2e_p95_ms.is_finite())
                .map(|(i, p)| (i as f64, p.e2e_p95_ms)),
            COLORS[3],
        ))
        .map_err(|e| e.to_string())?
        .label("e2e p95 (ms)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], COLORS[3]));
        c.draw_secondary_series(LineSeries::new(
            vec![(0.0, run.slo_ms), (xmax, run.slo_ms)],
            BLACK.mix(0.5),
        ))
        .map_err(|e| e.to_string())?
        .label("SLO")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], BLACK.mix(0.5)));
        c.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        // Replicas of the busiest services.
        let n = run.services.len();
        let mut busiest: Vec<usize> = (0..n).collect();
        busiest.sort_by_key(|&i| {
            std::cmp::Reverse(
                t.iter()
                    .map(|p| p.ready.get(i).copied().unwrap_or(0))
                    .max()
                    .unwrap_or(0),
            )
        });
        busiest.truncate(8);
        let rmax = busiest
            .iter()
            .map(|&i| {
                t.iter()
                    .map(|p| {
                        p.desired
                            .get(i)
                            .copied()
                            .unwrap_or(0)
                            .max(p.ready.get(i).copied().unwrap_or(0))
                    })
                    .max()
                    .unwrap_or(0)
            })
            .max()
            .unwrap_or(1) as f64
            * 1.1
            + 1.0;
        let mut c = ChartBuilder::on(&bottom)
            .caption("ready replicas of the busiest services", ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..xmax, 0.0..rmax)
            .map_err(|e| e.to_string())?;
        c.configure_mesh()
            .x_desc("minute")
            .y_desc("replicas")
            .draw()
            .map_err(|e| e.to_string())?;
        for (k, &i) in busiest.iter().enumerate() {
            let col = COLORS[k % COLORS.len()];
            c.draw_series(LineSeries::new(
                t.iter()
                    .enumerate()
                    .map(|(m, p)| (m as f64, p.ready.get(i).copied().unwrap_or(0) as f64)),
                col,
            ))
            .map_err(|e| e.to_string())?
            .label(run.services[i].clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], col));
        }
        c.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The self-contained HTML report.
pub fn html(result: &ExperimentResult) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>graphscale evaluation</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;font-size:13px}}\
         td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}td.l,th.l{{text-align:left}}\
         pre{{background:#f6f6f6;padding:1em;overflow-x:auto}}</style></head><body>\
         <h1>graphscale evaluation</h1><p>graphscale {} at git revision <code>{}</code>; {} runs; seeds {:?}; \
         baseline for Cliff's delta: <code>{}</code>. Every number below was measured by this run; \
         definitions are in docs/metrics.md.</p>",
        esc(&result.graphscale_version),
        esc(&result.git_revision),
        result.runs.len(),
        result.spec.seeds,
        esc(&result.spec.baseline)
    );
    let _ = write!(h, "<h2>Comparison</h2><pre>{}</pre>", esc(&table(result)));
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in &result.summary {
        let k = (r.app.clone(), r.scenario.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    for (app, scenario) in &keys {
        let rows: Vec<&SummaryRow> = result
            .summary
            .iter()
            .filter(|r| &r.app == app && &r.scenario == scenario)
            .collect();
        let _ = write!(h, "<h2>{} — {}</h2>", esc(app), esc(scenario));
        match pareto_svg(
            &rows,
            &format!("{app} / {scenario}: SLO violations vs cost (mean, 95 % CI)"),
        ) {
            Ok(svg) => h.push_str(&svg),
            Err(e) => {
                let _ = write!(h, "<p>plot failed: {}</p>", esc(&e));
            }
        }
        let _ = write!(h, "<table><tr><th class=l>metric</th>");
        for r in &rows {
            let _ = write!(h, "<th>{}</th>", esc(&r.autoscaler));
        }
        h.push_str("</tr>");
        if let Some(first) = rows.first() {
            for (i, m) in first.metrics.iter().enumerate() {
                let _ = write!(h, "<tr><td class=l>{}</td>", esc(&m.metric));
                for r in &rows {
                    let x = &r.metrics[i];
                    let d = x
                        .cliffs_delta_vs_baseline
                        .map(|d| format!(" (δ {d:+.2})"))
                        .unwrap_or_default();
                    let _ = write!(
                        h,
                        "<td>{:.3} [{:.3}, {:.3}]{}</td>",
                        x.mean, x.ci_low, x.ci_high, d
                    );
                }
                h.push_str("</tr>");
            }
        }
        h.push_str("</table>");
        for run in result
            .runs
            .iter()
            .filter(|r| &r.app == app && &r.scenario == scenario && !r.timeline.is_empty())
        {
            match timeline_svg(run) {
                Ok(svg) => h.push_str(&svg),
                Err(e) => {
                    let _ = write!(h, "<p>plot failed: {}</p>", esc(&e));
                }
            }
        }
    }
    let _ = write!(
        h,
        "<h2>Experiment spec</h2><pre>{}</pre></body></html>",
        esc(&serde_json::to_string_pretty(&result.spec).unwrap_or_default())
    );
    h
}

/// Writes `results.json` and `report.html` into `dir`; returns their paths. With
/// [`graphscale_fsio::Existing::Keep`] nothing is written when either exists.
pub fn write_all(
    result: &ExperimentResult,
    dir: &Path,
    existing: graphscale_fsio::Existing,
) -> Result<(std::path::PathBuf, std::path::PathBuf), EvalError> {
    let j = dir.join("results.json");
    let r = dir.join("report.html");
    graphscale_fsio::ensure_absent([j.as_path(), r.as_path()], existing)?;
    write_atomic(&j, json(result).as_bytes(), existing)?;
    write_atomic(&r, html(result).as_bytes(), existing)?;
    Ok((j, r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_few_seeds_for_cliffs_delta_are_flagged_with_its_step() {
        let w = few_seeds_warning(3).unwrap();
        assert!(
            w.contains("3 seeds") && w.contains("9 pairs") && w.contains("steps of 0.11"),
            "{w}"
        );
        assert!(few_seeds_warning(1).unwrap().contains("1 seed per cell"));
        assert_eq!(few_seeds_warning(FEW_SEEDS), None);
        assert_eq!(few_seeds_warning(0), None);
    }
}
