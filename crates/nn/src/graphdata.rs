//! Tensorisation of an application graph's series for the graph models (issue #4): node
//! feature windows per node, edge features per relation, normalisation and targets.
//!
//! - Node features per step ([`NODE_METRICS`]): RPS, CPU millicores, memory MiB, p95 latency,
//!   error rate, backlog, ready replicas. Edge features ([`EDGE_METRICS`]): RPS, p95, errors.
//! - Normalisation: `z = (ln(1 + max(x, 0)) - mean) / std` per node (or edge) and metric, with
//!   the mean and standard deviation of the training range only; it is saved with the model.
//!   A missing point (NaN) becomes 0, the training mean. The standard deviation is at least
//!   [`MIN_LOG_STD`] and inputs are clamped to `±`[`MAX_Z`].
//! - Targets per service and step ahead `h = 1..horizon`: RPS, CPU and memory as the change of
//!   `z` from the last step (so a network that outputs 0 is persistence), and the replica count
//!   that keeps the service within its SLO: `ceil(rps(t + h) / capacity)`, at least 1, where
//!   `capacity` is the 95th percentile of RPS per ready replica over the training points whose
//!   p95 latency was within the SLO (`slo_ms`, or twice the service's median p95 when unset).
//!   Capacity is learned from the data, not configured.
//!
//! Pure data: no I/O, no tensors.

use graphscale_core::{AppGraph, GraphSeries, Metric, NodeKind};
use serde::{Deserialize, Serialize};

use crate::hgt::{NODE_KINDS, RELATIONS};
use crate::NnError;

/// Node features, in input order.
pub const NODE_METRICS: [Metric; 7] = [
    Metric::Rps,
    Metric::CpuMillicores,
    Metric::MemoryMib,
    Metric::LatencyP95Ms,
    Metric::ErrorRate,
    Metric::Backlog,
    Metric::ReplicasReady,
];

/// Edge features, in input order.
pub const EDGE_METRICS: [Metric; 3] = [Metric::Rps, Metric::LatencyP95Ms, Metric::ErrorRate];

/// Forecast targets with quantiles: the first three node features.
pub const TARGETS: [&str; 3] = ["rps", "cpu_m", "memory_mib"];

/// The quantiles predicted for each of [`TARGETS`].
pub const QUANTILES: [f32; 3] = [0.1, 0.5, 0.9];

/// Outputs per node and step ahead: 3 targets x 3 quantiles, then replicas.
pub const OUTPUTS_PER_STEP: usize = TARGETS.len() * QUANTILES.len() + 1;

/// Smallest standard deviation of `ln(1 + x)` (about 5 % relative change): a series that was
/// flat in training (one replica, constant memory) does not turn a small later change into a
/// huge input.
pub const MIN_LOG_STD: f64 = 0.05;

/// Normalised inputs are clamped to `[-MAX_Z, MAX_Z]`.
pub const MAX_Z: f64 = 10.0;

/// A predicted change is clamped to `[-MAX_STEP_Z, MAX_STEP_Z]` standard deviations from the
/// last value, so an input unlike anything in training cannot produce an unbounded forecast.
pub const MAX_STEP_Z: f64 = 4.0;

/// The structure a model is tied to: node ids and types, and edges with their relation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layout {
    /// Node ids, in the graph's order.
    pub nodes: Vec<String>,
    /// Index into [`NODE_KINDS`] per node.
    pub node_type: Vec<usize>,
    /// `(src, dst, relation index into RELATIONS)` per edge, in the graph's order.
    pub edges: Vec<(usize, usize, usize)>,
}

impl Layout {
    /// The layout of `g`.
    pub fn of(g: &AppGraph) -> Self {
        Layout {
            nodes: g.nodes.iter().map(|n| n.id.clone()).collect(),
            node_type: g
                .nodes
                .iter()
                .map(|n| NODE_KINDS.iter().position(|k| *k == n.kind).unwrap_or(0))
                .collect(),
            edges: g
                .edges
                .iter()
                .map(|e| {
                    (
                        g.index_of(&e.src).unwrap_or(0),
                        g.index_of(&e.dst).unwrap_or(0),
                        RELATIONS.iter().position(|r| *r == e.relation).unwrap_or(0),
                    )
                })
                .collect(),
        }
    }

    /// Whether node `i` is a service (the nodes with targets).
    pub fn is_service(&self, i: usize) -> bool {
        NODE_KINDS[self.node_type[i]] == NodeKind::Service
    }

    /// Checks that `g` has exactly this layout's nodes and edges, naming the first difference.
    pub fn check(&self, g: &AppGraph) -> Result<(), NnError> {
        for n in &g.nodes {
            if !self.nodes.contains(&n.id) {
                return Err(NnError::Layout {
                    what: format!(
                        "unknown node id `{}`: the model was trained on {} nodes ({}...)",
                        n.id,
                        self.nodes.len(),
                        self.nodes
                            .iter()
                            .take(3)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
        let other = Layout::of(g);
        for (i, n) in self.nodes.iter().enumerate() {
            match other.nodes.iter().position(|x| x == n) {
                None => {
                    return Err(NnError::Layout {
                        what: format!("node `{n}` of the model is missing"),
                    })
                }
                Some(j) if j != i || other.node_type[j] != self.node_type[i] => {
                    return Err(NnError::Layout {
                        what: format!(
                            "node `{n}`: position or kind differs from the model's graph"
                        ),
                    })
                }
                _ => {}
            }
        }
        if other.edges != self.edges {
            return Err(NnError::Layout {
                what: format!(
                    "the edges differ from the model's graph ({} edges there, {} here)",
                    self.edges.len(),
                    other.edges.len()
                ),
            });
        }
        Ok(())
    }
}

/// Mean and standard deviation of `ln(1 + x)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LogScale {
    /// Mean.
    pub mean: f64,
    /// Standard deviation (> 0).
    pub std: f64,
}

impl LogScale {
    fn of(v: impl Iterator<Item = f64>) -> Self {
        let xs: Vec<f64> = v
            .filter(|x| x.is_finite())
            .map(|x| x.max(0.0).ln_1p())
            .collect();
        if xs.is_empty() {
            return LogScale {
                mean: 0.0,
                std: 1.0,
            };
        }
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let std = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        LogScale {
            mean,
            std: std.max(MIN_LOG_STD),
        }
    }

    /// `x` in normalised units (NaN stays NaN).
    pub fn z(&self, x: f64) -> f64 {
        (x.max(0.0).ln_1p() - self.mean) / self.std
    }

    /// Back from normalised units.
    pub fn x(&self, z: f64) -> f64 {
        ((z * self.std + self.mean).exp() - 1.0).max(0.0)
    }
}

/// Everything needed to turn series into model inputs and outputs back into units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalisation {
    /// Per node, per [`NODE_METRICS`].
    pub node: Vec<Vec<LogScale>>,
    /// Per edge, per [`EDGE_METRICS`].
    pub edge: Vec<Vec<LogScale>>,
    /// Requests/s one replica sustains within the SLO, per node (0 where unknown).
    pub capacity_rps: Vec<f64>,
}

/// One series in model form.
#[derive(Debug, Clone)]
pub struct Tensorised {
    /// Steps.
    pub len: usize,
    /// Normalised node features `[t][node][feature]`, NaN as 0.
    pub x: Vec<f32>,
    /// Raw values of [`TARGETS`] `[t][node][target]`, NaN where missing.
    pub raw: Vec<f64>,
    /// Ready replicas `[t][node]` (1 where unknown).
    pub replicas: Vec<f64>,
    /// Normalised edge features `[t][edge][feature]`, NaN as 0.
    pub e: Vec<f32>,
}

fn node_values<'a>(s: &'a GraphSeries, id: &str, m: Metric) -> Option<&'a Vec<f64>> {
    s.nodes.get(id).and_then(|mm| mm.get(&m))
}

fn edge_values<'a>(
    s: &'a GraphSeries,
    layout: &Layout,
    k: usize,
    m: Metric,
) -> Option<&'a Vec<f64>> {
    let (a, b, r) = layout.edges[k];
    s.edges
        .iter()
        .find(|e| {
            e.src == layout.nodes[a] && e.dst == layout.nodes[b] && e.relation == RELATIONS[r]
        })
        .and_then(|e| e.metrics.get(&m))
}

/// Checks that every value is a finite number or missing (NaN), naming the node, metric and
/// point of the first infinite one.
pub fn check_values(s: &GraphSeries) -> Result<(), NnError> {
    for (id, mm) in &s.nodes {
        for (m, v) in mm {
            if let Some(i) = v.iter().position(|x| x.is_infinite()) {
                return Err(NnError::Data {
                    what: format!(
                        "node `{id}`, metric `{m}`, point {i}: {} is not a finite number",
                        v[i]
                    ),
                });
            }
        }
    }
    for e in &s.edges {
        for (m, v) in &e.metrics {
            if let Some(i) = v.iter().position(|x| x.is_infinite()) {
                return Err(NnError::Data {
                    what: format!(
                        "edge {} -> {}, metric `{m}`, point {i}: {} is not a finite number",
                        e.src, e.dst, v[i]
                    ),
                });
            }
        }
    }
    Ok(())
}

fn quantile(mut v: Vec<f64>, q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[((v.len() - 1) as f64 * q).round() as usize])
}

impl Normalisation {
    /// Fits the normalisation on the first `upto[k]` points of each `series[k]`; `slo_ms` is the
    /// p95 objective for the capacity estimate (per service: twice its median p95 when `None`).
    pub fn fit(
        layout: &Layout,
        series: &[&GraphSeries],
        upto: &[usize],
        slo_ms: Option<f64>,
    ) -> Self {
        let range = |k: usize, v: &Vec<f64>| v[..upto[k].min(v.len())].to_vec();
        let node = layout
            .nodes
            .iter()
            .map(|id| {
                NODE_METRICS
                    .iter()
                    .map(|m| {
                        LogScale::of(series.iter().enumerate().flat_map(|(k, s)| {
                            node_values(s, id, *m)
                                .map(|v| range(k, v))
                                .unwrap_or_default()
                        }))
                    })
                    .collect()
            })
            .collect();
        let edge = (0..layout.edges.len())
            .map(|e| {
                EDGE_METRICS
                    .iter()
                    .map(|m| {
                        LogScale::of(series.iter().enumerate().flat_map(|(k, s)| {
                            edge_values(s, layout, e, *m)
                                .map(|v| range(k, v))
                                .unwrap_or_default()
                        }))
                    })
                    .collect()
            })
            .collect();
        let capacity_rps = layout
            .nodes
            .iter()
            .enumerate()
            .map(|(i, id)| {
                if !layout.is_service(i) {
                    return 0.0;
                }
                let mut pts = Vec::new();
                for (k, s) in series.iter().enumerate() {
                    let get = |m| node_values(s, id, m).map(|v| range(k, v));
                    let (Some(rps), p95, reps) = (
                        get(Metric::Rps),
                        get(Metric::LatencyP95Ms),
                        get(Metric::ReplicasReady),
                    ) else {
                        continue;
                    };
                    for t in 0..rps.len() {
                        let r = reps.as_ref().map_or(1.0, |v| v[t]);
                        let l = p95.as_ref().map_or(f64::NAN, |v| v[t]);
                        pts.push((rps[t], r, l));
                    }
                }
                let slo = slo_ms.unwrap_or_else(|| {
                    quantile(
                        pts.iter().map(|p| p.2).filter(|x| x.is_finite()).collect(),
                        0.5,
                    )
                    .map_or(f64::INFINITY, |m| 2.0 * m)
                });
                let ratios: Vec<f64> = pts
                    .iter()
                    .filter(|(rps, r, l)| {
                        rps.is_finite() && *rps > 0.0 && *r >= 1.0 && (l.is_nan() || *l <= slo)
                    })
                    .map(|(rps, r, _)| rps / r)
                    .collect();
                quantile(ratios, 0.95).unwrap_or(0.0)
            })
            .collect();
        Normalisation {
            node,
            edge,
            capacity_rps,
        }
    }

    /// Replicas node `i` needs for `rps` (NaN when its capacity or the load is unknown).
    pub fn replicas_for(&self, i: usize, rps: f64) -> f64 {
        let c = self.capacity_rps[i];
        if c > 0.0 && rps.is_finite() {
            (rps / c).ceil().max(1.0)
        } else {
            f64::NAN
        }
    }

    /// Replicas node `i` needs for `rps` as a count: at least 1, and 1 where unknown.
    pub fn replica_count(&self, i: usize, rps: f64) -> u32 {
        let r = self.replicas_for(i, rps);
        if r.is_finite() {
            r.clamp(1.0, 1e9) as u32
        } else {
            1
        }
    }

    /// `s` in model form. `s` must have the layout's graph (see [`Layout::check`]).
    pub fn tensorise(&self, layout: &Layout, s: &GraphSeries) -> Result<Tensorised, NnError> {
        check_values(s)?;
        let (n, m, len) = (layout.nodes.len(), layout.edges.len(), s.len);
        let (fx, fe) = (NODE_METRICS.len(), EDGE_METRICS.len());
        let mut x = vec![0f32; len * n * fx];
        let mut raw = vec![f64::NAN; len * n * TARGETS.len()];
        let mut replicas = vec![1f64; len * n];
        for (i, id) in layout.nodes.iter().enumerate() {
            for (f, metric) in NODE_METRICS.iter().enumerate() {
                let Some(v) = node_values(s, id, *metric) else {
                    continue;
                };
                let sc = self.node[i][f];
                for (t, val) in v.iter().enumerate().take(len) {
                    if val.is_finite() {
                        x[(t * n + i) * fx + f] = sc.z(*val).clamp(-MAX_Z, MAX_Z) as f32;
                        if f < TARGETS.len() {
                            raw[(t * n + i) * TARGETS.len() + f] = *val;
                        }
                        if *metric == Metric::ReplicasReady {
                            replicas[t * n + i] = val.max(0.0);
                        }
                    }
                }
            }
        }
        let mut e = vec![0f32; len * m * fe];
        for k in 0..m {
            for (f, metric) in EDGE_METRICS.iter().enumerate() {
                let Some(v) = edge_values(s, layout, k, *metric) else {
                    continue;
                };
                let sc = self.edge[k][f];
                for (t, val) in v.iter().enumerate().take(len) {
                    if val.is_finite() {
                        e[(t * m + k) * fe + f] = sc.z(*val).clamp(-MAX_Z, MAX_Z) as f32;
                    }
                }
            }
        }
        Ok(Tensorised {
            len,
            x,
            raw,
            replicas,
            e,
        })
    }
}

impl Tensorised {
    /// Node inputs of the window ending at `t` (inclusive): `[node][window * features + type]`
    /// with a one-hot node type after the window, appended to `out`.
    pub fn node_window(&self, layout: &Layout, t: usize, window: usize, out: &mut Vec<f32>) {
        let n = layout.nodes.len();
        let fx = NODE_METRICS.len();
        for i in 0..n {
            for s in (t + 1 - window)..=t {
                let o = (s * n + i) * fx;
                out.extend_from_slice(&self.x[o..o + fx]);
            }
            for k in 0..NODE_KINDS.len() {
                out.push(if layout.node_type[i] == k { 1.0 } else { 0.0 });
            }
        }
    }

    /// Edge features at `t`: `[edge][feature]`.
    pub fn edges_at(&self, layout: &Layout, t: usize) -> &[f32] {
        let w = layout.edges.len() * EDGE_METRICS.len();
        &self.e[t * w..(t + 1) * w]
    }

    /// Raw target `k` of node `i` at `t`.
    pub fn raw(&self, layout: &Layout, t: usize, i: usize, k: usize) -> f64 {
        self.raw[(t * layout.nodes.len() + i) * TARGETS.len() + k]
    }

    /// Normalised feature `f` of node `i` at `t`.
    pub fn z(&self, layout: &Layout, t: usize, i: usize, f: usize) -> f32 {
        self.x[(t * layout.nodes.len() + i) * NODE_METRICS.len() + f]
    }
}

/// Input features per node for a window: the window of node features and the type one-hot.
pub fn input_width(window: usize) -> usize {
    window * NODE_METRICS.len() + NODE_KINDS.len()
}
