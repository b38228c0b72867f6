//! One control loop for the simulator and a scripted fake cluster; training off the decision
//! path; the graph-model autoscaler in the loop.

use std::collections::VecDeque;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use graphscale_control::{build, AutoscalerSpec, ControlLoop, Schedule, Seams, ThreadTraining};
use graphscale_core::{
    Actuator, AppGraph, AsyncMetricSource, Autoscaler, ClusterSnapshot, FittedForecaster,
    ForecastFailure, ForecastOutput, Forecaster, Millis, ScalingDecision, TopologySource,
};
use graphscale_plan::predictive::{PredictiveAutoscaler, PredictiveConfig};
use graphscale_sim::engine::{SimConfig, Simulator};
use graphscale_sim::{topology, workload::WorkloadSpec};

fn sim(app: &str, scenario: &str, seconds: u64) -> Simulator {
    let app = topology::builtin(app).unwrap();
    let rates = WorkloadSpec::named(scenario, app.nominal_peak_rps)
        .unwrap()
        .rates(seconds, 1)
        .unwrap();
    Simulator::new(app, SimConfig::default(), rates).unwrap()
}

fn autoscaler(name: &str, s: &Simulator, app: &str) -> Box<dyn Autoscaler + Send> {
    let facts = topology::builtin(app).unwrap().facts().unwrap();
    let _ = s;
    build(&AutoscalerSpec::named(name).unwrap(), &facts).unwrap()
}

#[derive(Debug, thiserror::Error)]
#[error("the script has no more snapshots")]
struct ScriptEnded;

/// A metric source that answers from a script, asynchronously (it yields before answering).
struct ScriptedMetrics {
    snapshots: VecDeque<ClusterSnapshot>,
}

impl AsyncMetricSource for ScriptedMetrics {
    type Error = ScriptEnded;
    async fn observe_async(&mut self) -> Result<ClusterSnapshot, ScriptEnded> {
        tokio::task::yield_now().await;
        self.snapshots.pop_front().ok_or(ScriptEnded)
    }
}

/// A topology source with a fixed graph per round.
struct ScriptedTopology {
    graphs: VecDeque<AppGraph>,
}

impl TopologySource for ScriptedTopology {
    type Error = ScriptEnded;
    fn topology(&self) -> Result<AppGraph, ScriptEnded> {
        self.graphs.front().cloned().ok_or(ScriptEnded)
    }
}

/// An actuator that records what it is told.
#[derive(Default)]
struct Recording {
    applied: Vec<Vec<ScalingDecision>>,
}

impl Actuator for Recording {
    type Error = ScriptEnded;
    fn apply(&mut self, decisions: &[ScalingDecision]) -> Result<(), ScriptEnded> {
        self.applied.push(decisions.to_vec());
        Ok(())
    }
}

#[tokio::test]
async fn the_same_loop_drives_the_simulator_and_a_fake_cluster() {
    // A closed loop on the simulator: every round's graph, snapshot and decisions.
    let mut s = sim("online-boutique", "rush", 900);
    let mut ctl = ControlLoop::simulated(
        autoscaler("graph-trend", &s, "online-boutique"),
        Millis::from_secs(7),
    )
    .unwrap();
    let mut rounds = Vec::new();
    for _ in 0..900 {
        s.step();
        if let Some(r) = ctl.tick(&mut s).unwrap() {
            rounds.push(r);
        }
    }
    assert_eq!(rounds.len(), 60);
    assert!(rounds.iter().all(|r| r.time.0 % 15_000 == 7_000));
    // The topology source's graph, with cluster nodes, on every round.
    assert!(rounds[0]
        .graph
        .nodes
        .iter()
        .any(|n| n.kind == graphscale_core::NodeKind::ClusterNode));

    // The same autoscaler, fresh, in the same loop over async fakes that replay those rounds.
    let mut cluster = Seams {
        metrics: ScriptedMetrics {
            snapshots: rounds.iter().map(|r| r.snapshot.clone()).collect(),
        },
        topology: ScriptedTopology {
            graphs: rounds.iter().map(|r| (*r.graph).clone()).collect(),
        },
        actuator: Recording::default(),
    };
    let mut fake = ControlLoop::simulated(
        autoscaler("graph-trend", &s, "online-boutique"),
        Millis::from_secs(7),
    )
    .unwrap();
    for r in &rounds {
        let got = fake.round(r.time, &mut cluster).await.unwrap();
        cluster.topology.graphs.pop_front();
        assert_eq!(got.decisions, r.decisions, "round at {}", r.time);
    }
    assert_eq!(cluster.actuator.applied.len(), rounds.len());
    // A seam that fails names its stage.
    let e = fake
        .round(Millis::from_secs(10_000), &mut cluster)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("reading the topology"), "{e}");
}

/// A forecaster whose fit waits until the test releases it, on whatever thread runs it.
struct SlowTrend {
    release: Arc<Mutex<Receiver<()>>>,
    fits: Arc<Mutex<Vec<std::thread::ThreadId>>>,
}

struct Flat(f64);

impl FittedForecaster for Flat {
    fn predict(&self, horizon: usize, _q: &[f64]) -> Result<ForecastOutput, ForecastFailure> {
        Ok(ForecastOutput {
            point: vec![self.0; horizon],
            quantiles: vec![],
        })
    }
}

impl Forecaster for SlowTrend {
    fn name(&self) -> String {
        "slow".into()
    }
    fn fit(&self, y: &[f64]) -> Result<Box<dyn FittedForecaster>, ForecastFailure> {
        self.fits.lock().unwrap().push(std::thread::current().id());
        let _ = self.release.lock().unwrap().recv();
        Ok(Box::new(Flat(y.last().copied().unwrap_or(0.0))))
    }
}

fn r_count(s: &Simulator) -> usize {
    s.graph().services().count()
}

#[test]
fn decide_never_waits_for_a_fit() {
    let (release, rx): (Sender<()>, Receiver<()>) = channel();
    let fits = Arc::new(Mutex::new(Vec::new()));
    let model = SlowTrend {
        release: Arc::new(Mutex::new(rx)),
        fits: Arc::clone(&fits),
    };
    let cfg = PredictiveConfig {
        min_history: 4,
        refit_every: 1_000,
        ..PredictiveConfig::default()
    };
    let a = PredictiveAutoscaler::new("slow", Box::new(model), cfg)
        .unwrap()
        .guarded()
        .unwrap();
    let schedule = Schedule::new(Millis::from_secs(15), Millis::from_secs(7)).unwrap();
    let mut ctl = ControlLoop::new(a, schedule, Box::new(ThreadTraining::new(1)));
    let mut s = sim("online-boutique", "rush", 600);
    let mut rules = Vec::new();
    // The fits block until released: rounds go on deciding on the observed rate meanwhile.
    for _ in 0..300 {
        s.step();
        if let Some(r) = ctl.tick(&mut s).unwrap() {
            assert_eq!(r.decisions.len(), r.snapshot.workloads.len());
            rules.extend(
                r.decisions
                    .into_iter()
                    .flat_map(|d| d.reasons)
                    .map(|x| x.rule + " " + &x.detail),
            );
        }
    }
    let me = std::thread::current().id();
    let started = fits.lock().unwrap().clone();
    assert!(!started.is_empty(), "fits were handed out");
    assert!(
        started.iter().all(|t| *t != me),
        "no fit ran on the deciding thread"
    );
    assert!(
        rules.iter().any(|r| r.starts_with("forecast.training")),
        "{rules:?}"
    );
    assert!(!rules.iter().any(|r| r.contains("slow: observed")));
    // Released, the fits finish; a later round installs them and forecasts with them.
    for _ in 0..r_count(&s) {
        release.send(()).unwrap();
    }
    let mut used = false;
    for _ in 0..300 {
        if ctl.training_pending() == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        let _ = release.send(());
    }
    for _ in 0..60 {
        s.step();
        if let Some(r) = ctl.tick(&mut s).unwrap() {
            used |= r
                .decisions
                .iter()
                .flat_map(|d| &d.reasons)
                .any(|x| x.rule == "forecast.demand" && x.detail.starts_with("slow:"));
        }
    }
    assert!(used, "the installed fits forecast");
}

#[test]
fn a_modelled_training_time_delays_the_model_by_whole_rounds() {
    // The same run with fits ready at once and fits that take 20 simulated seconds: the model
    // is first used one round later in the second.
    let first_use = |training_s: f64| {
        let mut cfg = PredictiveConfig {
            training_time_s: Some(training_s),
            ..PredictiveConfig::default()
        };
        cfg.planner.graph_aware = true;
        let model = graphscale_forecast::models::by_name("trend", 1).unwrap();
        let a = PredictiveAutoscaler::new("t", model, cfg)
            .unwrap()
            .guarded()
            .unwrap();
        let mut ctl = ControlLoop::simulated(a, Millis::from_secs(7)).unwrap();
        let mut s = sim("online-boutique", "rush", 600);
        for _ in 0..600 {
            s.step();
            if let Some(r) = ctl.tick(&mut s).unwrap() {
                if r.decisions
                    .iter()
                    .flat_map(|d| &d.reasons)
                    .any(|x| x.rule == "forecast.demand" && x.detail.starts_with("trend:"))
                {
                    return Some(r.time);
                }
            }
        }
        None
    };
    let at_once = first_use(0.0).unwrap();
    let later = first_use(20.0).unwrap();
    // 20 s is past the next round (15 s later) and ready at the one after.
    assert_eq!(later.0 - at_once.0, 30_000);
}

#[test]
fn the_predictive_autoscaler_plans_with_the_graph_model_in_the_loop() {
    let mut s = sim("event-driven", "fluctuating", 3600);
    let mut ctl = ControlLoop::simulated(
        autoscaler("graph-mlp", &s, "event-driven"),
        Millis::from_secs(7),
    )
    .unwrap();
    let (mut seen_model, mut seen_warmup, mut handed, mut installed) = (false, false, 0, 0);
    for _ in 0..(25 * 60) {
        s.step();
        if let Some(r) = ctl.tick(&mut s).unwrap() {
            handed += r.jobs_handed_out;
            installed += r.models_installed;
            for x in r.decisions.iter().flat_map(|d| &d.reasons) {
                seen_model |= x.rule == "forecast.demand" && x.detail.starts_with("mlp:");
                seen_warmup |= x.rule == "forecast.warmup" && x.detail.contains("warming up");
            }
        }
    }
    assert!(seen_warmup, "the warm-up is a reason");
    assert_eq!(handed, 2, "trained after 10 minutes and 40 syncs later");
    assert!(installed >= 1);
    assert!(
        seen_model,
        "after the warm-up the demand comes from the graph model"
    );
}

/// Rounds until the graph-model autoscaler `name` (with `checkpoint`, if any) plans from its
/// model's forecast in the loop on the simulator.
fn first_model_round(name: &str, checkpoint: Option<&std::path::Path>) -> Option<usize> {
    let mut s = sim("event-driven", "fluctuating", 3600);
    let mut spec = AutoscalerSpec::named(name).unwrap();
    if let AutoscalerSpec::Predictive { checkpoint: c, .. } = &mut spec {
        *c = checkpoint.map(Into::into);
    }
    let facts = topology::builtin("event-driven").unwrap().facts().unwrap();
    let mut ctl =
        ControlLoop::simulated(build(&spec, &facts).unwrap(), Millis::from_secs(7)).unwrap();
    let mut round = 0;
    for _ in 0..(20 * 60) {
        s.step();
        if let Some(r) = ctl.tick(&mut s).unwrap() {
            round += 1;
            let model = r
                .decisions
                .iter()
                .flat_map(|d| &d.reasons)
                .any(|x| x.rule == "forecast.demand" && x.detail.starts_with("mlp:"));
            if model {
                return Some(round);
            }
        }
    }
    None
}

#[test]
fn a_checkpoint_plans_from_its_first_window_instead_of_a_ten_minute_warm_up() {
    use graphscale_core::{JointForecaster, MetricSource};
    use graphscale_nn::online::{OnlineConfig, OnlineGraphModel};
    // A model trained on another seed's day, as `graphscale train` would write it.
    let app = topology::builtin("event-driven").unwrap();
    let rates = WorkloadSpec::named("fluctuating", app.nominal_peak_rps)
        .unwrap()
        .rates(3600, 7)
        .unwrap();
    let mut s = Simulator::new(app, SimConfig::default(), rates).unwrap();
    let graph = s.graph().clone();
    let mut online = OnlineGraphModel::new(
        graphscale_nn::graphmodel::Kind::Mlp,
        OnlineConfig::default(),
    );
    let mut job = None;
    for k in 0..45u64 {
        for _ in 0..15 {
            s.step();
        }
        online.observe(&s.observe().unwrap(), &graph);
        job = job.or_else(|| online.training_job(graphscale_core::JobId(k)));
    }
    let (id, trained) = job.expect("a training fell due").run();
    online.install(id, trained);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlp.safetensors");
    online.model().unwrap().save(&path).unwrap();

    let cold = first_model_round("graph-mlp", None).expect("the cold model plans at last");
    let warm = first_model_round("graph-mlp", Some(&path)).expect("the checkpoint plans");
    // Cold: 40 rounds of warm-up, then one to train. Warm: one window (12 rounds).
    assert!(cold > 40, "cold model planned at round {cold}");
    assert_eq!(warm, 12, "the checkpoint planned at round {warm}");

    // A checkpoint of another kind, or a missing one: named, not built.
    let facts = topology::builtin("event-driven").unwrap().facts().unwrap();
    let mut gat = AutoscalerSpec::named("graph-gat").unwrap();
    if let AutoscalerSpec::Predictive { checkpoint, .. } = &mut gat {
        *checkpoint = Some(path.clone());
    }
    let e = graphscale_core::error::chain(&build(&gat, &facts).err().unwrap());
    assert!(
        e.contains("it holds a mlp model; the autoscaler's model is gat"),
        "{e}"
    );
    if let AutoscalerSpec::Predictive { checkpoint, .. } = &mut gat {
        *checkpoint = Some(dir.path().join("none.safetensors"));
    }
    let e = graphscale_core::error::chain(&build(&gat, &facts).err().unwrap());
    assert!(
        e.contains("checkpoint") && e.contains("none.safetensors"),
        "{e}"
    );
}

/// Scaling actions (changes of a workload's decided replicas) and whether a scale-down was held
/// for its action cost, over `seconds` of `scenario` on Online Boutique.
fn actions(name: &str, scenario: &str, seconds: u64) -> (usize, bool) {
    let (changes, held) = changes(name, scenario, seconds);
    (changes.len(), held)
}

/// Every change of a workload's decided replicas (from, to), and whether a scale-down was held
/// for its action cost, over `seconds` of `scenario` on Online Boutique.
fn changes(name: &str, scenario: &str, seconds: u64) -> (Vec<(u32, u32)>, bool) {
    let mut s = sim("online-boutique", scenario, seconds);
    let app = topology::builtin("online-boutique").unwrap();
    let spec = AutoscalerSpec::named(name)
        .unwrap()
        .with_default_slo(app.slo_ms);
    let a = build(&spec, &app.facts().unwrap()).unwrap();
    let mut ctl = ControlLoop::simulated(a, Millis::from_secs(7)).unwrap();
    let mut last = std::collections::BTreeMap::new();
    let (mut out, mut held) = (Vec::new(), false);
    for _ in 0..seconds {
        s.step();
        if let Some(r) = ctl.tick(&mut s).unwrap() {
            for d in &r.decisions {
                held |= d.reasons.iter().any(|x| x.rule == "plan.hold_down");
                if let Some(p) = last.insert(d.workload.clone(), d.replicas) {
                    if p != d.replicas {
                        out.push((p, d.replicas));
                    }
                }
            }
        }
    }
    (out, held)
}

#[test]
fn sized_pods_are_held_longer_and_scaled_down_by_half_at_least() {
    // The flash crowd: up in a few steps, down in a few large ones as it ebbs.
    let (quick, _) = actions("graphscale-replicas", "rush", 3600);
    let (steps, held) = changes("graphscale", "rush", 3600);
    assert!(held, "a scale-down was held and said why");
    assert!(
        steps.len() * 3 < quick * 2,
        "under two thirds of the actions: {} against graphscale-replicas' {quick}",
        steps.len()
    );
    // Every scale-down removes at least half of the pods (rounded up).
    let downs: Vec<_> = steps.iter().filter(|(a, b)| b < a).collect();
    assert!(!downs.is_empty(), "{steps:?}");
    for &&(from, to) in &downs {
        assert!(from - to >= from.div_ceil(2), "{from} -> {to} in {steps:?}");
    }
}

#[test]
fn the_action_cost_removes_flapping_on_a_steady_noisy_load() {
    let (slo, slo_held) = actions("graph-slo", "fluctuating", 2400);
    let (ours, held) = actions("graphscale-replicas", "fluctuating", 2400);
    assert!(!slo_held, "graph-slo has no action cost");
    assert!(held, "a scale-down was held and said why");
    assert!(
        ours * 10 < slo * 8,
        "at least 20 % fewer actions: {ours} against graph-slo's {slo}"
    );
}
