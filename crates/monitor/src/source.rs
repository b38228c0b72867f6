//! Prometheus as the control loop's metric and topology source: [`PromSource`] implements the
//! async seams [`AsyncMetricSource`] (a [`ClusterSnapshot`] from instant queries: deployments,
//! pods with readiness, CPU, memory, requests and limits, per-workload rate, p95, errors and
//! backlog, edge rates) and [`AsyncTopologySource`] (the graph [`crate::discovery::discover`]
//! finds).
//!
//! Every query of one snapshot is evaluated at the same instant, so the snapshot is consistent;
//! its time is that instant in Unix milliseconds. No data is `None`, never zero.

use std::collections::BTreeMap;
use std::future::Future;

use graphscale_core::{
    AppGraph, AsyncMetricSource, AsyncTopologySource, ClusterSnapshot, CpuSample, EdgeObservation,
    Metric, Millis, PodObservation, PodPhase, Relation, Resources, WorkloadObservation,
};

use crate::discovery::{discover, DiscoveryConfig};
use crate::prom::{PromClient, Sample};
use crate::templates::{render, Templates};
use crate::MonitorError;

/// Where the source reads and how.
#[derive(Debug, Clone)]
pub struct PromSource {
    client: PromClient,
    templates: Templates,
    discovery: DiscoveryConfig,
    /// Evaluation time of the next snapshot, Unix seconds; `None`: the wall clock.
    at: Option<f64>,
}

impl PromSource {
    /// A source reading `client` with `templates`; the namespace and the time scale come from
    /// `discovery`. Validates the templates.
    pub fn new(
        client: PromClient,
        templates: Templates,
        discovery: DiscoveryConfig,
    ) -> Result<Self, MonitorError> {
        templates.validate(&discovery.namespace)?;
        if !(discovery.time_scale.is_finite() && discovery.time_scale > 0.0) {
            return Err(MonitorError::Invalid(format!(
                "time_scale must be > 0, got {}",
                discovery.time_scale
            )));
        }
        window_ms(&templates.window).ok_or_else(|| MonitorError::InvalidTemplate {
            name: "window".into(),
            reason: format!("`{}` is not a duration", templates.window),
        })?;
        Ok(PromSource {
            client,
            templates,
            discovery,
            at: None,
        })
    }

    /// Evaluates the next snapshots at `at` (Unix seconds) instead of the wall clock.
    pub fn at(mut self, at: Option<f64>) -> Self {
        self.at = at;
        self
    }

    fn render(&self, name: &str, q: &str) -> Result<String, MonitorError> {
        render(name, q, &self.discovery.namespace, &self.templates.window)
    }

    async fn instant(&self, name: &str, q: &str, at: f64) -> Result<Vec<Sample>, MonitorError> {
        self.client.query(&self.render(name, q)?, Some(at)).await
    }

    /// One snapshot at `at` (Unix seconds).
    pub async fn snapshot(&self, at: f64) -> Result<ClusterSnapshot, MonitorError> {
        let t = &self.templates;
        let scale = self.discovery.time_scale;
        let deployments = self.instant("deployments", &t.deployments, at).await?;
        let pods = self.instant("pod_info", &t.pod_info, at).await?;
        let ready = by_label(self.instant("pod_ready", &t.pod_ready, at).await?, "pod");
        let cpu = by_label(
            self.instant("pod_cpu_millicores", &t.pod_cpu_millicores, at)
                .await?,
            "pod",
        );
        let mem = by_label(
            self.instant("pod_memory_mib", &t.pod_memory_mib, at)
                .await?,
            "pod",
        );
        let requests = by_pod_resource(self.instant("pod_requests", &t.pod_requests, at).await?);
        let limits = by_pod_resource(self.instant("pod_limits", &t.pod_limits, at).await?);
        let backlog = by_label(
            self.instant("workload_backlog", &t.workload_backlog, at)
                .await?,
            "consumergroup",
        );
        // Per-workload rate, p95 and errors from the node templates of those metrics.
        let mut per_workload: BTreeMap<Metric, BTreeMap<String, f64>> = BTreeMap::new();
        for (i, n) in t.nodes.iter().enumerate() {
            if !matches!(
                n.metric,
                Metric::Rps | Metric::LatencyP95Ms | Metric::ErrorRate
            ) || n.node_label != "destination_workload"
            {
                continue;
            }
            let got = self
                .instant(&format!("nodes[{i}] ({})", n.metric), &n.query, at)
                .await?;
            let div = if n.is_rate { scale } else { 1.0 };
            let m = per_workload.entry(n.metric).or_default();
            for (k, v) in by_label(got, &n.node_label) {
                m.insert(k, v / div);
            }
        }
        let edge_rps = self.instant("edge_rps", &t.edge_rps, at).await?;

        let time = Millis::from_secs_f64(at);
        let window = Millis(window_ms(&t.window).unwrap_or(60_000));
        let mut workloads = Vec::with_capacity(deployments.len());
        for d in &deployments {
            let Some(name) = d.labels.get("deployment") else {
                continue;
            };
            let spec = d
                .value
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| {
                    MonitorError::Malformed(format!(
                        "deployment `{name}`: spec replicas are {:?}",
                        d.value
                    ))
                })?;
            let pods: Vec<PodObservation> = pods
                .iter()
                .filter(|p| owner(p).as_deref() == Some(name.as_str()))
                .filter_map(|p| p.labels.get("pod"))
                .map(|pod| {
                    let res = |m: &BTreeMap<(String, String), f64>| {
                        Resources::new(
                            m.get(&(pod.clone(), "cpu".into()))
                                .map_or(0.0, |c| c * 1000.0),
                            m.get(&(pod.clone(), "memory".into()))
                                .map_or(0.0, |b| b / 1_048_576.0),
                        )
                    };
                    PodObservation {
                        name: pod.as_str().into(),
                        phase: PodPhase::Running,
                        deleting: false,
                        start_time: None,
                        ready: ready.get(pod).map(|v| *v >= 1.0),
                        ready_transition: None,
                        cpu: cpu.get(pod).map(|m| CpuSample {
                            millicores: m / scale,
                            timestamp: time,
                            window,
                        }),
                        memory_mib: mem.get(pod).copied(),
                        requests: res(&requests),
                        limits: res(&limits),
                    }
                })
                .collect();
            let get = |m: Metric| per_workload.get(&m).and_then(|x| x.get(name)).copied();
            workloads.push(WorkloadObservation {
                name: name.clone(),
                spec_replicas: spec.min(f64::from(u32::MAX)) as u32,
                pods,
                rps: get(Metric::Rps),
                latency_p95_ms: get(Metric::LatencyP95Ms),
                error_rate: get(Metric::ErrorRate),
                backlog: backlog.get(name).copied(),
            });
        }
        workloads.sort_by(|a, b| a.name.cmp(&b.name));
        let mut edges: Vec<EdgeObservation> = edge_rps
            .iter()
            .filter_map(|s| {
                Some(EdgeObservation {
                    src: s.labels.get("source_workload")?.as_str().into(),
                    dst: s.labels.get("destination_workload")?.as_str().into(),
                    relation: Relation::Calls,
                    rps: s
                        .value
                        .filter(|v| v.is_finite() && *v >= 0.0)
                        .map(|v| v / scale),
                })
            })
            .collect();
        edges.sort_by(|a, b| (&a.src, &a.dst).cmp(&(&b.src, &b.dst)));
        Ok(ClusterSnapshot {
            time,
            workloads,
            edges,
        })
    }

    fn now(&self) -> f64 {
        self.at.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        })
    }
}

/// The deployment that owns a pod: its ReplicaSet's name without the template hash.
fn owner(p: &Sample) -> Option<String> {
    let rs = p.labels.get("created_by_name")?;
    let (dep, _hash) = rs.rsplit_once('-')?;
    Some(dep.to_string())
}

/// Finite, non-negative values by one label.
fn by_label(samples: Vec<Sample>, label: &str) -> BTreeMap<String, f64> {
    samples
        .into_iter()
        .filter_map(|s| {
            let v = s.value.filter(|v| v.is_finite() && *v >= 0.0)?;
            Some((s.labels.get(label)?.clone(), v))
        })
        .collect()
}

fn by_pod_resource(samples: Vec<Sample>) -> BTreeMap<(String, String), f64> {
    samples
        .into_iter()
        .filter_map(|s| {
            let v = s.value.filter(|v| v.is_finite() && *v >= 0.0)?;
            Some((
                (
                    s.labels.get("pod")?.clone(),
                    s.labels.get("resource")?.clone(),
                ),
                v,
            ))
        })
        .collect()
}

/// A Prometheus duration (`1m`, `1h30m`, `15s`, `500ms`) in milliseconds.
pub fn window_ms(w: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut rest = w;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = [
            ("ms", 1u64),
            ("s", 1_000),
            ("m", 60_000),
            ("h", 3_600_000),
            ("d", 86_400_000),
            ("w", 604_800_000),
            ("y", 31_536_000_000),
        ]
        .iter()
        .find(|(u, _)| rest.starts_with(u))
        .map(|(u, ms)| (*ms, u.len()))?;
        rest = &rest[len..];
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    Some(total)
}

impl AsyncMetricSource for PromSource {
    type Error = MonitorError;

    fn observe_async(
        &mut self,
    ) -> impl Future<Output = Result<ClusterSnapshot, MonitorError>> + Send {
        let at = self.now();
        async move { self.snapshot(at).await }
    }
}

impl AsyncTopologySource for PromSource {
    type Error = MonitorError;

    fn topology_async(&mut self) -> impl Future<Output = Result<AppGraph, MonitorError>> + Send {
        let at = self.now();
        async move {
            discover(&self.client, &self.templates, &self.discovery, Some(at))
                .await
                .map(|d| d.graph)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_to_milliseconds() {
        assert_eq!(window_ms("1m"), Some(60_000));
        assert_eq!(window_ms("1h30m"), Some(5_400_000));
        assert_eq!(window_ms("500ms"), Some(500));
        assert_eq!(window_ms("5s"), Some(5_000));
        for bad in ["", "m", "1", "1x", "99999999999999999999y"] {
            assert_eq!(window_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_pod_belongs_to_its_replica_sets_deployment() {
        let p = Sample {
            labels: [(
                "created_by_name".to_string(),
                "cart-service-7d9f".to_string(),
            )]
            .into_iter()
            .collect(),
            value: Some(1.0),
        };
        assert_eq!(owner(&p).as_deref(), Some("cart-service"));
    }
}
