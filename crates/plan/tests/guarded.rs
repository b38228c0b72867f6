//! The safety wrapper around the HPA: its invariants hold over random runs (property test), and
//! the baselines' own decisions pass through `bounds_only` untouched.

use std::collections::BTreeMap;

use graphscale_core::{
    AppGraph, Autoscaler, ClusterSnapshot, CpuSample, Millis, Node, NodeKind, PodObservation,
    PodPhase, Resources, WorkloadObservation,
};
use graphscale_plan::guarded::{GuardConfig, Guarded};
use graphscale_plan::hpa::{HpaAutoscaler, HpaControllerConfig, HpaSpec, MetricTarget};
use graphscale_plan::safety::SafetyConfig;
use proptest::prelude::*;

fn pod(i: u32, cpu_m: Option<f64>, now: Millis) -> PodObservation {
    PodObservation {
        name: format!("p{i}").into(),
        phase: PodPhase::Running,
        deleting: false,
        start_time: Some(Millis(0)),
        ready: Some(true),
        ready_transition: Some(Millis(30_000)),
        cpu: cpu_m.map(|m| CpuSample {
            millicores: m,
            timestamp: now,
            window: Millis(15_000),
        }),
        memory_mib: Some(100.0),
        requests: Resources::new(500.0, 256.0),
        limits: Resources::new(1000.0, 512.0),
    }
}

fn snapshot(now: Millis, spec: u32, cpu_m: f64, missing: bool) -> ClusterSnapshot {
    ClusterSnapshot {
        time: now,
        workloads: vec![WorkloadObservation {
            name: "w".into(),
            spec_replicas: spec,
            pods: (0..spec)
                .map(|i| pod(i, (!missing).then_some(cpu_m), now))
                .collect(),
            rps: None,
            latency_p95_ms: None,
            error_rate: None,
            backlog: None,
        }],
        edges: vec![],
    }
}

fn hpa() -> HpaAutoscaler {
    HpaAutoscaler::new(
        "hpa",
        HpaControllerConfig::default(),
        HpaSpec {
            min_replicas: 1,
            max_replicas: 200,
            metrics: vec![MetricTarget::CpuUtilization { target_percent: 80 }],
            ..HpaSpec::default()
        },
        BTreeMap::new(),
    )
    .unwrap()
}

fn graph() -> AppGraph {
    AppGraph::new("g", vec![Node::new("w", NodeKind::Service)], vec![]).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Over a run of random loads and missing samples, the guarded HPA stays in its bounds,
    /// never steps further than the step limits, never scales down on missing metrics or within
    /// the scale-down cooldown.
    #[test]
    fn the_guarded_hpa_keeps_the_safety_invariants(
        loads in proptest::collection::vec((0.0f64..3000.0, proptest::bool::weighted(0.2)), 1..40),
        start in 1u32..30,
    ) {
        let safety = SafetyConfig {
            min_replicas: 2,
            max_replicas: 20,
            max_up_factor: 2.0,
            min_up_pods: 2,
            max_down_share: 0.25,
            cooldown_down_s: 60.0,
            ..SafetyConfig::default()
        };
        let cfg = GuardConfig { safety: safety.clone(), ..GuardConfig::default() };
        let mut g = Guarded::new(hpa(), cfg).unwrap();
        let graph = graph();
        let mut spec = start;
        let mut last_change: Option<Millis> = None;
        for (k, (cpu, missing)) in loads.into_iter().enumerate() {
            let now = Millis::from_secs(600 + 15 * k as u64);
            let snap = snapshot(now, spec, cpu, missing);
            g.observe(&snap, &graph);
            let d = g.decide(&snap, &graph);
            prop_assert_eq!(d.len(), 1);
            let r = d[0].replicas;
            prop_assert!(r >= safety.min_replicas && r <= safety.max_replicas, "{r} out of bounds");
            let up_limit = ((spec as f64 * safety.max_up_factor) as u32).max(spec + safety.min_up_pods);
            prop_assert!(r <= up_limit.max(safety.min_replicas), "{spec} -> {r} past the up step");
            if spec <= safety.max_replicas && spec >= safety.min_replicas {
                let down_limit = spec - ((spec as f64 * safety.max_down_share).ceil() as u32).max(1).min(spec);
                prop_assert!(r >= down_limit.min(spec), "{spec} -> {r} past the down step");
                if missing {
                    prop_assert!(r >= spec, "scaled down {spec} -> {r} on missing metrics");
                }
                if let Some(t) = last_change {
                    if now.saturating_sub(t).as_secs_f64() < safety.cooldown_down_s {
                        prop_assert!(r >= spec, "scaled down {spec} -> {r} within the cooldown");
                    }
                }
            }
            if r != spec {
                last_change = Some(now);
            }
            spec = r;
        }
    }
}

#[test]
fn bounds_only_passes_the_hpa_through() {
    let mut plain = hpa();
    let mut g = Guarded::new(hpa(), GuardConfig::bounds_only(1, 200)).unwrap();
    let graph = graph();
    let mut spec = 3;
    for (k, cpu) in [900.0, 2500.0, 2500.0, 100.0, 100.0, 50.0, 1200.0]
        .iter()
        .enumerate()
    {
        let snap = snapshot(Millis::from_secs(600 + 15 * k as u64), spec, *cpu, false);
        let want = plain.decide(&snap, &graph);
        let got = g.decide(&snap, &graph);
        assert_eq!(got, want, "round {k}");
        spec = got[0].replicas;
    }
}

#[test]
fn bounds_only_holds_a_scale_down_on_missing_metrics_and_nothing_else() {
    let mut g = Guarded::new(hpa(), GuardConfig::bounds_only(1, 200)).unwrap();
    let graph = graph();
    // Running cold with no samples at 10 replicas: the HPA would keep or lower; the wrapper
    // holds at 10 and says why.
    let snap = snapshot(Millis::from_secs(600), 10, 0.0, true);
    let d = g.decide(&snap, &graph);
    assert!(d[0].replicas >= 10, "{:?}", d[0]);
    // With samples it lets the HPA scale down.
    let mut spec = 10;
    let mut lowered = false;
    for k in 1..40 {
        let snap = snapshot(Millis::from_secs(600 + 15 * k), spec, 10.0, false);
        let d = g.decide(&snap, &graph);
        lowered |= d[0].replicas < spec;
        spec = d[0].replicas;
    }
    assert!(lowered, "the HPA's own scale-down passes");
}
