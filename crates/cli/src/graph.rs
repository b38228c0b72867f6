//! `graphscale train`, `graphscale predict` and `graphscale bench graph-models`: the graph
//! models of `graphscale_nn::graphmodel` on simulator rollouts, collected series or imported
//! real metrics.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use graphscale_core::GraphSeries;
use graphscale_eval::AutoscalerSpec;
use graphscale_nn::graphmodel::{
    persistence, rnn_baseline, score, train, EpochReport, GraphModel, GraphModelConfig, Kind,
    Prepared, TargetScore,
};
use graphscale_nn::rnn::RnnConfig;
use graphscale_sim::{topology, workload::WorkloadSpec};
use indicatif::{ProgressBar, ProgressStyle};

/// Reads the series named by `spec`:
/// - `sim:APP:SCENARIO[:SEEDS[:SECONDS]]`: simulator rollouts under the HPA, one per seed
///   (default 3 seeds, the scenario's natural length);
/// - `nezha:DIR`: the Nezha per-pod metrics and trace call counts (`shared/data/
///   microservices-ob-tt/ob` or `/tt`), one series per recorded segment;
/// - a `.json` file written by `graphscale sim run --series-out`;
/// - a folder written by `graphscale collect` (graph.json, nodes.csv, edges.csv).
pub fn load_data(spec: &str) -> Result<Vec<GraphSeries>> {
    if let Some(rest) = spec.strip_prefix("sim:") {
        let parts: Vec<&str> = rest.split(':').collect();
        if parts.len() < 2 || parts.len() > 4 {
            bail!("--data `{spec}`: expected sim:APP:SCENARIO[:SEEDS[:SECONDS]]");
        }
        let app = topology::builtin(parts[0])?;
        let workload = WorkloadSpec::named(parts[1], app.nominal_peak_rps)?;
        let seeds: u64 = match parts.get(2) {
            Some(s) => s
                .parse()
                .ok()
                .filter(|n| *n >= 1)
                .with_context(|| format!("--data `{spec}`: SEEDS `{s}` is not a count >= 1"))?,
            None => 3,
        };
        let duration = match parts.get(3) {
            Some(s) => s
                .parse()
                .ok()
                .filter(|n| *n >= 60)
                .with_context(|| format!("--data `{spec}`: SECONDS `{s}` is not >= 60"))?,
            None => workload.natural_duration_s()?,
        };
        let hpa = AutoscalerSpec::named("hpa")?;
        return (1..=seeds)
            .map(|seed| crate::simulate::record_series(&app, &workload, &hpa, seed, duration))
            .collect();
    }
    if let Some(dir) = spec.strip_prefix("nezha:") {
        let (series, report) = graphscale_monitor::nezha::read(Path::new(dir))?;
        for l in report.lines() {
            eprintln!("note: {l}");
        }
        return Ok(series);
    }
    let path = Path::new(spec);
    if path.is_dir() {
        return Ok(vec![graphscale_monitor::collect::read_dir(path)?]);
    }
    let text = std::fs::read_to_string(path).with_context(|| {
        format!("--data `{spec}`: not sim:..., nezha:DIR, a folder or a readable file")
    })?;
    Ok(vec![GraphSeries::from_json(&text, spec)?])
}

fn load_all(specs: &[String]) -> Result<Vec<GraphSeries>> {
    let mut all = Vec::new();
    for s in specs {
        all.extend(load_data(s)?);
    }
    if all.is_empty() {
        bail!("no data: give --data");
    }
    Ok(all)
}

fn config(path: Option<&Path>, epochs: Option<usize>) -> Result<GraphModelConfig> {
    let mut cfg = match path {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{}: invalid graph model config", p.display()))?
        }
        None => GraphModelConfig::default(),
    };
    if let Some(e) = epochs {
        cfg.epochs = e;
    }
    cfg.check()?;
    Ok(cfg)
}

fn epoch_bar(epochs: usize, label: &str) -> ProgressBar {
    let pb = ProgressBar::new(epochs as u64);
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} epochs {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(label.to_string());
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

fn fit(kind: Kind, cfg: &GraphModelConfig, p: &Prepared) -> Result<GraphModel> {
    let pb = epoch_bar(cfg.epochs, kind.name());
    let m = train(kind, cfg, p, &mut |r: EpochReport| {
        pb.set_position(r.epoch as u64);
        pb.set_message(format!(
            "{}: train {:.4} val {:.4}{}",
            kind.name(),
            r.train_loss,
            r.val_loss,
            if r.best { " *" } else { "" }
        ));
    })?;
    pb.finish_and_clear();
    Ok(m)
}

const TARGET_NAMES: [&str; 4] = ["rps", "cpu_m", "memory_mib", "replicas"];

fn print_scores(rows: &[(String, [TargetScore; 4])]) -> Result<()> {
    crate::say!(
        "{:<12} {:<11} {:>12} {:>12} {:>9} {:>8}",
        "model",
        "target",
        "MAE",
        "RMSE",
        "cover80",
        "points"
    )?;
    for t in 0..4 {
        for (name, s) in rows {
            let c = if s[t].coverage.is_nan() {
                "-".to_string()
            } else {
                format!("{:.1}%", 100.0 * s[t].coverage)
            };
            crate::say!(
                "{:<12} {:<11} {:>12.4} {:>12.4} {:>9} {:>8}",
                name,
                TARGET_NAMES[t],
                s[t].mae,
                s[t].rmse,
                c,
                s[t].points
            )?;
        }
    }
    Ok(())
}

fn describe(p: &Prepared, cfg: &GraphModelConfig, series: &[GraphSeries]) -> Result<()> {
    let services = (0..p.layout.nodes.len())
        .filter(|i| p.layout.is_service(*i))
        .count();
    crate::say!(
        "data: graph `{}` ({} nodes, {} services, {} edges), {} series of {} points, step {} s; \
         windows: {} train, {} validation, {} test",
        p.graph.name,
        p.layout.nodes.len(),
        services,
        p.layout.edges.len(),
        series.len(),
        series
            .iter()
            .map(|s| s.len.to_string())
            .collect::<Vec<_>>()
            .join("+"),
        p.step_ms as f64 / 1000.0,
        p.samples(cfg, 0).len(),
        p.samples(cfg, 1).len(),
        p.samples(cfg, 2).len()
    )?;
    Ok(())
}

/// `graphscale train`.
pub fn train_cmd(
    model: &str,
    data: &[String],
    config_path: Option<&Path>,
    epochs: Option<usize>,
    out: &Path,
) -> Result<ExitCode> {
    let kind = Kind::parse(model)?;
    let cfg = config(config_path, epochs)?;
    let series = load_all(data)?;
    let p = Prepared::new(&cfg, &series)?;
    describe(&p, &cfg, &series)?;
    let m = fit(kind, &cfg, &p)?;
    crate::say!(
        "{}: {} parameters, best epoch {} of {} (validation loss {:.4})",
        kind.name(),
        m.net.parameters(),
        m.best_epoch,
        m.val_loss.len(),
        m.val_loss[m.best_epoch - 1]
    )?;
    let test = p.samples(&cfg, 2);
    if test.is_empty() {
        crate::say!("no test windows (test_share 0): no scores")?;
    } else {
        let base = score(
            &p,
            &test,
            cfg.horizon,
            &persistence(&p, &test, cfg.horizon),
            false,
        );
        crate::say!("\nheld-out test range, mean over steps 1..{}:", cfg.horizon)?;
        print_scores(&[
            ("persistence".into(), base),
            (kind.name().into(), m.test_scores(&p)?),
        ])?;
    }
    if let Some(a) = m.adjacency_agreement() {
        crate::say!(
            "\nlearned adjacency vs the call graph (DeepScaler's check): {} services, {} of {} pairs linked; ROC AUC {:.3} (chance 0.5), precision at {} {:.3} (chance {:.3})",
            a.services,
            a.links,
            a.pairs,
            a.auc,
            a.links,
            a.precision_at_links,
            a.links as f64 / a.pairs as f64
        )?;
        if let Some(i) = m.initial_adjacency_agreement() {
            crate::say!(
                "the same adjacency before training (same seed): ROC AUC {:.3}, precision at {} {:.3}",
                i.auc,
                i.links,
                i.precision_at_links
            )?;
        }
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    m.save_with(out, crate::app::existing())?;
    crate::say!("\nwrote {}", out.display())?;
    Ok(ExitCode::SUCCESS)
}

/// `graphscale predict`.
pub fn predict_cmd(model: &Path, snapshot: &str, json: bool) -> Result<ExitCode> {
    let m = GraphModel::load(model)?;
    let mut series = load_data(snapshot)?;
    let s = series
        .pop()
        .with_context(|| format!("--snapshot `{snapshot}`: no series"))?;
    let preds = m
        .predict_series(&s)
        .with_context(|| format!("--snapshot `{snapshot}`"))?;
    if json {
        crate::say!("{}", serde_json::to_string_pretty(&preds)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    crate::say!(
        "{} model, {} services, from the newest {} points (step {} s); quantiles 0.1 / 0.5 / 0.9",
        m.kind.name(),
        preds.iter().filter(|p| p.step == 1).count(),
        m.config.window,
        m.step_ms as f64 / 1000.0
    )?;
    crate::say!(
        "{:<32} {:>6} {:>26} {:>26} {:>26} {:>8}",
        "service",
        "ahead",
        "rps",
        "cpu_m",
        "memory_mib",
        "replicas"
    )?;
    let q = |v: [f64; 3]| format!("{:.1} / {:.1} / {:.1}", v[0], v[1], v[2]);
    for p in preds {
        crate::say!(
            "{:<32} {:>5}s {:>26} {:>26} {:>26} {:>8}",
            p.service,
            p.ahead_s,
            q(p.rps),
            q(p.cpu_m),
            q(p.memory_mib),
            p.replicas
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `graphscale bench graph-models`: every graph model, the edge-blind MLP, persistence and a
/// per-service recurrent network on the same held-out range.
pub fn compare_cmd(
    data: &[String],
    models: &[String],
    config_path: Option<&Path>,
    epochs: Option<usize>,
    rnn: bool,
    json: Option<PathBuf>,
) -> Result<ExitCode> {
    let cfg = config(config_path, epochs)?;
    let kinds = models
        .iter()
        .map(|m| Kind::parse(m.trim()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let series = load_all(data)?;
    let p = Prepared::new(&cfg, &series)?;
    describe(&p, &cfg, &series)?;
    let test = p.samples(&cfg, 2);
    if test.is_empty() {
        bail!("no test windows: record longer series or raise test_share");
    }
    let mut rows = vec![(
        "persistence".to_string(),
        score(
            &p,
            &test,
            cfg.horizon,
            &persistence(&p, &test, cfg.horizon),
            false,
        ),
    )];
    if rnn {
        let rc = RnnConfig {
            window: cfg.window,
            hidden: 16,
            epochs: 15,
            max_windows: 1024,
            seed: cfg.seed,
            ..RnnConfig::default()
        };
        let started = std::time::Instant::now();
        let (preds, fallbacks) = rnn_baseline(&p, &cfg, &rc)?;
        crate::say!(
            "lstm per service: {:.1} s to train, {} series fell back to persistence",
            started.elapsed().as_secs_f64(),
            fallbacks
        )?;
        rows.push(("lstm".into(), score(&p, &test, cfg.horizon, &preds, false)));
    }
    for k in kinds {
        let started = std::time::Instant::now();
        let m = fit(k, &cfg, &p)?;
        crate::say!(
            "{}: {} parameters, best epoch {} of {}, {:.1} s to train",
            k.name(),
            m.net.parameters(),
            m.best_epoch,
            m.val_loss.len(),
            started.elapsed().as_secs_f64()
        )?;
        rows.push((k.name().into(), m.test_scores(&p)?));
    }
    crate::say!("\nheld-out test range, mean over steps 1..{}:", cfg.horizon)?;
    print_scores(&rows)?;
    if let Some(path) = json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(n, s)| {
                serde_json::json!({
                    "model": n,
                    "scores": TARGET_NAMES.iter().zip(s).map(|(t, s)| (t.to_string(), serde_json::json!(s))).collect::<serde_json::Map<_, _>>(),
                })
            })
            .collect();
        let text = serde_json::to_string_pretty(&serde_json::json!({
            "data": data,
            "config": cfg,
            "rows": v,
        }))?;
        graphscale_eval::report::write_atomic(&path, text.as_bytes(), crate::app::existing())?;
        crate::say!("wrote {}", path.display())?;
    }
    Ok(ExitCode::SUCCESS)
}
