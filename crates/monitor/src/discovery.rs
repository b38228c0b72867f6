//! The heterogeneous application graph from telemetry, or from a Kiali graph file.
//!
//! From Prometheus, at one instant:
//! - **services**: deployments of the namespace (kube-state-metrics), plus every workload seen in
//!   Istio traffic;
//! - **calls**: Istio's `source_workload -> destination_workload` pairs with traffic; their
//!   features are RPS, p95 latency and error rate; `source_workload="unknown"` is traffic from
//!   outside (an entry). The call `ratio` is the edge's rate divided by the caller's incoming
//!   rate: calls per request served, as the simulator defines it;
//! - **queues and topics** (kafka-exporter): producers from `kafka_producer_record_send_total`,
//!   consumers from consumer groups (named after the consuming workload). A topic whose groups
//!   share the work (`sum of consumed + lag = produced`) is a queue (`produces` / `consumes`); one
//!   whose groups each see every message (`consumed + lag = produced` per group, two or more
//!   groups) is a topic (`publishes` / `subscribes`). Config can name queues and topics outright;
//! - **runs_on**: pod placement from `kube_pod_info` (the ReplicaSet name minus its hash is the
//!   deployment).
//!
//! Explicit edges in [`DiscoveryConfig::edges`] replace discovered edges of the same
//! (src, dst, relation) and add the rest; `ignore` drops edges.

use std::collections::{BTreeMap, BTreeSet};

use graphscale_core::{AppGraph, Edge, Node, NodeKind, Relation};
use serde::{Deserialize, Serialize};

use crate::prom::{PromClient, Sample};
use crate::templates::{render, Templates};
use crate::MonitorError;

/// The largest rate (requests per second) a Kiali edge may report.
pub const MAX_KIALI_RATE: f64 = 1e9;
/// The largest Kiali export `discover --kiali FILE` reads (it is parsed whole); Kiali's graph
/// of a namespace with thousands of workloads is a few MiB.
pub const MAX_KIALI_FILE_BYTES: u64 = 64 << 20;

/// Discovery settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// Kubernetes namespace; default `default`.
    pub namespace: String,
    /// Name of the graph; default the namespace.
    pub name: Option<String>,
    /// Edges to add or override.
    pub edges: Vec<Edge>,
    /// Edges to drop, as (src, dst).
    pub ignore: Vec<(String, String)>,
    /// Messaging entities that are queues whatever the counters say.
    pub queues: Vec<String>,
    /// Messaging entities that are topics whatever the counters say.
    pub topics: Vec<String>,
    /// Divide discovered rates by this (for a simulator running k times faster than real time);
    /// default 1.
    pub time_scale: f64,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            namespace: "default".into(),
            name: None,
            edges: Vec::new(),
            ignore: Vec::new(),
            queues: Vec::new(),
            topics: Vec::new(),
            time_scale: 1.0,
        }
    }
}

/// Features of one edge at discovery time; `None` is "no data", never zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeFeatures {
    /// Source.
    pub src: String,
    /// Destination.
    pub dst: String,
    /// Relation.
    pub relation: Relation,
    /// Calls or messages per second.
    pub rps: Option<f64>,
    /// p95 latency, ms.
    pub latency_p95_ms: Option<f64>,
    /// Failed share.
    pub error_rate: Option<f64>,
    /// Backlog (consumer lag) for consume/subscribe edges.
    pub backlog: Option<f64>,
}

impl EdgeFeatures {
    /// An edge with no measured features yet.
    pub fn bare(src: &str, dst: &str, relation: Relation) -> Self {
        EdgeFeatures {
            src: src.to_string(),
            dst: dst.to_string(),
            relation,
            rps: None,
            latency_p95_ms: None,
            error_rate: None,
            backlog: None,
        }
    }
}

/// A discovered graph with its edge features and entry rates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveredGraph {
    /// The graph.
    pub graph: AppGraph,
    /// Requests per second from outside, per entry workload.
    pub entries: BTreeMap<String, f64>,
    /// Features per edge.
    pub features: Vec<EdgeFeatures>,
}

fn label<'a>(s: &'a Sample, name: &str) -> Option<&'a str> {
    s.labels
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// Builds the graph from the current telemetry (`at`: Unix seconds, `None` = now).
pub async fn discover(
    client: &PromClient,
    templates: &Templates,
    cfg: &DiscoveryConfig,
    at: Option<f64>,
) -> Result<DiscoveredGraph, MonitorError> {
    if !(cfg.time_scale.is_finite() && cfg.time_scale > 0.0) {
        return Err(MonitorError::Invalid(format!(
            "time_scale must be > 0, got {}",
            cfg.time_scale
        )));
    }
    templates.validate(&cfg.namespace)?;
    let q = |name: &str, t: &str| render(name, t, &cfg.namespace, &templates.window);
    let deployments = client
        .query(&q("deployments", &templates.deployments)?, at)
        .await?;
    let edge_rps = client
        .query(&q("edge_rps", &templates.edge_rps)?, at)
        .await?;
    let edge_err = client
        .query(&q("edge_error_rate", &templates.edge_error_rate)?, at)
        .await?;
    let recorded = crate::recorded::probe(client, templates, &cfg.namespace, at).await?;
    let edge_p95 = if recorded.edge {
        q(
            "recorded_edge_latency_p95_ms",
            &templates.recorded_edge_latency_p95_ms,
        )?
    } else {
        q("edge_latency_p95_ms", &templates.edge_latency_p95_ms)?
    };
    let edge_p95 = client.query(&edge_p95, at).await?;
    let pods = client
        .query(&q("pod_info", &templates.pod_info)?, at)
        .await?;
    let offsets = client
        .query(&q("topic_offset", &templates.topic_offset)?, at)
        .await?;
    let groups = client
        .query(&q("group_offset", &templates.group_offset)?, at)
        .await?;
    let lags = client
        .query(&q("group_lag", &templates.group_lag)?, at)
        .await?;
    let sends = client
        .query(&q("producer_sends", &templates.producer_sends)?, at)
        .await?;
    let scale = cfg.time_scale;

    let mut b = Builder::default();
    for s in &deployments {
        if let Some(d) = label(s, "deployment") {
            b.node(d, NodeKind::Service);
        }
    }
    let key = |s: &Sample| {
        Some((
            label(s, "source_workload")?.to_string(),
            label(s, "destination_workload")?.to_string(),
        ))
    };
    let by_edge = |v: &[Sample]| -> BTreeMap<(String, String), Option<f64>> {
        v.iter().filter_map(|s| Some((key(s)?, s.value))).collect()
    };
    let (err, p95) = (by_edge(&edge_err), by_edge(&edge_p95));
    let mut incoming: BTreeMap<String, f64> = BTreeMap::new();
    let mut calls = Vec::new();
    for s in &edge_rps {
        let Some((src, dst)) = key(s) else { continue };
        let rps = s.value.map(|v| v / scale);
        b.node(&dst, NodeKind::Service);
        *incoming.entry(dst.clone()).or_default() += rps.unwrap_or(0.0);
        if src == "unknown" {
            b.entries.insert(dst, rps.unwrap_or(0.0));
        } else {
            b.node(&src, NodeKind::Service);
            calls.push((src, dst, rps));
        }
    }
    for (src, dst, rps) in calls {
        let inc = incoming.get(&src).copied().unwrap_or(0.0);
        let ratio = match rps {
            Some(r) if inc > 0.0 => r / inc,
            _ => 1.0,
        };
        let k = (src.clone(), dst.clone());
        b.edge(
            Edge::new(&src, &dst, Relation::Calls, round3(ratio)),
            EdgeFeatures {
                src,
                dst,
                relation: Relation::Calls,
                rps,
                latency_p95_ms: p95.get(&k).copied().flatten(),
                error_rate: err.get(&k).copied().flatten(),
                backlog: None,
            },
        );
    }
    // Messaging.
    let produced: BTreeMap<&str, f64> = offsets
        .iter()
        .filter_map(|s| Some((label(s, "topic")?, s.value.unwrap_or(0.0))))
        .collect();
    let mut group_rows: BTreeMap<&str, Vec<(&str, f64, f64)>> = BTreeMap::new();
    let lag_of: BTreeMap<(&str, &str), f64> = lags
        .iter()
        .filter_map(|s| {
            Some((
                (label(s, "topic")?, label(s, "consumergroup")?),
                s.value.unwrap_or(0.0),
            ))
        })
        .collect();
    for s in &groups {
        let (Some(t), Some(g)) = (label(s, "topic"), label(s, "consumergroup")) else {
            continue;
        };
        let lag = lag_of.get(&(t, g)).copied().unwrap_or(0.0);
        group_rows
            .entry(t)
            .or_default()
            .push((g, s.value.unwrap_or(0.0), lag));
    }
    let mut topic_names: BTreeSet<&str> = produced.keys().copied().collect();
    topic_names.extend(group_rows.keys().copied());
    for t in topic_names {
        let p = produced.get(t).copied().unwrap_or(0.0);
        let rows = group_rows.get(t).cloned().unwrap_or_default();
        let kind = if cfg.queues.iter().any(|x| x == t) {
            NodeKind::Queue
        } else if cfg.topics.iter().any(|x| x == t) {
            NodeKind::Topic
        } else {
            classify(p, &rows)
        };
        b.node(t, kind);
        let (prod_rel, cons_rel) = if kind == NodeKind::Queue {
            (Relation::Produces, Relation::Consumes)
        } else {
            (Relation::Publishes, Relation::Subscribes)
        };
        for s in sends.iter().filter(|s| label(s, "topic") == Some(t)) {
            if let Some(client_id) = label(s, "client_id") {
                b.node(client_id, NodeKind::Service);
                b.edge(
                    Edge::new(client_id, t, prod_rel, 1.0),
                    EdgeFeatures::bare(client_id, t, prod_rel),
                );
            }
        }
        for (g, _, lag) in rows {
            b.node(g, NodeKind::Service);
            b.edge(
                Edge::new(g, t, cons_rel, 1.0),
                EdgeFeatures {
                    backlog: Some(lag),
                    ..EdgeFeatures::bare(g, t, cons_rel)
                },
            );
        }
    }
    // Placement.
    for s in &pods {
        let (Some(rs), Some(node)) = (label(s, "created_by_name"), label(s, "node")) else {
            continue;
        };
        let Some((deployment, _hash)) = rs.rsplit_once('-') else {
            continue;
        };
        if b.kinds.get(deployment) != Some(&NodeKind::Service) {
            continue;
        }
        b.node(node, NodeKind::ClusterNode);
        b.edge(
            Edge::new(deployment, node, Relation::RunsOn, 1.0),
            EdgeFeatures::bare(deployment, node, Relation::RunsOn),
        );
    }
    b.finish(
        cfg.name.clone().unwrap_or_else(|| cfg.namespace.clone()),
        cfg,
    )
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Queue or topic from the counters: see the module docs. Tolerance: 5 % of produced plus 10.
fn classify(produced: f64, groups: &[(&str, f64, f64)]) -> NodeKind {
    let tol = 0.05 * produced + 10.0;
    let shared: f64 =
        groups.iter().map(|g| g.1).sum::<f64>() + groups.iter().map(|g| g.2).fold(0.0, f64::max);
    let each = groups.iter().all(|g| (g.1 + g.2 - produced).abs() <= tol);
    if groups.len() >= 2 && each {
        NodeKind::Topic
    } else if (shared - produced).abs() <= tol || groups.len() <= 1 {
        NodeKind::Queue
    } else {
        NodeKind::Topic
    }
}

#[derive(Default)]
struct Builder {
    kinds: BTreeMap<String, NodeKind>,
    order: Vec<String>,
    edges: BTreeMap<(String, String, Relation), (Edge, EdgeFeatures)>,
    entries: BTreeMap<String, f64>,
}

impl Builder {
    fn node(&mut self, id: &str, kind: NodeKind) {
        if !self.kinds.contains_key(id) {
            self.kinds.insert(id.to_string(), kind);
            self.order.push(id.to_string());
        }
    }

    fn edge(&mut self, e: Edge, f: EdgeFeatures) {
        self.edges
            .insert((e.src.clone(), e.dst.clone(), e.relation), (e, f));
    }

    fn finish(
        mut self,
        name: String,
        cfg: &DiscoveryConfig,
    ) -> Result<DiscoveredGraph, MonitorError> {
        for e in &cfg.edges {
            let (sk, dk) = e.relation.endpoint_kinds();
            self.node(&e.src, sk);
            self.node(&e.dst, dk);
            let f = EdgeFeatures::bare(&e.src, &e.dst, e.relation);
            self.edge(e.clone(), f);
        }
        self.edges
            .retain(|(s, d, _), _| !cfg.ignore.iter().any(|(a, b)| a == s && b == d));
        let nodes: Vec<Node> = self
            .order
            .iter()
            .map(|id| Node::new(id, self.kinds[id]))
            .collect();
        let (edges, features): (Vec<Edge>, Vec<EdgeFeatures>) = self.edges.into_values().unzip();
        Ok(DiscoveredGraph {
            graph: AppGraph::new(name, nodes, edges)?,
            entries: self.entries,
            features,
        })
    }
}

/// Reads a Kiali graph (`GET /api/namespaces/{ns}/graph`, the Cytoscape JSON that Kiali
/// returns) from `text` (`file` names it in errors). Workload and app nodes become services;
/// Kubernetes service nodes are collapsed (`a -> svc -> b` becomes `a -> b`); `unknown` nodes
/// are outside traffic (entries); boxes are skipped. Edge rates come from
/// `traffic.rates.http` (or `grpc`, `tcp`), errors from `httpPercentErr`.
pub fn from_kiali(text: &str, file: &str) -> Result<DiscoveredGraph, MonitorError> {
    let bad = |reason: String| MonitorError::Kiali {
        file: file.to_string(),
        reason,
    };
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let elements = v
        .get("elements")
        .ok_or_else(|| bad("missing `elements`".into()))?;
    let arr = |key: &str| -> Result<&[serde_json::Value], MonitorError> {
        match elements.get(key) {
            None | Some(serde_json::Value::Null) => Ok(&[]),
            Some(serde_json::Value::Array(a)) => Ok(a.as_slice()),
            Some(_) => Err(bad(format!("`elements.{key}` is not a list"))),
        }
    };
    #[derive(Clone)]
    enum K {
        Service(String),
        Collapse,
        Outside,
    }
    let mut ids: BTreeMap<String, K> = BTreeMap::new();
    let mut b = Builder::default();
    for (i, n) in arr("nodes")?.iter().enumerate() {
        let d = n
            .get("data")
            .ok_or_else(|| bad(format!("elements.nodes[{i}]: missing `data`")))?;
        let s = |k: &str| d.get(k).and_then(|x| x.as_str()).filter(|x| !x.is_empty());
        let id = s("id").ok_or_else(|| bad(format!("elements.nodes[{i}]: missing `data.id`")))?;
        if d.get("isBox").is_some_and(|x| !x.is_null()) {
            continue;
        }
        let kind = s("nodeType")
            .ok_or_else(|| bad(format!("elements.nodes[{i}]: missing `data.nodeType`")))?;
        let k = match kind {
            "workload" => K::Service(s("workload").or(s("app")).unwrap_or(id).to_string()),
            "app" => K::Service(s("workload").or(s("app")).unwrap_or(id).to_string()),
            "service" => K::Collapse,
            "unknown" => K::Outside,
            other => {
                return Err(bad(format!(
                    "elements.nodes[{i}]: unknown node type `{other}` (known: workload, app, service, unknown, box)"
                )))
            }
        };
        if let K::Service(name) = &k {
            b.node(name, NodeKind::Service);
        }
        // A repeated id would send the first node's traffic to the second: refused.
        if ids.insert(id.to_string(), k).is_some() {
            return Err(bad(format!(
                "elements.nodes[{i}]: node id `{}` appears twice",
                graphscale_core::error::quote(id)
            )));
        }
    }
    // Edges, with service nodes collapsed.
    let mut into_svc: BTreeMap<String, Vec<(K, f64, Option<f64>)>> = BTreeMap::new();
    let mut out_of_svc: Vec<(String, K, f64, Option<f64>)> = Vec::new();
    let mut direct: Vec<(K, K, f64, Option<f64>)> = Vec::new();
    for (i, e) in arr("edges")?.iter().enumerate() {
        let d = e
            .get("data")
            .ok_or_else(|| bad(format!("elements.edges[{i}]: missing `data`")))?;
        let s = |k: &str| d.get(k).and_then(|x| x.as_str());
        let (Some(src), Some(dst)) = (s("source"), s("target")) else {
            return Err(bad(format!(
                "elements.edges[{i}]: missing `source` or `target`"
            )));
        };
        let ks = ids
            .get(src)
            .cloned()
            .ok_or_else(|| bad(format!("elements.edges[{i}]: unknown source node `{src}`")))?;
        let kd = ids
            .get(dst)
            .cloned()
            .ok_or_else(|| bad(format!("elements.edges[{i}]: unknown target node `{dst}`")))?;
        let rates = d.get("traffic").and_then(|t| t.get("rates"));
        let num = |k: &str| -> Result<Option<f64>, MonitorError> {
            let v = match rates.and_then(|r| r.get(k)) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(x)) => x.parse::<f64>().map(Some).map_err(|_| {
                    bad(format!(
                        "elements.edges[{i}]: traffic.rates.{k} `{}` is not a number",
                        graphscale_core::error::quote(x)
                    ))
                }),
                Some(serde_json::Value::Number(x)) => Ok(x.as_f64()),
                Some(other) => Err(bad(format!(
                    "elements.edges[{i}]: traffic.rates.{k} is {}",
                    graphscale_core::error::quote(&other.to_string())
                ))),
            }?;
            // A rate is a count per second: negative, infinite or absurd is an error, not
            // traffic (1e308 would make every downstream latency infinite).
            match v {
                Some(x) if !(x.is_finite() && (0.0..=MAX_KIALI_RATE).contains(&x)) => {
                    Err(bad(format!(
                        "elements.edges[{i}]: traffic.rates.{k} must be in 0..={MAX_KIALI_RATE}, got {x}"
                    )))
                }
                v => Ok(v),
            }
        };
        let rps = num("http")?.or(num("grpc")?).or(num("tcp")?).unwrap_or(0.0);
        let err = match num("httpPercentErr")?.or(num("grpcPercentErr")?) {
            // A percentage of the edge's requests: above 100 is no share at all.
            Some(p) if p > 100.0 => {
                return Err(bad(format!(
                    "elements.edges[{i}]: an error percentage must be in 0..=100, got {p}"
                )))
            }
            p => p.map(|p| p / 100.0),
        };
        match (&ks, &kd) {
            (_, K::Collapse) => into_svc
                .entry(dst.to_string())
                .or_default()
                .push((ks, rps, err)),
            (K::Collapse, _) => out_of_svc.push((src.to_string(), kd, rps, err)),
            _ => direct.push((ks, kd, rps, err)),
        }
    }
    for (svc, dst, rps, err) in out_of_svc {
        let callers = into_svc.get(&svc).cloned().unwrap_or_default();
        let total: f64 = callers.iter().map(|c| c.1).sum();
        for (src, r, caller_err) in callers {
            // Split the service's outgoing traffic in proportion to its callers; errors as
            // reported on either hop.
            let share = if total > 0.0 { r / total } else { 1.0 };
            direct.push((src, dst.clone(), rps * share, err.or(caller_err)));
        }
    }
    let mut incoming: BTreeMap<String, f64> = BTreeMap::new();
    let mut calls = Vec::new();
    for (s, d, rps, err) in direct {
        let K::Service(dst) = d else { continue };
        *incoming.entry(dst.clone()).or_default() += rps;
        match s {
            K::Outside => *b.entries.entry(dst).or_default() += rps,
            K::Service(src) => calls.push((src, dst, rps, err)),
            K::Collapse => {}
        }
    }
    for (src, dst, rps, err) in calls {
        let inc = incoming.get(&src).copied().unwrap_or(0.0);
        let ratio = if inc > 0.0 { rps / inc } else { 1.0 };
        b.edge(
            Edge::new(&src, &dst, Relation::Calls, round3(ratio)),
            EdgeFeatures {
                src,
                dst,
                relation: Relation::Calls,
                rps: Some(rps),
                latency_p95_ms: None,
                error_rate: err,
                backlog: None,
            },
        );
    }
    b.finish(file.to_string(), &DiscoveryConfig::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_queues_and_topics() {
        // Three subscribers each saw everything: a topic.
        assert_eq!(
            classify(
                1000.0,
                &[("a", 990.0, 10.0), ("b", 1000.0, 0.0), ("c", 995.0, 5.0)]
            ),
            NodeKind::Topic
        );
        // Two consumers shared the work: a queue.
        assert_eq!(
            classify(1000.0, &[("a", 600.0, 20.0), ("b", 380.0, 20.0)]),
            NodeKind::Queue
        );
        assert_eq!(classify(1000.0, &[("a", 990.0, 10.0)]), NodeKind::Queue);
    }

    #[test]
    fn kiali_graph_collapses_service_nodes() {
        let text = include_str!("../tests/data/kiali.json");
        let g = from_kiali(text, "kiali.json").unwrap();
        assert_eq!(g.entries["frontend"], 10.0);
        let e = &g.graph.edges[0];
        assert_eq!(
            (e.src.as_str(), e.dst.as_str(), e.ratio),
            ("frontend", "cart", 0.8)
        );
        assert_eq!(g.features[0].error_rate, Some(0.25));
        let e = from_kiali(
            r#"{"elements": {"nodes": [{"data": {"id": "x", "nodeType": "lambda"}}]}}"#,
            "k.json",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("k.json")
                && e.contains("nodes[0]")
                && e.contains("unknown node type `lambda`"),
            "{e}"
        );
        let e = from_kiali(
            r#"{"elements": {"nodes": [], "edges": [{"data": {"source": "a", "target": "b"}}]}}"#,
            "k.json",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown source node `a`"), "{e}");
        assert!(from_kiali("[1,", "k.json")
            .unwrap_err()
            .to_string()
            .contains("k.json"));
        // A repeated node id, and rates that are no rates: refused, naming the element.
        let e = from_kiali(&text.replace(r#""id": "n2""#, r#""id": "n1""#), "k.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nodes[3]: node id `n1` appears twice"), "{e}");
        for bad in ["-5", "1e308", "inf"] {
            let t = text.replace(r#""http": "10.0""#, &format!(r#""http": "{bad}""#));
            let e = from_kiali(&t, "k.json").unwrap_err().to_string();
            assert!(
                e.contains("edges[0]: traffic.rates.http must be in 0..="),
                "{bad}: {e}"
            );
        }
        let t = text.replace(r#""httpPercentErr": "25""#, r#""httpPercentErr": "250""#);
        assert_ne!(t, text);
        let e = from_kiali(&t, "k.json").unwrap_err().to_string();
        assert!(
            e.contains("edges[1]: an error percentage must be in 0..=100, got 250"),
            "{e}"
        );
        // A huge bad value is quoted by a short prefix.
        let t = text.replace(
            r#""http": "10.0""#,
            &format!(r#""http": "{}""#, "9x".repeat(100_000)),
        );
        let e = from_kiali(&t, "k.json").unwrap_err().to_string();
        assert!(
            e.len() < 300 && e.contains("(200000 bytes)"),
            "{}",
            &e[..e.len().min(300)]
        );
    }
}
