//! PPO's pure parts against hand-computed values, and learning a toy task.

use graphscale_rl::env::{RewardTerms, Step};
use graphscale_rl::features::{Obs, PolicyGraph, ACTIONS, GLOBAL_FEATURES, NODE_FEATURES};
use graphscale_rl::policy::{Encoder, GraphTensors, NetConfig, ObsBatch};
use graphscale_rl::ppo::{clipped_objective, gae, greedy, ppo_loss, PpoConfig, Targets, Trainer};
use graphscale_rl::{Environment, RlError};

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn gae_matches_hand_computed_values() {
    // gamma 0.9, lambda 0.8; the episode ends after step 1.
    // t=2: delta = 2 + 0.9 * 1.0 - 0.3 = 2.6; A = 2.6
    // t=1: delta = 0 - 0.4 = -0.4 (done: no bootstrap); A = -0.4
    // t=0: delta = 1 + 0.9 * 0.4 - 0.5 = 0.86; A = 0.86 + 0.72 * -0.4 = 0.572
    let (adv, ret) = gae(
        &[1.0, 0.0, 2.0],
        &[0.5, 0.4, 0.3],
        &[false, true, false],
        1.0,
        0.9,
        0.8,
    );
    for (got, want) in adv.iter().zip([0.572, -0.4, 2.6]) {
        assert!(close(*got, want, 1e-12), "{adv:?}");
    }
    for (got, want) in ret.iter().zip([1.072, 0.0, 2.9]) {
        assert!(close(*got, want, 1e-12), "{ret:?}");
    }
    // lambda 0 is the one-step TD error; lambda 1 the discounted return minus the value.
    let (td, _) = gae(&[1.0, 1.0], &[0.0, 0.0], &[false, false], 0.0, 0.5, 0.0);
    assert_eq!(td, vec![1.0, 1.0]);
    let (mc, _) = gae(&[1.0, 1.0], &[0.0, 0.0], &[false, false], 0.0, 0.5, 1.0);
    assert_eq!(mc, vec![1.5, 1.0]);
}

#[test]
fn the_clipped_objective_matches_hand_computed_values() {
    let l15 = 1.5f64.ln();
    let l05 = 0.5f64.ln();
    // r = 1.5: a positive advantage is clipped at 1.2 A, a negative one is not.
    assert!(close(clipped_objective(l15, 0.0, 2.0, 0.2), 2.4, 1e-12));
    assert!(close(clipped_objective(l15, 0.0, -2.0, 0.2), -3.0, 1e-12));
    // r = 0.5: a positive advantage is not clipped, a negative one at 0.8 A.
    assert!(close(clipped_objective(l05, 0.0, 2.0, 0.2), 1.0, 1e-12));
    assert!(close(clipped_objective(l05, 0.0, -2.0, 0.2), -1.6, 1e-12));
    // Inside the clip range it is the plain ratio times the advantage.
    assert!(close(
        clipped_objective(0.1, 0.0, 1.0, 0.2),
        0.1f64.exp(),
        1e-12
    ));
}

#[test]
fn the_tensor_loss_matches_the_host_formulas() {
    let device = Device::flex();
    let cfg = PpoConfig::default();
    // Two samples, one workload; the second has a masked action (logit -1e9).
    let logits = [0.5f32, -0.2, 0.1, 0.3, 1.0, 0.0, 0.4, -1e9, 0.2, -0.1];
    let actions = [4usize, 2];
    let old = [-1.2f64, -1.9];
    let adv = [0.7f64, -1.3];
    let ret = [0.2f64, -0.4];
    let values = [0.1f32, -0.6];
    let mut onehot = vec![0f32; 10];
    onehot[actions[0]] = 1.0;
    onehot[5 + actions[1]] = 1.0;
    let t = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [2]), &device);
    let targets = Targets {
        onehot: Tensor::from_data(TensorData::new(onehot, [2, 1, ACTIONS]), &device),
        old_logp: t(old.iter().map(|&x| x as f32).collect()),
        adv: t(adv.iter().map(|&x| x as f32).collect()),
        ret: t(ret.iter().map(|&x| x as f32).collect()),
    };
    let loss = ppo_loss(
        Tensor::from_data(TensorData::new(logits.to_vec(), [2, 1, ACTIONS]), &device),
        t(values.to_vec()),
        &targets,
        &cfg,
    );
    let logp = |row: &[f32], a: usize| {
        let m = row.iter().fold(f64::MIN, |x, &y| x.max(y as f64));
        let z: f64 = row.iter().map(|&l| (l as f64 - m).exp()).sum();
        (row[a] as f64 - m) - z.ln()
    };
    let mut pol = 0.0;
    let mut ent = 0.0;
    for s in 0..2 {
        let row = &logits[s * 5..(s + 1) * 5];
        pol += clipped_objective(logp(row, actions[s]), old[s], adv[s], cfg.clip);
        ent -= (0..5)
            .map(|a| {
                let lp = logp(row, a);
                if lp < -1e6 {
                    0.0
                } else {
                    lp.exp() * lp
                }
            })
            .sum::<f64>();
    }
    let pol = -pol / 2.0;
    let ent = ent / 2.0;
    let val = ((0.1 - 0.2f64).powi(2) + (-0.6 - -0.4f64).powi(2)) / 2.0;
    let s = |x: Tensor<1>| f64::from(x.into_scalar::<f32>());
    assert!(close(s(loss.policy), pol, 1e-5), "policy");
    assert!(close(s(loss.value), val, 1e-5), "value");
    assert!(close(s(loss.entropy), ent, 1e-5), "entropy");
    let total = pol + cfg.value_coef * val - cfg.entropy_coef * ent;
    assert!(close(s(loss.total), total, 1e-5), "total");
}

/// One workload whose replicas should be 5: the reward is `-|r - 5| / 5` after each action.
struct Toy {
    graph: PolicyGraph,
    r: Vec<u32>,
    t: Vec<usize>,
    seed: u64,
}

const TARGET: u32 = 5;

impl Toy {
    fn new(envs: usize) -> Self {
        Toy {
            graph: PolicyGraph {
                workloads: vec!["svc".into()],
                bounds: vec![(1, 10)],
                links: vec![],
                calls: vec![],
                entries: vec![0],
                slo_ms: 100.0,
            },
            r: vec![1; envs],
            t: vec![0; envs],
            seed: 7,
        }
    }

    fn obs(&self, r: u32) -> Obs {
        let mut nodes = vec![0f32; NODE_FEATURES];
        nodes[8] = (f64::from(r).ln_1p() / 4.0) as f32;
        nodes[9] = r as f32 / 10.0;
        Obs {
            nodes,
            global: vec![0.0; GLOBAL_FEATURES],
            mask: (0..ACTIONS).map(|a| self.graph.allowed(0, r, a)).collect(),
            spec: vec![r],
        }
    }

    fn start(&mut self) -> u32 {
        self.seed = self
            .seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        1 + ((self.seed >> 33) % 10) as u32
    }
}

impl Environment for Toy {
    fn graph(&self) -> &PolicyGraph {
        &self.graph
    }
    fn reset(&mut self) -> Result<Vec<Obs>, RlError> {
        for e in 0..self.r.len() {
            self.r[e] = self.start();
            self.t[e] = 0;
        }
        Ok(self.r.iter().map(|&r| self.obs(r)).collect())
    }
    fn step(&mut self, actions: &[Vec<usize>]) -> Result<Vec<Step>, RlError> {
        let mut out = Vec::new();
        for (e, a) in actions.iter().enumerate().take(self.r.len()) {
            let to = self.graph.target(0, self.r[e], a[0])?;
            self.r[e] = to;
            self.t[e] += 1;
            let reward = -(f64::from(to.abs_diff(TARGET))) / 5.0;
            let done = self.t[e] >= 16;
            if done {
                self.r[e] = self.start();
                self.t[e] = 0;
            }
            out.push(Step {
                obs: self.obs(self.r[e]),
                reward,
                terms: RewardTerms::default(),
                done,
                service_steps: 1,
            });
        }
        Ok(out)
    }
}

fn train_toy(encoder: Encoder, seed: u64) -> Trainer<Toy> {
    let cfg = PpoConfig {
        rollout_steps: 32,
        minibatch: 64,
        learning_rate: 3e-3,
        gamma: 0.9,
        seed,
        ..PpoConfig::default()
    };
    let mut tr = Trainer::new(Toy::new(8), encoder, &NetConfig::default(), cfg, None).unwrap();
    for _ in 0..40 {
        tr.update().unwrap();
    }
    tr
}

#[test]
fn the_policy_learns_the_toy_task_to_within_one_replica() {
    for encoder in [Encoder::Gat, Encoder::Mlp] {
        let tr = train_toy(encoder, 3);
        let toy = Toy::new(1);
        let net = tr.net().valid();
        let device = Device::flex();
        let g = GraphTensors::new(&toy.graph, &device);
        for start in 1..=10u32 {
            let mut r = start;
            for _ in 0..12 {
                let o = toy.obs(r);
                let (logits, _) = net.forward(&ObsBatch::new(&[&o], 1, &device).unwrap(), &g);
                let l: Vec<f32> = logits.into_data().try_to_vec().unwrap();
                r = toy.graph.target(0, r, greedy(&l)[0]).unwrap();
            }
            assert!(
                r.abs_diff(TARGET) <= 1,
                "{}: from {start} replicas the policy ends at {r}, the optimum is {TARGET}",
                encoder.name()
            );
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_training_curve() {
    let run = |seed| {
        let cfg = PpoConfig {
            rollout_steps: 16,
            minibatch: 32,
            seed,
            ..PpoConfig::default()
        };
        let mut tr =
            Trainer::new(Toy::new(4), Encoder::Gcn, &NetConfig::default(), cfg, None).unwrap();
        (0..3)
            .map(|_| {
                let r = tr.update().unwrap();
                (r.mean_reward, r.policy_loss, r.value_loss, r.entropy)
            })
            .collect::<Vec<_>>()
    };
    let a = run(11);
    assert_eq!(a, run(11));
    assert_ne!(a, run(12));
}
