//! The p95 latencies that Prometheus can precompute with recording rules, so that `collect` and
//! `discover` read one recorded series per workload and edge instead of evaluating
//! `histogram_quantile` over every histogram bucket at every step (the slowest queries at 1,000
//! services: docs/benchmarks.md). [`rules_yaml`] writes the rules for a `rate()` window (the
//! shipped deploy/prometheus/latency-rules.yaml is the one for `1m`); [`probe`] tells whether
//! Prometheus has the recorded series, for the templates' window, at a given time.

use crate::prom::PromClient;
use crate::templates::{render, Templates};
use crate::MonitorError;

/// The recorded node p95 (ms) is this name followed by the window, for example
/// `graphscale:istio_request_duration_milliseconds:p95_rate1m`.
pub const NODE_RULE: &str = "graphscale:istio_request_duration_milliseconds:p95_rate";
/// The recorded edge p95 (ms), named as [`NODE_RULE`].
pub const EDGE_RULE: &str = "graphscale:istio_edge_request_duration_milliseconds:p95_rate";

/// The recording rules for `window` (a duration such as `30s`, `1m`): a Prometheus rules file.
pub fn rules_yaml(window: &str) -> Result<String, MonitorError> {
    // Validates the window as every template's.
    render("recording rules", "$window", "", window)?;
    let bucket = r#"rate(istio_request_duration_milliseconds_bucket{reporter="destination"}"#;
    Ok(format!(
        "# Recording rules for the p95 latencies that `graphscale collect` and `discover` read
# Written by `graphscale collect --print-recording-rules` for the `rate()` window {window} (the
# collector config's `templates.window`; crates/monitor/src/recorded.rs). With them loaded,
# Prometheus evaluates `histogram_quantile` once per evaluation interval, and graphscale reads the
# recorded series (one per workload and per call edge) when its window is the same.
# Load them with Prometheus' `rule_files`, or paste the `groups` into a PrometheusRule object.
groups:
  - name: graphscale-latency-{window}
    rules:
      # p95 per destination workload, ms, over `rate(...[{window}])`.
      - record: {NODE_RULE}{window}
        expr: histogram_quantile(0.95, sum by (destination_workload_namespace, destination_workload, le) ({bucket}[{window}])))
      # p95 per call edge (source and destination workload), ms.
      - record: {EDGE_RULE}{window}
        expr: histogram_quantile(0.95, sum by (destination_workload_namespace, source_workload, destination_workload, le) ({bucket}[{window}])))
"
    ))
}

/// Which recorded p95s Prometheus has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Per workload.
    pub node: bool,
    /// Per call edge.
    pub edge: bool,
}

/// Asks Prometheus, at `at` (Unix seconds; `None` = now), whether the recorded p95s of the
/// templates' window exist in the namespace. With `templates.recording_rules` off, none are used.
pub async fn probe(
    client: &PromClient,
    templates: &Templates,
    namespace: &str,
    at: Option<f64>,
) -> Result<Recorded, MonitorError> {
    if !templates.recording_rules {
        return Ok(Recorded::default());
    }
    let has = |name: &'static str, t: &str| {
        let q = render(name, t, namespace, &templates.window).map(|q| format!("count({q})"));
        async move {
            let found = client.query(&q?, at).await?;
            Ok::<bool, MonitorError>(found.first().and_then(|s| s.value).is_some_and(|n| n > 0.0))
        }
    };
    let found = Recorded {
        node: has(
            "recorded_latency_p95_ms",
            &templates.recorded_latency_p95_ms,
        )
        .await?,
        edge: has(
            "recorded_edge_latency_p95_ms",
            &templates.recorded_edge_latency_p95_ms,
        )
        .await?,
    };
    tracing::info!(
        node = found.node,
        edge = found.edge,
        window = %templates.window,
        "p95 latencies from recording rules"
    );
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_rules_are_the_ones_for_one_minute() {
        let shipped = include_str!("../../../deploy/prometheus/latency-rules.yaml");
        assert_eq!(shipped, rules_yaml("1m").unwrap());
    }

    #[test]
    fn rules_name_their_window_and_refuse_a_bad_one() {
        let r = rules_yaml("5s").unwrap();
        assert!(r.contains(&format!("record: {NODE_RULE}5s")), "{r}");
        assert!(r.contains(&format!("record: {EDGE_RULE}5s")), "{r}");
        assert!(r.contains("[5s]"));
        for bad in ["", "5", "1m]) or vector(1", "x"] {
            let e = rules_yaml(bad).unwrap_err().to_string();
            assert!(e.contains("window"), "{bad}: {e}");
        }
    }

    #[test]
    fn recorded_queries_read_the_rules_of_the_window() {
        let t = Templates::default();
        let q = render("n", &t.recorded_latency_p95_ms, "shop", "1m").unwrap();
        assert!(q.contains(&format!("{NODE_RULE}1m{{")), "{q}");
        assert!(
            q.contains(r#"destination_workload_namespace="shop""#),
            "{q}"
        );
        let q = render("e", &t.recorded_edge_latency_p95_ms, "shop", "30s").unwrap();
        assert!(q.contains(&format!("{EDGE_RULE}30s{{")), "{q}");
        assert!(
            q.starts_with("max by (source_workload, destination_workload)"),
            "{q}"
        );
    }
}
