//! The operator's one error type.

use graphscale_control::ControlError;
use graphscale_monitor::MonitorError;

/// What can go wrong in the operator.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// A call to the API server failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done (`patch scale of Deployment shop/cart`).
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// A PredictiveAutoscaler's spec cannot be run; `field` names the field.
    #[error("spec.{field}: {reason}")]
    InvalidSpec {
        /// The field, as in the YAML (`targets.workloads[0].name`).
        field: String,
        /// Why.
        reason: String,
    },
    /// A target workload was not found.
    #[error("{kind} {namespace}/{name} not found")]
    MissingTarget {
        /// Kind.
        kind: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The control loop failed.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// Prometheus or the graph source failed.
    #[error(transparent)]
    Monitor(#[from] MonitorError),
    /// A round decided but a write failed for good.
    #[error("actuating: {0}")]
    Actuation(#[source] graphscale_control::BoxError),
    /// The metrics and health endpoint could not listen.
    #[error("listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// YAML could not be written.
    #[error("writing YAML: {0}")]
    Yaml(#[from] serde_saphyr::SerializeError),
    /// A PredictiveAutoscaler without a namespace or name (cannot come from the API server).
    #[error("object has no {0}")]
    NoMeta(&'static str),
    /// The finalizer machinery failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<OperatorError>>),
}

impl OperatorError {
    /// A wrapper for `kube::Error` with what was being done.
    pub fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> OperatorError {
        let action = action.into();
        move |source| OperatorError::Kube { action, source }
    }

    /// The HTTP status the API server answered, if it was that.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            OperatorError::Kube {
                source: kube::Error::Api(s),
                ..
            } => Some(s.code),
            _ => None,
        }
    }

    /// A short name for metrics and Events (`Forbidden`, `NotFound`, ...).
    pub fn metric_label(&self) -> &'static str {
        match self {
            OperatorError::Kube { .. } => match self.status_code() {
                Some(403) => "forbidden",
                Some(404) => "not_found",
                Some(409) => "conflict",
                Some(429) => "throttled",
                Some(c) if c >= 500 => "server_error",
                _ => "api",
            },
            OperatorError::InvalidSpec { .. } => "invalid_spec",
            OperatorError::MissingTarget { .. } => "missing_target",
            OperatorError::Control(_) => "control",
            OperatorError::Monitor(_) => "monitor",
            OperatorError::Actuation(_) => "actuation",
            OperatorError::Yaml(_) => "yaml",
            OperatorError::Listen { .. } => "listen",
            OperatorError::NoMeta(_) => "no_meta",
            OperatorError::Finalizer(_) => "finalizer",
        }
    }
}
