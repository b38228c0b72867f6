//! What a control loop sees at one instant, and what it decides.
//!
//! A [`ClusterSnapshot`] is built the same way from a simulated cluster and from a real one
//! (Kubernetes pods plus metrics): per workload its spec replica count, its pods with phase,
//! readiness and the latest CPU sample, and service-level rates as a monitoring system reports
//! them (`None` where there is no data, never a silent zero).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::graph::Relation;
use crate::time::Millis;

/// CPU and memory, as requests, limits or usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// CPU in millicores.
    pub cpu_millicores: f64,
    /// Memory in MiB.
    pub memory_mib: f64,
}

impl Resources {
    /// New resources.
    pub const fn new(cpu_millicores: f64, memory_mib: f64) -> Self {
        Resources {
            cpu_millicores,
            memory_mib,
        }
    }
}

/// The phase of a pod, as Kubernetes reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PodPhase {
    /// Not yet scheduled onto a node, or its containers have not started.
    Pending,
    /// Bound to a node with its containers started (ready or not).
    Running,
    /// Terminated with a failure.
    Failed,
}

/// One CPU usage sample of a pod, as metrics-server reports it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CpuSample {
    /// Usage in millicores, averaged over `window`.
    pub millicores: f64,
    /// End of the sampling window.
    pub timestamp: Millis,
    /// Length of the sampling window.
    pub window: Millis,
}

/// One pod of a workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodObservation {
    /// Pod name.
    pub name: Arc<str>,
    /// Phase.
    pub phase: PodPhase,
    /// The pod is being deleted.
    pub deleting: bool,
    /// When the pod's containers started (`status.startTime`), if they have.
    pub start_time: Option<Millis>,
    /// The Ready condition: `None` when the pod has none yet.
    pub ready: Option<bool>,
    /// When the Ready condition last changed.
    pub ready_transition: Option<Millis>,
    /// Latest CPU sample, `None` when metrics have none for the pod.
    pub cpu: Option<CpuSample>,
    /// Latest memory working set in MiB, `None` when missing.
    pub memory_mib: Option<f64>,
    /// Resource requests of the pod.
    pub requests: Resources,
    /// Resource limits of the pod.
    pub limits: Resources,
}

/// One scalable workload (a Deployment) as observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadObservation {
    /// Workload (service) name.
    pub name: String,
    /// `spec.replicas` of the scale subresource.
    pub spec_replicas: u32,
    /// Pods that match the workload's selector.
    pub pods: Vec<PodObservation>,
    /// Incoming requests per second over the monitoring window.
    pub rps: Option<f64>,
    /// Own (server-side) 95th-percentile latency in ms over the window.
    pub latency_p95_ms: Option<f64>,
    /// Failed share of requests over the window.
    pub error_rate: Option<f64>,
    /// Requests or messages waiting for this workload.
    pub backlog: Option<f64>,
}

impl WorkloadObservation {
    /// Pods that are ready and not being deleted.
    pub fn ready_pods(&self) -> usize {
        self.pods
            .iter()
            .filter(|p| p.ready == Some(true) && !p.deleting && p.phase == PodPhase::Running)
            .count()
    }
}

/// Traffic on one edge, as observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeObservation {
    /// Source node.
    pub src: Arc<str>,
    /// Destination node.
    pub dst: Arc<str>,
    /// Relation.
    pub relation: Relation,
    /// Calls or messages per second over the window.
    pub rps: Option<f64>,
}

/// Everything a control loop sees at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterSnapshot {
    /// When the snapshot was taken.
    pub time: Millis,
    /// Scalable workloads, in the graph's service order.
    pub workloads: Vec<WorkloadObservation>,
    /// Edge traffic.
    pub edges: Vec<EdgeObservation>,
}

impl ClusterSnapshot {
    /// A workload by name (a linear search: for one look-up; see [`ClusterSnapshot::by_name`]).
    pub fn workload(&self, name: &str) -> Option<&WorkloadObservation> {
        self.workloads.iter().find(|w| w.name == name)
    }

    /// Every workload by name, for many look-ups.
    pub fn by_name(&self) -> std::collections::HashMap<&str, &WorkloadObservation> {
        self.workloads
            .iter()
            .map(|w| (w.name.as_str(), w))
            .collect()
    }
}

/// Why a decision came out as it did: which rule fired, with the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// Short, stable name of the rule (for example `hpa.tolerance`).
    pub rule: String,
    /// Human-readable detail with the values involved.
    pub detail: String,
}

impl Reason {
    /// A new reason.
    pub fn new(rule: impl Into<String>, detail: impl Into<String>) -> Self {
        Reason {
            rule: rule.into(),
            detail: detail.into(),
        }
    }
}

/// The CPU and memory requests and limits of a workload's pods (its pod template).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PodResources {
    /// Requests.
    pub requests: Resources,
    /// Limits.
    pub limits: Resources,
}

impl PodResources {
    /// Why these resources cannot be set, if they cannot: every value finite and > 0, limits
    /// >= requests.
    pub fn problem(&self) -> Option<String> {
        let fields = [
            ("requests.cpu_millicores", self.requests.cpu_millicores),
            ("requests.memory_mib", self.requests.memory_mib),
            ("limits.cpu_millicores", self.limits.cpu_millicores),
            ("limits.memory_mib", self.limits.memory_mib),
        ];
        if let Some((f, v)) = fields.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
            return Some(format!("{f} is {v}: must be finite and > 0"));
        }
        if self.limits.cpu_millicores < self.requests.cpu_millicores {
            return Some("limits.cpu_millicores is below requests.cpu_millicores".into());
        }
        if self.limits.memory_mib < self.requests.memory_mib {
            return Some("limits.memory_mib is below requests.memory_mib".into());
        }
        None
    }
}

/// A decision for one workload: the replica count to set, with its reasons, and optionally new
/// resources for its pods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingDecision {
    /// Workload name.
    pub workload: String,
    /// Replicas to set on the scale subresource.
    pub replicas: u32,
    /// Why.
    pub reasons: Vec<Reason>,
    /// New requests and limits for the workload's pods (an in-place resize of the running pods
    /// and the template of new ones); `None` leaves them as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<PodResources>,
}
