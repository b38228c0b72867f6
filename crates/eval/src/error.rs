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
    /// The experiment spec is invalid.
    #[error("invalid experiment: {0}")]
    Invalid(String),
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
