//! Simulator invariants (property tests) and behaviour checks.

use graphscale_core::{
    Actuator, Clock, MetricSource, PodResources, Resources, ScalingDecision, TopologySource,
};
use graphscale_sim::engine::{SimConfig, Simulator};
use graphscale_sim::spec::{AppSpec, NodeSpec};
use graphscale_sim::topology;
use graphscale_sim::workload::WorkloadSpec;
use proptest::prelude::*;

fn sim(app: &str, scenario: &str, secs: u64, seed: u64) -> Simulator {
    let app = topology::builtin(app).unwrap();
    let rates = WorkloadSpec::named(scenario, app.nominal_peak_rps)
        .unwrap()
        .rates(secs, seed)
        .unwrap();
    Simulator::new(
        app,
        SimConfig {
            seed,
            ..SimConfig::default()
        },
        rates,
    )
    .unwrap()
}

fn decide_all(s: &Simulator, n: u32) -> Vec<ScalingDecision> {
    s.app()
        .services
        .iter()
        .map(|x| ScalingDecision {
            workload: x.name.clone(),
            replicas: n,
            reasons: vec![],
            resources: None,
        })
        .collect()
}

/// Checks conservation for every service and queue.
fn check_conservation(s: &Simulator) {
    for (i, st) in s.stats().iter().enumerate() {
        let t = s.totals(i);
        assert_eq!(
            t.arrived,
            t.served + t.failed + st.waiting,
            "service {i}: arrived = served + failed + waiting"
        );
        assert!(st.ready <= st.bound && st.bound <= st.spec_replicas.max(st.bound));
        assert!(st.latency_ms.iter().all(|x| x.is_finite() && *x >= 0.0));
        assert!(st.e2e_success >= 0.0 && st.e2e_success <= 1.0 + 1e-12);
    }
    for (name, _, backlog, produced, consumed) in s.backlogs() {
        assert_eq!(
            produced,
            consumed + backlog,
            "{name}: produced = consumed + backlog"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Requests are conserved, replicas stay within bounds, whatever the scaling decisions.
    #[test]
    fn conservation_and_bounds_under_random_scaling(
        app in prop::sample::select(vec!["online-boutique", "event-driven", "random:40"]),
        scenario in prop::sample::select(vec!["rush", "fluctuating", "peak"]),
        seed in 0u64..1000,
        moves in prop::collection::vec((0usize..64, 0u32..80), 1..12),
    ) {
        let mut s = sim(app, scenario, 900, seed);
        let names: Vec<String> = s.app().services.iter().map(|x| x.name.clone()).collect();
        for (k, (svc, n)) in moves.iter().enumerate() {
            for _ in 0..(60 + k * 7) {
                s.step();
            }
            let d = ScalingDecision { workload: names[svc % names.len()].clone(), replicas: *n, reasons: vec![], resources: None };
            s.apply(&[d]).unwrap();
            check_conservation(&s);
            for (i, st) in s.stats().iter().enumerate() {
                prop_assert!(st.spec_replicas <= s.app().services[i].max_replicas);
            }
        }
    }

    /// The same seed gives the same run; observation does not perturb it.
    #[test]
    fn same_seed_same_result(seed in 0u64..10_000) {
        let run = |observe: bool| {
            let mut s = sim("online-boutique", "rush", 1200, seed);
            for t in 0..1200 {
                s.step();
                if observe && t % 15 == 7 {
                    let _ = s.observe().unwrap();
                }
            }
            (0..s.stats().len()).map(|i| s.totals(i)).collect::<Vec<_>>()
        };
        prop_assert_eq!(run(false), run(true));
    }
}

#[test]
fn different_seeds_differ() {
    let total = |seed| {
        let mut s = sim("online-boutique", "peak", 300, seed);
        for _ in 0..300 {
            s.step();
        }
        // The entry's arrivals are Poisson draws; downstream counts may be capacity-bound.
        let i = s
            .app()
            .services
            .iter()
            .position(|x| x.name == "frontend")
            .unwrap();
        s.totals(i).arrived
    };
    assert_ne!(total(1), total(2));
}

#[test]
fn new_pods_become_ready_after_startup_and_are_missing_a_cpu_sample_at_first() {
    let mut s = sim("online-boutique", "off-peak", 600, 3);
    for _ in 0..30 {
        s.step();
    }
    s.apply(&[ScalingDecision {
        workload: "frontend".into(),
        replicas: 3,
        reasons: vec![],
        resources: None,
    }])
    .unwrap();
    let i = s
        .app()
        .services
        .iter()
        .position(|x| x.name == "frontend")
        .unwrap();
    assert_eq!(s.stats()[i].ready, 1);
    // The frontend's start-up is 10 s +/- 20 % (its manifest): not ready at 7 s, ready by 13 s.
    for _ in 0..7 {
        s.step();
    }
    assert_eq!(s.stats()[i].ready, 1);
    let snap = s.observe().unwrap();
    let w = snap.workload("frontend").unwrap();
    assert_eq!(w.pods.len(), 3);
    assert_eq!(w.pods.iter().filter(|p| p.ready == Some(false)).count(), 2);
    for _ in 0..6 {
        s.step();
    }
    assert_eq!(s.stats()[i].ready, 3);
    let snap = s.observe().unwrap();
    let w = snap.workload("frontend").unwrap();
    assert!(w.pods.iter().all(|p| p.ready == Some(true)));
    assert!(w.pods.iter().all(|p| p.start_time.is_some()));
    // runs_on edges appear in the topology.
    let g = s.topology().unwrap();
    assert!(g
        .edges
        .iter()
        .any(|e| e.src == "frontend" && e.relation == graphscale_core::Relation::RunsOn));
}

#[test]
fn pods_that_do_not_fit_stay_pending() {
    let mut app = topology::builtin("event-driven").unwrap();
    app.nodes = vec![NodeSpec {
        name: "tiny".into(),
        cpu_millicores: 2000.0,
        memory_mib: 8192.0,
    }];
    let rates = vec![10.0; 300];
    let mut s = Simulator::new(app, SimConfig::default(), rates).unwrap();
    // 9 services x 200 m = 1800 m already; 5 more gateway pods cannot all fit.
    s.apply(&[ScalingDecision {
        workload: "gateway".into(),
        replicas: 6,
        reasons: vec![],
        resources: None,
    }])
    .unwrap();
    for _ in 0..60 {
        s.step();
    }
    let st = &s.stats()[0];
    assert_eq!(st.bound, 2, "one more pod fits in the remaining 200 m");
    assert_eq!(st.pending, 4);
    // Scaling another service down frees room; the pending pods get bound.
    s.apply(&decide_all(&s, 1)).unwrap();
    s.apply(&[ScalingDecision {
        workload: "catalog".into(),
        replicas: 1,
        reasons: vec![],
        resources: None,
    }])
    .unwrap();
    for _ in 0..20 {
        s.step();
    }
    assert_eq!(s.stats()[0].pending, 0);
}

#[test]
fn overload_queues_then_times_out_and_latency_saturates() {
    let mut s = sim("online-boutique", "peak", 300, 5);
    // One replica everywhere at peak: the frontend saturates.
    for _ in 0..120 {
        s.step();
    }
    check_conservation(&s);
    let i = s
        .app()
        .services
        .iter()
        .position(|x| x.name == "productcatalogservice")
        .unwrap();
    let st = &s.stats()[i];
    assert!(
        st.offered_rps > st.capacity_rps,
        "{} vs {}",
        st.offered_rps,
        st.capacity_rps
    );
    assert!(st.failed > 0, "timeouts count as errors");
    assert!(st.latency_ms[1] > 1000.0, "p95 {}", st.latency_ms[1]);
    // With enough replicas the same load is served.
    s.apply(&decide_all(&s, 12)).unwrap();
    for _ in 0..90 {
        s.step();
    }
    let st = &s.stats()[i];
    assert_eq!(st.failed, 0);
    assert!(st.latency_ms[1] < 100.0, "p95 {}", st.latency_ms[1]);
}

#[test]
fn memory_over_the_limit_kills_a_replica() {
    let mut app = topology::builtin("event-driven").unwrap();
    // About 1.2 requests in service at 300 rps: 64 MiB + 1.2 x 100 MiB > the 128 MiB limit.
    app.services[0].memory_per_inflight_mib = 100.0;
    app.services[0].limits = Resources::new(500.0, 128.0);
    app.services[0].requests = Resources::new(200.0, 128.0);
    let rates = vec![300.0; 200];
    let mut s = Simulator::new(app, SimConfig::default(), rates).unwrap();
    let mut kills = 0;
    for _ in 0..60 {
        s.step();
        kills += s.stats()[0].oom_kills;
        check_conservation(&s);
    }
    assert!(kills > 0);
}

#[test]
fn queues_and_topics_fan_out_and_drain() {
    let mut s = sim("event-driven", "peak", 600, 9);
    for _ in 0..600 {
        s.step();
    }
    check_conservation(&s);
    let b = s.backlogs();
    let sub: Vec<_> = b
        .iter()
        .filter(|x| x.0.starts_with("order-placed/"))
        .collect();
    assert_eq!(sub.len(), 3, "one subscription per subscriber");
    assert!(
        sub.iter().all(|x| x.3 == sub[0].3),
        "every subscriber gets every message"
    );
    assert!(sub[0].3 > 0);
    let q = b.iter().find(|x| x.0 == "shipment-jobs").unwrap();
    assert!(q.4 > 0, "the worker consumes");
}

#[test]
fn scrapes_every_15_s_and_rates_match_arrivals() {
    let mut s = sim("online-boutique", "off-peak", 400, 2);
    for _ in 0..300 {
        s.step();
    }
    assert_eq!(s.now().0, 300_000);
    let snap = s.observe().unwrap();
    let w = snap.workload("frontend").unwrap();
    let rate = w.rps.unwrap();
    let expected = s.app().nominal_peak_rps * 0.2;
    assert!(
        (rate - expected).abs() / expected < 0.15,
        "{rate} vs {expected}"
    );
    let cpu = w.pods[0].cpu.unwrap();
    assert_eq!(cpu.window.0, 15_000);
    assert_eq!(cpu.timestamp.0, 300_000);
}

#[test]
fn invalid_specs_are_rejected_with_the_field() {
    let mut app: AppSpec = topology::builtin("event-driven").unwrap();
    app.services[1].requests.cpu_millicores = 0.0;
    let e = app.validate().unwrap_err().to_string();
    assert!(e.contains("services[catalog].requests"), "{e}");
    let mut app = topology::builtin("event-driven").unwrap();
    app.slo_ms = 0.0;
    assert!(app.validate().unwrap_err().to_string().contains("slo_ms"));
    let mut app = topology::builtin("event-driven").unwrap();
    app.services[2].initial_replicas = 60;
    assert!(app
        .validate()
        .unwrap_err()
        .to_string()
        .contains("initial_replicas"));
    // 2e9 replicas would all be simulated: refused at the bound, naming the field.
    let mut app = topology::builtin("event-driven").unwrap();
    app.services[2].max_replicas = 2_000_000_000;
    app.services[2].initial_replicas = 2_000_000_000;
    let e = app.validate().unwrap_err().to_string();
    assert!(
        e.contains("max_replicas") && e.contains("more than 10000"),
        "{e}"
    );
    let e = Simulator::new(
        topology::builtin("ob").unwrap(),
        SimConfig {
            step_ms: 300,
            ..SimConfig::default()
        },
        vec![1.0],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("step_ms"), "{e}");
    let e = Simulator::new(
        topology::builtin("ob").unwrap(),
        SimConfig::default(),
        vec![f64::NAN],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("rates[0]"), "{e}");
    let mut s = sim("ob", "peak", 10, 1);
    let e = s
        .apply(&[ScalingDecision {
            workload: "nope".into(),
            replicas: 1,
            reasons: vec![],
            resources: None,
        }])
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown workload `nope`"), "{e}");
    let e = AppSpec::from_json("{\"name\": 1}", "bad.json")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("bad.json:") && e.contains("line 1"), "{e}");
}

#[test]
fn replays_any_csv_and_the_full_worldcup_trace() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/worldcup98/worldcup98_requests_per_minute.csv");
    if !path.exists() {
        eprintln!("skipping: {} not present", path.display());
        return;
    }
    let w = WorkloadSpec::Replay {
        path: Some(path.display().to_string()),
        time_col: Some("unix_ts".into()),
        value_col: Some("requests".into()),
        peak_rps: 1000.0,
        speedup: Some(60.0),
    };
    // 87 days at 60x: one recorded minute per simulated second.
    let d = w.natural_duration_s().unwrap();
    assert!((125_000..126_000).contains(&d), "{d}");
    let r = w.rates(d, 0).unwrap();
    let max = r.iter().cloned().fold(0.0, f64::max);
    assert!((max - 1000.0).abs() < 1e-6);
}

#[test]
fn calibrated_topologies_match_the_data() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if !data.join("microservices-ob-tt").exists() {
        eprintln!("skipping: {} not present", data.display());
        return;
    }
    for (file, derived) in graphscale_sim::calibrate::all(&data).unwrap() {
        let bundled = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../data/topologies")
                .join(&file),
        )
        .unwrap();
        let bundled = AppSpec::from_json(&bundled, &file).unwrap();
        assert_eq!(
            bundled, derived,
            "{file} is stale: run `graphscale calibrate`"
        );
    }
    let ob = topology::builtin("online-boutique").unwrap();
    assert_eq!(ob.services.len(), 10);
    let pc = ob
        .edges
        .iter()
        .find(|e| e.src == "frontend" && e.dst == "productcatalogservice")
        .unwrap();
    // 591,734 calls from 134,612 frontend requests in the trace totals: about 4.4 per request.
    assert!((pc.ratio - 4.4).abs() < 0.2, "{}", pc.ratio);
}

#[test]
fn resources_are_resized_in_place_deferred_when_they_do_not_fit_and_refused_when_bad() {
    let mut app = topology::builtin("event-driven").unwrap();
    app.nodes = vec![NodeSpec {
        name: "only".into(),
        cpu_millicores: 4000.0,
        memory_mib: 8192.0,
    }];
    let rates = vec![50.0; 600];
    let mut s = Simulator::new(app, SimConfig::default(), rates).unwrap();
    let i = 0; // gateway
    let gw = s.app().services[i].clone();
    let before = s.resources("gateway").unwrap();
    assert_eq!(before.requests, gw.requests);
    for _ in 0..30 {
        s.step();
    }
    let cap = s.stats()[i].capacity_rps;
    let resize = |cpu_req: f64, cpu_lim: f64, mem: f64| ScalingDecision {
        workload: "gateway".into(),
        replicas: 1,
        reasons: vec![],
        resources: Some(PodResources {
            requests: Resources::new(cpu_req, mem),
            limits: Resources::new(cpu_lim, 2.0 * mem),
        }),
    };
    // Halve the CPU limit and double memory: the running pod and the template change at once.
    let half = gw.limits.cpu_millicores / 2.0;
    s.apply(&[resize(gw.requests.cpu_millicores, half, 512.0)])
        .unwrap();
    s.step();
    let now = s.resources("gateway").unwrap();
    assert_eq!(now.limits.cpu_millicores, half);
    assert_eq!(now.requests.memory_mib, 512.0);
    assert!(
        (s.stats()[i].capacity_rps - cap / 2.0).abs() < 1e-9,
        "the CPU limit caps a replica's rate"
    );
    assert_eq!(s.stats()[i].requested.memory_mib, 512.0);
    let snap = s.observe().unwrap();
    let w = snap.workload("gateway").unwrap();
    assert!(w.pods.iter().all(|p| p.requests.memory_mib == 512.0));
    // A new pod gets the new template.
    let mut two = resize(gw.requests.cpu_millicores, half, 512.0);
    two.replicas = 2;
    s.apply(&[two]).unwrap();
    for _ in 0..60 {
        s.step();
    }
    assert_eq!(s.stats()[i].bound, 2);
    assert_eq!(s.stats()[i].requested.memory_mib, 1024.0);
    // 9 services on 4,000 m: a 3,000 m request per gateway pod does not fit, so nothing changes.
    let mut big = resize(3000.0, 3000.0, 512.0);
    big.replicas = 2;
    s.apply(&[big]).unwrap();
    assert_eq!(
        s.resources("gateway").unwrap().requests.cpu_millicores,
        200.0
    );
    // Bad resources are refused with the workload and the field, and nothing changes.
    for bad in [
        resize(f64::NAN, 500.0, 256.0),
        resize(300.0, 200.0, 256.0),
        resize(200.0, 500.0, -1.0),
    ] {
        let e = s.apply(&[bad]).unwrap_err().to_string();
        assert!(e.contains("`gateway`") && e.contains("resources"), "{e}");
    }
    assert_eq!(s.resources("gateway").unwrap().requests.memory_mib, 512.0);
    assert_eq!(s.stats()[i].spec_replicas, 2);
}

#[test]
fn the_topology_version_changes_when_and_only_when_runs_on_does() {
    // One node: every pod of a service lands where its first one is, so scaling never
    // changes the topology. Three nodes: pods spread, and the topology changes now and then.
    for (nodes, expect_one) in [(1, true), (3, false)] {
        let versions = topology_versions(nodes);
        assert_eq!(
            versions == 1,
            expect_one,
            "{nodes} nodes: {versions} versions"
        );
    }
}

/// Scales one service up and down on `nodes` nodes, checks that one version always shows one
/// topology, and returns how many versions it saw.
fn topology_versions(nodes: usize) -> usize {
    let runs_on = |s: &Simulator| {
        let mut e: Vec<(String, String)> = s
            .topology()
            .unwrap()
            .edges
            .into_iter()
            .filter(|e| e.relation == graphscale_core::Relation::RunsOn)
            .map(|e| (e.src, e.dst))
            .collect();
        e.sort();
        e
    };
    let mut app = topology::builtin("event-driven").unwrap();
    app.nodes = (0..nodes)
        .map(|i| NodeSpec {
            name: format!("n{i}"),
            cpu_millicores: 12000.0 / nodes as f64,
            memory_mib: 49152.0 / nodes as f64,
        })
        .collect();
    let mut s = Simulator::new(app, SimConfig::default(), vec![50.0; 900]).unwrap();
    let mut seen: std::collections::HashMap<u64, Vec<(String, String)>> = Default::default();
    let plan = [(5, 4), (120, 9), (300, 2), (420, 1), (600, 6), (750, 1)];
    for t in 0..900 {
        if let Some(&(_, n)) = plan.iter().find(|(at, _)| *at == t) {
            s.apply(&[ScalingDecision {
                workload: "gateway".into(),
                replicas: n,
                reasons: vec![],
                resources: None,
            }])
            .unwrap();
        }
        s.step();
        let v = s.version().unwrap();
        let now = runs_on(&s);
        let before = seen.entry(v).or_insert_with(|| now.clone());
        assert_eq!(before, &now, "{nodes} nodes: version {v} at {t} s");
    }
    seen.len()
}

#[test]
fn a_starting_pod_burns_its_request_and_a_resize_does_not_reprice_what_it_burnt() {
    // Train Ticket's gateway starts in 160 s +/- 20 %: resized 60 s into its start-up.
    let mut s = sim("train-ticket", "off-peak", 900, 1);
    for _ in 0..30 {
        s.step();
    }
    let gw = s.resources("ts-gateway-service").unwrap();
    let scale = |resources| ScalingDecision {
        workload: "ts-gateway-service".into(),
        replicas: 2,
        reasons: vec![],
        resources,
    };
    s.apply(&[scale(None)]).unwrap();
    let low = PodResources {
        requests: Resources::new(50.0, gw.requests.memory_mib),
        limits: gw.limits,
    };
    let mut seen = Vec::new();
    for t in 0..120 {
        if t == 60 {
            s.apply(&[scale(Some(low))]).unwrap();
        }
        s.step();
        let snap = s.observe().unwrap();
        let w = snap.workload("ts-gateway-service").unwrap();
        for p in w.pods.iter().filter(|p| p.ready == Some(false)) {
            if let Some(c) = p.cpu {
                seen.push((t, c.millicores));
            }
        }
    }
    assert!(!seen.is_empty());
    // Every sample of the starting pod is between the two requests it burnt: before the resize
    // its old request, after it the new one, and a window across it a mix (the whole start-up
    // repriced at once would make that window's rate negative).
    let old = gw.requests.cpu_millicores;
    for &(t, c) in &seen {
        assert!((50.0 - 1e-6..=old + 1e-6).contains(&c), "{c} m at {t} s");
    }
    assert!(seen.iter().any(|&(t, c)| t < 60 && (c - old).abs() < 1e-6));
    assert!(seen.iter().any(|&(t, c)| t > 90 && (c - 50.0).abs() < 1e-6));
}
