//! A graph model behind the joint-forecaster seam: warm-up, training handed out on schedule,
//! determinism, a failed training, and a changed graph. (The autoscaler driven by it runs in
//! the control loop's tests, crates/control/tests.)

use graphscale_core::{
    AppGraph, ClusterSnapshot, Edge, JobId, JointForecaster, MetricSource, Node, NodeKind,
    Relation, TopologySource,
};
use graphscale_nn::graphmodel::{GraphModelConfig, Kind};
use graphscale_nn::online::{OnlineConfig, OnlineGraphModel};
use graphscale_sim::engine::{SimConfig, Simulator};
use graphscale_sim::{topology, workload::WorkloadSpec};

fn cfg() -> OnlineConfig {
    OnlineConfig {
        model: GraphModelConfig {
            window: 4,
            horizon: 3,
            hidden: 8,
            heads: 2,
            epochs: 3,
            ..GraphModelConfig::default()
        },
        min_history: 30,
        history: 100,
        refit_every: 10,
        step_ms: 15_000,
        training_ms: 0,
    }
}

fn sim() -> Simulator {
    let app = topology::builtin("event-driven").unwrap();
    let rates = WorkloadSpec::named("fluctuating", app.nominal_peak_rps)
        .unwrap()
        .rates(3600, 1)
        .unwrap();
    Simulator::new(app, SimConfig::default(), rates).unwrap()
}

/// One sync of the seam: observe, run a due training on this thread and install it. Returns
/// whether a training was handed out.
fn sync(m: &mut OnlineGraphModel, id: u64, snap: &ClusterSnapshot, graph: &AppGraph) -> bool {
    m.observe(snap, graph);
    match m.training_job(JobId(id)) {
        Some(job) => {
            let (id, trained) = job.run();
            m.install(id, trained);
            true
        }
        None => false,
    }
}

fn advance(s: &mut Simulator) -> ClusterSnapshot {
    for _ in 0..15 {
        s.step();
    }
    s.observe().unwrap()
}

#[test]
fn warms_up_trains_on_schedule_and_is_deterministic() {
    let mut s = sim();
    let graph = s.graph().clone();
    let services = graph.services().count();
    let mut a = OnlineGraphModel::new(Kind::Gat, cfg());
    let mut b = OnlineGraphModel::new(Kind::Gat, cfg());
    let mut handed = Vec::new();
    for k in 1..=45 {
        let snap = advance(&mut s);
        if sync(&mut a, k, &snap, &graph) {
            handed.push(k);
        }
        sync(&mut b, k, &snap, &graph);
        let (fa, fb) = (a.forecast(5), b.forecast(5));
        if k < 30 {
            let e = fa.unwrap_err();
            assert!(
                matches!(e, graphscale_core::NoForecast::WarmingUp(_)),
                "{e}"
            );
            let e = e.to_string();
            assert!(
                e.contains("warming up") && e.contains(&format!("{k} of 30")),
                "{e}"
            );
            continue;
        }
        let (fa, fb) = (fa.unwrap(), fb.unwrap());
        assert_eq!(fa, fb, "same snapshots, same seed: same forecast");
        assert_eq!(fa.len(), services);
        // The model predicts 3 steps; a longer request gets what it has.
        assert!(fa
            .values()
            .all(|v| v.len() == 3 && v.iter().all(|x| x.is_finite() && *x >= 0.0)));
    }
    // Trained at rows 30 and 40 (every 10 forecasts after the first), never in `forecast`.
    assert_eq!(handed, vec![30, 40]);
    assert_eq!(a.trainings(), 2);
}

#[test]
fn forecasting_never_trains_and_a_pending_training_is_a_warm_up() {
    let mut s = sim();
    let graph = s.graph().clone();
    let mut m = OnlineGraphModel::new(Kind::Mlp, cfg());
    let mut job = None;
    for k in 1..=32 {
        let snap = advance(&mut s);
        m.observe(&snap, &graph);
        if job.is_none() {
            job = m.training_job(JobId(k));
        }
        // However often it is asked, the model does not train itself.
        for _ in 0..3 {
            assert!(m.forecast(3).is_err());
        }
        assert_eq!(m.trainings(), 0);
    }
    let e = m.forecast(3).unwrap_err().to_string();
    assert!(e.contains("gat") || e.contains("mlp training"), "{e}");
    let (id, trained) = job.expect("a training fell due at row 30").run();
    m.install(id, trained);
    assert_eq!(m.trainings(), 1);
    assert!(m.forecast(3).is_ok());
}

#[test]
fn a_model_that_cannot_train_says_so_and_is_not_a_warm_up() {
    let mut s = sim();
    let graph = s.graph().clone();
    let mut bad = cfg();
    bad.model.hidden = 9; // not a multiple of the 2 heads
    let mut m = OnlineGraphModel::new(Kind::Hgt, bad);
    let mut last = None;
    for k in 1..=31 {
        let snap = advance(&mut s);
        sync(&mut m, k, &snap, &graph);
        last = Some(m.forecast(3));
    }
    match last.unwrap() {
        Err(graphscale_core::NoForecast::Failed(e)) => {
            assert!(
                e.contains("hgt could not train") && e.contains("`hidden`"),
                "{e}"
            )
        }
        other => panic!("expected a training failure, got {other:?}"),
    }
}

#[test]
fn a_changed_graph_keeps_what_still_applies() {
    let mut s = sim();
    let mut m = OnlineGraphModel::new(Kind::Gat, cfg());
    // The topology source's graph: services plus cluster nodes and placement.
    for k in 1..=31 {
        let snap = advance(&mut s);
        let graph = s.topology().unwrap();
        sync(&mut m, k, &snap, &graph);
    }
    assert_eq!(m.trainings(), 1);
    let before = m.forecast(3).unwrap();

    // A pod moves: only placement changes, so nothing is due and the forecasts go on.
    let snap = advance(&mut s);
    let placed = s.topology().unwrap();
    let mut moved = placed.clone();
    let node = moved
        .nodes
        .iter()
        .find(|n| n.kind == NodeKind::ClusterNode)
        .map(|n| n.id.clone())
        .unwrap();
    for e in moved
        .edges
        .iter_mut()
        .filter(|e| e.relation == Relation::RunsOn)
    {
        e.dst = node.clone();
    }
    let moved = AppGraph::new(moved.name, moved.nodes, moved.edges).unwrap();
    assert_ne!(moved, placed);
    assert!(
        !sync(&mut m, 32, &snap, &moved),
        "a moved pod is no reason to retrain"
    );
    assert_eq!(m.forecast(3).unwrap().len(), before.len());

    // A new service: the model keeps forecasting the services it knows, and a retraining on the
    // new graph falls due at once.
    let snap = advance(&mut s);
    let app = s.graph().clone();
    let entry = app.services().next().unwrap().id.clone();
    let mut nodes = app.nodes.clone();
    nodes.push(Node::new("new-svc", NodeKind::Service));
    let mut edges = app.edges.clone();
    edges.push(Edge::new(&entry, "new-svc", Relation::Calls, 0.5));
    let grown = AppGraph::new(app.name.clone(), nodes, edges).unwrap();
    m.observe(&snap, &grown);
    let kept = m.forecast(3).unwrap();
    assert_eq!(
        kept.len(),
        before.len(),
        "the installed model still forecasts"
    );
    assert!(!kept.contains_key("new-svc"));
    let job = m
        .training_job(JobId(100))
        .expect("the new graph is due a training");
    let (id, trained) = job.run();
    m.install(id, trained);
    assert_eq!(m.trainings(), 2);

    // A removed service: the rows keep the others' data; the next training covers what is left.
    let snap = advance(&mut s);
    let gone = app.services().last().unwrap().id.clone();
    let nodes: Vec<Node> = app.nodes.iter().filter(|n| n.id != gone).cloned().collect();
    let edges: Vec<Edge> = app
        .edges
        .iter()
        .filter(|e| e.src != gone && e.dst != gone)
        .cloned()
        .collect();
    let shrunk = AppGraph::new(app.name.clone(), nodes, edges).unwrap();
    let mut snap_without = snap.clone();
    snap_without.workloads.retain(|w| w.name != gone);
    snap_without
        .edges
        .retain(|e| *e.src != *gone && *e.dst != *gone);
    assert!(sync(&mut m, 101, &snap_without, &shrunk));
    let after = m.forecast(3).unwrap();
    assert_eq!(after.len(), before.len() - 1);
    assert!(!after.contains_key(&gone));
}

#[test]
fn a_checkpoint_forecasts_from_its_first_window_and_retrains_on_schedule() {
    let mut s = sim();
    let graph = s.graph().clone();
    let mut trained = OnlineGraphModel::new(Kind::Gat, cfg());
    for k in 1..=30 {
        sync(&mut trained, k, &advance(&mut s), &graph);
    }
    assert_eq!(trained.trainings(), 1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gat.safetensors");
    trained.model().unwrap().save(&path).unwrap();
    let ck = graphscale_nn::graphmodel::GraphModel::load(&path).unwrap();

    // Trained at another step: refused with both steps.
    let e = OnlineGraphModel::warm(
        ck,
        OnlineConfig {
            step_ms: 30_000,
            ..cfg()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("15000 ms steps") && e.contains("every 30000 ms"),
        "{e}"
    );

    let ck = graphscale_nn::graphmodel::GraphModel::load(&path).unwrap();
    let mut warm = OnlineGraphModel::warm(ck, cfg()).unwrap();
    let mut handed = Vec::new();
    for k in 1..=31 {
        let snap = advance(&mut s);
        // The trained model sees the same snapshots: from the same newest window, the warm
        // one forecasts exactly what it does.
        trained.observe(&snap, &graph);
        if sync(&mut warm, k, &snap, &graph) {
            handed.push(k);
        }
        let f = warm.forecast(3);
        if !handed.is_empty() {
            // Retrained on live data: its own model now.
            assert!(f.is_ok());
            continue;
        }
        if k < 4 {
            let e = f.unwrap_err().to_string();
            assert!(e.contains(&format!("from its checkpoint: {k} of 4")), "{e}");
            continue;
        }
        assert_eq!(f.unwrap(), trained.forecast(3).unwrap(), "sync {k}");
    }
    // The checkpoint forecasts until the live rows reach the warm-up (30), then the online
    // schedule retrains it on them (more than 10 forecasts have passed).
    assert_eq!(handed, vec![30]);
    assert_eq!(warm.trainings(), 1);
}
