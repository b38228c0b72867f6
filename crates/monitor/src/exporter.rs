//! Renders [`ClusterCounters`] with the metric names a real cluster's exporters use, and serves
//! them on `/metrics` for Prometheus to scrape (OpenMetrics text, via `prometheus-client`).
//!
//! | source | metrics |
//! |---|---|
//! | cAdvisor | `container_cpu_usage_seconds_total`, `container_memory_working_set_bytes` (`namespace`, `pod`, `container`) |
//! | kube-state-metrics | `kube_deployment_spec_replicas`, `kube_deployment_status_replicas_ready`, `kube_pod_container_resource_requests` / `_limits` (`resource`, `unit`), `kube_pod_info` (`node`, `created_by_kind`, `created_by_name`), `kube_pod_status_ready` |
//! | Istio | `istio_requests_total`, `istio_request_duration_milliseconds` histogram (`reporter="destination"`, `source_workload`, `destination_workload`, their namespaces, `response_code`) |
//! | kafka-exporter | `kafka_topic_partition_current_offset`, `kafka_consumergroup_current_offset`, `kafka_consumergroup_lag` (`topic`, `partition`, `consumergroup`) and the producer client's `kafka_producer_record_send_total` (`client_id`, `topic`) |
//!
//! A consumer group is named after the consuming workload.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use graphscale_core::exposition::{ClusterCounters, ISTIO_DURATION_BUCKETS_MS};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(String, String)>;
type CounterF = Counter<f64, AtomicU64>;
type GaugeF = Gauge<f64, AtomicU64>;

/// A histogram whose buckets are already counted (the simulator integrates them).
/// Sum, count and per-bucket (upper bound, count) of a histogram.
type HistogramState = (f64, u64, Vec<(f64, u64)>);

#[derive(Debug, Default)]
struct FixedHistogram {
    inner: Mutex<HistogramState>,
}

impl TypedMetric for FixedHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for FixedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let g = self.inner.lock().map_err(|_| std::fmt::Error)?;
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(g.0, g.1, &g.2, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Renders the counters in the OpenMetrics text format.
pub fn render(c: &ClusterCounters) -> Result<String, std::fmt::Error> {
    let mut reg = Registry::default();
    let ns = c.namespace.as_str();
    let cpu = Family::<Labels, CounterF>::default();
    let mem = Family::<Labels, GaugeF>::default();
    let spec = Family::<Labels, GaugeF>::default();
    let ready = Family::<Labels, GaugeF>::default();
    let req = Family::<Labels, GaugeF>::default();
    let lim = Family::<Labels, GaugeF>::default();
    let info = Family::<Labels, GaugeF>::default();
    let pod_ready = Family::<Labels, GaugeF>::default();
    let istio = Family::<Labels, CounterF>::default();
    let dur = Family::<Labels, FixedHistogram>::default();
    // kafka-exporter publishes offsets as gauges.
    let offset = Family::<Labels, GaugeF>::default();
    let group_offset = Family::<Labels, GaugeF>::default();
    let lag = Family::<Labels, GaugeF>::default();
    let sends = Family::<Labels, CounterF>::default();
    for p in &c.pods {
        let l = labels(&[
            ("namespace", ns),
            ("pod", &p.pod),
            ("container", &p.deployment),
        ]);
        cpu.get_or_create(&l).inc_by(p.cpu_seconds_total);
        mem.get_or_create(&l).set(p.memory_bytes);
        for (family, r) in [(&req, &p.requests), (&lim, &p.limits)] {
            let mut lc = l.clone();
            lc.extend(labels(&[("resource", "cpu"), ("unit", "core")]));
            family.get_or_create(&lc).set(r.cpu_millicores / 1000.0);
            let mut lm = l.clone();
            lm.extend(labels(&[("resource", "memory"), ("unit", "byte")]));
            family.get_or_create(&lm).set(r.memory_mib * 1_048_576.0);
        }
        let rs = format!(
            "{}-{}",
            p.deployment,
            p.pod.rsplit('-').nth(1).unwrap_or("0")
        );
        let node = p.node.clone().unwrap_or_default();
        info.get_or_create(&labels(&[
            ("namespace", ns),
            ("pod", &p.pod),
            ("node", &node),
            ("created_by_kind", "ReplicaSet"),
            ("created_by_name", &rs),
        ]))
        .set(1.0);
        for (cond, v) in [("true", p.ready), ("false", !p.ready)] {
            pod_ready
                .get_or_create(&labels(&[
                    ("namespace", ns),
                    ("pod", &p.pod),
                    ("condition", cond),
                ]))
                .set(if v { 1.0 } else { 0.0 });
        }
    }
    for d in &c.deployments {
        let l = labels(&[("namespace", ns), ("deployment", &d.name)]);
        spec.get_or_create(&l).set(d.spec_replicas as f64);
        ready.get_or_create(&l).set(d.ready_replicas as f64);
    }
    for r in &c.requests {
        let src_ns = if r.source == "unknown" { "unknown" } else { ns };
        let base = labels(&[
            ("reporter", "destination"),
            ("source_workload", &r.source),
            ("source_workload_namespace", src_ns),
            ("destination_workload", &r.destination),
            ("destination_workload_namespace", ns),
        ]);
        for (code, v) in [("200", r.ok_total), ("503", r.error_total)] {
            let mut l = base.clone();
            l.push(("response_code".into(), code.into()));
            istio.get_or_create(&l).inc_by(v);
        }
        let mut l = base.clone();
        l.push(("response_code".into(), "200".into()));
        let h = dur.get_or_create(&l);
        let mut g = h.inner.lock().map_err(|_| std::fmt::Error)?;
        // Cumulative floats -> per-bucket integers, rounding the cumulative counts so that
        // the encoded buckets stay monotone.
        let mut prev = 0u64;
        let mut buckets = Vec::with_capacity(ISTIO_DURATION_BUCKETS_MS.len() + 1);
        for (le, cum) in ISTIO_DURATION_BUCKETS_MS.iter().zip(&r.duration_buckets) {
            let c = (cum.round() as u64).max(prev);
            buckets.push((*le, c - prev));
            prev = c;
        }
        let count = (r.duration_count.round() as u64).max(prev);
        buckets.push((f64::MAX, count - prev));
        *g = (r.duration_sum_ms, count, buckets);
    }
    for t in &c.topics {
        offset
            .get_or_create(&labels(&[("topic", &t.topic), ("partition", "0")]))
            .set(t.produced_total);
        for (client, n) in &t.producers {
            sends
                .get_or_create(&labels(&[("client_id", client), ("topic", &t.topic)]))
                .inc_by(*n);
        }
        for g in &t.groups {
            let l = labels(&[
                ("topic", &t.topic),
                ("partition", "0"),
                ("consumergroup", &g.group),
            ]);
            group_offset.get_or_create(&l).set(g.consumed_total);
            lag.get_or_create(&l).set(g.lag);
        }
    }
    reg.register(
        "container_cpu_usage_seconds",
        "Cumulative CPU time consumed, seconds",
        cpu,
    );
    reg.register(
        "container_memory_working_set_bytes",
        "Current working set, bytes",
        mem,
    );
    reg.register(
        "kube_deployment_spec_replicas",
        "Desired pods of a deployment",
        spec,
    );
    reg.register(
        "kube_deployment_status_replicas_ready",
        "Ready pods of a deployment",
        ready,
    );
    reg.register(
        "kube_pod_container_resource_requests",
        "Requested resources of a container",
        req,
    );
    reg.register(
        "kube_pod_container_resource_limits",
        "Resource limits of a container",
        lim,
    );
    reg.register("kube_pod_info", "Information about a pod", info);
    reg.register(
        "kube_pod_status_ready",
        "Whether the pod is ready",
        pod_ready,
    );
    reg.register(
        "istio_requests",
        "Requests handled by the Istio proxy",
        istio,
    );
    reg.register(
        "istio_request_duration_milliseconds",
        "Request duration, ms",
        dur,
    );
    reg.register(
        "kafka_topic_partition_current_offset",
        "Current offset of a partition",
        offset,
    );
    reg.register(
        "kafka_consumergroup_current_offset",
        "Current offset of a consumer group",
        group_offset,
    );
    reg.register("kafka_consumergroup_lag", "Lag of a consumer group", lag);
    reg.register(
        "kafka_producer_record_send",
        "Records sent by a producer client",
        sends,
    );
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &reg)?;
    Ok(out)
}

/// The latest rendered exposition, shared between the simulation loop and the server.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    text: Arc<Mutex<String>>,
}

impl Exposition {
    /// Replaces the published text.
    pub fn publish(&self, text: String) {
        if let Ok(mut g) = self.text.lock() {
            *g = text;
        }
    }

    fn get(&self) -> Option<String> {
        self.text.lock().ok().map(|g| g.clone())
    }
}

async fn metrics(State(e): State<Exposition>) -> impl IntoResponse {
    match e.get() {
        Some(t) if !t.is_empty() => {
            (StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], t).into_response()
        }
        _ => (StatusCode::SERVICE_UNAVAILABLE, "no exposition yet\n").into_response(),
    }
}

/// `GET /metrics` serving `exposition`.
pub fn router(exposition: Exposition) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(exposition)
}
