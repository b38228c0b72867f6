//! What the planner learns from observed metrics instead of being told: each service's CPU
//! cost per request and idle CPU per replica (hence the requests/s one replica sustains), its
//! pods' start-up time, and the call ratios along the graph's edges.
//!
//! All estimators are plain state machines fed one [`ClusterSnapshot`] at a time; they never
//! read a clock of their own.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use graphscale_core::{
    ClusterSnapshot, CpuSample, Millis, PodObservation, PodPhase, Relation, WorkloadObservation,
};
use serde::{Deserialize, Serialize};

/// What was learned about one service's CPU.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CpuModel {
    /// CPU time one request costs, in ms of one core (= millicores per request/s).
    pub cpu_ms_per_request: f64,
    /// CPU a ready replica uses with no load, millicores.
    pub idle_millicores: f64,
    /// Samples behind the fit.
    pub samples: usize,
}

impl CpuModel {
    /// Requests per second one replica sustains while using `cpu_budget_millicores`.
    pub fn replica_rps(&self, cpu_budget_millicores: f64) -> f64 {
        ((cpu_budget_millicores - self.idle_millicores).max(0.1 * cpu_budget_millicores)
            / self.cpu_ms_per_request.max(1e-6))
        .max(0.0)
    }
}

/// Whether CPU sample `c` of pod `p` is past the pod's start-up: taken two sample windows after
/// its Ready transition (an earlier one measures start-up work, not requests).
pub(crate) fn past_startup(p: &PodObservation, c: &CpuSample) -> bool {
    p.ready_transition
        .is_none_or(|r| c.timestamp.0 >= r.0 + 2 * c.window.0.max(1))
}

/// Least squares of `cpu_total = idle * ready + cost * rps` over a sliding window of
/// observations of one service (both coefficients kept non-negative).
#[derive(Debug, Clone, Default)]
pub struct CpuEstimator {
    window: usize,
    /// (ready replicas, rps, total CPU millicores)
    samples: VecDeque<(f64, f64, f64)>,
}

impl CpuEstimator {
    /// An estimator over the last `window` observations.
    pub fn new(window: usize) -> Self {
        CpuEstimator {
            window: window.max(2),
            samples: VecDeque::new(),
        }
    }

    /// Adds one observation; ignored unless the rate is known and every ready pod has a CPU
    /// sample taken at least two sample windows after it became ready and below 95 % of its
    /// CPU limit.
    pub fn observe(&mut self, w: &WorkloadObservation) {
        let Some(rps) = w.rps.filter(|r| r.is_finite() && *r >= 0.0) else {
            return;
        };
        let ready: Vec<_> = w
            .pods
            .iter()
            .filter(|p| p.ready == Some(true) && !p.deleting && p.phase == PodPhase::Running)
            .collect();
        if ready.is_empty() {
            return;
        }
        let mut total = 0.0;
        for p in &ready {
            let Some(c) = p
                .cpu
                .filter(|c| c.millicores.is_finite() && c.millicores >= 0.0)
            else {
                return;
            };
            // A sample that covers the pod's start-up measures start-up work, not requests;
            // one at the CPU limit measures the limit, not the cost (requests are queueing).
            let settled = past_startup(p, &c);
            let saturated =
                p.limits.cpu_millicores > 0.0 && c.millicores >= 0.95 * p.limits.cpu_millicores;
            if !settled || saturated {
                return;
            }
            total += c.millicores;
        }
        if self.samples.len() == self.window {
            self.samples.pop_front();
        }
        self.samples.push_back((ready.len() as f64, rps, total));
    }

    /// Adds one sample taken elsewhere (a recorded series): `ready` replicas served `rps` using
    /// `cpu_millicores` in all. Ignored unless every value is finite, `ready` > 0 and the rest
    /// non-negative.
    pub fn push(&mut self, ready: f64, rps: f64, cpu_millicores: f64) {
        let ok = |x: f64| x.is_finite() && x >= 0.0;
        if !(ok(ready) && ready > 0.0 && ok(rps) && ok(cpu_millicores)) {
            return;
        }
        if self.samples.len() == self.window {
            self.samples.pop_front();
        }
        self.samples.push_back((ready, rps, cpu_millicores));
    }

    /// The fitted model, once there is at least one sample with load.
    pub fn model(&self) -> Option<CpuModel> {
        let n = self.samples.len();
        let loaded: Vec<_> = self.samples.iter().filter(|s| s.1 > 1e-9).collect();
        if loaded.is_empty() {
            return None;
        }
        // Normal equations of the two-feature regression without intercept.
        let (mut srr, mut sra, mut saa, mut sry, mut say) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for &(r, a, y) in &self.samples {
            srr += r * r;
            sra += r * a;
            saa += a * a;
            sry += r * y;
            say += a * y;
        }
        let det = srr * saa - sra * sra;
        let ratio_fit = || {
            // Through the origin: all CPU is attributed to requests (an upper bound on cost).
            let cost =
                loaded.iter().map(|s| s.2).sum::<f64>() / loaded.iter().map(|s| s.1).sum::<f64>();
            (0.0, cost)
        };
        let (idle, cost) = if det > 1e-9 * srr * saa && n >= 4 {
            let idle = (saa * sry - sra * say) / det;
            let cost = (srr * say - sra * sry) / det;
            if idle >= 0.0 && cost > 0.0 {
                (idle, cost)
            } else {
                ratio_fit()
            }
        } else {
            ratio_fit()
        };
        (cost.is_finite() && cost > 0.0).then_some(CpuModel {
            cpu_ms_per_request: cost,
            idle_millicores: idle,
            samples: n,
        })
    }
}

/// Start-up time of a service's pods: from start (scheduled, containers started) to Ready, as
/// observed on new pods; the largest of the last few, so capacity is asked for early enough.
#[derive(Debug, Clone, Default)]
pub struct StartupEstimator {
    seen: BTreeMap<Arc<str>, f64>,
    recent: VecDeque<f64>,
}

impl StartupEstimator {
    /// Records the start-up of every pod that became ready since the last call.
    pub fn observe(&mut self, w: &WorkloadObservation) {
        for p in &w.pods {
            if p.ready != Some(true) || self.seen.contains_key(&p.name) {
                continue;
            }
            if let (Some(start), Some(ready)) = (p.start_time, p.ready_transition) {
                // Pods present at time zero have start == ready: they tell nothing.
                if ready > start {
                    let s = ready.saturating_sub(start).as_secs_f64();
                    self.seen.insert(Arc::clone(&p.name), s);
                    if self.recent.len() == 10 {
                        self.recent.pop_front();
                    }
                    self.recent.push_back(s);
                }
            }
        }
        // Forget pods that are gone, keeping the map small.
        if self.seen.len() > 4 * w.pods.len() + 16 {
            let live: std::collections::HashSet<&str> = w.pods.iter().map(|p| &*p.name).collect();
            self.seen.retain(|k, _| live.contains(&**k));
        }
    }

    /// The start-up time to plan with: the largest of the last ten observed, if any.
    pub fn startup(&self) -> Option<Millis> {
        self.recent
            .iter()
            .copied()
            .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s))))
            .map(Millis::from_secs_f64)
    }
}

/// Observed ratios of calls (or messages) per request of the source, per edge, smoothed.
///
/// A source's rate is what arrives at it, while its outgoing edges carry what it serves: when
/// it is saturated (requests failing or waiting) the two differ, and the ratio would come out
/// too small, so that demand propagated from the graph's entries would under-plan every callee
/// until the source had caught up (one service after another). Such windows are skipped unless
/// the estimator learns from saturated sources (the ablation of #17 item 3).
#[derive(Debug, Clone, Default)]
pub struct RatioEstimator {
    ratios: BTreeMap<(String, String), f64>,
    alpha: f64,
    from_saturated: bool,
}

/// The failed share of requests above which a source counts as saturated.
pub const SATURATED_ERROR_RATE: f64 = 0.01;
/// Requests waiting, in seconds of the source's arrivals (at least one request), above which a
/// source counts as saturated.
pub const SATURATED_BACKLOG_S: f64 = 0.1;

/// Whether `w` (whose arrival rate is `rps`) serves less than arrives: failures above
/// [`SATURATED_ERROR_RATE`] or a backlog above [`SATURATED_BACKLOG_S`] of arrivals.
pub fn saturated(w: &WorkloadObservation, rps: f64) -> bool {
    w.error_rate.is_some_and(|e| e > SATURATED_ERROR_RATE)
        || w.backlog
            .is_some_and(|b| b > (SATURATED_BACKLOG_S * rps).max(1.0))
}

impl RatioEstimator {
    /// An estimator that smooths with weight `alpha` on each new observation and skips
    /// saturated sources.
    pub fn new(alpha: f64) -> Self {
        RatioEstimator {
            ratios: BTreeMap::new(),
            alpha: alpha.clamp(0.01, 1.0),
            from_saturated: false,
        }
    }

    /// Learns from saturated sources too (their throughput, not their demand): the behaviour
    /// before #17 item 3, kept as an ablation.
    pub fn learning_from_saturated(mut self, yes: bool) -> Self {
        self.from_saturated = yes;
        self
    }

    /// Updates from the edges of a snapshot whose source rate is known and non-trivial, and
    /// whose source is not saturated ([`saturated`]).
    pub fn observe(&mut self, snap: &ClusterSnapshot) {
        let by_name = snap.by_name();
        for e in &snap.edges {
            if !matches!(
                e.relation,
                Relation::Calls | Relation::Produces | Relation::Publishes
            ) {
                continue;
            }
            let Some(src) = by_name.get(&*e.src) else {
                continue;
            };
            let (Some(edge_rps), Some(src_rps)) = (e.rps, src.rps) else {
                continue;
            };
            if !(edge_rps.is_finite() && src_rps.is_finite() && src_rps > 0.5 && edge_rps >= 0.0) {
                continue;
            }
            if !self.from_saturated && saturated(src, src_rps) {
                continue;
            }
            let r = edge_rps / src_rps;
            let key = (e.src.to_string(), e.dst.to_string());
            let a = self.alpha;
            self.ratios
                .entry(key)
                .and_modify(|v| *v = (1.0 - a) * *v + a * r)
                .or_insert(r);
        }
    }

    /// The learned ratio of an edge, if it was ever observed.
    pub fn ratio(&self, src: &str, dst: &str) -> Option<f64> {
        self.ratios
            .get(&(src.to_string(), dst.to_string()))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use graphscale_core::{CpuSample, PodObservation, Resources};

    fn workload(ready: usize, rps: f64, cpu_each: f64) -> WorkloadObservation {
        WorkloadObservation {
            name: "a".into(),
            spec_replicas: ready as u32,
            pods: (0..ready)
                .map(|i| PodObservation {
                    name: format!("a-{i}").into(),
                    phase: PodPhase::Running,
                    deleting: false,
                    start_time: Some(Millis::from_secs(10)),
                    ready: Some(true),
                    ready_transition: Some(Millis::from_secs(10 + 20 + i as u64)),
                    cpu: Some(CpuSample {
                        millicores: cpu_each,
                        timestamp: Millis::from_secs(600),
                        window: Millis::from_secs(15),
                    }),
                    memory_mib: Some(50.0),
                    requests: Resources::new(200.0, 64.0),
                    limits: Resources::new(500.0, 128.0),
                })
                .collect(),
            rps: Some(rps),
            latency_p95_ms: None,
            error_rate: None,
            backlog: None,
        }
    }

    /// `a` (arrivals `rps`, with `errors` and `backlog`) calling `b` at `edge` per second.
    fn snap(rps: f64, errors: f64, backlog: f64, edge: f64) -> ClusterSnapshot {
        ClusterSnapshot {
            time: Millis::from_secs(600),
            workloads: vec![
                WorkloadObservation {
                    error_rate: Some(errors),
                    backlog: Some(backlog),
                    ..workload(2, rps, 100.0)
                },
                WorkloadObservation {
                    name: "b".into(),
                    ..workload(2, edge, 100.0)
                },
            ],
            edges: vec![graphscale_core::EdgeObservation {
                src: "a".into(),
                dst: "b".into(),
                relation: Relation::Calls,
                rps: Some(edge),
            }],
        }
    }

    #[test]
    fn a_saturated_caller_does_not_teach_its_throughput_as_the_ratio() {
        // Two calls per request while `a` keeps up; then a surge it cannot serve: 300 rps arrive,
        // it serves 100 (the rest wait or time out), and the edge carries 2 x 100.
        let calm = snap(100.0, 0.0, 0.0, 200.0);
        let waiting = snap(300.0, 0.0, 2000.0, 200.0);
        let failing = snap(300.0, 0.2, 0.0, 200.0);
        let mut guarded = RatioEstimator::new(0.2);
        let mut ablation = RatioEstimator::new(0.2).learning_from_saturated(true);
        for e in [&mut guarded, &mut ablation] {
            e.observe(&calm);
            for _ in 0..5 {
                e.observe(&waiting);
                e.observe(&failing);
            }
        }
        assert_eq!(guarded.ratio("a", "b"), Some(2.0));
        let learned = ablation.ratio("a", "b").unwrap();
        // 10 windows at 200 / 300: most of the way from 2 to 0.67.
        assert!(
            learned < 1.0,
            "the ablation learns the throughput: {learned}"
        );
        // A short queue or a few failures are not saturation.
        assert!(!saturated(&calm.workloads[0], 100.0));
        let mut light = calm.workloads[0].clone();
        light.backlog = Some(5.0);
        light.error_rate = Some(0.005);
        assert!(!saturated(&light, 100.0));
        light.backlog = Some(11.0);
        assert!(saturated(&light, 100.0));
    }

    #[test]
    fn pushed_samples_fit_like_observed_ones_and_bad_ones_are_ignored() {
        let mut est = CpuEstimator::new(20);
        for (ready, rps) in [
            (1.0, 10.0),
            (2.0, 50.0),
            (3.0, 40.0),
            (2.0, 90.0),
            (4.0, 200.0),
        ] {
            est.push(ready, rps, 5.0 * ready + 2.0 * rps);
        }
        for (ready, rps, cpu) in [
            (0.0, 10.0, 30.0),
            (f64::NAN, 10.0, 30.0),
            (1.0, -1.0, 30.0),
            (1.0, 10.0, f64::INFINITY),
        ] {
            est.push(ready, rps, cpu);
        }
        let m = est.model().unwrap();
        assert_eq!(m.samples, 5);
        assert!((m.cpu_ms_per_request - 2.0).abs() < 1e-6, "{m:?}");
        assert!((m.idle_millicores - 5.0).abs() < 1e-6, "{m:?}");
    }

    #[test]
    fn cpu_regression_separates_idle_from_per_request_cost() {
        // True model: 5 mc idle per replica + 2 ms per request.
        let mut est = CpuEstimator::new(20);
        for (ready, rps) in [
            (1, 10.0),
            (2, 50.0),
            (3, 40.0),
            (2, 90.0),
            (4, 200.0),
            (1, 30.0),
        ] {
            let total = 5.0 * ready as f64 + 2.0 * rps;
            est.observe(&workload(ready, rps, total / ready as f64));
        }
        let m = est.model().unwrap();
        assert!((m.cpu_ms_per_request - 2.0).abs() < 1e-6, "{m:?}");
        assert!((m.idle_millicores - 5.0).abs() < 1e-6, "{m:?}");
        // 200 mc budget: (200 - 5) / 2 = 97.5 rps per replica.
        assert!((m.replica_rps(200.0) - 97.5).abs() < 1e-6);
    }

    #[test]
    fn cpu_estimator_ignores_missing_samples_and_falls_back_to_a_ratio() {
        let mut est = CpuEstimator::new(5);
        assert!(est.model().is_none());
        let mut w = workload(2, 10.0, 30.0);
        w.pods[0].cpu = None;
        est.observe(&w);
        assert!(est.model().is_none());
        est.observe(&workload(2, 10.0, 30.0));
        let m = est.model().unwrap();
        assert!((m.cpu_ms_per_request - 6.0).abs() < 1e-9);
        assert_eq!(m.idle_millicores, 0.0);
    }

    #[test]
    fn startup_is_the_largest_recent_observation() {
        let mut est = StartupEstimator::default();
        assert!(est.startup().is_none());
        est.observe(&workload(3, 1.0, 1.0));
        assert_eq!(est.startup(), Some(Millis::from_secs(22)));
    }
}
