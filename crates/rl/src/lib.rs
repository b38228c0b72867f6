//! # graphscale-rl
//!
//! Reinforcement learning for graphscale, always behind the safety layer:
//!
//! - [`features`]: the observation (per-workload features, global scalars, the action mask),
//!   built from a [`graphscale_core::ClusterSnapshot`] the same way in training and in use;
//! - [`env`]: a gym-style environment over the simulator ([`env::SimEnv`]: `reset(seed)`,
//!   `step(actions)`), and [`env::VecEnv`] stepping several at once;
//! - [`policy`]: the policy and value network with a GAT, GCN or MLP encoder, on burn;
//! - [`ppo`]: PPO (clipped objective, GAE, value head, entropy bonus, minibatches);
//! - [`checkpoint`]: a policy's weights and manifest in one safetensors file;
//! - [`autoscaler`]: a trained policy as an autoscaler (greedy actions), for
//!   [`graphscale_plan::guarded::Guarded`] to wrap.
//!
//! Training never runs on the decision path: `graphscale rl train` trains offline, and the
//! autoscaler only runs the network forward.

pub mod autoscaler;
pub mod checkpoint;
pub mod env;
mod error;
pub mod features;
pub mod policy;
pub mod ppo;

pub use error::RlError;

use features::{Obs, PolicyGraph};

/// Several environments stepped together, as [`ppo::Trainer`] drives them.
pub trait Environment {
    /// The workloads and their links (the same in every environment).
    fn graph(&self) -> &PolicyGraph;
    /// Starts every environment; one observation each.
    fn reset(&mut self) -> Result<Vec<Obs>, RlError>;
    /// One action vector per environment; one step each. An environment whose episode ends
    /// returns `done` and the first observation of its next episode.
    fn step(&mut self, actions: &[Vec<usize>]) -> Result<Vec<env::Step>, RlError>;
}

impl Environment for env::VecEnv {
    fn graph(&self) -> &PolicyGraph {
        env::VecEnv::graph(self)
    }
    fn reset(&mut self) -> Result<Vec<Obs>, RlError> {
        env::VecEnv::reset(self)
    }
    fn step(&mut self, actions: &[Vec<usize>]) -> Result<Vec<env::Step>, RlError> {
        env::VecEnv::step(self, actions)
    }
}
