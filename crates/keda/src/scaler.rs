//! KEDA's `ExternalScaler` service over the [`PlanBoard`]: the metric is the planned replicas
//! with a target of 1 (`metricType: AverageValue`), so the HPA that KEDA creates sets exactly
//! the plan. A stale or failed plan is an error (KEDA's `fallback` counts it), never
//! "inactive" and never a number.
//!
//! The ScaledObject's trigger names the workload in its metadata:
//! `workload` (required: the Deployment or StatefulSet a PredictiveAutoscaler plans, in the
//! ScaledObject's namespace) and `autoscaler` (optional: the PredictiveAutoscaler that must be
//! the one planning it). Other keys (`scalerAddress`, ...) are KEDA's and ignored.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::board::{Plan, PlanBoard};
use crate::generated::external_scaler_server::ExternalScaler;
use crate::generated::{
    GetMetricSpecResponse, GetMetricsRequest, GetMetricsResponse, IsActiveResponse, MetricSpec,
    MetricValue, ScaledObjectRef,
};
use crate::KedaError;

/// The one metric served: the planned replicas of the workload.
pub const METRIC_NAME: &str = "graphscale-planned-replicas";

/// Longest Kubernetes object name (a DNS-1123 subdomain).
const MAX_NAME: usize = 253;

/// The workload a request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    /// The ScaledObject's namespace, the workload's too.
    pub namespace: String,
    /// The workload.
    pub workload: String,
    /// The PredictiveAutoscaler that must be planning it, when named.
    pub autoscaler: Option<String>,
}

fn name(field: &'static str, v: &str) -> Result<String, KedaError> {
    let ok = !v.is_empty()
        && v.len() <= MAX_NAME
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && v.as_bytes()[0].is_ascii_alphanumeric()
        && v.as_bytes()[v.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(v.to_string())
    } else {
        Err(KedaError::Invalid {
            field,
            value: crate::board::short(v).chars().take(80).collect(),
            why:
                "not a Kubernetes object name (lowercase letters, digits, '-' and '.', at most 253)",
        })
    }
}

/// Reads the workload of a request, or says which field is wrong.
pub fn asked(r: Option<&ScaledObjectRef>) -> Result<Asked, KedaError> {
    let r = r.ok_or(KedaError::Missing {
        field: "scaledObjectRef",
        hint: "the request names no ScaledObject",
    })?;
    if r.namespace.is_empty() {
        return Err(KedaError::Missing {
            field: "scaledObjectRef.namespace",
            hint: "the ScaledObject's namespace",
        });
    }
    let namespace = name("scaledObjectRef.namespace", &r.namespace)?;
    let workload = match r.scaler_metadata.get("workload") {
        None => {
            return Err(KedaError::Missing {
                field: "scalerMetadata.workload",
                hint: "set the trigger's metadata.workload to the Deployment or StatefulSet a PredictiveAutoscaler plans",
            })
        }
        Some(w) => name("scalerMetadata.workload", w)?,
    };
    let autoscaler = match r.scaler_metadata.get("autoscaler") {
        None => None,
        Some(a) => Some(name("scalerMetadata.autoscaler", a)?),
    };
    Ok(Asked {
        namespace,
        workload,
        autoscaler,
    })
}

/// The service.
#[derive(Debug, Clone)]
pub struct Scaler {
    board: Arc<PlanBoard>,
    shutdown: watch::Receiver<bool>,
}

impl Scaler {
    /// A scaler over `board`; its streams end when `shutdown` turns true.
    pub fn new(board: Arc<PlanBoard>, shutdown: watch::Receiver<bool>) -> Self {
        Scaler { board, shutdown }
    }

    fn plan(&self, a: &Asked) -> Result<Plan, KedaError> {
        self.board
            .lookup(&a.namespace, &a.workload, a.autoscaler.as_deref())
    }
}

fn spec() -> GetMetricSpecResponse {
    GetMetricSpecResponse {
        metric_specs: vec![MetricSpec {
            metric_name: METRIC_NAME.to_string(),
            target_size: 1,
            target_size_float: 1.0,
        }],
    }
}

type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// How long until `plan` turns stale on `board`'s clock (at least a millisecond).
fn until_stale(board: &PlanBoard, plan: &Plan) -> Duration {
    let due = plan.decided_at.0.saturating_add(plan.stale_after.0);
    Duration::from_millis(due.saturating_sub(board.now().0).saturating_add(1))
}

struct ActiveStream {
    scaler: Scaler,
    asked: Asked,
    changes: watch::Receiver<u64>,
    last: Option<bool>,
    ended: bool,
}

/// Answers of `StreamIsActive`: the first at once, then one per change of activity; a plan that
/// turns stale, fails or goes ends the stream with its error (KEDA reopens it).
fn active_stream(s: ActiveStream) -> Boxed<IsActiveResponse> {
    Box::pin(futures::stream::unfold(s, |mut s| async move {
        if s.ended {
            return None;
        }
        loop {
            let wait = match s.scaler.plan(&s.asked) {
                Ok(p) => {
                    let active = p.replicas > 0;
                    if s.last != Some(active) {
                        s.last = Some(active);
                        return Some((Ok(IsActiveResponse { result: active }), s));
                    }
                    until_stale(&s.scaler.board, &p)
                }
                Err(e) => {
                    s.ended = true;
                    return Some((Err(e.status()), s));
                }
            };
            let mut stop = s.scaler.shutdown.clone();
            tokio::select! {
                r = s.changes.changed() => if r.is_err() { return None },
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|v| *v) => return None,
            }
        }
    }))
}

#[tonic::async_trait]
impl ExternalScaler for Scaler {
    async fn is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<IsActiveResponse>, Status> {
        let a = asked(Some(request.get_ref()))?;
        let _span =
            tracing::debug_span!("keda.is_active", namespace = %a.namespace, workload = %a.workload)
                .entered();
        let p = self.plan(&a)?;
        Ok(Response::new(IsActiveResponse {
            result: p.replicas > 0,
        }))
    }

    type StreamIsActiveStream = Boxed<IsActiveResponse>;

    async fn stream_is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamIsActiveStream>, Status> {
        let a = asked(Some(request.get_ref()))?;
        tracing::debug!(namespace = %a.namespace, workload = %a.workload, "keda.stream_is_active");
        // Refused at once when there is nothing to answer (KEDA logs the message).
        self.plan(&a)?;
        Ok(Response::new(active_stream(ActiveStream {
            changes: self.board.changes(),
            scaler: self.clone(),
            asked: a,
            last: None,
            ended: false,
        })))
    }

    async fn get_metric_spec(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<GetMetricSpecResponse>, Status> {
        // The spec does not depend on the plan: KEDA builds its HPA from it even before the
        // first round (the metric itself is then refused, and `fallback` acts).
        asked(Some(request.get_ref()))?;
        Ok(Response::new(spec()))
    }

    async fn get_metrics(
        &self,
        request: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsResponse>, Status> {
        let r = request.get_ref();
        let a = asked(r.scaled_object_ref.as_ref())?;
        let _span =
            tracing::debug_span!("keda.get_metrics", namespace = %a.namespace, workload = %a.workload)
                .entered();
        if r.metric_name.is_empty() {
            return Err(KedaError::Missing {
                field: "metricName",
                hint: "the metric GetMetricSpec named",
            }
            .into());
        }
        if r.metric_name != METRIC_NAME {
            return Err(KedaError::UnknownMetric {
                asked: r.metric_name.chars().take(80).collect(),
                served: METRIC_NAME,
            }
            .into());
        }
        let p = self.plan(&a)?;
        Ok(Response::new(GetMetricsResponse {
            metric_values: vec![MetricValue {
                metric_name: METRIC_NAME.to_string(),
                metric_value: i64::from(p.replicas),
                metric_value_float: f64::from(p.replicas),
            }],
        }))
    }

    type StreamMetricSpecStream = Boxed<GetMetricSpecResponse>;

    async fn stream_metric_spec(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamMetricSpecStream>, Status> {
        asked(Some(request.get_ref()))?;
        // The spec never changes (target 1): sent once, then the stream stays open until
        // shutdown, as KEDA's protocol asks.
        let stop = self.shutdown.clone();
        let first = futures::stream::once(async { Ok(spec()) });
        let hold = futures::stream::unfold(stop, |mut stop| async move {
            let _ = stop.wait_for(|v| *v).await;
            None::<(Result<GetMetricSpecResponse, Status>, _)>
        });
        Ok(Response::new(Box::pin(futures::StreamExt::chain(
            first, hold,
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn r(ns: &str, meta: &[(&str, &str)]) -> ScaledObjectRef {
        ScaledObjectRef {
            name: "so".into(),
            namespace: ns.into(),
            scaler_metadata: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
        }
    }

    #[test]
    fn the_workload_is_read_from_the_metadata_and_bad_fields_are_named() {
        let a = asked(Some(&r(
            "shop",
            &[("workload", "cart"), ("scalerAddress", "x:1")],
        )))
        .unwrap();
        assert_eq!(a.workload, "cart");
        assert_eq!(a.autoscaler, None);
        let e = |x: Option<&ScaledObjectRef>| asked(x).unwrap_err().to_string();
        assert!(e(None).starts_with("scaledObjectRef is missing"));
        assert!(e(Some(&r("", &[("workload", "cart")]))).starts_with("scaledObjectRef.namespace"));
        assert!(e(Some(&r("shop", &[]))).starts_with("scalerMetadata.workload is missing"));
        assert!(e(Some(&r("shop", &[("workload", "Cart")])))
            .starts_with("scalerMetadata.workload = \"Cart\""));
        assert!(e(Some(&r(
            "shop",
            &[("workload", "cart"), ("autoscaler", "-x")]
        )))
        .starts_with("scalerMetadata.autoscaler"));
        let long = "a".repeat(10_000);
        let msg = e(Some(&r("shop", &[("workload", &long)])));
        assert!(msg.len() < 300, "{}", msg.len());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256), ..Default::default() })]
        /// Any ScaledObjectRef, as a hostile or broken client may send it: a workload or a
        /// refusal that names the field, short, never a panic.
        #[test]
        fn any_request_is_read_or_refused_by_name(
            ns in "\\PC{0,300}",
            meta in proptest::collection::hash_map("\\PC{0,12}|workload|autoscaler", "\\PC{0,400}|[a-z0-9.-]{1,20}", 0..6),
        ) {
            let r = ScaledObjectRef { name: "x".into(), namespace: ns, scaler_metadata: meta };
            match asked(Some(&r)) {
                Ok(a) => {
                    proptest::prop_assert!(!a.workload.is_empty() && a.workload.len() <= 253);
                    proptest::prop_assert_eq!(Some(&a.workload), r.scaler_metadata.get("workload"));
                }
                Err(e) => {
                    let m = e.to_string();
                    proptest::prop_assert!(m.len() < 400, "{} chars", m.len());
                    proptest::prop_assert!(m.starts_with("scaledObjectRef") || m.starts_with("scalerMetadata"), "{m}");
                }
            }
        }
    }
}
