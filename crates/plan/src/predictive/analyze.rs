//! The analyze stage of the predictive autoscaler: per service, the demand to plan for.
//!
//! [`ServiceState::observe`] records a snapshot (history, the windowed rates of the surge
//! estimate, forecast errors at the lead); [`ServiceState::demand`] forecasts with the newest
//! installed fit and turns the forecast into the demand quantile the planner provisions for.
//! Neither fits a model: fits are training jobs ([`graphscale_core::training`]).

use std::collections::{BTreeMap, VecDeque};

use graphscale_core::{
    ClusterSnapshot, FittedForecaster, ForecastFailure, JobId, Millis, NoForecast, PodPhase,
    Reason, WorkloadObservation,
};

use super::estimates::{probit, push, robust_location_scale, surge_rps};
use super::{PredictiveAutoscaler, PredictiveConfig};
use crate::churn::{ChurnConfig, PlanHistory};
use crate::guarded::metric_health;
use crate::latency::LatencyEstimator;
use crate::learn::{CpuEstimator, StartupEstimator};
use crate::safety::Health;
use crate::vertical::{ResourceRecommendation, VerticalRecommender};

/// What a per-service training job produces.
pub type FitResult = Result<Box<dyn FittedForecaster>, ForecastFailure>;

/// Relative errors kept for the demand quantile.
const RESIDUALS: usize = 240;
/// Absolute relative errors kept for health.
const ERRORS: usize = 8;
/// Steps a joint model is asked for (its own horizon may be shorter).
const JOINT_HORIZON: usize = 16;

/// What the autoscaler keeps per service.
pub struct ServiceState {
    history: VecDeque<f64>,
    /// The last windowed rates, one per decision (`None`: missing), newest last.
    recent: VecDeque<Option<f64>>,
    /// This decision's observed rate, when valid.
    observed: Option<f64>,
    pub(super) cpu: CpuEstimator,
    /// The latency model's samples (the SLO planner's input).
    pub(super) latency: LatencyEstimator,
    startup: StartupEstimator,
    pub(super) vertical: VerticalRecommender,
    fitted: Option<Box<dyn FittedForecaster>>,
    /// Forecasts made since the end of the fitted series.
    since_fit: usize,
    /// The fit handed out and not yet installed, with the forecasts made since.
    in_flight: Option<(JobId, usize)>,
    /// Why the last fit failed, reported once with the next decision.
    failure: Option<String>,
    /// (decision index when due, predicted value)
    pending: VecDeque<(u64, f64)>,
    /// Relative errors (actual - predicted) / predicted at the lead, for the quantiles.
    residuals: VecDeque<f64>,
    /// Absolute relative errors, for health.
    abs_errors: VecDeque<f64>,
    smoothed: Option<f64>,
    pub(super) recommendation: Option<ResourceRecommendation>,
    /// The recent plans, for the action cost's backward test.
    pub(super) plans: PlanHistory,
    /// The CPU request replicas are planned on: the largest seen on the pods, millicores; kept
    /// only with `cpu_requests` on ([`crate::cpu_request`] lowers the pods' requests below it).
    pub(super) cpu_reference: Option<f64>,
}

impl Default for ServiceState {
    fn default() -> Self {
        ServiceState {
            history: VecDeque::new(),
            recent: VecDeque::new(),
            observed: None,
            cpu: CpuEstimator::new(40),
            latency: LatencyEstimator::new(120),
            startup: StartupEstimator::default(),
            vertical: VerticalRecommender::default(),
            fitted: None,
            since_fit: 0,
            in_flight: None,
            failure: None,
            pending: VecDeque::new(),
            residuals: VecDeque::new(),
            abs_errors: VecDeque::new(),
            smoothed: None,
            recommendation: None,
            plans: PlanHistory::default(),
            cpu_reference: None,
        }
    }
}

impl ServiceState {
    /// Records one decision's observation (decision index `k`): the learned estimators, the
    /// windowed rates, the history, and the errors of the forecasts that fall due now.
    pub fn observe(&mut self, cfg: &PredictiveConfig, k: u64, w: &WorkloadObservation) {
        self.cpu.observe(w);
        self.latency.observe(w);
        self.startup.observe(w);
        self.vertical.observe(&cfg.vertical, w);
        // The reference request is kept only where CPU requests are sized (`cpu_requests`).
        if cfg.cpu_requests.is_some() {
            for p in &w.pods {
                let r = p.requests.cpu_millicores;
                if r.is_finite() && r > 0.0 && self.cpu_reference.is_none_or(|c| r > c) {
                    self.cpu_reference = Some(r);
                }
            }
        }
        let observed = w.rps.filter(|r| r.is_finite() && *r >= 0.0);
        self.observed = observed;
        let lag_steps = (cfg.rate_window_s / cfg.sync_period_s as f64).round() as usize;
        if self.recent.len() > lag_steps {
            self.recent.pop_front();
        }
        self.recent.push_back(observed);
        let Some(r) = observed else { return };
        if self.history.len() == cfg.history {
            self.history.pop_front();
        }
        self.history.push_back(r);
        while let Some(&(due, p)) = self.pending.front() {
            if due > k {
                break;
            }
            self.pending.pop_front();
            if due == k {
                let rel = (r - p) / p.max(1.0);
                push(&mut self.residuals, rel, RESIDUALS);
                push(
                    &mut self.abs_errors,
                    (r - p).abs() / r.max(p).max(1.0),
                    ERRORS,
                );
            }
        }
    }

    /// The break-even time of removing one of its pods under the action cost `c`: the learned
    /// start-up (30 s until one is observed) plus the disruption.
    pub(super) fn break_even_s(&self, c: &ChurnConfig) -> f64 {
        c.break_even_s(self.startup.startup().map_or(30.0, |m| m.as_secs_f64()))
    }

    /// Whether a fit is due: enough history, none in flight, and no model yet or
    /// `refit_every` forecasts since the last.
    pub fn fit_due(&self, cfg: &PredictiveConfig) -> bool {
        self.observed.is_some()
            && self.history.len() >= cfg.min_history
            && self.in_flight.is_none()
            && (self.fitted.is_none() || self.since_fit >= cfg.refit_every)
    }

    /// The history a fit is trained on, oldest first.
    pub fn history_vec(&self) -> Vec<f64> {
        self.history.iter().copied().collect()
    }

    /// Marks the fit `id` as handed out.
    pub fn fit_handed_out(&mut self, id: JobId) {
        self.in_flight = Some((id, 0));
    }

    /// Installs the result of the fit `id`; the fitted series ends where the job's history
    /// did, so the forecasts made since it was handed out are skipped. A failed fit drops the
    /// model (the next decision plans on the observed rate and a new fit falls due).
    pub fn install(&mut self, id: JobId, fit: FitResult) {
        let Some((want, since)) = self.in_flight else {
            return;
        };
        if want != id {
            return;
        }
        self.in_flight = None;
        match fit {
            Ok(f) => {
                self.fitted = Some(f);
                self.since_fit = since;
                self.failure = None;
            }
            Err(e) => {
                self.fitted = None;
                self.failure = Some(e.to_string());
            }
        }
    }

    /// Forecasts `long` steps (at least `horizon`) with the installed fit: the peak over the
    /// first `horizon`, the value at step `horizon`, and the peak over all `long`; or why not.
    fn forecast_own(&mut self, horizon: usize, long: usize) -> Result<Option<Peaks>, Reason> {
        let Some(f) = &self.fitted else {
            return Ok(None);
        };
        // Models that forecast from new data without refitting (neural networks) see the
        // latest history; the others forecast past the syncs since their fit.
        let y: Vec<f64> = self.history.iter().copied().collect();
        let long = long.max(horizon);
        let out = match f.predict_after(&y, self.since_fit, long, &[]) {
            Some(r) => r.map(|o| (o, 0)),
            None => f
                .predict(self.since_fit + long, &[])
                .map(|o| (o, self.since_fit)),
        };
        self.since_fit += 1;
        if let Some((_, n)) = &mut self.in_flight {
            *n += 1;
        }
        match out {
            Ok((out, skip))
                if out.point.len() > skip && out.point.iter().all(|v| v.is_finite()) =>
            {
                Ok(Some(Peaks::of(&out.point[skip..], horizon)))
            }
            Ok(_) => Err(Reason::new(
                "forecast.not_finite",
                "the forecast has NaN or inf: planning on the observed rate",
            )),
            Err(e) => Err(Reason::new(
                "forecast.failed",
                format!("{e}: planning on the observed rate"),
            )),
        }
    }
}

/// What one forecast says about the steps ahead.
#[derive(Debug, Clone, Copy)]
struct Peaks {
    /// The peak over the lead horizon.
    peak: f64,
    /// The value at the end of the lead horizon (scored when it falls due).
    lead: f64,
    /// The peak over the longer horizon of the action cost (the lead horizon when it is off).
    long_peak: f64,
}

impl Peaks {
    /// From a forecast `ahead` (not empty) whose lead horizon is its first `horizon` steps.
    fn of(ahead: &[f64], horizon: usize) -> Peaks {
        let short = &ahead[..horizon.clamp(1, ahead.len())];
        let max = |v: &[f64]| v.iter().copied().fold(0.0_f64, f64::max);
        Peaks {
            peak: max(short),
            lead: short[short.len() - 1],
            long_peak: max(ahead),
        }
    }
}

/// The demand of one service, with what the safety layer needs to judge it.
pub struct Demand {
    /// Requests per second to provision for; `None` without an observed rate.
    pub demand: Option<f64>,
    /// With the action cost on: the demand a lower count must serve before a scale-down, the
    /// forecast peak over the lead and the break-even time (with the interval's uplift and
    /// the band), and the seconds it looks ahead.
    pub hold: Option<(f64, f64)>,
    /// Width of the 80 % forecast interval as a share of the forecast.
    pub relative_width: Option<f64>,
    /// Health of the metrics and the model.
    pub health: Health,
    /// Why.
    pub reasons: Vec<Reason>,
    /// Replicas the ready pods' CPU needs now at the planner's target utilisation.
    pub cpu_floor: Option<u32>,
}

/// The analyze stage's output: one [`Demand`] per workload of the snapshot, in its order.
pub struct Analysis {
    /// Per workload.
    pub demands: Vec<Demand>,
}

/// The joint model's forecast of this decision: its name and the forecast.
type JointForecast = (String, Result<BTreeMap<String, Vec<f64>>, NoForecast>);

impl Analysis {
    /// Analyzes `snapshot` (already observed) with `a`'s models.
    pub fn of(a: &mut PredictiveAutoscaler, snapshot: &ClusterSnapshot) -> Analysis {
        let joint: Option<JointForecast> = a
            .joint
            .as_mut()
            .map(|j| (j.name(), j.forecast(JOINT_HORIZON)));
        let model_name = a.model.name();
        let k = a.decisions;
        let demands = snapshot
            .workloads
            .iter()
            .map(|w| {
                let st = a.services.get_mut(&w.name);
                match st {
                    Some(st) => demand(&a.cfg, k, snapshot.time, w, st, &model_name, &joint),
                    None => Demand {
                        demand: None,
                        hold: None,
                        relative_width: None,
                        health: Health {
                            missing: Some("no observation recorded".into()),
                            ..Health::default()
                        },
                        reasons: vec![],
                        cpu_floor: None,
                    },
                }
            })
            .collect();
        Analysis { demands }
    }
}

/// The forecast of one service from the joint model's result, over at most `long` steps.
fn from_joint(
    result: &Result<BTreeMap<String, Vec<f64>>, NoForecast>,
    service: &str,
    horizon: usize,
    long: usize,
) -> Result<Peaks, Reason> {
    match result.as_ref().map(|m| m.get(service)) {
        Ok(Some(f)) if !f.is_empty() && f.iter().all(|v| v.is_finite()) => {
            Ok(Peaks::of(&f[..long.max(horizon).min(f.len())], horizon))
        }
        Ok(Some(_)) => Err(Reason::new(
            "forecast.not_finite",
            "the graph model's forecast is empty or has NaN or inf: planning on the observed rate",
        )),
        Ok(None) => Err(Reason::new(
            "forecast.failed",
            format!(
                "the graph model has no forecast for `{service}`: planning on the observed rate"
            ),
        )),
        Err(e) => Err(Reason::new(
            match e {
                NoForecast::WarmingUp(_) => "forecast.warmup",
                NoForecast::Failed(_) => "forecast.failed",
            },
            format!("{e}: planning on the observed rate"),
        )),
    }
}

fn demand(
    cfg: &PredictiveConfig,
    k: u64,
    now: Millis,
    w: &WorkloadObservation,
    st: &mut ServiceState,
    model_name: &str,
    joint: &Option<JointForecast>,
) -> Demand {
    let sync_s = cfg.sync_period_s as f64;
    let q = cfg.slo_target;
    let health = metric_health(cfg.stale_after_s, now, w, true);
    let mut reasons = Vec::new();
    let lag_steps = (cfg.rate_window_s / sync_s).round() as usize;
    let surge = if lag_steps >= 2 {
        surge_rps(&st.recent, lag_steps)
    } else {
        None
    };
    let lead_s = cfg
        .lead_time_s
        .unwrap_or_else(|| st.startup.startup().map_or(30.0, |m| m.as_secs_f64()));
    let horizon = (((lead_s + sync_s) / sync_s).ceil() as usize).max(1);
    // The action cost looks further: the lead plus the break-even time of a removal.
    let long_s = cfg
        .churn
        .as_ref()
        .map(|c| horizon as f64 * sync_s + st.break_even_s(c));
    let long = long_s.map_or(horizon, |l| ((l / sync_s).ceil() as usize).max(horizon));
    let mut demand = None;
    let mut hold = None;
    let mut width = None;
    if let Some(obs) = st.observed {
        let mut point_peak = obs;
        let mut lead_point = obs;
        let mut long_peak = obs;
        let mut used: Option<&str> = None;
        if let Some((name, result)) = joint {
            match from_joint(result, &w.name, horizon, long) {
                Ok(p) => {
                    (point_peak, lead_point, long_peak) = (p.peak, p.lead, p.long_peak);
                    used = Some(name.as_str());
                }
                Err(r) => reasons.push(r),
            }
        } else if st.history.len() >= cfg.min_history {
            if let Some(f) = st.failure.take() {
                reasons.push(Reason::new(
                    "forecast.failed",
                    format!("{f}: planning on the observed rate"),
                ));
            }
            match st.forecast_own(horizon, long) {
                Ok(Some(p)) => {
                    (point_peak, lead_point, long_peak) = (p.peak, p.lead, p.long_peak);
                    used = Some(model_name);
                }
                Ok(None) if st.in_flight.is_some() => reasons.push(Reason::new(
                    "forecast.training",
                    format!("{model_name} is training: planning on the observed rate"),
                )),
                Ok(None) => {}
                Err(r) => reasons.push(r),
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
        let uplift = 1.0 + rq.clamp(-0.5, cfg.max_uplift);
        let upper = point_peak * uplift;
        let mut raw = upper.max(obs);
        if let Some(now_rps) = surge.filter(|&x| x > obs * (1.0 + cfg.surge_threshold)) {
            // The windowed rate is centred half a window back: extrapolate the surge at the
            // slope from there to now, over the lead and one sync period, but no further than
            // the rate window the slope was measured on (a ramp seen for a minute says nothing
            // of where it is three minutes on: with 160 s start-ups the full lead cost 20-40 %
            // more CPU on Train Ticket, docs/benchmarks.md).
            let slope = (now_rps - obs) / (0.5 * cfg.rate_window_s);
            let reach = (lead_s + sync_s).min(cfg.rate_window_s);
            let ahead = now_rps + slope * reach;
            if ahead > raw {
                reasons.push(Reason::new(
                    "forecast.surge",
                    format!(
                        "the last {sync_s:.0} s carried about {now_rps:.1} rps against {obs:.1} over the {:.0} s rate window; at that slope {ahead:.1} rps in {reach:.0} s: planning on it",
                        cfg.rate_window_s,
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
                model = used.unwrap_or("persistence"),
            ),
        ));
        demand = Some(smoothed);
        if let (Some(c), Some(l)) = (&cfg.churn, long_s) {
            let held = smoothed.max(long_peak.max(0.0) * uplift) * (1.0 + c.down_band);
            hold = Some((held, l));
        }
    }
    let recent_error = (st.abs_errors.len() >= 4)
        .then(|| st.abs_errors.iter().sum::<f64>() / st.abs_errors.len() as f64);
    let health = Health {
        recent_error,
        ..health
    };
    Demand {
        demand,
        hold,
        relative_width: width,
        health,
        reasons,
        cpu_floor: cpu_floor(cfg, w, st.cpu_reference),
    }
}

/// What the ready pods use now, in replicas at the planner's target utilisation of the
/// reference request (`reference`; the pods' own request without one).
fn cpu_floor(
    cfg: &PredictiveConfig,
    w: &WorkloadObservation,
    reference: Option<f64>,
) -> Option<u32> {
    if !cfg.cpu_floor {
        return None;
    }
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
    let req = reference.unwrap_or_else(|| ready.first().map_or(0.0, |p| p.requests.cpu_millicores));
    (req > 0.0 && used.is_finite()).then(|| {
        (used / (cfg.planner.floor_utilization() * req))
            .ceil()
            .max(0.0) as u32
    })
}
