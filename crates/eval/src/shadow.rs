//! Shadow mode: given a recorded run (the snapshots a control loop saw and what it decided),
//! replay the same snapshots through another autoscaler (by default the HPA) open loop, and
//! compare the two plans on cost and on how often each would have been short of capacity.
//!
//! Open loop means the other autoscaler's decisions are not applied: both are judged against
//! the demand that was actually observed. A plan is *short* at a decision when its replicas,
//! at the CPU-request capacity learned from the whole record, would not carry the demand
//! observed one lead time later (the learned pod start-up, 30 s until observed). Cost is the
//! CPU requested, in core-hours.

use std::collections::BTreeMap;

use graphscale_core::{AppGraph, Autoscaler, Edge, Millis, Node, NodeKind, Relation};
use graphscale_plan::learn::{CpuEstimator, StartupEstimator};
use serde::{Deserialize, Serialize};

use crate::{DecisionRecord, EvalError};

/// One side of the comparison for one workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShadowSide {
    /// CPU requested, core-hours.
    pub cpu_core_hours: f64,
    /// Decisions at which the plan was short of the demand one lead time later.
    pub short_decisions: u64,
    /// Replica changes.
    pub changes: u64,
    /// Mean replicas.
    pub mean_replicas: f64,
}

/// The comparison for one workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowRow {
    /// Workload.
    pub workload: String,
    /// What the recorded autoscaler did.
    pub recorded: ShadowSide,
    /// What the other autoscaler would have done.
    pub shadow: ShadowSide,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowReport {
    /// Decisions replayed.
    pub decisions: usize,
    /// The other autoscaler's name.
    pub shadow_name: String,
    /// Per workload.
    pub rows: Vec<ShadowRow>,
    /// Totals over workloads.
    pub total_recorded: ShadowSide,
    /// Totals over workloads.
    pub total_shadow: ShadowSide,
    /// Which plan the SLO favours (fewer short decisions), or `tie`.
    pub slo_favours: String,
    /// Which plan cost favours (fewer core-hours), or `tie`.
    pub cost_favours: String,
}

/// Rebuilds the application graph from the workloads and edges of a snapshot.
pub fn graph_of(rec: &DecisionRecord) -> Result<AppGraph, EvalError> {
    let mut nodes: Vec<Node> = rec
        .snapshot
        .workloads
        .iter()
        .map(|w| Node::new(&w.name, NodeKind::Service))
        .collect();
    let mut seen: std::collections::HashSet<String> = nodes.iter().map(|n| n.id.clone()).collect();
    let mut edges = Vec::new();
    for e in &rec.snapshot.edges {
        let (_, dst_kind) = e.relation.endpoint_kinds();
        if e.relation == Relation::RunsOn {
            continue;
        }
        if seen.insert(e.dst.to_string()) {
            nodes.push(Node::new(&*e.dst, dst_kind));
        }
        edges.push(Edge::new(&*e.src, &*e.dst, e.relation, 1.0));
    }
    AppGraph::new("recorded", nodes, edges).map_err(|e| EvalError::Record {
        at: "the record's graph".into(),
        reason: e.to_string(),
    })
}

/// Replays `records` through `other` (open loop, its fits installed after their modelled
/// training time on the records' clock) and compares. Records must be in time order.
pub fn shadow(
    records: &[DecisionRecord],
    other: Box<dyn Autoscaler + Send>,
) -> Result<ShadowReport, EvalError> {
    let first = records.first().ok_or_else(|| EvalError::Record {
        at: "the record".into(),
        reason: "it has no decisions".into(),
    })?;
    let graph = graph_of(first)?;
    // Learn each workload's CPU model and start-up from the whole record.
    let mut cpu: BTreeMap<String, CpuEstimator> = BTreeMap::new();
    let mut startup: BTreeMap<String, StartupEstimator> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        if i > 0 && r.snapshot.time <= records[i - 1].snapshot.time {
            return Err(EvalError::Record {
                at: format!("record {}", i + 1),
                reason: format!(
                    "time {} is not after the previous {}",
                    r.snapshot.time,
                    records[i - 1].snapshot.time
                ),
            });
        }
        for w in &r.snapshot.workloads {
            cpu.entry(w.name.clone())
                .or_insert_with(|| CpuEstimator::new(usize::MAX / 2))
                .observe(w);
            startup.entry(w.name.clone()).or_default().observe(w);
        }
    }
    let mut ctl = graphscale_control::ControlLoop::simulated(other, Millis::ZERO)?;
    let mut shadow_decisions = Vec::with_capacity(records.len());
    for r in records {
        shadow_decisions.push(ctl.decide(r.snapshot.time, &r.snapshot, &graph).decisions);
    }
    let names: Vec<String> = first
        .snapshot
        .workloads
        .iter()
        .map(|w| w.name.clone())
        .collect();
    let mut rows = Vec::new();
    for name in &names {
        let model = cpu.get(name).and_then(|c| c.model());
        let lead = startup
            .get(name)
            .and_then(|s| s.startup())
            .map_or(30_000, |m| m.0);
        let mut sides = [ShadowSide::default(), ShadowSide::default()];
        let mut last = [None, None];
        for (i, r) in records.iter().enumerate() {
            let Some(w) = r.snapshot.workload(name) else {
                continue;
            };
            let dt_h = records.get(i + 1).map_or(0.0, |n| {
                n.snapshot
                    .time
                    .saturating_sub(r.snapshot.time)
                    .as_secs_f64()
            }) / 3600.0;
            let req = w.pods.first().map_or(0.0, |p| p.requests.cpu_millicores);
            // Demand one lead later: the first record at or after t + lead.
            let due = r.snapshot.time.0 + lead;
            let later = records[i..]
                .iter()
                .find(|x| x.snapshot.time.0 >= due)
                .and_then(|x| x.snapshot.workload(name))
                .and_then(|x| x.rps);
            let need = match (model, later) {
                (Some(m), Some(d)) if req > 0.0 => Some((d / m.replica_rps(req)).ceil() as u32),
                _ => None,
            };
            let picks = [
                r.decisions
                    .iter()
                    .find(|d| &d.workload == name)
                    .map(|d| d.replicas),
                shadow_decisions[i]
                    .iter()
                    .find(|d| &d.workload == name)
                    .map(|d| d.replicas),
            ];
            for k in 0..2 {
                let n = picks[k].unwrap_or(w.spec_replicas);
                let s = &mut sides[k];
                s.cpu_core_hours += n as f64 * req / 1000.0 * dt_h;
                s.mean_replicas += n as f64;
                if need.is_some_and(|need| n < need) {
                    s.short_decisions += 1;
                }
                if last[k].is_some_and(|l| l != n) {
                    s.changes += 1;
                }
                last[k] = Some(n);
            }
        }
        for s in &mut sides {
            s.mean_replicas /= records.len() as f64;
        }
        let [recorded, shadow] = sides;
        rows.push(ShadowRow {
            workload: name.clone(),
            recorded,
            shadow,
        });
    }
    let total = |f: &dyn Fn(&ShadowRow) -> &ShadowSide| {
        let mut t = ShadowSide::default();
        for r in &rows {
            let s = f(r);
            t.cpu_core_hours += s.cpu_core_hours;
            t.short_decisions += s.short_decisions;
            t.changes += s.changes;
            t.mean_replicas += s.mean_replicas;
        }
        t
    };
    let total_recorded = total(&|r| &r.recorded);
    let total_shadow = total(&|r| &r.shadow);
    let favour = |a: f64, b: f64| {
        if (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-9) {
            "tie".to_string()
        } else if a < b {
            "recorded".to_string()
        } else {
            ctl.autoscaler().name().to_string()
        }
    };
    Ok(ShadowReport {
        decisions: records.len(),
        shadow_name: ctl.autoscaler().name().to_string(),
        slo_favours: favour(
            total_recorded.short_decisions as f64,
            total_shadow.short_decisions as f64,
        ),
        cost_favours: favour(total_recorded.cpu_core_hours, total_shadow.cpu_core_hours),
        rows,
        total_recorded,
        total_shadow,
    })
}

/// Parses a record file: one JSON [`DecisionRecord`] per line; errors name the line.
pub fn parse_records(text: &str, path: &str) -> Result<Vec<DecisionRecord>, EvalError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| EvalError::Record {
                at: format!("{path}:{}", i + 1),
                reason: e.to_string(),
            })
        })
        .collect()
}
