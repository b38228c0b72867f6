//! `POST /v1/predict`: a graph model's forecast for every service of a recent series, and the
//! planner's replicas with their reasons.

use std::collections::BTreeMap;

use graphscale_core::{GraphSeries, Metric, Reason, Resources};
use graphscale_nn::graphmodel::{GraphModel, ServicePrediction};
use graphscale_plan::learn::CpuEstimator;
use graphscale_plan::planner::{plan, PlannerConfig, ServiceInput, ServicePlan};
use serde::{Deserialize, Serialize};

use crate::models::Models;
use crate::ApiError;

/// The quantiles a graph model predicts.
pub const QUANTILES: [f64; 3] = [0.1, 0.5, 0.9];
/// Most replicas a plan may ask for (the simulator's bound on an app).
pub const MAX_REPLICAS: u32 = 10_000;
/// Largest CPU request of one pod, millicores (1,000 cores).
pub const MAX_CPU_REQUEST_M: f64 = 1e6;
/// Largest memory request of one pod, MiB (10 TiB).
pub const MAX_MEMORY_REQUEST_MIB: f64 = 1e7;

fn d_quantile() -> f64 {
    0.9
}

/// A prediction request.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// A model named by `GET /v1/models`.
    pub model: String,
    /// The recent history: a `GraphSeries`, version 1 (docs/schema.md), on the model's graph,
    /// with at least the model's window of points; the newest are used.
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub series: GraphSeries,
    /// The forecast quantile the plan provisions for: 0.1, 0.5 or 0.9; default 0.9.
    #[serde(default = "d_quantile")]
    pub quantile: f64,
    /// What the plan needs to know of each service, by service name (optional).
    #[serde(default)]
    pub services: BTreeMap<String, ServiceFacts>,
    /// Planner settings (docs/planner.md); default the planner's defaults.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub planner: Option<PlannerConfig>,
}

/// What the plan knows of one service.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceFacts {
    /// One pod's CPU request, millicores. Without it the service has a forecast but no plan
    /// (`plan.no_requests`).
    pub cpu_request_millicores: Option<f64>,
    /// One pod's memory request, MiB; default 0 (not planned).
    pub memory_request_mib: Option<f64>,
    /// Replicas now; default the series' newest `replicas_ready`, else `replicas_desired`.
    pub current: Option<u32>,
    /// Fewest replicas; default 1.
    pub min_replicas: Option<u32>,
    /// Most replicas; default 10,000.
    pub max_replicas: Option<u32>,
}

/// Values at the 0.1, 0.5 and 0.9 quantiles.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Band {
    /// 0.1 quantile.
    pub p10: f64,
    /// Median.
    pub p50: f64,
    /// 0.9 quantile.
    pub p90: f64,
}

impl From<[f64; 3]> for Band {
    fn from(v: [f64; 3]) -> Self {
        Band {
            p10: v[0],
            p50: v[1],
            p90: v[2],
        }
    }
}

/// One service's forecast at one step ahead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Forecast {
    /// Service.
    pub service: String,
    /// Steps ahead, from 1.
    pub step: usize,
    /// Seconds ahead of the newest point.
    pub ahead_s: f64,
    /// Requests per second arriving.
    pub rps: Band,
    /// CPU used, millicores, summed over pods.
    pub cpu_millicores: Band,
    /// Memory used, MiB, summed over pods.
    pub memory_mib: Band,
    /// Replicas the model predicts the service will have.
    pub replicas: u32,
}

impl From<ServicePrediction> for Forecast {
    fn from(p: ServicePrediction) -> Self {
        Forecast {
            service: p.service,
            step: p.step,
            ahead_s: p.ahead_s,
            rps: p.rps.into(),
            cpu_millicores: p.cpu_m.into(),
            memory_mib: p.memory_mib.into(),
            replicas: p.replicas,
        }
    }
}

/// Why a plan is what it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReasonBody {
    /// Stable name of the rule (`plan.demand`, `plan.no_requests`, ...).
    pub rule: String,
    /// The values involved.
    pub detail: String,
}

impl From<Reason> for ReasonBody {
    fn from(r: Reason) -> Self {
        ReasonBody {
            rule: r.rule,
            detail: r.detail,
        }
    }
}

/// The plan for one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlanEntry {
    /// Service.
    pub service: String,
    /// Replicas now (given, or read from the series).
    pub current: Option<u32>,
    /// Replicas the plan wants; absent when it cannot say (the reasons say why).
    pub replicas: Option<u32>,
    /// Demand planned for, requests per second (own forecast or propagated from callers).
    pub demand_rps: Option<f64>,
    /// The caller whose demand drove the plan, when propagation won.
    pub driven_by: Option<String>,
    /// CPU one request costs, ms of one core, fitted on the series.
    pub cpu_ms_per_request: Option<f64>,
    /// Why.
    pub reasons: Vec<ReasonBody>,
}

/// A prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PredictResponse {
    /// The model used.
    pub model: String,
    /// Its network.
    pub kind: String,
    /// Step of the forecast, seconds.
    pub step_s: f64,
    /// The quantile the plan provisions for.
    pub quantile: f64,
    /// Every service at every step ahead.
    pub forecasts: Vec<Forecast>,
    /// Every service's plan.
    pub plan: Vec<PlanEntry>,
}

fn newest(s: &GraphSeries, node: &str, m: Metric) -> Option<f64> {
    s.nodes
        .get(node)?
        .get(&m)?
        .iter()
        .rev()
        .copied()
        .find(|x| x.is_finite())
}

fn check_facts(name: &str, f: &ServiceFacts) -> Result<(), ApiError> {
    let field = |k: &str| format!("services.{name}.{k}");
    if let Some(c) = f.cpu_request_millicores {
        if !(c.is_finite() && c > 0.0 && c <= MAX_CPU_REQUEST_M) {
            return Err(ApiError::invalid(
                field("cpu_request_millicores"),
                format!("must be in (0, {MAX_CPU_REQUEST_M}], got {c}"),
            ));
        }
    }
    if let Some(m) = f.memory_request_mib {
        if !(m.is_finite() && (0.0..=MAX_MEMORY_REQUEST_MIB).contains(&m)) {
            return Err(ApiError::invalid(
                field("memory_request_mib"),
                format!("must be in 0..={MAX_MEMORY_REQUEST_MIB}, got {m}"),
            ));
        }
    }
    for (k, v) in [
        ("current", f.current),
        ("min_replicas", f.min_replicas),
        ("max_replicas", f.max_replicas),
    ] {
        if let Some(v) = v.filter(|v| *v > MAX_REPLICAS) {
            return Err(ApiError::invalid(
                field(k),
                format!("must be at most {MAX_REPLICAS}, got {v}"),
            ));
        }
    }
    let (lo, hi) = (
        f.min_replicas.unwrap_or(1),
        f.max_replicas.unwrap_or(MAX_REPLICAS),
    );
    if lo > hi {
        return Err(ApiError::invalid(
            field("min_replicas"),
            format!("min_replicas {lo} is above max_replicas {hi}"),
        ));
    }
    Ok(())
}

/// Checks `req` against `m` (named `name`), predicts and plans. Pure: no I/O, no clock.
pub fn predict_with(
    name: &str,
    m: &GraphModel,
    req: &PredictRequest,
) -> Result<PredictResponse, ApiError> {
    let q = QUANTILES
        .iter()
        .position(|q| (q - req.quantile).abs() < 1e-9)
        .ok_or_else(|| {
            ApiError::invalid(
                "quantile",
                format!("must be 0.1, 0.5 or 0.9, got {}", req.quantile),
            )
        })?;
    let cfg = req.planner.clone().unwrap_or_default();
    cfg.validate()
        .map_err(|e| ApiError::invalid("planner", e.to_string()))?;
    req.series
        .validate()
        .map_err(|e| ApiError::invalid("series", e.to_string()))?;
    let services = crate::models::services(m);
    for (k, f) in &req.services {
        if !services.contains(k) {
            return Err(ApiError::invalid(
                format!("services.{}", graphscale_core::error::quote(k)),
                format!("not a service of model `{name}`'s graph"),
            ));
        }
        check_facts(k, f)?;
    }
    let preds = m.predict_series(&req.series)?;
    // The demand to provision for: the chosen quantile's peak over the model's horizon.
    let mut demand: BTreeMap<&str, f64> = BTreeMap::new();
    for p in &preds {
        let v = p.rps[q];
        if v.is_finite() {
            let d = demand.entry(p.service.as_str()).or_insert(0.0);
            *d = d.max(v.max(0.0));
        }
    }
    let none = ServiceFacts::default();
    let mut inputs = Vec::new();
    // Per service: replicas now, CPU per request, and the reasons found before planning.
    type Known = (Option<u32>, Option<f64>, Vec<Reason>);
    let mut extra: BTreeMap<String, Known> = BTreeMap::new();
    for s in &services {
        let f = req.services.get(s).unwrap_or(&none);
        let current = f.current.or_else(|| {
            newest(&req.series, s, Metric::ReplicasReady)
                .or_else(|| newest(&req.series, s, Metric::ReplicasDesired))
                .filter(|r| (0.0..=f64::from(MAX_REPLICAS)).contains(r))
                .map(|r| r.round() as u32)
        });
        let mut est = CpuEstimator::new(req.series.len.max(2));
        let node = req.series.nodes.get(s);
        let col = |m: Metric| node.and_then(|n| n.get(&m));
        if let (Some(ready), Some(rps), Some(cpu)) = (
            col(Metric::ReplicasReady),
            col(Metric::Rps),
            col(Metric::CpuMillicores),
        ) {
            for t in 0..req.series.len {
                est.push(ready[t], rps[t], cpu[t]);
            }
        }
        let cpu = est.model();
        let mut reasons = Vec::new();
        let Some(cpu_req) = f.cpu_request_millicores else {
            reasons.push(Reason::new(
                "plan.no_requests",
                format!("no `services.{s}.cpu_request_millicores` given: a forecast, no plan"),
            ));
            extra.insert(
                s.clone(),
                (current, cpu.map(|c| c.cpu_ms_per_request), reasons),
            );
            continue;
        };
        let Some(cur) = current else {
            reasons.push(Reason::new(
                "plan.no_current",
                format!(
                    "the series has no replicas for `{s}` and `services.{s}.current` is not given"
                ),
            ));
            extra.insert(
                s.clone(),
                (None, cpu.map(|c| c.cpu_ms_per_request), reasons),
            );
            continue;
        };
        extra.insert(
            s.clone(),
            (Some(cur), cpu.map(|c| c.cpu_ms_per_request), reasons),
        );
        inputs.push(ServiceInput {
            name: s.clone(),
            current: cur,
            min_replicas: f.min_replicas.unwrap_or(1),
            max_replicas: f.max_replicas.unwrap_or(MAX_REPLICAS),
            demand_rps: demand.get(s.as_str()).copied(),
            backlog: newest(&req.series, s, Metric::Backlog),
            cpu,
            latency: None,
            requests: Resources::new(cpu_req, f.memory_request_mib.unwrap_or(0.0)),
        });
    }
    let planned: BTreeMap<String, ServicePlan> = plan(&cfg, &m.graph, &inputs, &|_, _, r| r)
        .into_iter()
        .map(|p| (p.name.clone(), p))
        .collect();
    let plan = services
        .iter()
        .map(|s| {
            let (current, cost, mut reasons) = extra.remove(s).unwrap_or_default();
            let p = planned.get(s);
            reasons.extend(p.map(|p| p.reasons.clone()).unwrap_or_default());
            PlanEntry {
                service: s.clone(),
                current,
                replicas: p.and_then(|p| p.replicas),
                demand_rps: p
                    .and_then(|p| p.demand_rps)
                    .or(demand.get(s.as_str()).copied()),
                driven_by: p.and_then(|p| p.driven_by.clone()),
                cpu_ms_per_request: cost,
                reasons: reasons.into_iter().map(ReasonBody::from).collect(),
            }
        })
        .collect();
    Ok(PredictResponse {
        model: name.to_string(),
        kind: m.kind.name().to_string(),
        step_s: m.step_ms as f64 / 1000.0,
        quantile: QUANTILES[q],
        forecasts: preds.into_iter().map(Forecast::from).collect(),
        plan,
    })
}

/// [`predict_with`] on the model `req.model` of `models`.
pub fn predict(models: &Models, req: &PredictRequest) -> Result<PredictResponse, ApiError> {
    crate::models::check_name(&req.model, "model")?;
    let m = models.get(&req.model)?;
    predict_with(&req.model, &m, req)
}
