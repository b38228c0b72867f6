//! The flags of `graphscale rl ...`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::flags::{parse_duration, parse_seeds, Seeds};

/// `graphscale rl ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum RlCommand {
    /// Train a policy with PPO on random loads of one app (seeds from --seed upwards, never
    /// the evaluation's named scenarios); writes the checkpoint to --out every
    /// --checkpoint-every updates and at the end, and the training curve beside it
    /// (OUT.curve.csv and OUT.curve.svg).
    Train(TrainArgs),
    /// Run a trained policy (greedy, without the safety layer) in the environment on named
    /// scenarios and seeds, and print its return and reward terms per scenario.
    Eval {
        /// A checkpoint written by `graphscale rl train`.
        #[arg(long)]
        policy: PathBuf,
        /// Comma-separated named scenarios.
        #[arg(long, default_value = "off-peak,peak,rush,fluctuating")]
        scenarios: String,
        /// Seeds: N (1..=N) or A-B.
        #[arg(long, value_parser = parse_seeds, default_value = "6-10")]
        seeds: Seeds,
        /// Simulated duration of each run (e.g. 3600s, 1h).
        #[arg(long, value_parser = parse_duration, default_value = "3600s")]
        duration: u64,
    },
}

/// The flags of `graphscale rl train`.
#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    /// The app: online-boutique, train-ticket, alibaba, event-driven or random:N[:SEED].
    #[arg(long, default_value = "online-boutique")]
    pub(crate) app: String,
    /// gat (the main model), gcn, or mlp (the ablation without the graph).
    #[arg(long, default_value = "gat")]
    pub(crate) encoder: String,
    /// PPO updates (1..=100000).
    #[arg(long, default_value_t = 100)]
    pub(crate) updates: usize,
    /// Environments stepped together (1..=256).
    #[arg(long, default_value_t = 8)]
    pub(crate) envs: usize,
    /// Threads that step the environments.
    #[arg(long, default_value_t = 1)]
    pub(crate) threads: usize,
    /// Seed of the network, the draws and the first episode (episodes use seed, seed+1, ...).
    #[arg(long, default_value_t = 1000)]
    pub(crate) seed: u64,
    /// Settings as JSON: {"ppo": {...}, "env": {...}, "net": {...}} (docs/rl.md lists
    /// fields and defaults); flags override the seed.
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Write the checkpoint every N updates (0: only at the end).
    #[arg(long, default_value_t = 10)]
    pub(crate) checkpoint_every: usize,
    /// Continue from this checkpoint (its network and update count; its settings unless
    /// --config gives others).
    #[arg(long)]
    pub(crate) resume: Option<PathBuf>,
    /// The checkpoint to write.
    #[arg(long, default_value = "graphscale-out/rl/policy.safetensors")]
    pub(crate) out: PathBuf,
}
