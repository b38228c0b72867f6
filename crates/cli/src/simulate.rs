//! `sim run`: one simulation, its metrics, its series and decision records.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use graphscale_core::{Clock, GraphSeries, Metric, MetricSource, Millis};
use graphscale_eval::{report, AutoscalerSpec, ExperimentSpec, ScenarioSpec};
use graphscale_sim::engine::{SimConfig, Simulator};
use graphscale_sim::{topology, workload::WorkloadSpec};

use crate::flags::SimCommand;

pub(crate) fn sim(cmd: SimCommand) -> Result<ExitCode> {
    let SimCommand::Run {
        app,
        scenario,
        peak_rps,
        autoscaler,
        seed,
        duration,
        series_out,
        record,
    } = cmd
    else {
        anyhow::bail!("internal: `sim serve` is dispatched elsewhere");
    };
    let app = topology::builtin(&app)?;
    let workload = if scenario.ends_with(".csv") {
        graphscale_sim::workload::check_readable(Path::new(&scenario))?;
        WorkloadSpec::Replay {
            path: Some(scenario.clone()),
            time_col: None,
            value_col: None,
            peak_rps: peak_rps.unwrap_or(app.nominal_peak_rps),
            speedup: None,
        }
    } else {
        WorkloadSpec::named(&scenario, peak_rps.unwrap_or(app.nominal_peak_rps))?
    };
    let duration = match duration {
        Some(d) => d,
        None => workload.natural_duration_s()?,
    };
    let spec = ExperimentSpec {
        apps: vec![app.name.clone()],
        scenarios: vec![ScenarioSpec {
            name: scenario.clone(),
            workload: Some(workload.clone()),
            duration_s: Some(duration),
            peak_share: None,
        }],
        autoscalers: vec![AutoscalerSpec::named(&autoscaler)?],
        seeds: vec![seed],
        baseline: autoscaler.clone(),
        ..ExperimentSpec::default()
    };
    let mut lines = Vec::new();
    let mut log_err = None;
    let run = graphscale_eval::run_one_logged(
        &spec,
        &app,
        &spec.scenarios[0],
        &spec.autoscalers[0],
        seed,
        false,
        &mut |r| {
            if record.is_some() && log_err.is_none() {
                match serde_json::to_vec(&r) {
                    Ok(mut v) => {
                        v.push(b'\n');
                        lines.extend_from_slice(&v);
                    }
                    Err(e) => log_err = Some(e),
                }
            }
        },
    )?;
    if let Some(e) = log_err {
        return Err(e.into());
    }
    if let Some(path) = &record {
        report::write_atomic(path, &lines, crate::app::existing())?;
    }
    crate::say!(
        "{} / {} / {} / seed {} / {} s",
        run.app,
        run.scenario,
        run.autoscaler,
        seed,
        duration
    )?;
    for (name, v, _) in run.metrics.fields() {
        crate::say!("  {name:34} {v:.3}")?;
    }
    if let Some(path) = series_out {
        let series = record_series(&app, &workload, &spec.autoscalers[0], seed, duration)?;
        report::write_atomic(&path, series.to_json()?.as_bytes(), crate::app::existing())?;
        crate::say!("wrote {}", path.display())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Re-runs a simulation and samples every node and edge on the scrape grid.
pub(crate) fn record_series(
    app: &graphscale_sim::spec::AppSpec,
    workload: &WorkloadSpec,
    autoscaler: &AutoscalerSpec,
    seed: u64,
    duration: u64,
) -> Result<GraphSeries> {
    let rates = workload.rates(duration, seed)?;
    let cfg = SimConfig {
        seed,
        ..SimConfig::default()
    };
    let step = cfg.scrape_interval_s * 1000;
    let mut sim = Simulator::new(app.clone(), cfg, rates)?;
    // The app is already built (a built-in, random:N or a file): only the autoscaler is checked,
    // against it (validating a whole ExperimentSpec would look the app up by name again).
    let spec = ExperimentSpec::default();
    let scaler = graphscale_eval::build_autoscaler(autoscaler, app)?;
    let graph = sim.graph().clone();
    let len = (duration * 1000 / step) as usize;
    let mut series = GraphSeries::new(graph.clone(), step, step, len);
    let mut ctl = graphscale_control::ControlLoop::simulated(
        scaler,
        Millis::from_secs(spec.decision_offset_s),
    )?;
    let mut k = 0;
    while k < len {
        sim.step();
        let now = sim.now();
        ctl.tick(&mut sim)?;
        if now.0 % step == 0 {
            let snap = sim.observe()?;
            for (i, w) in snap.workloads.iter().enumerate() {
                let st = &sim.stats()[i];
                let m = series.nodes.entry(w.name.clone()).or_default();
                let mut put = |metric: Metric, v: f64| {
                    m.entry(metric).or_insert_with(|| vec![f64::NAN; len])[k] = v
                };
                put(Metric::Rps, w.rps.unwrap_or(f64::NAN));
                put(Metric::CpuMillicores, st.cpu_usage_m);
                put(Metric::MemoryMib, st.memory_mib);
                put(Metric::LatencyP50Ms, st.latency_ms[0]);
                put(Metric::LatencyP95Ms, st.latency_ms[1]);
                put(Metric::LatencyP99Ms, st.latency_ms[2]);
                put(Metric::ErrorRate, w.error_rate.unwrap_or(f64::NAN));
                put(Metric::ReplicasDesired, w.spec_replicas as f64);
                put(Metric::ReplicasReady, w.ready_pods() as f64);
                put(Metric::Backlog, st.waiting as f64);
                put(
                    Metric::Throughput,
                    st.served as f64 / sim.step_len().as_secs_f64(),
                );
            }
            for (name, _, backlog, _, _) in sim.backlogs() {
                let node = name.split('/').next().unwrap_or(&name).to_string();
                let m = series.nodes.entry(node).or_default();
                let v = m.entry(Metric::Backlog).or_insert_with(|| vec![0.0; len]);
                if v[k].is_nan() {
                    v[k] = 0.0;
                }
                v[k] += backlog as f64;
            }
            for e in &snap.edges {
                series.edge_metric_mut(&e.src, &e.dst, e.relation, Metric::Rps)[k] =
                    e.rps.unwrap_or(f64::NAN);
            }
            k += 1;
        }
    }
    series.validate()?;
    Ok(series)
}
