//! `graphscale bench sim`: simulator throughput, one thread.
//!
//! For each app it measures (a) the simulator stepping alone and (b) the same simulation with
//! the HPA closed loop (observe, decide, apply every 15 s), in the same process, so (a) is the
//! baseline that (b)'s control-loop overhead is compared with.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use graphscale_core::{Actuator, Autoscaler, Clock, MetricSource};
use graphscale_eval::{build_autoscaler, AutoscalerSpec};
use graphscale_sim::engine::{SimConfig, Simulator};
use graphscale_sim::{topology, workload::WorkloadSpec};

/// Runs the benchmark and prints a Markdown table.
pub fn sim(seconds: u64, apps: &[String]) -> Result<ExitCode> {
    crate::say!(
        "| app | services | simulated | mode | wall s | service-steps/s | simulated s per wall s |"
    )?;
    crate::say!("|---|---:|---:|---|---:|---:|---:|")?;
    for name in apps {
        let app = topology::builtin(name)?;
        let rates = WorkloadSpec::named("diurnal", app.nominal_peak_rps)?.rates(seconds, 1)?;
        for with_hpa in [false, true] {
            let mut sim = Simulator::new(
                app.clone(),
                SimConfig {
                    seed: 1,
                    ..SimConfig::default()
                },
                rates.clone(),
            )?;
            let mut hpa = build_autoscaler(&AutoscalerSpec::named("hpa")?, &app)?;
            let graph = sim.graph().clone();
            let sync = hpa.sync_period().0;
            let start = Instant::now();
            for _ in 0..seconds {
                sim.step();
                if with_hpa && sim.now().0 % sync == 7000 {
                    let snap = sim.observe()?;
                    let d = hpa.decide(&snap, &graph);
                    sim.apply(&d)?;
                }
            }
            let wall = start.elapsed().as_secs_f64();
            let steps = seconds as f64 * app.services.len() as f64;
            crate::say!(
                "| {} | {} | {} s | {} | {:.2} | {:.0} | {:.0} |",
                name,
                app.services.len(),
                seconds,
                if with_hpa {
                    "sim + HPA loop"
                } else {
                    "sim only (baseline)"
                },
                wall,
                steps / wall,
                seconds as f64 / wall
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `graphscale bench forecast`: fit + predict time per model on one week per minute.
pub fn forecast(csv: &std::path::Path, models: &[String]) -> Result<ExitCode> {
    let text =
        std::fs::read_to_string(csv).map_err(|e| anyhow::anyhow!("{}: {e}", csv.display()))?;
    let (t, v) = graphscale_sim::workload::parse_series_csv(
        &text,
        &csv.display().to_string(),
        Some("unix_ts"),
        Some("requests"),
    )?;
    let from = graphscale_sim::workload::parse_time("1998-06-10T00:00:00Z").unwrap_or(0.0);
    let start = t.iter().position(|x| *x >= from).unwrap_or(0);
    let y: Vec<f64> = v[start..].iter().take(10_080).copied().collect();
    anyhow::ensure!(
        y.len() == 10_080,
        "{}: fewer than 10,080 points after 1998-06-10",
        csv.display()
    );
    crate::say!("| model | season | points | fit + predict (30 steps), median of 5, ms |")?;
    crate::say!("|---|---:|---:|---:|")?;
    for name in models {
        let model = graphscale_forecast::models::by_name_with_step(name, 1440, 60)?;
        let mut times = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            let f = model.fit(&y)?;
            let p = f.predict(30, &[])?;
            anyhow::ensure!(p.point.len() == 30, "{name}: short forecast");
            times.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let season = if name == "ets" {
            "none (ETS keeps seasons <= 24)".to_string()
        } else {
            "1440".to_string()
        };
        let season = if name == "persistence" {
            "-".to_string()
        } else {
            season
        };
        crate::say!("| {name} | {season} | {} | {:.2} |", y.len(), times[2])?;
    }
    Ok(ExitCode::SUCCESS)
}
