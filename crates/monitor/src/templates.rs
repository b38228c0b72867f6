//! The PromQL behind every metric graphscale reads, with defaults for cAdvisor,
//! kube-state-metrics, Istio and kafka-exporter. Templates take two placeholders: `$namespace`
//! (a label value, escaped when substituted, so quotes and unicode are safe) and `$window` (a
//! range such as `1m`). `$1`, `$2`, ... stay as they are for `label_replace`.

use graphscale_core::Metric;
use serde::{Deserialize, Serialize};

use crate::MonitorError;

/// A query that yields one series per node, named by `node_label`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeTemplate {
    /// The metric it measures.
    pub metric: Metric,
    /// PromQL.
    pub query: String,
    /// The label that names the node (workload, deployment or topic).
    pub node_label: String,
    /// Whether the value is a rate (divided by `time_scale` when collecting from an
    /// accelerated simulator).
    #[serde(default)]
    pub is_rate: bool,
}

/// Every query; serialisable so that a config file can override any of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Templates {
    /// Range of `rate()` windows; default `1m`.
    pub window: String,
    /// Node series.
    pub nodes: Vec<NodeTemplate>,
    /// Calls per second per (`source_workload`, `destination_workload`).
    pub edge_rps: String,
    /// Failed share per edge.
    pub edge_error_rate: String,
    /// p95 latency per edge, ms.
    pub edge_latency_p95_ms: String,
    /// One series per deployment (label `deployment`).
    pub deployments: String,
    /// One series per pod with labels `pod`, `node`, `created_by_name`.
    pub pod_info: String,
    /// Produced offset per `topic`.
    pub topic_offset: String,
    /// Consumed offset per (`topic`, `consumergroup`).
    pub group_offset: String,
    /// Lag per (`topic`, `consumergroup`).
    pub group_lag: String,
    /// Messages sent per (`client_id`, `topic`).
    pub producer_sends: String,
    /// Ready pods (value 1) per `pod` (the control loop's snapshot).
    pub pod_ready: String,
    /// CPU in millicores per `pod` (a rate).
    pub pod_cpu_millicores: String,
    /// Memory working set in MiB per `pod`.
    pub pod_memory_mib: String,
    /// Requests per (`pod`, `resource`): CPU in cores, memory in bytes.
    pub pod_requests: String,
    /// Limits per (`pod`, `resource`): CPU in cores, memory in bytes.
    pub pod_limits: String,
    /// Messages waiting per consuming workload (label `consumergroup`).
    pub workload_backlog: String,
    /// Read the p95s from graphscale's recording rules when Prometheus has them for `window`
    /// (`graphscale collect --print-recording-rules`; deploy/prometheus/latency-rules.yaml is
    /// the file for `1m`); default true. Without them, `histogram_quantile` is evaluated at
    /// every step.
    pub recording_rules: bool,
    /// p95 per workload from the recording rule (label `destination_workload`).
    pub recorded_latency_p95_ms: String,
    /// p95 per call edge from the recording rule (labels `source_workload`,
    /// `destination_workload`).
    pub recorded_edge_latency_p95_ms: String,
}

const SEL: &str = r#"reporter="destination",destination_workload_namespace="$namespace""#;

impl Default for Templates {
    fn default() -> Self {
        let istio = |extra: &str| format!("istio_requests_total{{{SEL}{extra}}}");
        let by_dst = |extra: &str| {
            format!(
                "sum by (destination_workload) (rate({}[$window]))",
                istio(extra)
            )
        };
        let by_edge = |extra: &str| {
            format!(
                "sum by (source_workload, destination_workload) (rate({}[$window]))",
                istio(extra)
            )
        };
        let deploy = r#"label_replace(X, "deployment", "$1", "pod", "(.+)-[^-]+-[^-]+")"#;
        let node = |metric, query: String, label: &str, is_rate| NodeTemplate {
            metric,
            query,
            node_label: label.into(),
            is_rate,
        };
        Templates {
            window: "1m".into(),
            nodes: vec![
                node(Metric::Rps, by_dst(""), "destination_workload", true),
                node(Metric::Throughput, by_dst(r#",response_code=~"2..""#), "destination_workload", true),
                node(
                    Metric::ErrorRate,
                    format!("{} / {}", by_dst(r#",response_code=~"5..""#), by_dst("")),
                    "destination_workload",
                    false,
                ),
                node(
                    Metric::LatencyP95Ms,
                    format!(
                        "histogram_quantile(0.95, sum by (destination_workload, le) (rate(istio_request_duration_milliseconds_bucket{{{SEL}}}[$window])))"
                    ),
                    "destination_workload",
                    false,
                ),
                node(
                    Metric::CpuMillicores,
                    format!(
                        "1000 * sum by (deployment) ({})",
                        deploy.replace(
                            "X",
                            r#"rate(container_cpu_usage_seconds_total{namespace="$namespace",container!=""}[$window])"#
                        )
                    ),
                    "deployment",
                    true,
                ),
                node(
                    Metric::MemoryMib,
                    format!(
                        "sum by (deployment) ({}) / 1048576",
                        deploy.replace("X", r#"container_memory_working_set_bytes{namespace="$namespace",container!=""}"#)
                    ),
                    "deployment",
                    false,
                ),
                node(
                    Metric::ReplicasDesired,
                    r#"sum by (deployment) (kube_deployment_spec_replicas{namespace="$namespace"})"#.into(),
                    "deployment",
                    false,
                ),
                node(
                    Metric::ReplicasReady,
                    r#"sum by (deployment) (kube_deployment_status_replicas_ready{namespace="$namespace"})"#.into(),
                    "deployment",
                    false,
                ),
                node(Metric::Backlog, "max by (topic) (kafka_consumergroup_lag)".into(), "topic", false),
                node(
                    Metric::Rps,
                    "sum by (topic) (rate(kafka_topic_partition_current_offset[$window]))".into(),
                    "topic",
                    true,
                ),
            ],
            edge_rps: by_edge(""),
            edge_error_rate: format!("{} / {}", by_edge(r#",response_code=~"5..""#), by_edge("")),
            edge_latency_p95_ms: format!(
                "histogram_quantile(0.95, sum by (source_workload, destination_workload, le) (rate(istio_request_duration_milliseconds_bucket{{{SEL}}}[$window])))"
            ),
            deployments: r#"kube_deployment_spec_replicas{namespace="$namespace"}"#.into(),
            pod_info: r#"kube_pod_info{namespace="$namespace"}"#.into(),
            topic_offset: "sum by (topic) (kafka_topic_partition_current_offset)".into(),
            group_offset: "sum by (topic, consumergroup) (kafka_consumergroup_current_offset)".into(),
            group_lag: "max by (topic, consumergroup) (kafka_consumergroup_lag)".into(),
            producer_sends: "sum by (client_id, topic) (kafka_producer_record_send_total)".into(),
            pod_ready: r#"max by (pod) (kube_pod_status_ready{namespace="$namespace",condition="true"})"#.into(),
            pod_cpu_millicores: r#"1000 * sum by (pod) (rate(container_cpu_usage_seconds_total{namespace="$namespace",container!=""}[$window]))"#.into(),
            pod_memory_mib: r#"sum by (pod) (container_memory_working_set_bytes{namespace="$namespace",container!=""}) / 1048576"#.into(),
            pod_requests: r#"sum by (pod, resource) (kube_pod_container_resource_requests{namespace="$namespace"})"#.into(),
            pod_limits: r#"sum by (pod, resource) (kube_pod_container_resource_limits{namespace="$namespace"})"#.into(),
            workload_backlog: "sum by (consumergroup) (kafka_consumergroup_lag)".into(),
            recording_rules: true,
            recorded_latency_p95_ms: format!(
                r#"max by (destination_workload) ({}$window{{destination_workload_namespace="$namespace"}})"#,
                crate::recorded::NODE_RULE
            ),
            recorded_edge_latency_p95_ms: format!(
                r#"max by (source_workload, destination_workload) ({}$window{{destination_workload_namespace="$namespace"}})"#,
                crate::recorded::EDGE_RULE
            ),
        }
    }
}

/// Escapes a PromQL string literal's content.
pub fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn valid_window(w: &str) -> bool {
    let mut digits = 0;
    let mut units = 0;
    for c in w.chars() {
        if c.is_ascii_digit() {
            if units > 0 {
                // 1h30m: digits after a unit start a new term
                units = 0;
            }
            digits += 1;
        } else if "smhdwy".contains(c) && digits > 0 {
            units += 1;
            digits = 0;
        } else {
            return false;
        }
    }
    !w.is_empty() && digits == 0
}

/// Checks brackets and string literals of a PromQL expression.
fn check_balance(q: &str) -> Result<(), String> {
    let mut stack = Vec::new();
    let mut chars = q.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                let quote = c;
                let mut closed = false;
                while let Some(d) = chars.next() {
                    if d == '\\' && quote != '`' {
                        chars.next();
                    } else if d == quote {
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    return Err(format!("unterminated string starting with {quote}"));
                }
            }
            '(' | '[' | '{' => stack.push(c),
            ')' | ']' | '}' => {
                let want = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if stack.pop() != Some(want) {
                    return Err(format!("unbalanced `{c}`"));
                }
            }
            _ => {}
        }
    }
    match stack.last() {
        Some(c) => Err(format!("unclosed `{c}`")),
        None => Ok(()),
    }
}

/// Substitutes the placeholders of `query` (named `name` in errors) and checks the result.
pub fn render(
    name: &str,
    query: &str,
    namespace: &str,
    window: &str,
) -> Result<String, MonitorError> {
    let bad = |reason: String| MonitorError::InvalidTemplate {
        name: name.to_string(),
        reason,
    };
    if query.trim().is_empty() {
        return Err(bad("empty query".into()));
    }
    if !valid_window(window) {
        return Err(bad(format!(
            "window `{window}` is not a duration such as 30s, 1m or 1h30m"
        )));
    }
    let mut out = String::with_capacity(query.len() + namespace.len());
    let mut rest = query;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let ident: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        match ident.as_str() {
            "namespace" => out.push_str(&escape_label_value(namespace)),
            "window" => out.push_str(window),
            d if !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()) => {
                out.push('$');
                out.push_str(d);
            }
            "" => return Err(bad("a `$` must start a placeholder".into())),
            other => {
                return Err(bad(format!(
                    "unknown placeholder `${other}` (known: $namespace, $window)"
                )))
            }
        }
        rest = &after[ident.len()..];
    }
    out.push_str(rest);
    check_balance(&out).map_err(bad)?;
    Ok(out)
}

impl Templates {
    /// Renders every template once, to reject a bad config before any query.
    pub fn validate(&self, namespace: &str) -> Result<(), MonitorError> {
        for (i, n) in self.nodes.iter().enumerate() {
            render(
                &format!("nodes[{i}] ({})", n.metric),
                &n.query,
                namespace,
                &self.window,
            )?;
            if n.node_label.is_empty() {
                return Err(MonitorError::InvalidTemplate {
                    name: format!("nodes[{i}]"),
                    reason: "node_label is empty".into(),
                });
            }
        }
        for (name, q) in [
            ("edge_rps", &self.edge_rps),
            ("edge_error_rate", &self.edge_error_rate),
            ("edge_latency_p95_ms", &self.edge_latency_p95_ms),
            ("deployments", &self.deployments),
            ("pod_info", &self.pod_info),
            ("topic_offset", &self.topic_offset),
            ("group_offset", &self.group_offset),
            ("group_lag", &self.group_lag),
            ("producer_sends", &self.producer_sends),
            ("pod_ready", &self.pod_ready),
            ("pod_cpu_millicores", &self.pod_cpu_millicores),
            ("pod_memory_mib", &self.pod_memory_mib),
            ("pod_requests", &self.pod_requests),
            ("pod_limits", &self.pod_limits),
            ("workload_backlog", &self.workload_backlog),
            ("recorded_latency_p95_ms", &self.recorded_latency_p95_ms),
            (
                "recorded_edge_latency_p95_ms",
                &self.recorded_edge_latency_p95_ms,
            ),
        ] {
            render(name, q, namespace, &self.window)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_render_and_escape_the_namespace() {
        let t = Templates::default();
        t.validate("shop").unwrap();
        let q = render("x", &t.deployments, "we\"ird\\ns ü", "1m").unwrap();
        assert_eq!(
            q,
            r#"kube_deployment_spec_replicas{namespace="we\"ird\\ns ü"}"#
        );
        let cpu = render("cpu", &t.nodes[4].query, "shop", "5m").unwrap();
        assert!(cpu.contains(r#""$1""#) && cpu.contains("[5m]"), "{cpu}");
    }

    #[test]
    fn invalid_templates_are_named() {
        let e = render("rps", "rate(x[$win])", "a", "1m")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("template `rps`") && e.contains("unknown placeholder `$win`"),
            "{e}"
        );
        let e = render("rps", "sum(rate(x[$window])", "a", "1m")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unclosed `(`"), "{e}");
        let e = render("rps", r#"x{a="b}"#, "a", "1m")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unterminated string"), "{e}");
        assert!(render("rps", "x", "a", "1 minute").is_err());
        assert!(render("rps", "  ", "a", "1m").is_err());
        assert!(render("rps", "x$", "a", "1m").is_err());
        assert!(
            valid_window("1h30m")
                && valid_window("15s")
                && !valid_window("m")
                && !valid_window("1")
        );
    }
}
