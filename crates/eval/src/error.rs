//! The one error type of the eval crate.

/// Errors of an experiment.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The simulator rejected a spec or failed.
    #[error("{context}")]
    Sim {
        /// Which app, scenario or run.
        context: String,
        /// The simulator's error.
        #[source]
        source: graphscale_sim::SimError,
    },
    /// An autoscaler config is invalid.
    #[error("autoscaler `{name}`")]
    Plan {
        /// The autoscaler's name.
        name: String,
        /// The planner's error.
        #[source]
        source: graphscale_plan::PlanError,
    },
    /// A field of the experiment spec (or of the HPA grid) is invalid.
    #[error("invalid experiment: {field}: {reason}")]
    Invalid {
        /// The field, e.g. `seeds` or `scenarios[rush].duration_s`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A recorded decision (a line of a decision log) cannot be replayed.
    #[error("{at}: {reason}")]
    Record {
        /// Where: the file and line, or the record's number.
        at: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An autoscaler could not be built or a control round failed.
    #[error(transparent)]
    Control(#[from] graphscale_control::ControlError),
    /// Writing a report failed.
    #[error("{path}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written (or exists and replacing it was not asked for).
    #[error(transparent)]
    Write(#[from] graphscale_fsio::WriteError),
}

impl EvalError {
    /// An invalid field of the experiment spec.
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        EvalError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
