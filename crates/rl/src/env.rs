//! A gym-style environment over the simulator: [`SimEnv::reset`] with a seed,
//! [`SimEnv::step`] with one action per workload, and [`VecEnv`] stepping several together.
//!
//! - **A step** is one sync period (15 s by default) of simulated time: the actions are applied
//!   (a replica change in [`DELTAS`] per workload, masked by the bounds), the simulator runs
//!   `sync_s / step` steps, and the observation is built from the snapshot the simulator then
//!   exposes ([`crate::features`]), as an autoscaler would see it.
//! - **Reward** per step, averaged over the simulated seconds and, for the per-service terms,
//!   over the services: `-(violation * v + slack * s + overshoot * o + lag * l)` with the weights
//!   of [`RewardWeights`] (default 5, 1, 3, 2). `v` is 1 in a second whose entry requests
//!   violate the SLO (end-to-end p95 over it, or more than 5 % failing), as the evaluation counts
//!   them; with `d = max(1, ceil(offered / (0.8 mu)))` the replicas a service needs at 80 % of
//!   its capacity (the evaluation's demand): `lag = (d - ready)+ / d`, `overshoot = (spec -
//!   d)+ / d`, and `slack` the idle share of its requested CPU.
//! - **Episodes** start cold (one replica per service, as every evaluation run does) and last
//!   `episode_s`. The load is a named scenario, or (the default, for training) a random one
//!   drawn from the seed: a flash crowd, a fluctuating load or a constant level, with random
//!   levels and timings, so a policy is trained on loads other than the named scenarios it is
//!   evaluated on.
//! - Deterministic for a seed: the simulator and the scenario draw come from it.

use graphscale_core::{Actuator, MetricSource, ScalingDecision};
use graphscale_sim::engine::{SimConfig, Simulator};
use graphscale_sim::spec::AppSpec;
use graphscale_sim::workload::WorkloadSpec;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::features::{Obs, ObsBuilder, PolicyGraph, DELTAS};
use crate::RlError;

/// Weights of the reward's penalties; the defaults are the design's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardWeights {
    /// Per second in SLO violation; default 5.
    pub violation: f64,
    /// Per idle share of requested CPU; default 1.
    pub slack: f64,
    /// Per replica over the need, relative to the need; default 3.
    pub overshoot: f64,
    /// Per ready replica missing, relative to the need; default 2.
    pub lag: f64,
}

impl Default for RewardWeights {
    fn default() -> Self {
        RewardWeights {
            violation: 5.0,
            slack: 1.0,
            overshoot: 3.0,
            lag: 2.0,
        }
    }
}

/// Settings of an environment; every field has a documented default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnvConfig {
    /// Simulated seconds per episode (60..=86,400); default 3,600.
    pub episode_s: u64,
    /// Simulated seconds per step, the sync period (1..=600); default 15.
    pub sync_s: u64,
    /// Named scenarios to draw from (by seed); empty: random loads (see the module docs).
    pub scenarios: Vec<String>,
    /// Reward weights.
    pub weights: RewardWeights,
}

impl Default for EnvConfig {
    fn default() -> Self {
        EnvConfig {
            episode_s: 3600,
            sync_s: 15,
            scenarios: Vec::new(),
            weights: RewardWeights::default(),
        }
    }
}

impl EnvConfig {
    /// Checks every field.
    pub fn check(&self) -> Result<(), RlError> {
        let bad = |field: &str, reason: String| {
            Err(RlError::Config {
                field: field.into(),
                reason,
            })
        };
        if !(60..=86_400).contains(&self.episode_s) {
            return bad(
                "episode_s",
                format!("{} is not in 60..=86400", self.episode_s),
            );
        }
        if !(1..=600).contains(&self.sync_s) || self.sync_s > self.episode_s {
            return bad(
                "sync_s",
                format!("{} is not in 1..=600 (and at most episode_s)", self.sync_s),
            );
        }
        let w = self.weights;
        for (f, v) in [
            ("weights.violation", w.violation),
            ("weights.slack", w.slack),
            ("weights.overshoot", w.overshoot),
            ("weights.lag", w.lag),
        ] {
            if !(v.is_finite() && (0.0..=1e3).contains(&v)) {
                return bad(f, format!("{v} is not in 0..=1000"));
            }
        }
        for s in &self.scenarios {
            WorkloadSpec::named(s, 1.0)?;
        }
        Ok(())
    }
}

/// The reward's terms over one step, each averaged as in the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RewardTerms {
    /// Share of seconds in SLO violation.
    pub violation: f64,
    /// Idle share of requested CPU.
    pub slack: f64,
    /// Replicas over the need, relative.
    pub overshoot: f64,
    /// Ready replicas under the need, relative.
    pub lag: f64,
}

impl RewardTerms {
    /// The weighted reward.
    pub fn reward(&self, w: &RewardWeights) -> f64 {
        -(w.violation * self.violation
            + w.slack * self.slack
            + w.overshoot * self.overshoot
            + w.lag * self.lag)
    }
}

/// What one step returns.
#[derive(Debug, Clone)]
pub struct Step {
    /// The observation after the step.
    pub obs: Obs,
    /// The reward.
    pub reward: f64,
    /// The reward's terms.
    pub terms: RewardTerms,
    /// The episode ended with this step.
    pub done: bool,
    /// Simulator steps times services simulated in this step (for throughput).
    pub service_steps: u64,
}

/// One environment over the simulator.
pub struct SimEnv {
    app: AppSpec,
    cfg: EnvConfig,
    graph: PolicyGraph,
    builder: ObsBuilder,
    sim: Option<Simulator>,
    spec: Vec<u32>,
    elapsed_s: u64,
    mu: Vec<f64>,
    scenario: String,
}

impl SimEnv {
    /// An environment for `app`; call [`SimEnv::reset`] before stepping.
    pub fn new(app: AppSpec, cfg: EnvConfig) -> Result<Self, RlError> {
        cfg.check()?;
        app.validate()?;
        let g = app.graph().map_err(|e| RlError::Layout {
            what: format!("app `{}`: {e}", app.name),
        })?;
        let graph = PolicyGraph::of(&g, &app.facts()?, app.slo_ms)?;
        // The simulator's services and the policy's workloads share the graph's order.
        let mu = graph
            .workloads
            .iter()
            .map(|w| {
                app.services
                    .iter()
                    .find(|s| &s.name == w)
                    .map_or(1.0, |s| s.replica_capacity_rps())
            })
            .collect();
        Ok(SimEnv {
            builder: ObsBuilder::new(graph.clone()),
            graph,
            app,
            cfg,
            sim: None,
            spec: Vec::new(),
            elapsed_s: 0,
            mu,
            scenario: String::new(),
        })
    }

    /// The workloads and their links.
    pub fn graph(&self) -> &PolicyGraph {
        &self.graph
    }

    /// The settings.
    pub fn config(&self) -> &EnvConfig {
        &self.cfg
    }

    /// The scenario of the running episode (a name, or the random load's description).
    pub fn scenario(&self) -> &str {
        &self.scenario
    }

    /// The load of an episode with `seed`.
    fn workload(&self, seed: u64) -> (WorkloadSpec, String) {
        let peak = self.app.nominal_peak_rps;
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5ce7_a210);
        if !self.cfg.scenarios.is_empty() {
            let name = &self.cfg.scenarios[(seed % self.cfg.scenarios.len() as u64) as usize];
            // Checked in `EnvConfig::check`.
            let w = WorkloadSpec::named(name, peak).unwrap_or(WorkloadSpec::Peak { rps: peak });
            return (w, name.clone());
        }
        let len = self.cfg.episode_s as f64;
        match rng.random_range(0..3u32) {
            0 => {
                let factor = rng.random_range(2.0..10.0);
                let base = peak * rng.random_range(0.5..1.0) / factor;
                let w = WorkloadSpec::Rush {
                    base_rps: base,
                    factor,
                    start_s: rng.random_range(0.1..0.5) * len,
                    ramp_s: rng.random_range(20.0..300.0),
                    hold_s: rng.random_range(0.1..0.4) * len,
                    decay_s: rng.random_range(30.0..600.0),
                };
                (w, format!("random rush x{factor:.1}"))
            }
            1 => {
                let mean = peak * rng.random_range(0.2..0.8);
                let amplitude = rng.random_range(0.1..0.6);
                let period = rng.random_range(300.0..2400.0);
                let w = WorkloadSpec::Fluctuating {
                    mean_rps: mean,
                    amplitude,
                    period_s: period,
                };
                (w, format!("random fluctuating {mean:.0} rps"))
            }
            _ => {
                let rps = peak * rng.random_range(0.05..1.0);
                (
                    WorkloadSpec::Peak { rps },
                    format!("random constant {rps:.0} rps"),
                )
            }
        }
    }

    /// Starts an episode: a cold cluster (one replica per service) under the load of `seed`,
    /// run for one sync period; returns the first observation.
    pub fn reset(&mut self, seed: u64) -> Result<Obs, RlError> {
        let (w, name) = self.workload(seed);
        let rates = w.rates(self.cfg.episode_s + self.cfg.sync_s, seed)?;
        let cfg = SimConfig {
            seed,
            ..SimConfig::default()
        };
        let mut sim = Simulator::new(self.app.clone(), cfg, rates)?;
        self.builder.reset();
        self.scenario = name;
        self.elapsed_s = 0;
        let steps = self.steps_per_sync(&sim);
        for _ in 0..steps {
            sim.step();
        }
        let obs = self.observe(&mut sim)?;
        self.sim = Some(sim);
        Ok(obs)
    }

    fn steps_per_sync(&self, sim: &Simulator) -> u64 {
        (self.cfg.sync_s * 1000 / sim.step_len().0.max(1)).max(1)
    }

    fn observe(&mut self, sim: &mut Simulator) -> Result<Obs, RlError> {
        let snap = sim.observe()?;
        let obs = self.builder.build(&snap)?;
        self.spec.clone_from(&obs.spec);
        Ok(obs)
    }

    /// Applies one action per workload (indices into [`DELTAS`]) and runs one sync period. An
    /// action out of range or outside the bounds is an error and nothing is applied.
    pub fn step(&mut self, actions: &[usize]) -> Result<Step, RlError> {
        let n = self.graph.len();
        if actions.len() != n {
            return Err(RlError::Action {
                workload: "*".into(),
                reason: format!("{} actions for {n} workloads", actions.len()),
            });
        }
        let mut sim = self.sim.take().ok_or_else(|| RlError::Config {
            field: "reset".into(),
            reason: "step called before reset, or after the episode ended".into(),
        })?;
        let mut decisions = Vec::new();
        for (i, &a) in actions.iter().enumerate() {
            let to = match self.graph.target(i, self.spec[i], a) {
                Ok(t) => t,
                Err(e) => {
                    self.sim = Some(sim);
                    return Err(e);
                }
            };
            if DELTAS[a] != 0 {
                decisions.push(ScalingDecision {
                    workload: self.graph.workloads[i].clone(),
                    replicas: to,
                    reasons: Vec::new(),
                    resources: None,
                });
            }
        }
        sim.apply(&decisions)?;
        let steps = self.steps_per_sync(&sim);
        let slo = self.app.slo_ms;
        let mut t = RewardTerms::default();
        for _ in 0..steps {
            sim.step();
            let stats = sim.stats();
            let (mut fin, mut bad) = (0.0, false);
            for &(s, _) in sim.entries() {
                let st = &stats[s];
                let f = (st.served + st.failed) as f64;
                if f > 0.0 {
                    fin += f;
                    bad |= st.e2e_ms[1] > slo || 1.0 - st.e2e_success.clamp(0.0, 1.0) > 0.05;
                }
            }
            if fin > 0.0 && bad {
                t.violation += 1.0;
            }
            let (mut slack, mut over, mut lag) = (0.0, 0.0, 0.0);
            for (i, st) in stats.iter().enumerate() {
                let mu = if st.ready > 0 && st.capacity_rps > 0.0 {
                    st.capacity_rps / f64::from(st.ready)
                } else {
                    self.mu.get(i).copied().unwrap_or(1.0)
                };
                let d = (st.offered_rps / (0.8 * mu)).ceil().max(1.0);
                lag += (d - f64::from(st.ready)).max(0.0) / d;
                over += (f64::from(st.spec_replicas) - d).max(0.0) / d;
                let req = st.requested.cpu_millicores;
                if req > 0.0 {
                    slack += ((req - st.cpu_usage_m) / req).clamp(0.0, 1.0);
                }
            }
            let m = stats.len().max(1) as f64;
            t.slack += slack / m;
            t.overshoot += over / m;
            t.lag += lag / m;
        }
        let k = steps as f64;
        t.violation /= k;
        t.slack /= k;
        t.overshoot /= k;
        t.lag /= k;
        self.elapsed_s += self.cfg.sync_s;
        let service_steps = steps * sim.stats().len() as u64;
        let obs = self.observe(&mut sim)?;
        let done = self.elapsed_s >= self.cfg.episode_s;
        if !done {
            self.sim = Some(sim);
        }
        Ok(Step {
            obs,
            reward: t.reward(&self.cfg.weights),
            terms: t,
            done,
            service_steps,
        })
    }
}

/// Several environments stepped together, each on its own seed; an environment whose episode
/// ends starts the next one at once (its next seed), so every step returns an observation per
/// environment. Steps run on up to `threads` threads; the result does not depend on them.
pub struct VecEnv {
    envs: Vec<SimEnv>,
    seeds: Vec<u64>,
    stride: u64,
    threads: usize,
}

impl VecEnv {
    /// `count` environments for `app`; environment `k`'s episodes have seeds `seed + k`, `seed +
    /// k + count`, ...
    pub fn new(
        app: &AppSpec,
        cfg: &EnvConfig,
        count: usize,
        seed: u64,
        threads: usize,
    ) -> Result<Self, RlError> {
        if !(1..=256).contains(&count) {
            return Err(RlError::Config {
                field: "envs".into(),
                reason: format!("{count} is not in 1..=256"),
            });
        }
        let envs = (0..count)
            .map(|_| SimEnv::new(app.clone(), cfg.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(VecEnv {
            envs,
            seeds: (0..count as u64).map(|k| seed.wrapping_add(k)).collect(),
            stride: count as u64,
            threads: threads.max(1),
        })
    }

    /// The number of environments.
    pub fn len(&self) -> usize {
        self.envs.len()
    }

    /// Whether there is none (never).
    pub fn is_empty(&self) -> bool {
        self.envs.is_empty()
    }

    /// The workloads and links (the same for every environment).
    pub fn graph(&self) -> &PolicyGraph {
        self.envs[0].graph()
    }

    /// Resets every environment to its current seed.
    pub fn reset(&mut self) -> Result<Vec<Obs>, RlError> {
        self.envs
            .iter_mut()
            .zip(&self.seeds)
            .map(|(e, &s)| e.reset(s))
            .collect()
    }

    /// Steps every environment with its actions. A finished episode's step returns `done` and
    /// the first observation of the next episode in `obs`.
    pub fn step(&mut self, actions: &[Vec<usize>]) -> Result<Vec<Step>, RlError> {
        if actions.len() != self.envs.len() {
            return Err(RlError::Action {
                workload: "*".into(),
                reason: format!(
                    "{} action vectors for {} environments",
                    actions.len(),
                    self.envs.len()
                ),
            });
        }
        let stride = self.stride;
        let run = |env: &mut SimEnv, seed: &mut u64, a: &Vec<usize>| -> Result<Step, RlError> {
            let mut s = env.step(a)?;
            if s.done {
                *seed = seed.wrapping_add(stride);
                s.obs = env.reset(*seed)?;
            }
            Ok(s)
        };
        let chunk = self.envs.len().div_ceil(self.threads);
        if self.threads == 1 || self.envs.len() == 1 {
            return self
                .envs
                .iter_mut()
                .zip(self.seeds.iter_mut())
                .zip(actions)
                .map(|((e, s), a)| run(e, s, a))
                .collect();
        }
        let results: Vec<Vec<Result<Step, RlError>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .envs
                .chunks_mut(chunk)
                .zip(self.seeds.chunks_mut(chunk))
                .zip(actions.chunks(chunk))
                .map(|((es, ss), acts)| {
                    scope.spawn(move || {
                        es.iter_mut()
                            .zip(ss.iter_mut())
                            .zip(acts)
                            .map(|((e, s), a)| run(e, s, a))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        vec![Err(RlError::Training {
                            what: "an environment thread panicked".into(),
                        })]
                    })
                })
                .collect()
        });
        results.into_iter().flatten().collect()
    }
}
