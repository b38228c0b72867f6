//! The safety layer around any autoscaler: [`Guarded`] passes every proposal through
//! [`crate::safety::guard`] (fallback to the reactive HPA rule, no scale-down on missing data,
//! the confidence gate, hysteresis, cooldowns, step limits, bounds) and then through the memory
//! budget, so the HPA, static and PHPA baselines, the predictive planner and any learned policy
//! all obey the same rules.
//!
//! What is wrapped implements [`Propose`]: a plan per workload, before safety, with the health
//! the planner measured. Every [`Autoscaler`] proposes its decisions as they are
//! ([`Propose`] has a blanket impl), so `Guarded::new(hpa, ..)` works for any autoscaler.

use std::collections::BTreeMap;

use graphscale_core::{
    AppGraph, Autoscaler, ClusterSnapshot, JobId, Millis, PodPhase, PodResources, Reason,
    ScalingDecision, Trained, TrainingJob, WorkloadFacts, WorkloadObservation,
};
use serde::{Deserialize, Serialize};

use crate::cpu_request::{self, CpuNeed, CpuRequestConfig};
use crate::hpa::{Hpa, HpaControllerConfig, HpaSpec};
use crate::safety::{guard, Health, Proposal, SafetyConfig, SafetyState};
use crate::table::WorkloadTable;
use crate::PlanError;

/// One workload's plan before the safety layer.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadPlan {
    /// The workload.
    pub workload: String,
    /// Planned replicas, interval width and the planner's reasons (its `hpa_rule` is filled in
    /// by the wrapper's fallback when it has one).
    pub proposal: Proposal,
    /// The health the planner measured; `None`: the wrapper checks the metrics itself.
    pub health: Option<Health>,
    /// New pod resources, with the reason that follows the safety rules' reasons.
    pub resize: Option<(PodResources, Reason)>,
    /// What the CPU request is sized from once the safety layer has decided the replicas
    /// ([`crate::cpu_request`]); `None`: the CPU request is left alone.
    pub cpu: Option<CpuNeed>,
}

/// Proposes plans for the safety layer to check. See the module documentation.
pub trait Propose {
    /// Name in reports.
    fn name(&self) -> &str;
    /// How often the control loop decides.
    fn sync_period(&self) -> Millis;
    /// Records the snapshot before [`Propose::propose`] (see [`Autoscaler::observe`]).
    fn observe(&mut self, snapshot: &ClusterSnapshot, graph: &AppGraph) {
        let _ = (snapshot, graph);
    }
    /// One plan per workload.
    fn propose(&mut self, snapshot: &ClusterSnapshot, graph: &AppGraph) -> Vec<WorkloadPlan>;
    /// Fits due after the last proposal (see [`Autoscaler::training_jobs`]).
    fn training_jobs(&mut self) -> Vec<TrainingJob> {
        Vec::new()
    }
    /// Installs a finished fit (see [`Autoscaler::install`]).
    fn install(&mut self, job: JobId, trained: Trained) {
        let _ = (job, trained);
    }
}

impl<A: Autoscaler> Propose for A {
    fn name(&self) -> &str {
        Autoscaler::name(self)
    }
    fn sync_period(&self) -> Millis {
        Autoscaler::sync_period(self)
    }
    fn observe(&mut self, snapshot: &ClusterSnapshot, graph: &AppGraph) {
        Autoscaler::observe(self, snapshot, graph)
    }
    fn propose(&mut self, snapshot: &ClusterSnapshot, graph: &AppGraph) -> Vec<WorkloadPlan> {
        self.decide(snapshot, graph)
            .into_iter()
            .map(|d| WorkloadPlan {
                workload: d.workload,
                proposal: Proposal {
                    replicas: Some(d.replicas),
                    relative_width: None,
                    reasons: d.reasons,
                    hpa_rule: None,
                },
                health: None,
                resize: d.resources.map(|r| {
                    (
                        r,
                        Reason::new("resize", "the autoscaler resized the pods' resources"),
                    )
                }),
                cpu: None,
            })
            .collect()
    }
    fn training_jobs(&mut self) -> Vec<TrainingJob> {
        Autoscaler::training_jobs(self)
    }
    fn install(&mut self, job: JobId, trained: Trained) {
        Autoscaler::install(self, job, trained)
    }
}

/// Settings of the wrapper; every field has a documented default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardConfig {
    /// The safety rules (their `min_replicas`/`max_replicas` are the bounds of workloads that
    /// [`Guarded::with_bounds`] does not name); default [`SafetyConfig::default`].
    pub safety: SafetyConfig,
    /// Memory increases that would put the total memory request over this many GiB are held;
    /// default none.
    pub memory_budget_gib: Option<f64>,
    /// A CPU sample older than this is stale, seconds (for proposals without their own health);
    /// default 60.
    pub stale_after_s: f64,
    /// CPU requests sized to the decided replicas ([`crate::cpu_request`]) for plans that carry
    /// a [`WorkloadPlan::cpu`]; default none.
    pub cpu_requests: Option<CpuRequestConfig>,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            safety: SafetyConfig::default(),
            memory_budget_gib: None,
            stale_after_s: 60.0,
            cpu_requests: None,
        }
    }
}

impl GuardConfig {
    /// The rules that leave a baseline's own decisions as they are: bounds `min..=max`, no scale-down
    /// on missing data, and nothing else (no hysteresis, cooldown or step limit beyond its own).
    pub fn bounds_only(min_replicas: u32, max_replicas: u32) -> Self {
        GuardConfig {
            safety: SafetyConfig {
                min_replicas,
                max_replicas,
                up_threshold: 0.0,
                down_threshold: 0.0,
                cooldown_up_s: 0.0,
                cooldown_down_s: 0.0,
                max_up_factor: 1000.0,
                min_up_pods: u32::MAX,
                max_down_share: 1.0,
                max_relative_width: 1e9,
                max_recent_error: 1e9,
            },
            ..GuardConfig::default()
        }
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<(), PlanError> {
        self.safety.validate()?;
        if let Some(b) = self.memory_budget_gib {
            if !(b.is_finite() && b > 0.0) {
                return Err(PlanError::InvalidConfig {
                    workload: "*".into(),
                    field: "memory_budget_gib".into(),
                    reason: format!("must be > 0, got {b}"),
                });
            }
        }
        if !(self.stale_after_s.is_finite() && self.stale_after_s > 0.0) {
            return Err(PlanError::InvalidConfig {
                workload: "*".into(),
                field: "stale_after_s".into(),
                reason: format!("must be > 0, got {}", self.stale_after_s),
            });
        }
        if let Some(c) = &self.cpu_requests {
            c.validate()?;
        }
        Ok(())
    }
}

/// The reactive HPA rule the wrapper falls back to, one controller per workload.
#[derive(Debug, Clone)]
struct Fallback {
    config: HpaControllerConfig,
    spec: HpaSpec,
    controllers: WorkloadTable<Hpa>,
}

/// Any [`Propose`] (every [`Autoscaler`] among them) behind the safety layer. See the module
/// documentation.
#[derive(Debug, Clone)]
pub struct Guarded<A> {
    inner: A,
    cfg: GuardConfig,
    bounds: BTreeMap<String, (u32, u32)>,
    /// Each workload's safety state and its bounds from `bounds` (looked up once).
    states: WorkloadTable<(SafetyState, Option<(u32, u32)>)>,
    fallback: Option<Fallback>,
}

impl<A: Propose> Guarded<A> {
    /// `inner` behind the rules of `cfg`. Validates the config.
    pub fn new(inner: A, cfg: GuardConfig) -> Result<Self, PlanError> {
        cfg.validate()?;
        Ok(Guarded {
            inner,
            cfg,
            bounds: BTreeMap::new(),
            states: WorkloadTable::new(),
            fallback: None,
        })
    }

    /// Per-workload bounds from static facts (the others keep the config's).
    pub fn with_bounds(mut self, facts: &[WorkloadFacts]) -> Result<Self, PlanError> {
        for f in facts {
            if f.min_replicas > f.max_replicas {
                return Err(PlanError::InvalidConfig {
                    workload: f.name.clone(),
                    field: "min_replicas".into(),
                    reason: format!("min {} > max {}", f.min_replicas, f.max_replicas),
                });
            }
            self.bounds
                .insert(f.name.clone(), (f.min_replicas, f.max_replicas));
        }
        // States made before these bounds take them from the map again.
        let bounds = &self.bounds;
        self.states
            .values_mut()
            .for_each(|(name, (_, b))| *b = bounds.get(name).copied());
        Ok(self)
    }

    /// Falls back to the HPA rule `spec` (reconciled every decision) when a plan is missing or
    /// its health is bad. Validates the spec.
    pub fn with_fallback(
        mut self,
        config: HpaControllerConfig,
        spec: HpaSpec,
    ) -> Result<Self, PlanError> {
        spec.validate("*")?;
        self.fallback = Some(Fallback {
            config,
            spec,
            controllers: WorkloadTable::new(),
        });
        Ok(self)
    }

    /// The wrapped autoscaler.
    pub fn inner(&self) -> &A {
        &self.inner
    }

    /// The wrapped autoscaler, mutable.
    pub fn inner_mut(&mut self) -> &mut A {
        &mut self.inner
    }

    fn health(&self, now: Millis, w: &WorkloadObservation) -> Health {
        metric_health(self.cfg.stale_after_s, now, w, false)
    }
}

/// Health of a workload's metrics: a missing request rate (when `needs_rps`), no CPU sample
/// on any ready pod, or a newest CPU sample older than `stale_after_s`.
pub fn metric_health(
    stale_after_s: f64,
    now: Millis,
    w: &WorkloadObservation,
    needs_rps: bool,
) -> Health {
    let mut h = Health::default();
    if needs_rps {
        match w.rps {
            None => h.missing = Some("request rate".into()),
            Some(r) if !r.is_finite() || r < 0.0 => {
                h.missing = Some(format!("request rate is {r}"))
            }
            _ => {}
        }
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
                if age > stale_after_s {
                    h.stale = Some(format!(
                        "newest CPU sample {age:.0} s old > {stale_after_s:.0} s"
                    ));
                }
            }
        }
    }
    h
}

impl<A: Propose> Autoscaler for Guarded<A> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn sync_period(&self) -> Millis {
        self.inner.sync_period()
    }

    fn observe(&mut self, snapshot: &ClusterSnapshot, graph: &AppGraph) {
        self.inner.observe(snapshot, graph)
    }

    fn decide(&mut self, snapshot: &ClusterSnapshot, graph: &AppGraph) -> Vec<ScalingDecision> {
        let now = snapshot.time;
        let mut plans = Plans::new(self.inner.propose(snapshot, graph));
        let mut out = Vec::with_capacity(snapshot.workloads.len());
        let mut added = false;
        for (i, w) in snapshot.workloads.iter().enumerate() {
            let plan = plans.take(i, &w.name);
            // The HPA rule sees the pods at the reference CPU request when the plan lowered it
            // (its utilisation is usage over request).
            let cpu_need = plan.as_ref().and_then(|p| p.cpu);
            let at_reference = cpu_need
                .filter(|c| c.current_mc < c.reference_mc && self.fallback.is_some())
                .map(|c| at_cpu_request(w, c.reference_mc));
            let w_hpa = at_reference.as_ref().unwrap_or(w);
            // The fallback reconciles every decision, so its stabilisation window stays current.
            let hpa_rule = self.fallback.as_mut().map(|f| {
                let (config, spec) = (&f.config, &f.spec);
                // Found at its position in the snapshot; the name is copied only for a new one.
                let (d, _) = f
                    .controllers
                    .get_or_insert_with(i, &w.name, || Hpa::new(config.clone(), spec.clone()));
                let d = d.reconcile(now, w_hpa);
                let why = d
                    .reasons
                    .iter()
                    .map(|r| r.detail.clone())
                    .collect::<Vec<_>>()
                    .join("; ");
                (d.replicas, why)
            });
            let (mut proposal, health, resize) = match plan {
                Some(p) => {
                    let health = match p.health {
                        Some(h) => h,
                        // An autoscaler that does not judge its own input keeps its decision,
                        // unless it scales down on missing or stale metrics.
                        None if self.fallback.is_none()
                            && p.proposal.replicas.is_some_and(|r| r >= w.spec_replicas) =>
                        {
                            Health::default()
                        }
                        None => self.health(now, w),
                    };
                    (p.proposal, health, p.resize)
                }
                None => (
                    Proposal {
                        replicas: None,
                        relative_width: None,
                        reasons: vec![Reason::new(
                            "safety.no_plan",
                            format!("{} proposed nothing for the workload", self.inner.name()),
                        )],
                        hpa_rule: None,
                    },
                    self.health(now, w),
                    None,
                ),
            };
            if proposal.hpa_rule.is_none() {
                proposal.hpa_rule = hpa_rule;
            }
            let bounds = &self.bounds;
            let ((state, bound), new) = self.states.get_or_insert_with(i, &w.name, || {
                (SafetyState::default(), bounds.get(&w.name).copied())
            });
            added |= new;
            let bounded;
            let cfg = match *bound {
                Some((lo, hi)) => {
                    bounded = SafetyConfig {
                        min_replicas: lo,
                        max_replicas: hi,
                        ..self.cfg.safety.clone()
                    };
                    &bounded
                }
                None => &self.cfg.safety,
            };
            let mut d = guard(cfg, state, now, &w.name, w.spec_replicas, proposal, &health);
            if let Some((to, why)) = resize {
                d.resources = Some(to);
                d.reasons.push(why);
            }
            if let (Some(c), Some(need)) = (&self.cfg.cpu_requests, cpu_need) {
                let fallback = d.reasons.iter().any(|r| r.rule == "safety.fallback_hpa");
                let current = w.pods.first().map(|p| PodResources {
                    requests: p.requests,
                    limits: p.limits,
                });
                let since = state
                    .last_cpu_resize
                    .map(|t| now.saturating_sub(t).as_secs_f64());
                if let (Some((mc, why)), Some(cur)) = (
                    cpu_request::size(c, &need, d.replicas, fallback, since),
                    current,
                ) {
                    let mut to = d.resources.unwrap_or(cur);
                    to.requests.cpu_millicores = mc;
                    to.limits.cpu_millicores = to.limits.cpu_millicores.max(mc);
                    if to.problem().is_none() {
                        d.resources = Some(to);
                        d.reasons.push(Reason::new("vertical.cpu_request", why));
                        state.last_cpu_resize = Some(now);
                    }
                }
            }
            out.push(d);
        }
        if let Some(b) = self.cfg.memory_budget_gib {
            hold_resizes_over_budget(b, snapshot, &mut out);
        }
        // Workloads gone from the cluster keep no state (there are more states than workloads,
        // or as many after one was added in place of another).
        if added || self.states.len() != snapshot.workloads.len() {
            let present = snapshot.by_name();
            self.states.retain(|k| present.contains_key(k));
            if let Some(f) = &mut self.fallback {
                f.controllers.retain(|k| present.contains_key(k));
            }
        }
        out
    }

    fn training_jobs(&mut self) -> Vec<TrainingJob> {
        self.inner.training_jobs()
    }

    fn install(&mut self, job: JobId, trained: Trained) {
        self.inner.install(job, trained)
    }
}

/// The inner plans of one round, looked up by workload: in the snapshot's order (the usual
/// case, no search), else by name.
struct Plans {
    plans: Vec<Option<WorkloadPlan>>,
    by_name: Option<std::collections::HashMap<String, usize>>,
}

impl Plans {
    fn new(plans: Vec<WorkloadPlan>) -> Self {
        Plans {
            plans: plans.into_iter().map(Some).collect(),
            by_name: None,
        }
    }

    /// The plan for `name`, expected at position `i`.
    fn take(&mut self, i: usize, name: &str) -> Option<WorkloadPlan> {
        if self
            .plans
            .get(i)
            .and_then(|p| p.as_ref())
            .is_some_and(|p| p.workload == name)
        {
            return self.plans[i].take();
        }
        let plans = &self.plans;
        let index = self.by_name.get_or_insert_with(|| {
            plans
                .iter()
                .enumerate()
                .filter_map(|(k, p)| p.as_ref().map(|p| (p.workload.clone(), k)))
                .collect()
        });
        let k = *index.get(name)?;
        self.plans[k].take()
    }
}

/// `w` with every pod's CPU request at `reference_mc`.
fn at_cpu_request(w: &WorkloadObservation, reference_mc: f64) -> WorkloadObservation {
    let mut v = w.clone();
    for p in &mut v.pods {
        p.requests.cpu_millicores = reference_mc;
    }
    v
}

/// Drops the memory increases of `decisions` when the memory they would request in all (replicas
/// x memory request, summed over workloads) is over `budget_gib`: the replica plan kept within
/// the budget, and a resize must not push it over. Decreases stay.
pub fn hold_resizes_over_budget(
    budget_gib: f64,
    snapshot: &ClusterSnapshot,
    decisions: &mut [ScalingDecision],
) {
    let by_name = snapshot.by_name();
    let current = |d: &ScalingDecision| {
        by_name
            .get(d.workload.as_str())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memory_increase_that_would_break_the_budget_is_held_a_decrease_is_not() {
        use graphscale_core::{PodObservation, Resources};
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

    /// Proposes 2 replicas of `w` with the given health and CPU need.
    struct Fixed(Health, CpuNeed);

    impl Propose for Fixed {
        fn name(&self) -> &str {
            "fixed"
        }
        fn sync_period(&self) -> Millis {
            Millis::from_secs(15)
        }
        fn propose(&mut self, s: &ClusterSnapshot, _: &AppGraph) -> Vec<WorkloadPlan> {
            vec![WorkloadPlan {
                workload: s.workloads[0].name.clone(),
                proposal: Proposal {
                    replicas: Some(2),
                    relative_width: None,
                    reasons: vec![],
                    hpa_rule: None,
                },
                health: Some(self.0.clone()),
                resize: None,
                cpu: Some(self.1),
            }]
        }
    }

    #[test]
    fn the_cpu_request_follows_the_decided_replicas_and_the_fallback_sees_the_reference() {
        use graphscale_core::{CpuSample, PodObservation, Resources};
        // Two pods lowered to 100 m of a 500 m reference, each using 90 m.
        let now = Millis::from_secs(600);
        let pod = |i: u32| PodObservation {
            name: format!("p{i}").into(),
            phase: PodPhase::Running,
            deleting: false,
            start_time: Some(Millis(0)),
            ready: Some(true),
            ready_transition: Some(Millis(0)),
            cpu: Some(CpuSample {
                millicores: 90.0,
                timestamp: now,
                window: Millis(15_000),
            }),
            memory_mib: Some(100.0),
            requests: Resources::new(100.0, 256.0),
            limits: Resources::new(1000.0, 512.0),
        };
        let snap = ClusterSnapshot {
            time: now,
            workloads: vec![WorkloadObservation {
                name: "w".into(),
                spec_replicas: 2,
                pods: vec![pod(0), pod(1)],
                rps: Some(8.0),
                latency_p95_ms: None,
                error_rate: None,
                backlog: None,
            }],
            edges: vec![],
        };
        let graph = AppGraph::new(
            "g",
            vec![graphscale_core::Node::new(
                "w",
                graphscale_core::NodeKind::Service,
            )],
            vec![],
        )
        .unwrap();
        let need = CpuNeed {
            reference_mc: 500.0,
            current_mc: 100.0,
            idle_mc: 10.0,
            cpu_ms_per_request: 20.0,
            demand_rps: 12.0,
            used_per_pod_mc: Some(90.0),
        };
        let guarded = |health: Health| {
            let cfg = GuardConfig {
                cpu_requests: Some(CpuRequestConfig::default()),
                ..GuardConfig::default()
            };
            let spec = HpaSpec {
                min_replicas: 1,
                max_replicas: 10,
                ..HpaSpec::default()
            };
            Guarded::new(Fixed(health, need), cfg)
                .unwrap()
                .with_fallback(HpaControllerConfig::default(), spec)
                .unwrap()
        };
        // Healthy: 2 replicas, each planned at 10 + 20 x 6 = 130 m, / 0.8 = 162.5 -> 163 m;
        // limit kept.
        let mut g = guarded(Health::default());
        let d = g.decide(&snap, &graph).remove(0);
        assert_eq!(d.replicas, 2);
        let to = d.resources.expect("a resize");
        assert_eq!(to.requests.cpu_millicores, 163.0);
        assert_eq!(to.requests.memory_mib, 256.0);
        assert_eq!(to.limits.cpu_millicores, 1000.0);
        assert!(d.reasons.iter().any(|r| r.rule == "vertical.cpu_request"));
        // Unhealthy: the HPA rule decides on the reference request (90 / 500 = 18 %: fewer
        // replicas; on the lowered 100 m it would be 90 % and three), and the request returns
        // to the reference.
        let mut g = guarded(Health {
            recent_error: Some(0.9),
            ..Health::default()
        });
        let d = g.decide(&snap, &graph).remove(0);
        assert!(
            d.reasons.iter().any(|r| r.rule == "safety.fallback_hpa"),
            "{d:?}"
        );
        assert!(d.replicas <= 2, "{d:?}");
        assert_eq!(d.resources.unwrap().requests.cpu_millicores, 500.0);
        // Without the setting the CPU request is left alone.
        let mut g = Guarded::new(Fixed(Health::default(), need), GuardConfig::default()).unwrap();
        assert!(g.decide(&snap, &graph).remove(0).resources.is_none());
    }
}
