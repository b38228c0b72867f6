//! What an experiment is: apps, scenarios, autoscalers, seeds and settings, validated before
//! anything runs.

use graphscale_sim::engine::SimConfig;
use graphscale_sim::spec::AppSpec;
use graphscale_sim::topology;
use graphscale_sim::workload::WorkloadSpec;
use serde::{Deserialize, Serialize};

use crate::runner::build_autoscaler;
use crate::{AutoscalerSpec, EvalError};

/// The longest scenario a spec may ask for, seconds (366 days).
pub const MAX_DURATION_S: u64 = 366 * 86_400;
/// Most seeds of one experiment.
pub const MAX_SEEDS: usize = 10_000;

/// The largest `peak_share` of a scenario.
pub const MAX_PEAK_SHARE: f64 = 100.0;

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
    /// The load relative to each app: a named scenario or a replayed `*.csv` (no `workload`)
    /// is sized for this share of the app's `nominal_peak_rps`, in (0, 100]; default 1.
    #[serde(default)]
    pub peak_share: Option<f64>,
}

impl ScenarioSpec {
    /// A named scenario.
    pub fn named(name: &str) -> Self {
        ScenarioSpec {
            name: name.to_string(),
            workload: None,
            duration_s: None,
            peak_share: None,
        }
    }

    /// With a fixed duration.
    pub fn with_duration(mut self, s: u64) -> Self {
        self.duration_s = Some(s);
        self
    }
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
            let empty = [
                ("apps", self.apps.is_empty()),
                ("scenarios", self.scenarios.is_empty()),
                ("autoscalers", self.autoscalers.is_empty()),
                ("seeds", self.seeds.is_empty()),
            ];
            let field = empty.iter().find(|(_, e)| *e).map_or("apps", |(f, _)| f);
            return Err(EvalError::invalid(
                field,
                "apps, scenarios, autoscalers and seeds must each be non-empty",
            ));
        }
        if self.seeds.len() > MAX_SEEDS {
            return Err(EvalError::invalid(
                "seeds",
                format!("{} seeds, at most {MAX_SEEDS}", self.seeds.len()),
            ));
        }
        if let Some(w) = self.warmup_s {
            if !w.is_multiple_of(60) {
                return Err(EvalError::invalid(
                    "warmup_s",
                    format!("must be a whole number of minutes, got {w} s"),
                ));
            }
        }
        if let Some(slo) = self.slo_ms {
            if !(slo.is_finite() && slo > 0.0) {
                return Err(EvalError::invalid(
                    "slo_ms",
                    format!("must be > 0, got {slo}"),
                ));
            }
        }
        if !self.autoscalers.iter().any(|a| a.name() == self.baseline) {
            return Err(EvalError::invalid(
                "baseline",
                format!(
                    "`{}` is not one of the autoscalers ({}): every comparison would be empty",
                    graphscale_core::error::quote(&self.baseline),
                    self.autoscalers
                        .iter()
                        .map(|a| a.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for a in &self.autoscalers {
            if !names.insert(a.name()) {
                return Err(EvalError::invalid(
                    "autoscalers",
                    format!("the name `{}` appears twice", a.name()),
                ));
            }
            if let Some(n) = a.name().strip_prefix("unknown:") {
                return Err(AutoscalerSpec::named(n).err().map_or_else(
                    || EvalError::invalid("autoscalers", format!("unknown autoscaler `{n}`")),
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

    pub(crate) fn workload(
        &self,
        app: &AppSpec,
        sc: &ScenarioSpec,
    ) -> Result<(WorkloadSpec, u64), EvalError> {
        let ctx = |source| EvalError::Sim {
            context: format!("scenario `{}`", sc.name),
            source,
        };
        let field = |f: &str| format!("scenarios[{}].{f}", sc.name);
        let share = match sc.peak_share {
            None => 1.0,
            Some(x) if x.is_finite() && x > 0.0 && x <= MAX_PEAK_SHARE => x,
            Some(x) => {
                return Err(EvalError::invalid(
                    field("peak_share"),
                    format!("{x} is not in (0, {MAX_PEAK_SHARE}]"),
                ))
            }
        };
        if sc.peak_share.is_some() && sc.workload.is_some() {
            return Err(EvalError::invalid(
                field("peak_share"),
                "sizes a named or replayed scenario; an explicit workload gives its own rates",
            ));
        }
        let peak = app.nominal_peak_rps * share;
        let w = match &sc.workload {
            Some(w) => w.clone(),
            // A CSV file is replayed as `sim run` does, its maximum scaled to each app's nominal
            // peak, so one spec serves several apps.
            None if sc.name.ends_with(".csv") => {
                graphscale_sim::workload::check_readable(std::path::Path::new(&sc.name))
                    .map_err(ctx)?;
                WorkloadSpec::Replay {
                    path: Some(sc.name.clone()),
                    time_col: None,
                    value_col: None,
                    peak_rps: peak,
                    speedup: None,
                }
            }
            None => WorkloadSpec::named(&sc.name, peak).map_err(ctx)?,
        };
        let d = match sc.duration_s {
            Some(0) => return Err(EvalError::invalid(field("duration_s"), "must be > 0")),
            Some(d) if d > MAX_DURATION_S => {
                return Err(EvalError::invalid(
                    field("duration_s"),
                    format!("{d} is more than {MAX_DURATION_S} (366 days)"),
                ))
            }
            Some(d) => d,
            None => w.natural_duration_s().map_err(ctx)?,
        };
        if let Some(warm) = self.warmup_s {
            if d <= warm {
                return Err(EvalError::invalid(
                    field("duration_s"),
                    format!(
                        "a {d} s run leaves nothing after the {warm} s warm-up \
                         (lower the warm-up or lengthen the run)"
                    ),
                ));
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

#[cfg(test)]
mod tests {
    use super::*;

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
            .contains("scenarios[rush].duration_s: must be > 0"));
        // u64::MAX seconds would be allocated as workload rates: refused with the limit.
        let e = ExperimentSpec {
            scenarios: vec![ScenarioSpec::named("rush").with_duration(u64::MAX)],
            ..ExperimentSpec::default()
        };
        let msg = e.validate().unwrap_err().to_string();
        assert!(
            msg.contains("scenarios[rush].duration_s: 18446744073709551615 is more than 31622400"),
            "{msg}"
        );
        let e = ExperimentSpec {
            seeds: (0..20_000).collect(),
            ..ExperimentSpec::default()
        };
        assert!(e
            .validate()
            .unwrap_err()
            .to_string()
            .contains("seeds: 20000 seeds, at most 10000"));
        let e = ExperimentSpec {
            baseline: "hpa2".into(),
            ..ExperimentSpec::default()
        };
        let msg = e.validate().unwrap_err().to_string();
        assert!(
            msg.contains("baseline: `hpa2` is not one of the autoscalers"),
            "{msg}"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64), ..Default::default() })]
        /// A mutated spec (`--spec`) parses and validates, or says what is wrong; never a panic.
        #[test]
        fn mutated_specs_never_panic(
            edits in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()), 0..6),
        ) {
            let base = br#"{"apps": ["event-driven"], "scenarios": [{"name": "rush", "duration_s": 600}],
                "autoscalers": ["hpa", {"kind": "static", "name": "s", "replicas": 3}],
                "seeds": [1, 2], "warmup_s": 60, "baseline": "hpa"}"#;
            let mut b = base.to_vec();
            for (i, byte) in edits {
                let at = i.index(b.len());
                b[at] = byte;
            }
            if let Ok(spec) = serde_json::from_slice::<ExperimentSpec>(&b) {
                let _ = spec.validate();
            }
        }
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
