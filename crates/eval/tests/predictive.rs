//! The predictive autoscalers end to end on the simulator.

use graphscale_eval::shadow::{parse_records, shadow};
use graphscale_eval::{
    build_autoscaler, run_one_logged, AutoscalerSpec, DecisionRecord, ExperimentSpec, ScenarioSpec,
};
use graphscale_sim::spec::AppSpec;
use graphscale_sim::workload::WorkloadSpec;

/// `front` (small, saturates at 200 rps) calls `back` three times per request; `back` is cheap
/// enough that what a saturated `front` passes on fits in one replica.
fn chain() -> AppSpec {
    let svc = |name: &str, cost: f64| {
        format!(
            r#"{{"name": "{name}", "cpu_ms_per_request": {cost}, "memory_base_mib": 64,
            "requests": {{"cpu_millicores": 100, "memory_mib": 128}},
            "limits": {{"cpu_millicores": 200, "memory_mib": 256}}, "startup_s": 30}}"#
        )
    };
    let text = format!(
        r#"{{"name": "chain", "slo_ms": 200, "nominal_peak_rps": 400,
        "services": [{}, {}],
        "edges": [{{"src": "front", "dst": "back", "relation": "calls", "ratio": 3}}]}}"#,
        svc("front", 1.0),
        svc("back", 0.1)
    );
    AppSpec::from_json(&text, "test").unwrap()
}

/// One run of 8 minutes: `base_rps`, then 8x in `ramp_s` seconds at 300 s, held.
fn run_rush(
    app: &AppSpec,
    base_rps: f64,
    ramp_s: f64,
    autoscaler: &AutoscalerSpec,
) -> Vec<DecisionRecord> {
    let scenario = ScenarioSpec {
        name: "step".into(),
        workload: Some(WorkloadSpec::Rush {
            base_rps,
            factor: 8.0,
            start_s: 300.0,
            ramp_s,
            hold_s: 300.0,
            decay_s: 60.0,
        }),
        duration_s: Some(480),
        peak_share: None,
    };
    let spec = ExperimentSpec {
        apps: vec![],
        scenarios: vec![scenario.clone()],
        ..ExperimentSpec::default()
    };
    let mut recs = Vec::new();
    run_one_logged(&spec, app, &scenario, autoscaler, 1, false, &mut |r| {
        recs.push(r)
    })
    .unwrap();
    recs
}

fn run(app: &AppSpec, autoscaler: &str) -> Vec<DecisionRecord> {
    let mut a = AutoscalerSpec::named(autoscaler).unwrap();
    if let AutoscalerSpec::Predictive { config, .. } = &mut a {
        // The callee's own load still jumps when its saturated caller passes on what it can, and
        // the surge estimate would scale it early on that alone: off, so that these runs show
        // the graph propagation alone.
        config.rate_window_s = 0.0;
    }
    run_rush(app, 50.0, 10.0, &a)
}

/// First decision time (s) at which `workload` was scaled above its start.
fn first_scale_up(recs: &[DecisionRecord], workload: &str) -> Option<f64> {
    recs.iter().find_map(|r| {
        let d = r.decisions.iter().find(|d| d.workload == workload)?;
        (d.replicas > 1).then(|| r.snapshot.time.as_secs_f64())
    })
}

#[test]
fn the_graph_aware_planner_scales_the_callee_ahead_of_its_own_load() {
    let app = chain();
    let aware = run(&app, "graph-persistence");
    let blind = run(&app, "pred-persistence");
    let (a, b) = (
        first_scale_up(&aware, "back").unwrap(),
        first_scale_up(&blind, "back").unwrap(),
    );
    assert!(
        a < b,
        "graph-aware scaled `back` at {a} s, graph-blind at {b} s"
    );
    // The decision that scaled `back` says which upstream forecast drove it.
    let d = aware
        .iter()
        .find(|r| r.snapshot.time.as_secs_f64() == a)
        .and_then(|r| r.decisions.iter().find(|d| d.workload == "back"))
        .unwrap();
    assert!(
        d.reasons
            .iter()
            .any(|r| r.rule == "plan.graph_propagation" && r.detail.contains("`front`")),
        "{d:?}"
    );
    // Every decision carries reasons and stays within the safety bounds.
    for r in &aware {
        for d in &r.decisions {
            assert!(!d.reasons.is_empty());
            assert!((1..=50).contains(&d.replicas));
        }
    }
}

#[test]
fn a_surge_is_planned_for_before_the_rate_window_shows_it() {
    let app = chain();
    let run_with = |rate_window_s: f64| {
        let mut a = AutoscalerSpec::named("graph-persistence").unwrap();
        if let AutoscalerSpec::Predictive { config, .. } = &mut a {
            config.rate_window_s = rate_window_s;
        }
        run_rush(&app, 20.0, 45.0, &a)
    };
    let with = run_with(60.0);
    let without = run_with(0.0);
    // Replicas of `front` planned by 30 s into the ramp.
    let planned_by = |recs: &[DecisionRecord], t: f64| {
        recs.iter()
            .filter(|r| r.snapshot.time.as_secs_f64() <= t)
            .filter_map(|r| r.decisions.iter().find(|d| d.workload == "front"))
            .map(|d| d.replicas)
            .max()
            .unwrap()
    };
    let (a, b) = (planned_by(&with, 330.0), planned_by(&without, 330.0));
    assert!(
        a > b,
        "with the surge estimate {a} replicas by 330 s, without {b}"
    );
    assert!(
        with.iter()
            .flat_map(|r| &r.decisions)
            .flat_map(|d| &d.reasons)
            .any(|r| r.rule == "forecast.surge"),
        "no decision says it planned for a surge"
    );
    assert!(!without
        .iter()
        .flat_map(|r| &r.decisions)
        .flat_map(|d| &d.reasons)
        .any(|r| r.rule == "forecast.surge"));
}

#[test]
fn a_surge_is_extrapolated_no_further_than_its_rate_window() {
    // With a 160 s lead the surge's slope, measured over a 60 s window, is carried 60 s ahead,
    // not 175 s; with a 20 s lead, over the lead and a sync period (35 s).
    let app = chain();
    let reaches = |lead_s: f64| {
        let mut a = AutoscalerSpec::named("graph-persistence").unwrap();
        if let AutoscalerSpec::Predictive { config, .. } = &mut a {
            config.rate_window_s = 60.0;
            config.lead_time_s = Some(lead_s);
        }
        let details: Vec<String> = run_rush(&app, 20.0, 45.0, &a)
            .iter()
            .flat_map(|r| &r.decisions)
            .flat_map(|d| &d.reasons)
            .filter(|r| r.rule == "forecast.surge")
            .map(|r| r.detail.clone())
            .collect();
        assert!(!details.is_empty(), "lead {lead_s} s: no surge planned for");
        details
    };
    for d in reaches(160.0) {
        assert!(d.ends_with("in 60 s: planning on it"), "{d}");
    }
    for d in reaches(20.0) {
        assert!(d.ends_with("in 35 s: planning on it"), "{d}");
    }
}

#[test]
fn the_warm_up_leaves_the_cold_start_out_of_the_metrics_not_the_timeline() {
    let app = graphscale_sim::topology::builtin("event-driven").unwrap();
    let scenario = ScenarioSpec::named("peak").with_duration(1200);
    let hpa = AutoscalerSpec::named("hpa").unwrap();
    let run_with = |warmup_s: Option<u64>| {
        let spec = ExperimentSpec {
            scenarios: vec![scenario.clone()],
            warmup_s,
            ..ExperimentSpec::default()
        };
        run_one_logged(&spec, &app, &scenario, &hpa, 1, true, &mut |_| {}).unwrap()
    };
    let cold = run_with(Some(0));
    let warm = run_with(Some(300));
    // A 20-minute run is too short for the default warm-up.
    assert_eq!(run_with(None).warmup_s, 0);
    assert_eq!((cold.warmup_s, warm.warmup_s), (0, 300));
    // The cluster starts with one replica per service at peak load: the first minute violates.
    assert!(
        cold.timeline[0].violation_pct > 50.0,
        "{:?}",
        cold.timeline[0]
    );
    assert!(cold.metrics.slo_violation_minutes >= 1.0);
    // Same run, same timeline; the metrics start after 5 minutes.
    assert_eq!(cold.timeline, warm.timeline);
    let late: f64 = cold.timeline[5..]
        .iter()
        .filter(|p| p.violation_pct > 5.0)
        .count() as f64;
    assert_eq!(warm.metrics.slo_violation_minutes, late);
    assert!(warm.metrics.slo_violation_minutes < cold.metrics.slo_violation_minutes);
    let ratio = warm.metrics.cpu_core_hours / cold.metrics.cpu_core_hours;
    assert!(ratio > 0.6 && ratio < 0.85, "15 of 20 minutes: {ratio}");
}

#[test]
fn shadow_mode_compares_the_recorded_plan_with_the_hpa() {
    let app = chain();
    let recs = run(&app, "graph-persistence");
    let text: String = recs
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    let parsed = parse_records(&text, "rec.jsonl").unwrap();
    assert_eq!(parsed, recs);
    let hpa = || build_autoscaler(&AutoscalerSpec::named("hpa").unwrap(), &app).unwrap();
    let rep = shadow(&parsed, hpa()).unwrap();
    assert_eq!(rep.decisions, recs.len());
    assert_eq!(rep.rows.len(), 2);
    assert!(rep.total_recorded.cpu_core_hours > 0.0 && rep.total_shadow.cpu_core_hours > 0.0);
    assert!(["recorded", "hpa", "tie"].contains(&rep.slo_favours.as_str()));
    // Bad input names the line.
    let err = parse_records("{}\n", "rec.jsonl").unwrap_err().to_string();
    assert!(err.contains("rec.jsonl:1"), "{err}");
    assert!(shadow(&[], hpa()).is_err());
}

#[test]
fn every_named_autoscaler_runs_on_an_app_with_queues_and_topics() {
    let spec = ExperimentSpec {
        apps: vec!["event-driven".into()],
        scenarios: vec![ScenarioSpec::named("rush").with_duration(240)],
        autoscalers: ["hpa-tuned", "phpa", "pred-trend", "graph-ets", "graph-mstl"]
            .iter()
            .map(|n| AutoscalerSpec::named(n).unwrap())
            .collect(),
        seeds: vec![1],
        baseline: "hpa-tuned".into(),
        ..ExperimentSpec::default()
    };
    let res = graphscale_eval::run_experiment(&spec, &|_| {}).unwrap();
    assert_eq!(res.runs.len(), 5);
    for r in &res.runs {
        assert!(r.metrics.cpu_core_hours > 0.0, "{}", r.autoscaler);
        assert!(!r.rules.is_empty(), "{}", r.autoscaler);
    }
}

/// 15 minutes of a flash crowd on the queue-and-topic app (60 syncs).
fn event_driven_rush_15_min() -> (ExperimentSpec, graphscale_sim::spec::AppSpec, ScenarioSpec) {
    let spec = ExperimentSpec {
        apps: vec!["event-driven".into()],
        scenarios: vec![ScenarioSpec::named("rush").with_duration(900)],
        ..ExperimentSpec::default()
    };
    let app = graphscale_sim::topology::builtin("event-driven").unwrap();
    let scenario = spec.scenarios[0].clone();
    (spec, app, scenario)
}

#[test]
fn the_lstm_autoscaler_trains_after_its_warm_up_and_plans_from_the_network() {
    // 15 minutes of a flash crowd on the queue-and-topic app: 60 syncs, so the networks are
    // trained once the 40-sample warm-up is over and forecast from the newest data after that.
    let (spec, app, scenario) = event_driven_rush_15_min();
    let a = AutoscalerSpec::named("graph-lstm").unwrap();
    let mut recs = Vec::new();
    run_one_logged(&spec, &app, &scenario, &a, 1, false, &mut |r| recs.push(r)).unwrap();
    let rules = |r: &DecisionRecord| -> Vec<String> {
        r.decisions
            .iter()
            .flat_map(|d| d.reasons.iter().map(|x| x.rule.clone()))
            .collect()
    };
    // The first rounds have no rate yet (the HPA rule decides); then the network warms up.
    assert!(recs[..20]
        .iter()
        .any(|r| rules(r).iter().any(|x| x == "forecast.warmup")));
    let late: Vec<String> = recs[recs.len() - 5..].iter().flat_map(rules).collect();
    let from_network = recs[recs.len() - 5..]
        .iter()
        .flat_map(|r| r.decisions.iter().flat_map(|d| d.reasons.iter()))
        .any(|x| x.rule == "forecast.demand" && x.detail.starts_with("lstm:"));
    assert!(
        from_network,
        "the network's forecast drives late plans: {late:?}"
    );
    assert!(
        !late
            .iter()
            .any(|r| r == "forecast.failed" || r == "forecast.warmup"),
        "{late:?}"
    );
}

#[test]
fn the_graph_model_autoscalers_train_in_the_loop_and_plan_from_the_model() {
    // 15 minutes of a flash crowd: the graph model trains after 40 syncs and forecasts every
    // service from then on.
    let (spec, app, scenario) = event_driven_rush_15_min();
    for name in ["graph-hgt", "graph-stgnn"] {
        let a = AutoscalerSpec::named(name).unwrap();
        let mut recs = Vec::new();
        run_one_logged(&spec, &app, &scenario, &a, 1, false, &mut |r| recs.push(r)).unwrap();
        let model = name.trim_start_matches("graph-");
        let reasons = |r: &DecisionRecord| -> Vec<(String, String)> {
            r.decisions
                .iter()
                .flat_map(|d| d.reasons.iter().map(|x| (x.rule.clone(), x.detail.clone())))
                .collect()
        };
        assert!(recs[..30]
            .iter()
            .flat_map(reasons)
            .any(|(rule, detail)| rule == "forecast.warmup" && detail.contains("warming up")));
        let late: Vec<(String, String)> = recs[recs.len() - 5..].iter().flat_map(reasons).collect();
        assert!(
            late.iter().any(|(rule, detail)| rule == "forecast.demand"
                && detail.starts_with(&format!("{model}:"))),
            "{name}: the graph model drives late plans: {late:?}"
        );
        assert!(
            !late
                .iter()
                .any(|(r, _)| r == "forecast.failed" || r == "forecast.warmup"),
            "{name}: {late:?}"
        );
    }
}

#[test]
fn memory_is_resized_in_place_from_usage_without_touching_cpu_or_the_slo() {
    let app = graphscale_sim::topology::builtin("event-driven").unwrap();
    let scenario = ScenarioSpec::named("fluctuating").with_duration(2400);
    let spec = ExperimentSpec {
        scenarios: vec![scenario.clone()],
        ..ExperimentSpec::default()
    };
    let run = |name: &str| {
        let a = AutoscalerSpec::named(name).unwrap();
        let mut recs = Vec::new();
        let r =
            run_one_logged(&spec, &app, &scenario, &a, 2, false, &mut |d| recs.push(d)).unwrap();
        (r, recs)
    };
    let (plain, plain_recs) = run("graph-trend");
    let (vpa, recs) = run("graph-trend-vpa");
    assert!(plain_recs
        .iter()
        .flat_map(|r| &r.decisions)
        .all(|d| d.resources.is_none()));
    // Resizes come with their reason, change memory only, and the next snapshot shows them.
    let mut resized = 0;
    for (k, r) in recs.iter().enumerate() {
        for d in &r.decisions {
            let Some(to) = d.resources else { continue };
            resized += 1;
            assert!(
                d.reasons.iter().any(|x| x.rule == "vertical.resize"),
                "{d:?}"
            );
            let before = &r.snapshot.workload(&d.workload).unwrap().pods[0];
            assert_eq!(to.requests.cpu_millicores, before.requests.cpu_millicores);
            assert_eq!(to.limits.cpu_millicores, before.limits.cpu_millicores);
            if let Some(next) = recs.get(k + 1) {
                let w = next.snapshot.workload(&d.workload).unwrap();
                assert!(w.pods.iter().all(|p| p.requests == to.requests), "{d:?}");
            }
        }
    }
    assert!(resized > 0, "no service was resized in 40 minutes");
    assert_eq!(vpa.metrics.oom_kills, 0.0);
    assert!(
        vpa.metrics.memory_gib_hours < 0.9 * plain.metrics.memory_gib_hours,
        "{} vs {}",
        vpa.metrics.memory_gib_hours,
        plain.metrics.memory_gib_hours
    );
    // Memory does not drive the replica count, so the horizontal plan is the same.
    assert_eq!(vpa.metrics.cpu_core_hours, plain.metrics.cpu_core_hours);
    assert_eq!(
        vpa.metrics.slo_violation_minutes,
        plain.metrics.slo_violation_minutes
    );
}

#[test]
fn the_slo_planner_plans_from_learned_latency_models_within_the_app_slo() {
    // Online Boutique under its peak load for 30 minutes (the first 5 left out of the metrics):
    // in the second half the latency models
    // are healthy and the SLO planner plans, naming the budget, the path and the models.
    let app = graphscale_sim::topology::builtin("online-boutique").unwrap();
    let scenario = ScenarioSpec::named("peak").with_duration(1800);
    let spec = ExperimentSpec {
        scenarios: vec![scenario.clone()],
        ..ExperimentSpec::default()
    };
    let a = AutoscalerSpec::named("graph-slo").unwrap();
    let mut recs = Vec::new();
    let r = run_one_logged(&spec, &app, &scenario, &a, 3, false, &mut |d| recs.push(d)).unwrap();
    let late: Vec<_> = recs[recs.len() / 2..]
        .iter()
        .flat_map(|r| &r.decisions)
        .collect();
    let slo = late
        .iter()
        .flat_map(|d| &d.reasons)
        .filter(|x| x.rule == "plan.slo")
        .count();
    let fallback = late
        .iter()
        .flat_map(|d| &d.reasons)
        .filter(|x| x.rule == "plan.slo_fallback")
        .count();
    assert!(slo > 2 * fallback, "plan.slo {slo}, fallback {fallback}");
    let why = late
        .iter()
        .flat_map(|d| &d.reasons)
        .find(|x| x.rule == "plan.slo")
        .unwrap();
    assert!(
        why.detail.contains(&format!("SLO {:.0} ms", app.slo_ms))
            && why.detail.contains("path frontend"),
        "{}",
        why.detail
    );
    assert_eq!(r.metrics.slo_violation_minutes, 0.0, "{:?}", r.metrics);
}

#[test]
fn results_record_the_spec_each_autoscaler_ran_with_on_each_app() {
    use graphscale_eval::{resolve_autoscaler, run_experiment, ExperimentResult};
    let spec = ExperimentSpec {
        apps: vec!["online-boutique".into(), "event-driven".into()],
        scenarios: vec![ScenarioSpec::named("off-peak").with_duration(60)],
        autoscalers: vec!["hpa".into(), "hpa-tuned".into(), "graphscale".into()],
        seeds: vec![1],
        ..ExperimentSpec::default()
    };
    let r = run_experiment(&spec, &|_| {}).unwrap();
    // The HPA ran as written: not listed.
    assert!(r.resolved.iter().all(|x| x.autoscaler != "hpa"));
    for app in ["online-boutique", "event-driven"] {
        let a = graphscale_sim::topology::builtin(app).unwrap();
        let find = |name: &str| {
            r.resolved
                .iter()
                .find(|x| x.app == app && x.autoscaler == name)
                .unwrap_or_else(|| panic!("{app}/{name} not recorded"))
        };
        // `hpa-tuned` with the knobs tuned for the app, not the catalogue's hand-set entry.
        let tuned = find("hpa-tuned");
        let named = AutoscalerSpec::named("hpa-tuned").unwrap();
        assert_ne!(tuned.spec, named);
        assert_eq!(tuned.spec, resolve_autoscaler(&named, &a));
        // `graphscale` with the app's SLO.
        match &find("graphscale").spec {
            AutoscalerSpec::Predictive { config, .. } => assert_eq!(
                config.planner.slo.as_ref().and_then(|s| s.slo_ms),
                Some(a.slo_ms)
            ),
            other => panic!("{other:?}"),
        }
    }
    // It survives results.json.
    let back: ExperimentResult = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back.resolved, r.resolved);
}

#[test]
fn node_core_hours_follow_the_cluster_autoscaler() {
    use graphscale_eval::run_one;
    // The chain on fixed nodes: the nodes' CPU times the measured hours.
    let mut app = chain();
    app.nodes = vec![graphscale_sim::spec::NodeSpec {
        name: "n0".into(),
        cpu_millicores: 4000.0,
        memory_mib: 8192.0,
    }];
    // 50 rps, then 8x from 60 s on: the HPA scales `front` to several pods.
    let scenario = ScenarioSpec {
        name: "step".into(),
        workload: Some(WorkloadSpec::Rush {
            base_rps: 50.0,
            factor: 8.0,
            start_s: 60.0,
            ramp_s: 10.0,
            hold_s: 600.0,
            decay_s: 60.0,
        }),
        duration_s: Some(600),
        peak_share: None,
    };
    let spec = ExperimentSpec {
        scenarios: vec![scenario.clone()],
        warmup_s: Some(0),
        ..ExperimentSpec::default()
    };
    let hpa = AutoscalerSpec::named("hpa").unwrap();
    let fixed = run_one(&spec, &app, &scenario, &hpa, 1, false).unwrap();
    assert!((fixed.metrics.node_core_hours - 4.0 * 600.0 / 3600.0).abs() < 1e-9);
    // With a cluster autoscaler on nodes of three pods the bill follows the pods.
    app.nodes.clear();
    app.cluster_autoscaler = Some(graphscale_sim::spec::ClusterAutoscalerSpec {
        node_cpu_millicores: 300.0,
        node_memory_mib: 8192.0,
        max_nodes: 20,
        node_ready_s: 60.0,
        scan_interval_s: 10.0,
        scale_down_unneeded_s: 600.0,
        scale_down_utilization: 0.5,
        scale_down_delay_after_add_s: 600.0,
    });
    let ca = run_one(&spec, &app, &scenario, &hpa, 1, false).unwrap();
    let hours = 600.0 / 3600.0;
    // One node to start with; more once the pods pend.
    assert!(ca.metrics.node_core_hours > 0.3 * hours, "{:?}", ca.metrics);
    assert!(ca.metrics.node_core_hours >= ca.metrics.cpu_core_hours);
    assert!(ca.metrics.node_core_hours <= 20.0 * 0.3 * hours);
    assert!(ca.metrics.max_pending_pods > 0.0);
}

#[test]
fn cpu_requests_follow_the_plan_with_limits_and_replica_plan_kept() {
    let app = graphscale_sim::topology::builtin("online-boutique").unwrap();
    let scenario = ScenarioSpec::named("rush").with_duration(1800);
    let spec = ExperimentSpec {
        scenarios: vec![scenario.clone()],
        ..ExperimentSpec::default()
    };
    // `graphscale` with and without its CPU requests sized, memory left as it is in both.
    let run = |sized: bool| {
        let mut a = AutoscalerSpec::named("graphscale")
            .unwrap()
            .with_default_slo(app.slo_ms);
        let AutoscalerSpec::Predictive { config, .. } = &mut a else {
            panic!("graphscale is predictive")
        };
        assert!(config.cpu_requests.is_some());
        config.vertical.update = graphscale_plan::vertical::VerticalUpdate::Off;
        if !sized {
            config.cpu_requests = None;
        }
        let mut recs = Vec::new();
        let r =
            run_one_logged(&spec, &app, &scenario, &a, 1, false, &mut |d| recs.push(d)).unwrap();
        (r, recs)
    };
    let (plain, plain_recs) = run(false);
    let (sized, recs) = run(true);
    assert!(plain_recs
        .iter()
        .flat_map(|r| &r.decisions)
        .all(|d| d.resources.is_none()));
    let (mut down, mut up) = (0, 0);
    for (k, r) in recs.iter().enumerate() {
        for d in &r.decisions {
            let Some(to) = d.resources else { continue };
            let why = d
                .reasons
                .iter()
                .find(|x| x.rule == "vertical.cpu_request")
                .unwrap_or_else(|| panic!("a resize without its reason: {d:?}"));
            let before = &r.snapshot.workload(&d.workload).unwrap().pods[0];
            let reference = app
                .services
                .iter()
                .find(|s| s.name == d.workload)
                .unwrap()
                .requests
                .cpu_millicores;
            // The request moves within [25 m, the template's], nothing else does.
            assert!(
                (25.0..=reference).contains(&to.requests.cpu_millicores),
                "{to:?}"
            );
            assert_eq!(to.limits, before.limits, "{}", why.detail);
            assert_eq!(to.requests.memory_mib, before.requests.memory_mib);
            if to.requests.cpu_millicores < before.requests.cpu_millicores {
                down += 1;
            } else {
                up += 1;
            }
            if let Some(next) = recs.get(k + 1) {
                let w = next.snapshot.workload(&d.workload).unwrap();
                assert!(w.pods.iter().all(|p| p.requests == to.requests), "{d:?}");
            }
        }
    }
    assert!(down > 0 && up > 0, "{down} decreases, {up} increases");
    // The pods are planned to use 80 % of a request sized to them, not a fixed template's.
    assert!(
        sized.metrics.cpu_core_hours < 0.8 * plain.metrics.cpu_core_hours,
        "{} vs {}",
        sized.metrics.cpu_core_hours,
        plain.metrics.cpu_core_hours
    );
    // Replicas are planned on the reference request and a replica serves up to its (kept) limit,
    // so on this cluster, whose nodes never fill, the replica plan and the SLO are the same.
    let replicas = |recs: &[DecisionRecord]| -> Vec<Vec<u32>> {
        recs.iter()
            .map(|r| r.decisions.iter().map(|d| d.replicas).collect())
            .collect()
    };
    assert_eq!(replicas(&recs), replicas(&plain_recs));
    assert_eq!(
        sized.metrics.slo_violation_minutes,
        plain.metrics.slo_violation_minutes
    );
}

#[test]
fn memory_aware_holds_quicken_only_memory_heavy_services() {
    // `graphscale`, and the same with memory-aware holds on 4 GiB-per-core nodes.
    let run = |app_name: &str, aware: bool| {
        let app = graphscale_sim::topology::builtin(app_name).unwrap();
        let scenario = ScenarioSpec::named("fluctuating").with_duration(2400);
        let spec = ExperimentSpec {
            scenarios: vec![scenario.clone()],
            ..ExperimentSpec::default()
        };
        let mut a = AutoscalerSpec::named("graphscale")
            .unwrap()
            .with_default_slo(app.slo_ms);
        let AutoscalerSpec::Predictive { config, .. } = &mut a else {
            panic!("graphscale is predictive")
        };
        if aware {
            config.churn.as_mut().unwrap().node_gib_per_core = Some(4.0);
        }
        let mut recs = Vec::new();
        run_one_logged(&spec, &app, &scenario, &a, 1, false, &mut |d| recs.push(d)).unwrap();
        let replicas: Vec<Vec<u32>> = recs
            .iter()
            .map(|r| r.decisions.iter().map(|d| d.replicas).collect())
            .collect();
        let held_for_steps = recs
            .iter()
            .flat_map(|r| &r.decisions)
            .flat_map(|d| &d.reasons)
            .filter(|x| x.rule == "plan.hold_down" && x.detail.contains("removes at least"))
            .count();
        (replicas, held_for_steps)
    };
    // Online Boutique's pods request 32-256 MiB: a held one costs about its least CPU request,
    // so the long holds stay and the plan is the same.
    assert_eq!(run("online-boutique", true), run("online-boutique", false));
    // Train Ticket's request about 550 MiB, 0.13 cores of such a node against a full pod's 0.2:
    // the quick holds, so no scale-down waits for a larger step and the plan changes.
    let (long, long_steps) = run("train-ticket", false);
    let (quick, quick_steps) = run("train-ticket", true);
    assert_ne!(long, quick);
    assert_eq!(quick_steps, 0);
    assert!(long_steps > 0, "the long holds waited for a larger step");
}
