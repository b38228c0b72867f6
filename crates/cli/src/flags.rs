//! The command line: every flag, its parsing and validation, and nothing that runs. The commands
//! live in `app` (dispatch), `experiment`, `simulate` and `data`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub(crate) use crate::flags_bench::BenchCommand;

/// graphscale: a graph-aware, predictive autoscaler for Kubernetes microservices.
///
/// With no cluster, graphscale runs on its embedded simulator: `graphscale demo` compares every
/// available autoscaler with the Kubernetes HPA on Online Boutique, and `graphscale eval` runs
/// any experiment (apps x scenarios x autoscalers x seeds) with confidence intervals and effect
/// sizes. Log level: GRAPHSCALE_LOG (e.g. `info`).
#[derive(Debug, Parser)]
#[command(name = "graphscale", version, about, long_about)]
pub struct Cli {
    /// Replace output files that exist (results, reports, checkpoints, collect folders, records).
    /// Without it an existing file is never replaced: the command stops and names it.
    #[arg(long, global = true)]
    pub(crate) force: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// The main job: Online Boutique under a WorldCup98 day and a flash crowd; the HPA (default
    /// and tuned), static, graphscale (the whole-graph SLO planner with a cost per scaling
    /// action) and graph-trend, 5 seeds; prints the comparison and writes the JSON and HTML
    /// report.
    Demo(DemoArgs),
    /// Run an experiment: apps x scenarios x autoscalers x seeds, with 95 % CIs and Cliff's delta.
    #[command(after_help = autoscaler_help())]
    Eval(EvalArgs),
    /// Tune the HPA per app by a grid search (CPU target, tolerance, scale-down window, scale-up
    /// policy) on tuning seeds: per app, the least CPU with no more SLO-violation minutes than the
    /// default HPA in any scenario; writes the report that data/hpa-tuned.json ships for
    /// `hpa-tuned` (docs/planner.md).
    TuneHpa(TuneHpaArgs),
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
    /// Print the PredictiveAutoscaler CRD (autoscaling.graphscale.dev/v1alpha1) as YAML
    /// (deploy/base/crd.yaml holds the same).
    Crd,
    /// Run the Kubernetes operator: watches PredictiveAutoscalers and runs a control loop for
    /// each (docs/operator.md). Reads KUBECONFIG, ~/.kube/config or the in-cluster account.
    Operator(OperatorArgs),
    /// Serve the HTTP API (docs/api.md): predictions with their plan, training jobs, models,
    /// health, metrics and the OpenAPI document.
    Serve(ServeArgs),
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
    /// Reinforcement learning: train a PPO policy with a GAT, GCN or MLP encoder in the
    /// simulator, and evaluate it there (docs/rl.md). To compare a trained policy with the HPA,
    /// name it in `graphscale eval --autoscalers hpa,rl-gat:PATH`.
    Rl {
        #[command(subcommand)]
        command: crate::flags_rl::RlCommand,
    },
    /// Benchmarks (see docs/benchmarks.md).
    #[command(arg_required_else_help = true, args_conflicts_with_subcommands = true)]
    Bench {
        /// Run every benchmark once, at small sizes, in seconds: checks that each one runs and
        /// prints its table (the timings of such a run mean nothing).
        #[arg(long)]
        quick: bool,
        #[command(subcommand)]
        command: Option<BenchCommand>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Output folder for results.json and report.html. Default: graphscale-out/demo, or, when
    /// that holds results already, the first of graphscale-out/demo-2, demo-3, ... that does not
    /// (a run never replaces earlier results unless --force and --out say so).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Number of seeds (1..=1000).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub(crate) seeds: u64,
}

#[derive(Debug, Args)]
pub(crate) struct CollectFlags {
    /// Prometheus base URL, e.g. http://127.0.0.1:9090 (any PromQL-compatible API).
    #[arg(long)]
    pub(crate) prometheus: Option<String>,
    /// (discover) A Kiali graph JSON file instead of Prometheus.
    #[arg(long)]
    pub(crate) kiali: Option<PathBuf>,
    /// Collector config JSON: discovery settings, PromQL templates, client settings (docs/monitor.md).
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Kubernetes namespace (default `default`).
    #[arg(long)]
    pub(crate) namespace: Option<String>,
    /// (collect) How far back from --end, e.g. 6h.
    #[arg(long, value_parser = parse_duration, default_value = "1h")]
    pub(crate) range: u64,
    /// (collect) Step of the series, e.g. 15s.
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    pub(crate) step: u64,
    /// End of the range (Unix seconds); default now.
    #[arg(long)]
    pub(crate) end: Option<f64>,
    /// Divide rates by this: the speed factor of an accelerated `sim serve`.
    #[arg(long)]
    pub(crate) time_scale: Option<f64>,
    /// Per-request timeout, ms (default 120000, Prometheus' own query timeout).
    #[arg(long)]
    pub(crate) timeout_ms: Option<u64>,
    /// Retries of a request after a connection error, a timeout or a 5xx (default 3; at most 10).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=10))]
    pub(crate) retries: Option<u32>,
    /// The most the whole command waits for Prometheus, retries included, e.g. 30s
    /// (default: 60s for discover, 1h for collect).
    #[arg(long, value_parser = parse_duration)]
    pub(crate) deadline: Option<u64>,
    /// (collect) Output folder; (discover) output file, default stdout.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// (collect) Print the Prometheus recording rules for the p95 latencies of the config's
    /// window (`templates.window`, default 1m) and exit. With them loaded, collect and discover
    /// read the recorded p95s instead of evaluating `histogram_quantile` at every step.
    #[arg(long)]
    pub(crate) print_recording_rules: bool,
}

impl CollectFlags {
    pub(crate) fn into_args(self) -> crate::serve::CollectArgs {
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
            retries: self.retries,
            deadline_s: self.deadline,
            out: self.out,
            print_recording_rules: self.print_recording_rules,
        }
    }
}

/// The autoscaler catalogue as `--help` shows it.
pub(crate) fn autoscaler_help() -> String {
    let mut out = String::from("Autoscalers:\n");
    for e in graphscale_control::CATALOGUE {
        out.push_str(&format!("  {:<18} {}\n", e.name, e.help));
    }
    for (name, help) in graphscale_control::ONNX_AUTOSCALERS
        .into_iter()
        .chain(graphscale_control::RL_AUTOSCALERS)
    {
        out.push_str(&format!("  {name:<18} {help}\n"));
    }
    out
}

#[derive(Debug, Args)]
pub(crate) struct EvalArgs {
    /// An experiment spec as JSON (docs/schema.md); flags below override its fields.
    #[arg(long)]
    pub(crate) spec: Option<PathBuf>,
    /// Comma-separated apps: online-boutique, train-ticket, alibaba, event-driven, random:N[:SEED] or app JSON paths.
    #[arg(long, value_delimiter = ',')]
    pub(crate) apps: Vec<String>,
    /// Comma-separated scenarios: off-peak, peak, rush, fluctuating, diurnal, worldcup98, or a
    /// CSV file to replay (timestamp, requests), its maximum scaled to each app's nominal peak.
    #[arg(long, value_delimiter = ',')]
    pub(crate) scenarios: Vec<String>,
    /// Comma-separated autoscalers (default hpa,static): the names listed below
    /// (docs/planner.md).
    #[arg(long, value_delimiter = ',')]
    pub(crate) autoscalers: Vec<String>,
    /// Seeds: N for seeds 1..=N, or A-B for seeds A..=B (e.g. 6-10, seeds not used to choose
    /// any default); default 5.
    #[arg(long, value_parser = parse_seeds)]
    pub(crate) seeds: Option<Seeds>,
    /// Simulated duration per run (e.g. 600s, 30m, 2h); default each scenario's own (1 h, or 24 h
    /// for diurnal and worldcup98).
    #[arg(long, value_parser = parse_duration)]
    pub(crate) duration: Option<u64>,
    /// Size every scenario (named or replayed CSV) for this share of each app's nominal peak,
    /// in (0, 100] (e.g. 0.5 for half the peak); default 1.
    #[arg(long)]
    pub(crate) peak_share: Option<f64>,
    /// Override every app's end-to-end p95 SLO, ms.
    #[arg(long)]
    pub(crate) slo_ms: Option<f64>,
    /// Start of each run left out of the metrics, whole minutes (e.g. 0s, 5m); default 5m for
    /// runs of at least 30 minutes, 0 for shorter ones (runs start cold, one replica per service)
    #[arg(long, value_parser = parse_duration_or_zero)]
    pub(crate) warmup: Option<u64>,
    /// Worker threads (0 = one per core).
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// Output folder for results.json and report.html.
    #[arg(long, default_value = "graphscale-out/eval")]
    pub(crate) out: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct TuneHpaArgs {
    /// Comma-separated apps (as `eval --apps`).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "online-boutique,train-ticket,alibaba,event-driven"
    )]
    pub(crate) apps: Vec<String>,
    /// Comma-separated scenarios (as `eval --scenarios`).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "off-peak,peak,rush,fluctuating"
    )]
    pub(crate) scenarios: Vec<String>,
    /// Seeds: N for 1..=N or A-B; keep them apart from the seeds you evaluate on.
    #[arg(long, value_parser = parse_seeds, default_value = "1-5")]
    pub(crate) seeds: Seeds,
    /// Simulated duration per run; default each scenario's own.
    #[arg(long, value_parser = parse_duration)]
    pub(crate) duration: Option<u64>,
    /// Start of each run left out of the metrics (as `eval --warmup`).
    #[arg(long, value_parser = parse_duration_or_zero)]
    pub(crate) warmup: Option<u64>,
    /// CPU targets to try, %.
    #[arg(long, value_delimiter = ',', default_value = "50,60,70,80,90")]
    pub(crate) targets: Vec<u32>,
    /// Controller tolerances to try.
    #[arg(long, value_delimiter = ',', default_value = "0.05,0.1")]
    pub(crate) tolerances: Vec<f64>,
    /// Scale-down stabilisation windows to try (e.g. 0s, 60s, 5m).
    #[arg(long, value_delimiter = ',', value_parser = parse_duration_or_zero, default_value = "0s,60s,150s,300s")]
    pub(crate) windows: Vec<u64>,
    /// Scale-up policies to try, PODS/PERCENT per 15 s (the HPA's default is 4/100).
    #[arg(long, value_delimiter = ',', value_parser = parse_scale_up, default_value = "4/100,8/200")]
    pub(crate) scale_up: Vec<(u32, u32)>,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub(crate) threads: usize,
    /// The report (JSON; data/hpa-tuned.json is one).
    #[arg(long, default_value = "graphscale-out/hpa-tuned.json")]
    pub(crate) out: PathBuf,
}

/// `PODS/PERCENT`, each in 1..=1000.
pub(crate) fn parse_scale_up(s: &str) -> std::result::Result<(u32, u32), String> {
    let bad = || format!("`{s}` is not PODS/PERCENT (e.g. 4/100), each 1..=1000");
    let (p, q) = s.split_once('/').ok_or_else(bad)?;
    let p: u32 = p.trim().parse().map_err(|_| bad())?;
    let q: u32 = q.trim().parse().map_err(|_| bad())?;
    if !(1..=1000).contains(&p) || !(1..=1000).contains(&q) {
        return Err(bad());
    }
    Ok((p, q))
}

#[derive(Debug, Subcommand)]
pub(crate) enum SimCommand {
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
        /// Digital twin of a Kubernetes namespace (KUBECONFIG): register every service as a
        /// Deployment of --namespace (those missing), then follow their `spec.replicas` and
        /// pod resources on the API server instead of running --autoscaler.
        #[arg(long)]
        follow_cluster: bool,
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
pub(crate) struct SeriesFlags {
    /// CSV with a timestamp column (unix seconds or RFC 3339 UTC) and a value column.
    #[arg(long)]
    pub(crate) csv: PathBuf,
    /// Timestamp column (default: the first).
    #[arg(long)]
    pub(crate) time_col: Option<String>,
    /// Value column (default: the last).
    #[arg(long)]
    pub(crate) value_col: Option<String>,
    /// Keep rows at or after this time (unix seconds or RFC 3339 UTC).
    #[arg(long)]
    pub(crate) from: Option<String>,
    /// Keep rows before this time.
    #[arg(long)]
    pub(crate) to: Option<String>,
    /// Resample to this step (e.g. 1m, 5m).
    #[arg(long, value_parser = parse_duration, default_value = "1m")]
    pub(crate) step: u64,
    /// How values inside one step combine: sum (counts) or mean (rates, gauges).
    #[arg(long, default_value = "mean", value_parser = ["sum", "mean"])]
    pub(crate) agg: String,
    /// Keep monitoring glitches (isolated spikes and drops) instead of replacing them.
    #[arg(long)]
    pub(crate) no_filter: bool,
}

impl SeriesFlags {
    pub(crate) fn into_args(self) -> crate::forecast::SeriesArgs {
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
pub(crate) enum ForecastCommand {
    /// Fit one model (with split-conformal calibration) to a CSV series and save a checkpoint:
    /// FILE.safetensors with the manifest in its header, and FILE.safetensors.json.
    Fit {
        #[command(flatten)]
        series: SeriesFlags,
        /// persistence, trend, seasonal-naive, ets, mstl, lstm, gru, hybrid-mstl, onnx:PATH (an
        /// ONNX file, docs/forecast.md), prophet, hybrid-prophet, and prophet-stan (with the
        /// `prophet-stan` feature).
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
        /// hybrid-mstl, onnx:PATH (an ONNX file, docs/forecast.md), prophet, hybrid-prophet, and
        /// prophet-stan (with the `prophet-stan` feature).
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
pub(crate) enum TopologyCommand {
    /// One line per built-in app: services, edges, SLO, nominal peak.
    List,
    /// Print an app as JSON.
    Show {
        /// App name or app JSON path.
        name: String,
    },
}

/// The longest duration a flag takes: 366 days.
pub(crate) const MAX_DURATION_S: u64 = 366 * 86_400;

/// Parses `90`, `90s`, `15m`, `2h`, `1d` into seconds, at most [`MAX_DURATION_S`].
pub(crate) fn parse_duration(s: &str) -> std::result::Result<u64, String> {
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
    let secs = n * mult as f64;
    if secs > MAX_DURATION_S as f64 {
        return Err(format!(
            "`{s}` is more than {} days, the longest duration accepted",
            MAX_DURATION_S / 86_400
        ));
    }
    Ok(secs.round().max(1.0) as u64)
}

/// The seeds of `--seeds`.
#[derive(Debug, Clone)]
pub(crate) struct Seeds(pub(crate) Vec<u64>);

/// `N` (seeds 1..=N) or `A-B` (seeds A..=B).
pub(crate) fn parse_seeds(s: &str) -> std::result::Result<Seeds, String> {
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
pub(crate) fn parse_duration_or_zero(s: &str) -> std::result::Result<u64, String> {
    match s
        .trim()
        .trim_end_matches(['s', 'm', 'h', 'd'])
        .parse::<f64>()
    {
        Ok(0.0) => Ok(0),
        _ => parse_duration(s),
    }
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
        assert_eq!(parse_duration("366d"), Ok(MAX_DURATION_S));
        for huge in ["1e30s", "99999d", "367d", "inf", "NaN"] {
            let e = parse_duration(huge).unwrap_err();
            assert!(
                e.contains("366 days") || e.contains("> 0") || e.contains("not a duration"),
                "{huge}: {e}"
            );
        }
        assert!(parse_duration("1e30s").unwrap_err().contains("366 days"));
    }

    proptest::proptest! {
        /// Any text: a bounded duration or an error, never a panic.
        #[test]
        fn durations_and_seed_ranges_never_panic(s in "\\PC{0,24}", n in proptest::prelude::any::<f64>(), unit in "[smhd]?") {
            if let Ok(d) = parse_duration(&s) {
                proptest::prop_assert!((1..=MAX_DURATION_S).contains(&d));
            }
            if let Ok(d) = parse_duration(&format!("{n}{unit}")) {
                proptest::prop_assert!((1..=MAX_DURATION_S).contains(&d));
            }
            let _ = parse_duration_or_zero(&s);
            if let Ok(Seeds(v)) = parse_seeds(&s) {
                proptest::prop_assert!(!v.is_empty() && v.len() <= 10_000);
            }
        }
    }
}

/// `graphscale serve` flags.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) listen: String,
    /// Folder of graph models (`graphscale train` checkpoints, `*.safetensors`), read at start;
    /// trained models are saved there. Without it, models live in memory only.
    #[arg(long)]
    pub(crate) models_dir: Option<PathBuf>,
    /// File holding the bearer token of the mutating endpoints (at least 16 characters); else
    /// the GRAPHSCALE_API_TOKEN variable; with neither, mutating endpoints answer 403.
    #[arg(long)]
    pub(crate) token_file: Option<PathBuf>,
    /// Largest request body, MiB (1..=256).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub(crate) max_body_mib: u64,
    /// Connections served at once (1..=100000).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub(crate) max_connections: u64,
    /// The simulated cluster `POST /v1/apply` acts on and the web page (`/`) shows: an app
    /// name (online-boutique, train-ticket, alibaba, event-driven, random:N[:SEED]) or app
    /// JSON path. It starts with each service at its initial replicas, runs under
    /// --sim-scenario, and its replicas change only through /v1/apply (the HPA beside it is a
    /// shadow: what it would do, never applied).
    #[arg(long, default_value = "online-boutique")]
    pub(crate) sim_app: String,
    /// The load on the simulated cluster: a scenario of `graphscale sim` (steady, diurnal,
    /// rush, worldcup98, ...), run once at its natural length.
    #[arg(long, default_value = "diurnal")]
    pub(crate) sim_scenario: String,
    /// How fast the simulated cluster runs: simulated seconds per second, (0, 10000].
    #[arg(long, default_value_t = 1.0)]
    pub(crate) sim_speed: f64,
    /// Seed of the simulated cluster's load and pods.
    #[arg(long, default_value_t = 1)]
    pub(crate) sim_seed: u64,
    /// `POST /v1/apply` writes to the Deployments and StatefulSets of this Kubernetes
    /// namespace (KUBECONFIG, else the in-cluster account) instead of the simulated cluster.
    #[arg(long, value_name = "NS")]
    pub(crate) kube_namespace: Option<String>,
    /// Print the OpenAPI document (docs/openapi.json) and exit.
    #[arg(long)]
    pub(crate) openapi: bool,
}

/// `graphscale operator` flags.
#[derive(Debug, Args)]
pub(crate) struct OperatorArgs {
    /// Watch this namespace only (default: every namespace).
    #[arg(long)]
    pub(crate) namespace: Option<String>,
    /// Where /metrics, /healthz and /readyz listen.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub(crate) listen: std::net::SocketAddr,
    /// Serve KEDA's external-scaler gRPC protocol here (for example 0.0.0.0:9090): each
    /// workload's plan as the metric `graphscale-planned-replicas` (docs/operator.md). Off
    /// unless given.
    #[arg(long, value_name = "ADDR")]
    pub(crate) keda_listen: Option<std::net::SocketAddr>,
    /// Run without leader election (one replica only).
    #[arg(long)]
    pub(crate) no_leader_election: bool,
    /// Namespace of the Lease (default: $POD_NAMESPACE, else `default`).
    #[arg(long)]
    pub(crate) lease_namespace: Option<String>,
    /// Name of the Lease (one per shard).
    #[arg(long, default_value = "graphscale-operator")]
    pub(crate) lease_name: String,
    /// This replica's identity (default: $POD_NAME, else $HOSTNAME, else graphscale-PID).
    #[arg(long)]
    pub(crate) identity: Option<String>,
    /// Seconds a Lease holds without renewal (1..=300).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub(crate) lease_duration: u64,
    /// Seconds between renewals (1..=300, less than the duration).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub(crate) renew_every: u64,
    /// Training threads per PredictiveAutoscaler (1..=64).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub(crate) training_threads: u64,
    /// The folder a PredictiveAutoscaler's `spec.checkpoint` is read from (a graph model
    /// written by `graphscale train`; mount it from a volume). Nothing outside it is read.
    #[arg(long, default_value = "/models")]
    pub(crate) models_dir: std::path::PathBuf,
}
