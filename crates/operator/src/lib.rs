//! graphscale's Execute stage: the `PredictiveAutoscaler` custom resource
//! (`autoscaling.graphscale.dev/v1alpha1`), its controller, the Kubernetes actuator (the
//! `scale` subresource, in-place pod `resize`, server-side apply of the pod template, an Event
//! for every action) and leader election with a Lease.
//!
//! ```text
//!  watch PredictiveAutoscaler -> reconcile -> KubeCluster (targets from the API server,
//!                                              metrics and graph from Prometheus)
//!                                          -> ControlLoop::round -> KubeActuator -> status
//! ```
//!
//! See `docs/operator.md` for the resource, the RBAC it needs and how it behaves under faults.

pub mod actuator;
pub mod cluster;
pub mod controller;
pub mod crd;
pub mod direct;
mod error;
pub mod keda;
pub mod leader;
pub mod metrics;
pub mod run;
pub mod settings;
pub mod status;
pub mod target;
pub mod twin;

pub use crd::{PredictiveAutoscaler, PredictiveAutoscalerSpec, PredictiveAutoscalerStatus};
pub use error::OperatorError;
