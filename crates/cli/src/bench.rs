//! `graphscale bench sim`: simulator throughput, one thread.
//!
//! For each app it measures (a) the simulator stepping alone and (b) the same simulation with
//! the HPA closed loop (observe, decide, apply every 15 s), in the same process, so (a) is the
//! baseline that (b)'s control-loop overhead is compared with.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use graphscale_control::schedule::DEFAULT_OFFSET;
use graphscale_control::ControlLoop;
use graphscale_eval::{build_autoscaler, AutoscalerSpec};
use graphscale_sim::engine::{SimConfig, Simulator};
use graphscale_sim::{topology, workload::WorkloadSpec};

/// `app` simulated with seed 1 under `rates` (the diurnal day of both benchmarks).
fn diurnal_sim(app: &graphscale_sim::spec::AppSpec, rates: &[f64]) -> Result<Simulator> {
    Ok(Simulator::new(
        app.clone(),
        SimConfig {
            seed: 1,
            ..SimConfig::default()
        },
        rates.to_vec(),
    )?)
}

/// Runs the benchmark and prints a Markdown table.
pub fn sim(seconds: u64, apps: &[String]) -> Result<ExitCode> {
    crate::say!(
        "| app | services | simulated | mode | wall s | of which the loop s | service-steps/s | simulated s per wall s |"
    )?;
    crate::say!("|---|---:|---:|---|---:|---:|---:|---:|")?;
    for name in apps {
        let app = topology::builtin(name)?;
        let rates = WorkloadSpec::named("diurnal", app.nominal_peak_rps)?.rates(seconds, 1)?;
        for with_hpa in [false, true] {
            let mut sim = diurnal_sim(&app, &rates)?;
            let hpa = build_autoscaler(&AutoscalerSpec::named("hpa")?, &app)?;
            let mut ctl = ControlLoop::simulated(hpa, DEFAULT_OFFSET)?;
            let start = Instant::now();
            let mut in_loop = std::time::Duration::ZERO;
            for _ in 0..seconds {
                sim.step();
                if with_hpa {
                    let t = Instant::now();
                    ctl.tick(&mut sim)?;
                    in_loop += t.elapsed();
                }
            }
            let wall = start.elapsed().as_secs_f64();
            let steps = seconds as f64 * app.services.len() as f64;
            crate::say!(
                "| {} | {} | {} s | {} | {:.2} | {} | {:.0} | {:.0} |",
                name,
                app.services.len(),
                seconds,
                if with_hpa {
                    "sim + HPA loop"
                } else {
                    "sim only (baseline)"
                },
                wall,
                if with_hpa {
                    format!("{:.2}", in_loop.as_secs_f64())
                } else {
                    "-".to_string()
                },
                steps / wall,
                seconds as f64 / wall
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `graphscale bench decide`: the wall time of `decide()` in a closed loop on the simulator, per
/// app and autoscaler, with fits on one training thread beside it (what a deployment does), so
/// the measured rounds decide while a training runs. Percentiles over the rounds after `warmup`,
/// and separately over those with a training in flight.
pub fn decide(
    rounds: u64,
    warmup: u64,
    apps: &[String],
    autoscalers: &[String],
) -> Result<ExitCode> {
    anyhow::ensure!(
        (1..=100_000).contains(&rounds) && warmup < rounds,
        "--rounds must be in 1..=100000 and --warmup below it (got {rounds} and {warmup})"
    );
    crate::say!(
        "| app | services | autoscaler | rounds | with a training in flight | p50 ms | p99 ms | max ms | p99 ms in flight | trainings installed |"
    )?;
    crate::say!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")?;
    for name in apps {
        let app = topology::builtin(name)?;
        let seconds = (rounds + 1) * 15 + 7;
        let rates = WorkloadSpec::named("diurnal", app.nominal_peak_rps)?.rates(seconds, 1)?;
        for a in autoscalers {
            let mut sim = diurnal_sim(&app, &rates)?;
            let scaler = build_autoscaler(&AutoscalerSpec::named(a)?, &app)?;
            let mut ctl = ControlLoop::threaded(scaler, DEFAULT_OFFSET, 1)?;
            let (mut all, mut busy, mut installed) = (Vec::new(), Vec::new(), 0);
            let mut k = 0;
            while k < rounds {
                sim.step();
                let pending = ctl.training_pending();
                if let Some(r) = ctl.tick(&mut sim)? {
                    k += 1;
                    installed += r.models_installed;
                    if k == warmup && installed == 0 {
                        // Measure decisions that forecast with a model: wait for the first
                        // trainings once; the later ones run beside the measured rounds.
                        installed += ctl.finish_training();
                    }
                    if k > warmup {
                        let ms = r.decide_time.as_secs_f64() * 1000.0;
                        all.push(ms);
                        if pending > 0 && ctl.training_pending() > 0 {
                            busy.push(ms);
                        }
                    }
                }
            }
            let pct = |v: &mut Vec<f64>, q: f64| -> String {
                graphscale_core::stats::quantile(v, q).map_or("-".into(), |x| format!("{x:.3}"))
            };
            let n = all.len();
            let n_busy = busy.len();
            crate::say!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                name,
                app.services.len(),
                a,
                n,
                n_busy,
                pct(&mut all, 0.5),
                pct(&mut all, 0.99),
                pct(&mut all, 1.0),
                pct(&mut busy, 0.99),
                installed
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `graphscale bench forecast`: fit + predict time per model on one week per minute.
pub fn forecast(csv: &std::path::Path, models: &[String]) -> Result<ExitCode> {
    let text =
        std::fs::read_to_string(csv).map_err(|e| anyhow::anyhow!("{}: {e}", csv.display()))?;
    let (t, v) = graphscale_sim::workload::parse_series_csv(
        &text,
        &csv.display().to_string(),
        Some("unix_ts"),
        Some("requests"),
    )?;
    let from = graphscale_sim::workload::parse_time("1998-06-10T00:00:00Z").unwrap_or(0.0);
    let start = t.iter().position(|x| *x >= from).unwrap_or(0);
    let y: Vec<f64> = v[start..].iter().take(10_080).copied().collect();
    anyhow::ensure!(
        y.len() == 10_080,
        "{}: fewer than 10,080 points after 1998-06-10",
        csv.display()
    );
    forecast_series(&y, models)
}

/// Fit + predict (30 steps) per model on `y`, with a daily season of 1,440 steps: median of 5.
fn forecast_series(y: &[f64], models: &[String]) -> Result<ExitCode> {
    crate::say!("| model | season | points | fit + predict (30 steps), median of 5, ms |")?;
    crate::say!("|---|---:|---:|---:|")?;
    for name in models {
        let model = graphscale_nn::by_name(name, 1440, 60, 30, None)?;
        let mut times = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            let f = model.fit(y)?;
            let p = f.predict(30, &[])?;
            anyhow::ensure!(p.point.len() == 30, "{name}: short forecast");
            times.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let season = match name.as_str() {
            "persistence" => "-",
            "ets" => "none (ETS is non-seasonal)",
            _ => "1440",
        };
        crate::say!("| {name} | {season} | {} | {:.2} |", y.len(), times[2])?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `graphscale bench --quick`: every benchmark once, at small sizes, so that a test can check
/// in seconds that each runs and prints its table. The timings of such a run mean nothing.
pub fn quick() -> Result<ExitCode> {
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut failed = Vec::new();
    let mut check = |bench: &str, r: Result<ExitCode>| -> Result<()> {
        if r? != ExitCode::SUCCESS {
            failed.push(bench.to_string());
        }
        Ok(())
    };
    crate::say!("## bench sim (quick)\n")?;
    check("sim", sim(600, &names(&["online-boutique"])))?;
    crate::say!("\n## bench decide (quick)\n")?;
    check(
        "decide",
        decide(
            12,
            2,
            &names(&["online-boutique"]),
            &names(&["graph-trend"]),
        ),
    )?;
    crate::say!("\n## bench forecast (quick: two synthetic days per minute)\n")?;
    let rates = WorkloadSpec::named("diurnal", 100.0)?.rates(2 * 86_400, 1)?;
    let y: Vec<f64> = rates.iter().step_by(60).copied().collect();
    check(
        "forecast",
        forecast_series(
            &y,
            &names(&["persistence", "seasonal-naive", "ets", "prophet"]),
        ),
    )?;
    crate::say!("\n## bench nn (quick)\n")?;
    check("nn", nn(4, 8, 8, 1, 1))?;
    crate::say!("\n## bench hgt (quick)\n")?;
    check(
        "hgt",
        hgt(
            &names(&["online-boutique", "peer:boutique11", "synthetic:50:200"]),
            8,
            2,
            2,
            1,
        ),
    )?;
    crate::say!("\n## bench keda (quick)\n")?;
    check("keda", crate::bench_keda::keda(10, 100, &[1, 4]))?;
    crate::say!("\n## bench graph-models (quick)\n")?;
    check(
        "graph-models",
        crate::graph::compare_cmd(
            &names(&["sim:online-boutique:rush:1:1200"]),
            &names(&["mlp", "hgt"]),
            None,
            Some(1),
            false,
            None,
        ),
    )?;
    crate::say!("\n## bench rl (quick)\n")?;
    check("rl", crate::bench_rl::rl("online-boutique", 200, 1))?;
    anyhow::ensure!(
        failed.is_empty(),
        "benchmarks failed: {}",
        failed.join(", ")
    );
    crate::say!(
        "\nquick run: every benchmark ran (sim, decide, forecast, nn, hgt, keda, graph-models)"
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `graphscale bench nn`: LSTM and GRU training step and forward latency, with a linear
/// baseline timed in the same run.
pub fn nn(
    batch: usize,
    window: usize,
    hidden: usize,
    outputs: usize,
    runs: usize,
) -> Result<ExitCode> {
    use graphscale_nn::bench::{time, Net};
    use graphscale_nn::rnn::Cell;
    anyhow::ensure!(
        batch > 0 && window > 0 && hidden > 0 && outputs > 0 && runs > 0,
        "--batch, --window, --hidden, --outputs and --runs must be >= 1"
    );
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all cores".into());
    crate::say!(
        "batch {batch}, window {window}, hidden {hidden}, outputs {outputs}; threads: {threads}; median of {runs}\n"
    )?;
    crate::say!(
        "| network | train step (batch {batch}), ms | forward (batch 1), ms | forward (batch 1) through burn's modules, ms | train step through burn's modules, ms |"
    )?;
    crate::say!("|---|---:|---:|---:|---:|")?;
    for net in [Net::Linear, Net::Rnn(Cell::Lstm), Net::Rnn(Cell::Gru)] {
        let t = time(net, batch, window, hidden, outputs, runs)?;
        crate::say!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} |",
            net.name(),
            t.train_step_ms,
            t.forward_ms,
            t.forward_modules_ms,
            t.train_step_modules_ms
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `graphscale bench hgt`: HGT forward and training step per app graph.
pub fn hgt(
    apps: &[String],
    dim: usize,
    heads: usize,
    layers: usize,
    runs: usize,
) -> Result<ExitCode> {
    use graphscale_nn::hgt::{from_app_graph, HgtConfig, NODE_KINDS};
    anyhow::ensure!(
        heads > 0 && dim > 0 && dim.is_multiple_of(heads) && layers > 0 && runs > 0,
        "--dim must be a positive multiple of --heads; --layers and --runs must be >= 1"
    );
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all cores".into());
    crate::say!(
        "HGT: dim {dim}, {heads} heads, {layers} layer(s), 8 input and 4 output features per node, 4 edge features; threads: {threads}; median of {runs}\n"
    )?;
    // Forward: the host forward a prediction runs (`graphscale_nn::hgt_host`); the last
    // column is the same forward through burn's modules.
    crate::say!(
        "| app | nodes | edges | forward, ms | train step, ms | forward through burn's modules, ms |"
    )?;
    crate::say!("|---|---:|---:|---:|---:|---:|")?;
    for name in apps {
        let g = if let Some(size) = name.strip_prefix("peer:") {
            graphscale_nn::hgt::peer_graph(size, 1).ok_or_else(|| {
                let known: Vec<&str> = graphscale_nn::hgt::PEER_SIZES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect();
                anyhow::anyhow!("`{name}`: unknown peer size (known: {})", known.join(", "))
            })?
        } else if let Some(rest) = name.strip_prefix("synthetic:") {
            let (n, e) = rest
                .split_once(':')
                .and_then(|(n, e)| Some((n.parse::<usize>().ok()?, e.parse::<usize>().ok()?)))
                .ok_or_else(|| anyhow::anyhow!("`{name}`: expected synthetic:NODES:EDGES"))?;
            anyhow::ensure!(n >= 10 && e >= 1, "`{name}`: at least 10 nodes and 1 edge");
            graphscale_nn::hgt::synthetic(n, e, 1)
        } else {
            let app = graphscale_sim::topology::builtin(name)?;
            let graph = app.graph()?;
            // Static edge features for timing: the call ratio and three zeros (observed RPS,
            // p95, errors and backlog come with snapshot tensorisation, not built yet).
            from_app_graph(&graph, 4, &|e| vec![e.ratio as f32, 0.0, 0.0, 0.0])?
        };
        let cfg = HgtConfig {
            node_types: NODE_KINDS.len(),
            relations: g.relations.len(),
            dim,
            heads,
            edge_features: 4,
        };
        let t = graphscale_nn::bench::time_hgt(&g, &cfg, layers, runs)?;
        let edges: usize = g.relations.iter().map(|r| r.src.len()).sum();
        crate::say!(
            "| {name} | {} | {edges} | {:.3} | {:.3} | {:.3} |",
            g.node_type.len(),
            t.forward_ms,
            t.train_step_ms,
            t.forward_modules_ms
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
