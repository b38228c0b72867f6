//! The one error type of the nn crate.

/// Why a neural model cannot be built, trained, saved, loaded or run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NnError {
    /// A graph or its tensors are inconsistent (indices, node types, feature widths).
    #[error("graph: {what}")]
    InvalidGraph {
        /// The first problem found.
        what: String,
    },
    /// The data's graph is not the one the model was trained on.
    #[error("graph: {what}")]
    Layout {
        /// Where they differ.
        what: String,
    },
    /// Training or prediction data cannot be used (too short, not finite, missing).
    #[error("graph: {what}")]
    Data {
        /// What is wrong with it.
        what: String,
    },
    /// A settings field is impossible.
    #[error("graph: config field `{field}`: {reason}")]
    Config {
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
    /// No graph model has this name.
    #[error("graph: unknown graph model `{name}` (known: {known})")]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// The names there are.
        known: &'static str,
    },
    /// A checkpoint cannot be read or written.
    #[error("graph: {path}: {reason}")]
    Checkpoint {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A tensor could not be read back from the backend.
    #[error("graph: reading a tensor: {reason}")]
    Tensor {
        /// The backend's words.
        reason: String,
    },
    /// A per-series forecaster (the LSTM baseline) failed.
    #[error("graph: the per-series baseline failed")]
    Forecast(#[from] graphscale_core::ForecastFailure),
}
