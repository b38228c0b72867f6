//! `graphscale bench rl`: the environment's throughput and PPO's update time.
//!
//! - **Environment**: one [`SimEnv`] on one thread, stepped with random allowed actions (seeded)
//!   for `env_steps` steps, in simulated service-steps per second (simulator steps times
//!   services); the baseline in the same run is the simulator alone stepping as many seconds
//!   under the same load, so the row shows what observing and acting cost. Then a
//!   [`VecEnv`] of 8 environments on 1 and 2 threads.
//! - **PPO**: per encoder, the wall time of one update (a rollout of 8 environments x 64 steps
//!   and 4 epochs of minibatches of 128), the median over `updates`, and the forward pass of
//!   one observation (what a decision costs).

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use burn::tensor::Device;
use graphscale_rl::env::{EnvConfig, SimEnv, VecEnv};
use graphscale_rl::features::ACTIONS;
use graphscale_rl::policy::{Encoder, GraphTensors, NetConfig, ObsBatch, PolicyNet};
use graphscale_rl::ppo::{PpoConfig, Trainer};
use graphscale_sim::engine::{SimConfig, Simulator};
use graphscale_sim::topology;
use rand::{Rng, SeedableRng};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A random allowed action per workload.
fn random_actions(mask: &[bool], rng: &mut rand_chacha::ChaCha8Rng) -> Vec<usize> {
    mask.chunks_exact(ACTIONS)
        .map(|m| loop {
            let a = rng.random_range(0..ACTIONS);
            if m[a] {
                break a;
            }
        })
        .collect()
}

/// Runs the benchmark and prints Markdown tables.
pub fn rl(app_name: &str, env_steps: u64, updates: usize) -> Result<ExitCode> {
    anyhow::ensure!(
        (1..=10_000_000).contains(&env_steps),
        "--env-steps {env_steps}: must be in 1..=10000000"
    );
    anyhow::ensure!(
        (1..=1000).contains(&updates),
        "--updates {updates}: must be in 1..=1000"
    );
    let app = topology::builtin(app_name)?;
    let cfg = EnvConfig {
        scenarios: vec!["fluctuating".into()],
        ..EnvConfig::default()
    };
    let services = app.services.len() as f64;
    crate::say!("| app | what | threads | env steps | wall s | env steps/s | service-steps/s |")?;
    crate::say!("|---|---|---:|---:|---:|---:|---:|")?;
    // The simulator alone, as many simulated seconds under the same load.
    let sim_seconds = env_steps * cfg.sync_s;
    let rates = graphscale_sim::workload::WorkloadSpec::named("fluctuating", app.nominal_peak_rps)?
        .rates(cfg.episode_s + cfg.sync_s, 1)?;
    let start = Instant::now();
    let mut done = 0;
    while done < sim_seconds {
        let mut sim = Simulator::new(
            app.clone(),
            SimConfig {
                seed: 1,
                ..SimConfig::default()
            },
            rates.clone(),
        )?;
        for _ in 0..(cfg.episode_s + cfg.sync_s).min(sim_seconds - done) {
            sim.step();
            done += 1;
        }
    }
    let wall = start.elapsed().as_secs_f64();
    crate::say!(
        "| {app_name} | simulator alone (baseline) | 1 | {} | {wall:.2} | {:.0} | {:.0} |",
        env_steps,
        env_steps as f64 / wall,
        sim_seconds as f64 * services / wall
    )?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut env = SimEnv::new(app.clone(), cfg.clone())?;
    let mut obs = env.reset(1)?;
    let (mut service_steps, mut seed) = (0u64, 1);
    let start = Instant::now();
    for _ in 0..env_steps {
        let s = env.step(&random_actions(&obs.mask, &mut rng))?;
        service_steps += s.service_steps;
        obs = if s.done {
            seed += 1;
            env.reset(seed)?
        } else {
            s.obs
        };
    }
    let wall = start.elapsed().as_secs_f64();
    crate::say!(
        "| {app_name} | SimEnv, random actions | 1 | {env_steps} | {wall:.2} | {:.0} | {:.0} |",
        env_steps as f64 / wall,
        service_steps as f64 / wall
    )?;
    for threads in [1, 2] {
        let mut v = VecEnv::new(&app, &cfg, 8, 1, threads)?;
        let mut obs = v.reset()?;
        let rounds = env_steps.div_ceil(8);
        let mut service_steps = 0u64;
        let start = Instant::now();
        for _ in 0..rounds {
            let acts: Vec<Vec<usize>> = obs
                .iter()
                .map(|o| random_actions(&o.mask, &mut rng))
                .collect();
            let steps = v.step(&acts)?;
            service_steps += steps.iter().map(|s| s.service_steps).sum::<u64>();
            obs = steps.into_iter().map(|s| s.obs).collect();
        }
        let wall = start.elapsed().as_secs_f64();
        crate::say!(
            "| {app_name} | VecEnv of 8, random actions | {threads} | {} | {wall:.2} | {:.0} | {:.0} |",
            rounds * 8,
            (rounds * 8) as f64 / wall,
            service_steps as f64 / wall
        )?;
    }
    crate::say!(
        "\n| app | encoder | parameters | update ms (median of {updates}; 8 envs x 64 steps, 4 epochs) | forward of one observation, ms |"
    )?;
    crate::say!("|---|---|---:|---:|---:|")?;
    let device = Device::flex();
    for encoder in Encoder::ALL {
        let v = VecEnv::new(&app, &EnvConfig::default(), 8, 1, 1)?;
        let graph = v.graph().clone();
        let mut tr = Trainer::new(
            v,
            encoder,
            &NetConfig::default(),
            PpoConfig::default(),
            None,
        )?;
        let mut times = Vec::new();
        for _ in 0..updates {
            let t = Instant::now();
            tr.update()?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let net = PolicyNet::new(encoder, graph.len(), &NetConfig::default(), &device);
        let g = GraphTensors::new(&graph, &device);
        let o = env.reset(1)?;
        let reps = 200;
        let mut fwd = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            let (l, _) = net.forward(&ObsBatch::new(&[&o], graph.len(), &device)?, &g);
            let _ = l.into_data();
            fwd.push(t.elapsed().as_secs_f64() * 1e3);
        }
        crate::say!(
            "| {app_name} | {} | {} | {:.1} | {:.3} |",
            encoder.name(),
            burn::module::Module::num_params(tr.net()),
            median(times),
            median(fwd)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
