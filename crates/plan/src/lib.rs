//! # graphscale-plan
//!
//! Planners turn what the monitor saw into replica decisions. This crate is pure: no I/O, no
//! wall clock; time arrives inside each [`graphscale_core::ClusterSnapshot`]. It holds the
//! baselines every predictive planner is compared with:
//!
//! - [`hpa`]: the Kubernetes HPA (autoscaling/v2) reproduced from its algorithm, including
//!   tolerance, missing and unready pod handling, stabilisation windows and rate policies;
//! - [`fixed`]: static replicas.
//!
//! ```
//! use graphscale_plan::hpa::{HpaAutoscaler, HpaControllerConfig, HpaSpec};
//! let hpa = HpaAutoscaler::new("hpa", HpaControllerConfig::default(), HpaSpec::default(), Default::default()).unwrap();
//! # let _ = hpa;
//! ```

pub mod fixed;
pub mod hpa;

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
