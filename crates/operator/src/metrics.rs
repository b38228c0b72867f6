//! The operator's own metrics (`/metrics`, OpenMetrics text): its reconciliations, and per
//! workload what the last round planned, what the HPA would have done (the shadow), what was
//! observed against the SLO, and when, so Prometheus alerts on a stale forecast and the HPA's
//! External metrics (through prometheus-adapter, `deploy/prometheus-adapter/`) read the plan.
//!
//! Per-workload series carry two labels, `namespace` and `workload`, and are bounded
//! ([`MAX_WORKLOAD_SERIES`]); a deleted PredictiveAutoscaler's series are removed.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use graphscale_core::{ClusterSnapshot, ScalingDecision};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A label set of one string.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    /// The value.
    pub kind: String,
}

/// Most (namespace, workload) label sets the per-workload metrics keep: 5 PredictiveAutoscalers
/// at their most targets ([`crate::target::MAX_TARGETS`]). A workload beyond it is not exported
/// (and a warning says so); its decisions are made as ever.
pub const MAX_WORKLOAD_SERIES: usize = 10_000;
/// Most (namespace, rule) label sets of the decision-reason counter (rules are our own names,
/// a few dozen; the bound holds whatever a model names).
pub const MAX_REASON_SERIES: usize = 2_000;

/// The labels of a per-workload series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkloadLabels {
    /// The workload's namespace.
    pub namespace: String,
    /// Its name.
    pub workload: String,
}

/// The labels of the decision-reason counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    /// The namespace.
    pub namespace: String,
    /// The reason's rule (`forecast.demand`, `safety.fallback_hpa`, ...).
    pub rule: String,
}

/// A gauge of a float.
pub type FloatGauge = Gauge<f64, AtomicU64>;

/// What one round gave one workload, for [`Metrics::record_round`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkloadRound {
    /// Replicas the HPA would have set (the shadow).
    pub shadow_hpa: Option<u32>,
    /// The SLO's p95 bound, milliseconds.
    pub slo_p95_ms: Option<f64>,
}

/// The metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Reconciliations run.
    pub reconciles: Counter,
    /// Reconciliations that failed, by error kind.
    pub errors: Family<Kind, Counter>,
    /// Wall time of one reconciliation, seconds.
    pub reconcile_seconds: Histogram,
    /// Control-loop rounds run.
    pub rounds: Counter,
    /// Decisions by outcome (applied, recommended, unchanged, conflict, disabled).
    pub outcomes: Family<Kind, Counter>,
    /// 1 while this replica holds the Lease.
    pub leader: Gauge,
    /// Replicas the last round planned, per workload.
    pub planned: Family<WorkloadLabels, Gauge>,
    /// `spec.replicas` as the last round observed it.
    pub current: Family<WorkloadLabels, Gauge>,
    /// Replicas the HPA would have set (the shadow HPA on the same snapshot).
    pub shadow_hpa: Family<WorkloadLabels, Gauge>,
    /// Unix time of the last round that decided for the workload: the forecast's age is
    /// `time()` minus it.
    pub last_decision: Family<WorkloadLabels, FloatGauge>,
    /// Observed requests per second.
    pub rps: Family<WorkloadLabels, FloatGauge>,
    /// Observed p95 latency, seconds.
    pub latency_p95: Family<WorkloadLabels, FloatGauge>,
    /// The SLO's p95 bound, seconds.
    pub slo_p95: Family<WorkloadLabels, FloatGauge>,
    /// Peak point forecast of the request rate over the horizon, rps.
    pub forecast_peak: Family<WorkloadLabels, FloatGauge>,
    /// The upper bound of the forecast's interval at the planning quantile, rps.
    pub forecast_upper: Family<WorkloadLabels, FloatGauge>,
    /// The quantile of that bound (0.95 for the q95).
    pub forecast_quantile: Family<WorkloadLabels, FloatGauge>,
    /// Reasons given with decisions, by rule.
    pub reasons: Family<RuleLabels, Counter>,
    workload_series: Mutex<HashSet<WorkloadLabels>>,
    reason_series: Mutex<HashSet<RuleLabels>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("graphscale_operator");
        let reconciles = Counter::default();
        let errors = Family::<Kind, Counter>::default();
        let reconcile_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        let rounds = Counter::default();
        let outcomes = Family::<Kind, Counter>::default();
        let leader = Gauge::default();
        registry.register("reconciliations", "Reconciliations run", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciliations that failed, by kind",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Wall time of one reconciliation",
            reconcile_seconds.clone(),
        );
        registry.register("rounds", "Control-loop rounds run", rounds.clone());
        registry.register("decisions", "Decisions by outcome", outcomes.clone());
        registry.register(
            "leader",
            "1 while this replica holds the Lease",
            leader.clone(),
        );
        let planned = Family::<WorkloadLabels, Gauge>::default();
        let current = Family::<WorkloadLabels, Gauge>::default();
        let shadow_hpa = Family::<WorkloadLabels, Gauge>::default();
        let last_decision = Family::<WorkloadLabels, FloatGauge>::default();
        let rps = Family::<WorkloadLabels, FloatGauge>::default();
        let latency_p95 = Family::<WorkloadLabels, FloatGauge>::default();
        let slo_p95 = Family::<WorkloadLabels, FloatGauge>::default();
        let reasons = Family::<RuleLabels, Counter>::default();
        let forecast_peak = Family::<WorkloadLabels, FloatGauge>::default();
        let forecast_upper = Family::<WorkloadLabels, FloatGauge>::default();
        let forecast_quantile = Family::<WorkloadLabels, FloatGauge>::default();
        registry.register(
            "forecast_peak_rps",
            "Peak point forecast of the request rate over the horizon",
            forecast_peak.clone(),
        );
        registry.register(
            "forecast_upper_rps",
            "Upper bound of the forecast's interval at the planning quantile",
            forecast_upper.clone(),
        );
        registry.register(
            "forecast_quantile",
            "The quantile of forecast_upper_rps",
            forecast_quantile.clone(),
        );
        registry.register(
            "planned_replicas",
            "Replicas the last round planned",
            planned.clone(),
        );
        registry.register(
            "current_replicas",
            "spec.replicas as the last round observed it",
            current.clone(),
        );
        registry.register(
            "shadow_hpa_replicas",
            "Replicas the HPA would have set on the same snapshot",
            shadow_hpa.clone(),
        );
        registry.register(
            "last_decision_timestamp_seconds",
            "Unix time of the last round that decided for the workload",
            last_decision.clone(),
        );
        registry.register("observed_rps", "Observed requests per second", rps.clone());
        registry.register(
            "latency_p95_seconds",
            "Observed p95 latency",
            latency_p95.clone(),
        );
        registry.register(
            "slo_latency_p95_seconds",
            "The SLO's p95 latency bound",
            slo_p95.clone(),
        );
        registry.register(
            "decision_reasons",
            "Reasons given with decisions, by rule",
            reasons.clone(),
        );
        Metrics {
            registry,
            reconciles,
            errors,
            reconcile_seconds,
            rounds,
            outcomes,
            leader,
            planned,
            current,
            shadow_hpa,
            last_decision,
            rps,
            latency_p95,
            slo_p95,
            forecast_peak,
            forecast_upper,
            forecast_quantile,
            reasons,
            workload_series: Mutex::new(HashSet::new()),
            reason_series: Mutex::new(HashSet::new()),
        }
    }
}

impl Metrics {
    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }

    /// Counts one outcome.
    pub fn outcome(&self, kind: &str) {
        self.outcomes
            .get_or_create(&Kind { kind: kind.into() })
            .inc();
    }

    /// Records one round of a PredictiveAutoscaler in `namespace`: the decisions (at Unix time
    /// `now_s`), the snapshot they were made on, and per workload what `extra` gives.
    pub fn record_round(
        &self,
        namespace: &str,
        now_s: f64,
        snapshot: &ClusterSnapshot,
        decisions: &[ScalingDecision],
        extra: impl Fn(&str) -> WorkloadRound,
    ) {
        let observed = snapshot.by_name();
        for d in decisions {
            let labels = WorkloadLabels {
                namespace: namespace.to_string(),
                workload: d.workload.clone(),
            };
            if !admit(&self.workload_series, &labels, MAX_WORKLOAD_SERIES) {
                tracing::warn!(
                    namespace,
                    workload = %d.workload,
                    limit = MAX_WORKLOAD_SERIES,
                    "per-workload metrics are full: this workload is not exported"
                );
                continue;
            }
            self.planned
                .get_or_create(&labels)
                .set(i64::from(d.replicas));
            self.last_decision.get_or_create(&labels).set(now_s);
            let w = observed.get(d.workload.as_str());
            if let Some(w) = w {
                self.current
                    .get_or_create(&labels)
                    .set(i64::from(w.spec_replicas));
            }
            let finite = |v: Option<f64>| v.filter(|v| v.is_finite());
            set_or_remove(&self.rps, &labels, finite(w.and_then(|w| w.rps)));
            set_or_remove(
                &self.latency_p95,
                &labels,
                finite(w.and_then(|w| w.latency_p95_ms)).map(|ms| ms / 1000.0),
            );
            let x = extra(&d.workload);
            set_or_remove(&self.shadow_hpa, &labels, x.shadow_hpa.map(i64::from));
            set_or_remove(&self.slo_p95, &labels, x.slo_p95_ms.map(|ms| ms / 1000.0));
            let f = crate::status::forecast_of(d, 0.0);
            set_or_remove(
                &self.forecast_peak,
                &labels,
                finite(f.as_ref().map(|f| f.peak_rps)),
            );
            set_or_remove(
                &self.forecast_upper,
                &labels,
                finite(f.as_ref().map(|f| f.upper_rps)),
            );
            set_or_remove(
                &self.forecast_quantile,
                &labels,
                finite(f.as_ref().map(|f| f.quantile)),
            );
            for r in &d.reasons {
                let labels = RuleLabels {
                    namespace: namespace.to_string(),
                    rule: r.rule.clone(),
                };
                if admit(&self.reason_series, &labels, MAX_REASON_SERIES) {
                    self.reasons.get_or_create(&labels).inc();
                }
            }
        }
    }

    /// Removes the per-workload series of `workloads` in `namespace` (a deleted
    /// PredictiveAutoscaler, or workloads it no longer selects).
    pub fn forget(&self, namespace: &str, workloads: &[String]) {
        let mut kept = self
            .workload_series
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for w in workloads {
            let labels = WorkloadLabels {
                namespace: namespace.to_string(),
                workload: w.clone(),
            };
            kept.remove(&labels);
            self.planned.remove(&labels);
            self.current.remove(&labels);
            self.shadow_hpa.remove(&labels);
            self.last_decision.remove(&labels);
            self.rps.remove(&labels);
            self.latency_p95.remove(&labels);
            self.slo_p95.remove(&labels);
            self.forecast_peak.remove(&labels);
            self.forecast_upper.remove(&labels);
            self.forecast_quantile.remove(&labels);
        }
    }
}

/// Sets the series of `labels` to `v`, or removes it when there is no value (never a made-up 0).
fn set_or_remove<N, A>(
    family: &Family<WorkloadLabels, Gauge<N, A>>,
    labels: &WorkloadLabels,
    v: Option<N>,
) where
    A: prometheus_client::metrics::gauge::Atomic<N> + Default,
{
    match v {
        Some(v) => {
            family.get_or_create(labels).set(v);
        }
        None => {
            family.remove(labels);
        }
    }
}

/// Whether `labels` is kept: already, or newly while under `limit`.
fn admit<L: Clone + Eq + std::hash::Hash>(
    set: &Mutex<HashSet<L>>,
    labels: &L,
    limit: usize,
) -> bool {
    let mut set = set.lock().unwrap_or_else(|e| e.into_inner());
    if set.contains(labels) {
        return true;
    }
    if set.len() >= limit {
        return false;
    }
    set.insert(labels.clone());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use graphscale_core::{Millis, Reason, WorkloadObservation};

    fn decision(w: &str, replicas: u32, rule: &str) -> ScalingDecision {
        ScalingDecision {
            workload: w.into(),
            replicas,
            reasons: vec![Reason::new(rule, "x")],
            resources: None,
        }
    }

    fn snapshot() -> ClusterSnapshot {
        ClusterSnapshot {
            time: Millis(0),
            workloads: vec![WorkloadObservation {
                name: "cart".into(),
                spec_replicas: 3,
                pods: Vec::new(),
                rps: Some(10.0),
                latency_p95_ms: Some(250.0),
                error_rate: None,
                backlog: None,
            }],
            edges: Vec::new(),
        }
    }

    #[test]
    fn a_round_is_exported_per_workload_and_forgotten_on_delete() {
        let m = Metrics::default();
        let extra = |w: &str| WorkloadRound {
            shadow_hpa: (w == "cart").then_some(5),
            slo_p95_ms: Some(200.0),
        };
        let mut cart = decision("cart", 4, "forecast.demand");
        cart.reasons[0].detail = "trend: observed 41.5 rps, peak forecast 52.0 over the next 45 s (lead 30 s), q95 55.3, planned 55.3".into();
        let ds = [cart, decision("ads", 2, "safety.fallback_hpa")];
        m.record_round("shop", 1_700_000_000.0, &snapshot(), &ds, extra);
        m.record_round("shop", 1_700_000_015.0, &snapshot(), &ds, extra);
        let text = m.encode();
        for line in [
            r#"graphscale_operator_planned_replicas{namespace="shop",workload="cart"} 4"#,
            r#"graphscale_operator_planned_replicas{namespace="shop",workload="ads"} 2"#,
            r#"graphscale_operator_current_replicas{namespace="shop",workload="cart"} 3"#,
            r#"graphscale_operator_shadow_hpa_replicas{namespace="shop",workload="cart"} 5"#,
            r#"graphscale_operator_last_decision_timestamp_seconds{namespace="shop",workload="cart"} 1700000015.0"#,
            r#"graphscale_operator_latency_p95_seconds{namespace="shop",workload="cart"} 0.25"#,
            r#"graphscale_operator_observed_rps{namespace="shop",workload="cart"} 10.0"#,
            r#"graphscale_operator_slo_latency_p95_seconds{namespace="shop",workload="cart"} 0.2"#,
            r#"graphscale_operator_decision_reasons_total{namespace="shop",rule="safety.fallback_hpa"} 2"#,
            r#"graphscale_operator_forecast_peak_rps{namespace="shop",workload="cart"} 52.0"#,
            r#"graphscale_operator_forecast_upper_rps{namespace="shop",workload="cart"} 55.3"#,
            r#"graphscale_operator_forecast_quantile{namespace="shop",workload="cart"} 0.95"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        // No observation, no shadow: no made-up value.
        assert!(!text.contains(r#"current_replicas{namespace="shop",workload="ads"}"#));
        assert!(!text.contains(r#"shadow_hpa_replicas{namespace="shop",workload="ads"}"#));
        assert!(!text.contains(r#"forecast_peak_rps{namespace="shop",workload="ads"}"#));
        m.forget("shop", &["cart".into(), "ads".into()]);
        let text = m.encode();
        assert!(!text.contains(r#"workload="cart""#), "{text}");
        assert!(!text.contains(r#"workload="ads""#), "{text}");
    }

    #[test]
    fn per_workload_series_are_bounded() {
        let m = Metrics::default();
        let ds: Vec<_> = (0..MAX_WORKLOAD_SERIES + 5)
            .map(|i| decision(&format!("w{i}"), 1, "static"))
            .collect();
        m.record_round("ns", 0.0, &snapshot(), &ds, |_| WorkloadRound {
            shadow_hpa: None,
            slo_p95_ms: None,
        });
        let text = m.encode();
        let planned = text
            .lines()
            .filter(|l| l.starts_with("graphscale_operator_planned_replicas{"))
            .count();
        assert_eq!(planned, MAX_WORKLOAD_SERIES);
        // A kept workload is still updated.
        m.record_round(
            "ns",
            0.0,
            &snapshot(),
            &[decision("w0", 7, "static")],
            |_| WorkloadRound {
                shadow_hpa: None,
                slo_p95_ms: None,
            },
        );
        assert!(m
            .encode()
            .contains(r#"graphscale_operator_planned_replicas{namespace="ns",workload="w0"} 7"#));
    }
}
