//! The seams between the stages of the MAPE loop.
//!
//! The simulator implements [`MetricSource`], [`TopologySource`], [`Actuator`] and
//! [`crate::time::Clock`]. Real I/O is asynchronous: [`AsyncMetricSource`],
//! [`AsyncTopologySource`] and [`AsyncActuator`] are the async twins, with blanket impls over
//! the synchronous seams (so the simulator implements both), and the Prometheus source (the
//! monitor crate) and the Kubernetes actuator implement them directly. An [`Autoscaler`] sees
//! only snapshots and the graph, so the same autoscaler runs on both.

use std::future::Future;

use crate::graph::AppGraph;
use crate::observe::{ClusterSnapshot, ScalingDecision};
use crate::time::Millis;
use crate::training::{JobId, Trained, TrainingJob};

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
    /// A number that changes whenever the graph does, when the source can tell cheaply (the
    /// simulator counts placement changes); a control loop then reads the graph only when it
    /// changed. Default `None`: read it every round.
    fn version(&self) -> Option<u64> {
        None
    }
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
    /// Records the snapshot of this sync period before [`Autoscaler::decide`]: history grows
    /// and fits fall due here, so the control loop can run them (and, in a simulation whose
    /// modelled training time is 0, install them) before the decision. Default: nothing.
    fn observe(&mut self, snapshot: &ClusterSnapshot, graph: &AppGraph) {
        let _ = (snapshot, graph);
    }
    /// One decision per workload it manages. Bad or missing input yields a held decision
    /// (the current replica count) with a reason, never a panic. It never fits a model: fits
    /// are handed out by [`Autoscaler::training_jobs`].
    fn decide(&mut self, snapshot: &ClusterSnapshot, graph: &AppGraph) -> Vec<ScalingDecision>;
    /// Fits due after the last decision, for the control loop to run off the decision path
    /// ([`crate::training`]); default none.
    fn training_jobs(&mut self) -> Vec<TrainingJob> {
        Vec::new()
    }
    /// Installs the result of a job this autoscaler handed out; the next decision forecasts
    /// with it. A result it does not know (an old job) is dropped. Default: dropped.
    fn install(&mut self, job: JobId, trained: Trained) {
        let _ = (job, trained);
    }
}

impl<A: Autoscaler + ?Sized> Autoscaler for Box<A> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn sync_period(&self) -> Millis {
        (**self).sync_period()
    }
    fn observe(&mut self, snapshot: &ClusterSnapshot, graph: &AppGraph) {
        (**self).observe(snapshot, graph)
    }
    fn decide(&mut self, snapshot: &ClusterSnapshot, graph: &AppGraph) -> Vec<ScalingDecision> {
        (**self).decide(snapshot, graph)
    }
    fn training_jobs(&mut self) -> Vec<TrainingJob> {
        (**self).training_jobs()
    }
    fn install(&mut self, job: JobId, trained: Trained) {
        (**self).install(job, trained)
    }
}

/// The async twin of [`MetricSource`], for sources that do I/O (Prometheus).
pub trait AsyncMetricSource: Send {
    /// The source's error type.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The current snapshot.
    fn observe_async(
        &mut self,
    ) -> impl Future<Output = Result<ClusterSnapshot, Self::Error>> + Send;
}

impl<T: MetricSource + Send> AsyncMetricSource for T {
    type Error = T::Error;
    fn observe_async(
        &mut self,
    ) -> impl Future<Output = Result<ClusterSnapshot, Self::Error>> + Send {
        std::future::ready(self.observe())
    }
}

/// The async twin of [`TopologySource`], for topology discovered over the network.
pub trait AsyncTopologySource: Send {
    /// The source's error type.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The current graph.
    fn topology_async(&mut self) -> impl Future<Output = Result<AppGraph, Self::Error>> + Send;
}

impl<T: TopologySource + Send> AsyncTopologySource for T {
    type Error = T::Error;
    fn topology_async(&mut self) -> impl Future<Output = Result<AppGraph, Self::Error>> + Send {
        std::future::ready(self.topology())
    }
}

/// The async twin of [`Actuator`], for actuators that call an API server.
pub trait AsyncActuator: Send {
    /// The actuator's error type.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Applies the decisions; a decision equal to the current state is a no-op.
    fn apply_async(
        &mut self,
        decisions: &[ScalingDecision],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

impl<T: Actuator + Send> AsyncActuator for T {
    type Error = T::Error;
    fn apply_async(
        &mut self,
        decisions: &[ScalingDecision],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        std::future::ready(self.apply(decisions))
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
    /// snapshot, from the newest installed model; a forecast may be shorter than `horizon` when
    /// the model predicts fewer steps. Never trains.
    fn forecast(
        &mut self,
        horizon: usize,
    ) -> Result<std::collections::BTreeMap<String, Vec<f64>>, NoForecast>;
    /// A training due now (the model's history and settings copied into the job), if any.
    fn training_job(&mut self, id: JobId) -> Option<TrainingJob>;
    /// Installs a finished training handed out as `job`; an unknown job is dropped.
    fn install(&mut self, job: JobId, trained: Trained);
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
