//! # graphscale-plan
//!
//! Planners turn what the monitor saw into replica decisions. This crate is pure: no I/O, no
//! wall clock; time arrives inside each [`graphscale_core::ClusterSnapshot`]. It holds the
//! baselines every predictive planner is compared with:
//!
//! - [`hpa`]: the Kubernetes HPA (autoscaling/v2) reproduced from its algorithm, including
//!   tolerance, missing and unready pod handling, stabilisation windows and rate policies;
//! - [`fixed`]: static replicas;
//! - [`phpa`]: a PHPA-style exponential-smoothing forecast of the HPA's own replica history.
//!
//! and the predictive side: [`learn`] (CPU per request, start-up time and call ratios learned
//! from observations), the pure [`planner`] (forecast demand to replicas along the graph),
//! [`vertical`] (VPA-style requests and limits), [`cpu_request`] (CPU requests sized with the
//! replica plan), [`churn`] (a cost per scaling action), the
//! [`safety`] layer, and
//! [`predictive::PredictiveAutoscaler`] that puts them together.
//!
//! ```
//! use graphscale_plan::hpa::{HpaAutoscaler, HpaControllerConfig, HpaSpec};
//! let hpa = HpaAutoscaler::new("hpa", HpaControllerConfig::default(), HpaSpec::default(), Default::default()).unwrap();
//! # let _ = hpa;
//! ```

pub mod churn;
pub mod cpu_request;
pub mod fixed;
pub mod guarded;
pub mod hpa;
pub mod latency;
pub mod learn;
pub mod phpa;
pub mod planner;
pub mod predictive;
pub mod safety;
pub mod slo;
pub mod table;
pub mod vertical;

/// Errors of the plan crate.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A planner or baseline configuration is impossible.
    #[error("invalid autoscaler config for `{workload}`: {field}: {reason}")]
    InvalidConfig {
        /// The workload the config is for (`*` for all).
        workload: String,
        /// The field at fault.
        field: String,
        /// Why.
        reason: String,
    },
}
