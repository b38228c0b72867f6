//! The whole-graph SLO planner: the least total CPU request such that the predicted
//! end-to-end p95 at every entry service stays within the SLO, less a safety margin, at the
//! demand the forecast asks to provision for.
//!
//! The end-to-end p95 of an entry is predicted as the sum over the services its requests visit
//! synchronously (calls, not messages) of visits x the service's p95 from its learned
//! [`crate::latency::LatencyModel`], at the replicas planned and the demand propagated to it
//! (own forecast or callers' demand times the call ratios, [`crate::planner::propagate`]). A
//! sum of p95s bounds the p95 of the sum from above for latencies that rise together, and it
//! is how the simulator composes latency.
//!
//! The plan starts every service on a synchronous path at the fewest replicas that serve its
//! demand with the CPU per pod at most `max_request_utilization` of its request (the request
//! is what the scheduler guarantees; CPU above it is borrowed) and a stable queue. While an
//! entry's prediction is over its budget it adds one replica to the service with the largest
//! latency gain per core of request over the entries still over budget (p95 falls and flattens
//! with replicas, so the greedy step follows the marginal gains down). Cheap services with many
//! replicas end up hot, the services that dominate latency cooler.
//!
//! Services on no synchronous path (queue and topic consumers) have no latency budget and are
//! planned by the per-service rule. When the SLO is not known, or a service on a path lacks a
//! demand, a CPU model or a healthy latency model, the whole plan falls back to the
//! per-service rule and every decision says why.

use std::collections::{BTreeSet, HashMap};

/// A replica that cuts its service's predicted p95 by less than this share gains nothing: the
/// wait's tail shrinks with every replica but never to exactly 0, and an SLO under the
/// zero-load latency must not buy replicas to the cap.
const MIN_CUT: f64 = 1e-3;

use graphscale_core::{AppGraph, Reason, Relation};
use serde::{Deserialize, Serialize};

use crate::latency::LatencyModel;
use crate::planner::{
    apply_budgets, plan_each, plan_per_service, propagate, PlannerConfig, ServiceInput, ServicePlan,
};
use crate::PlanError;

fn d_margin() -> f64 {
    0.2
}
fn d_util() -> f64 {
    0.95
}
fn d_err() -> f64 {
    0.4
}
fn d_samples() -> usize {
    8
}

/// Most replicas the greedy step adds in one plan, over all services.
pub const MAX_STEPS: usize = 100_000;
/// Largest end-to-end SLO accepted, ms (an hour).
pub const MAX_SLO_MS: f64 = 3.6e6;
/// Deepest call path followed from an entry (cycles are cut here).
pub const MAX_DEPTH: usize = 32;

/// Settings of the SLO planner; every field has a documented default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloConfig {
    /// End-to-end p95 SLO at the entry services, ms. Default none: the evaluation and the
    /// simulator fill in the app's SLO; without one the plan falls back to the per-service
    /// rule.
    #[serde(default)]
    pub slo_ms: Option<f64>,
    /// Share of the SLO kept free for what the model misses; default 0.2 (plan to 80 % of it).
    #[serde(default = "d_margin")]
    pub margin: f64,
    /// Most CPU a pod is planned to use, as a share of its CPU request; default 0.95.
    #[serde(default = "d_util")]
    pub max_request_utilization: f64,
    /// A latency model whose fit error (RMS, as a share of the mean p95) is above this is not
    /// healthy; default 0.4 (a service of a few requests/s has a noisy windowed p95: Train
    /// Ticket's auth service, 3.5 rps at 115 ms of CPU each, fits to 29-35 % at best).
    #[serde(default = "d_err")]
    pub max_fit_error: f64,
    /// A latency model fitted on fewer steady samples is not healthy; default 8.
    #[serde(default = "d_samples")]
    pub min_samples: usize,
}

impl Default for SloConfig {
    fn default() -> Self {
        SloConfig {
            slo_ms: None,
            margin: d_margin(),
            max_request_utilization: d_util(),
            max_fit_error: d_err(),
            min_samples: d_samples(),
        }
    }
}

impl SloConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), PlanError> {
        let bad = |field: &str, reason: String| {
            Err(PlanError::InvalidConfig {
                workload: "*".into(),
                field: format!("planner.slo.{field}"),
                reason,
            })
        };
        if let Some(s) = self.slo_ms {
            if !(s.is_finite() && s > 0.0 && s <= MAX_SLO_MS) {
                return bad("slo_ms", format!("must be in (0, {MAX_SLO_MS}], got {s}"));
            }
        }
        if !(self.margin.is_finite() && (0.0..0.9).contains(&self.margin)) {
            return bad(
                "margin",
                format!("must be in [0, 0.9), got {}", self.margin),
            );
        }
        if !(self.max_request_utilization.is_finite()
            && self.max_request_utilization > 0.0
            && self.max_request_utilization <= 2.5)
        {
            return bad(
                "max_request_utilization",
                format!("must be in (0, 2.5], got {}", self.max_request_utilization),
            );
        }
        if !(self.max_fit_error.is_finite() && self.max_fit_error > 0.0) {
            return bad(
                "max_fit_error",
                format!("must be > 0, got {}", self.max_fit_error),
            );
        }
        if !(1..=100_000).contains(&self.min_samples) {
            return bad(
                "min_samples",
                format!("must be in 1..=100000, got {}", self.min_samples),
            );
        }
        Ok(())
    }
}

/// Synchronous visits per entry request: `visits[e][s]`, and for each (entry, service) the
/// caller on the heaviest path to it.
struct Paths {
    entries: Vec<usize>,
    visits: Vec<Vec<f64>>,
    parent: Vec<Vec<Option<usize>>>,
}

fn paths(
    graph: &AppGraph,
    inputs: &[ServiceInput],
    ratio: &dyn Fn(&str, &str, f64) -> f64,
) -> Paths {
    let n = inputs.len();
    let index: HashMap<&str, usize> = inputs
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let calls: Vec<(usize, usize, f64)> = graph
        .edges_of(Relation::Calls)
        .filter_map(|e| {
            let (a, b) = (*index.get(e.src.as_str())?, *index.get(e.dst.as_str())?);
            let r = ratio(&e.src, &e.dst, e.ratio);
            (r.is_finite() && r > 0.0 && a != b).then_some((a, b, r))
        })
        .collect();
    let entries: Vec<usize> = graph
        .entry_services()
        .into_iter()
        .filter_map(|e| index.get(e).copied())
        .collect();
    let mut visits = Vec::with_capacity(entries.len());
    let mut parent = Vec::with_capacity(entries.len());
    for &e in &entries {
        let mut total = vec![0.0; n];
        let mut best = vec![0.0f64; n];
        let mut par = vec![None; n];
        let mut wave = vec![0.0; n];
        wave[e] = 1.0;
        total[e] = 1.0;
        for _ in 0..MAX_DEPTH {
            let mut next = vec![0.0; n];
            for &(a, b, r) in &calls {
                if wave[a] > 0.0 {
                    let c = wave[a] * r;
                    next[b] += c;
                    if c > best[b] && b != e {
                        best[b] = c;
                        par[b] = Some(a);
                    }
                }
            }
            if next.iter().all(|v| *v <= 1e-12) {
                break;
            }
            for (t, v) in total.iter_mut().zip(&next) {
                *t += v;
            }
            wave = next;
        }
        visits.push(total);
        parent.push(par);
    }
    Paths {
        entries,
        visits,
        parent,
    }
}

impl Paths {
    /// `entry -> ... -> s` along the heaviest callers.
    fn path(&self, k: usize, s: usize, inputs: &[ServiceInput]) -> String {
        let mut out = vec![inputs[s].name.as_str()];
        let mut at = s;
        while let Some(p) = self.parent[k][at] {
            if out.len() > MAX_DEPTH {
                break;
            }
            out.push(inputs[p].name.as_str());
            at = p;
        }
        out.reverse();
        out.join(" -> ")
    }
}

/// Plans with the SLO planner; see the module docs.
pub fn plan_slo(
    cfg: &PlannerConfig,
    slo: &SloConfig,
    graph: &AppGraph,
    inputs: &[ServiceInput],
    ratio: &dyn Fn(&str, &str, f64) -> f64,
) -> Vec<ServicePlan> {
    let fallback = |why: String| {
        let mut plans = plan_per_service(cfg, graph, inputs, ratio);
        for p in &mut plans {
            p.reasons.push(Reason::new(
                "plan.slo_fallback",
                format!("per-service rule: {why}"),
            ));
        }
        plans
    };
    let Some(slo_ms) = slo.slo_ms.filter(|s| s.is_finite() && *s > 0.0) else {
        return fallback("no end-to-end SLO is set (planner.slo.slo_ms)".into());
    };
    let p = paths(graph, inputs, ratio);
    if p.entries.is_empty() {
        return fallback("the graph has no entry service".into());
    }
    let n = inputs.len();
    let on_path: Vec<bool> = (0..n)
        .map(|s| p.visits.iter().any(|v| v[s] > 0.0))
        .collect();
    let (eff, driver) = propagate(cfg, graph, inputs, ratio);
    // Per on-path service: (demand incl. backlog drain, CPU model, latency model, lower bound).
    struct Svc {
        lat: LatencyModel,
        demand: f64,
        lo: u32,
        hi: u32,
        util_lo: f64,
    }
    let mut svc: Vec<Option<Svc>> = Vec::with_capacity(n);
    for (i, s) in inputs.iter().enumerate() {
        if !on_path[i] {
            svc.push(None);
            continue;
        }
        if s.min_replicas > s.max_replicas {
            return fallback(format!(
                "`{}`: min replicas {} > max {}",
                s.name, s.min_replicas, s.max_replicas
            ));
        }
        let Some(d) = eff[i] else {
            return fallback(format!("`{}` has no usable forecast", s.name));
        };
        let Some(cpu) = s
            .cpu
            .filter(|m| m.cpu_ms_per_request.is_finite() && m.cpu_ms_per_request > 0.0)
        else {
            return fallback(format!("`{}`: CPU per request not learned yet", s.name));
        };
        let Some(lat) = s.latency else {
            return fallback(format!("`{}`: latency model not learned yet", s.name));
        };
        if lat.samples < slo.min_samples {
            return fallback(format!(
                "`{}`: latency model on {} steady samples (needs {})",
                s.name, lat.samples, slo.min_samples
            ));
        }
        if !(lat.rel_error.is_finite() && lat.rel_error <= slo.max_fit_error) {
            return fallback(format!(
                "`{}`: latency model fit error {:.0} % (at most {:.0} %)",
                s.name,
                lat.rel_error * 100.0,
                slo.max_fit_error * 100.0
            ));
        }
        if !(lat.mu.is_finite() && lat.mu > 0.0 && lat.base_ms.is_finite()) {
            return fallback(format!("`{}`: latency model not finite", s.name));
        }
        if !(s.requests.cpu_millicores.is_finite() && s.requests.cpu_millicores > 0.0) {
            return fallback(format!("`{}`: no CPU request", s.name));
        }
        let backlog = s
            .backlog
            .filter(|b| b.is_finite() && *b > 0.0)
            .map_or(0.0, |b| b / cfg.backlog_drain_s);
        let demand = d + backlog;
        let per = cpu.replica_rps(slo.max_request_utilization * s.requests.cpu_millicores);
        let by_cpu = (demand / per).ceil();
        let by_queue = (demand / lat.mu).floor() + 1.0;
        let mut hi = s.max_replicas;
        if let Some(capc) = cfg.service_cpu_cap_cores {
            hi = hi.min((capc * 1000.0 / s.requests.cpu_millicores).floor() as u32);
        }
        let hi = hi.max(s.min_replicas.min(s.max_replicas));
        let want = by_cpu.max(if demand > 0.0 { by_queue } else { 0.0 });
        let lo = if want.is_finite() {
            (want.clamp(0.0, u32::MAX as f64) as u32).clamp(s.min_replicas, hi)
        } else {
            hi
        };
        svc.push(Some(Svc {
            lat,
            demand,
            lo,
            hi,
            util_lo: demand / per.max(1e-12),
        }));
    }
    let mut c: Vec<u32> = svc.iter().map(|s| s.as_ref().map_or(0, |s| s.lo)).collect();
    // Services on no path have no latency budget (and no visits).
    let p95 =
        |i: usize, c: u32| -> f64 { svc[i].as_ref().map_or(0.0, |s| s.lat.p95_ms(c, s.demand)) };
    let e2e = |c: &[u32]| -> Vec<f64> {
        p.visits
            .iter()
            .map(|v| {
                (0..n)
                    .filter(|&s| v[s] > 0.0)
                    .map(|s| v[s] * p95(s, c[s]))
                    .sum()
            })
            .collect()
    };
    let budget = slo_ms * (1.0 - slo.margin);
    let mut infeasible: BTreeSet<usize> = BTreeSet::new();
    for _ in 0..MAX_STEPS {
        let pred = e2e(&c);
        let over: Vec<usize> = (0..p.entries.len()).filter(|&k| pred[k] > budget).collect();
        if over.is_empty() {
            break;
        }
        let mut best: Option<(f64, usize)> = None;
        for s in 0..n {
            let Some(sv) = &svc[s] else { continue };
            if c[s] >= sv.hi {
                continue;
            }
            let w: f64 = over.iter().map(|&k| p.visits[k][s]).sum();
            if w <= 0.0 {
                continue;
            }
            let (now, then) = (p95(s, c[s]), p95(s, c[s] + 1));
            let gain = if now.is_infinite() {
                f64::MAX
            } else if now - then > MIN_CUT * now {
                w * (now - then) / inputs[s].requests.cpu_millicores
            } else {
                0.0
            };
            if gain > 0.0 && best.is_none_or(|(g, _)| gain > g) {
                best = Some((gain, s));
            }
        }
        match best {
            Some((_, s)) => c[s] += 1,
            None => {
                infeasible.extend(over);
                break;
            }
        }
    }
    let pred = e2e(&c);
    // Services on no path keep the per-service rule's plan; the budgets then apply to all.
    let base = plan_each(cfg, inputs, &eff, &driver);
    let mut plans: Vec<ServicePlan> = base
        .into_iter()
        .enumerate()
        .map(|(i, bp)| {
            let Some(sv) = &svc[i] else { return bp };
            let s = &inputs[i];
            let lat = sv.lat;
            // The entry this service's replicas answer to: the one nearest its budget.
            let Some(k) = (0..p.entries.len())
                .filter(|&k| p.visits[k][i] > 0.0)
                .max_by(|&a, &b| pred[a].total_cmp(&pred[b]))
            else {
                return bp;
            };
            let here = p95(i, c[i]);
            let mut reasons = vec![Reason::new(
                "plan.slo",
                format!(
                    "{} replicas for {:.1} rps: CPU at {:.0} % of the request (at most {:.0} %), p95 here {here:.1} ms (off-CPU {:.1} ms + M/M/{} at {:.1} rps per replica, fit error {:.0} % on {} samples); {:.2} visits per request of entry `{}` (path {}) spend {:.1} ms of its end-to-end p95 budget: predicted {:.1} ms of {budget:.0} ms (SLO {slo_ms:.0} ms less {:.0} % margin){}",
                    c[i],
                    sv.demand,
                    100.0 * slo.max_request_utilization * sv.util_lo / (c[i].max(1) as f64),
                    slo.max_request_utilization * 100.0,
                    lat.base_ms,
                    c[i],
                    lat.mu,
                    lat.rel_error * 100.0,
                    lat.samples,
                    p.visits[k][i],
                    inputs[p.entries[k]].name,
                    p.path(k, i, inputs),
                    p.visits[k][i] * here,
                    pred[k],
                    slo.margin * 100.0,
                    driver[i]
                        .map(|d| format!("; demand propagated from upstream `{}`", inputs[d].name))
                        .unwrap_or_default(),
                ),
            )];
            if c[i] > sv.lo {
                reasons.push(Reason::new(
                    "plan.slo_latency",
                    format!(
                        "{} replicas above the {} its CPU needs, for the end-to-end p95",
                        c[i] - sv.lo,
                        sv.lo
                    ),
                ));
            }
            if infeasible.contains(&k) {
                reasons.push(Reason::new(
                    "plan.slo_infeasible",
                    format!(
                        "entry `{}` is predicted over its budget even at the replica caps",
                        inputs[p.entries[k]].name
                    ),
                ));
            }
            ServicePlan {
                name: s.name.clone(),
                replicas: Some(c[i]),
                demand_rps: Some(sv.demand),
                driven_by: driver[i].map(|d| inputs[d].name.clone()),
                reasons,
            }
        })
        .collect();
    apply_budgets(cfg, inputs, &mut plans);
    plans
}

#[cfg(test)]
mod tests;
