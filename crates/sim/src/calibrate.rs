//! How the built-in apps are derived from real measurements (`shared/data`).
//!
//! `graphscale calibrate --data ../shared/data --out data/topologies` runs this module and
//! writes the JSON files that graphscale bundles; a test re-derives them when the data is
//! present and checks they match. The rules, per service `s`:
//!
//! | quantity | Online Boutique / Train Ticket (microservices-ob-tt) | Alibaba 2022 |
//! |---|---|---|
//! | services, edges | call edges with trace calls > 0 between services that have pod metrics | caller->callee edges of the sampled traces |
//! | entries | callees of `__client__`, share by calls | ingress services, share by traces |
//! | call ratio `a->b` | calls(a->b) / calls into a, summed over the minutes where `a` received calls | calls(a->b) / (calls into a + traces entering at a) |
//! | request rate into `s` | sum over callers of calls / (minutes * 60) | - |
//! | CPU per request | median CPU (m) over all minutes / request rate, in 0.05..500 ms | 1 + 9 * normalised mean CPU ms |
//! | memory base | median working set (MiB) | 64 + 448 * normalised mean memory MiB |
//! | off-CPU latency | p50 of calls into `s` minus callees' p50 times ratio minus the median service time, >= 0.5 ms | 2 ms |
//! | memory per in-flight request | 0.05 MiB (not in the data) | same |
//! | requests / limits | CPU 200 m / 500 m; memory request 1.25 x (base + in-flight memory at 80 % of a replica's capacity), rounded up to 16 MiB, limit 2 x request | same |
//! | start-up | the pod's readiness probe in the app's own Kubernetes manifests ([`startup_s`]) | 30 s (no manifests published) |
//!
//! Medians are over every minute of both days; the injected faults cover a minority of minutes
//! and medians are robust to them. The load generator ran a nearly flat load, so a regression
//! of CPU on load is undetermined: idle CPU is folded into the per-request cost (an upper bound).
//!
//! App-wide: `nominal_peak_rps` is the external rate at which the busiest service needs 10
//! replicas at 80 % of its CPU request; `slo_ms` is [`AppSpec::default_slo_ms`]: twice the
//! zero-load end-to-end p95 of the slowest entry, rounded up to 50 ms, at least 100 ms.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use graphscale_core::{Edge, Relation, Resources};

use crate::spec::{AppSpec, EntrySpec, ServiceSpec};
use crate::SimError;

const CPU_REQUEST_M: f64 = 200.0;
const CPU_LIMIT_M: f64 = 500.0;
const MEM_PER_INFLIGHT_MIB: f64 = 0.05;

/// Seconds from binding until a new pod of service `name` of app `app` (`"ob"` or `"tt"`) is
/// Ready, read from the readiness probes of the app's own Kubernetes manifests: a pod is Ready
/// at its first successful probe, and the probes run from `initialDelaySeconds` on, every
/// `periodSeconds` (default 10). Where the manifest sets an initial delay, its authors sized it
/// to cover the start-up and the pod is taken Ready then; where it sets none, the first probe
/// meets a process that is still starting and the pod is Ready one period later.
///
/// - Online Boutique, `kubernetes-manifests/*.yaml` of GoogleCloudPlatform/microservices-demo
///   (commit 34ffea9): frontend 10 s, cartservice 15 s, adservice (Java) 20 s; no initial delay
///   with a 5 s period: emailservice, recommendationservice, shippingservice; with the default
///   10 s period: checkout, currency, payment, productcatalog.
/// - Train Ticket, `deployment/kubernetes-manifests/quickstart-k8s/*.yml` of FudanSELab/train-ticket
///   (commit 813dd01): every one of its 41 Spring Boot services has `initialDelaySeconds: 160`.
///   Four of our services come from the later release the Nezha data ran (gateway, delivery,
///   station-food, train-food), absent from those manifests; they are the same Spring Boot
///   stack and get the same 160 s.
pub fn startup_s(app: &str, name: &str) -> f64 {
    match (app, name) {
        ("tt", _) => 160.0,
        (_, "adservice") => 20.0,
        (_, "cartservice") => 15.0,
        (_, "frontend") => 10.0,
        (_, "emailservice" | "recommendationservice" | "shippingservice") => 5.0,
        _ => 10.0,
    }
}

/// Calls on one edge in one minute: (segment, timestamp, calls).
type MinuteCalls = (String, String, f64);

fn read(path: &Path) -> Result<csv::Reader<std::fs::File>, SimError> {
    let sep = if path.extension().is_some_and(|e| e == "tsv") {
        b'\t'
    } else {
        b','
    };
    csv::ReaderBuilder::new()
        .delimiter(sep)
        .from_path(path)
        .map_err(|e| SimError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })
}

/// Reads rows as maps from column name to value, checking that `cols` exist.
fn rows(path: &Path, cols: &[&str]) -> Result<Vec<BTreeMap<String, String>>, SimError> {
    let mut r = read(path)?;
    let name = path.display().to_string();
    let headers = r
        .headers()
        .map_err(|e| SimError::Csv {
            file: name.clone(),
            line: 1,
            field: "header".into(),
            message: e.to_string(),
        })?
        .clone();
    for c in cols {
        if !headers.iter().any(|h| h == *c) {
            return Err(SimError::Csv {
                file: name.clone(),
                line: 1,
                field: c.to_string(),
                message: "missing column".into(),
            });
        }
    }
    let mut out = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| SimError::Csv {
            file: name.clone(),
            line: e.position().map(|p| p.line()).unwrap_or(0),
            field: "record".into(),
            message: e.to_string(),
        })?;
        out.push(
            headers
                .iter()
                .zip(rec.iter())
                .filter(|(h, _)| cols.contains(h))
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect(),
        );
    }
    Ok(out)
}

fn num(row: &BTreeMap<String, String>, col: &str) -> f64 {
    row.get(col)
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .unwrap_or(f64::NAN)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    graphscale_core::stats::median(&mut v)
}

fn round_up(x: f64, to: f64) -> f64 {
    (x / to).ceil() * to
}

fn finish(mut app: AppSpec) -> Result<AppSpec, SimError> {
    let visits = app.visits_per_request()?;
    let busiest = app
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| visits[i] * s.cpu_ms_per_request)
        .fold(0.0, f64::max);
    app.nominal_peak_rps = round_up(10.0 * 0.8 * CPU_REQUEST_M / busiest, 10.0);
    app.slo_ms = app.default_slo_ms();
    app.validate()?;
    Ok(app)
}

fn service(
    name: &str,
    cpu_ms: f64,
    mem_base: f64,
    base_latency: f64,
    startup_s: f64,
) -> ServiceSpec {
    // Memory for the requests in flight at 80 % of a replica's capacity (Little's law).
    let mu = CPU_LIMIT_M / cpu_ms;
    let inflight = 0.8 * mu * (base_latency + cpu_ms * 1000.0 / CPU_LIMIT_M) / 1000.0;
    let mem_req = round_up(1.25 * (mem_base + MEM_PER_INFLIGHT_MIB * inflight), 16.0).max(32.0);
    ServiceSpec {
        name: name.to_string(),
        cpu_ms_per_request: (cpu_ms * 1000.0).round() / 1000.0,
        base_latency_ms: (base_latency * 100.0).round() / 100.0,
        memory_base_mib: mem_base.round().max(1.0),
        memory_per_inflight_mib: MEM_PER_INFLIGHT_MIB,
        idle_cpu_millicores: 1.0,
        requests: Resources::new(CPU_REQUEST_M, mem_req),
        limits: Resources::new(CPU_LIMIT_M, 2.0 * mem_req),
        startup_s,
        initial_replicas: 1,
        max_replicas: 50,
        timeout_ms: 10_000.0,
        parallel_calls: false,
    }
}

/// Derives Online Boutique (`app = "ob"`) or Train Ticket (`"tt"`) from
/// `dir = shared/data/microservices-ob-tt`.
pub fn microservices_app(dir: &Path, app: &str) -> Result<AppSpec, SimError> {
    let base = dir.join(app);
    let pods = rows(
        &base.join("pod_metrics_1min.csv"),
        &["service", "CpuUsage(m)", "MemoryUsage(Mi)"],
    )?;
    let mut cpu: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut mem: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in &pods {
        let s = r["service"].clone();
        cpu.entry(s.clone())
            .or_default()
            .push(num(r, "CpuUsage(m)"));
        mem.entry(s).or_default().push(num(r, "MemoryUsage(Mi)"));
    }
    let known: BTreeSet<String> = cpu.keys().cloned().collect();
    let edges_csv = rows(
        &base.join("call_graph_edges.csv"),
        &["caller", "callee", "trace_calls_total", "trace_minutes"],
    )?;
    // Request rate into each service.
    let mut rps_in: BTreeMap<String, f64> = BTreeMap::new();
    let mut entry_calls: BTreeMap<String, f64> = BTreeMap::new();
    let mut pairs = Vec::new();
    for r in &edges_csv {
        let (a, b) = (r["caller"].clone(), r["callee"].clone());
        let (calls, minutes) = (num(r, "trace_calls_total"), num(r, "trace_minutes"));
        if !(calls > 0.0 && minutes > 0.0 && known.contains(&b)) {
            continue;
        }
        *rps_in.entry(b.clone()).or_default() += calls / (minutes * 60.0);
        if a == "__client__" {
            *entry_calls.entry(b).or_default() += calls;
        } else if known.contains(&a) {
            pairs.push((a, b));
        }
    }
    // Per-minute traces: ratios over the minutes where the caller received calls, and p50s.
    let per_min = rows(
        &base.join("edge_calls_1min_from_traces.csv"),
        &[
            "segment",
            "timestamp",
            "caller",
            "callee",
            "calls",
            "p50_us",
        ],
    )?;
    let mut incoming: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    let mut out_calls: BTreeMap<(String, String), Vec<MinuteCalls>> = BTreeMap::new();
    let mut p50: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for r in &per_min {
        let key = (r["segment"].clone(), r["timestamp"].clone());
        let calls = num(r, "calls");
        if calls.is_nan() || calls <= 0.0 {
            continue;
        }
        *incoming
            .entry((key.0.clone(), key.1.clone(), r["callee"].clone()))
            .or_default() += calls;
        out_calls
            .entry((r["caller"].clone(), r["callee"].clone()))
            .or_default()
            .push((key.0, key.1, calls));
        let p = num(r, "p50_us");
        if p.is_finite() {
            let e = p50.entry(r["callee"].clone()).or_default();
            e.0 += p * calls;
            e.1 += calls;
        }
    }
    let mut ratio: BTreeMap<(String, String), f64> = BTreeMap::new();
    for (a, b) in &pairs {
        let Some(rowsab) = out_calls.get(&(a.clone(), b.clone())) else {
            continue;
        };
        let mut num_calls = 0.0;
        let mut den = 0.0;
        let minutes: BTreeSet<(String, String)> = incoming
            .keys()
            .filter(|(_, _, s)| s == a)
            .map(|(seg, t, _)| (seg.clone(), t.clone()))
            .collect();
        for (seg, t) in &minutes {
            den += incoming[&(seg.clone(), t.clone(), a.clone())];
        }
        for (seg, t, c) in rowsab {
            if minutes.contains(&(seg.clone(), t.clone())) {
                num_calls += c;
            }
        }
        if den > 0.0 && num_calls > 0.0 {
            ratio.insert(
                (a.clone(), b.clone()),
                ((num_calls / den) * 1000.0).round() / 1000.0,
            );
        }
    }
    let mut names: BTreeSet<String> = entry_calls.keys().cloned().collect();
    for (a, b) in ratio.keys() {
        names.insert(a.clone());
        names.insert(b.clone());
    }
    let p50_ms = |s: &str| p50.get(s).map(|(w, n)| w / n / 1000.0).unwrap_or(f64::NAN);
    let mut services = Vec::new();
    for s in &names {
        let rate = rps_in.get(s).copied().unwrap_or(0.0);
        let cpu_med = median(cpu.get(s).cloned().unwrap_or_default());
        let cpu_ms = if rate > 0.0 && cpu_med.is_finite() {
            (cpu_med / rate).clamp(0.05, 500.0)
        } else {
            1.0
        };
        let mem_base = median(mem.get(s).cloned().unwrap_or_default());
        let mem_base = if mem_base.is_finite() && mem_base > 0.0 {
            mem_base
        } else {
            64.0
        };
        let children: f64 = ratio
            .iter()
            .filter(|((a, _), _)| a == s)
            .map(|((_, b), r)| r * p50_ms(b))
            .filter(|x| x.is_finite())
            .sum();
        let svc_time = 0.69 * cpu_ms * 1000.0 / CPU_LIMIT_M;
        let own = p50_ms(s);
        let base_latency = if own.is_finite() {
            (own - children - svc_time).max(0.5)
        } else {
            2.0
        };
        services.push(service(
            s,
            cpu_ms,
            mem_base,
            base_latency,
            startup_s(app, s),
        ));
    }
    let edges = ratio
        .iter()
        .map(|((a, b), r)| Edge::new(a, b, Relation::Calls, *r))
        .collect();
    let (name, what) = if app == "tt" {
        ("train-ticket", "Train Ticket")
    } else {
        ("online-boutique", "Online Boutique")
    };
    let total: f64 = entry_calls.values().sum();
    finish(AppSpec {
        name: name.into(),
        description: format!(
            "{what}, calibrated by `graphscale calibrate` from shared/data/microservices-ob-tt/{app} \
             (Nezha, FSE'23, MIT): call ratios from Jaeger traces, CPU and memory from per-pod metrics; \
             rules in crates/sim/src/calibrate.rs"
        ),
        slo_ms: 1.0,
        nominal_peak_rps: 1.0,
        services,
        queues: vec![],
        topics: vec![],
        edges,
        entries: entry_calls
            .into_iter()
            .map(|(service, c)| EntrySpec {
                service,
                share: ((c / total) * 1e4).round() / 1e4,
            })
            .collect(),
        nodes: vec![],
        cluster_autoscaler: None,
    })
}

/// Derives the Alibaba app from `dir = shared/data/alibaba-2022-microservices`.
pub fn alibaba_app(dir: &Path) -> Result<AppSpec, SimError> {
    let edges_csv = rows(
        &dir.join("call_graph_edges_from_sampled_traces.csv"),
        &["caller", "callee", "calls"],
    )?;
    let ingress = rows(
        &dir.join("ingress_traces_per_minute.csv"),
        &["ingress_service", "traces"],
    )?;
    let metrics = rows(
        &dir.join("min_max_normalized_service_metrics.tsv"),
        &["ms_name", "cpu_mean", "memory_mean"],
    )?;
    let mut incoming: BTreeMap<String, f64> = BTreeMap::new();
    let mut entry: BTreeMap<String, f64> = BTreeMap::new();
    for r in &ingress {
        let t = num(r, "traces");
        if t > 0.0 {
            *entry.entry(r["ingress_service"].clone()).or_default() += t;
            *incoming.entry(r["ingress_service"].clone()).or_default() += t;
        }
    }
    let mut calls = Vec::new();
    for r in &edges_csv {
        let c = num(r, "calls");
        if c > 0.0 && r["caller"] != r["callee"] {
            *incoming.entry(r["callee"].clone()).or_default() += c;
            calls.push((r["caller"].clone(), r["callee"].clone(), c));
        }
    }
    let mut names: BTreeSet<String> = entry.keys().cloned().collect();
    let mut edges = Vec::new();
    for (a, b, c) in &calls {
        let inc = incoming.get(a).copied().unwrap_or(0.0);
        if inc <= 0.0 {
            continue;
        }
        names.insert(a.clone());
        names.insert(b.clone());
        edges.push(Edge::new(
            a,
            b,
            Relation::Calls,
            ((c / inc) * 1000.0).round() / 1000.0,
        ));
    }
    let norm: BTreeMap<String, (f64, f64)> = metrics
        .iter()
        .map(|r| {
            (
                r["ms_name"].clone(),
                (num(r, "cpu_mean"), num(r, "memory_mean")),
            )
        })
        .collect();
    let services = names
        .iter()
        .map(|s| {
            let (c, m) = norm.get(s).copied().unwrap_or((0.2, 0.27));
            let c = if c.is_finite() {
                c.clamp(0.0, 1.0)
            } else {
                0.2
            };
            let m = if m.is_finite() {
                m.clamp(0.0, 1.0)
            } else {
                0.27
            };
            service(s, 1.0 + 9.0 * c, 64.0 + 448.0 * m, 2.0, 30.0)
        })
        .collect();
    let total: f64 = entry.values().sum();
    finish(AppSpec {
        name: "alibaba".into(),
        description: "Alibaba 2022 production call graphs (94-service sample of 2,774 traces, MIT via \
             H3rby7/cloudlab-k8s-ee-sched-data, original CC BY 4.0), calibrated by `graphscale calibrate`: \
             call ratios from sampled traces, ingress shares from traces per minute, relative CPU and memory \
             from min-max normalised utilisation"
            .into(),
        slo_ms: 1.0,
        nominal_peak_rps: 1.0,
        services,
        queues: vec![],
        topics: vec![],
        edges,
        entries: entry
            .into_iter()
            .map(|(service, t)| EntrySpec {
                service,
                share: ((t / total) * 1e4).round() / 1e4,
            })
            .collect(),
        nodes: vec![],
        cluster_autoscaler: None,
    })
}

/// Derives every calibrated app from `data = shared/data`: `(file name, app)`.
pub fn all(data: &Path) -> Result<Vec<(String, AppSpec)>, SimError> {
    let mt = data.join("microservices-ob-tt");
    Ok(vec![
        ("online-boutique.json".into(), microservices_app(&mt, "ob")?),
        ("train-ticket.json".into(), microservices_app(&mt, "tt")?),
        (
            "alibaba.json".into(),
            alibaba_app(&data.join("alibaba-2022-microservices"))?,
        ),
    ])
}
