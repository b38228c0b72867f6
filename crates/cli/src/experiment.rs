//! `demo` and `eval`: experiments over the simulator, their progress bar and reports.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use graphscale_eval::{
    report, run_experiment, AutoscalerSpec, ExperimentResult, ExperimentSpec, ScenarioSpec,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::flags::{DemoArgs, EvalArgs, Seeds};

/// The git revision in `results.json`: `GRAPHSCALE_GIT_REVISION` when set, else the revision the
/// binary was built from (`build.rs`; `unknown` when it was built outside a git checkout).
pub(crate) fn git_revision() -> String {
    std::env::var("GRAPHSCALE_GIT_REVISION")
        .unwrap_or_else(|_| env!("GRAPHSCALE_BUILD_REVISION").to_string())
}

fn progress_bar(total: usize) -> ProgressBar {
    let pb = ProgressBar::new(total as u64);
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} runs {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// Progress over the runs of an experiment: a bar on a terminal; without one the bar is hidden
/// and a line per finished run goes to stderr instead, so a long evaluation written to a log
/// shows it is alive.
pub(crate) struct Progress {
    pb: ProgressBar,
    total: usize,
    done: std::sync::atomic::AtomicUsize,
}

impl Progress {
    pub(crate) fn new(total: usize) -> Self {
        Progress {
            pb: progress_bar(total),
            total,
            done: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// One more run is done.
    pub(crate) fn done(&self, r: &graphscale_eval::RunResult) {
        let what = format!(
            "{} / {} / {} / seed {}",
            r.app, r.scenario, r.autoscaler, r.seed
        );
        let k = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if self.pb.is_hidden() {
            eprintln!(
                "run {k}/{} done after {:.0} s: {what}",
                self.total,
                self.pb.elapsed().as_secs_f64()
            );
        }
        self.pb.set_message(what);
        self.pb.inc(1);
    }

    pub(crate) fn finish(&self) {
        self.pb.finish_and_clear();
    }
}

/// The report files an experiment writes into `out`.
fn report_files(out: &Path) -> [std::path::PathBuf; 2] {
    [out.join("results.json"), out.join("report.html")]
}

/// Refuses, before anything runs, to write into a folder that holds results already (unless
/// `--force`).
fn check_out(out: &Path) -> Result<()> {
    let files = report_files(out);
    graphscale_fsio::ensure_absent(files.iter().map(|p| p.as_path()), crate::app::existing())
        .map_err(Into::into)
}

/// The demo's folder: `--out`, else the first of `graphscale-out/demo`, `demo-2`, ... without
/// results.
fn demo_out(out: Option<std::path::PathBuf>) -> Result<std::path::PathBuf> {
    if let Some(o) = out {
        return Ok(o);
    }
    let base = Path::new("graphscale-out");
    (1..=1000)
        .map(|i| match i {
            1 => base.join("demo"),
            i => base.join(format!("demo-{i}")),
        })
        .find(|d| {
            report_files(d)
                .iter()
                .all(|p| p.symlink_metadata().is_err())
        })
        .context("graphscale-out/demo ... demo-1000 all hold results: pass --out")
}

fn execute(spec: &ExperimentSpec, out: &Path) -> Result<ExperimentResult> {
    spec.validate()?;
    check_out(out)?;
    let progress = Progress::new(
        spec.apps.len() * spec.scenarios.len() * spec.autoscalers.len() * spec.seeds.len(),
    );
    let mut result = run_experiment(spec, &|r| progress.done(r))?;
    progress.finish();
    result.git_revision = git_revision();
    crate::say!("{}", report::table(&result))?;
    let (j, h) = report::write_all(&result, out, crate::app::existing())?;
    crate::say!("\nwrote {} and {}", j.display(), h.display())?;
    Ok(result)
}

/// The demo's autoscalers: the HPA as Kubernetes ships it and as tuned per app
/// (`graphscale tune-hpa`), peak provisioning, graphscale's own autoscaler (the whole-graph SLO
/// planner with CPU requests sized with the plan, memory resized and long holds), the same
/// planner on replicas only with quick holds, and the forecast-fed HPA rule it replaced.
const DEMO_AUTOSCALERS: &str =
    "hpa, hpa-tuned, static, graphscale, graphscale-replicas, graph-trend";

pub(crate) fn demo(a: DemoArgs) -> Result<ExitCode> {
    let out = demo_out(a.out)?;
    let spec = ExperimentSpec {
        apps: vec!["online-boutique".into()],
        scenarios: vec![
            ScenarioSpec::named("worldcup98"),
            ScenarioSpec::named("rush"),
        ],
        autoscalers: DEMO_AUTOSCALERS
            .split(", ")
            .map(AutoscalerSpec::named)
            .collect::<std::result::Result<_, _>>()?,
        seeds: (1..=a.seeds).collect(),
        ..ExperimentSpec::default()
    };
    crate::say!(
        "graphscale demo: Online Boutique (calibrated from real measurements) under the 1998-06-30 WorldCup98 day \
         (24 h) and a flash crowd (1 h); autoscalers: {}; {} seeds.\n",
        DEMO_AUTOSCALERS,
        a.seeds
    )?;
    execute(&spec, &out)?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn eval(a: EvalArgs) -> Result<ExitCode> {
    let mut spec = match &a.spec {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_str::<ExperimentSpec>(&text)
                .with_context(|| format!("{}: invalid experiment spec", p.display()))?
        }
        None => ExperimentSpec::default(),
    };
    if !a.apps.is_empty() {
        spec.apps = a.apps.clone();
    }
    if !a.scenarios.is_empty() {
        spec.scenarios = a.scenarios.iter().map(|s| ScenarioSpec::named(s)).collect();
    }
    if !a.autoscalers.is_empty() {
        spec.autoscalers = a
            .autoscalers
            .iter()
            .map(|s| AutoscalerSpec::named(s))
            .collect::<std::result::Result<_, _>>()?;
    }
    if let Some(Seeds(seeds)) = &a.seeds {
        spec.seeds = seeds.clone();
    }
    // `--autoscalers` without the HPA and without a spec: the first one is the baseline (a
    // spec's `baseline` must name one of its autoscalers; validation says so).
    if a.spec.is_none() && !spec.autoscalers.iter().any(|x| x.name() == spec.baseline) {
        if let Some(first) = spec.autoscalers.first() {
            spec.baseline = first.name().to_string();
        }
    }
    if let Some(d) = a.duration {
        for s in &mut spec.scenarios {
            s.duration_s = Some(d);
        }
    }
    if let Some(share) = a.peak_share {
        for s in &mut spec.scenarios {
            s.peak_share = Some(share);
        }
    }
    if a.slo_ms.is_some() {
        spec.slo_ms = a.slo_ms;
    }
    if let Some(t) = a.threads {
        spec.threads = t;
    }
    if a.warmup.is_some() {
        spec.warmup_s = a.warmup;
    }
    execute(&spec, &a.out)?;
    Ok(ExitCode::SUCCESS)
}
