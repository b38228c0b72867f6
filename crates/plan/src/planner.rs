//! The resource planner: forecast demand in, replicas out. Pure and deterministic: no I/O, no
//! clock, no state; the same input gives the same plan.
//!
//! Per service, the demand to provision for is the larger of its own forecast and, when the
//! planner is graph-aware, what its callers' demand sends it along the observed call ratios
//! (through queues, split over their consumers, and topics, copied to every subscriber), plus
//! the rate that drains its backlog in `backlog_drain_s`. Replicas are that demand with
//! headroom over the requests/s one replica sustains at `target_utilization` of its CPU
//! request, within min/max, the per-service CPU cap and the total CPU and memory budgets.

use std::collections::HashMap;

use graphscale_core::{AppGraph, Reason, Relation, Resources};
use serde::{Deserialize, Serialize};

use crate::latency::LatencyModel;
use crate::learn::CpuModel;
use crate::slo::SloConfig;
use crate::PlanError;

fn d_headroom() -> f64 {
    0.12
}
fn d_target() -> f64 {
    0.9
}
fn d_beta() -> f64 {
    0.5
}
fn d_drain() -> f64 {
    60.0
}
fn d_true() -> bool {
    true
}

/// Planner settings; every field has a documented default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannerConfig {
    /// Capacity kept above the forecast demand, as a share of it; default 0.12.
    #[serde(default = "d_headroom")]
    pub headroom: f64,
    /// Share of a replica's CPU request it may use at the planned load before the headroom;
    /// default 0.9. With the default headroom pods run at 0.9 / 1.12 = 80 % of their request at
    /// the forecast demand, the HPA's default target, so savings cannot come from over-committing
    /// CPU (0.8, 71 % with the headroom, was the default until the defaults were re-measured on
    /// 2026-11-22, docs/benchmarks.md).
    #[serde(default = "d_target")]
    pub target_utilization: f64,
    /// A backlog is planned to drain within this many seconds; default 60.
    #[serde(default = "d_drain")]
    pub backlog_drain_s: f64,
    /// Propagate demand along the graph; default true.
    #[serde(default = "d_true")]
    pub graph_aware: bool,
    /// Square-root staffing: never fewer replicas than `R + beta * sqrt(R)`, with `R` the
    /// offered load in replicas (demand x CPU per request / the CPU request). A fixed target
    /// utilisation is too hot for one or two replicas, where a queue builds long before the
    /// CPU is used up (M/M/1 at 80 % waits 4x its service time on average); this rule (Halfin and
    /// Whitt's) keeps more spare capacity on small services and hardly any on large ones.
    /// Default 0.5; 0 turns it off. Measured on seeds 1-5 (docs/benchmarks.md): 0 let Train
    /// Ticket's one-replica services violate the SLO 8x as often as the HPA on the WorldCup98 day,
    /// 0.5 40 % less often at 3 % more CPU, 1.0 never at 9 % more; on the flash crowd 1.5 comes
    /// near half the HPA's violation minutes at 29-46 % more CPU.
    #[serde(default = "d_beta")]
    pub queueing_beta: f64,
    /// Total CPU requests the plan may reach, cores; default none.
    #[serde(default)]
    pub cpu_budget_cores: Option<f64>,
    /// Total memory requests the plan may reach, GiB; default none.
    #[serde(default)]
    pub memory_budget_gib: Option<f64>,
    /// CPU requests one service may reach, cores; default none.
    #[serde(default)]
    pub service_cpu_cap_cores: Option<f64>,
    /// The whole-graph SLO planner ([`crate::slo`]) in place of the per-service rule; default
    /// none (off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<SloConfig>,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        PlannerConfig {
            headroom: d_headroom(),
            target_utilization: d_target(),
            backlog_drain_s: d_drain(),
            graph_aware: true,
            queueing_beta: d_beta(),
            cpu_budget_cores: None,
            memory_budget_gib: None,
            service_cpu_cap_cores: None,
            slo: None,
        }
    }
}

impl PlannerConfig {
    /// The share of the CPU request the pods may use now before the plan must add replicas:
    /// the SLO planner's `max_request_utilization` when it plans, else `target_utilization`.
    pub fn floor_utilization(&self) -> f64 {
        self.slo
            .as_ref()
            .map_or(self.target_utilization, |s| s.max_request_utilization)
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<(), PlanError> {
        let bad = |field: &str, reason: String| {
            Err(PlanError::InvalidConfig {
                workload: "*".into(),
                field: format!("planner.{field}"),
                reason,
            })
        };
        if !(self.headroom.is_finite() && (0.0..=5.0).contains(&self.headroom)) {
            return bad(
                "headroom",
                format!("must be in 0..=5, got {}", self.headroom),
            );
        }
        if !(self.queueing_beta.is_finite() && (0.0..=5.0).contains(&self.queueing_beta)) {
            return bad(
                "queueing_beta",
                format!("must be in 0..=5, got {}", self.queueing_beta),
            );
        }
        if !(self.target_utilization.is_finite()
            && self.target_utilization > 0.0
            && self.target_utilization <= 2.5)
        {
            return bad(
                "target_utilization",
                format!("must be in (0, 2.5], got {}", self.target_utilization),
            );
        }
        if !(self.backlog_drain_s.is_finite() && self.backlog_drain_s > 0.0) {
            return bad(
                "backlog_drain_s",
                format!("must be > 0, got {}", self.backlog_drain_s),
            );
        }
        for (f, v) in [
            ("cpu_budget_cores", self.cpu_budget_cores),
            ("memory_budget_gib", self.memory_budget_gib),
            ("service_cpu_cap_cores", self.service_cpu_cap_cores),
        ] {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0) {
                    return bad(f, format!("must be > 0, got {v}"));
                }
            }
        }
        if let Some(slo) = &self.slo {
            slo.validate()?;
        }
        Ok(())
    }
}

/// What the planner knows of one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceInput {
    /// Service name (a node of the graph).
    pub name: String,
    /// Current `spec.replicas`.
    pub current: u32,
    /// Lower bound on replicas.
    pub min_replicas: u32,
    /// Upper bound on replicas.
    pub max_replicas: u32,
    /// Demand to provision for from the service's own forecast (the chosen quantile over the
    /// lead time), requests/s; `None` when there is no usable forecast.
    pub demand_rps: Option<f64>,
    /// Work waiting for the service (requests or messages).
    pub backlog: Option<f64>,
    /// The service's learned CPU model; `None` until learned.
    pub cpu: Option<CpuModel>,
    /// The service's learned latency model; `None` until learned (only the SLO planner uses
    /// it).
    pub latency: Option<LatencyModel>,
    /// One pod's requests.
    pub requests: Resources,
}

/// The plan for one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServicePlan {
    /// Service name.
    pub name: String,
    /// Replicas wanted; `None` when the planner cannot say (the caller holds or falls back).
    pub replicas: Option<u32>,
    /// Demand planned for, requests/s (own or propagated, plus backlog drain).
    pub demand_rps: Option<f64>,
    /// The upstream service whose demand drove this plan, when propagation won.
    pub driven_by: Option<String>,
    /// Why.
    pub reasons: Vec<Reason>,
}

/// Service-to-service load flows of the graph: `(from, to, default ratio)`, with queue
/// producers feeding every consumer of the queue (split evenly) and topic publishers feeding
/// every subscriber (copied).
pub fn flows(graph: &AppGraph) -> Vec<(String, String, f64)> {
    let mut out = Vec::new();
    for e in &graph.edges {
        match e.relation {
            Relation::Calls => out.push((e.src.clone(), e.dst.clone(), e.ratio)),
            Relation::Produces | Relation::Publishes => {
                let takers = if e.relation == Relation::Produces {
                    Relation::Consumes
                } else {
                    Relation::Subscribes
                };
                let consumers: Vec<&str> = graph
                    .edges
                    .iter()
                    .filter(|c| c.relation == takers && c.dst == e.dst)
                    .map(|c| c.src.as_str())
                    .collect();
                let split = if takers == Relation::Consumes {
                    consumers.len().max(1) as f64
                } else {
                    1.0
                };
                for c in consumers {
                    out.push((e.src.clone(), c.to_string(), e.ratio / split));
                }
            }
            _ => {}
        }
    }
    out
}

/// Plans every service of `inputs`. `ratio(src, dst, relation_default)` gives the call (or
/// message) ratio to use for a flow: the observed one where known. With
/// [`PlannerConfig::slo`] set, the whole-graph SLO planner ([`crate::slo::plan_slo`]) plans
/// instead, falling back to this rule (and saying so) when its models are not healthy.
pub fn plan(
    cfg: &PlannerConfig,
    graph: &AppGraph,
    inputs: &[ServiceInput],
    ratio: &dyn Fn(&str, &str, f64) -> f64,
) -> Vec<ServicePlan> {
    match &cfg.slo {
        Some(slo) => crate::slo::plan_slo(cfg, slo, graph, inputs, ratio),
        None => plan_per_service(cfg, graph, inputs, ratio),
    }
}

/// The per-service rule: each service's demand (own or propagated) at the target utilisation
/// with headroom and square-root staffing, then the budgets.
pub fn plan_per_service(
    cfg: &PlannerConfig,
    graph: &AppGraph,
    inputs: &[ServiceInput],
    ratio: &dyn Fn(&str, &str, f64) -> f64,
) -> Vec<ServicePlan> {
    let (eff, driver) = propagate(cfg, graph, inputs, ratio);
    let mut plans = plan_each(cfg, inputs, &eff, &driver);
    apply_budgets(cfg, inputs, &mut plans);
    plans
}

/// Each service by the per-service rule at its propagated demand, before the budgets.
pub(crate) fn plan_each(
    cfg: &PlannerConfig,
    inputs: &[ServiceInput],
    eff: &[Option<f64>],
    driver: &[Option<usize>],
) -> Vec<ServicePlan> {
    inputs
        .iter()
        .enumerate()
        .map(|(i, s)| plan_one(cfg, s, eff[i], driver[i].map(|d| inputs[d].name.clone())))
        .collect()
}

/// The demand each service is planned for, requests/s (without the backlog drain), and the
/// caller whose demand set it when propagation won.
pub(crate) fn propagate(
    cfg: &PlannerConfig,
    graph: &AppGraph,
    inputs: &[ServiceInput],
    ratio: &dyn Fn(&str, &str, f64) -> f64,
) -> (Vec<Option<f64>>, Vec<Option<usize>>) {
    let n = inputs.len();
    let index: HashMap<&str, usize> = inputs
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let own: Vec<Option<f64>> = inputs
        .iter()
        .map(|s| s.demand_rps.filter(|d| d.is_finite() && *d >= 0.0))
        .collect();
    // Propagation: eff = max(own, sum over callers of eff(caller) * ratio), to a fixed point
    // (a cycle is cut after 64 rounds).
    let mut eff: Vec<Option<f64>> = own.clone();
    let mut driver: Vec<Option<usize>> = vec![None; n];
    if cfg.graph_aware {
        let fl: Vec<(usize, usize, f64)> = flows(graph)
            .into_iter()
            .filter_map(|(a, b, r)| {
                let (ia, ib) = (*index.get(a.as_str())?, *index.get(b.as_str())?);
                let r = ratio(&a, &b, r);
                (r.is_finite() && r >= 0.0).then_some((ia, ib, r))
            })
            .collect();
        for _ in 0..64 {
            let mut incoming: Vec<Option<(f64, usize, f64)>> = vec![None; n];
            for &(a, b, r) in &fl {
                if let Some(ea) = eff[a] {
                    let c = ea * r;
                    let slot = incoming[b].get_or_insert((0.0, a, 0.0));
                    slot.0 += c;
                    if c > slot.2 {
                        slot.1 = a;
                        slot.2 = c;
                    }
                }
            }
            let mut changed = false;
            for i in 0..n {
                let Some((sum, top, _)) = incoming[i] else {
                    continue;
                };
                let (v, d) = match own[i] {
                    Some(o) if o >= sum => (o, None),
                    _ => (sum, Some(top)),
                };
                if Some(v.to_bits()) != eff[i].map(f64::to_bits) {
                    changed = true;
                }
                eff[i] = Some(v);
                driver[i] = d;
            }
            if !changed {
                break;
            }
        }
    }
    (eff, driver)
}

fn plan_one(
    cfg: &PlannerConfig,
    s: &ServiceInput,
    demand: Option<f64>,
    driven_by: Option<String>,
) -> ServicePlan {
    let mut reasons = Vec::new();
    let hold = |reasons: Vec<Reason>| ServicePlan {
        name: s.name.clone(),
        replicas: None,
        demand_rps: demand,
        driven_by: None,
        reasons,
    };
    if s.min_replicas > s.max_replicas {
        return hold(vec![Reason::new(
            "plan.bounds_inconsistent",
            format!("min {} > max {}", s.min_replicas, s.max_replicas),
        )]);
    }
    let Some(demand) = demand else {
        return hold(vec![Reason::new(
            "plan.no_forecast",
            "no usable forecast for the service or its callers",
        )]);
    };
    let Some(model) = s
        .cpu
        .filter(|m| m.cpu_ms_per_request.is_finite() && m.cpu_ms_per_request > 0.0)
    else {
        return hold(vec![Reason::new(
            "plan.no_capacity_model",
            "the service's CPU per request is not learned yet",
        )]);
    };
    let backlog_rps = s
        .backlog
        .filter(|b| b.is_finite() && *b > 0.0)
        .map_or(0.0, |b| b / cfg.backlog_drain_s);
    let total = demand + backlog_rps;
    let budget_mc = cfg.target_utilization * s.requests.cpu_millicores;
    let per_replica = model.replica_rps(budget_mc);
    let raw = (total * (1.0 + cfg.headroom) / per_replica).ceil();
    let mut replicas = if raw.is_finite() {
        raw.clamp(0.0, u32::MAX as f64) as u32
    } else {
        s.max_replicas
    };
    let mut detail = format!(
        "demand {total:.1} rps{} x (1 + {:.0} % headroom) / {per_replica:.1} rps per replica ({budget_mc:.0} mc = {:.0} % of the CPU request, {:.3} ms CPU per request, {:.1} mc idle) = {raw}",
        if backlog_rps > 0.0 {
            format!(" (incl. {backlog_rps:.1} to drain the backlog)")
        } else {
            String::new()
        },
        cfg.headroom * 100.0,
        cfg.target_utilization * 100.0,
        model.cpu_ms_per_request,
        model.idle_millicores,
    );
    if cfg.queueing_beta > 0.0 {
        let offered = total / model.replica_rps(s.requests.cpu_millicores);
        let staffed = (offered + cfg.queueing_beta * offered.sqrt()).ceil();
        if staffed.is_finite() && staffed > raw {
            replicas = staffed.clamp(0.0, u32::MAX as f64) as u32;
            detail.push_str(&format!(
                "; square-root staffing: offered load {offered:.2} replicas + {} x sqrt = {staffed}",
                cfg.queueing_beta
            ));
        }
    }
    if let Some(d) = &driven_by {
        detail.push_str(&format!("; demand propagated from upstream `{d}`"));
    }
    reasons.push(Reason::new(
        if driven_by.is_some() {
            "plan.graph_propagation"
        } else {
            "plan.forecast"
        },
        detail,
    ));
    if let Some(capc) = cfg.service_cpu_cap_cores {
        let max_by_cap = (capc * 1000.0 / s.requests.cpu_millicores.max(1e-9)).floor() as u32;
        if replicas > max_by_cap {
            reasons.push(Reason::new(
                "plan.service_budget",
                format!("{replicas} replicas exceed the service cap of {capc} cores: {max_by_cap}"),
            ));
            replicas = max_by_cap;
        }
    }
    let clamped = replicas.clamp(s.min_replicas, s.max_replicas);
    if clamped != replicas {
        reasons.push(Reason::new(
            "plan.bounds",
            format!(
                "{replicas} outside [{}, {}]: {clamped}",
                s.min_replicas, s.max_replicas
            ),
        ));
    }
    ServicePlan {
        name: s.name.clone(),
        replicas: Some(clamped),
        demand_rps: Some(total),
        driven_by,
        reasons,
    }
}

/// Scales plans down proportionally (never below min replicas) until the totals fit.
pub(crate) fn apply_budgets(
    cfg: &PlannerConfig,
    inputs: &[ServiceInput],
    plans: &mut [ServicePlan],
) {
    for (budget, unit, get) in [
        (
            cfg.cpu_budget_cores.map(|c| c * 1000.0),
            "cores",
            (|r: &Resources| r.cpu_millicores) as fn(&Resources) -> f64,
        ),
        (
            cfg.memory_budget_gib.map(|g| g * 1024.0),
            "GiB",
            (|r: &Resources| r.memory_mib) as fn(&Resources) -> f64,
        ),
    ] {
        let Some(budget) = budget else { continue };
        // Services the planner holds keep their current replicas inside the budget.
        let used = |plans: &[ServicePlan]| -> f64 {
            plans
                .iter()
                .zip(inputs)
                .map(|(p, s)| p.replicas.unwrap_or(s.current) as f64 * get(&s.requests))
                .sum()
        };
        let total = used(plans);
        if total <= budget + 1e-9 {
            continue;
        }
        let floor: f64 = inputs
            .iter()
            .map(|s| s.min_replicas as f64 * get(&s.requests))
            .sum();
        let scale = ((budget - floor) / (total - floor).max(1e-9)).clamp(0.0, 1.0);
        for (p, s) in plans.iter_mut().zip(inputs) {
            let Some(r) = p.replicas else { continue };
            let extra = r.saturating_sub(s.min_replicas) as f64;
            let new = s.min_replicas + (extra * scale).floor() as u32;
            if new != r {
                p.reasons.push(Reason::new(
                    "plan.budget",
                    format!(
                        "total plan {:.2} {unit} over the budget of {:.2}: {r} -> {new}",
                        total / if unit == "cores" { 1000.0 } else { 1024.0 },
                        budget / if unit == "cores" { 1000.0 } else { 1024.0 },
                    ),
                ));
                p.replicas = Some(new);
            }
        }
        if used(plans) > budget + 1e-9 {
            for p in plans.iter_mut() {
                p.reasons.push(Reason::new(
                    "plan.budget_infeasible",
                    format!("minimum replicas and held services alone exceed the {unit} budget"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use graphscale_core::{Edge, Node, NodeKind};

    fn chain() -> AppGraph {
        AppGraph::new(
            "t",
            vec![
                Node::new("front", NodeKind::Service),
                Node::new("back", NodeKind::Service),
                Node::new("q", NodeKind::Queue),
                Node::new("w1", NodeKind::Service),
                Node::new("w2", NodeKind::Service),
            ],
            vec![
                Edge::new("front", "back", Relation::Calls, 2.0),
                Edge::new("back", "q", Relation::Produces, 1.0),
                Edge::new("w1", "q", Relation::Consumes, 1.0),
                Edge::new("w2", "q", Relation::Consumes, 1.0),
            ],
        )
        .unwrap()
    }

    fn input(name: &str, demand: Option<f64>) -> ServiceInput {
        ServiceInput {
            name: name.into(),
            current: 1,
            min_replicas: 1,
            max_replicas: 100,
            demand_rps: demand,
            backlog: None,
            // 10 ms per request, no idle: 10 rps per replica at a 100 mc request.
            cpu: Some(CpuModel {
                cpu_ms_per_request: 10.0,
                idle_millicores: 0.0,
                samples: 10,
            }),
            latency: None,
            requests: Resources::new(100.0, 128.0),
        }
    }

    fn cfg() -> PlannerConfig {
        PlannerConfig {
            headroom: 0.0,
            target_utilization: 1.0,
            queueing_beta: 0.0,
            ..PlannerConfig::default()
        }
    }

    #[test]
    fn square_root_staffing_spares_small_services_not_large_ones() {
        let c = PlannerConfig {
            headroom: 0.0,
            target_utilization: 0.9,
            queueing_beta: 0.5,
            ..PlannerConfig::default()
        };
        let one = |c: &PlannerConfig, rps: f64| {
            plan(c, &chain(), &[input("front", Some(rps))], &|_, _, r| r).remove(0)
        };
        // 8 rps is 0.8 replicas of load: 90 % utilisation says 1, 0.8 + 0.5 sqrt(0.8) = 1.25 says 2.
        let p = one(&c, 8.0);
        assert_eq!(p.replicas, Some(2));
        assert!(
            p.reasons[0].detail.contains("square-root staffing"),
            "{:?}",
            p.reasons
        );
        // 900 rps is 90 replicas of load: 90 + 0.5 sqrt(90) = 94.7 is below the 100 that 90 %
        // utilisation asks for, which stands.
        let p = one(&c, 900.0);
        assert_eq!(p.replicas, Some(100));
        assert!(!p.reasons[0].detail.contains("square-root"));
        // Off.
        let off = PlannerConfig {
            queueing_beta: 0.0,
            ..c.clone()
        };
        assert_eq!(one(&off, 8.0).replicas, Some(1));
        let bad = PlannerConfig {
            queueing_beta: f64::NAN,
            ..c
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn demand_flows_down_calls_and_splits_over_queue_consumers() {
        let ins = vec![
            input("front", Some(100.0)),
            input("back", Some(20.0)),
            input("w1", Some(0.0)),
            input("w2", None),
        ];
        let p = plan(&cfg(), &chain(), &ins, &|_, _, r| r);
        let r: Vec<_> = p.iter().map(|p| p.replicas).collect();
        // back: 100 * 2 = 200 rps -> 20; each worker: 200 / 2 = 100 -> 10.
        assert_eq!(r, vec![Some(10), Some(20), Some(10), Some(10)]);
        assert_eq!(p[1].driven_by.as_deref(), Some("front"));
        assert_eq!(p[3].driven_by.as_deref(), Some("back"));
        assert_eq!(p[1].reasons[0].rule, "plan.graph_propagation");
        // Observed ratios replace the graph's.
        let p = plan(&cfg(), &chain(), &ins, &|a, _, r| {
            if a == "front" {
                0.5
            } else {
                r
            }
        });
        assert_eq!(p[1].replicas, Some(5));
        // Without graph awareness, each service plans on its own forecast.
        let blind = PlannerConfig {
            graph_aware: false,
            ..cfg()
        };
        let p = plan(&blind, &chain(), &ins, &|_, _, r| r);
        assert_eq!(p[1].replicas, Some(2));
        assert_eq!(p[3].replicas, None);
        assert_eq!(p[3].reasons[0].rule, "plan.no_forecast");
    }

    #[test]
    fn headroom_target_and_backlog_enter_the_count() {
        let mut s = input("front", Some(90.0));
        s.backlog = Some(600.0); // 10 rps over 60 s
        let c = PlannerConfig {
            headroom: 0.1,
            target_utilization: 0.8,
            queueing_beta: 0.0,
            ..PlannerConfig::default()
        };
        let p = plan(&c, &chain(), &[s], &|_, _, r| r);
        // (90 + 10) * 1.1 / 8 = 13.75 -> 14
        assert_eq!(p[0].replicas, Some(14));
    }

    #[test]
    fn budgets_and_bounds_hold() {
        let ins = vec![input("front", Some(1000.0)), input("back", Some(50.0))];
        let c = PlannerConfig {
            cpu_budget_cores: Some(5.0),
            graph_aware: false,
            ..cfg()
        };
        let p = plan(&c, &chain(), &ins, &|_, _, r| r);
        let total: u32 = p.iter().map(|p| p.replicas.unwrap()).sum();
        assert!(total * 100 <= 5000, "{p:?}");
        assert!(p[0].reasons.iter().any(|r| r.rule == "plan.budget"));
        let mut bad = input("front", Some(1.0));
        bad.min_replicas = 5;
        bad.max_replicas = 2;
        let p = plan(&cfg(), &chain(), &[bad], &|_, _, r| r);
        assert_eq!(p[0].replicas, None);
        assert_eq!(p[0].reasons[0].rule, "plan.bounds_inconsistent");
    }

    #[test]
    fn nan_and_negative_forecasts_are_held_and_empty_graphs_plan_nothing() {
        let ins = vec![input("front", Some(f64::NAN)), input("back", Some(-3.0))];
        let blind = PlannerConfig {
            graph_aware: false,
            ..cfg()
        };
        let p = plan(&blind, &chain(), &ins, &|_, _, r| r);
        assert!(p.iter().all(|p| p.replicas.is_none()));
        let empty = AppGraph::new("e", vec![], vec![]).unwrap();
        assert!(plan(&cfg(), &empty, &[], &|_, _, r| r).is_empty());
    }
}
