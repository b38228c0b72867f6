//! A graph model in the control loop: warm-up, training on schedule, determinism, and the
//! predictive autoscaler driven by it.

use graphscale_core::{Actuator, Autoscaler, JointForecaster, MetricSource};
use graphscale_nn::graphmodel::{GraphModelConfig, Kind};
use graphscale_nn::online::{OnlineConfig, OnlineGraphModel};
use graphscale_plan::predictive::{PredictiveAutoscaler, PredictiveConfig};
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

#[test]
fn warms_up_trains_on_schedule_and_is_deterministic() {
    let mut s = sim();
    let graph = s.graph().clone();
    let services = graph.services().count();
    let mut a = OnlineGraphModel::new(Kind::Gat, cfg());
    let mut b = OnlineGraphModel::new(Kind::Gat, cfg());
    for k in 1..=45 {
        for _ in 0..15 {
            s.step();
        }
        let snap = s.observe().unwrap();
        a.observe(&snap, &graph);
        b.observe(&snap, &graph);
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
    // Trained at rows 30 and 40 (every 10 forecasts after the first).
    assert_eq!(a.trainings(), 2);
}

#[test]
fn the_predictive_autoscaler_plans_with_the_graph_model() {
    let mut s = sim();
    let graph = s.graph().clone();
    let mut pc = PredictiveConfig::default();
    pc.planner.graph_aware = true;
    let mut scaler = PredictiveAutoscaler::with_joint(
        "graph-gat",
        Box::new(OnlineGraphModel::new(Kind::Gat, cfg())),
        pc,
    )
    .unwrap();
    let mut seen_model = false;
    let mut seen_warmup = false;
    for _ in 0..40 {
        for _ in 0..15 {
            s.step();
        }
        let snap = s.observe().unwrap();
        let d = scaler.decide(&snap, &graph);
        assert_eq!(d.len(), snap.workloads.len());
        for r in d.iter().flat_map(|x| &x.reasons) {
            seen_model |= r.rule == "forecast.demand" && r.detail.starts_with("gat:");
            seen_warmup |= r.rule == "forecast.warmup" && r.detail.contains("warming up");
        }
        s.apply(&d).unwrap();
    }
    assert!(seen_warmup, "the warm-up is a reason");
    assert!(
        seen_model,
        "after the warm-up the demand comes from the graph model"
    );
}

#[test]
fn a_model_that_cannot_train_says_so_and_is_not_a_warm_up() {
    let mut s = sim();
    let graph = s.graph().clone();
    let mut bad = cfg();
    bad.model.hidden = 9; // not a multiple of the 2 heads
    let mut m = OnlineGraphModel::new(Kind::Hgt, bad);
    let mut last = None;
    for _ in 0..31 {
        for _ in 0..15 {
            s.step();
        }
        m.observe(&s.observe().unwrap(), &graph);
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
