//! Typed, validated descriptions of a simulated application and its cluster.
//!
//! An [`AppSpec`] is what a topology file holds (JSON, see `docs/schema.md`): services with
//! their per-request costs and pod resources, queues and topics, typed edges with call ratios,
//! entry points with their share of external load, the cluster's nodes and the latency SLO.

use std::collections::HashSet;

use graphscale_core::{AppGraph, Edge, Node, NodeKind, Relation, Resources};
use serde::{Deserialize, Serialize};

use crate::SimError;

/// Most replicas of one service (every replica is simulated).
pub const MAX_REPLICAS: u32 = 10_000;

fn d_base_latency() -> f64 {
    2.0
}
fn d_mem_per_inflight() -> f64 {
    0.05
}
fn d_idle_cpu() -> f64 {
    1.0
}
fn d_startup() -> f64 {
    30.0
}
fn d_one() -> u32 {
    1
}
fn d_max_replicas() -> u32 {
    50
}
fn d_timeout() -> f64 {
    10_000.0
}

/// One service (a Deployment) of the simulated application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Name, unique in the app.
    pub name: String,
    /// CPU time one request costs, in ms of one core (> 0). A replica with a CPU limit of
    /// `L` millicores serves at most `L / cpu_ms_per_request` requests per second.
    pub cpu_ms_per_request: f64,
    /// Latency a request spends off the CPU (network, I/O), in ms; default 2.
    #[serde(default = "d_base_latency")]
    pub base_latency_ms: f64,
    /// Memory working set of an idle replica, MiB (> 0).
    pub memory_base_mib: f64,
    /// Extra memory per in-flight request (waiting or in service), MiB; default 0.05.
    #[serde(default = "d_mem_per_inflight")]
    pub memory_per_inflight_mib: f64,
    /// CPU an idle ready replica uses, millicores; default 1.
    #[serde(default = "d_idle_cpu")]
    pub idle_cpu_millicores: f64,
    /// CPU and memory requests of one pod (both > 0).
    pub requests: Resources,
    /// CPU and memory limits of one pod (>= requests).
    pub limits: Resources,
    /// Seconds from scheduling until the pod is ready; default 30.
    #[serde(default = "d_startup")]
    pub startup_s: f64,
    /// Replicas at time zero; default 1.
    #[serde(default = "d_one")]
    pub initial_replicas: u32,
    /// Hard cap the simulated cluster enforces on `spec.replicas`; default 50.
    #[serde(default = "d_max_replicas")]
    pub max_replicas: u32,
    /// A request that would wait longer than this (ms) in the queue fails; default 10 000.
    #[serde(default = "d_timeout")]
    pub timeout_ms: f64,
    /// The service calls its callees concurrently (fan-out) instead of one after another;
    /// default false, as Online Boutique and Train Ticket do (docs/simulator.md). Its
    /// end-to-end latency then adds the slowest callee's, not their sum.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub parallel_calls: bool,
}

impl ServiceSpec {
    /// Requests per second one ready replica serves at its CPU limit.
    pub fn replica_capacity_rps(&self) -> f64 {
        self.limits.cpu_millicores / self.cpu_ms_per_request
    }
}

/// A share of the external load entering at one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntrySpec {
    /// The entry service.
    pub service: String,
    /// Its share of the scenario's load (> 0; shares are normalised).
    pub share: f64,
}

/// A machine of the simulated cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Node name.
    pub name: String,
    /// Allocatable CPU, millicores.
    pub cpu_millicores: f64,
    /// Allocatable memory, MiB.
    pub memory_mib: f64,
}

fn d_scan_interval() -> f64 {
    10.0
}
fn d_unneeded() -> f64 {
    600.0
}
fn d_utilization() -> f64 {
    0.5
}

/// The Kubernetes cluster autoscaler: pods that fit on no node wait for a new one.
///
/// Every `scan_interval_s` (the autoscaler's `--scan-interval`, default 10 s) pending pods
/// that fit on no node, nor on a node already being added, make it add the fewest nodes of
/// the template that hold them, up to `max_nodes`; a new node is Ready `node_ready_s` after the
/// scan that asked for it. A node is unneeded while its pods request less than
/// `scale_down_utilization` of its CPU and of its memory (`--scale-down-utilization-threshold`,
/// 0.5) and they all fit on the other nodes; one unneeded for `scale_down_unneeded_s`
/// (`--scale-down-unneeded-time`, 10 min) is removed, its pods evicted and recreated elsewhere
/// (they start again), empty nodes all at once and others one per scan, never the last node and
/// not within `scale_down_delay_after_add_s` (`--scale-down-delay-after-add`, 10 min) of a
/// scale-up. Not simulated: the scan's own latency (the autoscaler's FAQ gives at most 30 s,
/// 5 s on average, on clusters under 100 nodes), PodDisruptionBudgets and graceful termination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterAutoscalerSpec {
    /// Allocatable CPU of a new node, millicores (> 0).
    pub node_cpu_millicores: f64,
    /// Allocatable memory of a new node, MiB (> 0).
    pub node_memory_mib: f64,
    /// Most nodes in the cluster, the initial ones included (1..=1000).
    pub max_nodes: u32,
    /// Seconds from the scale-up request to a Ready node (the cloud's VM start, the kubelet
    /// joining): it depends on the provider, so it has no default (0..=3600).
    pub node_ready_s: f64,
    /// Seconds between the autoscaler's scans; default 10 (1..=600).
    #[serde(default = "d_scan_interval")]
    pub scan_interval_s: f64,
    /// Seconds a node must be unneeded before it is removed; default 600 (0..=86400).
    #[serde(default = "d_unneeded")]
    pub scale_down_unneeded_s: f64,
    /// A node whose pods request less than this share of its CPU and of its memory may be
    /// unneeded; default 0.5 (0..=1).
    #[serde(default = "d_utilization")]
    pub scale_down_utilization: f64,
    /// Seconds after a scale-up during which no node is removed; default 600 (0..=86400).
    #[serde(default = "d_unneeded")]
    pub scale_down_delay_after_add_s: f64,
}

/// Most nodes a cluster autoscaler may run.
pub const MAX_NODES: u32 = 1000;

/// A simulated application with its cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    /// App name.
    pub name: String,
    /// Where the numbers come from.
    #[serde(default)]
    pub description: String,
    /// End-to-end p95 latency SLO at the entry services, ms (> 0).
    pub slo_ms: f64,
    /// The external request rate (rps) the scenarios call "peak" for this app (> 0).
    pub nominal_peak_rps: f64,
    /// Services.
    pub services: Vec<ServiceSpec>,
    /// Queue names.
    #[serde(default)]
    pub queues: Vec<String>,
    /// Topic names.
    #[serde(default)]
    pub topics: Vec<String>,
    /// Edges: calls, produces, consumes, publishes, subscribes (runs_on is derived from placement).
    pub edges: Vec<Edge>,
    /// Entry points; empty means every service with no caller, with equal shares.
    #[serde(default)]
    pub entries: Vec<EntrySpec>,
    /// Cluster nodes; empty means sized automatically (see [`AppSpec::cluster_nodes`]).
    #[serde(default)]
    pub nodes: Vec<NodeSpec>,
    /// A cluster autoscaler adding and removing nodes; default none (the nodes are fixed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_autoscaler: Option<ClusterAutoscalerSpec>,
}

impl AppSpec {
    /// Parses and validates an app from JSON; `context` (a file name) prefixes any error.
    pub fn from_json(text: &str, context: &str) -> Result<Self, SimError> {
        let spec: AppSpec = serde_json::from_str(text).map_err(|e| SimError::Parse {
            context: context.to_string(),
            message: e.to_string(),
        })?;
        spec.validate().map_err(|e| SimError::Parse {
            context: context.to_string(),
            message: e.to_string(),
        })?;
        Ok(spec)
    }

    /// Checks every field; the error names the service and field.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |field: String, reason: String| Err(SimError::InvalidSpec { field, reason });
        if !(self.slo_ms.is_finite() && self.slo_ms > 0.0) {
            return bad("slo_ms".into(), format!("must be > 0, got {}", self.slo_ms));
        }
        if !(self.nominal_peak_rps.is_finite() && self.nominal_peak_rps > 0.0) {
            return bad(
                "nominal_peak_rps".into(),
                format!("must be > 0, got {}", self.nominal_peak_rps),
            );
        }
        if self.services.is_empty() {
            return bad(
                "services".into(),
                "an app needs at least one service".into(),
            );
        }
        for s in &self.services {
            let f = |name: &str| format!("services[{}].{name}", s.name);
            let pos = |v: f64| v.is_finite() && v > 0.0;
            let nonneg = |v: f64| v.is_finite() && v >= 0.0;
            if !pos(s.cpu_ms_per_request) {
                return bad(
                    f("cpu_ms_per_request"),
                    format!("must be > 0, got {}", s.cpu_ms_per_request),
                );
            }
            if !pos(s.memory_base_mib) {
                return bad(
                    f("memory_base_mib"),
                    format!("must be > 0, got {}", s.memory_base_mib),
                );
            }
            for (n, v) in [
                ("base_latency_ms", s.base_latency_ms),
                ("memory_per_inflight_mib", s.memory_per_inflight_mib),
                ("idle_cpu_millicores", s.idle_cpu_millicores),
                ("startup_s", s.startup_s),
            ] {
                if !nonneg(v) {
                    return bad(f(n), format!("must be >= 0, got {v}"));
                }
            }
            if !pos(s.timeout_ms) {
                return bad(
                    f("timeout_ms"),
                    format!("must be > 0, got {}", s.timeout_ms),
                );
            }
            if !pos(s.requests.cpu_millicores) || !pos(s.requests.memory_mib) {
                return bad(
                    f("requests"),
                    "CPU and memory requests must be > 0 (zero capacity)".into(),
                );
            }
            if !(s.limits.cpu_millicores >= s.requests.cpu_millicores
                && s.limits.memory_mib >= s.requests.memory_mib)
            {
                return bad(f("limits"), "limits must be >= requests".into());
            }
            if s.max_replicas > MAX_REPLICAS {
                return bad(
                    f("max_replicas"),
                    format!("{} is more than {MAX_REPLICAS}", s.max_replicas),
                );
            }
            if s.max_replicas == 0 || s.initial_replicas > s.max_replicas {
                return bad(
                    f("initial_replicas"),
                    format!(
                        "need 1 <= max_replicas and initial_replicas ({}) <= max_replicas ({})",
                        s.initial_replicas, s.max_replicas
                    ),
                );
            }
        }
        for n in &self.nodes {
            if !(n.cpu_millicores > 0.0 && n.memory_mib > 0.0) {
                return bad(
                    format!("nodes[{}]", n.name),
                    "allocatable CPU and memory must be > 0 (zero capacity)".into(),
                );
            }
        }
        if let Some(ca) = &self.cluster_autoscaler {
            ca.validate(self)?;
        }
        let mut seen = HashSet::new();
        for e in &self.entries {
            if !self.services.iter().any(|s| s.name == e.service) {
                return bad(
                    "entries".into(),
                    format!("unknown entry service `{}`", e.service),
                );
            }
            if !(e.share.is_finite() && e.share > 0.0 && seen.insert(&e.service)) {
                return bad(
                    format!("entries[{}]", e.service),
                    "share must be > 0 and each service listed once".into(),
                );
            }
        }
        if self.edges.iter().any(|e| e.relation == Relation::RunsOn) {
            return bad(
                "edges".into(),
                "runs_on edges are derived from pod placement, not declared".into(),
            );
        }
        let g = self.graph().map_err(|e| SimError::InvalidSpec {
            field: "edges".into(),
            reason: e.to_string(),
        })?;
        if self.entry_shares(&g).is_empty() {
            return bad(
                "entries".into(),
                "no entry service: every service is called by another".into(),
            );
        }
        Ok(())
    }

    /// The application graph (services, queues, topics and their edges; no cluster nodes).
    pub fn graph(&self) -> Result<AppGraph, graphscale_core::CoreError> {
        let mut nodes: Vec<Node> = self
            .services
            .iter()
            .map(|s| Node::new(&s.name, NodeKind::Service))
            .collect();
        nodes.extend(self.queues.iter().map(|q| Node::new(q, NodeKind::Queue)));
        nodes.extend(self.topics.iter().map(|t| Node::new(t, NodeKind::Topic)));
        AppGraph::new(&self.name, nodes, self.edges.clone())
    }

    /// Entry services with normalised shares.
    pub fn entry_shares(&self, g: &AppGraph) -> Vec<(String, f64)> {
        let raw: Vec<(String, f64)> = if self.entries.is_empty() {
            g.entry_services()
                .into_iter()
                .map(|s| (s.to_string(), 1.0))
                .collect()
        } else {
            self.entries
                .iter()
                .map(|e| (e.service.clone(), e.share))
                .collect()
        };
        let total: f64 = raw.iter().map(|(_, s)| s).sum();
        raw.into_iter().map(|(n, s)| (n, s / total)).collect()
    }

    /// The cluster at time zero: the declared nodes, or enough 16-core / 64 GiB nodes to hold
    /// ten times the CPU and memory requests of the initial replicas (at least 3 nodes). With
    /// a cluster autoscaler and no declared nodes, the fewest nodes of its template that hold
    /// the initial replicas' requests (at least 1): the size its scale-down converges to.
    pub fn cluster_nodes(&self) -> Vec<NodeSpec> {
        if !self.nodes.is_empty() {
            return self.nodes.clone();
        }
        let (mut cpu, mut mem) = (0.0, 0.0);
        for s in &self.services {
            let n = s.initial_replicas.max(1) as f64;
            cpu += s.requests.cpu_millicores * n;
            mem += s.requests.memory_mib * n;
        }
        let (node_cpu, node_mem, headroom, least) = match &self.cluster_autoscaler {
            Some(ca) => (ca.node_cpu_millicores, ca.node_memory_mib, 1.0, 1),
            None => (16_000.0, 65_536.0, 10.0, 3),
        };
        let count = ((cpu * headroom / node_cpu)
            .max(mem * headroom / node_mem)
            .ceil() as usize)
            .max(least);
        // Whole pods per node: requests that add up to a node's size may still not pack.
        let count = match &self.cluster_autoscaler {
            Some(ca) => pack_count(self, node_cpu, node_mem)
                .max(count)
                .min(ca.max_nodes as usize),
            None => count,
        };
        (0..count)
            .map(|i| NodeSpec {
                name: format!("node-{i}"),
                cpu_millicores: node_cpu,
                memory_mib: node_mem,
            })
            .collect()
    }

    /// Static facts of every service (in `services` order): bounds `1..=max_replicas`, the CPU
    /// each needs at [`AppSpec::nominal_peak_rps`] (visits x peak x CPU per request) and its pod's
    /// CPU request.
    pub fn facts(&self) -> Result<Vec<graphscale_core::WorkloadFacts>, SimError> {
        let visits = self.visits_per_request()?;
        Ok(self
            .services
            .iter()
            .zip(visits)
            .map(|(s, v)| graphscale_core::WorkloadFacts {
                name: s.name.clone(),
                min_replicas: 1,
                max_replicas: s.max_replicas,
                peak_cpu_millicores: Some(v * self.nominal_peak_rps * s.cpu_ms_per_request),
                cpu_request_millicores: Some(s.requests.cpu_millicores),
            })
            .collect())
    }

    /// Expected visits to each service (in `services` order) per external request, by
    /// propagating the entry shares along call ratios, and along produce/publish ratios to the
    /// consumers of a queue (split evenly) and every subscriber of a topic. A cycle is cut after
    /// 64 rounds.
    pub fn visits_per_request(&self) -> Result<Vec<f64>, SimError> {
        let g = self.graph().map_err(|e| SimError::InvalidSpec {
            field: "edges".into(),
            reason: e.to_string(),
        })?;
        let start: Vec<(usize, f64)> = self
            .entry_shares(&g)
            .into_iter()
            .filter_map(|(name, share)| {
                self.services
                    .iter()
                    .position(|s| s.name == name)
                    .map(|i| (i, share))
            })
            .collect();
        Ok(self.propagate(&self.flows(), &start))
    }

    /// Service-to-service load flow: `(from, to, ratio)`.
    fn flows(&self) -> Vec<(usize, usize, f64)> {
        let idx = |id: &str| self.services.iter().position(|s| s.name == id);
        let mut out = Vec::new();
        for e in &self.edges {
            match e.relation {
                Relation::Calls => {
                    if let (Some(a), Some(b)) = (idx(&e.src), idx(&e.dst)) {
                        out.push((a, b, e.ratio));
                    }
                }
                Relation::Produces | Relation::Publishes => {
                    let Some(a) = idx(&e.src) else { continue };
                    let takers = if e.relation == Relation::Produces {
                        Relation::Consumes
                    } else {
                        Relation::Subscribes
                    };
                    let consumers: Vec<usize> = self
                        .edges
                        .iter()
                        .filter(|c| c.relation == takers && c.dst == e.dst)
                        .filter_map(|c| idx(&c.src))
                        .collect();
                    let split = if takers == Relation::Consumes {
                        consumers.len().max(1) as f64
                    } else {
                        1.0
                    };
                    for b in consumers {
                        out.push((a, b, e.ratio / split));
                    }
                }
                _ => {}
            }
        }
        out
    }

    fn propagate(&self, flows: &[(usize, usize, f64)], start: &[(usize, f64)]) -> Vec<f64> {
        let n = self.services.len();
        let mut visits = vec![0.0; n];
        let mut frontier = vec![0.0; n];
        for &(i, share) in start {
            frontier[i] += share;
        }
        for _ in 0..64 {
            for (v, f) in visits.iter_mut().zip(&frontier) {
                *v += f;
            }
            let mut next = vec![0.0; n];
            for &(a, b, r) in flows {
                next[b] += frontier[a] * r;
            }
            if next.iter().sum::<f64>() < 1e-9 {
                break;
            }
            frontier = next;
        }
        visits
    }

    /// The end-to-end p95 latency at zero load, ms, of the slowest entry: the sum, over the
    /// synchronous call tree, of visits times (off-CPU latency + the p95 of an exponential
    /// service time at the CPU limit, `ln 20` times its mean), the same sum the simulator makes.
    pub fn zero_load_e2e_p95_ms(&self) -> f64 {
        let idx = |id: &str| self.services.iter().position(|s| s.name == id);
        let calls: Vec<(usize, usize, f64)> = self
            .edges
            .iter()
            .filter(|e| e.relation == Relation::Calls)
            .filter_map(|e| Some((idx(&e.src)?, idx(&e.dst)?, e.ratio)))
            .collect();
        let own: Vec<f64> = self
            .services
            .iter()
            .map(|s| {
                s.base_latency_ms
                    + 20f64.ln() * s.cpu_ms_per_request * 1000.0 / s.limits.cpu_millicores
            })
            .collect();
        let Ok(g) = self.graph() else { return f64::NAN };
        let mut worst: f64 = 0.0;
        for (name, _) in self.entry_shares(&g) {
            let Some(e) = idx(&name) else { continue };
            let visits = self.propagate(&calls, &[(e, 1.0)]);
            worst = worst.max(visits.iter().zip(&own).map(|(v, o)| v * o).sum());
        }
        worst
    }

    /// The SLO rule of the generated and calibrated apps: twice the zero-load end-to-end p95,
    /// rounded up to 50 ms, at least 100 ms.
    pub fn default_slo_ms(&self) -> f64 {
        ((2.0 * self.zero_load_e2e_p95_ms() / 50.0).ceil() * 50.0).max(100.0)
    }
}

/// Books a pod of `c` millicores and `m` MiB on the first of `free` (CPU, memory left per
/// node) that holds it; false when none does.
pub(crate) fn first_fit(free: &mut [(f64, f64)], c: f64, m: f64) -> bool {
    match free.iter_mut().find(|(fc, fm)| *fc >= c && *fm >= m) {
        Some(slot) => {
            slot.0 -= c;
            slot.1 -= m;
            true
        }
        None => false,
    }
}

/// Nodes of `cpu` x `mem` that first-fit packing needs for the initial replicas.
fn pack_count(app: &AppSpec, cpu: f64, mem: f64) -> usize {
    let mut free: Vec<(f64, f64)> = Vec::new();
    for s in &app.services {
        let (c, m) = (s.requests.cpu_millicores, s.requests.memory_mib);
        if c > cpu || m > mem {
            continue;
        }
        for _ in 0..s.initial_replicas.max(1) {
            if !first_fit(&mut free, c, m) {
                free.push((cpu - c, mem - m));
            }
        }
    }
    free.len().max(1)
}

impl ClusterAutoscalerSpec {
    fn validate(&self, app: &AppSpec) -> Result<(), SimError> {
        let bad = |field: &str, reason: String| {
            Err(SimError::InvalidSpec {
                field: format!("cluster_autoscaler.{field}"),
                reason,
            })
        };
        for (name, v) in [
            ("node_cpu_millicores", self.node_cpu_millicores),
            ("node_memory_mib", self.node_memory_mib),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 1e9) {
                return bad(name, format!("must be in (0, 1e9], got {v}"));
            }
        }
        if !(1..=MAX_NODES).contains(&self.max_nodes) {
            return bad(
                "max_nodes",
                format!("must be in 1..={MAX_NODES}, got {}", self.max_nodes),
            );
        }
        if app.nodes.len() > self.max_nodes as usize {
            return bad(
                "max_nodes",
                format!(
                    "{} nodes are declared, more than max_nodes ({})",
                    app.nodes.len(),
                    self.max_nodes
                ),
            );
        }
        for (name, v, lo, hi) in [
            ("node_ready_s", self.node_ready_s, 0.0, 3600.0),
            ("scan_interval_s", self.scan_interval_s, 1.0, 600.0),
            (
                "scale_down_unneeded_s",
                self.scale_down_unneeded_s,
                0.0,
                86_400.0,
            ),
            (
                "scale_down_utilization",
                self.scale_down_utilization,
                0.0,
                1.0,
            ),
            (
                "scale_down_delay_after_add_s",
                self.scale_down_delay_after_add_s,
                0.0,
                86_400.0,
            ),
        ] {
            if !(v.is_finite() && (lo..=hi).contains(&v)) {
                return bad(name, format!("must be in {lo}..={hi}, got {v}"));
            }
        }
        Ok(())
    }
}
