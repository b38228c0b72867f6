//! The one error type of the control crate.

use std::error::Error as StdError;
use std::fmt;

/// The step of a control round that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reading the topology.
    Topology,
    /// Reading the metrics.
    Metrics,
    /// Applying the decisions.
    Actuate,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Topology => "reading the topology",
            Stage::Metrics => "reading the metrics",
            Stage::Actuate => "applying the decisions",
        })
    }
}

/// Errors of the catalogue and the control loop.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No autoscaler of the catalogue has this name.
    #[error("unknown autoscaler `{name}` (known: {known})")]
    UnknownAutoscaler {
        /// The name asked for.
        name: String,
        /// The catalogue's names.
        known: String,
    },
    /// An autoscaler's settings are invalid.
    #[error("autoscaler `{name}`")]
    Plan {
        /// The autoscaler.
        name: String,
        /// What is wrong.
        #[source]
        source: graphscale_plan::PlanError,
    },
    /// An autoscaler's forecast model cannot be made.
    #[error("autoscaler `{name}`")]
    Model {
        /// The autoscaler.
        name: String,
        /// Why.
        #[source]
        source: graphscale_core::ForecastFailure,
    },
    /// An autoscaler's checkpoint cannot be used.
    #[error("autoscaler `{name}`: checkpoint {path}")]
    Checkpoint {
        /// The autoscaler.
        name: String,
        /// The checkpoint's path.
        path: String,
        /// Why.
        #[source]
        source: graphscale_nn::NnError,
    },
    /// A learned policy (`rl-gat:PATH`, ...) cannot be used.
    #[error("autoscaler `{name}`")]
    Policy {
        /// The autoscaler.
        name: String,
        /// Why.
        #[source]
        source: graphscale_rl::RlError,
    },
    /// A schedule is impossible.
    #[error("schedule: {field} {reason}")]
    Schedule {
        /// The field at fault.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A seam failed during a round.
    #[error("control round at {time}: {stage}")]
    Round {
        /// When the round ran.
        time: graphscale_core::Millis,
        /// The step that failed.
        stage: Stage,
        /// The seam's error.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// A synchronous round met a seam that did not answer at once.
    #[error("control round at {time}: a seam of a synchronous round did not complete at once")]
    NotReady {
        /// When the round ran.
        time: graphscale_core::Millis,
    },
}
