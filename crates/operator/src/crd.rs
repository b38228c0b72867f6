//! The `PredictiveAutoscaler` custom resource, `autoscaling.graphscale.dev/v1alpha1`.
//!
//! One object scales a set of Deployments and StatefulSets of its own namespace with one
//! autoscaler of the catalogue. The API server validates what it can (CEL rules: bounds,
//! SLO, targets); the controller validates the rest (the autoscaler's name, template names)
//! and reports it as a `Degraded` condition naming the field.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group.
pub const GROUP: &str = "autoscaling.graphscale.dev";
/// The API version.
pub const VERSION: &str = "v1alpha1";
/// The finalizer the controller puts on every PredictiveAutoscaler.
pub const FINALIZER: &str = "autoscaling.graphscale.dev/finalizer";
/// The annotation that, set to `"true"` on a workload, makes the operator leave it alone.
pub const KILL_SWITCH: &str = "autoscaling.graphscale.dev/disabled";
/// The field manager of every write.
pub const FIELD_MANAGER: &str = "graphscale";

/// What a PredictiveAutoscaler wants.
// The print columns repeat `type_ =` by design; clippy reads them as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "autoscaling.graphscale.dev",
    version = "v1alpha1",
    kind = "PredictiveAutoscaler",
    namespaced,
    status = "PredictiveAutoscalerStatus",
    shortname = "pas",
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
    printcolumn(name = "Autoscaler", type_ = "string", json_path = ".spec.autoscaler"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Workloads",
        type_ = "integer",
        json_path = ".status.workloadCount"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = Rule::new("!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas").message("minReplicas must be <= maxReplicas"),
    validation = Rule::new("!has(self.checkpoint) || self.autoscaler in ['graph-hgt', 'graph-gat', 'graph-stgnn', 'graph-mlp']").message("checkpoint needs a graph-model autoscaler: graph-hgt, graph-gat, graph-stgnn or graph-mlp")
)]
#[serde(rename_all = "camelCase")]
pub struct PredictiveAutoscalerSpec {
    /// The workloads to scale.
    pub targets: Targets,
    /// `Off` (nothing), `Recommend` (status and Events only; the default) or `Auto`.
    #[serde(default)]
    pub mode: Mode,
    /// A catalogue name (`graphscale eval --help` lists them); default `graph-trend`.
    #[serde(default = "default_autoscaler")]
    pub autoscaler: String,
    /// A graph model written by `graphscale train` for the autoscaler to start from: a file
    /// name under the operator's models folder (`--models-dir`, default `/models`; mount the
    /// checkpoints there from a volume). The autoscaler must be the graph model of its kind
    /// (`graph-hgt`, `graph-gat`, `graph-stgnn`, `graph-mlp`); it forecasts from its first
    /// window instead of training for ten minutes, then retrains online. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self) >= 1 && size(self) <= 255 && !self.startsWith('/') && !self.contains('..')").message("checkpoint must be a relative path of 1..=255 characters without `..`"))]
    pub checkpoint: Option<String>,
    /// How far ahead demand is planned, seconds (the lead time); default learned from the
    /// pods' observed start-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0 && self <= 3600").message("horizonSeconds must be in 1..=3600"))]
    pub horizon_seconds: Option<u32>,
    /// The latency SLO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<Slo>,
    /// Fewest replicas of every target (a target's own bound wins); default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("minReplicas must be >= 0"))]
    pub min_replicas: Option<u32>,
    /// Most replicas of every target (a target's own bound wins); default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("maxReplicas must be >= 1"))]
    pub max_replicas: Option<u32>,
    /// Share of capacity kept spare above the planned demand (0.2 = 20 %); default the
    /// planner's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0.0 && self <= 4.0").message("headroom must be in 0..=4"))]
    pub headroom: Option<f64>,
    /// Least time between scale-ups and between scale-downs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldowns: Option<Cooldowns>,
    /// Caps on the total requests the plan may reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budgets: Option<Budgets>,
    /// `off` (replicas only; the default), `memory` (memory requests and limits resized in
    /// place, the template updated so new pods match), `cpu` (CPU requests sized with the
    /// replica plan, resized in place on the running pods) or `all` (both).
    #[serde(default)]
    pub vertical: Vertical,
    /// Memory-aware holds for the autoscalers with a cost per scaling action (`graphscale`,
    /// `graphscale-replicas`): the nodes' GiB of memory per core (4 for the general-purpose
    /// shapes). A workload whose extra pod would cost more than half of a full pod on such a
    /// node keeps the quick holds (docs/planner.md); default none.
    #[serde(
        default,
        rename = "nodeGiBPerCore",
        skip_serializing_if = "Option::is_none"
    )]
    #[x_kube(validation = Rule::new("self > 0.0 && self <= 1024.0").message("nodeGiBPerCore must be in (0, 1024]"))]
    pub node_gib_per_core: Option<f64>,
    /// Where the metrics come from.
    #[serde(default)]
    pub prometheus: PrometheusSpec,
    /// Where the call graph comes from.
    #[serde(default)]
    pub graph: GraphSpec,
    /// Act even when an HPA or a KEDA ScaledObject targets the same workload (it is then the
    /// user's job to remove it); default false: such a workload gets a Conflict and no writes.
    #[serde(default)]
    pub take_over: bool,
    /// Seconds between rounds; default 15.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 3600").message("syncPeriodSeconds must be in 1..=3600"))]
    pub sync_period_seconds: Option<u32>,
}

fn default_autoscaler() -> String {
    "graph-trend".into()
}

/// The workloads to scale: a list, or a label selector (one namespace).
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[x_kube(
    validation = Rule::new("(has(self.workloads) && size(self.workloads) > 0) != has(self.selector)").message("give exactly one of targets.workloads (non-empty) and targets.selector")
)]
#[serde(rename_all = "camelCase")]
pub struct Targets {
    /// Named workloads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("size(self) <= 2000").message("at most 2000 workloads"))]
    pub workloads: Vec<WorkloadTarget>,
    /// Deployments and StatefulSets with these labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// One named workload.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas").message("minReplicas must be <= maxReplicas")
)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadTarget {
    /// `Deployment` (default) or `StatefulSet`.
    #[serde(default)]
    pub kind: WorkloadKind,
    /// Its name.
    #[x_kube(validation = Rule::new("size(self) > 0 && size(self) <= 253").message("name must be 1..=253 characters"))]
    pub name: String,
    /// Fewest replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<u32>,
    /// Most replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("maxReplicas must be >= 1"))]
    pub max_replicas: Option<u32>,
}

/// The kinds of workload the operator scales.
#[derive(
    JsonSchema,
    Deserialize,
    Serialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Default,
    Hash,
    PartialOrd,
    Ord,
)]
pub enum WorkloadKind {
    /// `apps/v1` Deployment.
    #[default]
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
}

impl std::fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
        })
    }
}

/// What the operator may do.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Nothing: no rounds, no writes.
    Off,
    /// Rounds, status and Events; never a write to a workload.
    #[default]
    Recommend,
    /// Rounds, and the decisions applied.
    Auto,
}

/// What is resized besides replicas.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Vertical {
    /// Replicas only.
    #[default]
    Off,
    /// Memory requests and limits too.
    Memory,
    /// CPU requests sized with the replica plan too: the running pods are resized in place,
    /// limits and the pod template are kept (docs/planner.md, "CPU requests sized with the plan").
    Cpu,
    /// Both: memory requests and limits, and CPU requests.
    All,
}

impl Vertical {
    /// Whether memory is resized.
    pub fn memory(self) -> bool {
        matches!(self, Vertical::Memory | Vertical::All)
    }

    /// Whether CPU requests are resized.
    pub fn cpu(self) -> bool {
        matches!(self, Vertical::Cpu | Vertical::All)
    }
}

/// The latency SLO.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Slo {
    /// 95th-percentile latency bound, milliseconds.
    #[x_kube(validation = Rule::new("self > 0.0").message("slo.p95Ms must be > 0"))]
    pub p95_ms: f64,
}

/// Cooldowns, seconds.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Cooldowns {
    /// After a scale-up, before the next; default the safety layer's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self <= 86400").message("at most a day"))]
    pub scale_up_seconds: Option<u32>,
    /// After any scaling, before a scale-down; default the safety layer's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self <= 86400").message("at most a day"))]
    pub scale_down_seconds: Option<u32>,
}

/// Budgets over every target together.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Budgets {
    /// Total CPU requests, cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0.0").message("budgets.cpuCores must be > 0"))]
    pub cpu_cores: Option<f64>,
    /// Total memory requests, GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0.0").message("budgets.memoryGiB must be > 0"))]
    #[serde(rename = "memoryGiB")]
    pub memory_gib: Option<f64>,
}

/// The Prometheus the metrics come from.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusSpec {
    /// Base URL of its HTTP API; default `http://prometheus.monitoring:9090`.
    #[serde(default = "default_prometheus")]
    pub url: String,
    /// PromQL templates by field name (`deployments`, `pod_ready`, `edge_rps`, `window`, ...;
    /// docs/monitor.md), replacing the defaults.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub templates: BTreeMap<String, String>,
}

impl Default for PrometheusSpec {
    fn default() -> Self {
        PrometheusSpec {
            url: default_prometheus(),
            templates: BTreeMap::new(),
        }
    }
}

fn default_prometheus() -> String {
    "http://prometheus.monitoring:9090".into()
}

/// Where the call graph comes from.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GraphSpec {
    /// `telemetry` (Istio's request metrics; the default), `kiali` (a Kiali graph export in
    /// a ConfigMap) or `edges` (the list below only).
    #[serde(default)]
    pub source: GraphSource,
    /// With `kiali`: the ConfigMap (same namespace) and its key holding the export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kiali_config_map: Option<ConfigMapKey>,
    /// Edges added to what the source finds (or, with `edges`, the whole graph).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("size(self) <= 20000").message("at most 20000 edges"))]
    pub edges: Vec<EdgeSpec>,
}

/// A graph source.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum GraphSource {
    /// Istio's request metrics in Prometheus.
    #[default]
    Telemetry,
    /// A Kiali graph export in a ConfigMap.
    Kiali,
    /// The explicit edges only.
    Edges,
}

/// A key of a ConfigMap.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
pub struct ConfigMapKey {
    /// The ConfigMap.
    pub name: String,
    /// The key.
    pub key: String,
}

/// One call edge.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
pub struct EdgeSpec {
    /// The caller.
    pub from: String,
    /// The callee.
    pub to: String,
}

/// What the controller saw and did.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PredictiveAutoscalerStatus {
    /// The generation of the spec this status is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, MetricsAvailable, ModelReady, Degraded, Conflict.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Rounds run since the controller (re)started this object.
    #[serde(default)]
    pub rounds: u64,
    /// When the last round ran (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_round: Option<String>,
    /// The number of workloads targeted.
    #[serde(default)]
    pub workload_count: u32,
    /// Seconds between rounds (the autoscaler's sync period): a decision older than a few of
    /// them is stale (the KEDA scaler refuses it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_period_seconds: Option<f64>,
    /// Per workload: the last decision, its reasons, the forecast and the HPA's shadow.
    #[serde(default)]
    pub workloads: Vec<WorkloadStatus>,
}

/// One workload's part of the status.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    /// Kind.
    pub kind: WorkloadKind,
    /// Name.
    pub name: String,
    /// `spec.replicas` when the round ran.
    pub current_replicas: u32,
    /// The replicas decided.
    pub desired_replicas: u32,
    /// Whether the decision was written (false in Recommend, for a held, conflicting or
    /// switched-off workload, or when it equalled the current state).
    pub applied: bool,
    /// Why, rule by rule.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// The demand forecast behind the decision, when the autoscaler forecasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<ForecastStatus>,
    /// What the Kubernetes HPA (CPU 80 %) would set now, in the same round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpa_shadow_replicas: Option<u32>,
    /// Observed p95 latency, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
    /// Whether the observed p95 met the SLO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo_met: Option<bool>,
    /// When the decision was taken (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
}

/// The forecast behind one decision.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ForecastStatus {
    /// The model.
    pub model: String,
    /// Observed request rate, rps.
    pub observed_rps: f64,
    /// Peak point forecast over the horizon, rps.
    pub peak_rps: f64,
    /// The upper bound of its interval at the SLO quantile, rps.
    pub upper_rps: f64,
    /// The quantile of that bound.
    pub quantile: f64,
    /// The horizon, seconds.
    pub horizon_seconds: f64,
    /// Seconds between the metrics it forecast from and the decision.
    pub age_seconds: f64,
}

/// The CRD as YAML, as `graphscale crd` prints it and `deploy/crd.yaml` holds it.
pub fn crd_yaml() -> Result<String, crate::OperatorError> {
    Ok(serde_saphyr::to_string(&crd())?)
}

/// The CRD. Unsigned integer formats (`uint32`, which the API server does not know and warns
/// about) are dropped: the CEL rules and `minimum: 0` bound the values.
pub fn crd(
) -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    let mut v = serde_json::to_value(PredictiveAutoscaler::crd()).unwrap_or_default();
    drop_unsigned_formats(&mut v);
    serde_json::from_value(v).unwrap_or_else(|_| PredictiveAutoscaler::crd())
}

fn drop_unsigned_formats(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            if matches!(
                m.get("format").and_then(|f| f.as_str()),
                Some("uint32" | "uint64")
            ) {
                m.remove("format");
            }
            m.values_mut().for_each(drop_unsigned_formats);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(drop_unsigned_formats),
        _ => {}
    }
}
