//! The environment over the simulator, checkpoints, and the policy behind the safety layer.

use graphscale_core::{Autoscaler, MetricSource};
use graphscale_plan::guarded::{GuardConfig, Guarded};
use graphscale_rl::autoscaler::RlPolicy;
use graphscale_rl::checkpoint::{self, Manifest, FORMAT, FORMAT_VERSION};
use graphscale_rl::env::{EnvConfig, SimEnv, VecEnv};
use graphscale_rl::features::{ACTIONS, HOLD, NODE_FEATURES};
use graphscale_rl::policy::{Encoder, GraphTensors, NetConfig, ObsBatch, PolicyNet};
use graphscale_rl::ppo::{PpoConfig, Trainer};
use graphscale_rl::RlError;
use graphscale_sim::engine::{SimConfig, Simulator};
use graphscale_sim::topology;

use burn::module::Module;
use burn::tensor::Device;

fn short() -> EnvConfig {
    EnvConfig {
        episode_s: 120,
        ..EnvConfig::default()
    }
}

fn ob() -> graphscale_sim::spec::AppSpec {
    topology::builtin("online-boutique").unwrap()
}

#[test]
fn an_episode_is_deterministic_for_its_seed_and_ends() {
    let run = |seed| {
        let mut env = SimEnv::new(ob(), short()).unwrap();
        let first = env.reset(seed).unwrap();
        let n = env.graph().len();
        assert_eq!(first.nodes.len(), n * NODE_FEATURES);
        assert!(first
            .nodes
            .iter()
            .chain(&first.global)
            .all(|v| v.is_finite()));
        let mut out = vec![];
        for t in 0..8 {
            // Scale everything up by one, then hold.
            let a = if t == 0 {
                vec![HOLD + 1; n]
            } else {
                vec![HOLD; n]
            };
            let s = env.step(&a).unwrap();
            assert!(s.reward.is_finite() && s.reward <= 0.0);
            out.push((s.obs.nodes.clone(), s.reward, s.done));
            if s.done {
                assert_eq!(t, 7, "120 s of 15-s steps is 8 steps");
                assert!(env.step(&a).is_err(), "a step after the end is an error");
                break;
            }
        }
        out
    };
    let a = run(5);
    assert!(a.last().unwrap().2);
    assert_eq!(a, run(5));
    assert_ne!(a, run(6));
}

#[test]
fn actions_out_of_range_or_masked_are_errors_and_change_nothing() {
    let mut env = SimEnv::new(ob(), short()).unwrap();
    let obs = env.reset(1).unwrap();
    let n = env.graph().len();
    // One replica each: -2 and -1 are masked, the rest allowed.
    for i in 0..n {
        assert_eq!(
            &obs.mask[i * ACTIONS..(i + 1) * ACTIONS],
            &[false, false, true, true, true]
        );
    }
    let e = env.step(&vec![0; n]).unwrap_err().to_string();
    assert!(
        e.contains("masked") && e.contains(&env.graph().workloads[0]),
        "{e}"
    );
    let e = env.step(&vec![ACTIONS; n]).unwrap_err().to_string();
    assert!(e.contains("out of range"), "{e}");
    let e = env.step(&[HOLD]).unwrap_err().to_string();
    assert!(e.contains(&format!("1 actions for {n} workloads")), "{e}");
    // The environment still steps.
    assert!(env.step(&vec![HOLD; n]).is_ok());
}

#[test]
fn the_vector_of_environments_gives_the_same_steps_on_any_number_of_threads() {
    let run = |threads| {
        let mut v = VecEnv::new(&ob(), &short(), 3, 40, threads).unwrap();
        v.reset().unwrap();
        let n = v.graph().len();
        let mut rewards = vec![];
        for _ in 0..10 {
            for s in v.step(&vec![vec![HOLD + 1; n]; 3]).unwrap() {
                rewards.push(s.reward);
            }
        }
        rewards
    };
    assert_eq!(run(1), run(2));
}

#[test]
fn bad_settings_are_refused_with_the_field() {
    let e = SimEnv::new(
        ob(),
        EnvConfig {
            episode_s: 10,
            ..EnvConfig::default()
        },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("episode_s"), "{e}");
    let mut cfg = EnvConfig::default();
    cfg.weights.lag = f64::NAN;
    assert!(SimEnv::new(ob(), cfg)
        .err()
        .unwrap()
        .to_string()
        .contains("weights.lag"));
    let cfg = EnvConfig {
        scenarios: vec!["nope".into()],
        ..EnvConfig::default()
    };
    assert!(SimEnv::new(ob(), cfg).is_err());
    assert!(VecEnv::new(&ob(), &short(), 0, 1, 1).is_err());
}

/// A policy for Online Boutique after one small update, saved.
fn trained(dir: &std::path::Path, encoder: Encoder) -> (std::path::PathBuf, Manifest) {
    let env = VecEnv::new(&ob(), &short(), 2, 100, 1).unwrap();
    let ppo = PpoConfig {
        rollout_steps: 4,
        minibatch: 8,
        epochs: 1,
        ..PpoConfig::default()
    };
    let graph = env.graph().clone();
    let mut tr = Trainer::new(env, encoder, &NetConfig::default(), ppo.clone(), None).unwrap();
    tr.update().unwrap();
    let m = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        encoder,
        net: NetConfig::default(),
        app: "online-boutique".into(),
        graph,
        ppo,
        env: short(),
        updates: tr.updates(),
        env_steps: tr.env_steps(),
        graphscale_version: "test".into(),
    };
    let path = dir.join(format!("{}.safetensors", encoder.name()));
    checkpoint::save(
        &path,
        &tr.net().valid(),
        &m,
        graphscale_fsio::Existing::Keep,
    )
    .unwrap();
    (path, m)
}

#[test]
fn a_checkpoint_round_trips_and_refuses_what_is_not_a_policy_of_its_shape() {
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    for encoder in Encoder::ALL {
        let (path, m) = trained(dir.path(), encoder);
        let (net, back) = checkpoint::load(&path, &device).unwrap();
        assert_eq!(back, m);
        // Same outputs as a second load, and a second save is refused unless asked.
        let (net2, _) = checkpoint::load(&path, &device).unwrap();
        let mut env = SimEnv::new(ob(), short()).unwrap();
        let o = env.reset(3).unwrap();
        let g = GraphTensors::new(&m.graph, &device);
        let b = ObsBatch::new(&[&o], m.graph.len(), &device).unwrap();
        let (l1, v1) = net.forward(&b, &g);
        let (l2, v2) = net2.forward(&b, &g);
        assert_eq!(l1.into_data(), l2.into_data());
        assert_eq!(v1.into_data(), v2.into_data());
        let e = checkpoint::save(&path, &net, &m, graphscale_fsio::Existing::Keep).unwrap_err();
        assert!(e.to_string().contains("--force"), "{e}");
    }
    let again = tempfile::tempdir().unwrap();
    let (path, m) = trained(again.path(), Encoder::Mlp);
    // Another app's manifest over these weights: the MLP's input width no longer fits.
    let mut other = m.clone();
    other.graph.workloads.truncate(3);
    other.graph.bounds.truncate(3);
    other.graph.links.retain(|(a, b)| *a < 3 && *b < 3);
    other.graph.calls.retain(|(a, b, _)| *a < 3 && *b < 3);
    other.graph.entries.retain(|e| *e < 3);
    let (net, _) = checkpoint::load(&path, &device).unwrap();
    let small = dir.path().join("small.safetensors");
    checkpoint::save(&small, &net, &other, graphscale_fsio::Existing::Keep).unwrap();
    let e = checkpoint::load(&small, &device).unwrap_err().to_string();
    assert!(e.contains("do not fit"), "{e}");
    // A manifest whose graph names a workload that is not there.
    let mut broken = m.clone();
    broken.graph.links.push((0, 99));
    let bad = dir.path().join("links.safetensors");
    checkpoint::save(&bad, &net, &broken, graphscale_fsio::Existing::Keep).unwrap();
    let e = checkpoint::load(&bad, &device).unwrap_err().to_string();
    assert!(e.contains("link 0-99"), "{e}");
    let mut broken = m.clone();
    broken.graph.slo_ms = -1.0;
    let bad = dir.path().join("slo.safetensors");
    checkpoint::save(&bad, &net, &broken, graphscale_fsio::Existing::Keep).unwrap();
    assert!(checkpoint::load(&bad, &device)
        .unwrap_err()
        .to_string()
        .contains("SLO"));
    // Not safetensors at all; safetensors without a manifest.
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"hello").unwrap();
    let e = checkpoint::load(&junk, &device).unwrap_err().to_string();
    assert!(
        e.contains("not a safetensors file") && e.contains("junk"),
        "{e}"
    );
    let bare = dir.path().join("bare.safetensors");
    let st = safetensors::tensor::serialize(
        Vec::<(String, safetensors::tensor::TensorView)>::new(),
        None,
    )
    .unwrap();
    std::fs::write(&bare, st).unwrap();
    let e = checkpoint::load(&bare, &device).unwrap_err().to_string();
    assert!(e.contains("not a graphscale RL policy"), "{e}");
    // A policy built for other workloads is refused by the autoscaler with both lists.
    let facts = topology::builtin("train-ticket").unwrap().facts().unwrap();
    let e = RlPolicy::load("rl-mlp", &path, &facts)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("online-boutique") && e.contains("frontend"),
        "{e}"
    );
    let _ = PolicyNet::new(Encoder::Gat, 2, &NetConfig::default(), &device).num_params();
}

#[test]
fn the_safety_layer_bounds_the_policy_and_missing_metrics_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = trained(dir.path(), Encoder::Gat);
    let app = ob();
    let facts = app.facts().unwrap();
    let policy = RlPolicy::load("rl-gat", &path, &facts).unwrap();
    let mut cfg = GuardConfig::default();
    cfg.safety.min_replicas = 2;
    cfg.safety.max_replicas = 3;
    cfg.safety.cooldown_down_s = 0.0;
    let mut guarded = Guarded::new(policy, cfg).unwrap();
    let rates = graphscale_sim::workload::WorkloadSpec::named("rush", app.nominal_peak_rps)
        .unwrap()
        .rates(900, 1)
        .unwrap();
    let mut sim = Simulator::new(app.clone(), SimConfig::default(), rates).unwrap();
    let graph = sim.graph().clone();
    for t in 0..900 {
        sim.step();
        if t % 15 == 14 {
            let mut snap = sim.observe().unwrap();
            if t > 600 {
                // NaN and missing metrics in the observation.
                snap.workloads[0].rps = Some(f64::NAN);
                snap.workloads[1].latency_p95_ms = None;
            }
            let d = guarded.decide(&snap, &graph);
            assert_eq!(d.len(), facts.len());
            for x in &d {
                assert!(
                    (2..=3).contains(&x.replicas),
                    "{}: {}",
                    x.workload,
                    x.replicas
                );
                assert!(!x.reasons.is_empty());
            }
            graphscale_core::Actuator::apply(&mut sim, &d).unwrap();
        }
    }
    // A snapshot without the policy's workloads: no plan, held by the safety layer.
    let mut snap = sim.observe().unwrap();
    snap.workloads.truncate(2);
    let d = guarded.decide(&snap, &graph);
    assert!(d.iter().all(|x| (2..=3).contains(&x.replicas)));
    let _: Option<RlError> = None;
}
