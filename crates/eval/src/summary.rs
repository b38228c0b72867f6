//! Across seeds: means, 95 % bootstrap confidence intervals and Cliff's delta against a baseline.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::runner::RunResult;
use crate::stats::{bootstrap_ci, cliffs_delta, mean, Magnitude};
use crate::{AutoscalerSpec, ExperimentSpec};

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
    /// The spec each autoscaler ran with on each app, where it differs from the experiment's
    /// entry: `hpa-tuned` with the knobs tuned for that app, an SLO planner with the app's SLO.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolved: Vec<ResolvedAutoscaler>,
}

/// What an autoscaler of the experiment became on one app ([`crate::resolve_autoscaler`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedAutoscaler {
    /// App name.
    pub app: String,
    /// Autoscaler name, as in the runs.
    pub autoscaler: String,
    /// The spec it ran with.
    pub spec: AutoscalerSpec,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::RunMetrics;

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
}
