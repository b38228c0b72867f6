//! Vertical recommendations in the style of the Kubernetes VPA recommender: CPU and memory
//! requests from usage percentiles of the service's pods, with a safety margin, lower and
//! upper bounds, limits kept in the current limit-to-request proportion, and a memory bump
//! after an out-of-memory kill.
//!
//! The CPU target also covers the forecast peak: when the horizontal plan expects more load
//! per replica than the usage seen so far, the request follows the forecast.

use std::collections::VecDeque;

use graphscale_core::{PodPhase, PodResources, Resources, WorkloadObservation};
use serde::{Deserialize, Serialize};

/// Recommender settings; every field has a documented default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerticalConfig {
    /// Samples kept per service (one per pod per decision); default 2,880.
    pub window: usize,
    /// Percentile of usage the target request covers; default 0.9 (VPA's target).
    pub target_percentile: f64,
    /// Lower bound percentile; default 0.5.
    pub lower_percentile: f64,
    /// Upper bound percentile; default 0.95.
    pub upper_percentile: f64,
    /// Margin added to every recommendation; default 0.15 (VPA's safety margin).
    pub margin: f64,
    /// Memory recommendation is multiplied by this after an OOM kill; default 1.2 (VPA's bump).
    pub oom_bump: f64,
    /// Smallest CPU request recommended, millicores; default 10.
    pub min_cpu_millicores: f64,
    /// Smallest memory request recommended, MiB; default 16.
    pub min_memory_mib: f64,
    /// What the autoscaler changes on the pods; default `off` (recommend only).
    pub update: VerticalUpdate,
    /// Usage samples needed before an update, default 120 (30 minutes of one pod, or fewer
    /// minutes of more pods, at one sample per pod per 15 s decision).
    pub min_samples: usize,
}

/// What the vertical part of the plan changes on the pods.
///
/// CPU is never changed here: the horizontal plan sizes replicas by CPU per request, and a CPU
/// request that followed usage would shrink with every scale-out that lowered usage per pod
/// (the conflict the Kubernetes docs warn of when HPA and VPA both act on CPU). Memory does not
/// drive the replica count, so it can follow usage. CPU requests sized *with* the replica plan,
/// which is made on a fixed reference request, are [`crate::cpu_request`]'s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerticalUpdate {
    /// Recommend only: decisions carry no resources.
    #[default]
    Off,
    /// Resize the memory request and limit in place, VPA updater style: when the current
    /// request is outside the recommendation's bounds, or after an OOM kill that the target
    /// now covers.
    Memory,
}

impl Default for VerticalConfig {
    fn default() -> Self {
        VerticalConfig {
            window: 2880,
            target_percentile: 0.9,
            lower_percentile: 0.5,
            upper_percentile: 0.95,
            margin: 0.15,
            oom_bump: 1.2,
            min_cpu_millicores: 10.0,
            min_memory_mib: 16.0,
            update: VerticalUpdate::Off,
            min_samples: 120,
        }
    }
}

/// A recommendation for one service's pods.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ResourceRecommendation {
    /// Requests to set.
    pub target: Resources,
    /// Below this the pods are surely under-provisioned.
    pub lower_bound: Resources,
    /// Above this the pods are surely over-provisioned.
    pub upper_bound: Resources,
    /// Limits, in the current limit-to-request proportion.
    pub limits: Resources,
    /// OOM kills seen so far.
    pub oom_kills: u32,
}

/// Usage history of one service and its recommendation.
#[derive(Debug, Clone, Default)]
pub struct VerticalRecommender {
    cpu: VecDeque<f64>,
    mem: VecDeque<f64>,
    oom_kills: u32,
    requests: Resources,
    limits: Resources,
    /// OOM kills already answered by a resize.
    oom_answered: u32,
}

fn percentile(v: &VecDeque<f64>, q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s: Vec<f64> = v.iter().copied().collect();
    graphscale_core::stats::quantile(&mut s, q)
}

impl VerticalRecommender {
    /// Adds the CPU and memory samples of the workload's ready pods. A pod whose working set
    /// reached its memory limit counts as an OOM kill.
    pub fn observe(&mut self, cfg: &VerticalConfig, w: &WorkloadObservation) {
        for p in &w.pods {
            if p.phase != PodPhase::Running || p.deleting {
                continue;
            }
            self.requests = p.requests;
            self.limits = p.limits;
            if let Some(c) = p.cpu.map(|c| c.millicores).filter(|c| c.is_finite()) {
                push(&mut self.cpu, c.max(0.0), cfg.window);
            }
            if let Some(m) = p.memory_mib.filter(|m| m.is_finite()) {
                push(&mut self.mem, m.max(0.0), cfg.window);
                if p.limits.memory_mib > 0.0 && m >= p.limits.memory_mib {
                    self.oom_kills += 1;
                }
            }
        }
    }

    /// The recommendation, given the CPU one replica is planned to use at the forecast peak
    /// (`planned_cpu_per_replica`, millicores), once there are samples.
    pub fn recommend(
        &self,
        cfg: &VerticalConfig,
        planned_cpu_per_replica: Option<f64>,
    ) -> Option<ResourceRecommendation> {
        let m = 1.0 + cfg.margin;
        let bump = if self.oom_kills > 0 {
            cfg.oom_bump
        } else {
            1.0
        };
        let cpu = |q| percentile(&self.cpu, q).map(|c| (c * m).max(cfg.min_cpu_millicores));
        let mem = |q| percentile(&self.mem, q).map(|x| (x * m * bump).max(cfg.min_memory_mib));
        let mut target = Resources::new(cpu(cfg.target_percentile)?, mem(cfg.target_percentile)?);
        if let Some(p) = planned_cpu_per_replica.filter(|p| p.is_finite() && *p > 0.0) {
            target.cpu_millicores = target.cpu_millicores.max(p * m);
        }
        let lower = Resources::new(cpu(cfg.lower_percentile)?, mem(cfg.lower_percentile)?);
        let upper = Resources::new(
            cpu(cfg.upper_percentile)?.max(target.cpu_millicores),
            mem(cfg.upper_percentile)?.max(target.memory_mib),
        );
        let ratio = |l: f64, r: f64| if r > 0.0 && l >= r { l / r } else { 1.0 };
        let limits = Resources::new(
            target.cpu_millicores * ratio(self.limits.cpu_millicores, self.requests.cpu_millicores),
            target.memory_mib * ratio(self.limits.memory_mib, self.requests.memory_mib),
        );
        Some(ResourceRecommendation {
            target,
            lower_bound: lower,
            upper_bound: upper,
            limits,
            oom_kills: self.oom_kills,
        })
    }
}

impl VerticalRecommender {
    /// The resources to set now under `cfg.update`, with why, given the latest recommendation:
    /// the memory request moves to the target (and the limit to the recommended limit) when the
    /// current request is outside `[lower_bound, upper_bound]` (the VPA updater's rule), or
    /// when an OOM kill happened since the last resize and the target is above the request.
    /// CPU stays as it is ([`VerticalUpdate`] says why). `None`: leave the pods alone.
    pub fn update(
        &mut self,
        cfg: &VerticalConfig,
        rec: &ResourceRecommendation,
    ) -> Option<(PodResources, String)> {
        if cfg.update == VerticalUpdate::Off || self.mem.len() < cfg.min_samples.max(1) {
            return None;
        }
        let cur = self.requests.memory_mib;
        if !(cur > 0.0 && cur.is_finite()) {
            return None;
        }
        let (lo, hi, target) = (
            rec.lower_bound.memory_mib,
            rec.upper_bound.memory_mib,
            rec.target.memory_mib,
        );
        let why = if self.oom_kills > self.oom_answered && target > cur {
            format!(
                "{} OOM kill(s) since the last resize: memory request {cur:.0} MiB -> {target:.0} MiB",
                self.oom_kills - self.oom_answered
            )
        } else if cur < lo || cur > hi {
            format!(
                "memory request {cur:.0} MiB outside the recommendation's bounds [{lo:.0}, {hi:.0}] MiB: -> {target:.0} MiB"
            )
        } else {
            return None;
        };
        let limit = rec.limits.memory_mib.max(target);
        self.oom_answered = self.oom_kills;
        let to = PodResources {
            requests: Resources::new(self.requests.cpu_millicores, target),
            limits: Resources::new(self.limits.cpu_millicores, limit),
        };
        to.problem()
            .is_none()
            .then(|| (to, format!("{why} (limit {limit:.0} MiB)")))
    }
}

fn push(v: &mut VecDeque<f64>, x: f64, cap: usize) {
    if v.len() >= cap.max(1) {
        v.pop_front();
    }
    v.push_back(x);
}

#[cfg(test)]
mod tests {
    use super::*;
    use graphscale_core::{CpuSample, Millis, PodObservation};

    fn w(cpu: f64, mem: f64) -> WorkloadObservation {
        WorkloadObservation {
            name: "a".into(),
            spec_replicas: 1,
            pods: vec![PodObservation {
                name: "a-0".into(),
                phase: PodPhase::Running,
                deleting: false,
                start_time: Some(Millis(0)),
                ready: Some(true),
                ready_transition: Some(Millis(0)),
                cpu: Some(CpuSample {
                    millicores: cpu,
                    timestamp: Millis(0),
                    window: Millis(15_000),
                }),
                memory_mib: Some(mem),
                requests: Resources::new(200.0, 100.0),
                limits: Resources::new(500.0, 200.0),
            }],
            rps: None,
            latency_p95_ms: None,
            error_rate: None,
            backlog: None,
        }
    }

    #[test]
    fn percentiles_margin_limits_and_oom_bump() {
        let cfg = VerticalConfig::default();
        let mut r = VerticalRecommender::default();
        assert!(r.recommend(&cfg, None).is_none());
        for i in 1..=100 {
            r.observe(&cfg, &w(i as f64, 50.0));
        }
        let rec = r.recommend(&cfg, None).unwrap();
        assert!((rec.target.cpu_millicores - 90.0 * 1.15).abs() < 1e-9);
        assert!((rec.lower_bound.cpu_millicores - 50.0 * 1.15).abs() < 1e-9);
        assert!((rec.upper_bound.cpu_millicores - 95.0 * 1.15).abs() < 1e-9);
        assert!((rec.limits.cpu_millicores - rec.target.cpu_millicores * 2.5).abs() < 1e-9);
        assert!((rec.target.memory_mib - 57.5).abs() < 1e-9);
        // The forecast peak raises the CPU target.
        let rec = r.recommend(&cfg, Some(150.0)).unwrap();
        assert!((rec.target.cpu_millicores - 172.5).abs() < 1e-9);
        // An OOM kill bumps memory.
        r.observe(&cfg, &w(10.0, 200.0));
        let rec = r.recommend(&cfg, None).unwrap();
        assert_eq!(rec.oom_kills, 1);
        assert!(rec.target.memory_mib >= 57.5 * 1.2 - 1e-9);
    }

    #[test]
    fn memory_follows_usage_outside_the_bounds_and_after_an_oom_kill_cpu_never() {
        let mut cfg = VerticalConfig {
            min_samples: 50,
            ..VerticalConfig::default()
        };
        let mut r = VerticalRecommender::default();
        let step = |r: &mut VerticalRecommender, cfg: &VerticalConfig, obs| {
            r.observe(cfg, &obs);
            let rec = r.recommend(cfg, None).unwrap();
            r.update(cfg, &rec)
        };
        // Usage 40..=59 MiB against a 100 MiB request: recommend only, by default.
        for i in 0..60 {
            assert!(step(&mut r, &cfg, w(50.0, 40.0 + (i % 20) as f64)).is_none());
        }
        cfg.update = VerticalUpdate::Memory;
        let (to, why) = step(&mut r, &cfg, w(50.0, 50.0)).expect("100 MiB is above the bounds");
        // p90 of 40..=59 is 57 (plus the sample of 50): x 1.15.
        assert!(
            (to.requests.memory_mib - 57.0 * 1.15).abs() < 1e-9,
            "{to:?}"
        );
        assert!((to.limits.memory_mib - 2.0 * to.requests.memory_mib).abs() < 1e-9);
        assert_eq!(to.requests.cpu_millicores, 200.0, "CPU is left alone");
        assert_eq!(to.limits.cpu_millicores, 500.0);
        assert!(why.contains("outside the recommendation's bounds"), "{why}");
        // Once the pods have the target, it is within the bounds: no more resizes.
        let resized = |mem: f64| {
            let mut o = w(50.0, mem);
            o.pods[0].requests = to.requests;
            o.pods[0].limits = to.limits;
            o
        };
        assert!(step(&mut r, &cfg, resized(50.0)).is_none());
        // A working set at the limit is an OOM kill: the bumped target is set once.
        let (bumped, why) = step(&mut r, &cfg, resized(to.limits.memory_mib)).unwrap();
        assert!(why.contains("OOM"), "{why}");
        assert!(bumped.requests.memory_mib > to.requests.memory_mib);
        let mut o = resized(50.0);
        o.pods[0].requests = bumped.requests;
        o.pods[0].limits = bumped.limits;
        assert!(step(&mut r, &cfg, o).is_none());
        // Too few samples: nothing.
        let mut fresh = VerticalRecommender::default();
        assert!(step(&mut fresh, &cfg, w(50.0, 50.0)).is_none());
    }
}
