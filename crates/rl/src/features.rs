//! What the policy sees: per-workload features, global scalars and the action mask, built from
//! a [`ClusterSnapshot`] and the [`AppGraph`], so the environment (training) and the autoscaler
//! (evaluation, a real cluster) compute the same observation from the same inputs.
//!
//! Node features, in order ([`NODE_FEATURES`]): `ln(1 + rps) / 8`, the change of `ln(1 + rps)`
//! since the last observation, CPU use over request of the ready pods, memory over limit, `ln(1 +
//! p95 ms) / 8`, error rate, `ln(1 + backlog) / 10`, ready over spec replicas, `ln(1 + spec) /
//! 4`, spec over the most replicas allowed, and a flag set when a metric was missing or not
//! finite (its feature is then 0). Global scalars ([`GLOBAL_FEATURES`]): the cluster's CPU use
//! over its requests, the end-to-end p95 estimated at the entry services over the SLO (own p95
//! plus the callees' weighted by their call ratios, as the simulator sums sequential calls), and
//! the highest error rate. Every value is clamped to a fixed range, so no input can produce an
//! unbounded feature.

use std::collections::{BTreeMap, BTreeSet};

use graphscale_core::{AppGraph, ClusterSnapshot, NodeKind, Relation, WorkloadFacts};

use crate::RlError;

/// Features per workload.
pub const NODE_FEATURES: usize = 11;
/// Global scalars.
pub const GLOBAL_FEATURES: usize = 3;
/// Replica changes an action can make, by action index.
pub const DELTAS: [i32; 5] = [-2, -1, 0, 1, 2];
/// Actions per workload.
pub const ACTIONS: usize = DELTAS.len();
/// The action index of "no change".
pub const HOLD: usize = 2;

/// The workloads the policy scales and how they are connected.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PolicyGraph {
    /// Workload names, in the graph's service order.
    pub workloads: Vec<String>,
    /// `(min, max)` replicas per workload.
    pub bounds: Vec<(u32, u32)>,
    /// Undirected neighbours as `(a, b)` with `a < b`: calls, and producer-consumer pairs joined
    /// through a queue or a topic.
    pub links: Vec<(usize, usize)>,
    /// Synchronous calls `(caller, callee, ratio)`.
    pub calls: Vec<(usize, usize, f64)>,
    /// Entry workloads.
    pub entries: Vec<usize>,
    /// End-to-end p95 SLO, ms.
    pub slo_ms: f64,
}

impl PolicyGraph {
    /// The services of `graph`, with bounds from `facts` (a workload without facts gets
    /// 1..=50, the HPA default) and the app's SLO.
    pub fn of(graph: &AppGraph, facts: &[WorkloadFacts], slo_ms: f64) -> Result<Self, RlError> {
        if !(slo_ms.is_finite() && slo_ms > 0.0) {
            return Err(RlError::Config {
                field: "slo_ms".into(),
                reason: format!("{slo_ms} is not a positive number"),
            });
        }
        let workloads: Vec<String> = graph.services().map(|n| n.id.clone()).collect();
        if workloads.is_empty() {
            return Err(RlError::Layout {
                what: format!("the graph `{}` has no service to scale", graph.name),
            });
        }
        let idx: BTreeMap<&str, usize> = workloads
            .iter()
            .enumerate()
            .map(|(i, w)| (w.as_str(), i))
            .collect();
        let bounds = workloads
            .iter()
            .map(|w| {
                facts
                    .iter()
                    .find(|f| &f.name == w)
                    .map_or((1, 50), |f| (f.min_replicas, f.max_replicas.max(1)))
            })
            .collect();
        let mut links = BTreeSet::new();
        let mut calls = Vec::new();
        let mut into: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        let mut out_of: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for e in &graph.edges {
            let (Some(&s), d) = (idx.get(e.src.as_str()), idx.get(e.dst.as_str())) else {
                continue;
            };
            match (e.relation, d) {
                (Relation::Calls, Some(&d)) => {
                    calls.push((s, d, e.ratio));
                    if s != d {
                        links.insert((s.min(d), s.max(d)));
                    }
                }
                (Relation::Produces | Relation::Publishes, _) => {
                    into.entry(e.dst.as_str()).or_default().push(s)
                }
                (Relation::Consumes | Relation::Subscribes, _) => {
                    out_of.entry(e.dst.as_str()).or_default().push(s)
                }
                _ => {}
            }
        }
        for (channel, producers) in &into {
            let kind = graph.node(channel).map(|n| n.kind);
            if !matches!(kind, Some(NodeKind::Queue | NodeKind::Topic)) {
                continue;
            }
            for &p in producers {
                for &c in out_of.get(channel).into_iter().flatten() {
                    if p != c {
                        links.insert((p.min(c), p.max(c)));
                    }
                }
            }
        }
        let entries = graph
            .entry_services()
            .iter()
            .filter_map(|e| idx.get(e).copied())
            .collect();
        Ok(PolicyGraph {
            workloads,
            bounds,
            links: links.into_iter().collect(),
            calls,
            entries,
            slo_ms,
        })
    }

    /// Checks that every index names a workload, bounds are ordered and the SLO is positive (a
    /// graph read from a file is checked before any tensor is built from it).
    pub fn check(&self) -> Result<(), RlError> {
        let n = self.workloads.len();
        let bad = |what: String| Err(RlError::Layout { what });
        if n == 0 || self.bounds.len() != n {
            return bad(format!("{n} workloads and {} bounds", self.bounds.len()));
        }
        if let Some((i, (lo, hi))) = self.bounds.iter().enumerate().find(|(_, (lo, hi))| lo > hi) {
            return bad(format!("workload {i}: min replicas {lo} > max {hi}"));
        }
        if let Some((a, b)) = self.links.iter().find(|(a, b)| *a >= n || *b >= n) {
            return bad(format!("link {a}-{b}, but there are {n} workloads"));
        }
        if let Some((a, b, r)) = self
            .calls
            .iter()
            .find(|(a, b, r)| *a >= n || *b >= n || !r.is_finite() || *r < 0.0)
        {
            return bad(format!("call {a} -> {b} (ratio {r}) with {n} workloads"));
        }
        if let Some(e) = self.entries.iter().find(|e| **e >= n) {
            return bad(format!("entry {e}, but there are {n} workloads"));
        }
        if !(self.slo_ms.is_finite() && self.slo_ms > 0.0) {
            return bad(format!("SLO {} ms is not a positive number", self.slo_ms));
        }
        Ok(())
    }

    /// Number of workloads.
    pub fn len(&self) -> usize {
        self.workloads.len()
    }

    /// Whether there is no workload (never, for a graph built by [`PolicyGraph::of`]).
    pub fn is_empty(&self) -> bool {
        self.workloads.is_empty()
    }

    /// Whether action `a` is allowed for workload `i` at `spec` replicas (its result within the
    /// bounds; holding is always allowed).
    pub fn allowed(&self, i: usize, spec: u32, a: usize) -> bool {
        if a == HOLD {
            return true;
        }
        let (lo, hi) = self.bounds[i];
        let Some(&d) = DELTAS.get(a) else {
            return false;
        };
        let to = i64::from(spec) + i64::from(d);
        to >= i64::from(lo) && to <= i64::from(hi)
    }

    /// The replicas action `a` sets for workload `i` at `spec`, or why it cannot be taken.
    pub fn target(&self, i: usize, spec: u32, a: usize) -> Result<u32, RlError> {
        let workload = self.workloads.get(i).cloned().unwrap_or_default();
        if a >= ACTIONS {
            return Err(RlError::Action {
                workload,
                reason: format!("action {a} is out of range 0..{ACTIONS}"),
            });
        }
        if !self.allowed(i, spec, a) {
            let (lo, hi) = self.bounds[i];
            return Err(RlError::Action {
                workload,
                reason: format!(
                    "{:+} from {spec} replicas leaves the bounds {lo}..={hi} (the action is masked)",
                    DELTAS[a]
                ),
            });
        }
        Ok((i64::from(spec) + i64::from(DELTAS[a])) as u32)
    }
}

/// One observation.
#[derive(Debug, Clone, PartialEq)]
pub struct Obs {
    /// `[workloads, NODE_FEATURES]`, row-major.
    pub nodes: Vec<f32>,
    /// `[GLOBAL_FEATURES]`.
    pub global: Vec<f32>,
    /// `[workloads, ACTIONS]`: whether each action is allowed.
    pub mask: Vec<bool>,
    /// `spec.replicas` per workload when observed.
    pub spec: Vec<u32>,
}

/// Builds observations; remembers the last request rates for the rate-change feature.
#[derive(Debug, Clone)]
pub struct ObsBuilder {
    graph: PolicyGraph,
    last_log_rps: Vec<Option<f64>>,
}

fn finite(x: Option<f64>) -> Option<f64> {
    x.filter(|v| v.is_finite())
}

impl ObsBuilder {
    /// A builder for `graph` with no history.
    pub fn new(graph: PolicyGraph) -> Self {
        let n = graph.len();
        ObsBuilder {
            graph,
            last_log_rps: vec![None; n],
        }
    }

    /// The graph.
    pub fn graph(&self) -> &PolicyGraph {
        &self.graph
    }

    /// Forgets the history (a new episode).
    pub fn reset(&mut self) {
        self.last_log_rps.iter_mut().for_each(|x| *x = None);
    }

    /// The observation of `snap`. A workload the snapshot lacks is an error; a missing or
    /// non-finite metric sets the workload's missing flag and leaves its feature at 0.
    pub fn build(&mut self, snap: &ClusterSnapshot) -> Result<Obs, RlError> {
        let g = &self.graph;
        let n = g.len();
        let by = snap.by_name();
        let mut nodes = vec![0f32; n * NODE_FEATURES];
        let mut mask = vec![false; n * ACTIONS];
        let mut spec = vec![0u32; n];
        let mut own_p95 = vec![0f64; n];
        let (mut used, mut requested, mut max_err) = (0f64, 0f64, 0f64);
        for (i, name) in g.workloads.iter().enumerate() {
            let w = by.get(name.as_str()).ok_or_else(|| RlError::Layout {
                what: format!("the snapshot has no workload `{name}` of the policy's graph"),
            })?;
            let mut missing = false;
            let mut take = |x: Option<f64>| {
                let v = finite(x);
                missing |= v.is_none();
                v.unwrap_or(0.0)
            };
            let rps = take(w.rps).max(0.0);
            let p95 = take(w.latency_p95_ms).max(0.0);
            let err = take(w.error_rate).clamp(0.0, 1.0);
            let backlog = take(w.backlog).max(0.0);
            let log_rps = rps.ln_1p();
            let d_rps = self.last_log_rps[i].map_or(0.0, |l| log_rps - l);
            self.last_log_rps[i] = Some(log_rps);
            let (mut cpu, mut req, mut mem, mut lim, mut ready) = (0.0, 0.0, 0.0, 0.0, 0u32);
            for p in &w.pods {
                if p.ready != Some(true) || p.deleting {
                    continue;
                }
                ready += 1;
                match (
                    p.cpu.map(|c| c.millicores).filter(|c| c.is_finite()),
                    p.requests.cpu_millicores,
                ) {
                    (Some(c), r) if r.is_finite() && r > 0.0 => {
                        cpu += c.max(0.0);
                        req += r;
                    }
                    _ => missing = true,
                }
                match (finite(p.memory_mib), p.limits.memory_mib) {
                    (Some(m), l) if l.is_finite() && l > 0.0 => {
                        mem += m.max(0.0);
                        lim += l;
                    }
                    _ => {}
                }
            }
            used += cpu;
            requested += req;
            max_err = max_err.max(err);
            own_p95[i] = p95;
            let s = w.spec_replicas;
            spec[i] = s;
            let max = f64::from(g.bounds[i].1.max(1));
            let row = &mut nodes[i * NODE_FEATURES..(i + 1) * NODE_FEATURES];
            let vals = [
                log_rps / 8.0,
                d_rps.clamp(-2.0, 2.0),
                if req > 0.0 {
                    (cpu / req).clamp(0.0, 4.0)
                } else {
                    0.0
                },
                if lim > 0.0 {
                    (mem / lim).clamp(0.0, 2.0)
                } else {
                    0.0
                },
                p95.ln_1p() / 8.0,
                err,
                backlog.ln_1p() / 10.0,
                if s > 0 {
                    (f64::from(ready) / f64::from(s)).min(1.0)
                } else {
                    0.0
                },
                f64::from(s).ln_1p() / 4.0,
                (f64::from(s) / max).min(1.0),
                if missing { 1.0 } else { 0.0 },
            ];
            for (o, v) in row.iter_mut().zip(vals) {
                *o = v.clamp(-8.0, 8.0) as f32;
            }
            for a in 0..ACTIONS {
                mask[i * ACTIONS + a] = g.allowed(i, s, a);
            }
        }
        let e2e = estimate_e2e(n, &g.calls, &own_p95);
        let worst = g.entries.iter().map(|&e| e2e[e]).fold(0.0f64, f64::max);
        let global = vec![
            if requested > 0.0 {
                (used / requested).clamp(0.0, 4.0) as f32
            } else {
                0.0
            },
            (worst / g.slo_ms).clamp(0.0, 4.0) as f32,
            max_err as f32,
        ];
        Ok(Obs {
            nodes,
            global,
            mask,
            spec,
        })
    }
}

/// End-to-end p95 per workload: its own plus its callees' (weighted by the call ratio), as the
/// simulator adds sequential calls. Cycles are cut by visiting each workload once per path.
pub fn estimate_e2e(n: usize, calls: &[(usize, usize, f64)], own: &[f64]) -> Vec<f64> {
    let mut out: Vec<Option<f64>> = vec![None; n];
    fn visit(
        i: usize,
        calls: &[(usize, usize, f64)],
        own: &[f64],
        out: &mut [Option<f64>],
        on_path: &mut [bool],
    ) -> f64 {
        if let Some(v) = out[i] {
            return v;
        }
        if on_path[i] {
            return 0.0;
        }
        on_path[i] = true;
        let mut v = own[i];
        for &(s, d, r) in calls {
            if s == i && d != i && r.is_finite() && r > 0.0 {
                v += r * visit(d, calls, own, out, on_path);
            }
        }
        on_path[i] = false;
        let v = v.min(1e9);
        out[i] = Some(v);
        v
    }
    let mut on_path = vec![false; n];
    for i in 0..n {
        visit(i, calls, own, &mut out, &mut on_path);
    }
    out.into_iter().map(|v| v.unwrap_or(0.0)).collect()
}
