//! The flags of `graphscale bench ...`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Reinforcement learning: the environment's service-steps per second (the simulator alone
    /// as the baseline, one thread; a vector of 8 on 1 and 2 threads) and PPO's update time and
    /// forward pass per encoder.
    Rl {
        /// The app.
        #[arg(long, default_value = "online-boutique")]
        app: String,
        /// Environment steps (15 simulated seconds each) per throughput row.
        #[arg(long, default_value_t = 20_000)]
        env_steps: u64,
        /// PPO updates timed per encoder.
        #[arg(long, default_value_t = 10)]
        updates: usize,
    },
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
    /// of the WorldCup98 tournament, from 1998-06-10, or of another `unix_ts,requests` CSV),
    /// median of 5 runs, one thread.
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
    /// pass of the LSTM and GRU forecasters and of a linear baseline, medians in ms; the forward
    /// on the host kernel that predictions run, and through burn's modules; the LSTM's and GRU's
    /// training step on the host, as training runs it, and through burn's modules. Threads: set
    /// RAYON_NUM_THREADS (for example 1).
    Nn(NnBenchFlags),
    /// HGT speed: one forward pass and one training step (forward, backward, Adam) of an HGT
    /// network on each app's graph, medians in ms; the forward is the host forward that
    /// predictions run, with the same forward through burn's modules in the last column.
    /// Threads: set RAYON_NUM_THREADS.
    Hgt {
        /// Built-in apps, random:N[:SEED], synthetic:NODES:EDGES (a seeded random graph of
        /// services, queues and topics with every relation between them), or peer:SIZE (the
        /// schema of the PyTorch Geometric peer, shared/peers/bench_hgt.py: boutique11, svc1k,
        /// svc10k; 4 node types, 12 relations: 6 and their reverses).
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
    /// KEDA external scaler: `GetMetrics` latency (p50/p90/p99/max) and throughput over one
    /// gRPC connection on 127.0.0.1, with 1, 8 and 64 requests in flight by default.
    Keda {
        /// Workloads with a plan on the board.
        #[arg(long, default_value_t = 1000)]
        workloads: usize,
        /// Measured requests per concurrency (after 1,000 warm-up ones).
        #[arg(long, default_value_t = 50_000)]
        requests: usize,
        /// Requests in flight at once, one row each.
        #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
        concurrency: Vec<usize>,
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
pub(crate) struct NnBenchFlags {
    /// Windows per training batch.
    #[arg(long, default_value_t = 64)]
    pub(crate) batch: usize,
    /// Steps per window.
    #[arg(long, default_value_t = 60)]
    pub(crate) window: usize,
    /// Hidden units.
    #[arg(long, default_value_t = 64)]
    pub(crate) hidden: usize,
    /// Outputs (steps predicted at once).
    #[arg(long, default_value_t = 1)]
    pub(crate) outputs: usize,
    /// Measured repetitions (after 3 warm-up ones); the median is reported.
    #[arg(long, default_value_t = 30)]
    pub(crate) runs: usize,
}
