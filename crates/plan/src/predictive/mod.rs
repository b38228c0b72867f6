//! The predictive autoscaler: a forecaster per service (or one graph model for all) + the
//! [`crate::planner`], proposing plans that the [`crate::guarded`] safety layer checks.
//!
//! Each sync period runs in three steps:
//! 1. **observe** ([`Propose::observe`]): the observed request rate joins each service's history
//!    (one sample per sync period), the forecasts that fall due are scored, and fits that are due
//!    are handed out as training jobs ([`Propose::training_jobs`]); the control loop runs them
//!    off the decision path and installs each result ([`Propose::install`]);
//! 2. **analyze** ([`analyze`]): per service, the newest installed model forecasts the next
//!    `lead` steps, where the lead is the pods' learned start-up time plus one sync period; the
//!    `slo_target` quantile of the demand comes from the forecast and the model's own recent
//!    relative errors at that lead (median plus the normal quantile times the MAD-based spread,
//!    robust to the few huge errors of a flash crowd, capped at `max_uplift`); a surge seen in the
//!    newest period is extrapolated; demand that falls is smoothed;
//! 3. **plan** ([`plan_stage`]): the planner turns demand into replicas with the learned CPU
//!    model and call ratios; the CPU-usage floor keeps the plan from going below what the pods
//!    use now; the vertical recommender proposes memory; with the action cost on
//!    ([`crate::churn`], `churn`), a scale-down is held to what the forecast over the lead plus
//!    the break-even time, and the plans of the last `confirm_s` seconds, need.
//!
//! The safety layer has the last word, falling back to the HPA rule when the model is unhealthy:
//! [`PredictiveAutoscaler::guarded`] wraps the autoscaler with its own safety settings.

use std::collections::BTreeMap;
use std::sync::Arc;

use graphscale_core::{
    AppGraph, ClusterSnapshot, Forecaster, JobId, JointForecaster, Millis, Trained, TrainingJob,
};
use serde::{Deserialize, Serialize};

use crate::churn::ChurnConfig;
use crate::cpu_request::CpuRequestConfig;
use crate::guarded::{GuardConfig, Guarded, Propose, WorkloadPlan};
use crate::hpa::{HpaControllerConfig, HpaSpec, MetricTarget};
use crate::learn::RatioEstimator;
use crate::planner::PlannerConfig;
use crate::safety::SafetyConfig;
use crate::vertical::{ResourceRecommendation, VerticalConfig};
use crate::PlanError;

pub mod analyze;
mod estimates;
pub mod plan_stage;

pub use estimates::{probit, surge_rps};

use analyze::{Analysis, ServiceState};

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
    /// A cost per scaling action ([`crate::churn`]): a scale-down only when the forecast shows
    /// the pods will not be needed again within the break-even time; default none (scale
    /// down whenever the plan and the safety layer allow).
    pub churn: Option<ChurnConfig>,
    /// CPU requests sized with the replica plan ([`crate::cpu_request`]): replicas are planned
    /// on the reference request, then each pod's request is lowered to what it is planned to
    /// use (limits kept); default none (CPU requests are left alone).
    pub cpu_requests: Option<CpuRequestConfig>,
    /// Learn the call ratios along the graph also from windows in which the calling service is
    /// saturated (requests failing or waiting), where its edges carry its throughput rather than
    /// its demand; default false: such windows are skipped, so demand propagated from the entries
    /// reaches every callee in the same decision (`learn::RatioEstimator`, #17 item 3). `true` is
    /// the behaviour before, kept to measure what the default changes.
    pub ratios_from_saturated: bool,
    /// Modelled training time of one fit, seconds of simulated time: a fit handed out at a
    /// decision is installed this long after it (the next decision at the earliest when it is
    /// not 0). `None` (default): 0 for persistence, trend, seasonal-naive, ETS and MSTL (an
    /// hour of history fits in milliseconds, `bench forecast`), one sync period for Prophet and
    /// the networks (seconds). A real deployment installs a fit when it is done.
    pub training_time_s: Option<f64>,
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
            churn: None,
            cpu_requests: None,
            ratios_from_saturated: false,
            training_time_s: None,
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
        if let Some(t) = self.training_time_s {
            if !(t.is_finite() && (0.0..=86_400.0).contains(&t)) {
                return bad("training_time_s", format!("must be in 0..=86400, got {t}"));
            }
        }
        if self.fallback_cpu_percent == 0 {
            return bad("fallback_cpu_percent", "must be > 0".into());
        }
        self.planner.validate()?;
        self.safety.validate()?;
        if let Some(c) = &self.churn {
            c.validate()?;
        }
        if let Some(c) = &self.cpu_requests {
            c.validate()?;
        }
        self.fallback_spec().validate("*")
    }

    /// The reactive HPA rule the safety layer falls back to.
    pub fn fallback_spec(&self) -> HpaSpec {
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

/// Models whose fit on an hour of history takes milliseconds: modelled as ready at once.
const QUICK_FITS: [&str; 5] = ["persistence", "trend", "seasonal-naive", "ets", "mstl"];

/// A forecaster (or graph model) + planner autoscaler, before the safety layer. See the module
/// documentation; [`PredictiveAutoscaler::guarded`] gives the autoscaler that decides.
pub struct PredictiveAutoscaler {
    name: String,
    cfg: PredictiveConfig,
    model: Arc<dyn Forecaster>,
    /// A graph model forecasting every service at once; when set, it replaces `model`.
    joint: Option<Box<dyn JointForecaster>>,
    services: BTreeMap<String, ServiceState>,
    ratios: RatioEstimator,
    /// Decisions so far (the index of the newest observed snapshot).
    decisions: u64,
    /// Time of the newest observed snapshot.
    observed: Option<Millis>,
    /// Modelled training time of a per-service fit.
    training: Millis,
    /// Jobs handed out and not yet installed: job -> the service it fits (`None`: the joint model).
    in_flight: BTreeMap<JobId, Option<String>>,
    /// Jobs due, waiting for [`Propose::training_jobs`].
    due: Vec<TrainingJob>,
    next_job: u64,
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

/// The per-service model slot of an autoscaler driven by a joint model: never fitted.
struct JointOnly;

impl Forecaster for JointOnly {
    fn name(&self) -> String {
        "persistence".into()
    }

    fn fit(
        &self,
        _y: &[f64],
    ) -> Result<Box<dyn graphscale_core::FittedForecaster>, graphscale_core::ForecastFailure> {
        Err(graphscale_core::ForecastFailure::new(
            "persistence",
            "this autoscaler forecasts with its graph model",
        ))
    }
}

impl PredictiveAutoscaler {
    /// A predictive autoscaler with `model` for every service. Validates the config.
    pub fn new(
        name: impl Into<String>,
        model: Box<dyn Forecaster>,
        cfg: PredictiveConfig,
    ) -> Result<Self, PlanError> {
        cfg.validate()?;
        let model: Arc<dyn Forecaster> = Arc::from(model);
        let training = Millis::from_secs_f64(cfg.training_time_s.unwrap_or_else(|| {
            if QUICK_FITS.contains(&model.name().as_str()) {
                0.0
            } else {
                cfg.sync_period_s as f64
            }
        }));
        let ratios = RatioEstimator::new(0.2).learning_from_saturated(cfg.ratios_from_saturated);
        Ok(PredictiveAutoscaler {
            name: name.into(),
            cfg,
            model,
            joint: None,
            services: BTreeMap::new(),
            ratios,
            decisions: 0,
            observed: None,
            training,
            in_flight: BTreeMap::new(),
            due: Vec::new(),
            next_job: 0,
        })
    }

    /// A predictive autoscaler whose demand comes from `joint`, a model of the whole graph
    /// (`min_history`, `refit_every` and the training time are the joint model's business).
    /// Validates the config.
    pub fn with_joint(
        name: impl Into<String>,
        joint: Box<dyn JointForecaster>,
        cfg: PredictiveConfig,
    ) -> Result<Self, PlanError> {
        let mut a = Self::new(name, Box::new(JointOnly), cfg)?;
        a.joint = Some(joint);
        Ok(a)
    }

    /// Its settings.
    pub fn config(&self) -> &PredictiveConfig {
        &self.cfg
    }

    /// This autoscaler behind the safety layer with its own safety settings, memory budget and
    /// fallback (the HPA rule at `fallback_cpu_percent`): the autoscaler that decides.
    pub fn guarded(self) -> Result<Guarded<Self>, PlanError> {
        let guard = GuardConfig {
            safety: self.cfg.safety.clone(),
            memory_budget_gib: self.cfg.planner.memory_budget_gib,
            stale_after_s: self.cfg.stale_after_s,
            cpu_requests: self.cfg.cpu_requests.clone(),
        };
        let controller = HpaControllerConfig {
            sync_period_s: self.cfg.sync_period_s,
            ..HpaControllerConfig::default()
        };
        let spec = self.cfg.fallback_spec();
        Guarded::new(self, guard)?.with_fallback(controller, spec)
    }

    /// The latest vertical recommendation per service.
    pub fn recommendations(&self) -> BTreeMap<String, ResourceRecommendation> {
        self.services
            .iter()
            .filter_map(|(k, s)| s.recommendation.map(|r| (k.clone(), r)))
            .collect()
    }

    /// Step 1: records the snapshot and queues the fits that are due.
    fn observe_snapshot(&mut self, snapshot: &ClusterSnapshot, graph: &AppGraph) {
        self.decisions += 1;
        self.observed = Some(snapshot.time);
        self.ratios.observe(snapshot);
        for w in &snapshot.workloads {
            let st = self.services.entry(w.name.clone()).or_default();
            st.observe(&self.cfg, self.decisions, w);
            if self.joint.is_none() && st.fit_due(&self.cfg) {
                self.next_job += 1;
                let id = JobId(self.next_job);
                let y = st.history_vec();
                let model = Arc::clone(&self.model);
                let what = format!("{} fit of {}", model.name(), w.name);
                st.fit_handed_out(id);
                self.in_flight.insert(id, Some(w.name.clone()));
                self.due
                    .push(TrainingJob::new(id, what, self.training, move || {
                        model.fit(&y)
                    }));
            }
        }
        // Services gone from the cluster keep no state.
        let present = snapshot.by_name();
        self.services
            .retain(|k, _| present.contains_key(k.as_str()));
        if let Some(j) = self.joint.as_mut() {
            j.observe(snapshot, graph);
        }
        let id = JobId(self.next_job + 1);
        if let Some(job) = self.joint.as_mut().and_then(|j| j.training_job(id)) {
            self.next_job += 1;
            self.in_flight.insert(job.id, None);
            self.due.push(job);
        }
    }
}

impl Propose for PredictiveAutoscaler {
    fn name(&self) -> &str {
        &self.name
    }

    fn sync_period(&self) -> Millis {
        Millis::from_secs(self.cfg.sync_period_s)
    }

    fn observe(&mut self, snapshot: &ClusterSnapshot, graph: &AppGraph) {
        self.observe_snapshot(snapshot, graph);
    }

    fn propose(&mut self, snapshot: &ClusterSnapshot, graph: &AppGraph) -> Vec<WorkloadPlan> {
        if self.observed != Some(snapshot.time) {
            // Called without `observe` (a replay): observe now; the fits wait for the next
            // call of `training_jobs`.
            self.observe_snapshot(snapshot, graph);
        }
        let analysis = Analysis::of(self, snapshot);
        plan_stage::plan_workloads(self, snapshot, graph, analysis)
    }

    fn training_jobs(&mut self) -> Vec<TrainingJob> {
        std::mem::take(&mut self.due)
    }

    fn install(&mut self, job: JobId, trained: Trained) {
        match self.in_flight.remove(&job) {
            Some(Some(service)) => {
                if let (Some(st), Ok(fit)) = (
                    self.services.get_mut(&service),
                    trained.0.downcast::<analyze::FitResult>(),
                ) {
                    st.install(job, *fit);
                }
            }
            Some(None) => {
                if let Some(j) = self.joint.as_mut() {
                    j.install(job, trained);
                }
            }
            None => {}
        }
    }
}
