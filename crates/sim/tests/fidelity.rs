//! The simulator's fidelity rules of issue #17: node CPU contention, concurrent fan-out, the
//! cluster autoscaler's delay, and the start-up times read from the apps' manifests.

use graphscale_core::{Actuator, Edge, Relation, Resources, ScalingDecision};
use graphscale_sim::engine::{SimConfig, Simulator};
use graphscale_sim::spec::{AppSpec, ClusterAutoscalerSpec, EntrySpec, NodeSpec, ServiceSpec};
use graphscale_sim::topology;

fn service(name: &str, cpu_ms: f64, request_m: f64, limit_m: f64) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        cpu_ms_per_request: cpu_ms,
        base_latency_ms: 2.0,
        memory_base_mib: 32.0,
        memory_per_inflight_mib: 0.0,
        idle_cpu_millicores: 0.0,
        requests: Resources::new(request_m, 64.0),
        limits: Resources::new(limit_m, 128.0),
        startup_s: 0.0,
        initial_replicas: 1,
        max_replicas: 50,
        timeout_ms: 10_000.0,
        parallel_calls: false,
    }
}

fn app(services: Vec<ServiceSpec>, edges: Vec<Edge>, entries: &[&str]) -> AppSpec {
    AppSpec {
        name: "fidelity".into(),
        description: String::new(),
        slo_ms: 1000.0,
        nominal_peak_rps: 100.0,
        services,
        queues: vec![],
        topics: vec![],
        edges,
        entries: entries
            .iter()
            .map(|s| EntrySpec {
                service: s.to_string(),
                share: 1.0,
            })
            .collect(),
        nodes: vec![NodeSpec {
            name: "n0".into(),
            cpu_millicores: 1000.0,
            memory_mib: 4096.0,
        }],
        cluster_autoscaler: None,
    }
}

fn run(app: AppSpec, rate: f64, secs: usize, contention: bool) -> Simulator {
    let mut sim = Simulator::new(
        app,
        SimConfig {
            seed: 3,
            startup_jitter: 0.0,
            node_contention: contention,
            ..SimConfig::default()
        },
        vec![rate; secs + 1],
    )
    .unwrap();
    for _ in 0..secs {
        sim.step();
    }
    sim
}

/// A simulator of `app` with exact start-up times (no jitter) and external load `rates`.
fn steady(app: AppSpec, rates: Vec<f64>) -> Simulator {
    Simulator::new(
        app,
        SimConfig {
            startup_jitter: 0.0,
            ..SimConfig::default()
        },
        rates,
    )
    .unwrap()
}

/// Served requests per second over the last `secs` seconds of service `i`, from the totals.
fn served_rate(sim: &Simulator, i: usize, secs: f64) -> f64 {
    sim.totals(i).served as f64 / secs
}

#[test]
fn pods_on_a_full_node_share_its_cpu_by_request() {
    // Two overloaded services, each one pod with limit 1000 m, on a 1000 m node: alone each
    // could use the whole node; together they get 250 m and 750 m (requests 100 : 300).
    let two = app(
        vec![
            service("a", 10.0, 100.0, 1000.0),
            service("b", 10.0, 300.0, 1000.0),
        ],
        vec![],
        &["a", "b"],
    );
    let secs = 120;
    let with = run(two.clone(), 400.0, secs, true);
    let without = run(two, 400.0, secs, false);
    // Without contention each pod serves at its limit: 1000 m / 10 ms = 100 rps.
    for i in 0..2 {
        let r = served_rate(&without, i, secs as f64);
        assert!((r - 100.0).abs() < 3.0, "no contention: service {i} {r}");
    }
    // With it: 25 and 75 rps (after the first step, which has no demand to go on).
    let a = served_rate(&with, 0, secs as f64);
    let b = served_rate(&with, 1, secs as f64);
    assert!((a - 25.0).abs() < 3.0, "a gets its 1/4 share: {a}");
    assert!((b - 75.0).abs() < 3.0, "b gets its 3/4 share: {b}");
    assert!(with.stats()[0].capacity_rps < 26.0);
}

#[test]
fn a_quiet_neighbour_leaves_its_cpu_to_a_busy_one() {
    // `a` wants only 10 rps (100 m); `b`, overloaded, gets the other 900 m.
    let mut quiet = app(
        vec![
            service("a", 10.0, 300.0, 1000.0),
            service("b", 10.0, 300.0, 1000.0),
        ],
        vec![],
        &["a", "b"],
    );
    quiet.entries[0].share = 10.0;
    quiet.entries[1].share = 200.0;
    // 210 rps in all: a gets 10, b 200 (it can serve at most 90).
    let secs = 200;
    let sim = run(quiet, 210.0, secs, true);
    let a = served_rate(&sim, 0, secs as f64);
    let b = served_rate(&sim, 1, secs as f64);
    assert!((a - 10.0).abs() < 1.5, "a is served in full: {a}");
    assert!((b - 90.0).abs() < 4.0, "b takes what a leaves: {b}");
}

#[test]
fn a_node_with_room_changes_nothing() {
    // The limits fit in the node: the runs are identical with and without contention.
    let roomy = app(
        vec![
            service("a", 10.0, 100.0, 400.0),
            service("b", 10.0, 100.0, 400.0),
        ],
        vec![],
        &["a", "b"],
    );
    let x = run(roomy.clone(), 100.0, 60, true);
    let y = run(roomy, 100.0, 60, false);
    for i in 0..2 {
        assert_eq!(x.totals(i), y.totals(i));
        assert_eq!(x.stats()[i].latency_ms, y.stats()[i].latency_ms);
    }
}

fn fan_out(parallel: bool) -> Simulator {
    let mut root = service("root", 1.0, 100.0, 1000.0);
    root.parallel_calls = parallel;
    let mut slow = service("slow", 1.0, 100.0, 1000.0);
    slow.base_latency_ms = 80.0;
    let mut fast = service("fast", 1.0, 100.0, 1000.0);
    fast.base_latency_ms = 30.0;
    let mut a = app(
        vec![root, slow, fast],
        vec![
            Edge::new("root", "slow", Relation::Calls, 1.0),
            Edge::new("root", "fast", Relation::Calls, 1.0),
        ],
        &["root"],
    );
    a.nodes[0].cpu_millicores = 8000.0;
    run(a, 20.0, 30, true)
}

#[test]
fn concurrent_calls_wait_for_the_slowest_callee_only() {
    let seq = fan_out(false);
    let par = fan_out(true);
    let own = par.stats()[0].latency_ms[1];
    let slow = par.stats()[1].e2e_ms[1];
    let fast = par.stats()[2].e2e_ms[1];
    assert!(slow > fast);
    let p = par.stats()[0].e2e_ms[1];
    assert!(
        (p - (own + slow)).abs() < 1e-9,
        "parallel: own + slowest, got {p}"
    );
    let s = seq.stats()[0].e2e_ms[1];
    let (own_s, slow_s, fast_s) = (
        seq.stats()[0].latency_ms[1],
        seq.stats()[1].e2e_ms[1],
        seq.stats()[2].e2e_ms[1],
    );
    assert!(
        (s - (own_s + slow_s + fast_s)).abs() < 1e-9,
        "sequential: the sum"
    );
    assert!(p < s - 25.0);
}

fn ca_app(node_ready_s: f64, max_nodes: u32) -> AppSpec {
    let mut a = app(vec![service("web", 10.0, 500.0, 500.0)], vec![], &["web"]);
    a.nodes.clear();
    a.cluster_autoscaler = Some(ClusterAutoscalerSpec {
        node_cpu_millicores: 1000.0,
        node_memory_mib: 4096.0,
        max_nodes,
        node_ready_s,
        scan_interval_s: 10.0,
        scale_down_unneeded_s: 120.0,
        scale_down_utilization: 0.5,
        scale_down_delay_after_add_s: 0.0,
    });
    a
}

fn scale(sim: &mut Simulator, n: u32) {
    sim.apply(&[ScalingDecision {
        workload: "web".into(),
        replicas: n,
        reasons: vec![],
        resources: None,
    }])
    .unwrap();
}

#[test]
fn pods_that_fit_nowhere_wait_for_the_cluster_autoscaler_and_its_nodes_go_when_empty() {
    let mut sim = steady(ca_app(60.0, 4), vec![10.0; 1000]);
    // The smallest cluster for one 500 m pod: one 1000 m node.
    assert_eq!(sim.node_count(), 1);
    sim.step();
    scale(&mut sim, 6);
    // Two pods fit on the first node; four need two more nodes, asked for at the next scan
    // (11 s) and Ready 60 s later.
    let mut bound_at = None;
    for t in 2..=120u64 {
        sim.step();
        let st = &sim.stats()[0];
        if t < 70 {
            assert_eq!(st.bound, 2, "at {t} s only the first node holds pods");
            if t >= 11 {
                assert_eq!(sim.nodes_provisioning(), 2, "two nodes asked for at {t} s");
            }
        }
        if st.bound == 6 && bound_at.is_none() {
            bound_at = Some(t);
        }
    }
    let t = bound_at.expect("every pod bound once the new nodes are Ready");
    assert!((70..=73).contains(&t), "bound at {t} s");
    assert_eq!(sim.node_count(), 3);
    assert_eq!(sim.node_cpu_millicores(), 3000.0);
    // Down to one pod: the added nodes empty out and go after 120 s (plus a scan).
    scale(&mut sim, 1);
    for _ in 0..100 {
        sim.step();
    }
    assert_eq!(sim.node_count(), 3, "still within the unneeded time");
    for _ in 0..40 {
        sim.step();
    }
    assert_eq!(sim.node_count(), 1, "empty added nodes removed");
    assert_eq!(sim.node_cpu_millicores(), 1000.0);
    assert_eq!(sim.stats()[0].bound, 1);
}

#[test]
fn the_cluster_autoscaler_stops_at_max_nodes() {
    let mut sim = steady(ca_app(5.0, 2), vec![10.0; 200]);
    sim.step();
    scale(&mut sim, 10);
    for _ in 0..100 {
        sim.step();
    }
    assert_eq!(sim.node_count(), 2);
    assert_eq!(sim.stats()[0].bound, 4);
    assert_eq!(sim.stats()[0].pending, 6);
}

#[test]
fn bad_cluster_autoscaler_fields_are_named() {
    for (edit, field) in [
        (
            (|c: &mut ClusterAutoscalerSpec| c.node_ready_s = f64::NAN)
                as fn(&mut ClusterAutoscalerSpec),
            "cluster_autoscaler.node_ready_s",
        ),
        (|c| c.node_ready_s = 1e9, "cluster_autoscaler.node_ready_s"),
        (|c| c.max_nodes = 0, "cluster_autoscaler.max_nodes"),
        (|c| c.max_nodes = 100_000, "cluster_autoscaler.max_nodes"),
        (
            |c| c.node_cpu_millicores = -1.0,
            "cluster_autoscaler.node_cpu_millicores",
        ),
        (
            |c| c.scan_interval_s = 0.0,
            "cluster_autoscaler.scan_interval_s",
        ),
        (
            |c| c.scale_down_utilization = 1.5,
            "cluster_autoscaler.scale_down_utilization",
        ),
    ] {
        let mut a = ca_app(60.0, 4);
        if let Some(c) = a.cluster_autoscaler.as_mut() {
            edit(c);
        }
        let err = a.validate().unwrap_err().to_string();
        assert!(err.contains(field), "{field}: {err}");
    }
    // Unknown fields and a missing node_ready_s are refused by the parser.
    let json = serde_json::to_string(&ca_app(60.0, 4)).unwrap();
    let typo = json.replace("\"scan_interval_s\"", "\"scan_interval\"");
    let err = AppSpec::from_json(&typo, "app.json")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("app.json") && err.contains("scan_interval"),
        "{err}"
    );
    let missing = json.replace("\"node_ready_s\":60.0,", "");
    let err = AppSpec::from_json(&missing, "app.json")
        .unwrap_err()
        .to_string();
    assert!(err.contains("node_ready_s"), "{err}");
}

#[test]
fn bundled_apps_start_as_their_manifests_say() {
    let ob = topology::builtin("online-boutique").unwrap();
    let start = |a: &AppSpec, n: &str| {
        a.services
            .iter()
            .find(|s| s.name == n)
            .map(|s| s.startup_s)
            .unwrap()
    };
    assert_eq!(start(&ob, "adservice"), 20.0);
    assert_eq!(start(&ob, "frontend"), 10.0);
    assert_eq!(start(&ob, "emailservice"), 5.0);
    let tt = topology::builtin("train-ticket").unwrap();
    assert!(tt.services.iter().all(|s| s.startup_s == 160.0));
}

#[test]
fn an_underused_node_is_drained_and_its_pods_start_again_elsewhere() {
    // Two 1000 m nodes with one 300 m pod each: both under half used, and either pod fits on
    // the other node. After the unneeded time one node goes and its pod is recreated.
    let mut web = service("web", 10.0, 300.0, 300.0);
    web.initial_replicas = 2;
    web.startup_s = 30.0;
    let mut a = app(vec![web], vec![], &["web"]);
    a.nodes = vec![
        NodeSpec {
            name: "n0".into(),
            cpu_millicores: 1000.0,
            memory_mib: 4096.0,
        },
        NodeSpec {
            name: "n1".into(),
            cpu_millicores: 1000.0,
            memory_mib: 4096.0,
        },
    ];
    a.cluster_autoscaler = Some(ClusterAutoscalerSpec {
        node_cpu_millicores: 1000.0,
        node_memory_mib: 4096.0,
        max_nodes: 4,
        node_ready_s: 60.0,
        scan_interval_s: 10.0,
        scale_down_unneeded_s: 120.0,
        scale_down_utilization: 0.5,
        scale_down_delay_after_add_s: 600.0,
    });
    let mut sim = steady(a, vec![5.0; 400]);
    assert_eq!(sim.node_count(), 2);
    let mut drained_at = None;
    for t in 1..=200u64 {
        sim.step();
        if drained_at.is_none() && sim.nodes_drained() == 1 {
            drained_at = Some(t);
            assert_eq!(sim.node_count(), 1);
            // The evicted pod is recreated and bound on the other node, starting again.
            let st = &sim.stats()[0];
            assert_eq!((st.bound, st.ready), (2, 1));
        }
    }
    let t = drained_at.expect("one node drained");
    assert!((120..=131).contains(&t), "drained at {t} s");
    assert_eq!(sim.node_count(), 1, "the last node stays");
    assert_eq!(sim.nodes_drained(), 1);
    assert_eq!(sim.stats()[0].ready, 2, "ready again after its start-up");
}

#[test]
fn no_node_goes_within_the_delay_after_a_scale_up() {
    let mut a = ca_app(20.0, 4);
    if let Some(c) = a.cluster_autoscaler.as_mut() {
        c.scale_down_delay_after_add_s = 600.0;
    }
    let mut sim = steady(a, vec![10.0; 2000]);
    sim.step();
    scale(&mut sim, 6);
    for _ in 0..60 {
        sim.step();
    }
    assert_eq!(sim.node_count(), 3);
    scale(&mut sim, 1);
    // Asked for at 11 s: the empty nodes stay until 611 s, then go at the next scan.
    for _ in 61..600 {
        sim.step();
    }
    assert_eq!(sim.node_count(), 3);
    for _ in 600..630 {
        sim.step();
    }
    assert_eq!(sim.node_count(), 1);
}

/// Own p95 (ms) of a lone service at a steady Poisson 2.5 rps on one replica (6.86 rps of
/// capacity), per second after a warm-up, with the latency priced at time constant `tau_s`.
fn lone_service_p95s(tau_s: f64, sojourn: bool) -> Vec<f64> {
    let mut gw = service("gw", 72.87, 200.0, 500.0);
    gw.base_latency_ms = 0.5;
    let mut sim = Simulator::new(
        app(vec![gw], vec![], &["gw"]),
        SimConfig {
            seed: 5,
            latency_rate_tau_s: tau_s,
            latency_sojourn: sojourn,
            ..SimConfig::default()
        },
        vec![2.5; 3601],
    )
    .unwrap();
    let mut out = Vec::new();
    for t in 0..3600 {
        sim.step();
        if t >= 600 {
            out.push(sim.stats()[0].latency_ms[1]);
        }
    }
    out
}

#[test]
fn a_seconds_poisson_noise_is_priced_as_a_steady_load_unless_the_rate_is_smoothed() {
    // The model's p95 at the true rate (c = 1, so the wait probability is rho): the service
    // quantile plus the wait quantile, ms.
    let mu = 500.0 / 72.87;
    let (lambda, ln20) = (2.5, 20f64.ln());
    let rho: f64 = lambda / mu;
    let at_rate = 0.5 + 1000.0 * (ln20 / mu + (rho.ln() + ln20) / (mu - lambda));
    assert!((at_rate - 893.0).abs() < 2.0, "{at_rate}");
    // The model before (time constant 0): each second's count is the rate, and one second in
    // about 25 has 6 or more arrivals, priced at utilisation 0.87 or more (p95 over 2 s).
    let raw = lone_service_p95s(0.0, false);
    let spikes = raw.iter().filter(|&&p| p > 2000.0).count() as f64 / raw.len() as f64;
    assert!(spikes > 0.01, "share of seconds over 2 s: {spikes}");
    // Smoothed over 30 s, every second stays near the model's value at the true rate (a
    // backlog of a few requests after a burst still adds its wait), below 2 s.
    let smooth = lone_service_p95s(30.0, false);
    let (lo, hi) = smooth
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(a, b), &p| (a.min(p), b.max(p)));
    assert!(
        lo > 0.7 * at_rate && hi < 1.6 * at_rate,
        "p95 {lo:.0}..{hi:.0} ms against {at_rate:.0} ms at the true rate"
    );
}

#[test]
fn with_the_sojourn_distribution_a_lone_replica_is_near_mm1s_exact_p95() {
    // M/M/1 at 2.5 of 6.86 rps: the time in the system is Exp(4.36/s), p95 = ln 20 / 4.36.
    let mu = 500.0 / 72.87;
    let exact = 0.5 + 1000.0 * 20f64.ln() / (mu - 2.5);
    assert!((exact - 687.0).abs() < 2.0, "{exact}");
    let p95s = lone_service_p95s(30.0, true);
    let mean = p95s.iter().sum::<f64>() / p95s.len() as f64;
    let max = p95s.iter().fold(0.0f64, |a, &b| a.max(b));
    assert!(
        (mean - exact).abs() < 0.1 * exact && max < 1.6 * exact,
        "mean {mean:.0} ms, max {max:.0} ms against {exact:.0} ms exact"
    );
}

#[test]
fn the_latency_rate_time_constant_is_bounded() {
    for tau in [-1.0, 601.0, f64::NAN] {
        let e = Simulator::new(
            app(vec![service("s", 10.0, 100.0, 100.0)], vec![], &["s"]),
            SimConfig {
                latency_rate_tau_s: tau,
                ..SimConfig::default()
            },
            vec![1.0; 10],
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("latency_rate_tau_s"), "{tau}: {e}");
    }
}

/// Share of requests over `slo_ms` after a 10-minute warm-up: the simulator's (from its
/// per-step quantiles, as the evaluation reads them) and the request-level queue's, for `c`
/// replicas of the gateway at utilisation `rho[t]` in second `t`.
fn over_slo(c: u32, rho: &[f64], cfg: SimConfig, slo_ms: f64) -> (f64, f64) {
    use graphscale_core::exposition::latency_cdf;
    use graphscale_sim::reference::RequestLevelQueue;
    let mu = 500.0 / 72.871;
    let rates: Vec<f64> = rho.iter().map(|r| r * c as f64 * mu).collect();
    let mut gw = service("gw", 72.871, 500.0, 500.0);
    gw.base_latency_ms = 0.5;
    gw.initial_replicas = c;
    gw.max_replicas = c;
    // The reference has no timeouts: none here either, so every request is served.
    gw.timeout_ms = 60_000.0;
    let mut a = app(vec![gw], vec![], &["gw"]);
    a.nodes[0].cpu_millicores = 500.0 * c as f64;
    let mut sim = Simulator::new(a, cfg, rates.clone()).unwrap();
    let (mut fin, mut over) = (0.0, 0.0);
    for t in 0..rates.len() - 1 {
        sim.step();
        if t >= 600 {
            let st = &sim.stats()[0];
            fin += st.served as f64;
            over += st.served as f64 * (1.0 - latency_cdf(st.latency_ms, slo_ms));
        }
    }
    let q = RequestLevelQueue {
        replicas: c,
        mu,
        base_ms: 0.5,
    };
    let reqs = q.run(&rates[..rates.len() - 1], 4).unwrap();
    let late: Vec<_> = reqs.iter().filter(|r| r.second >= 600).collect();
    let ref_over = late.iter().filter(|r| r.latency_ms > slo_ms).count() as f64;
    (over / fin, ref_over / late.len() as f64)
}

#[test]
fn the_latency_model_is_near_the_request_level_queue_it_models() {
    let old = SimConfig {
        seed: 4,
        latency_rate_tau_s: 0.0,
        latency_sojourn: false,
        ..SimConfig::default()
    };
    let new = SimConfig {
        seed: 4,
        ..SimConfig::default()
    };
    // Two replicas at a steady 80 %: about 0.4 % of requests over 2 s in the queue itself.
    let steady = vec![0.8; 4201];
    let (model, exact) = over_slo(2, &steady, new.clone(), 2000.0);
    assert!(exact > 0.001 && exact < 0.01, "reference {exact}");
    assert!(model < 3.0 * exact, "model {model} against {exact}");
    // The model before priced each second's Poisson count as a steady rate: many times more.
    let (before, _) = over_slo(2, &steady, old, 2000.0);
    assert!(before > 20.0 * exact, "old model {before} against {exact}");
    // Overload still queues: at 0.5 with 2 minutes at 1.3 every 20 the model's share is the
    // queue's within a fifth.
    let surge: Vec<f64> = (0..4201)
        .map(|s| if s % 1200 >= 1080 { 1.3 } else { 0.5 })
        .collect();
    let (model, exact) = over_slo(4, &surge, new, 2000.0);
    assert!(exact > 0.1, "reference {exact}");
    assert!(
        (model - exact).abs() < 0.2 * exact,
        "model {model} against {exact}"
    );
}
