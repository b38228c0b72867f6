//! # graphscale-monitor
//!
//! The Monitor stage: what graphscale learns about a real cluster, and the simulator's side of
//! the same story.
//!
//! - [`prom`]: a Prometheus HTTP API client (instant, range and series queries; timeouts,
//!   retries with backoff, step alignment; NaN and gaps kept apart from zero). It works against
//!   any PromQL store: Prometheus, Thanos, Mimir, VictoriaMetrics.
//! - [`templates`]: the PromQL behind every metric, with defaults for cAdvisor,
//!   kube-state-metrics, Istio and kafka-exporter, overridable in config.
//! - [`discovery`]: the heterogeneous application graph from telemetry (Istio call edges with
//!   their RPS, p95 and errors; queues and topics from kafka-exporter; `runs_on` from pod
//!   placement), a Kiali graph import, and explicit edges from config.
//! - [`collect`]: node and edge series over a time range, written as CSV in the schema that
//!   graphscale's training and backtest commands read.
//! - [`exporter`]: the simulator's counters rendered with the metric names a real cluster has,
//!   served on `/metrics`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), graphscale_monitor::MonitorError> {
//! use graphscale_monitor::{discovery, prom::{PromClient, PromConfig}, templates::Templates};
//! let client = PromClient::new(PromConfig { url: "http://127.0.0.1:9090".into(), ..PromConfig::default() })?;
//! let found = discovery::discover(&client, &Templates::default(), &discovery::DiscoveryConfig::default(), None).await?;
//! println!("{} nodes", found.graph.nodes.len());
//! # Ok(()) }
//! ```

pub mod collect;
pub mod discovery;
pub mod exporter;
pub mod http;
pub mod nezha;
pub mod prom;
pub mod recorded;
pub mod source;
pub mod templates;

/// Errors of the monitor.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The server could not be reached (refused, reset, DNS).
    #[error("{url}: unreachable: {reason}")]
    Unreachable {
        /// The request URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// No answer within the timeout.
    #[error("{url}: no answer within {after_ms} ms")]
    Timeout {
        /// The request URL.
        url: String,
        /// The timeout.
        after_ms: u64,
    },
    /// A non-API HTTP error.
    #[error("{url}: HTTP {status}: {body}")]
    Http {
        /// The request URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// Start of the body.
        body: String,
    },
    /// Prometheus answered with an API error (for example a bad query).
    #[error("{url}: Prometheus error ({status} {error_type}): {error}")]
    Prometheus {
        /// The request URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// `errorType` (`bad_data`, `timeout`, `execution`, ...).
        error_type: String,
        /// `error`.
        error: String,
    },
    /// The response is not what the API promises.
    #[error("malformed response: {0}")]
    Malformed(String),
    /// The response exceeds the configured size limit.
    #[error("{url}: response larger than {limit} bytes")]
    TooLarge {
        /// The request URL.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// A PromQL template is invalid.
    #[error("template `{name}`: {reason}")]
    InvalidTemplate {
        /// The template's name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A Kiali graph file is invalid.
    #[error("{file}: {reason}")]
    Kiali {
        /// The file.
        file: String,
        /// What is wrong, with the JSON path.
        reason: String,
    },
    /// A CSV file is invalid.
    #[error("{file}: line {line}: field `{field}`: {message}")]
    Csv {
        /// The file.
        file: String,
        /// 1-based line.
        line: u64,
        /// Column.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read or written.
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
    /// Invalid arguments or config.
    #[error("{0}")]
    Invalid(String),
    /// A graph or series failed validation.
    #[error(transparent)]
    Core(#[from] graphscale_core::CoreError),
}

impl MonitorError {
    /// Whether a retry may help: connection errors, timeouts, 5xx and Prometheus' own
    /// `timeout`/`unavailable` errors; never bad queries.
    pub fn is_transient(&self) -> bool {
        match self {
            MonitorError::Unreachable { .. } | MonitorError::Timeout { .. } => true,
            MonitorError::Http { status, .. } => *status >= 500,
            MonitorError::Prometheus {
                status, error_type, ..
            } => *status == 503 || error_type == "timeout" || error_type == "unavailable",
            _ => false,
        }
    }
}
