//! One PredictiveAutoscaler's cluster as the control loop reaches it: the graph (telemetry, a
//! Kiali export or explicit edges), a snapshot from Prometheus with `spec.replicas` from the
//! API server, and the Kubernetes actuator.
//!
//! Prometheus down or partial never turns into a scale-down: a snapshot without metrics holds
//! every workload (the safety layer holds on missing data), and the graph of the last round is
//! kept while the source is down. Every round's Prometheus reads share a deadline
//! ([`KubeCluster::with_deadline`], 80 % of the sync period in the controller): graph discovery
//! gets half of it, the snapshot the rest; a miss holds every workload and says why.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use graphscale_control::{BoxError, Cluster};
use graphscale_core::{
    AppGraph, AsyncActuator, AsyncMetricSource, AsyncTopologySource, ClusterSnapshot, Edge, Millis,
    Node, NodeKind, Relation, ScalingDecision, WorkloadObservation,
};
use graphscale_monitor::discovery::from_kiali;
use graphscale_monitor::source::PromSource;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::Client;

use crate::actuator::KubeActuator;
use crate::crd::{GraphSource, PredictiveAutoscalerSpec};
use crate::target::{resolve, Target};
use crate::OperatorError;

/// Largest Kiali export read from a ConfigMap, bytes (a ConfigMap holds at most 1 MiB).
pub const MAX_KIALI_BYTES: usize = 1 << 20;

/// The cluster of one PredictiveAutoscaler.
pub struct KubeCluster {
    client: Client,
    namespace: String,
    spec: PredictiveAutoscalerSpec,
    prom: PromSource,
    /// The actuator.
    pub actuator: KubeActuator,
    targets: Vec<Target>,
    last_graph: Option<AppGraph>,
    /// Why the last round had no (or partial) metrics, if it had none.
    pub metrics_problem: Option<String>,
    now: fn() -> Millis,
    /// The round's budget for Prometheus.
    deadline: Duration,
    /// When the round's reads began.
    round_start: Option<Instant>,
}

/// The default round deadline: 80 % of the default 15-s sync period.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(12);

impl std::fmt::Debug for KubeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeCluster")
            .field("namespace", &self.namespace)
            .field("targets", &self.targets.len())
            .finish()
    }
}

fn wall_clock() -> Millis {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Millis(d.as_millis() as u64)
}

impl KubeCluster {
    /// The cluster of `spec` in `namespace`, reading `prom`, writing through `actuator`.
    pub fn new(
        client: Client,
        namespace: String,
        spec: PredictiveAutoscalerSpec,
        prom: PromSource,
        actuator: KubeActuator,
    ) -> Self {
        KubeCluster {
            client,
            namespace,
            spec,
            prom,
            actuator,
            targets: Vec::new(),
            last_graph: None,
            metrics_problem: None,
            now: wall_clock,
            deadline: DEFAULT_DEADLINE,
            round_start: None,
        }
    }

    /// The time a round's Prometheus reads may take together (graph discovery at most half
    /// of it); default [`DEFAULT_DEADLINE`].
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Sets the targets (found by the caller; [`KubeCluster::refresh_targets`] finds them on
    /// the API server).
    pub fn set_targets(&mut self, targets: Vec<Target>) {
        self.targets = targets;
        self.actuator.set_targets(&self.targets);
    }

    /// The targets as found in the last round.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// Finds the targets now (the controller calls this before each round, and the actuator
    /// acts on what it found).
    pub async fn refresh_targets(&mut self) -> Result<&[Target], OperatorError> {
        self.targets = resolve(&self.client, &self.namespace, &self.spec).await?;
        self.actuator.set_targets(&self.targets);
        Ok(&self.targets)
    }

    async fn kiali_graph(&self) -> Result<AppGraph, OperatorError> {
        let Some(key) = &self.spec.graph.kiali_config_map else {
            return Err(OperatorError::InvalidSpec {
                field: "graph.kialiConfigMap".into(),
                reason: "required when graph.source is kiali".into(),
            });
        };
        let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let what = format!("ConfigMap {}/{} key {}", self.namespace, key.name, key.key);
        let cm = cms
            .get(&key.name)
            .await
            .map_err(OperatorError::kube(format!("get {what}")))?;
        let text = cm
            .data
            .as_ref()
            .and_then(|d| d.get(&key.key))
            .ok_or_else(|| OperatorError::InvalidSpec {
                field: "graph.kialiConfigMap.key".into(),
                reason: format!("{what} does not exist"),
            })?;
        if text.len() > MAX_KIALI_BYTES {
            return Err(OperatorError::InvalidSpec {
                field: "graph.kialiConfigMap".into(),
                reason: format!("{what} is {} bytes, at most {MAX_KIALI_BYTES}", text.len()),
            });
        }
        Ok(from_kiali(text, &what)?.graph)
    }

    /// The graph: the source's, with every target and every explicit edge added.
    async fn graph(&mut self) -> Result<AppGraph, OperatorError> {
        let base = match self.spec.graph.source {
            GraphSource::Telemetry => {
                match tokio::time::timeout(self.deadline / 2, self.prom.topology_async())
                    .await
                    .map_err(|_| {
                        format!(
                            "took more than {:.1} s, half the round's deadline",
                            (self.deadline / 2).as_secs_f64()
                        )
                    })
                    .and_then(|r| r.map_err(|e| e.to_string()))
                {
                    Ok(g) => Some(g),
                    Err(e) => {
                        tracing::warn!(error = %e, "graph discovery failed; keeping the last graph");
                        self.metrics_problem = Some(format!("graph discovery: {e}"));
                        if let Some(g) = &self.last_graph {
                            return Ok(g.clone());
                        }
                        None
                    }
                }
            }
            GraphSource::Kiali => Some(self.kiali_graph().await?),
            GraphSource::Edges => None,
        };
        let (name, mut nodes, mut edges) = match base {
            Some(g) => (g.name, g.nodes, g.edges),
            None => (self.namespace.clone(), Vec::new(), Vec::new()),
        };
        let mut ids: BTreeSet<String> = nodes.iter().map(|n| n.id.clone()).collect();
        let wanted = self
            .targets
            .iter()
            .map(|t| t.name.clone())
            .chain(
                self.spec
                    .graph
                    .edges
                    .iter()
                    .flat_map(|e| [e.from.clone(), e.to.clone()]),
            )
            .collect::<Vec<_>>();
        for id in wanted {
            if ids.insert(id.clone()) {
                nodes.push(Node::new(id, NodeKind::Service));
            }
        }
        let have: BTreeSet<(String, String)> = edges
            .iter()
            .map(|e| (e.src.clone(), e.dst.clone()))
            .collect();
        for e in &self.spec.graph.edges {
            if !have.contains(&(e.from.clone(), e.to.clone())) {
                edges.push(Edge::new(&e.from, &e.to, Relation::Calls, 1.0));
            }
        }
        let g = AppGraph::new(name, nodes, edges).map_err(|e| OperatorError::InvalidSpec {
            field: "graph.edges".into(),
            reason: e.to_string(),
        })?;
        self.last_graph = Some(g.clone());
        Ok(g)
    }

    /// The snapshot: Prometheus' with `spec.replicas` from the API server; a target Prometheus
    /// does not know (or all of them, when it is down) is observed without metrics.
    async fn snapshot(&mut self) -> ClusterSnapshot {
        let left = self.deadline.saturating_sub(
            self.round_start
                .take()
                .map_or(Duration::ZERO, |s| s.elapsed()),
        );
        let read = tokio::time::timeout(left, self.prom.observe_async())
            .await
            .map_err(|_| {
                format!(
                    "no snapshot within the round's deadline ({:.1} s)",
                    self.deadline.as_secs_f64()
                )
            })
            .and_then(|r| r.map_err(|e| e.to_string()));
        let mut snap = match read {
            Ok(s) => {
                self.metrics_problem = None;
                s
            }
            Err(e) => {
                tracing::warn!(error = %e, "Prometheus failed; holding every workload");
                self.metrics_problem = Some(format!("Prometheus: {e}: every workload held"));
                ClusterSnapshot {
                    time: (self.now)(),
                    workloads: Vec::new(),
                    edges: Vec::new(),
                }
            }
        };
        let seen: BTreeSet<String> = snap.workloads.iter().map(|w| w.name.clone()).collect();
        let mut missing = Vec::new();
        for t in &self.targets {
            if !seen.contains(&t.name) {
                missing.push(t.name.clone());
                snap.workloads.push(WorkloadObservation {
                    name: t.name.clone(),
                    spec_replicas: t.replicas,
                    pods: Vec::new(),
                    rps: None,
                    latency_p95_ms: None,
                    error_rate: None,
                    backlog: None,
                });
            }
        }
        let replicas: std::collections::HashMap<&str, u32> = self
            .targets
            .iter()
            .map(|t| (t.name.as_str(), t.replicas))
            .collect();
        for w in &mut snap.workloads {
            if let Some(&r) = replicas.get(w.name.as_str()) {
                w.spec_replicas = r;
            }
        }
        if self.metrics_problem.is_none() && !missing.is_empty() {
            self.metrics_problem = Some(format!(
                "Prometheus has no series for {} of {} targets ({}): held",
                missing.len(),
                self.targets.len(),
                missing
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        snap
    }
}

impl Cluster for KubeCluster {
    async fn topology(&mut self) -> Result<AppGraph, BoxError> {
        self.round_start = Some(Instant::now());
        self.graph().await.map_err(|e| Box::new(e) as BoxError)
    }

    async fn observe(&mut self) -> Result<ClusterSnapshot, BoxError> {
        Ok(self.snapshot().await)
    }

    async fn apply(&mut self, decisions: &[ScalingDecision]) -> Result<(), BoxError> {
        self.actuator
            .apply_async(decisions)
            .await
            .map_err(|e| Box::new(e) as BoxError)
    }
}
