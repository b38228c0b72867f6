//! The one error type of the rl crate.

/// Why an environment, a policy, its training or its checkpoint cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum RlError {
    /// A settings field is impossible.
    #[error("rl: config field `{field}`: {reason}")]
    Config {
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
    /// An action is out of range or masked.
    #[error("rl: action for `{workload}`: {reason}")]
    Action {
        /// The workload the action is for.
        workload: String,
        /// Why it cannot be taken.
        reason: String,
    },
    /// The observation or graph does not fit the policy (another app, another layout).
    #[error("rl: {what}")]
    Layout {
        /// Where they differ.
        what: String,
    },
    /// A checkpoint cannot be read or written.
    #[error("rl: {path}: {reason}")]
    Checkpoint {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Training failed (a loss that is not finite).
    #[error("rl: training: {what}")]
    Training {
        /// What happened.
        what: String,
    },
    /// The simulator refused something.
    #[error("rl: simulator")]
    Sim(#[from] graphscale_sim::SimError),
    /// A file could not be written.
    #[error("rl: {path}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
