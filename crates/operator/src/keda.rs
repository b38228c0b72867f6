//! The KEDA external scaler's plans, mirrored from the PredictiveAutoscalers' statuses.
//!
//! Every replica of the operator watches the statuses the leader writes and keeps a
//! [`PlanBoard`] of them, so KEDA gets the same answer from whichever replica its connection
//! reaches (the leader's status is the one source). A workload's plan is its
//! `desiredReplicas`, decided at `decidedAt`, stale after [`STALE_PERIODS`] sync periods
//! (at least [`MIN_STALE`]); a status whose `Ready` is false or `Degraded` true, or a decision
//! whose reasons say it did not come from a forecast, is a failed plan (KEDA's `fallback` acts).

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt;
use graphscale_core::Millis;
use graphscale_keda::board::FAILED_FORECAST_RULES;
use graphscale_keda::{Plan, PlanBoard};
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Client, ResourceExt};

use crate::crd::PredictiveAutoscaler;

/// Sync periods after which a plan is stale.
pub const STALE_PERIODS: f64 = 3.0;
/// The least age at which a plan is stale, milliseconds.
pub const MIN_STALE: Millis = Millis(30_000);

/// The plans in `pa`'s status, by workload (none before its first round).
pub fn plans_of(pa: &PredictiveAutoscaler) -> Vec<(String, Plan)> {
    let name = pa.name_any();
    let Some(st) = &pa.status else {
        return Vec::new();
    };
    let period_s = st
        .sync_period_seconds
        .filter(|p| p.is_finite() && *p > 0.0)
        .unwrap_or(15.0)
        .min(86_400.0);
    let stale_after = Millis::from_secs_f64(period_s * STALE_PERIODS).max(MIN_STALE);
    let cond = |t: &str| st.conditions.iter().find(|c| c.type_ == t);
    let object_failure = match (cond("Ready"), cond("Degraded")) {
        (Some(r), _) if r.status != "True" => Some(format!("Ready is False: {}", r.message)),
        (_, Some(d)) if d.status == "True" => Some(format!("Degraded: {}", d.message)),
        (None, _) => Some("no Ready condition yet".to_string()),
        _ => None,
    };
    st.workloads
        .iter()
        .filter_map(|w| {
            let decided: Timestamp = w.decided_at.as_deref()?.parse().ok()?;
            let decided_at = Millis(u64::try_from(decided.as_millisecond()).ok()?);
            let failure = object_failure.clone().or_else(|| {
                w.reasons
                    .iter()
                    .find(|r| {
                        FAILED_FORECAST_RULES
                            .iter()
                            .any(|rule| r.strip_prefix(rule).is_some_and(|t| t.starts_with(':')))
                    })
                    .cloned()
            });
            Some((
                w.name.clone(),
                Plan {
                    autoscaler: name.clone(),
                    replicas: w.desired_replicas,
                    decided_at,
                    stale_after,
                    failure: failure.map(|f| graphscale_keda::board::short(&f)),
                },
            ))
        })
        .collect()
}

fn publish(board: &PlanBoard, pa: &PredictiveAutoscaler) {
    let Some(ns) = pa.namespace() else { return };
    let full = board.replace(&ns, &pa.name_any(), plans_of(pa));
    if !full.is_empty() {
        tracing::warn!(
            namespace = %ns,
            name = %pa.name_any(),
            left_out = full.len(),
            limit = graphscale_keda::board::MAX_PLANS,
            "the KEDA scaler's plans are full: some workloads are not served"
        );
    }
}

/// Mirrors the statuses of the PredictiveAutoscalers in `namespace` (every namespace when
/// `None`) into `board` until `shutdown` resolves. A failed watch is retried with backoff.
pub async fn mirror(
    client: Client,
    namespace: Option<String>,
    board: Arc<PlanBoard>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let api: Api<PredictiveAutoscaler> = match &namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let events = watcher::watcher(api, watcher::Config::default()).default_backoff();
    tokio::pin!(events);
    tokio::pin!(shutdown);
    // The objects a relist saw: those it did not see are gone.
    let mut listed: Option<HashSet<(String, String)>> = None;
    loop {
        let ev = tokio::select! {
            e = events.next() => match e { Some(e) => e, None => break },
            _ = &mut shutdown => break,
        };
        match ev {
            Ok(Event::Apply(pa)) => publish(&board, &pa),
            Ok(Event::Delete(pa)) => {
                if let Some(ns) = pa.namespace() {
                    board.forget(&ns, &pa.name_any(), None);
                }
            }
            Ok(Event::Init) => listed = Some(HashSet::new()),
            Ok(Event::InitApply(pa)) => {
                if let (Some(seen), Some(ns)) = (listed.as_mut(), pa.namespace()) {
                    seen.insert((ns, pa.name_any()));
                }
                publish(&board, &pa);
            }
            Ok(Event::InitDone) => {
                if let Some(seen) = listed.take() {
                    board.retain_autoscalers(|ns, name| {
                        seen.contains(&(ns.to_string(), name.to_string()))
                    });
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "watching PredictiveAutoscalers for the KEDA scaler")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{PredictiveAutoscalerStatus, WorkloadStatus};
    use crate::status::condition;

    fn pa(status: PredictiveAutoscalerStatus) -> PredictiveAutoscaler {
        let mut pa: PredictiveAutoscaler = serde_json::from_value(serde_json::json!({
            "apiVersion": "autoscaling.graphscale.dev/v1alpha1", "kind": "PredictiveAutoscaler",
            "metadata": {"name": "shop", "namespace": "boutique"},
            "spec": {"targets": {"workloads": [{"name": "cart"}]}}
        }))
        .unwrap();
        pa.status = Some(status);
        pa
    }

    fn workload(name: &str, replicas: u32, reasons: &[&str]) -> WorkloadStatus {
        WorkloadStatus {
            name: name.into(),
            desired_replicas: replicas,
            reasons: reasons.iter().map(|r| r.to_string()).collect(),
            decided_at: Some("2026-12-02T10:00:00Z".into()),
            ..WorkloadStatus::default()
        }
    }

    fn healthy() -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        vec![
            condition(&[], "Ready", true, "RoundRan", "ok", Some(1)),
            condition(&[], "Degraded", false, "Healthy", "", Some(1)),
        ]
    }

    #[test]
    fn a_status_gives_one_plan_per_decided_workload() {
        let p = plans_of(&pa(PredictiveAutoscalerStatus {
            conditions: healthy(),
            sync_period_seconds: Some(15.0),
            workloads: vec![
                workload("cart", 4, &["forecast.demand: trend: observed 40 rps"]),
                workload(
                    "ads",
                    2,
                    &[
                        "hpa.cpu: 50 %",
                        "safety.fallback_hpa: no plan: the HPA rule decides",
                    ],
                ),
                WorkloadStatus {
                    decided_at: None,
                    ..workload("never", 1, &[])
                },
            ],
            ..PredictiveAutoscalerStatus::default()
        }));
        assert_eq!(p.len(), 2, "a workload without a decision has no plan");
        let (name, cart) = &p[0];
        assert_eq!(name, "cart");
        assert_eq!(cart.autoscaler, "shop");
        assert_eq!(cart.replicas, 4);
        assert_eq!(cart.decided_at, Millis(1_796_205_600_000));
        assert_eq!(cart.stale_after, Millis(45_000));
        assert_eq!(cart.failure, None);
        let ads = &p[1].1;
        assert!(ads
            .failure
            .as_deref()
            .is_some_and(|f| f.starts_with("safety.fallback_hpa")));
    }

    #[test]
    fn a_degraded_or_unready_object_fails_every_plan() {
        let mut conditions = healthy();
        conditions[1] = condition(
            &[],
            "Degraded",
            true,
            "MetricsMissing",
            "held: Prometheus did not answer",
            Some(1),
        );
        let p = plans_of(&pa(PredictiveAutoscalerStatus {
            conditions,
            sync_period_seconds: Some(2.0),
            workloads: vec![workload("cart", 4, &[])],
            ..PredictiveAutoscalerStatus::default()
        }));
        assert_eq!(p[0].1.stale_after, MIN_STALE, "at least 30 s");
        assert_eq!(
            p[0].1.failure.as_deref(),
            Some("Degraded: held: Prometheus did not answer")
        );
        let p = plans_of(&pa(PredictiveAutoscalerStatus {
            workloads: vec![workload("cart", 4, &[])],
            ..PredictiveAutoscalerStatus::default()
        }));
        assert_eq!(p[0].1.failure.as_deref(), Some("no Ready condition yet"));
        // A nonsense period or time is bounded or skipped, never a panic.
        let p = plans_of(&pa(PredictiveAutoscalerStatus {
            conditions: healthy(),
            sync_period_seconds: Some(f64::INFINITY),
            workloads: vec![WorkloadStatus {
                decided_at: Some("yesterday".into()),
                ..workload("cart", 4, &[])
            }],
            ..PredictiveAutoscalerStatus::default()
        }));
        assert!(p.is_empty());
    }
}
