//! A PHPA-style baseline (after the Predictive Horizontal Pod Autoscaler): the HPA computes
//! its replica count as usual, the counts are kept as a history, and a Holt-Winters-type model
//! fitted on that history predicts the count `look_ahead` decisions ahead; the larger of the
//! HPA's count and the prediction is set. It predicts replicas, not load, and knows nothing of
//! the graph.

use std::collections::{BTreeMap, VecDeque};

use graphscale_core::{
    AppGraph, Autoscaler, ClusterSnapshot, Forecaster, Millis, Reason, ScalingDecision,
};

use crate::hpa::{Hpa, HpaControllerConfig, HpaSpec};
use crate::PlanError;

/// The PHPA-style autoscaler.
pub struct PhpaAutoscaler {
    name: String,
    config: HpaControllerConfig,
    spec: HpaSpec,
    model: Box<dyn Forecaster>,
    look_ahead: usize,
    history: usize,
    state: BTreeMap<String, (Hpa, VecDeque<f64>)>,
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
            model,
            look_ahead,
            history,
            state: BTreeMap::new(),
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

    fn decide(&mut self, snapshot: &ClusterSnapshot, _graph: &AppGraph) -> Vec<ScalingDecision> {
        let mut out = Vec::with_capacity(snapshot.workloads.len());
        for w in &snapshot.workloads {
            let (hpa, hist) = self.state.entry(w.name.clone()).or_insert_with(|| {
                (
                    Hpa::new(self.config.clone(), self.spec.clone()),
                    VecDeque::new(),
                )
            });
            let mut d = hpa.reconcile(snapshot.time, w);
            if hist.len() == self.history {
                hist.pop_front();
            }
            hist.push_back(d.replicas as f64);
            if hist.len() >= 8 {
                let y: Vec<f64> = hist.iter().copied().collect();
                let pred = self
                    .model
                    .fit(&y)
                    .and_then(|f| f.predict(self.look_ahead, &[]));
                match pred {
                    Ok(p) => {
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
                    Err(e) => d.reasons.push(Reason::new(
                        "phpa.forecast_failed",
                        format!("{e}: the HPA decides"),
                    )),
                }
            }
            out.push(d);
        }
        out
    }
}
