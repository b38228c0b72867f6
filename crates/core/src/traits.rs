//! The seams between the stages of the MAPE loop.
//!
//! The simulator implements [`MetricSource`], [`TopologySource`], [`Actuator`] and
//! [`crate::time::Clock`]; so will the Prometheus collector and the Kubernetes actuator. An
//! [`Autoscaler`] sees only snapshots and the graph, so the same autoscaler runs on both.

use crate::graph::AppGraph;
use crate::observe::{ClusterSnapshot, ScalingDecision};
use crate::time::Millis;

/// Produces what a control loop sees now.
pub trait MetricSource {
    /// The source's error type.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The current snapshot.
    fn observe(&mut self) -> Result<ClusterSnapshot, Self::Error>;
}

/// Produces the application graph.
pub trait TopologySource {
    /// The source's error type.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The current graph.
    fn topology(&self) -> Result<AppGraph, Self::Error>;
}

/// Carries out scaling decisions.
pub trait Actuator {
    /// The actuator's error type.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Applies the decisions; a decision equal to the current state is a no-op.
    fn apply(&mut self, decisions: &[ScalingDecision]) -> Result<(), Self::Error>;
}

/// Turns snapshots into decisions. Implementations hold their own state (recommendation
/// history, models) and must be deterministic given the same snapshots.
pub trait Autoscaler {
    /// A short, stable name used in reports (`hpa`, `static`, ...).
    fn name(&self) -> &str;
    /// How often the control loop calls [`Autoscaler::decide`].
    fn sync_period(&self) -> Millis;
    /// One decision per workload it manages. Bad or missing input yields a held decision
    /// (the current replica count) with a reason, never a panic.
    fn decide(&mut self, snapshot: &ClusterSnapshot, graph: &AppGraph) -> Vec<ScalingDecision>;
}

impl<A: Autoscaler + ?Sized> Autoscaler for Box<A> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn sync_period(&self) -> Millis {
        (**self).sync_period()
    }
    fn decide(&mut self, snapshot: &ClusterSnapshot, graph: &AppGraph) -> Vec<ScalingDecision> {
        (**self).decide(snapshot, graph)
    }
}

/// Forecasts every service's request rate at once from the whole graph's recent snapshots (a
/// graph model), where a [`crate::Forecaster`] sees one service's series. Implementations hold
/// their history and model, train when they see fit, and must be deterministic given the same
/// snapshots.
pub trait JointForecaster: Send {
    /// A short, stable name for reasons and reports (`hgt`, `gat`, ...).
    fn name(&self) -> String;
    /// Records the snapshot of one sync period.
    fn observe(&mut self, snapshot: &ClusterSnapshot, graph: &AppGraph);
    /// Request rate per service for the steps `1..=horizon` (sync periods) after the newest
    /// snapshot; a forecast may be shorter than `horizon` when the model predicts fewer steps.
    fn forecast(
        &mut self,
        horizon: usize,
    ) -> Result<std::collections::BTreeMap<String, Vec<f64>>, NoForecast>;
}

/// Why a [`JointForecaster`] has no forecast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoForecast {
    /// Not enough history yet.
    WarmingUp(String),
    /// Training or forecasting failed.
    Failed(String),
}

impl std::fmt::Display for NoForecast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoForecast::WarmingUp(s) | NoForecast::Failed(s) => f.write_str(s),
        }
    }
}
