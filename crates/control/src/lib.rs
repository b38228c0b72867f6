//! # graphscale-control
//!
//! What joins graphscale's stages into one MAPE loop, for the simulator and a real cluster
//! alike:
//!
//! - [`catalogue`]: every named autoscaler in one table ([`catalogue::CATALOGUE`]), the
//!   [`catalogue::AutoscalerSpec`] that configures one, and [`catalogue::build`], which makes it,
//!   always behind the safety layer ([`graphscale_plan::guarded::Guarded`]);
//! - [`schedule`]: when rounds fall (sync period, offset after a scrape);
//! - [`control_loop`]: the one loop ([`ControlLoop`]) over the seams;
//! - [`training`]: where fits run, off the decision path;
//! - [`tuned`]: the HPA's knobs, and those the grid search chose per app for `hpa-tuned`.
//!
//! It depends on the core, plan, forecast and nn crates, not on the simulator or the evaluation.
//!
//! ```
//! use graphscale_control::{catalogue, ControlLoop};
//! use graphscale_core::{Millis, WorkloadFacts};
//! let facts = vec![WorkloadFacts {
//!     name: "cart".into(),
//!     min_replicas: 1,
//!     max_replicas: 10,
//!     peak_cpu_millicores: Some(800.0),
//!     cpu_request_millicores: Some(500.0),
//! }];
//! let hpa = catalogue::build(&catalogue::AutoscalerSpec::named("hpa").unwrap(), &facts).unwrap();
//! let ctl = ControlLoop::simulated(hpa, Millis::from_secs(7)).unwrap();
//! assert!(ctl.schedule().is_due(Millis::from_secs(22)));
//! ```

pub mod catalogue;
pub mod control_loop;
mod error;
pub mod schedule;
pub mod training;
pub mod tuned;

pub use catalogue::{
    build, build_bounded, AutoscalerSpec, CATALOGUE, ONNX_AUTOSCALERS, RL_AUTOSCALERS,
};
pub use control_loop::{BoxError, Cluster, ControlLoop, Decided, Round, Seams, SyncCluster};
pub use error::{ControlError, Stage};
pub use schedule::Schedule;
pub use training::{SimulatedTraining, ThreadTraining, TrainingRunner};
