//! Vertical recommendations in the style of the Kubernetes VPA recommender: CPU and memory
//! requests from usage percentiles of the service's pods, with a safety margin, lower and
//! upper bounds, limits kept in the current limit-to-request proportion, and a memory bump
//! after an out-of-memory kill.
//!
//! The CPU target also covers the forecast peak: when the horizontal plan expects more load
//! per replica than the usage seen so far, the request follows the forecast.

use std::collections::VecDeque;

use graphscale_core::{PodPhase, Resources, WorkloadObservation};
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
}

fn percentile(v: &VecDeque<f64>, q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s: Vec<f64> = v.iter().copied().collect();
    s.sort_by(f64::total_cmp);
    let i = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
    Some(s[i])
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
}
