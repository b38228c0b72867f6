//! Cumulative counters of a cluster, in the shape monitoring exporters publish them
//! (cAdvisor, kube-state-metrics, Istio, kafka-exporter). The simulator fills them; the monitor
//! crate renders them in the Prometheus text format. Plain data, no I/O.

use serde::{Deserialize, Serialize};

use crate::observe::Resources;

/// Istio's default buckets of `istio_request_duration_milliseconds`, ms.
pub const ISTIO_DURATION_BUCKETS_MS: [f64; 19] = [
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// One pod's container (one container per pod).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodCounters {
    /// Pod name: `<deployment>-<replicaset hash>-<suffix>`.
    pub pod: String,
    /// Owning deployment.
    pub deployment: String,
    /// Node the pod is bound to.
    pub node: Option<String>,
    /// Ready condition.
    pub ready: bool,
    /// `container_cpu_usage_seconds_total`.
    pub cpu_seconds_total: f64,
    /// `container_memory_working_set_bytes`.
    pub memory_bytes: f64,
    /// Requests.
    pub requests: Resources,
    /// Limits.
    pub limits: Resources,
}

/// One deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentCounters {
    /// Name.
    pub name: String,
    /// `kube_deployment_spec_replicas`.
    pub spec_replicas: u32,
    /// `kube_deployment_status_replicas_ready`.
    pub ready_replicas: u32,
}

/// Requests from one workload to another, as Istio's destination reporter counts them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestCounters {
    /// `source_workload` (`unknown` for traffic from outside the mesh).
    pub source: String,
    /// `destination_workload`.
    pub destination: String,
    /// Requests answered 200.
    pub ok_total: f64,
    /// Requests answered 503.
    pub error_total: f64,
    /// Cumulative counts of requests at or under each of [`ISTIO_DURATION_BUCKETS_MS`].
    pub duration_buckets: Vec<f64>,
    /// Sum of durations, ms.
    pub duration_sum_ms: f64,
    /// Count of durations.
    pub duration_count: f64,
}

/// One consumer group on a topic (or queue), as kafka-exporter reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupCounters {
    /// `consumergroup`: the consuming workload's name.
    pub group: String,
    /// Messages the group consumed (`kafka_consumergroup_current_offset`).
    pub consumed_total: f64,
    /// `kafka_consumergroup_lag`.
    pub lag: f64,
}

/// One topic or queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicCounters {
    /// Topic (or queue) name.
    pub topic: String,
    /// Messages produced (`kafka_topic_partition_current_offset`).
    pub produced_total: f64,
    /// Messages sent per producing workload (`kafka_producer_record_send_total{client_id}`).
    pub producers: Vec<(String, f64)>,
    /// Consumer groups.
    pub groups: Vec<GroupCounters>,
}

/// Everything an exporter publishes about one namespace at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterCounters {
    /// Namespace of every workload.
    pub namespace: String,
    /// Pods.
    pub pods: Vec<PodCounters>,
    /// Deployments.
    pub deployments: Vec<DeploymentCounters>,
    /// Request traffic.
    pub requests: Vec<RequestCounters>,
    /// Messaging.
    pub topics: Vec<TopicCounters>,
}

/// Share of requests at or under `x` ms for a step whose latency has quantiles `q` = (p50, p95,
/// p99): a piecewise-linear CDF through `(0.5 p50, 0)`, `(p50, 0.5)`, `(p95, 0.95)`, `(p99,
/// 0.99)`, `(1.3 p99, 1)`. The simulator and the evaluation share this one model.
pub fn latency_cdf(q: [f64; 3], x: f64) -> f64 {
    let mut below = 0.0;
    for (lo, hi, m) in latency_segments(q) {
        if x >= hi {
            below += m;
        } else if x > lo {
            below += m * (x - lo) / (hi - lo);
        }
    }
    below
}

/// Segments `(lo, hi, probability mass)` of [`latency_cdf`].
pub fn latency_segments(q: [f64; 3]) -> [(f64, f64, f64); 4] {
    let p50 = q[0].max(1e-3);
    let p95 = q[1].max(p50);
    let p99 = q[2].max(p95);
    [
        (0.5 * p50, p50, 0.5),
        (p50, p95, 0.45),
        (p95, p99, 0.04),
        (p99, 1.3 * p99, 0.01),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_passes_through_the_quantiles() {
        let q = [100.0, 200.0, 300.0];
        assert!((latency_cdf(q, 100.0) - 0.5).abs() < 1e-12);
        assert!((latency_cdf(q, 200.0) - 0.95).abs() < 1e-12);
        assert!((latency_cdf(q, 300.0) - 0.99).abs() < 1e-12);
        assert_eq!(latency_cdf(q, 1e9), 1.0);
        assert_eq!(latency_cdf(q, 1.0), 0.0);
        assert!(latency_cdf(q, 150.0) < latency_cdf(q, 160.0));
    }
}
