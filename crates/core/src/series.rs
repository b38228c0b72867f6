//! Time series on the nodes and edges of an application graph, and their JSON schema.
//!
//! A [`GraphSeries`] holds one regular grid (`start_ms`, `step_ms`, `len`) and, for each node
//! and edge, a map from [`Metric`] to a vector of `len` values. Missing points are `NaN` in
//! memory and `null` in JSON, so "no data" never reads as zero. The schema is documented in
//! `docs/schema.md`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::graph::{AppGraph, Relation};

/// A measured quantity on a node or an edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Requests (or messages) per second arriving.
    Rps,
    /// CPU usage in millicores, summed over pods.
    CpuMillicores,
    /// Memory working set in MiB, summed over pods.
    MemoryMib,
    /// Median latency in milliseconds.
    LatencyP50Ms,
    /// 95th-percentile latency in milliseconds.
    LatencyP95Ms,
    /// 99th-percentile latency in milliseconds.
    LatencyP99Ms,
    /// Failed share of requests, 0..1.
    ErrorRate,
    /// Replicas the workload's spec asks for.
    ReplicasDesired,
    /// Replicas that are ready.
    ReplicasReady,
    /// Messages waiting in a queue or topic (consumer lag), or requests waiting at a service.
    Backlog,
    /// Requests (or messages) per second completed.
    Throughput,
}

impl Metric {
    /// Every metric, in a fixed order.
    pub const ALL: [Metric; 11] = [
        Metric::Rps,
        Metric::CpuMillicores,
        Metric::MemoryMib,
        Metric::LatencyP50Ms,
        Metric::LatencyP95Ms,
        Metric::LatencyP99Ms,
        Metric::ErrorRate,
        Metric::ReplicasDesired,
        Metric::ReplicasReady,
        Metric::Backlog,
        Metric::Throughput,
    ];
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The serde name, so CSV headers and JSON keys agree.
        let s = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        f.write_str(&s)
    }
}

/// Values of one node or edge, by metric; `NaN` is a missing point.
pub type MetricMap = BTreeMap<Metric, Vec<f64>>;

/// Series of one edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeSeries {
    /// Source node id.
    pub src: String,
    /// Destination node id.
    pub dst: String,
    /// Relation of the edge.
    pub relation: Relation,
    /// Values by metric.
    #[serde(with = "nan_as_null")]
    pub metrics: MetricMap,
}

/// Series on every node and edge of a graph, on one regular time grid. Deserialising does not
/// validate: [`GraphSeries::from_json`] does, or call [`GraphSeries::validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawSeries")]
pub struct GraphSeries {
    /// Format version of the JSON document; currently 1.
    pub version: u32,
    /// The graph the series belong to.
    pub graph: AppGraph,
    /// Time of the first point, ms since the start of the run (or the Unix epoch for real data).
    pub start_ms: u64,
    /// Distance between points in ms (> 0).
    pub step_ms: u64,
    /// Number of points in every series.
    pub len: usize,
    /// Node series by node id.
    #[serde(serialize_with = "ser_nodes")]
    pub nodes: BTreeMap<String, MetricMap>,
    /// Edge series.
    pub edges: Vec<EdgeSeries>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeries {
    version: u32,
    graph: AppGraph,
    start_ms: u64,
    step_ms: u64,
    len: usize,
    #[serde(deserialize_with = "de_nodes", default)]
    nodes: BTreeMap<String, MetricMap>,
    #[serde(default)]
    edges: Vec<EdgeSeries>,
}

impl From<RawSeries> for GraphSeries {
    fn from(raw: RawSeries) -> Self {
        GraphSeries {
            version: raw.version,
            graph: raw.graph,
            start_ms: raw.start_ms,
            step_ms: raw.step_ms,
            len: raw.len,
            nodes: raw.nodes,
            edges: raw.edges,
        }
    }
}

fn ser_nodes<S: serde::Serializer>(
    m: &BTreeMap<String, MetricMap>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let conv: BTreeMap<&String, BTreeMap<&Metric, Vec<Option<f64>>>> = m
        .iter()
        .map(|(k, v)| {
            (
                k,
                v.iter()
                    .map(|(mk, vals)| (mk, nan_as_null::to_opt(vals)))
                    .collect(),
            )
        })
        .collect();
    conv.serialize(s)
}

fn de_nodes<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, MetricMap>, D::Error> {
    let raw: BTreeMap<String, BTreeMap<Metric, Vec<Option<f64>>>> = BTreeMap::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                v.into_iter()
                    .map(|(m, vals)| (m, nan_as_null::from_opt(vals)))
                    .collect(),
            )
        })
        .collect())
}

mod nan_as_null {
    use super::*;

    pub fn to_opt(v: &[f64]) -> Vec<Option<f64>> {
        v.iter().map(|x| x.is_finite().then_some(*x)).collect()
    }

    pub fn from_opt(v: Vec<Option<f64>>) -> Vec<f64> {
        v.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect()
    }

    pub fn serialize<S: serde::Serializer>(m: &MetricMap, s: S) -> Result<S::Ok, S::Error> {
        let conv: BTreeMap<&Metric, Vec<Option<f64>>> =
            m.iter().map(|(k, v)| (k, to_opt(v))).collect();
        conv.serialize(s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<MetricMap, D::Error> {
        let raw: BTreeMap<Metric, Vec<Option<f64>>> = BTreeMap::deserialize(d)?;
        Ok(raw.into_iter().map(|(k, v)| (k, from_opt(v))).collect())
    }
}

impl GraphSeries {
    /// An empty set of series on the grid `start_ms + i * step_ms`, `i < len`.
    pub fn new(graph: AppGraph, start_ms: u64, step_ms: u64, len: usize) -> Self {
        GraphSeries {
            version: 1,
            graph,
            start_ms,
            step_ms,
            len,
            nodes: BTreeMap::new(),
            edges: Vec::new(),
        }
    }

    /// The series of `metric` on the edge `src -> dst` of `relation`, created (all NaN, `len`
    /// points) when the edge or the metric has none yet.
    pub fn edge_metric_mut(
        &mut self,
        src: &str,
        dst: &str,
        relation: Relation,
        metric: Metric,
    ) -> &mut Vec<f64> {
        let i = match self
            .edges
            .iter()
            .position(|e| e.src == src && e.dst == dst && e.relation == relation)
        {
            Some(i) => i,
            None => {
                self.edges.push(EdgeSeries {
                    src: src.to_string(),
                    dst: dst.to_string(),
                    relation,
                    metrics: MetricMap::new(),
                });
                self.edges.len() - 1
            }
        };
        let len = self.len;
        self.edges[i]
            .metrics
            .entry(metric)
            .or_insert_with(|| vec![f64::NAN; len])
    }

    /// Checks lengths, the grid and that every series belongs to a node or edge of the graph.
    pub fn validate(&self) -> Result<(), CoreError> {
        if self.version != 1 {
            return Err(CoreError::Invalid {
                field: "version".into(),
                reason: format!(
                    "unsupported format version {}, this build reads version 1",
                    self.version
                ),
            });
        }
        if self.step_ms == 0 {
            return Err(CoreError::Invalid {
                field: "step_ms".into(),
                reason: "must be > 0".into(),
            });
        }
        for (id, m) in &self.nodes {
            if self.graph.index_of(id).is_none() {
                return Err(CoreError::SeriesTarget {
                    what: format!("node `{id}`"),
                });
            }
            for (metric, v) in m {
                if v.len() != self.len {
                    return Err(CoreError::SeriesLength {
                        what: format!("nodes.{id}.{metric}"),
                        expected: self.len,
                        found: v.len(),
                    });
                }
            }
        }
        for e in &self.edges {
            let known = self
                .graph
                .edges
                .iter()
                .any(|g| g.src == e.src && g.dst == e.dst && g.relation == e.relation);
            if !known {
                return Err(CoreError::SeriesTarget {
                    what: format!("edge {} -[{}]-> {}", e.src, e.relation, e.dst),
                });
            }
            for (metric, v) in &e.metrics {
                if v.len() != self.len {
                    return Err(CoreError::SeriesLength {
                        what: format!("edges.{}->{}.{metric}", e.src, e.dst),
                        expected: self.len,
                        found: v.len(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Parses and validates series from JSON; `context` (a file name) prefixes any error.
    pub fn from_json(text: &str, context: &str) -> Result<Self, CoreError> {
        let s: GraphSeries = serde_json::from_str(text).map_err(|source| CoreError::Json {
            context: context.to_string(),
            source,
        })?;
        s.validate().map_err(|e| CoreError::Invalid {
            field: context.to_string(),
            reason: e.to_string(),
        })?;
        Ok(s)
    }

    /// Serialises to pretty JSON.
    pub fn to_json(&self) -> Result<String, CoreError> {
        serde_json::to_string_pretty(self).map_err(|source| CoreError::Json {
            context: "serialising graph series".into(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Edge, Node, NodeKind};

    fn graph() -> AppGraph {
        AppGraph::new(
            "g",
            vec![
                Node::new("a", NodeKind::Service),
                Node::new("b", NodeKind::Service),
            ],
            vec![Edge::new("a", "b", Relation::Calls, 2.0)],
        )
        .unwrap()
    }

    #[test]
    fn round_trip_keeps_missing_points_missing() {
        let mut s = GraphSeries::new(graph(), 0, 15_000, 3);
        s.nodes
            .entry("a".into())
            .or_default()
            .insert(Metric::Rps, vec![1.0, f64::NAN, 3.0]);
        s.edges.push(EdgeSeries {
            src: "a".into(),
            dst: "b".into(),
            relation: Relation::Calls,
            metrics: [(Metric::Rps, vec![2.0, 4.0, f64::NAN])]
                .into_iter()
                .collect(),
        });
        let text = s.to_json().unwrap();
        assert!(text.contains("null"));
        let back = GraphSeries::from_json(&text, "s.json").unwrap();
        let v = &back.nodes["a"][&Metric::Rps];
        assert_eq!(v[0], 1.0);
        assert!(v[1].is_nan());
        assert!(back.edges[0].metrics[&Metric::Rps][2].is_nan());
    }

    #[test]
    fn wrong_length_and_unknown_targets_are_named() {
        let mut s = GraphSeries::new(graph(), 0, 1000, 3);
        s.nodes
            .entry("a".into())
            .or_default()
            .insert(Metric::Rps, vec![1.0]);
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("nodes.a.rps"), "{err}");
        let mut s = GraphSeries::new(graph(), 0, 1000, 1);
        s.nodes
            .entry("zz".into())
            .or_default()
            .insert(Metric::Rps, vec![1.0]);
        assert!(s.validate().unwrap_err().to_string().contains("`zz`"));
    }
}
