//! Against a real Prometheus: it scrapes `graphscale sim serve`, and graphscale reads it back.
//! `scripts/test.sh` installs Debian's `prometheus` when it is missing; set `PROMETHEUS` to use
//! another binary.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use graphscale_control::{ControlLoop, Seams};
use graphscale_core::{
    Actuator, AppGraph, AsyncMetricSource, AsyncTopologySource, Metric, Millis, NodeKind, Relation,
    ScalingDecision,
};
use graphscale_monitor::discovery::{discover, DiscoveryConfig};
use graphscale_monitor::prom::{PromClient, PromConfig};
use graphscale_monitor::source::PromSource;
use graphscale_monitor::templates::Templates;

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn prometheus_binary() -> PathBuf {
    if let Ok(p) = std::env::var("PROMETHEUS") {
        return PathBuf::from(p);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("prometheus");
        if p.is_file() {
            return p;
        }
    }
    panic!("no `prometheus` binary on PATH: install Debian's `prometheus` package (scripts/test.sh does) or set PROMETHEUS");
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("graphscale-prom-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const SPEED: f64 = 10.0;

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

/// An actuator that records what it is told.
#[derive(Default)]
struct Recording {
    applied: Vec<Vec<ScalingDecision>>,
}

impl Actuator for Recording {
    type Error = Never;
    fn apply(&mut self, decisions: &[ScalingDecision]) -> Result<(), Never> {
        self.applied.push(decisions.to_vec());
        Ok(())
    }
}

fn kinds_of(g: &AppGraph, k: NodeKind) -> BTreeSet<String> {
    g.nodes
        .iter()
        .filter(|n| n.kind == k)
        .map(|n| n.id.clone())
        .collect()
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn prometheus_scrapes_the_simulator_and_graphscale_reads_it_back() {
    let dir = tmp("e2e");
    let sim_port = free_port();
    let _sim = Kill(
        Command::new(env!("CARGO_BIN_EXE_graphscale"))
            .args([
                "sim",
                "serve",
                "--app",
                "event-driven",
                "--scenario",
                "peak",
                "--speed",
                &SPEED.to_string(),
                "--duration",
                "2h",
                "--seed",
                "3",
                "--listen",
                &format!("127.0.0.1:{sim_port}"),
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let prom_port = free_port();
    let cfg = dir.join("prometheus.yml");
    // graphscale's recording rules for the p95s, for the 5 s window the templates below use.
    let rules = dir.join("latency-rules.yaml");
    std::fs::write(
        &rules,
        graphscale_monitor::recorded::rules_yaml("5s").unwrap(),
    )
    .unwrap();
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['{}']\nscrape_configs:\n  - job_name: graphscale-sim\n    static_configs:\n      - targets: ['127.0.0.1:{sim_port}']\n",
            rules.display()
        ),
    )
    .unwrap();
    let _prom = Kill(
        Command::new(prometheus_binary())
            .args([
                &format!("--config.file={}", cfg.display()),
                &format!("--storage.tsdb.path={}", dir.join("data").display()),
                &format!("--web.listen-address=127.0.0.1:{prom_port}"),
                "--log.level=warn",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{prom_port}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = PromClient::new(PromConfig {
        url: url.clone(),
        timeout_ms: 5000,
        retries: 0,
        ..PromConfig::default()
    })
    .unwrap();
    // Ready, scraping, and with enough samples for 5 s rates.
    wait_for(
        "Prometheus to scrape the simulator",
        Duration::from_secs(40),
        || {
            rt.block_on(client.query("count_over_time(up{job=\"graphscale-sim\"}[30s])", None))
                .ok()
                .and_then(|v| v.first().and_then(|s| s.value))
                .is_some_and(|n| n >= 12.0)
        },
    );
    let up = rt
        .block_on(client.query("up{job=\"graphscale-sim\"}", None))
        .unwrap();
    assert_eq!(up[0].value, Some(1.0), "the target is up");

    // "No data" is not zero.
    assert!(rt
        .block_on(client.query("no_such_metric_anywhere", None))
        .unwrap()
        .is_empty());

    // Discovery equals the simulated topology.
    let templates = Templates {
        window: "5s".into(),
        ..Templates::default()
    };
    let disc = DiscoveryConfig {
        time_scale: SPEED,
        ..DiscoveryConfig::default()
    };
    let found = rt
        .block_on(discover(&client, &templates, &disc, None))
        .unwrap();
    let app = graphscale_sim::topology::builtin("event-driven").unwrap();
    let g = &found.graph;
    let kinds = |k: NodeKind| -> BTreeSet<String> {
        g.nodes
            .iter()
            .filter(|n| n.kind == k)
            .map(|n| n.id.clone())
            .collect()
    };
    let want_services: BTreeSet<String> = app.services.iter().map(|s| s.name.clone()).collect();
    assert_eq!(kinds(NodeKind::Service), want_services);
    assert_eq!(kinds(NodeKind::Queue), ["shipment-jobs".to_string()].into());
    assert_eq!(kinds(NodeKind::Topic), ["order-placed".to_string()].into());
    let got: BTreeSet<(String, String, Relation)> = g
        .edges
        .iter()
        .filter(|e| e.relation != Relation::RunsOn)
        .map(|e| (e.src.clone(), e.dst.clone(), e.relation))
        .collect();
    let want: BTreeSet<(String, String, Relation)> = app
        .edges
        .iter()
        .map(|e| (e.src.clone(), e.dst.clone(), e.relation))
        .collect();
    assert_eq!(got, want, "discovered edges = simulated edges");
    for s in &app.services {
        assert!(
            g.edges
                .iter()
                .any(|e| e.src == s.name && e.relation == Relation::RunsOn),
            "{} has a runs_on edge",
            s.name
        );
    }
    assert_eq!(
        found.entries.keys().cloned().collect::<Vec<_>>(),
        vec!["gateway".to_string()]
    );
    // Ground truth: the peak scenario sends 400 rps (5 % noise, Poisson) to the gateway, which
    // calls catalog twice and orders 0.3 times per request.
    let entry = found.entries["gateway"];
    assert!(
        (entry - app.nominal_peak_rps).abs() / app.nominal_peak_rps < 0.2,
        "entry rps {entry}"
    );
    let ratio = |d: &str| {
        g.edges
            .iter()
            .find(|e| e.src == "gateway" && e.dst == d)
            .unwrap()
            .ratio
    };
    assert!(
        (ratio("catalog") - 2.0).abs() < 0.2,
        "gateway->catalog ratio {}",
        ratio("catalog")
    );
    assert!(
        (ratio("orders") - 0.3).abs() < 0.06,
        "gateway->orders ratio {}",
        ratio("orders")
    );

    // The control loop's seams on Prometheus: a snapshot and the topology, then one round of the
    // HPA behind the safety layer, applied to a recording actuator.
    let source = PromSource::new(client.clone(), templates.clone(), disc.clone()).unwrap();
    let mut seams = Seams {
        metrics: source.clone(),
        topology: source,
        actuator: Recording::default(),
    };
    let snap = rt.block_on(seams.metrics.observe_async()).unwrap();
    let names: BTreeSet<String> = snap.workloads.iter().map(|w| w.name.clone()).collect();
    assert_eq!(names, want_services, "a workload per simulated service");
    let gw = snap.workload("gateway").unwrap();
    assert!(gw.spec_replicas >= 1 && !gw.pods.is_empty());
    assert_eq!(gw.pods.len(), gw.spec_replicas as usize, "{:?}", gw.pods);
    assert!(gw.pods.iter().all(|p| p.ready.is_some() && p.cpu.is_some()));
    assert!(gw
        .pods
        .iter()
        .all(|p| p.requests.cpu_millicores > 0.0 && p.limits.memory_mib > 0.0));
    let rps = gw.rps.unwrap();
    assert!(
        (rps - 400.0).abs() / 400.0 < 0.2,
        "snapshot gateway rps {rps}"
    );
    let cpu: f64 = gw
        .pods
        .iter()
        .filter_map(|p| p.cpu)
        .map(|c| c.millicores)
        .sum();
    assert!(
        (cpu - 320.0).abs() / 320.0 < 0.3,
        "snapshot gateway cpu {cpu} m"
    );
    assert!(gw.latency_p95_ms.is_some_and(|l| l > 0.0));
    let call = snap
        .edges
        .iter()
        .find(|e| &*e.src == "gateway" && &*e.dst == "catalog")
        .unwrap();
    assert!((call.rps.unwrap() - 800.0).abs() / 800.0 < 0.2, "{call:?}");
    let graph = rt.block_on(seams.topology.topology_async()).unwrap();
    assert_eq!(kinds_of(&graph, NodeKind::Service), want_services);
    let facts = app.facts().unwrap();
    let hpa = graphscale_control::build(
        &graphscale_control::AutoscalerSpec::named("hpa").unwrap(),
        &facts,
    )
    .unwrap();
    let mut ctl = ControlLoop::threaded(hpa, Millis::from_secs(7), 1).unwrap();
    let round = rt.block_on(ctl.round(snap.time, &mut seams)).unwrap();
    assert_eq!(round.decisions.len(), want_services.len());
    assert_eq!(seams.actuator.applied.len(), 1);
    assert!(round
        .decisions
        .iter()
        .all(|d| !d.reasons.is_empty() && d.replicas >= 1));

    // `graphscale collect` with `templates` into `name`: what it printed, and the series read
    // back.
    let collect = |name: &str, templates: &Templates| {
        let out = dir.join(name);
        let cfg_file = dir.join(format!("{name}.json"));
        std::fs::write(
            &cfg_file,
            serde_json::json!({"templates": templates}).to_string(),
        )
        .unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_graphscale"))
            .args([
                "collect",
                "--prometheus",
                &url,
                "--range",
                "8s",
                "--step",
                "1s",
                "--time-scale",
                &SPEED.to_string(),
                "--config",
                cfg_file.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            graphscale_monitor::collect::read_dir(&out).unwrap(),
        )
    };
    // Read them back and compare with the ground truth.
    let (said, series) = collect("collected", &templates);
    let last = |node: &str, m: Metric| -> f64 {
        let v = &series.nodes[node][&m];
        v.iter()
            .rev()
            .copied()
            .find(|x| x.is_finite())
            .unwrap_or(f64::NAN)
    };
    let rps = last("gateway", Metric::Rps);
    assert!((rps - 400.0).abs() / 400.0 < 0.2, "gateway rps {rps}");
    // CPU: 0.8 ms per request at 400 rps, plus 1 m idle per ready pod.
    let cpu = last("gateway", Metric::CpuMillicores);
    assert!((cpu - 320.0).abs() / 320.0 < 0.3, "gateway cpu {cpu} m");
    assert!(last("gateway", Metric::MemoryMib) >= 64.0);
    assert!(last("catalog", Metric::ReplicasDesired) >= 1.0);
    assert!(last("gateway", Metric::LatencyP95Ms).is_finite());
    assert!(last("order-placed", Metric::Backlog).is_finite());
    let e = series
        .edges
        .iter()
        .find(|e| e.src == "gateway" && e.dst == "catalog")
        .unwrap();
    let erps = e.metrics[&Metric::Rps]
        .iter()
        .rev()
        .copied()
        .find(|x| x.is_finite())
        .unwrap();
    assert!(
        (erps - 800.0).abs() / 800.0 < 0.2,
        "gateway->catalog rps {erps}"
    );

    // The p95s came from the recording rules; with them turned off, from the histograms. Both
    // are the same quantile of the same histograms, evaluated at nearby instants.
    assert!(
        said.contains("p95s recorded by the recording rules"),
        "{said}"
    );
    let mut no_rules = templates.clone();
    no_rules.recording_rules = false;
    let (said, raw) = collect("collected-raw", &no_rules);
    assert!(said.contains("p95s computed from the histograms"), "{said}");
    let median = |v: &[f64]| {
        let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        assert!(!v.is_empty(), "no p95 values");
        graphscale_core::stats::median(&mut v)
    };
    let recorded = median(&series.nodes["gateway"][&Metric::LatencyP95Ms]);
    let computed = median(&raw.nodes["gateway"][&Metric::LatencyP95Ms]);
    assert!(
        recorded > 0.0 && (recorded - computed).abs() / computed < 0.35,
        "gateway p95: recorded {recorded} ms, computed {computed} ms"
    );
    let edge_p95 = |s: &graphscale_core::GraphSeries| {
        let e = s
            .edges
            .iter()
            .find(|e| e.src == "gateway" && e.dst == "catalog")
            .unwrap();
        median(&e.metrics[&Metric::LatencyP95Ms])
    };
    let (recorded, computed) = (edge_p95(&series), edge_p95(&raw));
    assert!(
        recorded > 0.0 && (recorded - computed).abs() / computed < 0.35,
        "gateway->catalog p95: recorded {recorded} ms, computed {computed} ms"
    );
}
