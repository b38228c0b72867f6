//! Runs experiments: one run drives the simulator with the control loop and measures it;
//! [`run_experiment`] runs every (app, scenario, autoscaler, seed) on worker threads.

use std::collections::BTreeMap;
use std::sync::Mutex;

use graphscale_control::ControlLoop;
use graphscale_core::{Autoscaler, Clock, Millis};
use graphscale_sim::engine::{SimConfig, Simulator};
use graphscale_sim::spec::AppSpec;
use serde::{Deserialize, Serialize};

use crate::metrics::{MinutePoint, Recorder, RunMetrics};
use crate::summary::{summarize, ExperimentResult, ResolvedAutoscaler};
use crate::{AutoscalerSpec, EvalError, ExperimentSpec, ScenarioSpec};

/// Builds the autoscaler an [`AutoscalerSpec`] describes for `app` (its static facts from the
/// app description, and the app's SLO for an SLO planner that has none), behind the safety
/// layer.
pub fn build_autoscaler(
    spec: &AutoscalerSpec,
    app: &AppSpec,
) -> Result<Box<dyn Autoscaler + Send>, EvalError> {
    let facts = app.facts().map_err(|source| EvalError::Sim {
        context: app.name.clone(),
        source,
    })?;
    Ok(graphscale_control::build(
        &resolve_autoscaler(spec, app),
        &facts,
    )?)
}

/// The spec `spec` runs with on `app`: `hpa-tuned` takes the knobs tuned for the app, and an SLO
/// planner without an SLO takes the app's.
pub fn resolve_autoscaler(spec: &AutoscalerSpec, app: &AppSpec) -> AutoscalerSpec {
    spec.clone().for_app(&app.name).with_default_slo(app.slo_ms)
}

/// One run's identity and measurements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// App name.
    pub app: String,
    /// Scenario name.
    pub scenario: String,
    /// Autoscaler name.
    pub autoscaler: String,
    /// Seed.
    pub seed: u64,
    /// Simulated seconds.
    pub duration_s: u64,
    /// Seconds at the start left out of the metrics (the timeline keeps them).
    #[serde(default)]
    pub warmup_s: u64,
    /// SLO used, ms.
    pub slo_ms: f64,
    /// The measurements.
    pub metrics: RunMetrics,
    /// How often each decision rule fired (from the decisions' reasons).
    pub rules: BTreeMap<String, u64>,
    /// Service names, in the order of the timeline's vectors.
    pub services: Vec<String>,
    /// Per-minute timeline (kept for the first seed only).
    pub timeline: Vec<MinutePoint>,
}

/// One decision round as the control loop saw it: for `graphscale sim run --record` and the
/// shadow report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// What the autoscaler saw.
    pub snapshot: graphscale_core::ClusterSnapshot,
    /// What it decided, with reasons.
    pub decisions: Vec<graphscale_core::ScalingDecision>,
}

/// Runs one autoscaler on one app, scenario and seed.
pub fn run_one(
    spec: &ExperimentSpec,
    app: &AppSpec,
    scenario: &ScenarioSpec,
    autoscaler: &AutoscalerSpec,
    seed: u64,
    keep_timeline: bool,
) -> Result<RunResult, EvalError> {
    run_one_logged(
        spec,
        app,
        scenario,
        autoscaler,
        seed,
        keep_timeline,
        &mut |_| {},
    )
}

/// [`run_one`], handing every decision round to `log`.
pub fn run_one_logged(
    spec: &ExperimentSpec,
    app: &AppSpec,
    scenario: &ScenarioSpec,
    autoscaler: &AutoscalerSpec,
    seed: u64,
    keep_timeline: bool,
    log: &mut dyn FnMut(DecisionRecord),
) -> Result<RunResult, EvalError> {
    let span = tracing::info_span!("run", app = %app.name, scenario = %scenario.name, autoscaler = autoscaler.name(), seed);
    let _enter = span.enter();
    let (workload, duration) = spec.workload(app, scenario)?;
    let sim_err = |source| EvalError::Sim {
        context: format!(
            "{} / {} / {} / seed {seed}",
            app.name,
            scenario.name,
            autoscaler.name()
        ),
        source,
    };
    let rates = workload.rates(duration, seed).map_err(sim_err)?;
    let warmup_s = spec.warmup_for(duration);
    let cfg = SimConfig {
        seed,
        ..spec.sim.clone()
    };
    let mut sim = Simulator::new(app.clone(), cfg, rates).map_err(sim_err)?;
    let scaler = build_autoscaler(autoscaler, app)?;
    let slo = spec.slo_ms.unwrap_or(app.slo_ms);
    let mut rec = Recorder::new(&sim, slo, keep_timeline).with_warmup(Millis::from_secs(warmup_s));
    let mut ctl = ControlLoop::simulated(scaler, Millis::from_secs(spec.decision_offset_s))?;
    let steps = duration * 1000 / sim.step_len().0;
    let mut rules: BTreeMap<String, u64> = BTreeMap::new();
    for _ in 0..steps {
        sim.step();
        rec.record(&sim);
        if let Some(round) = ctl.tick(&mut sim)? {
            for d in &round.decisions {
                for r in &d.reasons {
                    *rules.entry(r.rule.clone()).or_default() += 1;
                }
            }
            log(DecisionRecord {
                snapshot: round.snapshot,
                decisions: round.decisions,
            });
        }
    }
    let (metrics, timeline) = rec.finish(sim.now());
    Ok(RunResult {
        app: app.name.clone(),
        scenario: scenario.name.clone(),
        autoscaler: autoscaler.name().to_string(),
        seed,
        duration_s: duration,
        warmup_s,
        slo_ms: slo,
        metrics,
        rules,
        services: app.services.iter().map(|s| s.name.clone()).collect(),
        timeline,
    })
}

/// Runs every (app, scenario, autoscaler, seed) on worker threads; `progress` is called after
/// each run. The first seed of each combination keeps its timeline. Results are in a fixed
/// order whatever the scheduling.
pub fn run_experiment(
    spec: &ExperimentSpec,
    progress: &(dyn Fn(&RunResult) + Sync),
) -> Result<ExperimentResult, EvalError> {
    let apps = spec.validate()?;
    let runs = run_jobs(spec, &apps, true, progress)?;
    let summary = summarize(&runs, &spec.baseline);
    let mut resolved = Vec::new();
    for app in &apps {
        for a in &spec.autoscalers {
            let r = resolve_autoscaler(a, app);
            if &r != a {
                resolved.push(ResolvedAutoscaler {
                    app: app.name.clone(),
                    autoscaler: a.name().to_string(),
                    spec: r,
                });
            }
        }
    }
    Ok(ExperimentResult {
        graphscale_version: env!("CARGO_PKG_VERSION").to_string(),
        git_revision: "unknown".into(),
        spec: spec.clone(),
        runs,
        summary,
        resolved,
    })
}

/// Every (app, scenario, autoscaler, seed) of `spec` on worker threads, in a fixed order, with
/// no summary; the first seed of each combination keeps its timeline when `timelines`.
pub fn run_all(
    spec: &ExperimentSpec,
    timelines: bool,
    progress: &(dyn Fn(&RunResult) + Sync),
) -> Result<Vec<RunResult>, EvalError> {
    run_jobs(spec, &spec.validate()?, timelines, progress)
}

/// [`run_all`] on the apps `spec.validate()` returned.
fn run_jobs(
    spec: &ExperimentSpec,
    apps: &[AppSpec],
    timelines: bool,
    progress: &(dyn Fn(&RunResult) + Sync),
) -> Result<Vec<RunResult>, EvalError> {
    let mut jobs = Vec::new();
    for app in apps {
        for sc in &spec.scenarios {
            for a in &spec.autoscalers {
                for (k, &seed) in spec.seeds.iter().enumerate() {
                    jobs.push((app, sc, a, seed, timelines && k == 0));
                }
            }
        }
    }
    let threads = if spec.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        spec.threads
    }
    .min(jobs.len())
    .max(1);
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<Result<RunResult, EvalError>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(&(app, sc, a, seed, keep)) = jobs.get(i) else {
                    break;
                };
                let r = run_one(spec, app, sc, a, seed, keep);
                if let Ok(run) = &r {
                    progress(run);
                }
                let failed = r.is_err();
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                if failed {
                    // Stop handing out work after an error.
                    *next.lock().unwrap_or_else(|e| e.into_inner()) = jobs.len();
                }
            });
        }
    });
    let mut runs = Vec::with_capacity(jobs.len());
    for r in results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
    {
        runs.push(r?);
    }
    Ok(runs)
}
