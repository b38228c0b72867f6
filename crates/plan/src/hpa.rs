//! The Kubernetes Horizontal Pod Autoscaler (autoscaling/v2), reproduced from its documented
//! algorithm and from `pkg/controller/podautoscaler` (`replica_calculator.go`,
//! `horizontal.go`): the baseline every graphscale result is compared with.
//!
//! Per metric, pods are grouped into ignored, unready, missing and ready; the usage ratio over
//! ready pods gives `ceil(ratio * ready)` unless inside the tolerance; missing and unready pods
//! are then re-balanced conservatively. The largest metric proposal wins, then the behaviour
//! applies stabilisation windows, rate-limit policies and the min/max bounds.

use std::collections::BTreeMap;

use graphscale_core::{
    AppGraph, Autoscaler, ClusterSnapshot, Millis, PodObservation, Reason, ScalingDecision,
    WorkloadObservation,
};
use serde::{Deserialize, Serialize};

use crate::table::WorkloadTable;
use crate::PlanError;

mod tally;

use tally::Scratch;

/// Controller-wide settings (kube-controller-manager flags), with the Kubernetes defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HpaControllerConfig {
    /// `--horizontal-pod-autoscaler-sync-period`; default 15 s.
    pub sync_period_s: u64,
    /// `--horizontal-pod-autoscaler-tolerance`; default 0.1.
    pub tolerance: f64,
    /// `--horizontal-pod-autoscaler-cpu-initialization-period`; default 300 s.
    pub cpu_initialization_period_s: u64,
    /// `--horizontal-pod-autoscaler-initial-readiness-delay`; default 30 s.
    pub initial_readiness_delay_s: u64,
}

impl Default for HpaControllerConfig {
    fn default() -> Self {
        HpaControllerConfig {
            sync_period_s: 15,
            tolerance: 0.1,
            cpu_initialization_period_s: 300,
            initial_readiness_delay_s: 30,
        }
    }
}

/// What one metric of an HPA targets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum MetricTarget {
    /// Resource metric `cpu` with `target.type: Utilization` (percent of the request).
    CpuUtilization {
        /// `averageUtilization`, percent (> 0).
        target_percent: u32,
    },
    /// Resource metric `memory` with `target.type: Utilization`.
    MemoryUtilization {
        /// `averageUtilization`, percent (> 0).
        target_percent: u32,
    },
    /// External metric "requests per second of the workload" with `target.type: AverageValue`.
    RpsPerPod {
        /// `averageValue`, requests per second per pod (> 0).
        target: f64,
    },
}

/// Type of a scaling policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PolicyKind {
    /// A number of pods per period.
    Pods,
    /// A percentage of the replicas at the start of the period.
    Percent,
}

/// One scaling policy (`behavior.scaleUp.policies[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalingPolicy {
    /// Pods or Percent.
    pub kind: PolicyKind,
    /// Pods or percent allowed per period (> 0).
    pub value: u32,
    /// Length of the period in seconds (1..=1800).
    pub period_s: u64,
}

/// How the policies of one direction combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectPolicy {
    /// The policy that allows the largest change (the default).
    Max,
    /// The policy that allows the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// `behavior.scaleUp` or `behavior.scaleDown`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalingRules {
    /// Stabilisation window in seconds (0..=3600).
    pub stabilization_window_s: u64,
    /// How policies combine.
    pub select_policy: SelectPolicy,
    /// The policies.
    pub policies: Vec<ScalingPolicy>,
}

/// `spec.behavior`, defaulted as the API server defaults it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Behavior {
    /// Scale-up rules; default: window 0 s, max of 4 pods and 100 % per 15 s.
    pub scale_up: ScalingRules,
    /// Scale-down rules; default: window 300 s, 100 % per 15 s.
    pub scale_down: ScalingRules,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            scale_up: ScalingRules {
                stabilization_window_s: 0,
                select_policy: SelectPolicy::Max,
                policies: vec![
                    ScalingPolicy {
                        kind: PolicyKind::Pods,
                        value: 4,
                        period_s: 15,
                    },
                    ScalingPolicy {
                        kind: PolicyKind::Percent,
                        value: 100,
                        period_s: 15,
                    },
                ],
            },
            scale_down: ScalingRules {
                stabilization_window_s: 300,
                select_policy: SelectPolicy::Max,
                policies: vec![ScalingPolicy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period_s: 15,
                }],
            },
        }
    }
}

/// One HPA object's spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HpaSpec {
    /// `minReplicas`; default 1.
    pub min_replicas: u32,
    /// `maxReplicas`; default 10.
    pub max_replicas: u32,
    /// Metrics; default CPU utilisation 80 % (the `kubectl autoscale` default).
    pub metrics: Vec<MetricTarget>,
    /// Behaviour; default as the API server defaults it.
    pub behavior: Behavior,
}

impl Default for HpaSpec {
    fn default() -> Self {
        HpaSpec {
            min_replicas: 1,
            max_replicas: 10,
            metrics: vec![MetricTarget::CpuUtilization { target_percent: 80 }],
            behavior: Behavior::default(),
        }
    }
}

impl HpaSpec {
    /// Checks the bounds the API server would check.
    pub fn validate(&self, workload: &str) -> Result<(), PlanError> {
        let bad = |field: &str, reason: String| PlanError::InvalidConfig {
            workload: workload.to_string(),
            field: field.to_string(),
            reason,
        };
        if self.min_replicas == 0 {
            return Err(bad("min_replicas", "must be >= 1".into()));
        }
        if self.min_replicas > self.max_replicas {
            return Err(bad(
                "min_replicas",
                format!(
                    "min_replicas {} > max_replicas {}",
                    self.min_replicas, self.max_replicas
                ),
            ));
        }
        if self.metrics.is_empty() {
            return Err(bad("metrics", "at least one metric is needed".into()));
        }
        for m in &self.metrics {
            match m {
                MetricTarget::CpuUtilization { target_percent }
                | MetricTarget::MemoryUtilization { target_percent } => {
                    if *target_percent == 0 {
                        return Err(bad("metrics.target_percent", "must be > 0".into()));
                    }
                }
                MetricTarget::RpsPerPod { target } => {
                    if !(target.is_finite() && *target > 0.0) {
                        return Err(bad("metrics.target", format!("must be > 0, got {target}")));
                    }
                }
            }
        }
        for (dir, r) in [
            ("scale_up", &self.behavior.scale_up),
            ("scale_down", &self.behavior.scale_down),
        ] {
            if r.stabilization_window_s > 3600 {
                return Err(bad(
                    &format!("behavior.{dir}.stabilization_window_s"),
                    "must be <= 3600".into(),
                ));
            }
            for p in &r.policies {
                if p.value == 0 || p.period_s == 0 || p.period_s > 1800 {
                    return Err(bad(
                        &format!("behavior.{dir}.policies"),
                        format!(
                            "value must be > 0 and period_s in 1..=1800, got value {} period {}",
                            p.value, p.period_s
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The HPA controller state for one workload: its spec plus the recommendation and scale
/// event history that stabilisation and rate limits read.
#[derive(Debug, Clone)]
pub struct Hpa {
    config: HpaControllerConfig,
    spec: HpaSpec,
    recommendations: Vec<(Millis, u32)>,
    scale_up_events: Vec<(Millis, u32)>,
    scale_down_events: Vec<(Millis, u32)>,
    /// Buffers of [`Hpa::resource_replicas`], kept between reconciles (no state).
    scratch: Scratch,
}

/// Result of one metric: a proposal or why there is none.
type Proposal = Result<(u32, String), String>;

impl Hpa {
    /// A controller for one workload; validate the spec first with [`HpaSpec::validate`].
    pub fn new(config: HpaControllerConfig, spec: HpaSpec) -> Self {
        Hpa {
            config,
            spec,
            recommendations: Vec::new(),
            scale_up_events: Vec::new(),
            scale_down_events: Vec::new(),
            scratch: Scratch::default(),
        }
    }

    /// The spec.
    pub fn spec(&self) -> &HpaSpec {
        &self.spec
    }

    /// One reconcile at `now`: the replica count to write, with reasons. Records the
    /// recommendation and, when the count changes, a scale event (as the controller does after
    /// a successful write).
    pub fn reconcile(&mut self, now: Millis, w: &WorkloadObservation) -> ScalingDecision {
        let current = w.spec_replicas;
        let mut reasons = Vec::new();
        let desired;
        if current == 0 && self.spec.min_replicas > 0 {
            reasons.push(Reason::new(
                "hpa.scaling_disabled",
                "spec.replicas is 0: the workload was scaled to zero by hand, autoscaling is off",
            ));
            return ScalingDecision {
                workload: w.name.clone(),
                replicas: 0,
                reasons,
                resources: None,
            };
        } else if current > self.spec.max_replicas {
            reasons.push(Reason::new(
                "hpa.too_many_replicas",
                format!("{current} > max {}", self.spec.max_replicas),
            ));
            desired = self.spec.max_replicas;
        } else if current < self.spec.min_replicas {
            reasons.push(Reason::new(
                "hpa.too_few_replicas",
                format!("{current} < min {}", self.spec.min_replicas),
            ));
            desired = self.spec.min_replicas;
        } else {
            let mut best: Option<u32> = None;
            let mut invalid = 0;
            for k in 0..self.spec.metrics.len() {
                let m = self.spec.metrics[k];
                match self.metric_proposal(now, w, &m) {
                    Ok((n, why)) => {
                        reasons.push(Reason::new("hpa.metric", why));
                        best = Some(best.map_or(n, |b| b.max(n)));
                    }
                    Err(why) => {
                        invalid += 1;
                        reasons.push(Reason::new("hpa.metric_invalid", why));
                    }
                }
            }
            let proposal = match best {
                None => {
                    reasons.push(Reason::new(
                        "hpa.no_metrics",
                        "no metric could be computed: replicas unchanged",
                    ));
                    return ScalingDecision {
                        workload: w.name.clone(),
                        replicas: current,
                        reasons,
                        resources: None,
                    };
                }
                Some(p) if invalid > 0 && p < current => {
                    reasons.push(Reason::new(
                        "hpa.invalid_metric_no_scale_down",
                        format!("a metric is invalid and the proposal {p} would scale down: keep {current}"),
                    ));
                    current
                }
                Some(p) => p,
            };
            desired = self.normalize_with_behaviors(now, current, proposal, &mut reasons);
        }
        if desired != current {
            self.record_scale_event(now, current, desired);
        }
        ScalingDecision {
            workload: w.name.clone(),
            replicas: desired,
            reasons,
            resources: None,
        }
    }

    fn metric_proposal(
        &mut self,
        now: Millis,
        w: &WorkloadObservation,
        m: &MetricTarget,
    ) -> Proposal {
        match m {
            MetricTarget::CpuUtilization { target_percent } => {
                self.resource_replicas(now, w, true, *target_percent)
                    .map(|(n, u)| (n, format!("cpu utilisation {u} % of request vs target {target_percent} %: propose {n}")))
            }
            MetricTarget::MemoryUtilization { target_percent } => {
                self.resource_replicas(now, w, false, *target_percent)
                    .map(|(n, u)| (n, format!("memory utilisation {u} % of request vs target {target_percent} %: propose {n}")))
            }
            MetricTarget::RpsPerPod { target } => {
                let usage = w.rps.ok_or_else(|| "rps: no data".to_string())?;
                if !usage.is_finite() || usage < 0.0 {
                    return Err(format!("rps: invalid value {usage}"));
                }
                // GetExternalPerPodMetricReplicas: ratio against status.replicas.
                let status_replicas = w.pods.iter().filter(|p| !p.deleting).count() as u32;
                if status_replicas == 0 {
                    return Err("rps: no pods to average over".into());
                }
                let ratio = usage / (target * status_replicas as f64);
                let n = if (1.0 - ratio).abs() > self.config.tolerance {
                    (usage / target).ceil() as u32
                } else {
                    status_replicas
                };
                Ok((n, format!("rps {usage:.1} vs {target} per pod over {status_replicas} pods: propose {n}")))
            }
        }
    }

    /// The CPU readiness rule of `groupPods`. A source that knows a pod's readiness but not
    /// its start and ready times (Prometheus without kube-state-metrics' time series) cannot
    /// apply the initialisation period: its pod counts by its Ready condition alone. (Treated
    /// as unready, every pod of such a source was ignored, and the HPA never scaled.)
    fn cpu_unready(&self, now: Millis, p: &PodObservation) -> bool {
        let Some(ready) = p.ready else { return true };
        let Some(sample) = p.cpu else { return true };
        let (Some(start), Some(transition)) = (p.start_time, p.ready_transition) else {
            return !ready;
        };
        let init = Millis::from_secs(self.config.cpu_initialization_period_s);
        if start + init > now {
            // Inside the initialisation period: ignore unready pods and samples that overlap the
            // moment the pod became ready.
            !ready || sample.timestamp < transition + sample.window
        } else {
            // Ignore a pod that is unready and has never been ready.
            let delay = Millis::from_secs(self.config.initial_readiness_delay_s);
            !ready && start + delay > transition
        }
    }

    /// `stabilizeRecommendationWithBehaviors` then `convertDesiredReplicasWithBehaviorRate`.
    fn normalize_with_behaviors(
        &mut self,
        now: Millis,
        current: u32,
        proposal: u32,
        reasons: &mut Vec<Reason>,
    ) -> u32 {
        let b = &self.spec.behavior;
        // maybeInitScaleDownStabilizationWindow
        if self.recommendations.is_empty() {
            self.recommendations.push((now, current));
        }
        let up_cut = now.saturating_sub(Millis::from_secs(b.scale_up.stabilization_window_s));
        let down_cut = now.saturating_sub(Millis::from_secs(b.scale_down.stabilization_window_s));
        let (mut up_rec, mut down_rec) = (proposal, proposal);
        let mut old = None;
        for (i, &(t, r)) in self.recommendations.iter().enumerate() {
            if t > up_cut {
                up_rec = up_rec.min(r);
            }
            if t > down_cut {
                down_rec = down_rec.max(r);
            }
            if t < up_cut && t < down_cut {
                old = Some(i);
            }
        }
        let mut stabilized = current;
        if stabilized < up_rec {
            stabilized = up_rec;
        }
        if stabilized > down_rec {
            stabilized = down_rec;
        }
        match old {
            Some(i) => self.recommendations[i] = (now, proposal),
            None => self.recommendations.push((now, proposal)),
        }
        if stabilized != proposal {
            reasons.push(Reason::new(
                "hpa.stabilization",
                format!("proposal {proposal} stabilised to {stabilized} (up window min {up_rec}, down window max {down_rec})"),
            ));
        }
        let (min, max) = (self.spec.min_replicas, self.spec.max_replicas);
        if stabilized > current {
            let mut limit = self.scale_up_limit(now, current);
            if limit < current {
                limit = current;
            }
            let allowed = max.min(limit);
            if stabilized > allowed {
                let rule = if allowed == max && max < limit {
                    "hpa.max_replicas"
                } else {
                    "hpa.scale_up_limit"
                };
                reasons.push(Reason::new(
                    rule,
                    format!("{stabilized} capped to {allowed} (policy limit {limit}, max {max})"),
                ));
                return allowed;
            }
        } else if stabilized < current {
            let mut limit = self.scale_down_limit(now, current);
            if limit > current {
                limit = current;
            }
            let allowed = min.max(limit);
            if stabilized < allowed {
                let rule = if allowed == min && min > limit {
                    "hpa.min_replicas"
                } else {
                    "hpa.scale_down_limit"
                };
                reasons.push(Reason::new(
                    rule,
                    format!("{stabilized} raised to {allowed} (policy limit {limit}, min {min})"),
                ));
                return allowed;
            }
        }
        stabilized
    }

    fn change_in_period(events: &[(Millis, u32)], now: Millis, period_s: u64) -> i64 {
        let cut = now.saturating_sub(Millis::from_secs(period_s));
        events
            .iter()
            .filter(|(t, _)| *t > cut)
            .map(|(_, n)| *n as i64)
            .sum()
    }

    fn scale_up_limit(&self, now: Millis, current: u32) -> u32 {
        let rules = &self.spec.behavior.scale_up;
        let pick: fn(i64, i64) -> i64 = match rules.select_policy {
            SelectPolicy::Disabled => return current,
            SelectPolicy::Min => i64::min,
            SelectPolicy::Max => i64::max,
        };
        let mut result = if rules.select_policy == SelectPolicy::Min {
            i64::MAX
        } else {
            i64::MIN
        };
        for p in &rules.policies {
            let added = Self::change_in_period(&self.scale_up_events, now, p.period_s);
            let deleted = Self::change_in_period(&self.scale_down_events, now, p.period_s);
            let start = current as i64 - added + deleted;
            let proposed = match p.kind {
                PolicyKind::Pods => start + p.value as i64,
                PolicyKind::Percent => {
                    (start as f64 * (1.0 + p.value as f64 / 100.0)).ceil() as i64
                }
            };
            result = pick(result, proposed);
        }
        result.clamp(0, u32::MAX as i64) as u32
    }

    fn scale_down_limit(&self, now: Millis, current: u32) -> u32 {
        let rules = &self.spec.behavior.scale_down;
        let pick: fn(i64, i64) -> i64 = match rules.select_policy {
            SelectPolicy::Disabled => return current,
            SelectPolicy::Min => i64::max,
            SelectPolicy::Max => i64::min,
        };
        let mut result = if rules.select_policy == SelectPolicy::Min {
            i64::MIN
        } else {
            i64::MAX
        };
        for p in &rules.policies {
            let added = Self::change_in_period(&self.scale_up_events, now, p.period_s);
            let deleted = Self::change_in_period(&self.scale_down_events, now, p.period_s);
            let start = current as i64 - added + deleted;
            let proposed = match p.kind {
                PolicyKind::Pods => start - p.value as i64,
                PolicyKind::Percent => (start as f64 * (1.0 - p.value as f64 / 100.0)) as i64,
            };
            result = pick(result, proposed);
        }
        result.clamp(0, u32::MAX as i64) as u32
    }

    fn record_scale_event(&mut self, now: Millis, prev: u32, new: u32) {
        let longest = |r: &ScalingRules| r.policies.iter().map(|p| p.period_s).max().unwrap_or(0);
        let keep_up = now.saturating_sub(Millis::from_secs(longest(&self.spec.behavior.scale_up)));
        let keep_down =
            now.saturating_sub(Millis::from_secs(longest(&self.spec.behavior.scale_down)));
        self.scale_up_events.retain(|(t, _)| *t > keep_up);
        self.scale_down_events.retain(|(t, _)| *t > keep_down);
        if new > prev {
            self.scale_up_events.push((now, new - prev));
        } else {
            self.scale_down_events.push((now, prev - new));
        }
    }
}

/// The HPA as an [`Autoscaler`]: one HPA object per workload, all sharing one controller config.
#[derive(Debug, Clone)]
pub struct HpaAutoscaler {
    name: String,
    config: HpaControllerConfig,
    default_spec: HpaSpec,
    specs: BTreeMap<String, HpaSpec>,
    controllers: WorkloadTable<Hpa>,
}

impl HpaAutoscaler {
    /// An HPA for every workload of the snapshot, with `default_spec` unless `overrides` names
    /// the workload. Validates every spec.
    pub fn new(
        name: impl Into<String>,
        config: HpaControllerConfig,
        default_spec: HpaSpec,
        overrides: BTreeMap<String, HpaSpec>,
    ) -> Result<Self, PlanError> {
        if config.sync_period_s == 0 {
            return Err(PlanError::InvalidConfig {
                workload: "*".into(),
                field: "sync_period_s".into(),
                reason: "must be > 0".into(),
            });
        }
        if !(config.tolerance.is_finite() && config.tolerance >= 0.0) {
            return Err(PlanError::InvalidConfig {
                workload: "*".into(),
                field: "tolerance".into(),
                reason: format!("must be >= 0, got {}", config.tolerance),
            });
        }
        default_spec.validate("*")?;
        for (w, s) in &overrides {
            s.validate(w)?;
        }
        Ok(HpaAutoscaler {
            name: name.into(),
            config,
            default_spec,
            specs: overrides,
            controllers: WorkloadTable::new(),
        })
    }
}

impl Autoscaler for HpaAutoscaler {
    fn name(&self) -> &str {
        &self.name
    }

    fn sync_period(&self) -> Millis {
        Millis::from_secs(self.config.sync_period_s)
    }

    fn decide(&mut self, snapshot: &ClusterSnapshot, _graph: &AppGraph) -> Vec<ScalingDecision> {
        snapshot
            .workloads
            .iter()
            .enumerate()
            .map(|(i, w)| {
                // Found at its position in the snapshot; the name is copied only for a new one.
                let (config, specs, default) = (&self.config, &self.specs, &self.default_spec);
                let (h, _) = self.controllers.get_or_insert_with(i, &w.name, || {
                    Hpa::new(
                        config.clone(),
                        specs.get(&w.name).unwrap_or(default).clone(),
                    )
                });
                h.reconcile(snapshot.time, w)
            })
            .collect()
    }
}
