//! `graphscale rl train` and `graphscale rl eval`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::tensor::Device;
use graphscale_rl::checkpoint::{self, Manifest, FORMAT, FORMAT_VERSION};
use graphscale_rl::env::{EnvConfig, SimEnv, VecEnv};
use graphscale_rl::policy::{Encoder, GraphTensors, NetConfig, ObsBatch};
use graphscale_rl::ppo::{greedy, CurveRow, PpoConfig, Trainer};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;

use crate::flags_rl::{RlCommand, TrainArgs};

/// The settings file of `rl train --config`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    ppo: PpoConfig,
    env: EnvConfig,
    net: NetConfig,
}

/// Settings files are small.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

fn settings(path: &Path) -> Result<Settings> {
    let bytes = graphscale_fsio::read_at_most(path, MAX_CONFIG_BYTES)
        .with_context(|| format!("reading {}", path.display()))?;
    let text =
        String::from_utf8(bytes).with_context(|| format!("{}: not UTF-8", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}", path.display()))
}

fn bar(total: u64, unit: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} {unit} {{msg}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// `OUT.optim`: Adam's state beside a checkpoint.
fn optim_path(out: &Path) -> PathBuf {
    PathBuf::from(format!("{}.optim", out.as_os_str().to_string_lossy()))
}

/// The most bytes of an optimiser state read back.
const MAX_OPTIM_BYTES: u64 = 256 << 20;

/// `OUT.curve.csv` and `OUT.curve.svg`.
fn curve_paths(out: &Path) -> (PathBuf, PathBuf) {
    let s = out.as_os_str().to_string_lossy();
    (
        PathBuf::from(format!("{s}.curve.csv")),
        PathBuf::from(format!("{s}.curve.svg")),
    )
}

/// Runs `graphscale rl`.
pub(crate) fn rl(cmd: RlCommand) -> Result<ExitCode> {
    match cmd {
        RlCommand::Train(a) => train(&a),
        RlCommand::Eval {
            policy,
            scenarios,
            seeds,
            duration,
        } => eval(&policy, &scenarios, &seeds.0, duration),
    }
}

fn train(a: &TrainArgs) -> Result<ExitCode> {
    if !(1..=100_000).contains(&a.updates) {
        bail!("--updates {}: must be in 1..=100000", a.updates);
    }
    if !(1..=64).contains(&a.threads) {
        bail!("--threads {}: must be in 1..=64", a.threads);
    }
    let app =
        graphscale_sim::topology::builtin(&a.app).with_context(|| format!("--app {}", a.app))?;
    let mut encoder = Encoder::parse(&a.encoder).context("--encoder")?;
    let mut set = match &a.config {
        Some(p) => settings(p)?,
        None => Settings::default(),
    };
    let device = Device::flex().autodiff();
    let mut start = None;
    // The curve's CSV lines so far (a resumed run continues its checkpoint's curve file).
    let mut lines: Vec<String> = Vec::new();
    let mut points: Vec<(f64, f64)> = Vec::new();
    if let Some(path) = &a.resume {
        let (net, m) = checkpoint::load(path, &device).context("--resume")?;
        if m.app != a.app {
            bail!(
                "--resume {}: a policy for app `{}`, not `{}`",
                path.display(),
                m.app,
                a.app
            );
        }
        encoder = m.encoder;
        if a.config.is_none() {
            set = Settings {
                ppo: m.ppo.clone(),
                env: m.env.clone(),
                net: m.net,
            };
        } else if set.net != m.net {
            bail!("--config: its network settings differ from the resumed checkpoint's");
        }
        let (old_csv, _) = curve_paths(path);
        if old_csv.exists() {
            let bytes = graphscale_fsio::read_at_most(&old_csv, 64 << 20)
                .with_context(|| format!("reading {}", old_csv.display()))?;
            let text = String::from_utf8_lossy(&bytes);
            for (k, line) in text.lines().enumerate().skip(1) {
                let f: Vec<&str> = line.split(',').collect();
                let num = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok());
                let (Some(steps), Some(r)) = (num(1), num(3)) else {
                    bail!("{}: line {}: not a curve row", old_csv.display(), k + 1);
                };
                lines.push(line.to_string());
                points.push((steps, r));
            }
        }
        start = Some((net, m.updates, m.env_steps));
    }
    set.ppo.seed = a.seed;
    let done = start.as_ref().map_or(0, |s| s.1);
    // Resumed episodes use seeds after the ones already seen.
    let env_seed = a.seed.wrapping_add((done * a.envs) as u64 * 1_000);
    let venv = VecEnv::new(&app, &set.env, a.envs, env_seed, a.threads)?;
    let graph = venv.graph().clone();
    if let Some((net, _, _)) = &start {
        if net.encoder() != encoder {
            bail!("--resume: the checkpoint's encoder differs");
        }
    }
    if a.out.exists() && crate::app::existing() == graphscale_fsio::Existing::Keep {
        bail!(
            "{} exists: pass --force to replace it, or write elsewhere",
            a.out.display()
        );
    }
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut tr = Trainer::new(venv, encoder, &set.net, set.ppo.clone(), start)?;
    if let Some(path) = &a.resume {
        let op = optim_path(path);
        if op.exists() {
            let bytes = graphscale_fsio::read_at_most(&op, MAX_OPTIM_BYTES)
                .with_context(|| format!("reading {}", op.display()))?;
            tr.load_optimizer_state(bytes)
                .with_context(|| op.display().to_string())?;
            crate::say!(
                "resuming from {} with its optimiser state ({})",
                path.display(),
                op.display()
            )?;
        } else {
            crate::say!(
                "resuming from {}; no {} beside it: the optimiser's moments start afresh",
                path.display(),
                op.display()
            )?;
        }
    }
    crate::say!(
        "training a {} policy for {} ({} workloads, {} links): {} updates of {} environments x {} steps ({} s episodes, random loads from seed {})",
        encoder.name(),
        a.app,
        graph.len(),
        graph.links.len(),
        a.updates,
        a.envs,
        set.ppo.rollout_steps,
        set.env.episode_s,
        env_seed
    )?;
    let pb = bar(a.updates as u64, "updates");
    let save = |tr: &Trainer<VecEnv>, lines: &[String], points: &[(f64, f64)]| -> Result<()> {
        let m = Manifest {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            encoder,
            net: set.net,
            app: a.app.clone(),
            graph: graph.clone(),
            ppo: set.ppo.clone(),
            env: set.env.clone(),
            updates: tr.updates(),
            env_steps: tr.env_steps(),
            graphscale_version: env!("CARGO_PKG_VERSION").into(),
        };
        // This run's own file: replaced at every checkpoint.
        checkpoint::save(
            &a.out,
            &tr.net().valid(),
            &m,
            graphscale_fsio::Existing::Replace,
        )?;
        let (csv, svg) = curve_paths(&a.out);
        let mut text = String::from(CurveRow::HEADER);
        text.push('\n');
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        graphscale_fsio::write(&csv, text.as_bytes(), graphscale_fsio::Existing::Replace)
            .with_context(|| csv.display().to_string())?;
        let plot = plot_curve(points, &format!("{} policy, {}", encoder.name(), a.app))
            .map_err(|e| anyhow::anyhow!("plotting the curve: {e}"))?;
        graphscale_fsio::write(&svg, plot.as_bytes(), graphscale_fsio::Existing::Replace)
            .with_context(|| svg.display().to_string())?;
        Ok(())
    };
    let mut secs = 0.0;
    for k in 1..=a.updates {
        let row = tr.update()?;
        pb.set_message(format!(
            "reward/step {:.3}{}",
            row.mean_reward,
            row.episode_return
                .map_or(String::new(), |r| format!(", episode return {r:.1}"))
        ));
        pb.inc(1);
        secs += row.seconds;
        lines.push(row.csv());
        points.push((row.env_steps as f64, row.mean_reward));
        if a.checkpoint_every > 0 && k % a.checkpoint_every == 0 && k < a.updates {
            save(&tr, &lines, &points)?;
        }
    }
    pb.finish_and_clear();
    save(&tr, &lines, &points)?;
    let last = points.iter().rev().take(5).collect::<Vec<_>>();
    let mean = last.iter().map(|r| r.1).sum::<f64>() / last.len().max(1) as f64;
    let first = points.first().map_or(f64::NAN, |r| r.1);
    crate::say!(
        "{} updates, {} environment steps, {:.0} s: reward per step {:.3} in the first update of the curve, {:.3} over the last 5",
        tr.updates(),
        tr.env_steps(),
        secs,
        first,
        mean
    )?;
    let (csv, svg) = curve_paths(&a.out);
    crate::say!(
        "wrote {}, {} and {}",
        a.out.display(),
        csv.display(),
        svg.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

fn plot_curve(points: &[(f64, f64)], title: &str) -> std::result::Result<String, String> {
    use plotters::prelude::*;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let pts: Vec<(f64, f64)> = points
            .iter()
            .copied()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect();
        let xmax = pts.iter().map(|p| p.0).fold(1.0, f64::max);
        let ymin = pts.iter().map(|p| p.1).fold(0.0, f64::min) * 1.1 - 1e-3;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{title}: reward per step"), ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..xmax, ymin..0.0)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("environment steps")
            .y_desc("mean reward per step")
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(pts, &BLUE))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

fn eval(policy: &Path, scenarios: &str, seeds: &[u64], duration: u64) -> Result<ExitCode> {
    let device = Device::flex();
    let (net, m) = checkpoint::load(policy, &device)?;
    let app = graphscale_sim::topology::builtin(&m.app)
        .with_context(|| format!("the policy's app `{}`", m.app))?;
    let names: Vec<&str> = scenarios
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if names.is_empty() {
        bail!("--scenarios: none given");
    }
    let g = GraphTensors::new(&m.graph, &device);
    let pb = bar((names.len() * seeds.len()) as u64, "runs");
    let mut rows = Vec::new();
    for name in &names {
        let cfg = EnvConfig {
            episode_s: duration,
            scenarios: vec![(*name).to_string()],
            ..m.env.clone()
        };
        let mut env =
            SimEnv::new(app.clone(), cfg).with_context(|| format!("--scenarios {name}"))?;
        if env.graph() != &m.graph {
            bail!(
                "{}: the app `{}` no longer has the policy's workloads",
                policy.display(),
                m.app
            );
        }
        let mut returns = Vec::new();
        let mut terms = [0.0f64; 4];
        let mut steps = 0.0;
        for &seed in seeds {
            let mut obs = env.reset(seed)?;
            let mut ret = 0.0;
            loop {
                let (logits, _) = net.forward(&ObsBatch::new(&[&obs], m.graph.len(), &device)?, &g);
                let l: Vec<f32> = logits
                    .into_data()
                    .try_into_vec()
                    .map_err(|e| anyhow::anyhow!("reading the logits: {e:?}"))?;
                let s = env.step(&greedy(&l))?;
                ret += s.reward;
                terms[0] += s.terms.violation;
                terms[1] += s.terms.slack;
                terms[2] += s.terms.overshoot;
                terms[3] += s.terms.lag;
                steps += 1.0;
                obs = s.obs;
                if s.done {
                    break;
                }
            }
            returns.push(ret);
            pb.inc(1);
        }
        let n = returns.len() as f64;
        let mean = returns.iter().sum::<f64>() / n;
        let sd =
            (returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
        rows.push((name.to_string(), mean, sd, terms.map(|t| t / steps)));
    }
    pb.finish_and_clear();
    crate::say!(
        "{} policy for {} ({} updates), greedy, no safety layer; {} s runs, seeds {:?}",
        m.encoder.name(),
        m.app,
        m.updates,
        duration,
        seeds
    )?;
    crate::say!(
        "{:<14} {:>10} {:>8} {:>11} {:>8} {:>10} {:>8}",
        "scenario",
        "return",
        "sd",
        "violation %",
        "slack",
        "overshoot",
        "lag"
    )?;
    for (name, mean, sd, t) in rows {
        crate::say!(
            "{:<14} {:>10.1} {:>8.1} {:>11.1} {:>8.3} {:>10.3} {:>8.3}",
            name,
            mean,
            sd,
            100.0 * t[0],
            t[1],
            t[2],
            t[3]
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
