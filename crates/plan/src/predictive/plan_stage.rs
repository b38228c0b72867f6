//! The plan stage of the predictive autoscaler: the demand of every service becomes replicas
//! for the whole graph at once ([`crate::planner::plan`]), raised to the CPU floor, with the
//! vertical recommender's memory resize, and with the action cost on ([`crate::churn`]) a
//! scale-down held to what the demand over the break-even time needs (the planner runs a
//! second time on that demand); the result is a [`WorkloadPlan`] per workload for the safety
//! layer.

use graphscale_core::{AppGraph, ClusterSnapshot, PodPhase, Reason, WorkloadObservation};

use super::analyze::Analysis;
use super::PredictiveAutoscaler;
use crate::churn::{hold_down, raise_up, DownCheck};
use crate::cpu_request::{CpuNeed, CpuRequestConfig};
use crate::guarded::WorkloadPlan;
use crate::learn::past_startup;
use crate::planner::{plan, ServiceInput};
use crate::safety::Proposal;

/// Plans every workload of `snapshot` from `analysis`.
pub fn plan_workloads(
    a: &mut PredictiveAutoscaler,
    snapshot: &ClusterSnapshot,
    graph: &AppGraph,
    analysis: Analysis,
) -> Vec<WorkloadPlan> {
    let cfg = &a.cfg;
    let inputs: Vec<ServiceInput> = snapshot
        .workloads
        .iter()
        .zip(&analysis.demands)
        .map(|(w, d)| ServiceInput {
            name: w.name.clone(),
            current: w.spec_replicas,
            min_replicas: cfg.safety.min_replicas,
            max_replicas: cfg.safety.max_replicas,
            demand_rps: d.demand,
            backlog: w.backlog,
            cpu: a.services.get(&w.name).and_then(|s| s.cpu.model()),
            latency: a
                .services
                .get_mut(&w.name)
                .filter(|_| cfg.planner.slo.is_some())
                .and_then(|s| {
                    // The CPU prior: a replica serves its CPU limit's worth of requests.
                    let prior = match (s.cpu.model(), w.pods.first()) {
                        (Some(m), Some(p)) if p.limits.cpu_millicores > 0.0 => {
                            Some(p.limits.cpu_millicores / m.cpu_ms_per_request)
                        }
                        _ => None,
                    };
                    s.latency.model_every(prior, 4)
                }),
            requests: {
                let mut r = w.pods.first().map(|p| p.requests).unwrap_or_default();
                // With CPU requests sized here, replicas are planned on the reference request.
                if let Some(c) = a.services.get(&w.name).and_then(|s| s.cpu_reference) {
                    r.cpu_millicores = c;
                }
                r
            },
        })
        .collect();
    let ratios = &a.ratios;
    let ratio = |x: &str, y: &str, r: f64| ratios.ratio(x, y).unwrap_or(r);
    let plans = plan(&cfg.planner, graph, &inputs, &ratio);
    // The action cost's forward test: the same graph planned at the held demand.
    let hold_plans: Vec<Option<u32>> = match &cfg.churn {
        Some(_) => {
            let held: Vec<ServiceInput> = inputs
                .iter()
                .zip(&analysis.demands)
                .map(|(i, d)| ServiceInput {
                    demand_rps: d.hold.map(|h| h.0),
                    ..i.clone()
                })
                .collect();
            plan(&cfg.planner, graph, &held, &ratio)
                .into_iter()
                .map(|p| p.replicas)
                .collect()
        }
        None => vec![None; plans.len()],
    };
    let mut out = Vec::with_capacity(plans.len());
    for (((w, d), pl), hold_plan) in snapshot
        .workloads
        .iter()
        .zip(analysis.demands)
        .zip(plans)
        .zip(hold_plans)
    {
        let mut reasons = d.reasons;
        reasons.extend(pl.reasons);
        let mut replicas = pl.replicas;
        if let (Some(r), Some(f)) = (replicas, d.cpu_floor) {
            if f > r {
                reasons.push(Reason::new(
                    "plan.cpu_floor",
                    format!(
                        "the ready pods' CPU needs {f} replicas at {:.0} % of the request (plan said {r})",
                        cfg.planner.floor_utilization() * 100.0
                    ),
                ));
                replicas = Some(f.min(cfg.safety.max_replicas));
            }
        }
        if let (Some(all), Some(r), Some(st)) = (&cfg.churn, replicas, a.services.get_mut(&w.name))
        {
            // The plans are kept for the longest window; the window and the steps are this
            // service's (memory-aware holds, `ChurnConfig::for_pod`).
            st.plans.record(snapshot.time, r, all.confirm_s);
            let c = &match all.node_gib_per_core {
                Some(_) => {
                    let (held, full) = pod_costs(w, st.cpu_reference, cfg.cpu_requests.as_ref());
                    all.for_pod(held, full)
                }
                None => all.clone(),
            };
            let check = DownCheck {
                current: w.spec_replicas,
                plan: r,
                hold_plan,
                recent_max: st.plans.max_since(snapshot.time, c.confirm_s),
                hold_rps: d.hold.map(|h| h.0),
                horizon_s: d.hold.map_or(0.0, |h| h.1),
                break_even_s: st.break_even_s(c),
            };
            let (n, why) = if r > w.spec_replicas {
                raise_up(c, w.spec_replicas, r)
            } else {
                hold_down(c, &check)
            };
            reasons.extend(why);
            replicas = Some(n);
        }
        let mut resize = None;
        let mut cpu = None;
        if let Some(st) = a.services.get_mut(&w.name) {
            if let (Some(_), Some(m), Some(dm), Some(reference), Some(p)) = (
                &cfg.cpu_requests,
                st.cpu.model(),
                pl.demand_rps,
                st.cpu_reference,
                w.pods.first(),
            ) {
                // The largest request among the pods: on a cluster a new pod starts at the
                // template's (the reference) and is sized by the next resize.
                let current = w
                    .pods
                    .iter()
                    .map(|q| q.requests.cpu_millicores)
                    .fold(p.requests.cpu_millicores, f64::max);
                cpu = Some(CpuNeed {
                    reference_mc: reference,
                    current_mc: current,
                    idle_mc: m.idle_millicores,
                    cpu_ms_per_request: m.cpu_ms_per_request,
                    demand_rps: dm,
                    used_per_pod_mc: used_per_pod(w),
                });
            }
            let planned_cpu = match (pl.demand_rps, replicas, st.cpu.model()) {
                (Some(dm), Some(r), Some(m)) if r > 0 => {
                    Some(m.idle_millicores + m.cpu_ms_per_request * dm / r as f64)
                }
                _ => None,
            };
            st.recommendation = st.vertical.recommend(&cfg.vertical, planned_cpu);
            resize = st
                .recommendation
                .and_then(|r| st.vertical.update(&cfg.vertical, &r))
                .map(|(to, why)| (to, Reason::new("vertical.resize", why)));
        }
        out.push(WorkloadPlan {
            workload: w.name.clone(),
            proposal: Proposal {
                replicas,
                relative_width: d.relative_width,
                reasons,
                hpa_rule: None,
            },
            health: Some(d.health),
            resize,
            cpu,
        });
    }
    out
}

/// What one more pod of `w` adds and what a full pod holds, (CPU millicores, memory MiB), for
/// the memory-aware holds: with CPU requests sized to the plan the pods share the demand, so
/// the extra one adds about the least request; its memory it adds whole. A full pod holds the
/// reference CPU request.
fn pod_costs(
    w: &WorkloadObservation,
    reference_mc: Option<f64>,
    sized: Option<&CpuRequestConfig>,
) -> ((f64, f64), (f64, f64)) {
    let (cpu, mem) = w.pods.iter().fold((0.0_f64, 0.0_f64), |(c, m), p| {
        (
            c.max(p.requests.cpu_millicores),
            m.max(p.requests.memory_mib),
        )
    });
    let full = (reference_mc.unwrap_or(cpu).max(cpu), mem);
    let held = match sized {
        Some(r) => (r.min_millicores.min(full.0), mem),
        None => full,
    };
    (held, full)
}

/// Mean CPU of the ready pods whose sample is past their start-up (two sample windows after
/// the Ready transition, as the CPU model's samples), millicores.
fn used_per_pod(w: &WorkloadObservation) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for p in &w.pods {
        if p.ready != Some(true) || p.deleting || p.phase != PodPhase::Running {
            continue;
        }
        let Some(c) = p
            .cpu
            .filter(|c| c.millicores.is_finite() && c.millicores >= 0.0)
        else {
            continue;
        };
        if past_startup(p, &c) {
            sum += c.millicores;
            n += 1;
        }
    }
    (n > 0).then(|| sum / n as f64)
}
