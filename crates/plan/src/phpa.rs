//! A PHPA-style baseline (after the Predictive Horizontal Pod Autoscaler): the HPA computes
//! its replica count as usual, the counts are kept as a history, and an exponential-smoothing model
//! fitted on that history predicts the count `look_ahead` decisions ahead; the larger of the
//! HPA's count and the prediction is set. It predicts replicas, not load, and knows nothing of
//! the graph.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use graphscale_core::{
    AppGraph, Autoscaler, ClusterSnapshot, ForecastFailure, ForecastOutput, Forecaster, JobId,
    Millis, Reason, ScalingDecision, Trained, TrainingJob,
};

use crate::hpa::{Hpa, HpaControllerConfig, HpaSpec};
use crate::PlanError;

/// What a PHPA training job produces: the fitted model's forecast `look_ahead` decisions ahead.
type Prediction = Result<ForecastOutput, ForecastFailure>;

/// Per workload: the HPA, its replica history, this decision's HPA result and the newest
/// prediction installed (used once).
struct State {
    hpa: Hpa,
    history: VecDeque<f64>,
    decision: Option<ScalingDecision>,
    in_flight: Option<JobId>,
    prediction: Option<Prediction>,
}

/// The PHPA-style autoscaler.
pub struct PhpaAutoscaler {
    name: String,
    config: HpaControllerConfig,
    spec: HpaSpec,
    model: Arc<dyn Forecaster>,
    look_ahead: usize,
    history: usize,
    state: BTreeMap<String, State>,
    due: Vec<TrainingJob>,
    next_job: u64,
    observed: Option<Millis>,
}

impl std::fmt::Debug for PhpaAutoscaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhpaAutoscaler")
            .field("name", &self.name)
            .field("model", &self.model.name())
            .field("look_ahead", &self.look_ahead)
            .finish()
    }
}

impl PhpaAutoscaler {
    /// A PHPA over `spec` that predicts `look_ahead` decisions ahead from the last `history`
    /// replica counts.
    pub fn new(
        name: impl Into<String>,
        config: HpaControllerConfig,
        spec: HpaSpec,
        model: Box<dyn Forecaster>,
        look_ahead: usize,
        history: usize,
    ) -> Result<Self, PlanError> {
        spec.validate("*")?;
        if look_ahead == 0 || history < 4 {
            return Err(PlanError::InvalidConfig {
                workload: "*".into(),
                field: "phpa".into(),
                reason: format!(
                    "need look_ahead >= 1 (got {look_ahead}) and history >= 4 (got {history})"
                ),
            });
        }
        Ok(PhpaAutoscaler {
            name: name.into(),
            config,
            spec,
            model: Arc::from(model),
            look_ahead,
            history,
            state: BTreeMap::new(),
            due: Vec::new(),
            next_job: 0,
            observed: None,
        })
    }
}

impl Autoscaler for PhpaAutoscaler {
    fn name(&self) -> &str {
        &self.name
    }

    fn sync_period(&self) -> Millis {
        Millis::from_secs(self.config.sync_period_s)
    }

    /// The HPA reconciles, its count joins the history, and a fit of the history (modelled as
    /// ready at once: AutoETS on 60 points takes about a millisecond) falls due.
    fn observe(&mut self, snapshot: &ClusterSnapshot, _graph: &AppGraph) {
        self.observed = Some(snapshot.time);
        for w in &snapshot.workloads {
            let st = self.state.entry(w.name.clone()).or_insert_with(|| State {
                hpa: Hpa::new(self.config.clone(), self.spec.clone()),
                history: VecDeque::new(),
                decision: None,
                in_flight: None,
                prediction: None,
            });
            let d = st.hpa.reconcile(snapshot.time, w);
            if st.history.len() == self.history {
                st.history.pop_front();
            }
            st.history.push_back(d.replicas as f64);
            st.decision = Some(d);
            if st.history.len() >= 8 && st.in_flight.is_none() {
                self.next_job += 1;
                let id = JobId(self.next_job);
                let y: Vec<f64> = st.history.iter().copied().collect();
                let model = Arc::clone(&self.model);
                let ahead = self.look_ahead;
                st.in_flight = Some(id);
                self.due.push(TrainingJob::new(
                    id,
                    format!("{} fit of {}'s replicas", model.name(), w.name),
                    Millis::ZERO,
                    move || -> Prediction { model.fit(&y).and_then(|f| f.predict(ahead, &[])) },
                ));
            }
        }
        let present = snapshot.by_name();
        self.state.retain(|k, _| present.contains_key(k.as_str()));
    }

    fn decide(&mut self, snapshot: &ClusterSnapshot, graph: &AppGraph) -> Vec<ScalingDecision> {
        if self.observed != Some(snapshot.time) {
            self.observe(snapshot, graph);
        }
        let mut out = Vec::with_capacity(snapshot.workloads.len());
        for w in &snapshot.workloads {
            let Some(st) = self.state.get_mut(&w.name) else {
                continue;
            };
            let Some(mut d) = st.decision.take() else {
                continue;
            };
            match st.prediction.take() {
                Some(Ok(p)) => {
                    let v = p.point.last().copied().unwrap_or(f64::NAN);
                    if v.is_finite() {
                        let n = (v.round().max(0.0) as u32)
                            .clamp(self.spec.min_replicas, self.spec.max_replicas);
                        if n > d.replicas {
                            d.reasons.push(Reason::new(
                                "phpa.prediction",
                                format!(
                                    "{} predicts {v:.1} replicas {} decisions ahead: {n}",
                                    self.model.name(),
                                    self.look_ahead
                                ),
                            ));
                            d.replicas = n;
                        }
                    }
                }
                Some(Err(e)) => d.reasons.push(Reason::new(
                    "phpa.forecast_failed",
                    format!("{e}: the HPA decides"),
                )),
                None => {}
            }
            out.push(d);
        }
        out
    }

    fn training_jobs(&mut self) -> Vec<TrainingJob> {
        std::mem::take(&mut self.due)
    }

    fn install(&mut self, job: JobId, trained: Trained) {
        let Some(st) = self.state.values_mut().find(|s| s.in_flight == Some(job)) else {
            return;
        };
        st.in_flight = None;
        if let Ok(p) = trained.0.downcast::<Prediction>() {
            st.prediction = Some(*p);
        }
    }
}
