//! Node and edge series over a time range, and their CSV form.
//!
//! `graphscale collect` writes three files into its output folder (docs/schema.md):
//! - `graph.json`: the discovered [`AppGraph`];
//! - `nodes.csv`: `timestamp_ms,node,kind,` then one column per [`Metric`] (empty = no data);
//! - `edges.csv`: `timestamp_ms,src,dst,relation,rps,latency_p95_ms,error_rate`.
//!
//! [`read_dir`] reads them back into a [`GraphSeries`], checking every row.

use std::collections::BTreeMap;
use std::path::Path;

use graphscale_fsio::Existing;

use graphscale_core::series::EdgeSeries;
use graphscale_core::{AppGraph, GraphSeries, Metric, NodeKind, Relation};

use crate::discovery::{discover, DiscoveredGraph, DiscoveryConfig};
use crate::prom::{Grid, PromClient};
use crate::recorded::{probe, Recorded};
use crate::templates::{render, Templates};
use crate::MonitorError;

/// Collects every node and edge series on `grid`. The graph is discovered at the grid's end.
/// Also says which p95s came from recording rules.
pub async fn collect(
    client: &PromClient,
    templates: &Templates,
    cfg: &DiscoveryConfig,
    grid: Grid,
) -> Result<(DiscoveredGraph, GraphSeries, Recorded), MonitorError> {
    let span = tracing::info_span!("collect", points = grid.len(), namespace = %cfg.namespace);
    let _e = span.enter();
    let found = discover(client, templates, cfg, Some(grid.end as f64)).await?;
    let g = &found.graph;
    let n = grid.len();
    let mut series = GraphSeries::new(
        g.clone(),
        grid.start as u64 * 1000,
        grid.step as u64 * 1000,
        n,
    );
    let q = |name: &str, t: &str| render(name, t, &cfg.namespace, &templates.window);
    // Recorded p95s that cover the range's start stand in for `histogram_quantile`.
    let recorded = probe(client, templates, &cfg.namespace, Some(grid.start as f64)).await?;
    for (i, t) in templates.nodes.iter().enumerate() {
        let started = std::time::Instant::now();
        let query = if recorded.node
            && t.metric == Metric::LatencyP95Ms
            && t.node_label == "destination_workload"
        {
            &templates.recorded_latency_p95_ms
        } else {
            &t.query
        };
        let result = client
            .query_range(&q(&format!("nodes[{i}]"), query)?, grid)
            .await?;
        tracing::info!(template = i, metric = %t.metric, series = result.len(), secs = started.elapsed().as_secs_f64(), "range query");
        for s in result {
            let Some(node) = s.labels.get(&t.node_label) else {
                continue;
            };
            if g.index_of(node).is_none() {
                continue;
            }
            let scale = if t.is_rate { cfg.time_scale } else { 1.0 };
            let vals = plausible(&s.values, scale, &format!("nodes[{i}] ({node})"));
            series
                .nodes
                .entry(node.clone())
                .or_default()
                .insert(t.metric, vals);
        }
    }
    let mut edges: BTreeMap<(String, String), EdgeSeries> = BTreeMap::new();
    for (name, t, metric, is_rate) in [
        ("edge_rps", &templates.edge_rps, Metric::Rps, true),
        (
            "edge_latency_p95_ms",
            if recorded.edge {
                &templates.recorded_edge_latency_p95_ms
            } else {
                &templates.edge_latency_p95_ms
            },
            Metric::LatencyP95Ms,
            false,
        ),
        (
            "edge_error_rate",
            &templates.edge_error_rate,
            Metric::ErrorRate,
            false,
        ),
    ] {
        let started = std::time::Instant::now();
        let result = client.query_range(&q(name, t)?, grid).await?;
        tracing::info!(
            template = name,
            series = result.len(),
            secs = started.elapsed().as_secs_f64(),
            "range query"
        );
        for s in result {
            let (Some(src), Some(dst)) = (
                s.labels.get("source_workload"),
                s.labels.get("destination_workload"),
            ) else {
                continue;
            };
            let known = g
                .edges
                .iter()
                .any(|e| &e.src == src && &e.dst == dst && e.relation == Relation::Calls);
            if !known {
                continue;
            }
            let scale = if is_rate { cfg.time_scale } else { 1.0 };
            let vals = plausible(&s.values, scale, &format!("{name} ({src} -> {dst})"));
            edges
                .entry((src.clone(), dst.clone()))
                .or_insert_with(|| EdgeSeries {
                    src: src.clone(),
                    dst: dst.clone(),
                    relation: Relation::Calls,
                    metrics: BTreeMap::new(),
                })
                .metrics
                .insert(metric, vals);
        }
    }
    series.edges = edges.into_values().collect();
    series.validate()?;
    Ok((found, series, recorded))
}

const EDGE_METRICS: [Metric; 3] = [Metric::Rps, Metric::LatencyP95Ms, Metric::ErrorRate];

fn fmt(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        String::new()
    }
}

/// The values of a range, divided by `scale`; a negative or non-finite one (every metric
/// collected is a rate, a size, a latency, a ratio or a count) is dropped as missing, never
/// written as it came, and the drops are logged with `what`.
fn plausible(values: &[Option<f64>], scale: f64, what: &str) -> Vec<f64> {
    let mut dropped = 0;
    let out = values
        .iter()
        .map(|v| match v {
            Some(x) if x.is_finite() && *x >= 0.0 => x / scale,
            Some(_) => {
                dropped += 1;
                f64::NAN
            }
            None => f64::NAN,
        })
        .collect();
    if dropped > 0 {
        tracing::warn!(
            series = what,
            dropped,
            "negative or non-finite values dropped as missing"
        );
    }
    out
}

/// Writes `graph.json`, `nodes.csv` and `edges.csv` into `dir` (each atomically and
/// symlink-safely); with [`Existing::Keep`] nothing is written when any of them exists.
pub fn write_dir(series: &GraphSeries, dir: &Path, existing: Existing) -> Result<(), MonitorError> {
    const FILES: [&str; 3] = ["graph.json", "nodes.csv", "edges.csv"];
    let paths = FILES.map(|f| dir.join(f));
    graphscale_fsio::ensure_absent(paths.iter().map(|p| p.as_path()), existing)?;
    std::fs::create_dir_all(dir).map_err(|source| MonitorError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let graph = serde_json::to_string_pretty(&series.graph)
        .map_err(|e| MonitorError::Invalid(e.to_string()))?;
    let mut nodes = String::from("timestamp_ms,node,kind");
    for m in Metric::ALL {
        nodes.push(',');
        nodes.push_str(&m.to_string());
    }
    nodes.push('\n');
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    for node in &series.graph.nodes {
        let Some(m) = series.nodes.get(&node.id) else {
            continue;
        };
        for i in 0..series.len {
            let t = series.start_ms + i as u64 * series.step_ms;
            let mut row = vec![t.to_string(), node.id.clone(), node.kind.to_string()];
            row.extend(
                Metric::ALL
                    .iter()
                    .map(|k| m.get(k).map_or(String::new(), |v| fmt(v[i]))),
            );
            w.write_record(&row)
                .map_err(|e| MonitorError::Invalid(e.to_string()))?;
        }
    }
    nodes.push_str(&String::from_utf8_lossy(
        &w.into_inner()
            .map_err(|e| MonitorError::Invalid(e.to_string()))?,
    ));
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec![
        "timestamp_ms".to_string(),
        "src".into(),
        "dst".into(),
        "relation".into(),
    ];
    header.extend(EDGE_METRICS.iter().map(|m| m.to_string()));
    w.write_record(&header)
        .map_err(|e| MonitorError::Invalid(e.to_string()))?;
    for e in &series.edges {
        for i in 0..series.len {
            let t = series.start_ms + i as u64 * series.step_ms;
            let mut row = vec![
                t.to_string(),
                e.src.clone(),
                e.dst.clone(),
                e.relation.to_string(),
            ];
            row.extend(
                EDGE_METRICS
                    .iter()
                    .map(|k| e.metrics.get(k).map_or(String::new(), |v| fmt(v[i]))),
            );
            w.write_record(&row)
                .map_err(|e| MonitorError::Invalid(e.to_string()))?;
        }
    }
    let edges = w
        .into_inner()
        .map_err(|e| MonitorError::Invalid(e.to_string()))?;
    for (f, bytes) in FILES
        .iter()
        .zip([graph.as_bytes(), nodes.as_bytes(), &edges])
    {
        graphscale_fsio::write(&dir.join(f), bytes, existing)?;
    }
    Ok(())
}

/// Reads a folder written by [`write_dir`] (or by hand in the same schema).
pub fn read_dir(dir: &Path) -> Result<GraphSeries, MonitorError> {
    let gpath = dir.join("graph.json");
    let text = std::fs::read_to_string(&gpath).map_err(|source| MonitorError::Io {
        path: gpath.display().to_string(),
        source,
    })?;
    let graph = AppGraph::from_json(&text, &gpath.display().to_string())?;
    let nodes = read_rows(&dir.join("nodes.csv"), &["timestamp_ms", "node", "kind"])?;
    let edges = read_rows(
        &dir.join("edges.csv"),
        &["timestamp_ms", "src", "dst", "relation"],
    )?;
    // Edges alone give a grid with no node metric on it: every score would be over 0 points.
    if nodes.is_empty() {
        return Err(MonitorError::Invalid(format!(
            "{}: no rows (a header only): no node metrics to read",
            dir.join("nodes.csv").display()
        )));
    }
    let mut times: Vec<u64> = nodes.iter().chain(&edges).map(|r| r.t).collect();
    times.sort_unstable();
    times.dedup();
    if times.is_empty() {
        return Err(MonitorError::Invalid(format!("{}: no rows", dir.display())));
    }
    let step = if times.len() > 1 {
        times[1] - times[0]
    } else {
        1
    };
    if times.windows(2).any(|w| w[1] - w[0] != step) {
        return Err(MonitorError::Invalid(format!(
            "{}: timestamps are not on one regular grid (first step {step} ms)",
            dir.display()
        )));
    }
    let len = times.len();
    let start = times[0];
    let mut series = GraphSeries::new(graph, start, step, len);
    for r in nodes {
        let node = series
            .graph
            .node(&r.keys[0])
            .ok_or_else(|| MonitorError::Csv {
                file: r.file.clone(),
                line: r.line,
                field: "node".into(),
                message: format!("unknown node `{}` (not in graph.json)", r.keys[0]),
            })?;
        if node.kind.to_string() != r.keys[1] {
            return Err(MonitorError::Csv {
                file: r.file.clone(),
                line: r.line,
                field: "kind".into(),
                message: format!(
                    "`{}` is a {} in graph.json, not a {}",
                    r.keys[0], node.kind, r.keys[1]
                ),
            });
        }
        let i = ((r.t - start) / step) as usize;
        let m = series.nodes.entry(r.keys[0].clone()).or_default();
        for (metric, v) in r.values {
            m.entry(metric).or_insert_with(|| vec![f64::NAN; len])[i] = v;
        }
    }
    let mut by_edge: BTreeMap<(String, String, String), EdgeSeries> = BTreeMap::new();
    for r in edges {
        let relation: Relation =
            serde_json::from_value(serde_json::Value::String(r.keys[2].clone())).map_err(|_| {
                MonitorError::Csv {
                    file: r.file.clone(),
                    line: r.line,
                    field: "relation".into(),
                    message: format!("unknown relation `{}`", r.keys[2]),
                }
            })?;
        let i = ((r.t - start) / step) as usize;
        let e = by_edge
            .entry((r.keys[0].clone(), r.keys[1].clone(), r.keys[2].clone()))
            .or_insert_with(|| EdgeSeries {
                src: r.keys[0].clone(),
                dst: r.keys[1].clone(),
                relation,
                metrics: BTreeMap::new(),
            });
        for (metric, v) in r.values {
            e.metrics
                .entry(metric)
                .or_insert_with(|| vec![f64::NAN; len])[i] = v;
        }
    }
    series.edges = by_edge.into_values().collect();
    series
        .validate()
        .map_err(|e| MonitorError::Invalid(format!("{}: {e}", dir.display())))?;
    Ok(series)
}

struct Row {
    file: String,
    line: u64,
    t: u64,
    keys: Vec<String>,
    values: Vec<(Metric, f64)>,
}

fn read_rows(path: &Path, keys: &[&str]) -> Result<Vec<Row>, MonitorError> {
    let file = path.display().to_string();
    let mut rdr = csv::Reader::from_path(path).map_err(|e| MonitorError::Io {
        path: file.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let csv_err = |line: u64, field: &str, message: String| MonitorError::Csv {
        file: file.clone(),
        line,
        field: field.into(),
        message,
    };
    let headers = rdr
        .headers()
        .map_err(|e| csv_err(1, "header", e.to_string()))?
        .clone();
    for (i, k) in keys.iter().enumerate() {
        if headers.get(i) != Some(*k) {
            return Err(csv_err(1, k, format!("column {} must be `{k}`", i + 1)));
        }
    }
    let mut metrics = Vec::new();
    for h in headers.iter().skip(keys.len()) {
        let m: Metric = serde_json::from_value(serde_json::Value::String(h.to_string()))
            .map_err(|_| csv_err(1, h, format!("unknown metric column `{h}`")))?;
        metrics.push(m);
    }
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            csv_err(
                e.position().map_or(0, |p| p.line()),
                "record",
                e.to_string(),
            )
        })?;
        let line = rec.position().map_or(0, |p| p.line());
        let t: u64 = rec[0].trim().parse().map_err(|_| {
            csv_err(
                line,
                "timestamp_ms",
                format!("`{}` is not a whole number of ms", &rec[0]),
            )
        })?;
        let mut values = Vec::new();
        for (j, m) in metrics.iter().enumerate() {
            let cell = rec.get(keys.len() + j).unwrap_or("").trim();
            if cell.is_empty() {
                continue;
            }
            let v: f64 = cell.parse().map_err(|_| {
                csv_err(
                    line,
                    &m.to_string(),
                    format!("`{}` is not a number", graphscale_core::error::quote(cell)),
                )
            })?;
            if !v.is_finite() {
                return Err(csv_err(
                    line,
                    &m.to_string(),
                    "values must be finite (leave missing cells empty)".into(),
                ));
            }
            values.push((*m, v));
        }
        out.push(Row {
            file: file.clone(),
            line,
            t,
            keys: rec
                .iter()
                .skip(1)
                .take(keys.len() - 1)
                .map(str::to_string)
                .collect(),
            values,
        });
    }
    Ok(out)
}

/// The kind of a node, from its CSV name.
pub fn parse_kind(s: &str) -> Option<NodeKind> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use graphscale_core::{Edge, Node};

    fn sample() -> GraphSeries {
        let g = AppGraph::new(
            "g",
            vec![
                Node::new("a", NodeKind::Service),
                Node::new("b", NodeKind::Service),
                Node::new("q", NodeKind::Queue),
            ],
            vec![
                Edge::new("a", "b", Relation::Calls, 2.0),
                Edge::new("a", "q", Relation::Produces, 1.0),
            ],
        )
        .unwrap();
        let mut s = GraphSeries::new(g, 15_000, 15_000, 3);
        s.nodes
            .entry("a".into())
            .or_default()
            .insert(Metric::Rps, vec![1.0, f64::NAN, 3.5]);
        s.nodes
            .entry("q".into())
            .or_default()
            .insert(Metric::Backlog, vec![0.0, 4.0, 2.0]);
        s.edges.push(EdgeSeries {
            src: "a".into(),
            dst: "b".into(),
            relation: Relation::Calls,
            metrics: [(Metric::Rps, vec![2.0, 2.5, f64::NAN])]
                .into_iter()
                .collect(),
        });
        s
    }

    #[test]
    fn negative_and_infinite_values_are_dropped_not_written() {
        let v = [Some(2.0), Some(-1.0), None, Some(f64::INFINITY), Some(0.0)];
        let out = plausible(&v, 2.0, "t");
        assert_eq!(out[0], 1.0);
        assert!(out[1].is_nan() && out[2].is_nan() && out[3].is_nan());
        assert_eq!(out[4], 0.0);
    }

    #[test]
    fn csv_round_trip_keeps_gaps() {
        let dir = std::env::temp_dir().join(format!("gs-csv-{}", std::process::id()));
        let s = sample();
        write_dir(&s, &dir, Existing::Replace).unwrap();
        let back = read_dir(&dir).unwrap();
        assert_eq!(back.len, 3);
        assert_eq!(back.start_ms, 15_000);
        let a = &back.nodes["a"][&Metric::Rps];
        assert_eq!(a[0], 1.0);
        assert!(a[1].is_nan(), "a gap stays a gap");
        assert_eq!(back.nodes["q"][&Metric::Backlog], vec![0.0, 4.0, 2.0]);
        assert!(back.edges[0].metrics[&Metric::Rps][2].is_nan());
        assert_eq!(parse_kind("queue"), Some(NodeKind::Queue));
    }

    #[test]
    fn csv_errors_name_file_line_and_field() {
        let dir = std::env::temp_dir().join(format!("gs-csv-bad-{}", std::process::id()));
        write_dir(&sample(), &dir, Existing::Replace).unwrap();
        let nodes = dir.join("nodes.csv");
        let text = std::fs::read_to_string(&nodes).unwrap();
        std::fs::write(&nodes, text.replacen(",3.5,", ",x,", 1)).unwrap();
        let e = read_dir(&dir).unwrap_err().to_string();
        assert!(
            e.contains("nodes.csv") && e.contains("line 4") && e.contains("`rps`"),
            "{e}"
        );
        std::fs::write(&nodes, text.replacen("15000,a,", "15000,zz,", 1)).unwrap();
        let e = read_dir(&dir).unwrap_err().to_string();
        assert!(
            e.contains("unknown node `zz`") && e.contains("line 2"),
            "{e}"
        );
        std::fs::write(&nodes, text.replacen("timestamp_ms,node", "time,node", 1)).unwrap();
        assert!(read_dir(&dir)
            .unwrap_err()
            .to_string()
            .contains("must be `timestamp_ms`"));
        // A header-only nodes.csv beside edge rows: an error, never a series with no metrics.
        let header = text.lines().next().unwrap();
        std::fs::write(&nodes, format!("{header}\n")).unwrap();
        let e = read_dir(&dir).unwrap_err().to_string();
        assert!(e.contains("nodes.csv: no rows"), "{e}");
    }
}
