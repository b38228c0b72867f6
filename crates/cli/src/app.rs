//! Flags, their validation, and the subcommands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use graphscale_core::{Clock, GraphSeries, Metric, MetricSource, Millis};
use graphscale_eval::{
    report, run_experiment, AutoscalerSpec, ExperimentResult, ExperimentSpec, ScenarioSpec,
};
use graphscale_sim::engine::{SimConfig, Simulator};
use graphscale_sim::{calibrate, topology, workload::WorkloadSpec};
use indicatif::{ProgressBar, ProgressStyle};

/// graphscale: a graph-aware, predictive autoscaler for Kubernetes microservices.
///
/// With no cluster, graphscale runs on its embedded simulator: `graphscale demo` compares every
/// available autoscaler with the Kubernetes HPA on Online Boutique, and `graphscale eval` runs
/// any experiment (apps x scenarios x autoscalers x seeds) with confidence intervals and effect
/// sizes. Log level: GRAPHSCALE_LOG (e.g. `info`).
#[derive(Debug, Parser)]
#[command(name = "graphscale", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The main job: Online Boutique under a WorldCup98 day and a flash crowd; the HPA, static
    /// and the predictive graph-trend autoscaler (alone, with memory right-sizing, and its
    /// graph-blind ablation), 5 seeds; prints
    /// the comparison and writes the JSON and HTML report.
    Demo(DemoArgs),
    /// Run an experiment: apps x scenarios x autoscalers x seeds, with 95 % CIs and Cliff's delta.
    #[command(after_help = autoscaler_help())]
    Eval(EvalArgs),
    /// Simulate one app under one scenario and autoscaler; optionally export the per-node and
    /// per-edge series as JSON (docs/schema.md).
    Sim {
        #[command(subcommand)]
        command: SimCommand,
    },
    /// List the built-in apps or print one as JSON (the app file format).
    Topology {
        #[command(subcommand)]
        command: TopologyCommand,
    },
    /// Collect node and edge series from Prometheus (or any PromQL store) into graph.json,
    /// nodes.csv and edges.csv (docs/schema.md).
    Collect(CollectFlags),
    /// Discover the application graph from Prometheus telemetry or a Kiali graph file; prints JSON.
    Discover(CollectFlags),
    /// Forecasting: rolling-origin backtests of the forecasters on a CSV series.
    Forecast {
        #[command(subcommand)]
        command: ForecastCommand,
    },
    /// Re-derive the bundled Online Boutique, Train Ticket and Alibaba apps from shared/data.
    Calibrate {
        /// The shared data folder.
        #[arg(long, default_value = "../shared/data")]
        data: PathBuf,
        /// Where to write the app JSON files.
        #[arg(long, default_value = "data/topologies")]
        out: PathBuf,
    },
    /// Shadow mode: replay a recorded run (`sim run --record`) through another autoscaler
    /// (default the HPA), open loop, and report what each would have done and which one the SLO
    /// and cost favour.
    Shadow {
        /// The record: JSON lines of snapshots and decisions.
        #[arg(long)]
        record: PathBuf,
        /// The autoscaler to compare with.
        #[arg(long, default_value = "hpa")]
        against: String,
        /// Also write the report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Train a graph model (hgt, gat, stgnn, or the edge-blind mlp) to predict every service's
    /// RPS, CPU, memory (quantiles 0.1/0.5/0.9) and replicas a few steps ahead; prints its scores
    /// beside persistence on the held-out range and writes a checkpoint (docs/graph-models.md).
    Train {
        /// hgt, gat, stgnn or mlp.
        #[arg(long)]
        model: String,
        /// Training data, repeatable: sim:APP:SCENARIO[:SEEDS[:SECONDS]] (simulator rollouts
        /// under the HPA), nezha:DIR (shared/data/microservices-ob-tt/ob or tt), a series JSON
        /// (`sim run --series-out`) or a `collect` folder.
        #[arg(long, required = true)]
        data: Vec<String>,
        /// Model and training settings (JSON; docs/graph-models.md lists fields and defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Most epochs (overrides the config).
        #[arg(long)]
        epochs: Option<usize>,
        /// Checkpoint to write.
        #[arg(long, default_value = "graphscale-out/models/graph-model.safetensors")]
        out: PathBuf,
    },
    /// Per-service predictions of a trained graph model from the newest window of a snapshot.
    Predict {
        /// A checkpoint written by `graphscale train`.
        #[arg(long)]
        model: PathBuf,
        /// Series with at least the model's window: a `sim run --series-out` JSON, a `collect`
        /// folder, or sim:APP:SCENARIO:1:SECONDS.
        #[arg(long)]
        snapshot: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Benchmarks (see docs/benchmarks.md).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Output folder for results.json and report.html.
    #[arg(long, default_value = "graphscale-out/demo")]
    out: PathBuf,
    /// Number of seeds (1, 2, ...).
    #[arg(long, default_value_t = 5)]
    seeds: u64,
}

#[derive(Debug, Args)]
struct CollectFlags {
    /// Prometheus base URL, e.g. http://127.0.0.1:9090 (any PromQL-compatible API).
    #[arg(long)]
    prometheus: Option<String>,
    /// (discover) A Kiali graph JSON file instead of Prometheus.
    #[arg(long)]
    kiali: Option<PathBuf>,
    /// Collector config JSON: discovery settings, PromQL templates, client settings (docs/monitor.md).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Kubernetes namespace (default `default`).
    #[arg(long)]
    namespace: Option<String>,
    /// (collect) How far back from --end, e.g. 6h.
    #[arg(long, value_parser = parse_duration, default_value = "1h")]
    range: u64,
    /// (collect) Step of the series, e.g. 15s.
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    step: u64,
    /// End of the range (Unix seconds); default now.
    #[arg(long)]
    end: Option<f64>,
    /// Divide rates by this: the speed factor of an accelerated `sim serve`.
    #[arg(long)]
    time_scale: Option<f64>,
    /// Per-request timeout, ms (default 120000, Prometheus' own query timeout).
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// (collect) Output folder; (discover) output file, default stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

impl CollectFlags {
    fn into_args(self) -> crate::serve::CollectArgs {
        crate::serve::CollectArgs {
            prometheus: self.prometheus,
            kiali: self.kiali,
            config: self.config,
            namespace: self.namespace,
            range_s: self.range,
            step_s: self.step,
            end: self.end,
            time_scale: self.time_scale,
            timeout_ms: self.timeout_ms,
            out: self.out,
        }
    }
}

/// The autoscaler catalogue as `--help` shows it.
fn autoscaler_help() -> String {
    let mut out = String::from("Autoscalers:\n");
    for e in graphscale_control::CATALOGUE {
        out.push_str(&format!("  {:<18} {}\n", e.name, e.help));
    }
    out
}

#[derive(Debug, Args)]
struct EvalArgs {
    /// An experiment spec as JSON (docs/schema.md); flags below override its fields.
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Comma-separated apps: online-boutique, train-ticket, alibaba, event-driven, random:N[:SEED] or app JSON paths.
    #[arg(long, value_delimiter = ',')]
    apps: Vec<String>,
    /// Comma-separated scenarios: off-peak, peak, rush, fluctuating, diurnal, worldcup98.
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Comma-separated autoscalers (default hpa,static): the names listed below
    /// (docs/planner.md).
    #[arg(long, value_delimiter = ',')]
    autoscalers: Vec<String>,
    /// Seeds: N for seeds 1..=N, or A-B for seeds A..=B (e.g. 6-10, seeds not used to choose
    /// any default); default 5.
    #[arg(long, value_parser = parse_seeds)]
    seeds: Option<Seeds>,
    /// Simulated duration per run (e.g. 600s, 30m, 2h); default each scenario's own (1 h, or 24 h
    /// for diurnal and worldcup98).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<u64>,
    /// Override every app's end-to-end p95 SLO, ms.
    #[arg(long)]
    slo_ms: Option<f64>,
    /// Start of each run left out of the metrics, whole minutes (e.g. 0s, 5m); default 5m for
    /// runs of at least 30 minutes, 0 for shorter ones (runs start cold, one replica per service)
    #[arg(long, value_parser = parse_duration_or_zero)]
    warmup: Option<u64>,
    /// Worker threads (0 = one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Output folder for results.json and report.html.
    #[arg(long, default_value = "graphscale-out/eval")]
    out: PathBuf,
}

#[derive(Debug, Subcommand)]
enum SimCommand {
    /// Run a simulation in real time (or --speed times faster) and serve its metrics on
    /// /metrics with the names a real cluster has (cAdvisor, kube-state-metrics, Istio,
    /// kafka-exporter), for Prometheus to scrape.
    Serve {
        /// App name or app JSON path.
        #[arg(long, default_value = "online-boutique")]
        app: String,
        /// Scenario name.
        #[arg(long, default_value = "peak")]
        scenario: String,
        /// Autoscaler driving the simulated cluster: any name `eval --autoscalers` accepts.
        #[arg(long, default_value = "hpa")]
        autoscaler: String,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Simulated seconds per wall-clock second.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9464")]
        listen: std::net::SocketAddr,
        /// Namespace label of every workload.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// Simulated duration (e.g. 2h); default the scenario's own.
        #[arg(long, value_parser = parse_duration)]
        duration: Option<u64>,
    },
    /// Run one simulation and print its metrics.
    Run {
        /// App name or app JSON path.
        #[arg(long, default_value = "online-boutique")]
        app: String,
        /// Scenario name, or a CSV file to replay (timestamp, requests).
        #[arg(long, default_value = "rush")]
        scenario: String,
        /// Peak rate for a replayed CSV, rps (default: the app's nominal peak).
        #[arg(long)]
        peak_rps: Option<f64>,
        /// Autoscaler: any name `eval --autoscalers` accepts.
        #[arg(long, default_value = "hpa")]
        autoscaler: String,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Simulated duration (e.g. 600s, 30m); default the scenario's own.
        #[arg(long, value_parser = parse_duration)]
        duration: Option<u64>,
        /// Write per-node and per-edge series (15 s grid) as JSON to this file.
        #[arg(long)]
        series_out: Option<PathBuf>,
        /// Write every decision round (the snapshot seen and the decisions with their
        /// reasons) as JSON lines to this file; `graphscale shadow` reads it.
        #[arg(long)]
        record: Option<PathBuf>,
    },
}

/// Where a forecast series comes from and how it is prepared (shared by `fit` and `backtest`).
#[derive(Debug, Args)]
struct SeriesFlags {
    /// CSV with a timestamp column (unix seconds or RFC 3339 UTC) and a value column.
    #[arg(long)]
    csv: PathBuf,
    /// Timestamp column (default: the first).
    #[arg(long)]
    time_col: Option<String>,
    /// Value column (default: the last).
    #[arg(long)]
    value_col: Option<String>,
    /// Keep rows at or after this time (unix seconds or RFC 3339 UTC).
    #[arg(long)]
    from: Option<String>,
    /// Keep rows before this time.
    #[arg(long)]
    to: Option<String>,
    /// Resample to this step (e.g. 1m, 5m).
    #[arg(long, value_parser = parse_duration, default_value = "1m")]
    step: u64,
    /// How values inside one step combine: sum (counts) or mean (rates, gauges).
    #[arg(long, default_value = "mean", value_parser = ["sum", "mean"])]
    agg: String,
    /// Keep monitoring glitches (isolated spikes and drops) instead of replacing them.
    #[arg(long)]
    no_filter: bool,
}

impl SeriesFlags {
    fn into_args(self) -> crate::forecast::SeriesArgs {
        crate::forecast::SeriesArgs {
            csv: self.csv,
            time_col: self.time_col,
            value_col: self.value_col,
            from: self.from,
            to: self.to,
            step_s: self.step,
            sum: self.agg == "sum",
            filter: !self.no_filter,
        }
    }
}

#[derive(Debug, Subcommand)]
enum ForecastCommand {
    /// Fit one model (with split-conformal calibration) to a CSV series and save a checkpoint:
    /// FILE.safetensors with the manifest in its header, and FILE.safetensors.json.
    Fit {
        #[command(flatten)]
        series: SeriesFlags,
        /// persistence, trend, seasonal-naive, ets, mstl, lstm, gru, hybrid-mstl, and prophet and
        /// hybrid-prophet (with the `prophet` feature).
        #[arg(long, default_value = "ets")]
        model: String,
        /// JSON file of neural network settings (window, hidden, epochs, ...; see docs/forecast.md).
        #[arg(long)]
        nn_config: Option<PathBuf>,
        /// Season length in steps.
        #[arg(long, default_value_t = 1440)]
        season: usize,
        /// Longest horizon the intervals are calibrated for.
        #[arg(long, value_parser = parse_duration, default_value = "30m")]
        max_horizon: u64,
        /// Checkpoint file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Forecast from a checkpoint: one row per step after its training data.
    Predict {
        /// Checkpoint written by `forecast fit`.
        #[arg(long)]
        model: PathBuf,
        /// How far ahead (a multiple of the model's step).
        #[arg(long, value_parser = parse_duration, default_value = "15m")]
        horizon: u64,
        /// Comma-separated quantile levels in (0, 1).
        #[arg(long, value_delimiter = ',', default_value = "0.05,0.5,0.95")]
        quantiles: Vec<f64>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Rolling-origin backtest: MAE, RMSE, sMAPE, MASE, pinball loss, interval coverage and width
    /// per model and horizon; a table, backtest.json and backtest.html (forecast vs actual with bands).
    Backtest {
        #[command(flatten)]
        series: SeriesFlags,
        /// Comma-separated horizons, multiples of --step (e.g. 5m,15m,30m).
        #[arg(long, value_delimiter = ',', value_parser = parse_duration, default_value = "15m")]
        horizon: Vec<u64>,
        /// Training window per fit (e.g. 7d).
        #[arg(long, value_parser = parse_duration, default_value = "7d")]
        window: u64,
        /// Time between forecast origins (at least the longest horizon).
        #[arg(long, value_parser = parse_duration, default_value = "1h")]
        every: u64,
        /// Comma-separated models: persistence, trend, seasonal-naive, ets, mstl, lstm, gru,
        /// hybrid-mstl, and prophet and hybrid-prophet (with the `prophet` feature).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "persistence,seasonal-naive,ets,mstl"
        )]
        models: Vec<String>,
        /// Season length in steps (default: detected on the differenced first window, else one day).
        #[arg(long)]
        season: Option<usize>,
        /// Nominal coverage of the intervals.
        #[arg(long, default_value_t = 0.9)]
        level: f64,
        /// Previous origins whose errors calibrate the intervals (split conformal, rolling).
        #[arg(long, default_value_t = 100)]
        calibration: usize,
        /// Locally scaled intervals: divide calibration errors by the mean absolute one-step
        /// change over this many recent steps (0 = plain split conformal).
        #[arg(long, default_value_t = 12)]
        scale_window: usize,
        /// Neural models (lstm, gru, hybrid-*) are trained at the first origin and every this many
        /// origins, and forecast from the latest window in between; other models refit at every origin.
        #[arg(long, default_value_t = 12)]
        refit_every: usize,
        /// JSON file of neural network settings (window, hidden, epochs, ...; see docs/forecast.md).
        #[arg(long)]
        nn_config: Option<PathBuf>,
        /// Output folder for backtest.json and backtest.html.
        #[arg(long, default_value = "graphscale-out/forecast")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum TopologyCommand {
    /// One line per built-in app: services, edges, SLO, nominal peak.
    List,
    /// Print an app as JSON.
    Show {
        /// App name or app JSON path.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Simulator throughput in service-steps per second, one thread, with and without the HPA loop.
    Sim {
        /// Simulated seconds per measurement.
        #[arg(long, default_value_t = 86_400)]
        seconds: u64,
        /// Apps to measure.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "online-boutique,random:1000"
        )]
        apps: Vec<String>,
    },
    /// Control-loop decision latency: `decide()` p50/p99 per app and autoscaler in a closed loop
    /// on the simulator while trainings run on a training thread (fits installed when done).
    Decide {
        /// Rounds (sync periods) to run; the first `warmup` are left out.
        #[arg(long, default_value_t = 240)]
        rounds: u64,
        /// Rounds at the start left out of the percentiles.
        #[arg(long, default_value_t = 40)]
        warmup: u64,
        /// Apps to measure.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "online-boutique,random:1000"
        )]
        apps: Vec<String>,
        /// Autoscalers to measure.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "graph-trend,graph-mlp,graph-hgt"
        )]
        autoscalers: Vec<String>,
    },
    /// Forecaster speed: fit + predict (horizon 30) on a 10,080-point series (one week per minute
    /// of the WorldCup98 tournament, from 1998-06-10), median of 5 runs, one thread.
    Forecast {
        /// The WorldCup98 CSV.
        #[arg(
            long,
            default_value = "../shared/data/worldcup98/worldcup98_requests_per_minute.csv"
        )]
        csv: PathBuf,
        /// Models to time.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "persistence,seasonal-naive,ets,mstl"
        )]
        models: Vec<String>,
    },
    /// Neural network speed: one training step (forward, backward, Adam) and one batch-1 forward
    /// pass of the LSTM and GRU forecasters and of a linear baseline, medians in ms. Threads:
    /// set RAYON_NUM_THREADS (for example 1).
    Nn(NnBenchFlags),
    /// HGT speed: one forward pass and one training step (forward, backward, Adam) of an HGT
    /// network on each app's graph, medians in ms. Threads: set RAYON_NUM_THREADS.
    Hgt {
        /// Built-in apps, random:N[:SEED], or synthetic:NODES:EDGES (a seeded random graph of
        /// services, queues and topics with every relation between them).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "online-boutique,random:10000,synthetic:10000:50000"
        )]
        apps: Vec<String>,
        /// Hidden dimension.
        #[arg(long, default_value_t = 64)]
        dim: usize,
        /// Attention heads.
        #[arg(long, default_value_t = 4)]
        heads: usize,
        /// Layers.
        #[arg(long, default_value_t = 1)]
        layers: usize,
        /// Measured repetitions (after 3 warm-up ones).
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
    /// Accuracy of the graph models on a held-out time range beside persistence, a per-service
    /// LSTM and the edge-blind MLP: MAE and RMSE per target (docs/benchmarks.md).
    GraphModels {
        /// Data, repeatable (as for `train`).
        #[arg(long, required = true)]
        data: Vec<String>,
        /// Models to train.
        #[arg(long, value_delimiter = ',', default_value = "mlp,hgt,gat,stgnn")]
        models: Vec<String>,
        /// Model and training settings (JSON).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Most epochs (overrides the config).
        #[arg(long)]
        epochs: Option<usize>,
        /// Leave out the per-service LSTM baseline.
        #[arg(long)]
        no_lstm: bool,
        /// Also write the table as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

/// Flags of `bench nn`.
#[derive(Debug, Args)]
struct NnBenchFlags {
    /// Windows per training batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Steps per window.
    #[arg(long, default_value_t = 60)]
    window: usize,
    /// Hidden units.
    #[arg(long, default_value_t = 64)]
    hidden: usize,
    /// Outputs (steps predicted at once).
    #[arg(long, default_value_t = 1)]
    outputs: usize,
    /// Measured repetitions (after 3 warm-up ones); the median is reported.
    #[arg(long, default_value_t = 30)]
    runs: usize,
}

/// Parses `90`, `90s`, `15m`, `2h`, `1d` into seconds.
fn parse_duration(s: &str) -> std::result::Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86_400),
        _ => (s, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 600s, 30m, 2h)"))?;
    if !(n.is_finite() && n > 0.0) {
        return Err(format!("duration must be > 0, got `{s}`"));
    }
    Ok((n * mult as f64).round().max(1.0) as u64)
}

/// The seeds of `--seeds`.
#[derive(Debug, Clone)]
struct Seeds(Vec<u64>);

/// `N` (seeds 1..=N) or `A-B` (seeds A..=B).
fn parse_seeds(s: &str) -> std::result::Result<Seeds, String> {
    let num = |t: &str| {
        t.trim()
            .parse::<u64>()
            .map_err(|_| format!("`{s}` is not a seed count N or a range A-B"))
    };
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (1, num(s)?),
    };
    if hi == 0 || lo > hi {
        return Err(format!("`{s}`: need at least one seed (N >= 1, A <= B)"));
    }
    if hi - lo >= 10_000 {
        return Err(format!("`{s}`: at most 10000 seeds"));
    }
    Ok(Seeds((lo..=hi).collect()))
}

/// A duration that may be zero (`0`, `0s`), else as [`parse_duration`].
fn parse_duration_or_zero(s: &str) -> std::result::Result<u64, String> {
    match s
        .trim()
        .trim_end_matches(['s', 'm', 'h', 'd'])
        .parse::<f64>()
    {
        Ok(0.0) => Ok(0),
        _ => parse_duration(s),
    }
}

fn git_revision() -> String {
    if let Ok(r) = std::env::var("GRAPHSCALE_GIT_REVISION") {
        return r;
    }
    std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Demo(a) => demo(a),
        Command::Eval(a) => eval(a),
        Command::Sim {
            command:
                SimCommand::Serve {
                    app,
                    scenario,
                    autoscaler,
                    seed,
                    speed,
                    listen,
                    namespace,
                    duration,
                },
        } => crate::serve::sim_serve(crate::serve::ServeArgs {
            app,
            scenario,
            autoscaler,
            seed,
            speed,
            listen,
            namespace,
            duration,
        }),
        Command::Sim { command } => sim(command),
        Command::Collect(f) => crate::serve::collect_cmd(f.into_args()),
        Command::Forecast {
            command:
                ForecastCommand::Fit {
                    series,
                    model,
                    season,
                    max_horizon,
                    nn_config,
                    out,
                },
        } => crate::forecast::fit_cmd(crate::forecast::FitArgs {
            series: series.into_args(),
            model,
            nn_config,
            season,
            max_horizon_s: max_horizon,
            out,
        }),
        Command::Forecast {
            command:
                ForecastCommand::Predict {
                    model,
                    horizon,
                    quantiles,
                    json,
                },
        } => crate::forecast::predict_cmd(&model, horizon, &quantiles, json),
        Command::Forecast {
            command:
                ForecastCommand::Backtest {
                    series,
                    horizon,
                    window,
                    every,
                    models,
                    season,
                    level,
                    calibration,
                    scale_window,
                    refit_every,
                    nn_config,
                    out,
                },
        } => crate::forecast::backtest_cmd(crate::forecast::BacktestArgs {
            series: series.into_args(),
            horizons_s: horizon,
            window_s: window,
            every_s: every,
            models,
            season,
            level,
            calibration,
            scale_window,
            refit_every,
            nn_config,
            out,
        }),
        Command::Discover(f) => crate::serve::discover_cmd(f.into_args()),
        Command::Topology { command } => topology_cmd(command),
        Command::Calibrate { data, out } => calibrate_cmd(&data, &out),
        Command::Shadow {
            record,
            against,
            json,
        } => shadow_cmd(&record, &against, json.as_deref()),
        Command::Bench { command } => match command {
            BenchCommand::Sim { seconds, apps } => crate::bench::sim(seconds, &apps),
            BenchCommand::Decide {
                rounds,
                warmup,
                apps,
                autoscalers,
            } => crate::bench::decide(rounds, warmup, &apps, &autoscalers),
            BenchCommand::Forecast { csv, models } => crate::bench::forecast(&csv, &models),
            BenchCommand::Hgt {
                apps,
                dim,
                heads,
                layers,
                runs,
            } => crate::bench::hgt(&apps, dim, heads, layers, runs),
            BenchCommand::Nn(f) => crate::bench::nn(f.batch, f.window, f.hidden, f.outputs, f.runs),
            BenchCommand::GraphModels {
                data,
                models,
                config,
                epochs,
                no_lstm,
                json,
            } => {
                crate::graph::compare_cmd(&data, &models, config.as_deref(), epochs, !no_lstm, json)
            }
        },
        Command::Train {
            model,
            data,
            config,
            epochs,
            out,
        } => crate::graph::train_cmd(&model, &data, config.as_deref(), epochs, &out),
        Command::Predict {
            model,
            snapshot,
            json,
        } => crate::graph::predict_cmd(&model, &snapshot, json),
    }
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

fn execute(spec: &ExperimentSpec, out: &Path) -> Result<ExperimentResult> {
    spec.validate()?;
    let total = spec.apps.len() * spec.scenarios.len() * spec.autoscalers.len() * spec.seeds.len();
    let pb = progress_bar(total);
    let mut result = run_experiment(spec, &|r| {
        pb.set_message(format!(
            "{} / {} / {} / seed {}",
            r.app, r.scenario, r.autoscaler, r.seed
        ));
        pb.inc(1);
    })?;
    pb.finish_and_clear();
    result.git_revision = git_revision();
    crate::say!("{}", report::table(&result))?;
    let (j, h) = report::write_all(&result, out)?;
    crate::say!("\nwrote {} and {}", j.display(), h.display())?;
    Ok(result)
}

/// The demo's autoscalers: the HPA, peak provisioning, and one of the predictive autoscalers that
/// did best on the flash crowd in docs/benchmarks.md, with memory right-sizing, and without the
/// graph.
const DEMO_AUTOSCALERS: &str = "hpa, static, graph-trend, graph-trend-vpa, pred-trend";

fn demo(a: DemoArgs) -> Result<ExitCode> {
    if a.seeds == 0 {
        bail!("--seeds must be >= 1");
    }
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
    execute(&spec, &a.out)?;
    Ok(ExitCode::SUCCESS)
}

fn eval(a: EvalArgs) -> Result<ExitCode> {
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
    if let Some(d) = a.duration {
        for s in &mut spec.scenarios {
            s.duration_s = Some(d);
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

fn sim(cmd: SimCommand) -> Result<ExitCode> {
    let SimCommand::Run {
        app,
        scenario,
        peak_rps,
        autoscaler,
        seed,
        duration,
        series_out,
        record,
    } = cmd
    else {
        anyhow::bail!("internal: `sim serve` is dispatched elsewhere");
    };
    let app = topology::builtin(&app)?;
    let workload = if scenario.ends_with(".csv") {
        graphscale_sim::workload::check_readable(Path::new(&scenario))?;
        WorkloadSpec::Replay {
            path: Some(scenario.clone()),
            time_col: None,
            value_col: None,
            peak_rps: peak_rps.unwrap_or(app.nominal_peak_rps),
            speedup: None,
        }
    } else {
        WorkloadSpec::named(&scenario, peak_rps.unwrap_or(app.nominal_peak_rps))?
    };
    let duration = match duration {
        Some(d) => d,
        None => workload.natural_duration_s()?,
    };
    let spec = ExperimentSpec {
        apps: vec![app.name.clone()],
        scenarios: vec![ScenarioSpec {
            name: scenario.clone(),
            workload: Some(workload.clone()),
            duration_s: Some(duration),
        }],
        autoscalers: vec![AutoscalerSpec::named(&autoscaler)?],
        seeds: vec![seed],
        ..ExperimentSpec::default()
    };
    let mut lines = Vec::new();
    let mut log_err = None;
    let run = graphscale_eval::run_one_logged(
        &spec,
        &app,
        &spec.scenarios[0],
        &spec.autoscalers[0],
        seed,
        false,
        &mut |r| {
            if record.is_some() && log_err.is_none() {
                match serde_json::to_vec(&r) {
                    Ok(mut v) => {
                        v.push(b'\n');
                        lines.extend_from_slice(&v);
                    }
                    Err(e) => log_err = Some(e),
                }
            }
        },
    )?;
    if let Some(e) = log_err {
        return Err(e.into());
    }
    if let Some(path) = &record {
        report::write_atomic(path, &lines)?;
    }
    crate::say!(
        "{} / {} / {} / seed {} / {} s",
        run.app,
        run.scenario,
        run.autoscaler,
        seed,
        duration
    )?;
    for (name, v, _) in run.metrics.fields() {
        crate::say!("  {name:34} {v:.3}")?;
    }
    if let Some(path) = series_out {
        let series = record_series(&app, &workload, &spec.autoscalers[0], seed, duration)?;
        report::write_atomic(&path, series.to_json()?.as_bytes())?;
        crate::say!("wrote {}", path.display())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Re-runs a simulation and samples every node and edge on the scrape grid.
pub(crate) fn record_series(
    app: &graphscale_sim::spec::AppSpec,
    workload: &WorkloadSpec,
    autoscaler: &AutoscalerSpec,
    seed: u64,
    duration: u64,
) -> Result<GraphSeries> {
    let rates = workload.rates(duration, seed)?;
    let cfg = SimConfig {
        seed,
        ..SimConfig::default()
    };
    let step = cfg.scrape_interval_s * 1000;
    let mut sim = Simulator::new(app.clone(), cfg, rates)?;
    let spec = ExperimentSpec {
        apps: vec![app.name.clone()],
        autoscalers: vec![autoscaler.clone()],
        ..ExperimentSpec::default()
    };
    spec.validate()?;
    let scaler = graphscale_eval::build_autoscaler(autoscaler, app)?;
    let graph = sim.graph().clone();
    let len = (duration * 1000 / step) as usize;
    let mut series = GraphSeries::new(graph.clone(), step, step, len);
    let mut ctl = graphscale_control::ControlLoop::simulated(
        scaler,
        Millis::from_secs(spec.decision_offset_s),
    )?;
    let mut k = 0;
    while k < len {
        sim.step();
        let now = sim.now();
        ctl.tick(&mut sim)?;
        if now.0 % step == 0 {
            let snap = sim.observe()?;
            for (i, w) in snap.workloads.iter().enumerate() {
                let st = &sim.stats()[i];
                let m = series.nodes.entry(w.name.clone()).or_default();
                let mut put = |metric: Metric, v: f64| {
                    m.entry(metric).or_insert_with(|| vec![f64::NAN; len])[k] = v
                };
                put(Metric::Rps, w.rps.unwrap_or(f64::NAN));
                put(Metric::CpuMillicores, st.cpu_usage_m);
                put(Metric::MemoryMib, st.memory_mib);
                put(Metric::LatencyP50Ms, st.latency_ms[0]);
                put(Metric::LatencyP95Ms, st.latency_ms[1]);
                put(Metric::LatencyP99Ms, st.latency_ms[2]);
                put(Metric::ErrorRate, w.error_rate.unwrap_or(f64::NAN));
                put(Metric::ReplicasDesired, w.spec_replicas as f64);
                put(Metric::ReplicasReady, w.ready_pods() as f64);
                put(Metric::Backlog, st.waiting as f64);
                put(
                    Metric::Throughput,
                    st.served as f64 / sim.step_len().as_secs_f64(),
                );
            }
            for (name, _, backlog, _, _) in sim.backlogs() {
                let node = name.split('/').next().unwrap_or(&name).to_string();
                let m = series.nodes.entry(node).or_default();
                let v = m.entry(Metric::Backlog).or_insert_with(|| vec![0.0; len]);
                if v[k].is_nan() {
                    v[k] = 0.0;
                }
                v[k] += backlog as f64;
            }
            for e in &snap.edges {
                let idx = series
                    .edges
                    .iter()
                    .position(|x| x.src == e.src && x.dst == e.dst && x.relation == e.relation)
                    .unwrap_or_else(|| {
                        series.edges.push(graphscale_core::series::EdgeSeries {
                            src: e.src.clone(),
                            dst: e.dst.clone(),
                            relation: e.relation,
                            metrics: Default::default(),
                        });
                        series.edges.len() - 1
                    });
                series.edges[idx]
                    .metrics
                    .entry(Metric::Rps)
                    .or_insert_with(|| vec![f64::NAN; len])[k] = e.rps.unwrap_or(f64::NAN);
            }
            k += 1;
        }
    }
    series.validate()?;
    Ok(series)
}

fn topology_cmd(cmd: TopologyCommand) -> Result<ExitCode> {
    match cmd {
        TopologyCommand::List => {
            crate::say!(
                "{:18} {:>8} {:>6} {:>8} {:>10}  description",
                "name",
                "services",
                "edges",
                "SLO ms",
                "peak rps"
            )?;
            for name in [
                "online-boutique",
                "train-ticket",
                "alibaba",
                "event-driven",
                "random:100",
            ] {
                let a = topology::builtin(name)?;
                crate::say!(
                    "{:18} {:>8} {:>6} {:>8} {:>10}  {}",
                    name,
                    a.services.len(),
                    a.edges.len(),
                    a.slo_ms,
                    a.nominal_peak_rps,
                    a.description
                )?;
            }
        }
        TopologyCommand::Show { name } => {
            let a = topology::builtin(&name)?;
            crate::say!("{}", serde_json::to_string_pretty(&a)?)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn calibrate_cmd(data: &Path, out: &Path) -> Result<ExitCode> {
    if !data.is_dir() {
        bail!("{}: not a folder (the shared data folder, with microservices-ob-tt and alibaba-2022-microservices)", data.display());
    }
    for (file, app) in calibrate::all(data)? {
        let path = out.join(&file);
        report::write_atomic(
            &path,
            (serde_json::to_string_pretty(&app)? + "\n").as_bytes(),
        )?;
        crate::say!(
            "{}: {} services, {} edges, SLO {} ms, nominal peak {} rps",
            path.display(),
            app.services.len(),
            app.edges.len(),
            app.slo_ms,
            app.nominal_peak_rps
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn shadow_cmd(record: &Path, against: &str, json: Option<&Path>) -> Result<ExitCode> {
    let text =
        std::fs::read_to_string(record).with_context(|| format!("reading {}", record.display()))?;
    let records = graphscale_eval::shadow::parse_records(&text, &record.display().to_string())?;
    let spec = AutoscalerSpec::named(against)?;
    // The autoscaler is built for an app only to size `static`; any built-in app will do for
    // the others, which learn everything from the snapshots.
    let app = topology::builtin("online-boutique")?;
    let other = graphscale_eval::build_autoscaler(&spec, &app)?;
    let rep = graphscale_eval::shadow::shadow(&records, other)?;
    crate::say!(
        "shadow: {} decisions of {} replayed through `{}` (open loop)",
        rep.decisions,
        record.display(),
        rep.shadow_name
    )?;
    crate::say!(
        "{:24} {:>16} {:>16} {:>10} {:>10} {:>9} {:>9}",
        "workload",
        "core-h recorded",
        format!("core-h {}", rep.shadow_name),
        "short rec",
        format!("short {}", rep.shadow_name),
        "chg rec",
        "chg shd"
    )?;
    for r in rep
        .rows
        .iter()
        .chain(std::iter::once(&graphscale_eval::shadow::ShadowRow {
            workload: "TOTAL".into(),
            recorded: rep.total_recorded.clone(),
            shadow: rep.total_shadow.clone(),
        }))
    {
        crate::say!(
            "{:24} {:>16.3} {:>16.3} {:>10} {:>10} {:>9} {:>9}",
            r.workload,
            r.recorded.cpu_core_hours,
            r.shadow.cpu_core_hours,
            r.recorded.short_decisions,
            r.shadow.short_decisions,
            r.recorded.changes,
            r.shadow.changes
        )?;
    }
    crate::say!(
        "SLO favours: {} (fewer decisions short of the demand one start-up later); cost favours: {}",
        rep.slo_favours,
        rep.cost_favours
    )?;
    if let Some(p) = json {
        report::write_atomic(p, serde_json::to_string_pretty(&rep)?.as_bytes())?;
        crate::say!("wrote {}", p.display())?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert_eq!(parse_duration("1d"), Ok(86_400));
        assert!(parse_duration("-5m").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
