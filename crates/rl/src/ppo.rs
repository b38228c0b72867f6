//! Proximal policy optimisation (Schulman et al. 2017): rollouts from a vector of
//! environments, generalised advantage estimation (GAE, Schulman et al. 2016), and minibatch
//! epochs of the clipped objective with a value loss and an entropy bonus.
//!
//! The pure parts ([`gae`], [`clipped_objective`]) work on host numbers and are tested against
//! hand-computed values; [`Trainer`] runs them with the network on burn's autodiff device.
//! Deterministic for a seed: the environments' seeds, the action draws and the minibatch
//! shuffles all come from it, and the network is initialised from it.

use burn::module::Module;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::features::{Obs, PolicyGraph, ACTIONS};
use crate::policy::{log_probs, Encoder, GraphTensors, NetConfig, ObsBatch, PolicyNet};
use crate::{Environment, RlError};

/// PPO's settings; every field has a documented default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PpoConfig {
    /// Environment steps per environment per update (1..=4096); default 64.
    pub rollout_steps: usize,
    /// Epochs over each rollout (1..=64); default 4.
    pub epochs: usize,
    /// Minibatch size (1..=65,536); default 128.
    pub minibatch: usize,
    /// Discount (0..1); default 0.97 (a 15-s step: about 8 minutes ahead).
    pub gamma: f64,
    /// GAE's lambda (0..=1); default 0.95.
    pub lambda: f64,
    /// Clip range of the probability ratio (0..1); default 0.2.
    pub clip: f64,
    /// Weight of the value loss; default 0.5.
    pub value_coef: f64,
    /// Weight of the entropy bonus; default 0.01.
    pub entropy_coef: f64,
    /// Adam's learning rate; default 3e-4.
    pub learning_rate: f64,
    /// Gradients are clipped to this global norm; default 0.5.
    pub max_grad_norm: f32,
    /// Rewards are multiplied by this before the advantages and returns (keeps the value head's
    /// targets near 1: a step's reward is about -1 to -20); default 0.05.
    pub reward_scale: f64,
    /// Seed of the network, the action draws and the shuffles; default 0.
    pub seed: u64,
}

impl Default for PpoConfig {
    fn default() -> Self {
        PpoConfig {
            rollout_steps: 64,
            epochs: 4,
            minibatch: 128,
            gamma: 0.97,
            lambda: 0.95,
            clip: 0.2,
            value_coef: 0.5,
            entropy_coef: 0.01,
            learning_rate: 3e-4,
            max_grad_norm: 0.5,
            reward_scale: 0.05,
            seed: 0,
        }
    }
}

impl PpoConfig {
    /// Checks every field.
    pub fn check(&self) -> Result<(), RlError> {
        let bad = |field: &str, v: String, range: &str| {
            Err(RlError::Config {
                field: format!("ppo.{field}"),
                reason: format!("{v} is not in {range}"),
            })
        };
        if !(1..=4096).contains(&self.rollout_steps) {
            return bad("rollout_steps", self.rollout_steps.to_string(), "1..=4096");
        }
        if !(1..=64).contains(&self.epochs) {
            return bad("epochs", self.epochs.to_string(), "1..=64");
        }
        if !(1..=65_536).contains(&self.minibatch) {
            return bad("minibatch", self.minibatch.to_string(), "1..=65536");
        }
        let open = |v: f64| v.is_finite() && v > 0.0 && v < 1.0;
        if !open(self.gamma) {
            return bad("gamma", self.gamma.to_string(), "(0, 1)");
        }
        if !(self.lambda.is_finite() && (0.0..=1.0).contains(&self.lambda)) {
            return bad("lambda", self.lambda.to_string(), "[0, 1]");
        }
        if !open(self.clip) {
            return bad("clip", self.clip.to_string(), "(0, 1)");
        }
        for (f, v) in [
            ("value_coef", self.value_coef),
            ("entropy_coef", self.entropy_coef),
        ] {
            if !(v.is_finite() && (0.0..=100.0).contains(&v)) {
                return bad(f, v.to_string(), "[0, 100]");
            }
        }
        if !(self.learning_rate.is_finite()
            && self.learning_rate > 0.0
            && self.learning_rate <= 1.0)
        {
            return bad("learning_rate", self.learning_rate.to_string(), "(0, 1]");
        }
        if !(self.max_grad_norm.is_finite() && self.max_grad_norm > 0.0) {
            return bad("max_grad_norm", self.max_grad_norm.to_string(), "(0, inf)");
        }
        if !(self.reward_scale.is_finite() && self.reward_scale > 0.0 && self.reward_scale <= 1e3) {
            return bad("reward_scale", self.reward_scale.to_string(), "(0, 1000]");
        }
        Ok(())
    }
}

/// Generalised advantage estimates and returns for one environment's rollout: `rewards[t]`,
/// `values[t]` and `dones[t]` (the episode ended after step `t`) for `t = 0..T`, and the value
/// of the observation after the last step. Returns `(advantages, returns)`, `returns = adv +
/// values`.
pub fn gae(
    rewards: &[f64],
    values: &[f64],
    dones: &[bool],
    last_value: f64,
    gamma: f64,
    lambda: f64,
) -> (Vec<f64>, Vec<f64>) {
    let t_len = rewards.len();
    let mut adv = vec![0.0; t_len];
    let mut next_adv = 0.0;
    let mut next_value = last_value;
    for t in (0..t_len).rev() {
        let live = if dones[t] { 0.0 } else { 1.0 };
        let delta = rewards[t] + gamma * next_value * live - values[t];
        next_adv = delta + gamma * lambda * live * next_adv;
        adv[t] = next_adv;
        next_value = values[t];
    }
    let ret = adv.iter().zip(values).map(|(a, v)| a + v).collect();
    (adv, ret)
}

/// The clipped surrogate objective of one sample, to be maximised:
/// `min(r A, clip(r, 1 - eps, 1 + eps) A)` with `r = exp(logp_new - logp_old)`.
pub fn clipped_objective(logp_new: f64, logp_old: f64, advantage: f64, eps: f64) -> f64 {
    let r = (logp_new - logp_old).exp();
    (r * advantage).min(r.clamp(1.0 - eps, 1.0 + eps) * advantage)
}

/// The loss of one minibatch on tensors: `-mean(clipped objective) + value_coef * mean((v -
/// ret)^2) - entropy_coef * mean(entropy)`, and its parts.
pub struct Loss {
    /// The total, to differentiate.
    pub total: Tensor<1>,
    /// `-mean(clipped objective)`.
    pub policy: Tensor<1>,
    /// `mean((v - ret)^2)`.
    pub value: Tensor<1>,
    /// Mean entropy per workload.
    pub entropy: Tensor<1>,
    /// Mean `old - new` log-probability (an estimate of the KL divergence).
    pub approx_kl: Tensor<1>,
    /// Share of samples whose ratio was clipped.
    pub clip_frac: Tensor<1>,
}

/// The minibatch's inputs besides the observations.
pub struct Targets {
    /// `[b, n, ACTIONS]` one-hot of the actions taken.
    pub onehot: Tensor<3>,
    /// `[b]` log-probability of the actions when taken.
    pub old_logp: Tensor<1>,
    /// `[b]` advantages (normalised).
    pub adv: Tensor<1>,
    /// `[b]` returns.
    pub ret: Tensor<1>,
}

/// The PPO loss of `logits` `[b, n, ACTIONS]` (masked) and `values` `[b]`.
pub fn ppo_loss(logits: Tensor<3>, values: Tensor<1>, t: &Targets, cfg: &PpoConfig) -> Loss {
    let [b, n, _] = logits.dims();
    let logp_all = log_probs(logits);
    let logp = (logp_all.clone() * t.onehot.clone())
        .sum_dim(2)
        .sum_dim(1)
        .reshape([b]);
    let p = logp_all.clone().exp();
    let entropy = (p * logp_all)
        .sum_dim(2)
        .reshape([b, n])
        .mean_dim(1)
        .reshape([b])
        .neg();
    let diff = logp.clone() - t.old_logp.clone();
    let ratio = diff.clone().exp();
    let eps = cfg.clip as f32;
    let unclipped = ratio.clone() * t.adv.clone();
    let clipped = ratio.clone().clamp(1.0 - eps, 1.0 + eps) * t.adv.clone();
    let policy = unclipped.min_pair(clipped).mean().neg();
    let value = (values - t.ret.clone()).powi_scalar(2).mean();
    let ent = entropy.mean();
    let total = policy.clone() + value.clone().mul_scalar(cfg.value_coef as f32)
        - ent.clone().mul_scalar(cfg.entropy_coef as f32);
    let clip_frac = (ratio - 1.0).abs().greater_elem(eps).float().mean();
    Loss {
        total,
        policy,
        value,
        entropy: ent,
        approx_kl: diff.neg().mean(),
        clip_frac,
    }
}

/// One row of the training curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurveRow {
    /// 1-based update.
    pub update: usize,
    /// Environment steps (one per environment per step) so far.
    pub env_steps: u64,
    /// Simulated service-steps so far.
    pub service_steps: u64,
    /// Mean reward per step in this update's rollout.
    pub mean_reward: f64,
    /// Mean return of the episodes that ended in this update (none when none did).
    pub episode_return: Option<f64>,
    /// Episodes that ended in this update.
    pub episodes: usize,
    /// Mean reward terms in this rollout: violation, slack, overshoot, lag.
    pub terms: [f64; 4],
    /// Policy loss (last epoch's mean).
    pub policy_loss: f64,
    /// Value loss (last epoch's mean).
    pub value_loss: f64,
    /// Mean entropy per workload (last epoch's mean).
    pub entropy: f64,
    /// Approximate KL divergence (last epoch's mean).
    pub approx_kl: f64,
    /// Share of clipped ratios (last epoch's mean).
    pub clip_frac: f64,
    /// Wall seconds of rollout and update.
    pub seconds: f64,
}

impl CurveRow {
    /// The CSV header.
    pub const HEADER: &'static str = "update,env_steps,service_steps,mean_reward,episode_return,episodes,violation,slack,overshoot,lag,policy_loss,value_loss,entropy,approx_kl,clip_frac,seconds";

    /// One CSV line.
    pub fn csv(&self) -> String {
        format!(
            "{},{},{},{:.6},{},{},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.3}",
            self.update,
            self.env_steps,
            self.service_steps,
            self.mean_reward,
            self.episode_return
                .map_or(String::new(), |r| format!("{r:.6}")),
            self.episodes,
            self.terms[0],
            self.terms[1],
            self.terms[2],
            self.terms[3],
            self.policy_loss,
            self.value_loss,
            self.entropy,
            self.approx_kl,
            self.clip_frac,
            self.seconds
        )
    }
}

/// Samples one action per workload from masked `logits` (`n * ACTIONS`), returning the actions
/// and the sum of their log-probabilities.
pub fn sample(logits: &[f32], rng: &mut ChaCha8Rng) -> (Vec<usize>, f64) {
    let mut actions = Vec::with_capacity(logits.len() / ACTIONS);
    let mut logp = 0.0;
    for row in logits.chunks_exact(ACTIONS) {
        let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let w: Vec<f64> = row.iter().map(|&l| (l as f64 - max).exp()).collect();
        let z: f64 = w.iter().sum();
        let u = rng.random::<f64>() * z;
        let mut acc = 0.0;
        let mut pick = ACTIONS - 1;
        for (a, wa) in w.iter().enumerate() {
            acc += wa;
            if u < acc && *wa > 0.0 {
                pick = a;
                break;
            }
        }
        // The last action can be masked: fall back to the most likely one.
        if w[pick] <= 0.0 {
            pick = greedy_row(row);
        }
        actions.push(pick);
        logp += (w[pick] / z).ln();
    }
    (actions, logp)
}

fn greedy_row(row: &[f32]) -> usize {
    let mut best = 0;
    for (a, &l) in row.iter().enumerate() {
        if l > row[best] {
            best = a;
        }
    }
    best
}

/// The most likely action per workload of masked `logits` (`n * ACTIONS`).
pub fn greedy(logits: &[f32]) -> Vec<usize> {
    logits.chunks_exact(ACTIONS).map(greedy_row).collect()
}

pub(crate) fn to_vec<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, RlError> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| RlError::Training {
            what: format!("reading a tensor: {e:?}"),
        })
}

/// Trains a policy with PPO on an [`Environment`].
pub struct Trainer<E: Environment> {
    cfg: PpoConfig,
    env: E,
    net: PolicyNet,
    optim: ModuleOptimizer,
    device: Device,
    graph_ad: GraphTensors,
    graph_plain: GraphTensors,
    obs: Vec<Obs>,
    rng: ChaCha8Rng,
    updates: usize,
    env_steps: u64,
    service_steps: u64,
    running: Vec<f64>,
}

impl<E: Environment> Trainer<E> {
    /// A new policy with `encoder` and `net` settings for `env`'s graph, or, with `start`, the
    /// network of a checkpoint and the number of updates it has had (resuming: the episodes in
    /// progress start afresh; the optimiser's moments too unless
    /// [`Trainer::load_optimizer_state`] restores them).
    pub fn new(
        mut env: E,
        encoder: Encoder,
        net_cfg: &NetConfig,
        cfg: PpoConfig,
        start: Option<(PolicyNet, usize, u64)>,
    ) -> Result<Self, RlError> {
        cfg.check()?;
        net_cfg.check()?;
        let device = Device::flex().autodiff();
        let plain = Device::flex();
        let n = env.graph().len();
        let (net, updates, env_steps) = match start {
            Some((net, u, s)) => (net, u, s),
            None => (
                graphscale_nn::seeded(cfg.seed, &device, || {
                    PolicyNet::new(encoder, n, net_cfg, &device)
                }),
                0,
                0,
            ),
        };
        let optim = AdamConfig::new()
            .with_grad_clipping(Some(GradientClippingConfig::Norm(cfg.max_grad_norm)))
            .init();
        let graph_ad = GraphTensors::new(env.graph(), &device);
        let graph_plain = GraphTensors::new(env.graph(), &plain);
        let obs = env.reset()?;
        let count = obs.len();
        Ok(Trainer {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ (updates as u64).wrapping_mul(0x9e37_79b9)),
            cfg,
            env,
            net,
            optim,
            device,
            graph_ad,
            graph_plain,
            obs,
            updates,
            env_steps,
            service_steps: 0,
            running: vec![0.0; count],
        })
    }

    /// The network (on the autodiff device).
    pub fn net(&self) -> &PolicyNet {
        &self.net
    }

    /// Updates made so far (including those of a resumed checkpoint).
    pub fn updates(&self) -> usize {
        self.updates
    }

    /// Environment steps so far.
    pub fn env_steps(&self) -> u64 {
        self.env_steps
    }

    /// The environment.
    pub fn env(&self) -> &E {
        &self.env
    }

    /// Adam's state (its moments and step count) as bytes, to resume from.
    pub fn optimizer_state(&self) -> Result<Vec<u8>, RlError> {
        self.optim
            .into_bytes()
            .map(|b| b.to_vec())
            .map_err(|e| RlError::Training {
                what: format!("saving the optimiser state: {e:?}"),
            })
    }

    /// Restores Adam's state saved by [`Trainer::optimizer_state`] for this network.
    pub fn load_optimizer_state(&mut self, bytes: Vec<u8>) -> Result<(), RlError> {
        let fresh = AdamConfig::new()
            .with_grad_clipping(Some(GradientClippingConfig::Norm(self.cfg.max_grad_norm)))
            .init();
        let old = std::mem::replace(&mut self.optim, fresh);
        self.optim = old
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
            .map_err(|e| RlError::Training {
                what: format!("the optimiser state does not load: {e:?}"),
            })?;
        Ok(())
    }

    /// One rollout and one update; returns its curve row.
    pub fn update(&mut self) -> Result<CurveRow, RlError> {
        let started = std::time::Instant::now();
        let span = tracing::info_span!("ppo_update", update = self.updates + 1);
        let _e = span.enter();
        let n = self.env.graph().len();
        let envs = self.obs.len();
        let t_len = self.cfg.rollout_steps;
        let plain = Device::flex();
        let policy = self.net.valid();
        let mut obs_buf: Vec<Obs> = Vec::with_capacity(t_len * envs);
        let mut act_buf: Vec<Vec<usize>> = Vec::with_capacity(t_len * envs);
        let mut logp_buf = vec![0.0; t_len * envs];
        let mut val_buf = vec![0.0; t_len * envs];
        let mut rew_buf = vec![0.0; t_len * envs];
        let mut done_buf = vec![false; t_len * envs];
        let mut terms = [0.0; 4];
        let mut finished = Vec::new();
        for t in 0..t_len {
            let refs: Vec<&Obs> = self.obs.iter().collect();
            let batch = ObsBatch::new(&refs, n, &plain)?;
            let (logits, values) = policy.forward(&batch, &self.graph_plain);
            let logits = to_vec(logits)?;
            let values = to_vec(values)?;
            let mut actions = Vec::with_capacity(envs);
            for e in 0..envs {
                let (a, lp) = sample(
                    &logits[e * n * ACTIONS..(e + 1) * n * ACTIONS],
                    &mut self.rng,
                );
                logp_buf[t * envs + e] = lp;
                val_buf[t * envs + e] = f64::from(values[e]);
                actions.push(a);
            }
            let steps = self.env.step(&actions)?;
            for (e, (s, a)) in steps.into_iter().zip(actions).enumerate() {
                let k = t * envs + e;
                rew_buf[k] = s.reward * self.cfg.reward_scale;
                done_buf[k] = s.done;
                self.running[e] += s.reward;
                terms[0] += s.terms.violation;
                terms[1] += s.terms.slack;
                terms[2] += s.terms.overshoot;
                terms[3] += s.terms.lag;
                self.service_steps += s.service_steps;
                if s.done {
                    finished.push(self.running[e]);
                    self.running[e] = 0.0;
                }
                obs_buf.push(std::mem::replace(&mut self.obs[e], s.obs));
                act_buf.push(a);
            }
        }
        self.env_steps += (t_len * envs) as u64;
        // Values of the observations after the rollout.
        let refs: Vec<&Obs> = self.obs.iter().collect();
        let (_, last) = policy.forward(&ObsBatch::new(&refs, n, &plain)?, &self.graph_plain);
        let last = to_vec(last)?;
        let mut adv = vec![0.0; t_len * envs];
        let mut ret = vec![0.0; t_len * envs];
        for e in 0..envs {
            let col = |b: &[f64]| (0..t_len).map(|t| b[t * envs + e]).collect::<Vec<_>>();
            let dones: Vec<bool> = (0..t_len).map(|t| done_buf[t * envs + e]).collect();
            let (a, r) = gae(
                &col(&rew_buf),
                &col(&val_buf),
                &dones,
                f64::from(last[e]),
                self.cfg.gamma,
                self.cfg.lambda,
            );
            for t in 0..t_len {
                adv[t * envs + e] = a[t];
                ret[t * envs + e] = r[t];
            }
        }
        // Minibatch epochs.
        let total = t_len * envs;
        let mut idx: Vec<usize> = (0..total).collect();
        let mut stats = [0.0f64; 5];
        for _ in 0..self.cfg.epochs {
            idx.shuffle(&mut self.rng);
            stats = [0.0; 5];
            let mut batches = 0.0;
            for chunk in idx.chunks(self.cfg.minibatch) {
                let b = chunk.len();
                let refs: Vec<&Obs> = chunk.iter().map(|&k| &obs_buf[k]).collect();
                let batch = ObsBatch::new(&refs, n, &self.device)?;
                let mut onehot = vec![0f32; b * n * ACTIONS];
                for (j, &k) in chunk.iter().enumerate() {
                    for (i, &a) in act_buf[k].iter().enumerate() {
                        onehot[(j * n + i) * ACTIONS + a] = 1.0;
                    }
                }
                let a: Vec<f64> = chunk.iter().map(|&k| adv[k]).collect();
                let mean = a.iter().sum::<f64>() / b as f64;
                let sd = (a.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / b as f64).sqrt();
                let norm: Vec<f32> = a
                    .iter()
                    .map(|x| ((x - mean) / (sd + 1e-8)) as f32)
                    .collect();
                let f1 =
                    |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [b]), &self.device);
                let targets = Targets {
                    onehot: Tensor::from_data(
                        TensorData::new(onehot, [b, n, ACTIONS]),
                        &self.device,
                    ),
                    old_logp: f1(chunk.iter().map(|&k| logp_buf[k] as f32).collect()),
                    adv: f1(if b > 1 {
                        norm
                    } else {
                        a.iter().map(|&x| x as f32).collect()
                    }),
                    ret: f1(chunk.iter().map(|&k| ret[k] as f32).collect()),
                };
                let (logits, values) = self.net.forward(&batch, &self.graph_ad);
                let loss = ppo_loss(logits, values, &targets, &self.cfg);
                let parts = [
                    &loss.policy,
                    &loss.value,
                    &loss.entropy,
                    &loss.approx_kl,
                    &loss.clip_frac,
                ]
                .map(|t| f64::from(t.clone().into_scalar::<f32>()));
                if parts.iter().any(|v| !v.is_finite()) {
                    return Err(RlError::Training {
                        what: format!(
                            "update {}: a loss is not finite ({parts:?}); try a lower learning_rate or reward_scale",
                            self.updates + 1
                        ),
                    });
                }
                for (s, p) in stats.iter_mut().zip(parts) {
                    *s += p;
                }
                batches += 1.0;
                let grads = GradientsParams::from_grads(loss.total.backward(), &self.net);
                self.net = self
                    .optim
                    .step(self.cfg.learning_rate, self.net.clone(), grads);
            }
            for s in &mut stats {
                *s /= batches;
            }
        }
        self.updates += 1;
        let steps = total as f64;
        Ok(CurveRow {
            update: self.updates,
            env_steps: self.env_steps,
            service_steps: self.service_steps,
            mean_reward: rew_buf.iter().sum::<f64>() / steps / self.cfg.reward_scale,
            episode_return: (!finished.is_empty())
                .then(|| finished.iter().sum::<f64>() / finished.len() as f64),
            episodes: finished.len(),
            terms: terms.map(|x| x / steps),
            policy_loss: stats[0],
            value_loss: stats[1],
            entropy: stats[2],
            approx_kl: stats[3],
            clip_frac: stats[4],
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// The graph a trainer or policy works on, re-exported for callers.
pub type Graph = PolicyGraph;
