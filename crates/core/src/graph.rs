//! The heterogeneous application graph.
//!
//! Nodes are services, queues, topics and cluster nodes. Every edge reads *subject relation
//! object*: `frontend calls cart`, `orders produces order-queue`, `worker consumes order-queue`,
//! `orders publishes events`, `mailer subscribes events`, `frontend runs_on node-1`. Load flows
//! along `calls`, `produces` and `publishes` in the edge's direction and along `consumes` and
//! `subscribes` against it (from the queue or topic to the consumer).
//!
//! `ratio` is the number of calls (or messages) the source issues per request it serves; it is
//! 1 where a relation has no natural ratio (`consumes`, `subscribes`, `runs_on`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// What a node of the application graph is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// A deployment that serves requests.
    Service,
    /// A point-to-point message queue: each message goes to one consumer.
    Queue,
    /// A publish/subscribe topic: each message goes to every subscriber.
    Topic,
    /// A machine of the cluster that pods run on.
    ClusterNode,
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeKind::Service => "service",
            NodeKind::Queue => "queue",
            NodeKind::Topic => "topic",
            NodeKind::ClusterNode => "cluster_node",
        })
    }
}

/// How two nodes are related.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// A service calls another synchronously.
    Calls,
    /// A service puts messages on a queue.
    Produces,
    /// A service takes messages from a queue.
    Consumes,
    /// A service publishes messages to a topic.
    Publishes,
    /// A service receives every message of a topic.
    Subscribes,
    /// A service has pods on a cluster node.
    RunsOn,
}

impl Relation {
    /// Every relation, in a fixed order.
    pub const ALL: [Relation; 6] = [
        Relation::Calls,
        Relation::Produces,
        Relation::Consumes,
        Relation::Publishes,
        Relation::Subscribes,
        Relation::RunsOn,
    ];

    /// The node kinds this relation connects, as (source, destination).
    pub fn endpoint_kinds(self) -> (NodeKind, NodeKind) {
        match self {
            Relation::Calls => (NodeKind::Service, NodeKind::Service),
            Relation::Produces | Relation::Consumes => (NodeKind::Service, NodeKind::Queue),
            Relation::Publishes | Relation::Subscribes => (NodeKind::Service, NodeKind::Topic),
            Relation::RunsOn => (NodeKind::Service, NodeKind::ClusterNode),
        }
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Relation::Calls => "calls",
            Relation::Produces => "produces",
            Relation::Consumes => "consumes",
            Relation::Publishes => "publishes",
            Relation::Subscribes => "subscribes",
            Relation::RunsOn => "runs_on",
        })
    }
}

/// A node of the application graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Unique id, for example the deployment name.
    pub id: String,
    /// What the node is.
    pub kind: NodeKind,
    /// Free-form labels (namespace, team, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Node {
    /// A node without labels.
    pub fn new(id: impl Into<String>, kind: NodeKind) -> Self {
        Node {
            id: id.into(),
            kind,
            labels: BTreeMap::new(),
        }
    }
}

fn one() -> f64 {
    1.0
}

/// A directed, typed edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    /// Subject of the relation.
    pub src: String,
    /// Object of the relation.
    pub dst: String,
    /// The relation.
    pub relation: Relation,
    /// Calls or messages per request served by `src` (default 1).
    #[serde(default = "one")]
    pub ratio: f64,
}

impl Edge {
    /// A new edge.
    pub fn new(
        src: impl Into<String>,
        dst: impl Into<String>,
        relation: Relation,
        ratio: f64,
    ) -> Self {
        Edge {
            src: src.into(),
            dst: dst.into(),
            relation,
            ratio,
        }
    }
}

/// A validated heterogeneous application graph.
///
/// Build it with [`AppGraph::new`] or [`AppGraph::from_json`]; both check that ids are unique,
/// that every edge joins existing nodes of the right kinds and that ratios are finite and
/// non-negative.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppGraph {
    /// Name of the application.
    pub name: String,
    /// Nodes, in a stable order.
    pub nodes: Vec<Node>,
    /// Edges, in a stable order.
    pub edges: Vec<Edge>,
    #[serde(skip)]
    index: HashMap<String, usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGraph {
    name: String,
    nodes: Vec<Node>,
    #[serde(default)]
    edges: Vec<Edge>,
}

impl<'de> Deserialize<'de> for AppGraph {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawGraph::deserialize(d)?;
        AppGraph::new(raw.name, raw.nodes, raw.edges).map_err(serde::de::Error::custom)
    }
}

impl AppGraph {
    /// Builds and validates a graph.
    pub fn new(
        name: impl Into<String>,
        nodes: Vec<Node>,
        edges: Vec<Edge>,
    ) -> Result<Self, CoreError> {
        let mut index = HashMap::with_capacity(nodes.len());
        for (i, n) in nodes.iter().enumerate() {
            if index.insert(n.id.clone(), i).is_some() {
                return Err(CoreError::DuplicateNode { id: n.id.clone() });
            }
        }
        for e in &edges {
            let find = |id: &str| {
                index
                    .get(id)
                    .copied()
                    .ok_or_else(|| CoreError::UnknownNode {
                        src: e.src.clone(),
                        dst: e.dst.clone(),
                        relation: e.relation,
                        missing: id.to_string(),
                    })
            };
            let (s, d) = (find(&e.src)?, find(&e.dst)?);
            let (want_src, want_dst) = e.relation.endpoint_kinds();
            if nodes[s].kind != want_src || nodes[d].kind != want_dst {
                return Err(CoreError::RelationKinds {
                    src: e.src.clone(),
                    dst: e.dst.clone(),
                    relation: e.relation,
                    want_src,
                    want_dst,
                    got_src: nodes[s].kind,
                    got_dst: nodes[d].kind,
                });
            }
            if !e.ratio.is_finite() || e.ratio < 0.0 {
                return Err(CoreError::BadRatio {
                    src: e.src.clone(),
                    dst: e.dst.clone(),
                    relation: e.relation,
                    ratio: e.ratio,
                });
            }
        }
        Ok(AppGraph {
            name: name.into(),
            nodes,
            edges,
            index,
        })
    }

    /// Parses and validates a graph from JSON; `context` (a file name) prefixes any error.
    pub fn from_json(text: &str, context: &str) -> Result<Self, CoreError> {
        serde_json::from_str(text).map_err(|source| CoreError::Json {
            context: context.to_string(),
            source,
        })
    }

    /// The application part of the graph: services, queues and topics with the edges between
    /// them, without cluster nodes and `runs_on` edges. Placement changes whenever a pod moves;
    /// the application graph changes only when a service, queue, topic or call does.
    pub fn application(&self) -> AppGraph {
        let nodes: Vec<Node> = self
            .nodes
            .iter()
            .filter(|n| n.kind != NodeKind::ClusterNode)
            .cloned()
            .collect();
        let edges: Vec<Edge> = self
            .edges
            .iter()
            .filter(|e| e.relation != Relation::RunsOn)
            .cloned()
            .collect();
        let index = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.clone(), i))
            .collect();
        // Dropping cluster nodes and the only edges that reach them keeps every invariant.
        AppGraph {
            name: self.name.clone(),
            nodes,
            edges,
            index,
        }
    }

    /// Position of a node in [`AppGraph::nodes`].
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// A node by id.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.index_of(id).map(|i| &self.nodes[i])
    }

    /// The service nodes.
    pub fn services(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.kind == NodeKind::Service)
    }

    /// Edges of one relation.
    pub fn edges_of(&self, relation: Relation) -> impl Iterator<Item = &Edge> {
        self.edges.iter().filter(move |e| e.relation == relation)
    }

    /// Services that receive load from outside the graph: services nobody calls and that
    /// consume or subscribe to nothing.
    pub fn entry_services(&self) -> Vec<&str> {
        let mut fed = std::collections::HashSet::new();
        for e in &self.edges {
            match e.relation {
                Relation::Calls => {
                    fed.insert(e.dst.as_str());
                }
                Relation::Consumes | Relation::Subscribes => {
                    fed.insert(e.src.as_str());
                }
                _ => {}
            }
        }
        self.services()
            .map(|n| n.id.as_str())
            .filter(|id| !fed.contains(id))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(id: &str) -> Node {
        Node::new(id, NodeKind::Service)
    }

    #[test]
    fn rejects_edges_to_missing_nodes() {
        let err = AppGraph::new(
            "a",
            vec![svc("a")],
            vec![Edge::new("a", "b", Relation::Calls, 1.0)],
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown node `b`"), "{err}");
    }

    #[test]
    fn rejects_wrong_kinds_and_duplicates() {
        let q = Node::new("q", NodeKind::Queue);
        let err = AppGraph::new(
            "a",
            vec![svc("a"), q],
            vec![Edge::new("a", "q", Relation::Calls, 1.0)],
        )
        .unwrap_err();
        assert!(matches!(err, CoreError::RelationKinds { .. }), "{err}");
        let err = AppGraph::new("a", vec![svc("a"), svc("a")], vec![]).unwrap_err();
        assert!(matches!(err, CoreError::DuplicateNode { .. }));
        let err = AppGraph::new(
            "a",
            vec![svc("a"), svc("b")],
            vec![Edge::new("a", "b", Relation::Calls, -1.0)],
        )
        .unwrap_err();
        assert!(matches!(err, CoreError::BadRatio { .. }));
    }

    #[test]
    fn json_round_trip_and_entries() {
        let g = AppGraph::new(
            "ev",
            vec![
                svc("api"),
                svc("worker"),
                Node::new("jobs", NodeKind::Queue),
                Node::new("n1", NodeKind::ClusterNode),
            ],
            vec![
                Edge::new("api", "jobs", Relation::Produces, 1.0),
                Edge::new("worker", "jobs", Relation::Consumes, 1.0),
                Edge::new("api", "n1", Relation::RunsOn, 1.0),
            ],
        )
        .unwrap();
        let text = serde_json::to_string(&g).unwrap();
        let back = AppGraph::from_json(&text, "mem").unwrap();
        assert_eq!(back, g);
        assert_eq!(back.entry_services(), vec!["api"]);
    }

    #[test]
    fn json_errors_name_the_context_and_line() {
        let err = AppGraph::from_json(
            "{\n \"name\": \"x\",\n \"nodes\": [{\"id\": \"a\", \"kind\": \"servic\"}]}",
            "g.json",
        )
        .unwrap_err();
        // The message names the file; the source, the line. Neither repeats the other.
        assert_eq!(err.to_string(), "g.json");
        let err = crate::error::chain(&err);
        assert!(err.starts_with("g.json: "), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert_eq!(err.matches("line 3").count(), 1, "{err}");
    }
}
