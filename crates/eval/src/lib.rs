//! # graphscale-eval
//!
//! Experiments over the simulator: every autoscaler runs through the same seams
//! ([`graphscale_core::MetricSource`], [`graphscale_core::Autoscaler`],
//! [`graphscale_core::Actuator`]) that a real cluster uses, on apps x scenarios x seeds; each
//! run is measured by [`metrics::Recorder`]; across seeds [`summarize`] gives means, 95 %
//! bootstrap confidence intervals and Cliff's delta against the baseline (the HPA), and
//! [`report`] writes the terminal table, the JSON and the HTML report.
//!
//! ```
//! use graphscale_eval::{run_experiment, ExperimentSpec, ScenarioSpec};
//! let spec = ExperimentSpec {
//!     apps: vec!["event-driven".into()],
//!     scenarios: vec![ScenarioSpec::named("rush").with_duration(120)],
//!     autoscalers: vec!["hpa".into(), "static".into()],
//!     seeds: vec![1, 2],
//!     ..ExperimentSpec::default()
//! };
//! let result = run_experiment(&spec, &|_| {}).unwrap();
//! assert_eq!(result.runs.len(), 4);
//! ```

pub mod metrics;
pub mod report;
pub mod shadow;
pub mod stats;

use std::collections::BTreeMap;
use std::sync::Mutex;

use graphscale_control::ControlLoop;
use graphscale_core::{Autoscaler, Clock, Millis};
use graphscale_sim::engine::{SimConfig, Simulator};
use graphscale_sim::spec::AppSpec;
use graphscale_sim::topology;
use graphscale_sim::workload::WorkloadSpec;
use serde::{Deserialize, Serialize};

use crate::metrics::{MinutePoint, Recorder, RunMetrics};
use crate::stats::{bootstrap_ci, cliffs_delta, mean, Magnitude};

/// Errors of an experiment.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The simulator rejected a spec or failed.
    #[error("{context}")]
    Sim {
        /// Which app, scenario or run.
        context: String,
        /// The simulator's error.
        #[source]
        source: graphscale_sim::SimError,
    },
    /// An autoscaler config is invalid.
    #[error("autoscaler `{name}`")]
    Plan {
        /// The autoscaler's name.
        name: String,
        /// The planner's error.
        #[source]
        source: graphscale_plan::PlanError,
    },
    /// The experiment spec is invalid.
    #[error("invalid experiment: {0}")]
    Invalid(String),
    /// An autoscaler could not be built or a control round failed.
    #[error(transparent)]
    Control(#[from] graphscale_control::ControlError),
    /// Writing a report failed.
    #[error("{path}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A scenario: a named workload or an explicit one, with an optional duration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSpec {
    /// Name in reports; also the named workload when `workload` is absent.
    pub name: String,
    /// Explicit workload; `None` means [`WorkloadSpec::named`] sized to the app's peak.
    #[serde(default)]
    pub workload: Option<WorkloadSpec>,
    /// Seconds to simulate; `None` means the workload's natural duration.
    #[serde(default)]
    pub duration_s: Option<u64>,
}

impl ScenarioSpec {
    /// A named scenario.
    pub fn named(name: &str) -> Self {
        ScenarioSpec {
            name: name.to_string(),
            workload: None,
            duration_s: None,
        }
    }

    /// With a fixed duration.
    pub fn with_duration(mut self, s: u64) -> Self {
        self.duration_s = Some(s);
        self
    }
}

pub use graphscale_control::catalogue::{autoscaler_rnn, AutoscalerSpec};

/// Builds the autoscaler an [`AutoscalerSpec`] describes for `app` (its static facts from the
/// app description), behind the safety layer.
pub fn build_autoscaler(
    spec: &AutoscalerSpec,
    app: &AppSpec,
) -> Result<Box<dyn Autoscaler + Send>, EvalError> {
    let facts = app.facts().map_err(|source| EvalError::Sim {
        context: app.name.clone(),
        source,
    })?;
    Ok(graphscale_control::build(spec, &facts)?)
}

/// The default warm-up of runs of at least 30 minutes, s (see [`ExperimentSpec::warmup_s`]).
pub const DEFAULT_WARMUP_S: u64 = 300;

/// A whole experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExperimentSpec {
    /// Apps: built-in names or app JSON paths; default `online-boutique`.
    pub apps: Vec<String>,
    /// Scenarios; default `rush`.
    pub scenarios: Vec<ScenarioSpec>,
    /// Autoscalers; default `hpa` and `static`.
    pub autoscalers: Vec<AutoscalerSpec>,
    /// Seeds; default 1..=5.
    pub seeds: Vec<u64>,
    /// Simulator settings (its `seed` is replaced by each run's seed).
    pub sim: SimConfig,
    /// Overrides every app's SLO, ms.
    pub slo_ms: Option<f64>,
    /// Seconds after each scrape at which autoscalers decide; default 7 (the HPA's sync is not
    /// aligned with metric scrapes; 7 s is about half a period).
    pub decision_offset_s: u64,
    /// Name of the baseline for Cliff's delta; default `hpa`.
    pub baseline: String,
    /// Worker threads; 0 means one per core.
    pub threads: usize,
    /// Seconds at the start of each run left out of every metric, a whole number of minutes
    /// shorter than the run. Runs start cold (one replica per service), and their first minutes
    /// are the same start-up transient for every autoscaler. Default (`None`): 300 for runs of
    /// at least 30 minutes, 0 for shorter ones; 0 measures from the first second.
    pub warmup_s: Option<u64>,
}

impl Default for ExperimentSpec {
    fn default() -> Self {
        ExperimentSpec {
            apps: vec!["online-boutique".into()],
            scenarios: vec![ScenarioSpec::named("rush")],
            autoscalers: vec!["hpa".into(), "static".into()],
            seeds: (1..=5).collect(),
            sim: SimConfig::default(),
            slo_ms: None,
            decision_offset_s: 7,
            baseline: "hpa".into(),
            threads: 0,
            warmup_s: None,
        }
    }
}

impl ExperimentSpec {
    /// Checks the spec without running it; returns the resolved apps.
    pub fn validate(&self) -> Result<Vec<AppSpec>, EvalError> {
        if self.apps.is_empty()
            || self.scenarios.is_empty()
            || self.autoscalers.is_empty()
            || self.seeds.is_empty()
        {
            return Err(EvalError::Invalid(
                "apps, scenarios, autoscalers and seeds must each be non-empty".into(),
            ));
        }
        if let Some(w) = self.warmup_s {
            if !w.is_multiple_of(60) {
                return Err(EvalError::Invalid(format!(
                    "warmup_s must be a whole number of minutes, got {w} s"
                )));
            }
        }
        if let Some(slo) = self.slo_ms {
            if !(slo.is_finite() && slo > 0.0) {
                return Err(EvalError::Invalid(format!("slo_ms must be > 0, got {slo}")));
            }
        }
        let mut names = std::collections::HashSet::new();
        for a in &self.autoscalers {
            if !names.insert(a.name()) {
                return Err(EvalError::Invalid(format!(
                    "autoscaler name `{}` appears twice",
                    a.name()
                )));
            }
            if let Some(n) = a.name().strip_prefix("unknown:") {
                return Err(AutoscalerSpec::named(n).err().map_or_else(
                    || EvalError::Invalid(format!("unknown autoscaler `{n}`")),
                    EvalError::from,
                ));
            }
        }
        let apps = self
            .apps
            .iter()
            .map(|a| {
                topology::builtin(a).map_err(|source| EvalError::Sim {
                    context: format!("app `{a}`"),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for app in &apps {
            for a in &self.autoscalers {
                build_autoscaler(a, app)?;
            }
            for sc in &self.scenarios {
                self.workload(app, sc)?;
            }
        }
        Ok(apps)
    }

    fn workload(&self, app: &AppSpec, sc: &ScenarioSpec) -> Result<(WorkloadSpec, u64), EvalError> {
        let ctx = |source| EvalError::Sim {
            context: format!("scenario `{}`", sc.name),
            source,
        };
        let w = match &sc.workload {
            Some(w) => w.clone(),
            None => WorkloadSpec::named(&sc.name, app.nominal_peak_rps).map_err(ctx)?,
        };
        let d = match sc.duration_s {
            Some(0) => {
                return Err(EvalError::Invalid(format!(
                    "scenario `{}`: duration must be > 0",
                    sc.name
                )))
            }
            Some(d) => d,
            None => w.natural_duration_s().map_err(ctx)?,
        };
        if let Some(warm) = self.warmup_s {
            if d <= warm {
                return Err(EvalError::Invalid(format!(
                    "scenario `{}`: a {d} s run leaves nothing after the {warm} s warm-up \
                     (lower the warm-up or lengthen the run)",
                    sc.name
                )));
            }
        }
        Ok((w, d))
    }

    /// The warm-up left out of the metrics of a run of `duration_s` seconds: `warmup_s`, or by
    /// default [`DEFAULT_WARMUP_S`] for runs of at least 30 minutes and none for shorter ones.
    pub fn warmup_for(&self, duration_s: u64) -> u64 {
        self.warmup_s.unwrap_or(if duration_s >= 1800 {
            DEFAULT_WARMUP_S
        } else {
            0
        })
    }
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

/// Mean, CI and effect size of one metric for one (app, scenario, autoscaler).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    /// Metric name.
    pub metric: String,
    /// Whether lower values are better.
    pub lower_is_better: bool,
    /// Per-seed values, in seed order.
    pub values: Vec<f64>,
    /// Mean over seeds.
    pub mean: f64,
    /// 95 % bootstrap CI of the mean, lower end.
    pub ci_low: f64,
    /// 95 % bootstrap CI of the mean, upper end.
    pub ci_high: f64,
    /// Cliff's delta against the baseline (negative: lower than the baseline).
    pub cliffs_delta_vs_baseline: Option<f64>,
    /// Its magnitude.
    pub magnitude: Option<Magnitude>,
}

/// All metrics of one (app, scenario, autoscaler).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    /// App.
    pub app: String,
    /// Scenario.
    pub scenario: String,
    /// Autoscaler.
    pub autoscaler: String,
    /// Metrics in [`RunMetrics::fields`] order.
    pub metrics: Vec<MetricSummary>,
}

impl SummaryRow {
    /// A metric by name.
    pub fn get(&self, name: &str) -> Option<&MetricSummary> {
        self.metrics.iter().find(|m| m.metric == name)
    }
}

/// An experiment's spec, runs and summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentResult {
    /// graphscale version that ran it.
    pub graphscale_version: String,
    /// Git revision of the code that ran it (set by the caller; `unknown` if not known).
    pub git_revision: String,
    /// The exact spec.
    pub spec: ExperimentSpec,
    /// Every run.
    pub runs: Vec<RunResult>,
    /// Aggregates across seeds.
    pub summary: Vec<SummaryRow>,
}

/// Aggregates runs across seeds: mean, 95 % bootstrap CI (10,000 resamples, seeded) and Cliff's
/// delta against `baseline`'s runs of the same app and scenario.
pub fn summarize(runs: &[RunResult], baseline: &str) -> Vec<SummaryRow> {
    let mut groups: BTreeMap<(String, String, String), Vec<&RunResult>> = BTreeMap::new();
    let mut order = Vec::new();
    for r in runs {
        let key = (r.app.clone(), r.scenario.clone(), r.autoscaler.clone());
        if !groups.contains_key(&key) {
            order.push(key.clone());
        }
        groups.entry(key).or_default().push(r);
    }
    for g in groups.values_mut() {
        g.sort_by_key(|r| r.seed);
    }
    let values = |g: &[&RunResult], i: usize| -> Vec<f64> {
        g.iter().map(|r| r.metrics.fields()[i].1).collect()
    };
    order
        .iter()
        .map(|key| {
            let g = &groups[key];
            let base = groups.get(&(key.0.clone(), key.1.clone(), baseline.to_string()));
            let fields = g[0].metrics.fields();
            let metrics = fields
                .iter()
                .enumerate()
                .map(|(i, (name, _, lower))| {
                    let v = values(g, i);
                    let (lo, hi) = bootstrap_ci(&v, 0.95, 10_000, 0x9e37_79b9 ^ i as u64);
                    let delta = match base {
                        Some(b) if key.2 != baseline => Some(cliffs_delta(&v, &values(b, i))),
                        _ => None,
                    };
                    MetricSummary {
                        metric: name.to_string(),
                        lower_is_better: *lower,
                        mean: mean(&v),
                        ci_low: lo,
                        ci_high: hi,
                        cliffs_delta_vs_baseline: delta,
                        magnitude: delta.map(Magnitude::of),
                        values: v,
                    }
                })
                .collect();
            SummaryRow {
                app: key.0.clone(),
                scenario: key.1.clone(),
                autoscaler: key.2.clone(),
                metrics,
            }
        })
        .collect()
}

/// Runs every (app, scenario, autoscaler, seed) on worker threads; `progress` is called after
/// each run. The first seed of each combination keeps its timeline. Results are in a fixed
/// order whatever the scheduling.
pub fn run_experiment(
    spec: &ExperimentSpec,
    progress: &(dyn Fn(&RunResult) + Sync),
) -> Result<ExperimentResult, EvalError> {
    let apps = spec.validate()?;
    let mut jobs = Vec::new();
    for app in &apps {
        for sc in &spec.scenarios {
            for a in &spec.autoscalers {
                for (k, &seed) in spec.seeds.iter().enumerate() {
                    jobs.push((app, sc, a, seed, k == 0));
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
    let summary = summarize(&runs, &spec.baseline);
    Ok(ExperimentResult {
        graphscale_version: env!("CARGO_PKG_VERSION").to_string(),
        git_revision: "unknown".into(),
        spec: spec.clone(),
        runs,
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(autoscaler: &str, seed: u64, cpu: f64, viol: f64) -> RunResult {
        RunResult {
            app: "a".into(),
            scenario: "s".into(),
            autoscaler: autoscaler.into(),
            seed,
            duration_s: 60,
            warmup_s: 0,
            slo_ms: 100.0,
            metrics: RunMetrics {
                cpu_core_hours: cpu,
                slo_violation_time_pct: viol,
                ..RunMetrics::default()
            },
            rules: BTreeMap::new(),
            services: vec![],
            timeline: vec![],
        }
    }

    #[test]
    fn summary_compares_against_the_baseline_per_seed() {
        let runs = vec![
            run("hpa", 1, 10.0, 5.0),
            run("hpa", 2, 11.0, 6.0),
            run("hpa", 3, 12.0, 7.0),
            run("x", 1, 20.0, 1.0),
            run("x", 2, 21.0, 0.5),
            run("x", 3, 22.0, 0.0),
        ];
        let s = summarize(&runs, "hpa");
        assert_eq!(s.len(), 2);
        let hpa = &s[0];
        assert_eq!(hpa.autoscaler, "hpa");
        assert!(hpa
            .get("cpu_core_hours")
            .unwrap()
            .cliffs_delta_vs_baseline
            .is_none());
        let x = &s[1];
        let cpu = x.get("cpu_core_hours").unwrap();
        assert_eq!(cpu.values, vec![20.0, 21.0, 22.0]);
        assert_eq!(cpu.mean, 21.0);
        assert_eq!(cpu.cliffs_delta_vs_baseline, Some(1.0));
        assert_eq!(cpu.magnitude, Some(Magnitude::Large));
        assert!(cpu.ci_low >= 20.0 && cpu.ci_high <= 22.0 && cpu.ci_low < cpu.ci_high);
        let v = x.get("slo_violation_time_pct").unwrap();
        assert_eq!(v.cliffs_delta_vs_baseline, Some(-1.0));
    }

    #[test]
    fn invalid_experiments_are_rejected() {
        let e = ExperimentSpec {
            seeds: vec![],
            ..ExperimentSpec::default()
        };
        assert!(e.validate().is_err());
        let e = ExperimentSpec {
            autoscalers: vec!["hpa".into(), "hpa".into()],
            ..ExperimentSpec::default()
        };
        assert!(e
            .validate()
            .unwrap_err()
            .to_string()
            .contains("appears twice"));
        let e = ExperimentSpec {
            scenarios: vec![ScenarioSpec::named("rush").with_duration(0)],
            ..ExperimentSpec::default()
        };
        assert!(e
            .validate()
            .unwrap_err()
            .to_string()
            .contains("duration must be > 0"));
    }

    #[test]
    fn the_documented_experiment_example_parses() {
        let doc = include_str!("../../../docs/schema.md");
        let start = doc.find("## Experiment").unwrap();
        let block = &doc[start..];
        let json = &block[block.find("```json").unwrap() + 7..];
        let json = &json[..json.find("```").unwrap()];
        let spec: ExperimentSpec = serde_json::from_str(json).unwrap();
        assert_eq!(spec.autoscalers.len(), 4);
        assert_eq!(spec.autoscalers[1].name(), "hpa-tuned");
        match &spec.autoscalers[3] {
            AutoscalerSpec::Predictive { config, .. } => assert_eq!(
                config.vertical.update,
                graphscale_plan::vertical::VerticalUpdate::Memory
            ),
            other => panic!("{other:?}"),
        }
        // A misspelt mode is named.
        let bad = json.replace(r#""update": "memory""#, r#""update": "cpu""#);
        let e = serde_json::from_str::<ExperimentSpec>(&bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cpu") && e.contains("memory"), "{e}");
        let graph_block = &doc[doc.find("```json").unwrap() + 7..];
        let graph_json = &graph_block[..graph_block.find("```").unwrap()];
        graphscale_core::AppGraph::from_json(graph_json, "docs/schema.md").unwrap();
    }
}
