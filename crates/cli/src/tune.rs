//! `tune-hpa`: the grid search over the HPA's knobs per app, its table and report.

use std::process::ExitCode;

use anyhow::Result;
use graphscale_control::tuned::HpaKnobs;
use graphscale_eval::tune::{tune_hpa as search, AppTuning, CandidateScore, HpaGrid};
use graphscale_eval::{ExperimentSpec, ScenarioSpec};

use crate::experiment::{git_revision, Progress};
use crate::flags::TuneHpaArgs;

/// Candidates shown per app besides the default, the hand-set and the chosen one.
const SHOWN: usize = 5;

pub(crate) fn tune_hpa(a: TuneHpaArgs) -> Result<ExitCode> {
    graphscale_fsio::ensure_absent([a.out.as_path()], crate::app::existing())?;
    let spec = ExperimentSpec {
        apps: a.apps.clone(),
        scenarios: a
            .scenarios
            .iter()
            .map(|s| ScenarioSpec {
                duration_s: a.duration,
                ..ScenarioSpec::named(s)
            })
            .collect(),
        seeds: a.seeds.0.clone(),
        threads: a.threads,
        warmup_s: a.warmup,
        ..ExperimentSpec::default()
    };
    let grid = HpaGrid {
        target_percent: a.targets.clone(),
        tolerance: a.tolerances.clone(),
        scale_down_window_s: a.windows.clone(),
        scale_up: a.scale_up.clone(),
    };
    let candidates = grid.candidates()?.len();
    let progress =
        Progress::new(spec.apps.len() * spec.scenarios.len() * spec.seeds.len() * candidates);
    let command = std::iter::once("graphscale".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let report = search(&spec, &grid, &command, &git_revision(), &|r| {
        progress.done(r)
    })?;
    progress.finish();
    for t in &report.tunings {
        crate::say!("{}", table(t))?;
    }
    let json = serde_json::to_vec_pretty(&report)?;
    graphscale_fsio::write(&a.out, &json, crate::app::existing())?;
    crate::say!(
        "wrote {} (copy it to data/hpa-tuned.json for `hpa-tuned` to use it)",
        a.out.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// One app's table: the chosen candidate, the default, the hand-set one and the cheapest
/// admissible others.
fn table(t: &AppTuning) -> String {
    let base = t.default_hpa().cpu_core_hours;
    let mut order: Vec<usize> = vec![t.chosen, t.default];
    if let Some(h) = t
        .candidates
        .iter()
        .position(|c| c.knobs == HpaKnobs::HAND_SET)
    {
        order.push(h);
    }
    let mut rest: Vec<usize> = (0..t.candidates.len())
        .filter(|i| t.candidates[*i].admissible && !order.contains(i))
        .collect();
    rest.sort_by(|&i, &j| {
        t.candidates[i]
            .cpu_core_hours
            .total_cmp(&t.candidates[j].cpu_core_hours)
    });
    order.extend(rest.into_iter().take(SHOWN));
    let admissible = t.candidates.iter().filter(|c| c.admissible).count();
    let mut out = format!(
        "{}: {} candidates, {} with no more violation minutes than the default HPA in any scenario\n\
         {:<38} {:>10} {:>8} {:>10} {:>8}  {}\n",
        t.app,
        t.candidates.len(),
        admissible,
        "candidate",
        "CPU core-h",
        "vs hpa",
        "viol. min",
        "actions",
        "note"
    );
    let mut seen = Vec::new();
    // The chosen candidate may be the default or the hand-set one: each row once.
    for i in order {
        if seen.contains(&i) {
            continue;
        }
        seen.push(i);
        let c: &CandidateScore = &t.candidates[i];
        let mut notes = Vec::new();
        if i == t.chosen {
            notes.push("chosen");
        }
        if i == t.default {
            notes.push("default hpa");
        }
        if c.knobs == HpaKnobs::HAND_SET {
            notes.push("hand-set");
        }
        if !c.admissible {
            notes.push("more violations");
        }
        out.push_str(&format!(
            "{:<38} {:>10.2} {:>7.1}% {:>10.2} {:>8.1}  {}\n",
            c.knobs.label(),
            c.cpu_core_hours,
            100.0 * (c.cpu_core_hours / base - 1.0),
            c.violation_minutes,
            c.scaling_actions,
            notes.join(", ")
        ));
    }
    out
}
