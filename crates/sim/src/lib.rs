//! # graphscale-sim
//!
//! A deterministic simulator of a microservice cluster: the embedded default where graphscale
//! runs its whole loop without a cluster and where every autoscaler is compared with the HPA.
//!
//! - [`spec`]: typed, validated apps (services, queues, topics, edges, nodes, SLO);
//! - [`topology`]: the built-in apps (Online Boutique and Train Ticket calibrated from real
//!   measurements, Alibaba production call graphs, an event-driven app, random graphs);
//! - [`calibrate`]: how the built-in apps were derived from `shared/data`;
//! - [`workload`]: named load scenarios and CSV trace replay;
//! - [`reference`]: a request-level M/M/c queue that the step model's latency is checked against;
//! - [`engine`]: the [`engine::Simulator`], which implements the core seams
//!   ([`graphscale_core::MetricSource`], [`graphscale_core::TopologySource`],
//!   [`graphscale_core::Actuator`], [`graphscale_core::Clock`]).
//!
//! ```
//! use graphscale_core::{MetricSource, Actuator, ScalingDecision};
//! use graphscale_sim::{engine::{SimConfig, Simulator}, topology, workload::WorkloadSpec};
//! let app = topology::builtin("online-boutique").unwrap();
//! let rates = WorkloadSpec::named("peak", app.nominal_peak_rps).unwrap().rates(120, 1).unwrap();
//! let mut sim = Simulator::new(app, SimConfig::default(), rates).unwrap();
//! for _ in 0..60 { sim.step(); }
//! let snap = sim.observe().unwrap();
//! assert!(snap.workload("frontend").unwrap().rps.unwrap() > 0.0);
//! sim.apply(&[ScalingDecision { workload: "frontend".into(), replicas: 3, reasons: vec![], resources: None }]).unwrap();
//! ```

pub mod calibrate;
pub mod engine;
pub mod reference;
pub mod spec;
pub mod topology;
pub mod workload;

/// Errors of the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A name (topology, workload, service) is not known.
    #[error("unknown {what} `{name}` (known: {known})")]
    UnknownName {
        /// What kind of name.
        what: &'static str,
        /// The name given.
        name: String,
        /// The names that are known.
        known: String,
    },
    /// A decision cannot be carried out as given.
    #[error("decision for `{workload}`: {reason}")]
    InvalidDecision {
        /// The workload the decision is for.
        workload: String,
        /// Why.
        reason: String,
    },
    /// A spec field is out of range.
    #[error("invalid {field}: {reason}")]
    InvalidSpec {
        /// Dotted path of the field.
        field: String,
        /// Why.
        reason: String,
    },
    /// A file could not be parsed.
    #[error("{context}: {message}")]
    Parse {
        /// File name or other context.
        context: String,
        /// The parser's message, with line and column where known.
        message: String,
    },
    /// A CSV file has a bad record.
    #[error("{file}: line {line}: field `{field}`: {message}")]
    Csv {
        /// File name.
        file: String,
        /// 1-based line.
        line: u64,
        /// Column name.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read.
    #[error("{path}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
