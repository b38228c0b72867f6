//! Import of the Nezha per-pod metrics and trace-derived call counts (shared/data
//! `microservices-ob-tt`, MIT, IntelligentDDS) into [`GraphSeries`], one per recorded segment.
//!
//! The layout of a folder (`ob/` or `tt/`):
//! - `segments.csv`: `segment,kind,start_utc,end_utc,minutes`; segments are not contiguous, so
//!   each becomes its own series on a one-minute grid starting at `start_utc`;
//! - `pod_metrics_1min.csv`: per pod and minute; a service's point is the sum over its pods of
//!   `PodWorkload(Ops)` (requests/s), `CpuUsage(m)` and `MemoryUsage(Mi)`, the largest
//!   `PodServerLatencyP95(s)` (as ms) and the number of pods reporting (ready replicas);
//! - `edge_calls_1min_from_traces.csv`: calls per minute per caller and callee (as calls/s) and
//!   the callee span p95 (`p95_us`, as ms); the `__client__` caller (load from outside) is not a
//!   node;
//! - `call_graph_edges.csv`: `caller,callee` (column order differs between apps): the `calls`
//!   edges between services that have pod metrics.
//!
//! Rows are placed at the nearest minute of their segment's grid. A row outside its segment's
//! time range, or a cell that is not a number, is not used; the [`ImportReport`] counts them with
//! the file and first line, so a corrupt column is visible (OB's adservice on 2022-08-22 has
//! every timestamp 200,000,000 s late).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use graphscale_core::series::EdgeSeries;
use graphscale_core::{AppGraph, Edge, GraphSeries, Metric, Node, NodeKind, Relation};

use crate::MonitorError;

/// What the import left out, by reason.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportReport {
    /// `(file, segment, what)` -> (rows, first 1-based line).
    pub skipped: BTreeMap<(String, String, String), (u64, u64)>,
}

impl ImportReport {
    fn skip(&mut self, file: &str, segment: &str, what: String, line: u64) {
        let e = self
            .skipped
            .entry((file.to_string(), segment.to_string(), what))
            .or_insert((0, line));
        e.0 += 1;
    }

    /// One line per reason.
    pub fn lines(&self) -> Vec<String> {
        self.skipped
            .iter()
            .map(|((file, seg, what), (n, line))| {
                format!("{file}: segment {seg}: {what}: {n} rows not used (first at line {line})")
            })
            .collect()
    }
}

type Rows = Vec<(u64, BTreeMap<String, String>)>;

fn rows(path: &Path, need: &[&str]) -> Result<Rows, MonitorError> {
    let file = path.display().to_string();
    let mut rdr = csv::Reader::from_path(path).map_err(|e| MonitorError::Io {
        path: file.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| MonitorError::Csv {
            file: file.clone(),
            line: 1,
            field: "header".into(),
            message: e.to_string(),
        })?
        .iter()
        .map(str::to_string)
        .collect();
    for col in need {
        if !header.iter().any(|h| h == col) {
            return Err(MonitorError::Csv {
                file: file.clone(),
                line: 1,
                field: (*col).into(),
                message: format!("missing column `{col}`"),
            });
        }
    }
    let mut out = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i as u64 + 2;
        let rec = rec.map_err(|e| MonitorError::Csv {
            file: file.clone(),
            line,
            field: "record".into(),
            message: e.to_string(),
        })?;
        out.push((
            line,
            header
                .iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.clone(), v.to_string()))
                .collect(),
        ));
    }
    Ok(out)
}

/// Unix seconds of `YYYY-MM-DD HH:MM:SS` (UTC).
fn parse_utc(s: &str) -> Option<i64> {
    let (d, t) = s.trim().split_once(' ')?;
    let mut dp = d.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (dp.next()??, dp.next()??, dp.next()??);
    let mut tp = t.split(':').map(|x| x.parse::<i64>().ok());
    let (hh, mm, ss) = (tp.next()??, tp.next()??, tp.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

struct Segment {
    name: String,
    start: i64,
    len: usize,
}

/// Reads one app folder (`.../microservices-ob-tt/ob` or `/tt`): the graph and one series per
/// segment, with what was left out.
pub fn read(dir: &Path) -> Result<(Vec<GraphSeries>, ImportReport), MonitorError> {
    let span = tracing::info_span!("nezha_import", dir = %dir.display());
    let _e = span.enter();
    let app = dir
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "app".into());
    let seg_path = dir.join("segments.csv");
    let seg_file = seg_path.display().to_string();
    let mut segments = Vec::new();
    for (line, r) in rows(&seg_path, &["segment", "start_utc", "end_utc"])? {
        let bad = |field: &str| MonitorError::Csv {
            file: seg_file.clone(),
            line,
            field: field.into(),
            message: format!("`{}` is not a `YYYY-MM-DD HH:MM:SS` time", r[field]),
        };
        let start = parse_utc(&r["start_utc"]).ok_or_else(|| bad("start_utc"))?;
        let end = parse_utc(&r["end_utc"]).ok_or_else(|| bad("end_utc"))?;
        if end <= start {
            return Err(MonitorError::Csv {
                file: seg_file.clone(),
                line,
                field: "end_utc".into(),
                message: "ends before it starts".into(),
            });
        }
        segments.push(Segment {
            name: r["segment"].clone(),
            start,
            len: ((end - start) / 60) as usize + 1,
        });
    }
    if segments.is_empty() {
        return Err(MonitorError::Invalid(format!("{seg_file}: no segments")));
    }
    let mut report = ImportReport::default();
    let place = |seg: &str, t: f64| -> Option<(usize, usize)> {
        let s = segments.iter().position(|x| x.name == seg)?;
        let i = ((t - segments[s].start as f64) / 60.0).round();
        (i >= 0.0 && (i as usize) < segments[s].len).then_some((s, i as usize))
    };

    // Pods: (segment, service, minute) -> pod -> (sums, count) per column.
    let pod_path = dir.join("pod_metrics_1min.csv");
    let pod_file = pod_path.display().to_string();
    const COLS: [&str; 4] = [
        "PodWorkload(Ops)",
        "CpuUsage(m)",
        "MemoryUsage(Mi)",
        "PodServerLatencyP95(s)",
    ];
    let mut need = vec!["segment", "timestamp", "service", "pod"];
    need.extend(COLS);
    type PodAcc = BTreeMap<String, [(f64, u32); 4]>;
    let mut pods: BTreeMap<(usize, String, usize), PodAcc> = BTreeMap::new();
    let mut services = BTreeSet::new();
    for (line, r) in rows(&pod_path, &need)? {
        let seg = &r["segment"];
        let Ok(t) = r["timestamp"].parse::<f64>() else {
            report.skip(&pod_file, seg, "timestamp not a number".into(), line);
            continue;
        };
        services.insert(r["service"].clone());
        let Some((s, i)) = place(seg, t) else {
            report.skip(
                &pod_file,
                seg,
                format!("{}: timestamp outside the segment", r["service"]),
                line,
            );
            continue;
        };
        let acc = pods
            .entry((s, r["service"].clone(), i))
            .or_default()
            .entry(r["pod"].clone())
            .or_default();
        for (k, col) in COLS.iter().enumerate() {
            match r[*col].parse::<f64>() {
                Ok(v) if v.is_finite() => {
                    acc[k].0 += v;
                    acc[k].1 += 1;
                }
                _ if r[*col].is_empty() => {}
                _ => report.skip(&pod_file, seg, format!("`{col}` not a number"), line),
            }
        }
    }

    let edge_path = dir.join("call_graph_edges.csv");
    let mut edges = BTreeSet::new();
    for (_, r) in rows(&edge_path, &["caller", "callee"])? {
        if services.contains(&r["caller"]) && services.contains(&r["callee"]) {
            edges.insert((r["caller"].clone(), r["callee"].clone()));
        }
    }
    let graph = AppGraph::new(
        app.clone(),
        services
            .iter()
            .map(|s| Node::new(s.clone(), NodeKind::Service))
            .collect(),
        edges
            .iter()
            .map(|(a, b)| Edge::new(a.clone(), b.clone(), Relation::Calls, 1.0))
            .collect(),
    )?;
    let mut out: Vec<GraphSeries> = segments
        .iter()
        .map(|s| GraphSeries::new(graph.clone(), s.start as u64 * 1000, 60_000, s.len))
        .collect();
    for ((s, service, i), by_pod) in pods {
        let len = segments[s].len;
        let m = out[s].nodes.entry(service).or_default();
        let mut put = |metric: Metric, v: f64| {
            m.entry(metric).or_insert_with(|| vec![f64::NAN; len])[i] = v;
        };
        let mean = |a: (f64, u32)| (a.1 > 0).then(|| a.0 / f64::from(a.1));
        let col = |k: usize| by_pod.values().filter_map(move |a| mean(a[k]));
        let sum = |k: usize| {
            let v: Vec<f64> = col(k).collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>())
        };
        if let Some(v) = sum(0) {
            put(Metric::Rps, v);
        }
        if let Some(v) = sum(1) {
            put(Metric::CpuMillicores, v);
        }
        if let Some(v) = sum(2) {
            put(Metric::MemoryMib, v);
        }
        if let Some(v) = col(3).reduce(f64::max) {
            put(Metric::LatencyP95Ms, v * 1000.0);
        }
        put(Metric::ReplicasReady, by_pod.len() as f64);
    }

    let calls_path = dir.join("edge_calls_1min_from_traces.csv");
    let calls_file = calls_path.display().to_string();
    let mut by_edge: Vec<BTreeMap<(String, String), EdgeSeries>> = vec![BTreeMap::new(); out.len()];
    for (line, r) in rows(
        &calls_path,
        &[
            "segment",
            "timestamp",
            "caller",
            "callee",
            "calls",
            "p95_us",
        ],
    )? {
        let seg = &r["segment"];
        let key = (r["caller"].clone(), r["callee"].clone());
        if !edges.contains(&key) {
            continue;
        }
        let Some((s, i)) = r["timestamp"]
            .parse::<f64>()
            .ok()
            .and_then(|t| place(seg, t))
        else {
            report.skip(
                &calls_file,
                seg,
                "timestamp outside the segment".into(),
                line,
            );
            continue;
        };
        let len = segments[s].len;
        let e = by_edge[s].entry(key.clone()).or_insert_with(|| EdgeSeries {
            src: key.0.clone(),
            dst: key.1.clone(),
            relation: Relation::Calls,
            metrics: BTreeMap::new(),
        });
        for (col, metric, scale) in [
            ("calls", Metric::Rps, 1.0 / 60.0),
            ("p95_us", Metric::LatencyP95Ms, 1e-3),
        ] {
            match r[col].parse::<f64>() {
                Ok(v) if v.is_finite() => {
                    e.metrics
                        .entry(metric)
                        .or_insert_with(|| vec![f64::NAN; len])[i] = v * scale;
                }
                _ => report.skip(&calls_file, seg, format!("`{col}` not a number"), line),
            }
        }
    }
    for (s, m) in by_edge.into_iter().enumerate() {
        out[s].edges = m.into_values().collect();
        out[s]
            .validate()
            .map_err(|e| MonitorError::Invalid(format!("{}: {e}", dir.display())))?;
    }
    for l in report.lines() {
        tracing::info!("{l}");
    }
    Ok((out, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times() {
        assert_eq!(parse_utc("1970-01-01 00:00:00"), Some(0));
        assert_eq!(parse_utc("2022-08-22 03:51:19"), Some(1_661_140_279));
        assert_eq!(parse_utc("2022-13-01 00:00:00"), None);
        assert_eq!(parse_utc("yesterday"), None);
    }
}
