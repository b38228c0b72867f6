//! # graphscale-eval
//!
//! Experiments over the simulator: every autoscaler runs through the same seams
//! ([`graphscale_core::MetricSource`], [`graphscale_core::Autoscaler`],
//! [`graphscale_core::Actuator`]) that a real cluster uses, on apps x scenarios x seeds; each
//! run is measured by [`metrics::Recorder`]; across seeds [`summarize`] gives means, 95 %
//! bootstrap confidence intervals and Cliff's delta against the baseline (the HPA), and
//! [`report`] writes the terminal table, the JSON and the HTML report; [`tune`] grid-searches
//! the HPA's knobs per app (`graphscale tune-hpa`).
//!
//! ```
//! use graphscale_eval::{run_experiment, ExperimentSpec, ScenarioSpec};
//! let spec = ExperimentSpec {
//!     apps: vec!["event-driven".into()],
//!     scenarios: vec![ScenarioSpec::named("rush").with_duration(120)],
//!     autoscalers: vec!["hpa".into(), "static".into()],
//!     seeds: vec![1, 2],
//!     ..ExperimentSpec::default()
//! };
//! let result = run_experiment(&spec, &|_| {}).unwrap();
//! assert_eq!(result.runs.len(), 4);
//! ```

mod error;
pub mod metrics;
pub mod report;
pub mod runner;
pub mod shadow;
pub mod spec;
pub mod stats;
pub mod summary;
pub mod tune;

pub use error::EvalError;
pub use graphscale_control::catalogue::{autoscaler_rnn, AutoscalerSpec};
pub use runner::{
    build_autoscaler, resolve_autoscaler, run_all, run_experiment, run_one, run_one_logged,
    DecisionRecord, RunResult,
};
pub use spec::{ExperimentSpec, ScenarioSpec, DEFAULT_WARMUP_S};
pub use summary::{summarize, ExperimentResult, MetricSummary, ResolvedAutoscaler, SummaryRow};
