//! The predictive autoscaler: a forecaster per service + the [`crate::planner`] + the
//! [`crate::safety`] layer, behind the same [`Autoscaler`] seam as the HPA.
//!
//! Each decision, per service: the observed request rate joins its history (one sample per
//! sync period); the model forecasts the next `lead` steps, where the lead is the pods'
//! learned start-up time plus one sync period; the `slo_target` quantile of the demand comes
//! from the forecast and the model's own recent relative errors at that lead (median plus
//! the normal quantile times the MAD-based spread, robust to the few huge errors of a flash
//! crowd, capped at `max_uplift`); demand that falls is smoothed. The planner turns demand into replicas with
//! the learned CPU model and call ratios; the CPU-usage floor keeps the plan from going below
//! what the pods use now; the safety layer has the last word, falling back to the HPA rule
//! when the model is unhealthy.

use std::collections::{BTreeMap, VecDeque};

use graphscale_core::{
    AppGraph, Autoscaler, ClusterSnapshot, FittedForecaster, Forecaster, JointForecaster, Millis,
    NoForecast, PodPhase, Reason, ScalingDecision, WorkloadObservation,
};
use serde::{Deserialize, Serialize};

use crate::hpa::{Hpa, HpaControllerConfig, HpaSpec, MetricTarget};
use crate::learn::{CpuEstimator, RatioEstimator, StartupEstimator};
use crate::planner::{plan, PlannerConfig, ServiceInput};
use crate::safety::{guard, Health, Proposal, SafetyConfig, SafetyState};
use crate::vertical::{ResourceRecommendation, VerticalConfig, VerticalRecommender};
use crate::PlanError;

/// Settings of a predictive autoscaler; every field has a documented default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PredictiveConfig {
    /// Seconds between decisions (and between history samples); default 15.
    pub sync_period_s: u64,
    /// History samples the model is fitted on; default 240 (one hour at 15 s).
    pub history: usize,
    /// Below this many samples the plan uses the observed rate (persistence); default 8.
    pub min_history: usize,
    /// Refit the model every this many decisions, forecasting further ahead in between;
    /// default 1.
    pub refit_every: usize,
    /// Share of time the SLO must hold; the demand quantile provisioned for; default 0.95.
    pub slo_target: f64,
    /// Lead time in seconds; `None` (default) learns it from the pods' observed start-up
    /// (30 s until one is observed).
    pub lead_time_s: Option<f64>,
    /// Falling demand is smoothed with this weight on the new value; default 0.7 (rising
    /// demand is taken at once).
    pub smoothing_down: f64,
    /// A CPU sample older than this is stale, seconds; default 60.
    pub stale_after_s: f64,
    /// Largest uplift of the forecast by its recent relative errors (the conformal quantile is
    /// capped here, so one flash crowd does not inflate every later plan); default 0.1 (with the
    /// headroom and the surge estimate on top, larger caps cost 5-20 % more CPU under a
    /// fluctuating load for no fewer violations, docs/benchmarks.md).
    pub max_uplift: f64,
    /// Never plan fewer replicas than the current CPU usage needs at the target utilisation;
    /// default true.
    pub cpu_floor: bool,
    /// CPU target of the reactive HPA rule used as the fallback, percent; default 80.
    pub fallback_cpu_percent: u32,
    /// Range of the observed request rate, seconds: the `rate()` window of the Prometheus
    /// query (`$window`, default 1m) or the simulator's `rate_window_s`; default 60. A windowed
    /// rate lags a surge by half its window, so the newest sync period's rate is recovered
    /// from consecutive windowed rates (`surge_rps`, docs/planner.md) and planned for when it is
    /// higher. 0, or a window not longer than the sync period, turns this off.
    pub rate_window_s: f64,
    /// A surge is a newest-period rate above the windowed rate by more than this share of it;
    /// default 0.2 (well above the noise of a steady load's period-to-period rate). A surge is
    /// extrapolated over the lead time at the slope between the window's midpoint and now.
    pub surge_threshold: f64,
    /// Planner settings.
    pub planner: PlannerConfig,
    /// Safety settings.
    pub safety: SafetyConfig,
    /// Vertical recommender settings.
    pub vertical: VerticalConfig,
}

impl Default for PredictiveConfig {
    fn default() -> Self {
        PredictiveConfig {
            sync_period_s: 15,
            history: 240,
            min_history: 8,
            refit_every: 1,
            slo_target: 0.95,
            lead_time_s: None,
            smoothing_down: 0.7,
            max_uplift: 0.1,
            stale_after_s: 60.0,
            cpu_floor: true,
            fallback_cpu_percent: 80,
            rate_window_s: 60.0,
            surge_threshold: 0.2,
            planner: PlannerConfig::default(),
            safety: SafetyConfig::default(),
            vertical: VerticalConfig::default(),
        }
    }
}

impl PredictiveConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), PlanError> {
        let bad = |field: &str, reason: String| {
            Err(PlanError::InvalidConfig {
                workload: "*".into(),
                field: field.to_string(),
                reason,
            })
        };
        if self.sync_period_s == 0 {
            return bad("sync_period_s", "must be > 0".into());
        }
        if self.history < 2 || self.min_history < 2 || self.min_history > self.history {
            return bad(
                "history",
                format!(
                    "need 2 <= min_history ({}) <= history ({})",
                    self.min_history, self.history
                ),
            );
        }
        if self.refit_every == 0 {
            return bad("refit_every", "must be >= 1".into());
        }
        if !(self.slo_target > 0.5 && self.slo_target < 1.0) {
            return bad(
                "slo_target",
                format!("must be in (0.5, 1), got {}", self.slo_target),
            );
        }
        if let Some(l) = self.lead_time_s {
            if !(l.is_finite() && (0.0..=3600.0).contains(&l)) {
                return bad("lead_time_s", format!("must be in 0..=3600, got {l}"));
            }
        }
        if !(self.smoothing_down > 0.0 && self.smoothing_down <= 1.0) {
            return bad(
                "smoothing_down",
                format!("must be in (0, 1], got {}", self.smoothing_down),
            );
        }
        if !(self.max_uplift.is_finite() && (0.0..=10.0).contains(&self.max_uplift)) {
            return bad(
                "max_uplift",
                format!("must be in 0..=10, got {}", self.max_uplift),
            );
        }
        if !(self.rate_window_s.is_finite() && (0.0..=3600.0).contains(&self.rate_window_s)) {
            return bad(
                "rate_window_s",
                format!("must be in 0..=3600, got {}", self.rate_window_s),
            );
        }
        if !(self.surge_threshold.is_finite() && (0.0..=10.0).contains(&self.surge_threshold)) {
            return bad(
                "surge_threshold",
                format!("must be in 0..=10, got {}", self.surge_threshold),
            );
        }
        if !(self.stale_after_s.is_finite() && self.stale_after_s > 0.0) {
            return bad("stale_after_s", "must be > 0".into());
        }
        if self.fallback_cpu_percent == 0 {
            return bad("fallback_cpu_percent", "must be > 0".into());
        }
        self.planner.validate()?;
        self.safety.validate()?;
        self.fallback_spec().validate("*")
    }

    fn fallback_spec(&self) -> HpaSpec {
        HpaSpec {
            min_replicas: self.safety.min_replicas,
            max_replicas: self.safety.max_replicas,
            metrics: vec![MetricTarget::CpuUtilization {
                target_percent: self.fallback_cpu_percent,
            }],
            ..HpaSpec::default()
        }
    }
}

struct ServiceState {
    history: VecDeque<f64>,
    /// The last windowed rates, one per decision (`None`: missing), newest last.
    recent: VecDeque<Option<f64>>,
    cpu: CpuEstimator,
    startup: StartupEstimator,
    safety: SafetyState,
    vertical: VerticalRecommender,
    hpa: Hpa,
    fitted: Option<Box<dyn FittedForecaster>>,
    since_fit: usize,
    /// (decision index when due, predicted value)
    pending: VecDeque<(u64, f64)>,
    /// Relative errors (actual - predicted) / predicted at the lead, for the quantiles.
    residuals: VecDeque<f64>,
    /// Absolute relative errors, for health.
    abs_errors: VecDeque<f64>,
    smoothed: Option<f64>,
    recommendation: Option<ResourceRecommendation>,
}

/// A forecaster + planner + safety autoscaler. See the module documentation.
pub struct PredictiveAutoscaler {
    name: String,
    cfg: PredictiveConfig,
    model: Box<dyn Forecaster>,
    /// A graph model forecasting every service at once; when set, it replaces `model`.
    joint: Option<Box<dyn JointForecaster>>,
    services: BTreeMap<String, ServiceState>,
    ratios: RatioEstimator,
    decisions: u64,
}

impl std::fmt::Debug for PredictiveAutoscaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PredictiveAutoscaler")
            .field("name", &self.name)
            .field("model", &self.model.name())
            .field("cfg", &self.cfg)
            .finish()
    }
}

const RESIDUALS: usize = 240;
/// Steps a joint model is asked for (its own horizon may be shorter).
const JOINT_HORIZON: usize = 16;

/// The per-service model slot of an autoscaler driven by a joint model: never fitted.
struct PersistenceModel;

impl Forecaster for PersistenceModel {
    fn name(&self) -> String {
        "persistence".into()
    }

    fn fit(
        &self,
        _y: &[f64],
    ) -> Result<Box<dyn FittedForecaster>, graphscale_core::ForecastFailure> {
        Err(graphscale_core::ForecastFailure::new(
            "persistence",
            "this autoscaler forecasts with its graph model",
        ))
    }
}
const ERRORS: usize = 8;

impl PredictiveAutoscaler {
    /// A predictive autoscaler with `model` for every service. Validates the config.
    pub fn new(
        name: impl Into<String>,
        model: Box<dyn Forecaster>,
        cfg: PredictiveConfig,
    ) -> Result<Self, PlanError> {
        cfg.validate()?;
        Ok(PredictiveAutoscaler {
            name: name.into(),
            cfg,
            model,
            joint: None,
            services: BTreeMap::new(),
            ratios: RatioEstimator::new(0.2),
            decisions: 0,
        })
    }

    /// A predictive autoscaler whose demand comes from `joint`, a model of the whole graph
    /// (`min_history` and `refit_every` are the joint model's business). Validates the config.
    pub fn with_joint(
        name: impl Into<String>,
        joint: Box<dyn JointForecaster>,
        cfg: PredictiveConfig,
    ) -> Result<Self, PlanError> {
        let mut a = Self::new(name, Box::new(PersistenceModel), cfg)?;
        a.joint = Some(joint);
        Ok(a)
    }

    /// The latest vertical recommendation per service.
    pub fn recommendations(&self) -> BTreeMap<String, ResourceRecommendation> {
        self.services
            .iter()
            .filter_map(|(k, s)| s.recommendation.map(|r| (k.clone(), r)))
            .collect()
    }
}

/// The rate of the newest sync period, recovered from windowed rates `R` taken one sync period
/// apart over a window of `w` periods (`recent` holds `R[k-w] ..= R[k]`, newest last).
///
/// `w (R[k] - R[k-1])` is the newest period's mean rate minus that of the period that just
/// left the window; that older period is estimated by `R[k-w]`, the window that ended when it
/// did. So `R[k-w] + w (R[k] - R[k-1])`: exact for a rate that was steady a window ago, and
/// only ever used when it is above what is planned anyway (a surge). `None` when a sample is
/// missing or the estimate is not finite.
pub fn surge_rps(recent: &VecDeque<Option<f64>>, w: usize) -> Option<f64> {
    if w < 2 || recent.len() < w + 1 {
        return None;
    }
    let n = recent.len();
    let now = recent[n - 1]?;
    let before = recent[n - 2]?;
    let old = recent[n - 1 - w]?;
    let est = old + w as f64 * (now - before);
    (est.is_finite() && est > 0.0).then_some(est)
}

fn new_state(cfg: &PredictiveConfig) -> ServiceState {
    ServiceState {
        history: VecDeque::new(),
        recent: VecDeque::new(),
        cpu: CpuEstimator::new(40),
        startup: StartupEstimator::default(),
        safety: SafetyState::default(),
        vertical: VerticalRecommender::default(),
        hpa: Hpa::new(
            HpaControllerConfig {
                sync_period_s: cfg.sync_period_s,
                ..HpaControllerConfig::default()
            },
            cfg.fallback_spec(),
        ),
        fitted: None,
        since_fit: 0,
        pending: VecDeque::new(),
        residuals: VecDeque::new(),
        abs_errors: VecDeque::new(),
        smoothed: None,
        recommendation: None,
    }
}

/// Per-service facts gathered before planning.
struct Prepared {
    demand: Option<f64>,
    relative_width: Option<f64>,
    health: Health,
    reasons: Vec<Reason>,
    cpu_floor: Option<u32>,
    hpa_rule: (u32, String),
}

fn health_of(cfg: &PredictiveConfig, now: Millis, w: &WorkloadObservation) -> Health {
    let mut h = Health::default();
    match w.rps {
        None => h.missing = Some("request rate".into()),
        Some(r) if !r.is_finite() || r < 0.0 => h.missing = Some(format!("request rate is {r}")),
        _ => {}
    }
    let ready: Vec<_> = w
        .pods
        .iter()
        .filter(|p| p.ready == Some(true) && p.phase == PodPhase::Running && !p.deleting)
        .collect();
    if !ready.is_empty() {
        let newest = ready
            .iter()
            .filter_map(|p| p.cpu)
            .map(|c| c.timestamp)
            .max();
        match newest {
            None => {
                h.missing
                    .get_or_insert_with(|| "CPU samples of every ready pod".into());
            }
            Some(t) => {
                let age = now.saturating_sub(t).as_secs_f64();
                if age > cfg.stale_after_s {
                    h.stale = Some(format!(
                        "newest CPU sample {age:.0} s old > {:.0} s",
                        cfg.stale_after_s
                    ));
                }
            }
        }
    }
    h
}

impl Autoscaler for PredictiveAutoscaler {
    fn name(&self) -> &str {
        &self.name
    }

    fn sync_period(&self) -> Millis {
        Millis::from_secs(self.cfg.sync_period_s)
    }

    fn decide(&mut self, snapshot: &ClusterSnapshot, graph: &AppGraph) -> Vec<ScalingDecision> {
        self.decisions += 1;
        let k = self.decisions;
        let now = snapshot.time;
        self.ratios.observe(snapshot);
        let sync_s = self.cfg.sync_period_s as f64;
        let q = self.cfg.slo_target;
        // A joint (graph) model sees the snapshot and forecasts every service at once, up to
        // the longest lead it may be asked for.
        let joint = self.joint.as_mut().map(|j| {
            j.observe(snapshot, graph);
            (j.name(), j.forecast(JOINT_HORIZON))
        });
        let mut prepared = Vec::with_capacity(snapshot.workloads.len());
        for w in &snapshot.workloads {
            let cfg = self.cfg.clone();
            let model_name = match &joint {
                Some((n, _)) => n.clone(),
                None => self.model.name(),
            };
            let health = health_of(&cfg, now, w);
            let mut st = self
                .services
                .remove(&w.name)
                .unwrap_or_else(|| new_state(&cfg));
            st.cpu.observe(w);
            st.startup.observe(w);
            st.vertical.observe(&cfg.vertical, w);
            let hpa_decision = st.hpa.reconcile(now, w);
            let hpa_why = hpa_decision
                .reasons
                .iter()
                .map(|r| r.detail.clone())
                .collect::<Vec<_>>()
                .join("; ");
            let hpa_rule = (hpa_decision.replicas, hpa_why);
            let mut reasons = Vec::new();
            let observed = w.rps.filter(|r| r.is_finite() && *r >= 0.0);
            let lag_steps = (cfg.rate_window_s / sync_s).round() as usize;
            if st.recent.len() > lag_steps {
                st.recent.pop_front();
            }
            st.recent.push_back(observed);
            let surge = if lag_steps >= 2 {
                surge_rps(&st.recent, lag_steps)
            } else {
                None
            };
            if let Some(r) = observed {
                if st.history.len() == cfg.history {
                    st.history.pop_front();
                }
                st.history.push_back(r);
                // Score forecasts that fall due now.
                while let Some(&(due, p)) = st.pending.front() {
                    if due > k {
                        break;
                    }
                    st.pending.pop_front();
                    if due == k {
                        let rel = (r - p) / p.max(1.0);
                        push(&mut st.residuals, rel, RESIDUALS);
                        push(
                            &mut st.abs_errors,
                            (r - p).abs() / r.max(p).max(1.0),
                            ERRORS,
                        );
                    }
                }
            }
            let lead_s = cfg
                .lead_time_s
                .unwrap_or_else(|| st.startup.startup().map_or(30.0, |m| m.as_secs_f64()));
            let horizon = (((lead_s + sync_s) / sync_s).ceil() as usize).max(1);
            let mut demand = None;
            let mut width = None;
            if let Some(obs) = observed {
                let mut point_peak = obs;
                let mut lead_point = obs;
                let mut used_model = false;
                if let Some((_, result)) = &joint {
                    match result.as_ref().map(|m| m.get(&w.name)) {
                        Ok(Some(f)) if !f.is_empty() && f.iter().all(|v| v.is_finite()) => {
                            let ahead = &f[..horizon.min(f.len())];
                            point_peak = ahead.iter().copied().fold(0.0_f64, f64::max);
                            lead_point = ahead[ahead.len() - 1];
                            used_model = true;
                        }
                        Ok(Some(_)) => reasons.push(Reason::new(
                            "forecast.not_finite",
                            "the graph model's forecast is empty or has NaN or inf: planning on the observed rate",
                        )),
                        Ok(None) => reasons.push(Reason::new(
                            "forecast.failed",
                            format!("the graph model has no forecast for `{}`: planning on the observed rate", w.name),
                        )),
                        Err(e) => reasons.push(Reason::new(
                            match e {
                                NoForecast::WarmingUp(_) => "forecast.warmup",
                                NoForecast::Failed(_) => "forecast.failed",
                            },
                            format!("{e}: planning on the observed rate"),
                        )),
                    }
                } else if st.history.len() >= cfg.min_history {
                    if st.fitted.is_none() || st.since_fit >= cfg.refit_every {
                        let y: Vec<f64> = st.history.iter().copied().collect();
                        match self.model.fit(&y) {
                            Ok(f) => {
                                st.fitted = Some(f);
                                st.since_fit = 0;
                            }
                            Err(e) => {
                                st.fitted = None;
                                reasons.push(Reason::new(
                                    "forecast.failed",
                                    format!("{e}: planning on the observed rate"),
                                ));
                            }
                        }
                    }
                    if let Some(f) = &st.fitted {
                        // Models that forecast from new data without refitting (neural
                        // networks) see the latest history; the others forecast past the
                        // syncs since their fit.
                        let y: Vec<f64> = st.history.iter().copied().collect();
                        let out = match f.predict_after(&y, st.since_fit, horizon, &[]) {
                            Some(r) => r.map(|o| (o, 0)),
                            None => f
                                .predict(st.since_fit + horizon, &[])
                                .map(|o| (o, st.since_fit)),
                        };
                        match out {
                            Ok((out, skip)) if out.point.iter().all(|v| v.is_finite()) => {
                                let ahead = &out.point[skip..];
                                point_peak = ahead.iter().copied().fold(0.0_f64, f64::max);
                                lead_point = ahead[ahead.len() - 1];
                                used_model = true;
                            }
                            Ok(_) => reasons.push(Reason::new(
                                "forecast.not_finite",
                                "the forecast has NaN or inf: planning on the observed rate",
                            )),
                            Err(e) => reasons.push(Reason::new(
                                "forecast.failed",
                                format!("{e}: planning on the observed rate"),
                            )),
                        }
                        st.since_fit += 1;
                    }
                } else {
                    reasons.push(Reason::new(
                        "forecast.warmup",
                        format!(
                            "{} of {} history samples: planning on the observed rate",
                            st.history.len(),
                            cfg.min_history
                        ),
                    ));
                }
                let point_peak = point_peak.max(0.0);
                st.pending
                    .push_back((k + horizon as u64, lead_point.max(0.0)));
                // Robust interval from the recent relative errors at the lead: median + z *
                // 1.4826 * MAD (a flash crowd's few huge errors do not move it).
                let (rq, w80) = match robust_location_scale(&st.residuals) {
                    Some((med, sd)) => (med + probit(q) * sd, Some(2.0 * probit(0.9) * sd)),
                    None => (0.0, None),
                };
                width = w80;
                let upper = point_peak * (1.0 + rq.clamp(-0.5, cfg.max_uplift));
                let mut raw = upper.max(obs);
                if let Some(now_rps) = surge.filter(|&x| x > obs * (1.0 + cfg.surge_threshold)) {
                    // The windowed rate is centred half a window back: extrapolate the surge
                    // at the slope from there to now, over the lead and one sync period.
                    let slope = (now_rps - obs) / (0.5 * cfg.rate_window_s);
                    let ahead = now_rps + slope * (lead_s + sync_s);
                    if ahead > raw {
                        reasons.push(Reason::new(
                            "forecast.surge",
                            format!(
                                "the last {sync_s:.0} s carried about {now_rps:.1} rps against {obs:.1} over the {:.0} s rate window; at that slope {ahead:.1} rps in {:.0} s: planning on it",
                                cfg.rate_window_s,
                                lead_s + sync_s
                            ),
                        ));
                        raw = ahead;
                    }
                }
                let smoothed = match st.smoothed {
                    Some(s) if raw < s => s + cfg.smoothing_down * (raw - s),
                    _ => raw,
                };
                st.smoothed = Some(smoothed);
                reasons.push(Reason::new(
                    "forecast.demand",
                    format!(
                        "{model}: observed {obs:.1} rps, peak forecast {point_peak:.1} over the next {:.0} s (lead {lead_s:.0} s), q{:.0} {upper:.1}, planned {smoothed:.1}",
                        horizon as f64 * sync_s,
                        q * 100.0,
                        model = if used_model { model_name.as_str() } else { "persistence" },
                    ),
                ));
                demand = Some(smoothed);
            }
            let recent_error = (st.abs_errors.len() >= 4)
                .then(|| st.abs_errors.iter().sum::<f64>() / st.abs_errors.len() as f64);
            let health = Health {
                recent_error,
                ..health
            };
            // CPU floor: what the ready pods use now, at the planner's target utilisation.
            let cpu_floor = if cfg.cpu_floor {
                let ready: Vec<_> = w
                    .pods
                    .iter()
                    .filter(|p| p.ready == Some(true) && p.phase == PodPhase::Running)
                    .collect();
                let used: f64 = ready
                    .iter()
                    .filter_map(|p| p.cpu)
                    .map(|c| c.millicores)
                    .sum();
                let req = ready.first().map_or(0.0, |p| p.requests.cpu_millicores);
                (req > 0.0 && used.is_finite()).then(|| {
                    (used / (cfg.planner.target_utilization * req))
                        .ceil()
                        .max(0.0) as u32
                })
            } else {
                None
            };
            self.services.insert(w.name.clone(), st);
            prepared.push(Prepared {
                demand,
                relative_width: width,
                health,
                reasons,
                cpu_floor,
                hpa_rule,
            });
        }
        // Plan the whole graph at once.
        let inputs: Vec<ServiceInput> = snapshot
            .workloads
            .iter()
            .zip(&prepared)
            .map(|(w, p)| {
                let st = &self.services[&w.name];
                ServiceInput {
                    name: w.name.clone(),
                    current: w.spec_replicas,
                    min_replicas: self.cfg.safety.min_replicas,
                    max_replicas: self.cfg.safety.max_replicas,
                    demand_rps: p.demand,
                    backlog: w.backlog,
                    cpu: st.cpu.model(),
                    requests: w.pods.first().map(|p| p.requests).unwrap_or_default(),
                }
            })
            .collect();
        let ratios = &self.ratios;
        let plans = plan(&self.cfg.planner, graph, &inputs, &|a, b, r| {
            ratios.ratio(a, b).unwrap_or(r)
        });
        let mut out = Vec::with_capacity(plans.len());
        for ((w, p), pl) in snapshot.workloads.iter().zip(prepared).zip(plans) {
            let mut reasons = p.reasons;
            reasons.extend(pl.reasons);
            let mut replicas = pl.replicas;
            if let (Some(r), Some(f)) = (replicas, p.cpu_floor) {
                if f > r {
                    reasons.push(Reason::new(
                        "plan.cpu_floor",
                        format!(
                            "the ready pods' CPU needs {f} replicas at {:.0} % of the request (plan said {r})",
                            self.cfg.planner.target_utilization * 100.0
                        ),
                    ));
                    replicas = Some(f.min(self.cfg.safety.max_replicas));
                }
            }
            let cfg = &self.cfg;
            let st = self.services.get_mut(&w.name).expect("state made above");
            let planned_cpu = match (pl.demand_rps, replicas, st.cpu.model()) {
                (Some(d), Some(r), Some(m)) if r > 0 => {
                    Some(m.idle_millicores + m.cpu_ms_per_request * d / r as f64)
                }
                _ => None,
            };
            st.recommendation = st.vertical.recommend(&cfg.vertical, planned_cpu);
            let resize = st
                .recommendation
                .and_then(|r| st.vertical.update(&cfg.vertical, &r));
            let mut decision = guard(
                &cfg.safety,
                &mut st.safety,
                now,
                &w.name,
                w.spec_replicas,
                Proposal {
                    replicas,
                    relative_width: p.relative_width,
                    reasons,
                    hpa_rule: Some(p.hpa_rule),
                },
                &p.health,
            );
            if let Some((to, why)) = resize {
                decision.resources = Some(to);
                decision.reasons.push(Reason::new("vertical.resize", why));
            }
            out.push(decision);
        }
        if let Some(b) = self.cfg.planner.memory_budget_gib {
            hold_resizes_over_budget(b, snapshot, &mut out);
        }
        out
    }
}

/// Drops the memory increases of `decisions` when the memory they would request in all (replicas
/// x memory request, summed over workloads) is over `budget_gib`: the replica plan kept within
/// the budget, and a resize must not push it over. Decreases stay.
fn hold_resizes_over_budget(
    budget_gib: f64,
    snapshot: &ClusterSnapshot,
    decisions: &mut [ScalingDecision],
) {
    let current = |d: &ScalingDecision| {
        snapshot
            .workload(&d.workload)
            .and_then(|w| w.pods.first())
            .map_or(0.0, |p| p.requests.memory_mib)
    };
    let total: f64 = decisions
        .iter()
        .map(|d| {
            let mib = d.resources.map_or(current(d), |r| r.requests.memory_mib);
            d.replicas as f64 * mib
        })
        .sum();
    if total <= budget_gib * 1024.0 {
        return;
    }
    for d in decisions.iter_mut() {
        let cur = current(d);
        if d.resources.is_some_and(|r| r.requests.memory_mib > cur) {
            d.resources = None;
            d.reasons.push(Reason::new(
                "vertical.budget",
                format!(
                    "memory increase held: {:.2} GiB requested in all would exceed the {budget_gib} GiB budget",
                    total / 1024.0
                ),
            ));
        }
    }
}

fn push(v: &mut VecDeque<f64>, x: f64, cap: usize) {
    if v.len() == cap {
        v.pop_front();
    }
    v.push_back(x);
}

/// Median and MAD-based standard deviation (1.4826 * MAD) of `v`, with at least 10 values.
fn robust_location_scale(v: &VecDeque<f64>) -> Option<(f64, f64)> {
    if v.len() < 10 {
        return None;
    }
    let med = |x: &mut Vec<f64>| {
        x.sort_by(f64::total_cmp);
        let n = x.len();
        if n % 2 == 1 {
            x[n / 2]
        } else {
            0.5 * (x[n / 2 - 1] + x[n / 2])
        }
    };
    let mut a: Vec<f64> = v.iter().copied().collect();
    let m = med(&mut a);
    let mut d: Vec<f64> = v.iter().map(|x| (x - m).abs()).collect();
    Some((m, 1.4826 * med(&mut d)))
}

/// The standard normal quantile function (Acklam's rational approximation, relative error
/// below 1.2e-9), for `p` in (0, 1).
pub fn probit(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probit_matches_tables() {
        for (p, z) in [
            (0.5, 0.0),
            (0.9, 1.281_551_565_5),
            (0.95, 1.644_853_626_95),
            (0.99, 2.326_347_874_04),
            (0.01, -2.326_347_874_04),
            (0.999, 3.090_232_306_17),
        ] {
            assert!((probit(p) - z).abs() < 1e-8, "{p}: {} vs {z}", probit(p));
        }
    }

    #[test]
    fn surge_rps_recovers_the_newest_period_of_a_windowed_rate() {
        // A per-second rate, windowed over 60 s and sampled every 15 s, as `rate()` gives it.
        let windowed =
            |rate: &dyn Fn(usize) -> f64, t: usize| (t - 60..t).map(rate).sum::<f64>() / 60.0;
        let recent = |rate: &dyn Fn(usize) -> f64, t: usize| -> VecDeque<Option<f64>> {
            (0..=4)
                .rev()
                .map(|k| Some(windowed(rate, t - 15 * k)))
                .collect()
        };
        // Steady: the estimate is the rate.
        let steady = |_: usize| 100.0;
        assert!((surge_rps(&recent(&steady, 600), 4).unwrap() - 100.0).abs() < 1e-9);
        // A step from 100 to 300 rps at t = 585: the window says 150 at 600, the estimate the
        // 300 the last 15 s carried.
        let step = |t: usize| if t >= 585 { 300.0 } else { 100.0 };
        let r = recent(&step, 600);
        assert!((r[4].unwrap() - 150.0).abs() < 1e-9);
        assert!((surge_rps(&r, 4).unwrap() - 300.0).abs() < 1e-9);
        // A ramp: the estimate is far closer to the newest rate than the window is.
        let ramp = |t: usize| 100.0 + 10.0 * t.saturating_sub(570) as f64;
        let r = recent(&ramp, 600);
        let truth = (585..600).map(ramp).sum::<f64>() / 15.0;
        let est = surge_rps(&r, 4).unwrap();
        assert!(
            (est - truth).abs() < 0.1 * truth && (r[4].unwrap() - truth).abs() > 0.4 * truth,
            "estimate {est}, window {}, truth {truth}",
            r[4].unwrap()
        );
        // Too few samples, a missing one, or no window: none.
        assert_eq!(surge_rps(&r.iter().skip(1).copied().collect(), 4), None);
        let mut gap = r.clone();
        gap[0] = None;
        assert_eq!(surge_rps(&gap, 4), None);
        assert_eq!(surge_rps(&r, 1), None);
    }

    #[test]
    fn robust_scale_ignores_a_few_huge_errors() {
        let mut v: VecDeque<f64> = (0..100)
            .map(|i| if i % 2 == 0 { 0.1 } else { -0.1 })
            .collect();
        let (_, sd) = robust_location_scale(&v).unwrap();
        for _ in 0..8 {
            v.push_back(3.0);
        }
        let (m2, sd2) = robust_location_scale(&v).unwrap();
        // The plain standard deviation jumps from 0.1 to 0.82; the robust one stays small.
        assert!((sd - 0.14826).abs() < 1e-9, "{sd}");
        assert!(m2.abs() <= 0.1 + 1e-12 && sd2 < 0.31, "{m2} {sd2}");
    }

    #[test]
    fn a_memory_increase_that_would_break_the_budget_is_held_a_decrease_is_not() {
        use graphscale_core::{Millis, PodObservation, PodResources, Resources};
        let pod = |mem: f64| PodObservation {
            name: "p".into(),
            phase: PodPhase::Running,
            deleting: false,
            start_time: Some(Millis(0)),
            ready: Some(true),
            ready_transition: Some(Millis(0)),
            cpu: None,
            memory_mib: Some(mem / 2.0),
            requests: Resources::new(200.0, mem),
            limits: Resources::new(500.0, 2.0 * mem),
        };
        let w = |name: &str, mem: f64| WorkloadObservation {
            name: name.into(),
            spec_replicas: 2,
            pods: vec![pod(mem)],
            rps: None,
            latency_p95_ms: None,
            error_rate: None,
            backlog: None,
        };
        let snap = ClusterSnapshot {
            time: Millis(0),
            workloads: vec![w("up", 256.0), w("down", 512.0)],
            edges: vec![],
        };
        let d = |name: &str, mem: f64| ScalingDecision {
            workload: name.into(),
            replicas: 2,
            reasons: vec![],
            resources: Some(PodResources {
                requests: Resources::new(200.0, mem),
                limits: Resources::new(500.0, 2.0 * mem),
            }),
        };
        // 2 x 512 + 2 x 256 = 1.5 GiB: within 2 GiB, both stay.
        let mut ds = vec![d("up", 512.0), d("down", 256.0)];
        hold_resizes_over_budget(2.0, &snap, &mut ds);
        assert!(ds.iter().all(|d| d.resources.is_some()));
        // Within 1.25 GiB it is not: the increase is held with its reason, the decrease stays.
        hold_resizes_over_budget(1.25, &snap, &mut ds);
        assert!(ds[0].resources.is_none());
        assert!(ds[0].reasons.iter().any(|r| r.rule == "vertical.budget"));
        assert!(ds[1].resources.is_some());
    }
}
