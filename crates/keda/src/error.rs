//! The crate's one error type, and the gRPC status each error answers.

use std::net::SocketAddr;

/// What the scaler refuses, and why its server could not run.
#[derive(Debug, thiserror::Error)]
pub enum KedaError {
    /// A required field of the request is missing or empty.
    #[error("{field} is missing: {hint}")]
    Missing {
        /// The field, as KEDA's ScaledObject spells it.
        field: &'static str,
        /// What to put there.
        hint: &'static str,
    },
    /// A field of the request cannot be right.
    #[error("{field} = {value:?}: {why}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Its value, shortened.
        value: String,
        /// Why not.
        why: &'static str,
    },
    /// A metric this scaler does not serve.
    #[error("metricName = {asked:?}: this scaler serves only {served:?}")]
    UnknownMetric {
        /// The name asked for, shortened.
        asked: String,
        /// The one it serves.
        served: &'static str,
    },
    /// No PredictiveAutoscaler has planned for the workload.
    #[error(
        "no plan for {namespace}/{workload}: no PredictiveAutoscaler in {namespace} targets it, or its first round has not run yet"
    )]
    NoPlan {
        /// Namespace.
        namespace: String,
        /// Workload.
        workload: String,
    },
    /// The workload is planned by another PredictiveAutoscaler than the one named.
    #[error(
        "{namespace}/{workload} is planned by {planner}, not {asked} (scalerMetadata.autoscaler)"
    )]
    OtherAutoscaler {
        /// Namespace.
        namespace: String,
        /// Workload.
        workload: String,
        /// The one named in the metadata.
        asked: String,
        /// The one planning it.
        planner: String,
    },
    /// The last plan is too old to act on.
    #[error(
        "the plan for {namespace}/{workload} is {age_s:.1} s old, stale after {limit_s:.1} s: the operator's rounds have stopped (see the PredictiveAutoscaler's conditions)"
    )]
    Stale {
        /// Namespace.
        namespace: String,
        /// Workload.
        workload: String,
        /// Age of the plan, seconds.
        age_s: f64,
        /// The limit, seconds.
        limit_s: f64,
    },
    /// The last round could not forecast for the workload.
    #[error("no forecast for {namespace}/{workload}: {why}")]
    NoForecast {
        /// Namespace.
        namespace: String,
        /// Workload.
        workload: String,
        /// Why, shortened.
        why: String,
    },
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

impl KedaError {
    /// The gRPC status KEDA gets: a bad request is `InvalidArgument`, an unknown workload
    /// `NotFound`, a stale or failed plan `Unavailable` (KEDA counts it towards `fallback`).
    pub fn status(&self) -> tonic::Status {
        let msg = self.to_string();
        match self {
            KedaError::Missing { .. }
            | KedaError::Invalid { .. }
            | KedaError::UnknownMetric { .. } => tonic::Status::invalid_argument(msg),
            KedaError::NoPlan { .. } | KedaError::OtherAutoscaler { .. } => {
                tonic::Status::not_found(msg)
            }
            KedaError::Stale { .. } | KedaError::NoForecast { .. } => {
                tonic::Status::unavailable(msg)
            }
            KedaError::Listen { .. } => tonic::Status::internal(msg),
        }
    }
}

impl From<KedaError> for tonic::Status {
    fn from(e: KedaError) -> Self {
        e.status()
    }
}
