//! The operator's own metrics (`/metrics`, OpenMetrics text).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A label set of one string.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    /// The value.
    pub kind: String,
}

/// The metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Reconciliations run.
    pub reconciles: Counter,
    /// Reconciliations that failed, by error kind.
    pub errors: Family<Kind, Counter>,
    /// Wall time of one reconciliation, seconds.
    pub reconcile_seconds: Histogram,
    /// Control-loop rounds run.
    pub rounds: Counter,
    /// Decisions by outcome (applied, recommended, unchanged, conflict, disabled).
    pub outcomes: Family<Kind, Counter>,
    /// 1 while this replica holds the Lease.
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("graphscale_operator");
        let reconciles = Counter::default();
        let errors = Family::<Kind, Counter>::default();
        let reconcile_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        let rounds = Counter::default();
        let outcomes = Family::<Kind, Counter>::default();
        let leader = Gauge::default();
        registry.register("reconciliations", "Reconciliations run", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciliations that failed, by kind",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Wall time of one reconciliation",
            reconcile_seconds.clone(),
        );
        registry.register("rounds", "Control-loop rounds run", rounds.clone());
        registry.register("decisions", "Decisions by outcome", outcomes.clone());
        registry.register(
            "leader",
            "1 while this replica holds the Lease",
            leader.clone(),
        );
        Metrics {
            registry,
            reconciles,
            errors,
            reconcile_seconds,
            rounds,
            outcomes,
            leader,
        }
    }
}

impl Metrics {
    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }

    /// Counts one outcome.
    pub fn outcome(&self, kind: &str) {
        self.outcomes
            .get_or_create(&Kind { kind: kind.into() })
            .inc();
    }
}
