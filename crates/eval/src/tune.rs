//! The grid search that tunes the HPA per app (`graphscale tune-hpa`): every combination of
//! [`HpaGrid`]'s knobs runs on the same apps, scenarios and seeds, and per app [`choose`] keeps
//! the candidate with the least CPU whose SLO-violation minutes are no more than the default
//! HPA's in any scenario. Its [`TuneReport`] is what `data/hpa-tuned.json` ships.

use std::collections::BTreeMap;

use graphscale_control::tuned::{HpaKnobs, TunedHpa};
use serde::{Deserialize, Serialize};

use crate::runner::{run_all, RunResult};
use crate::{EvalError, ExperimentSpec};

/// Most candidates one grid may make.
pub const MAX_CANDIDATES: usize = 1000;

/// How a candidate is chosen, in the words the report carries.
pub const RULE: &str = "per app, the candidate with the least CPU core-hours (summed over the \
scenarios, mean over the seeds) among those whose mean SLO-violation minutes are no more than the \
default HPA's in every scenario; ties go to fewer violation minutes, then fewer scaling actions";

/// The values each knob takes; every combination is a candidate, and the default HPA is always
/// one of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HpaGrid {
    /// CPU targets, %; default 50, 60, 70, 80, 90.
    pub target_percent: Vec<u32>,
    /// Tolerances; default 0.05, 0.1.
    pub tolerance: Vec<f64>,
    /// Scale-down stabilisation windows, s; default 0, 60, 150, 300.
    pub scale_down_window_s: Vec<u64>,
    /// Scale-up policies as (pods, percent) per 15 s; default (4, 100), the HPA's, and (8, 200).
    pub scale_up: Vec<(u32, u32)>,
}

impl Default for HpaGrid {
    fn default() -> Self {
        HpaGrid {
            target_percent: vec![50, 60, 70, 80, 90],
            tolerance: vec![0.05, 0.1],
            scale_down_window_s: vec![0, 60, 150, 300],
            scale_up: vec![(4, 100), (8, 200)],
        }
    }
}

impl HpaGrid {
    /// Every combination, the default HPA first (added when the grid lacks it), each checked.
    pub fn candidates(&self) -> Result<Vec<HpaKnobs>, EvalError> {
        let count = self.target_percent.len()
            * self.tolerance.len()
            * self.scale_down_window_s.len()
            * self.scale_up.len();
        if count == 0 {
            return Err(EvalError::invalid(
                "grid",
                "the HPA grid needs at least one value for every knob",
            ));
        }
        if count > MAX_CANDIDATES {
            return Err(EvalError::invalid(
                "grid",
                format!("the HPA grid makes {count} candidates; at most {MAX_CANDIDATES}"),
            ));
        }
        let mut out = vec![HpaKnobs::DEFAULT];
        for &target_percent in &self.target_percent {
            for &tolerance in &self.tolerance {
                for &scale_down_window_s in &self.scale_down_window_s {
                    for &(scale_up_pods, scale_up_percent) in &self.scale_up {
                        let k = HpaKnobs {
                            target_percent,
                            tolerance,
                            scale_down_window_s,
                            scale_up_pods,
                            scale_up_percent,
                        };
                        k.check()
                            .map_err(|e| EvalError::invalid("grid", e.to_string()))?;
                        if !out.contains(&k) {
                            out.push(k);
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// One candidate on one scenario: means over the seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScenarioScore {
    /// CPU requested, core-hours.
    pub cpu_core_hours: f64,
    /// Minutes with the end-to-end p95 over the SLO.
    pub violation_minutes: f64,
    /// Scaling actions.
    pub scaling_actions: f64,
}

/// One candidate on one app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateScore {
    /// Its knobs.
    pub knobs: HpaKnobs,
    /// Seed means per scenario.
    pub scenarios: BTreeMap<String, ScenarioScore>,
    /// CPU core-hours, summed over the scenarios.
    pub cpu_core_hours: f64,
    /// SLO-violation minutes, summed over the scenarios.
    pub violation_minutes: f64,
    /// Scaling actions, summed over the scenarios.
    pub scaling_actions: f64,
    /// No more violation minutes than the default HPA in any scenario.
    pub admissible: bool,
}

/// The grid search's result on one app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppTuning {
    /// The app.
    pub app: String,
    /// The chosen candidate's index in `candidates`.
    pub chosen: usize,
    /// The default HPA's index in `candidates`.
    pub default: usize,
    /// Every candidate, in the grid's order (the default first).
    pub candidates: Vec<CandidateScore>,
}

impl AppTuning {
    /// The chosen candidate.
    pub fn chosen(&self) -> &CandidateScore {
        &self.candidates[self.chosen]
    }

    /// The default HPA.
    pub fn default_hpa(&self) -> &CandidateScore {
        &self.candidates[self.default]
    }
}

/// What `graphscale tune-hpa` writes: the chosen knobs per app (the part `hpa-tuned` reads), and
/// the grid, scenarios, seeds and every candidate's scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneReport {
    /// Command, revision, rule and the chosen knobs per app.
    #[serde(flatten)]
    pub tuned: TunedHpa,
    /// The grid searched.
    pub grid: HpaGrid,
    /// The scenarios, seeds and settings each candidate ran.
    pub spec: ExperimentSpec,
    /// Per app, every candidate.
    pub tunings: Vec<AppTuning>,
}

/// Scores `runs` (every candidate of `knobs` on `app`, named by [`HpaKnobs::label`]) and marks
/// the admissible ones against `knobs[0]`, the default HPA.
pub fn score(app: &str, knobs: &[HpaKnobs], runs: &[RunResult]) -> Vec<CandidateScore> {
    let mut scores: Vec<CandidateScore> = knobs
        .iter()
        .map(|k| {
            let label = k.label();
            let mut by_scenario: BTreeMap<String, (ScenarioScore, f64)> = BTreeMap::new();
            for r in runs
                .iter()
                .filter(|r| r.app == app && r.autoscaler == label)
            {
                let (s, n) = by_scenario.entry(r.scenario.clone()).or_insert((
                    ScenarioScore {
                        cpu_core_hours: 0.0,
                        violation_minutes: 0.0,
                        scaling_actions: 0.0,
                    },
                    0.0,
                ));
                s.cpu_core_hours += r.metrics.cpu_core_hours;
                s.violation_minutes += r.metrics.slo_violation_minutes;
                s.scaling_actions += r.metrics.scaling_actions;
                *n += 1.0;
            }
            let scenarios: BTreeMap<String, ScenarioScore> = by_scenario
                .into_iter()
                .map(|(name, (s, n))| {
                    (
                        name,
                        ScenarioScore {
                            cpu_core_hours: s.cpu_core_hours / n,
                            violation_minutes: s.violation_minutes / n,
                            scaling_actions: s.scaling_actions / n,
                        },
                    )
                })
                .collect();
            CandidateScore {
                knobs: *k,
                cpu_core_hours: scenarios.values().map(|s| s.cpu_core_hours).sum(),
                violation_minutes: scenarios.values().map(|s| s.violation_minutes).sum(),
                scaling_actions: scenarios.values().map(|s| s.scaling_actions).sum(),
                scenarios,
                admissible: false,
            }
        })
        .collect();
    mark_admissible(&mut scores);
    scores
}

/// Marks each candidate admissible when its violation minutes are no more than the default
/// HPA's (`scores[0]`) in every scenario the default ran.
pub fn mark_admissible(scores: &mut [CandidateScore]) {
    let base = scores
        .first()
        .map(|s| s.scenarios.clone())
        .unwrap_or_default();
    for s in scores {
        s.admissible = base.iter().all(|(name, b)| {
            s.scenarios
                .get(name)
                .is_some_and(|c| c.violation_minutes <= b.violation_minutes + 1e-9)
        });
    }
}

/// The index of the candidate [`RULE`] chooses; the default HPA (always admissible) when no
/// other is.
pub fn choose(scores: &[CandidateScore]) -> usize {
    let key = |s: &CandidateScore| (s.cpu_core_hours, s.violation_minutes, s.scaling_actions);
    let mut best = 0;
    for (i, s) in scores.iter().enumerate() {
        if s.admissible && (!scores[best].admissible || key(s) < key(&scores[best])) {
            best = i;
        }
    }
    best
}

/// Runs the grid on `spec`'s apps, scenarios and seeds (its autoscalers are ignored) and chooses
/// per app; `progress` is called after each run. `command` and `git_revision` go in the report.
pub fn tune_hpa(
    spec: &ExperimentSpec,
    grid: &HpaGrid,
    command: &str,
    git_revision: &str,
    progress: &(dyn Fn(&RunResult) + Sync),
) -> Result<TuneReport, EvalError> {
    let knobs = grid.candidates()?;
    let run_spec = ExperimentSpec {
        autoscalers: knobs.iter().map(|k| k.spec(&k.label())).collect(),
        baseline: HpaKnobs::DEFAULT.label(),
        ..spec.clone()
    };
    // `run_all` validates the spec; its runs come app by app, in the spec's order.
    let runs = run_all(&run_spec, false, progress)?;
    let mut apps: Vec<&str> = Vec::new();
    for r in &runs {
        if !apps.contains(&r.app.as_str()) {
            apps.push(&r.app);
        }
    }
    let tunings: Vec<AppTuning> = apps
        .iter()
        .map(|&app| {
            let candidates = score(app, &knobs, &runs);
            AppTuning {
                app: app.to_string(),
                chosen: choose(&candidates),
                default: 0,
                candidates,
            }
        })
        .collect();
    Ok(TuneReport {
        tuned: TunedHpa {
            command: command.to_string(),
            git_revision: git_revision.to_string(),
            rule: RULE.to_string(),
            apps: tunings
                .iter()
                .map(|t| (t.app.clone(), t.chosen().knobs))
                .collect(),
        },
        grid: grid.clone(),
        spec: ExperimentSpec {
            autoscalers: Vec::new(),
            ..spec.clone()
        },
        tunings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ScenarioSpec;

    fn cand(target: u32, cpu: f64, viol: &[f64], actions: f64) -> CandidateScore {
        let scenarios: BTreeMap<String, ScenarioScore> = viol
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                (
                    format!("s{i}"),
                    ScenarioScore {
                        cpu_core_hours: cpu / viol.len() as f64,
                        violation_minutes: v,
                        scaling_actions: actions,
                    },
                )
            })
            .collect();
        CandidateScore {
            knobs: HpaKnobs {
                target_percent: target,
                ..HpaKnobs::DEFAULT
            },
            cpu_core_hours: cpu,
            violation_minutes: viol.iter().sum(),
            scaling_actions: actions * viol.len() as f64,
            scenarios,
            admissible: false,
        }
    }

    fn admit(mut c: Vec<CandidateScore>) -> Vec<CandidateScore> {
        mark_admissible(&mut c);
        c
    }

    #[test]
    fn the_cheapest_candidate_no_worse_in_any_scenario_is_chosen() {
        let c = admit(vec![
            cand(80, 10.0, &[1.0, 0.0], 5.0),
            // Cheapest, but worse on the second scenario though better in total.
            cand(90, 7.0, &[0.0, 0.5], 5.0),
            cand(70, 9.0, &[1.0, 0.0], 9.0),
            // As cheap as the one above, fewer violations: the tie goes to it.
            cand(60, 9.0, &[0.5, 0.0], 9.0),
            // Costlier than the default.
            cand(50, 12.0, &[0.0, 0.0], 3.0),
        ]);
        assert!(!c[1].admissible && c[2].admissible && c[4].admissible);
        assert_eq!(choose(&c), 3);
    }

    #[test]
    fn with_no_admissible_candidate_the_default_stays() {
        let c = admit(vec![
            cand(80, 10.0, &[0.0], 5.0),
            cand(90, 5.0, &[0.1], 5.0),
        ]);
        assert_eq!(choose(&c), 0);
    }

    #[test]
    fn the_grid_puts_the_default_first_and_is_bounded() {
        let g = HpaGrid::default();
        let c = g.candidates().unwrap();
        assert_eq!(c.len(), 80);
        assert_eq!(c[0], HpaKnobs::DEFAULT);
        assert!(c.contains(&HpaKnobs::HAND_SET));
        let one = HpaGrid {
            target_percent: vec![60],
            tolerance: vec![0.05],
            scale_down_window_s: vec![60],
            scale_up: vec![(8, 200)],
        };
        assert_eq!(
            one.candidates().unwrap(),
            vec![HpaKnobs::DEFAULT, HpaKnobs::HAND_SET]
        );
        let empty = HpaGrid {
            tolerance: vec![],
            ..HpaGrid::default()
        };
        assert!(empty
            .candidates()
            .unwrap_err()
            .to_string()
            .contains("at least one"));
        let huge = HpaGrid {
            target_percent: (1..=100).collect(),
            tolerance: vec![0.01, 0.02, 0.03, 0.04, 0.05],
            scale_down_window_s: vec![0, 60, 120],
            ..HpaGrid::default()
        };
        assert!(huge
            .candidates()
            .unwrap_err()
            .to_string()
            .contains("at most 1000"));
        let bad = HpaGrid {
            target_percent: vec![0],
            ..HpaGrid::default()
        };
        assert!(bad
            .candidates()
            .unwrap_err()
            .to_string()
            .contains("target_percent"));
    }

    #[test]
    fn a_small_search_runs_and_chooses_per_app() {
        let spec = ExperimentSpec {
            apps: vec!["online-boutique".into(), "event-driven".into()],
            scenarios: vec![ScenarioSpec::named("rush").with_duration(600)],
            seeds: vec![1, 2],
            ..ExperimentSpec::default()
        };
        let grid = HpaGrid {
            target_percent: vec![50, 90],
            tolerance: vec![0.1],
            scale_down_window_s: vec![300],
            scale_up: vec![(4, 100)],
        };
        let r = tune_hpa(&spec, &grid, "graphscale tune-hpa ...", "abc", &|_| {}).unwrap();
        assert_eq!(r.tunings.len(), 2);
        for t in &r.tunings {
            assert_eq!(t.candidates.len(), 3);
            assert!(t.default_hpa().admissible);
            assert_eq!(t.default_hpa().knobs, HpaKnobs::DEFAULT);
            // A lower CPU target requests more CPU than the default: a real measurement.
            let c50 = &t.candidates[1];
            assert_eq!(c50.knobs.target_percent, 50);
            assert!(
                c50.cpu_core_hours > t.default_hpa().cpu_core_hours,
                "{}: {} vs {}",
                t.app,
                c50.cpu_core_hours,
                t.default_hpa().cpu_core_hours
            );
            assert!(t.chosen().admissible);
            assert_eq!(r.tuned.apps[&t.app], t.chosen().knobs);
            assert_eq!(t.candidates[0].scenarios.len(), 1);
        }
        let json = serde_json::to_string(&r).unwrap();
        let back: TunedHpa = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r.tuned, "hpa-tuned reads the report as it is written");
    }
}
