//! # graphscale-core
//!
//! The domain types and seam traits that every other graphscale crate shares. This crate
//! holds no I/O: no tokio, no HTTP, no Kubernetes client, no tensors. A simulated cluster and a
//! real one implement the same traits, so an experiment measures the code that ships.
//!
//! ## The MAPE loop and where each seam sits
//!
//! ```text
//!          +-------------------+  ClusterSnapshot   +-------------------+
//!          |  MetricSource     | -----------------> |    Autoscaler     |
//!  Monitor |  TopologySource   |  AppGraph          | (forecast + plan  |  Analyze + Plan
//!          +-------------------+ -----------------> |  + safety layer)  |
//!                  ^                                +-------------------+
//!                  |  metrics, pods, calls                    | Vec<ScalingDecision>
//!          +-------------------+                              v         (each with reasons)
//!          | cluster: real or  | <------------------ +-------------------+
//!          | simulated (Clock) |      replicas       |     Actuator      |  Execute
//!          +-------------------+                     +-------------------+
//! ```
//!
//! Start with [`graph::AppGraph`] (the heterogeneous application graph), [`observe`] (what a
//! control loop sees at one instant) and [`traits`] (the seams).
//!
//! ```
//! use graphscale_core::graph::{AppGraph, Edge, Node, NodeKind, Relation};
//! let g = AppGraph::new(
//!     "shop",
//!     vec![Node::new("frontend", NodeKind::Service), Node::new("cart", NodeKind::Service)],
//!     vec![Edge::new("frontend", "cart", Relation::Calls, 0.8)],
//! )
//! .unwrap();
//! assert_eq!(g.services().count(), 2);
//! ```

pub mod error;
pub mod exposition;
pub mod facts;
pub mod forecast;
pub mod graph;
pub mod observe;
pub mod queueing;
pub mod series;
pub mod stats;
pub mod time;
pub mod training;
pub mod traits;

pub use error::CoreError;
pub use facts::WorkloadFacts;
pub use forecast::{FittedForecaster, ForecastFailure, ForecastOutput, Forecaster};
pub use graph::{AppGraph, Edge, Node, NodeKind, Relation};
pub use observe::{
    ClusterSnapshot, CpuSample, EdgeObservation, PodObservation, PodPhase, PodResources, Reason,
    Resources, ScalingDecision, WorkloadObservation,
};
pub use series::{GraphSeries, Metric};
pub use time::{Clock, ManualClock, Millis};
pub use training::{JobId, Trained, TrainingJob};
pub use traits::{
    Actuator, AsyncActuator, AsyncMetricSource, AsyncTopologySource, Autoscaler, JointForecaster,
    MetricSource, NoForecast, TopologySource,
};
