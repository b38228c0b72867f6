//! Per-run metrics, recorded step by step from the simulator.
//!
//! Definitions (also in `docs/metrics.md`):
//!
//! - **Request outcome.** At each entry service, the requests finished in a step are split into
//!   failed end to end (`finished * (1 - e2e_success)`) and good. Good requests get the
//!   end-to-end latency distribution given by the step's p50/p95/p99, interpolated linearly
//!   between `(0.5 p50, 0)`, `(p50, 0.5)`, `(p95, 0.95)`, `(p99, 0.99)`, `(1.3 p99, 1)`.
//! - **SLO-violating requests**: failed ones plus good ones slower than the SLO.
//!   `slo_violation_requests_pct` is their share of finished requests;
//!   `slo_violation_time_pct` the share of steps in which more than 5 % of requests violate
//!   (that is, the p95 is over the SLO or errors exceed 5 %); `slo_violation_minutes` counts
//!   minutes whose requests violate more than 5 %.
//! - **Latency**: mean and p95 of good requests over the run, from a log-bucketed histogram.
//! - **Cost**: CPU core-hours and memory GiB-hours *requested* by pods bound to nodes (what a
//!   cluster reserves and a cloud bills), and **slack** `(requested - used) / requested`.
//! - **Demand and supply** per service at 15 s resolution: demand is the replicas needed to keep
//!   each at 80 % of its CPU-limit capacity for the offered load, `max(1, ceil(offered /
//!   (0.8 * mu)))`; supply is ready replicas. From them the SPEC RG elasticity metrics
//!   (Herbst et al., "Ready for Rain?", TOMPECS 2018): under/over-provisioning accuracy
//!   `theta_U = mean((d - s)+ / d)`, `theta_O = mean((s - d)+ / d)` in %, timeshares
//!   `tau_U`, `tau_O` (% of time with `d > s`, `s > d`), and instability (% of intervals in
//!   which supply and demand do not move in the same direction); averaged over services.
//! - **Scaling lag**: mean and max duration of the under-provisioned episodes (`d > s`), i.e.
//!   time from a demand rise until ready capacity meets it.
//! - **Scaling actions**: changes of `spec.replicas`; **oscillations**: actions that reverse
//!   the direction of the same service's previous action within 5 minutes.
//! - **CAF** (cost-adjusted fitness): requests served within the SLO per CPU core-hour
//!   requested, in thousands. Higher is better: it rewards both keeping the SLO and not paying
//!   for idle capacity.
//! - **Warm-up**: every run starts cold, one replica per service, so its first minutes
//!   are a start-up transient that no autoscaler controls (it starts with the same replicas). A
//!   [`Recorder::with_warmup`] leaves the first seconds out of every metric above; the
//!   timeline keeps them.

use graphscale_core::Millis;
use graphscale_sim::engine::Simulator;
use serde::{Deserialize, Serialize};

const BUCKETS: usize = 240;
const LO_MS: f64 = 0.05;
const DECADES: f64 = 7.0; // 0.05 ms .. 500 s

fn bucket(ms: f64) -> usize {
    if ms <= LO_MS {
        return 0;
    }
    (((ms / LO_MS).log10() / DECADES) * BUCKETS as f64)
        .floor()
        .clamp(0.0, (BUCKETS - 1) as f64) as usize
}

fn bucket_mid(i: usize) -> f64 {
    LO_MS * 10f64.powf((i as f64 + 0.5) / BUCKETS as f64 * DECADES)
}

use graphscale_core::exposition::{latency_cdf, latency_segments as segments};

/// Share of a step's good requests slower than `slo`.
fn share_over(q: [f64; 3], slo: f64) -> f64 {
    1.0 - latency_cdf(q, slo)
}

/// Every number measured on one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunMetrics {
    /// Requests that finished at the entries.
    pub requests: f64,
    /// % of steps with more than 5 % SLO-violating requests.
    pub slo_violation_time_pct: f64,
    /// % of requests that failed or exceeded the SLO.
    pub slo_violation_requests_pct: f64,
    /// Minutes with more than 5 % SLO-violating requests.
    pub slo_violation_minutes: f64,
    /// Mean end-to-end latency of good requests, ms.
    pub latency_mean_ms: f64,
    /// 95th percentile of end-to-end latency of good requests, ms.
    pub latency_p95_ms: f64,
    /// % of requests that failed end to end.
    pub error_pct: f64,
    /// CPU core-hours requested.
    pub cpu_core_hours: f64,
    /// Memory GiB-hours requested.
    pub memory_gib_hours: f64,
    /// Allocatable CPU of the cluster's nodes, core-hours: what the nodes cost when a cluster
    /// autoscaler adds and removes them (constant otherwise).
    #[serde(default)]
    pub node_core_hours: f64,
    /// CPU slack, % of requested.
    pub cpu_slack_pct: f64,
    /// Memory slack, % of requested.
    pub memory_slack_pct: f64,
    /// Mean duration of under-provisioned episodes, s.
    pub scaling_lag_mean_s: f64,
    /// Longest under-provisioned episode, s.
    pub scaling_lag_max_s: f64,
    /// Changes of spec.replicas, all services.
    pub scaling_actions: f64,
    /// Direction reversals within 5 minutes.
    pub oscillations: f64,
    /// SPEC under-provisioning accuracy theta_U, %.
    pub under_provisioning_accuracy_pct: f64,
    /// SPEC over-provisioning accuracy theta_O, %.
    pub over_provisioning_accuracy_pct: f64,
    /// SPEC under-provisioning timeshare tau_U, %.
    pub under_provisioning_timeshare_pct: f64,
    /// SPEC over-provisioning timeshare tau_O, %.
    pub over_provisioning_timeshare_pct: f64,
    /// SPEC instability, %.
    pub instability_pct: f64,
    /// Cost-adjusted fitness: thousand requests within SLO per CPU core-hour.
    pub caf: f64,
    /// OOM kills.
    pub oom_kills: f64,
    /// Largest number of pods pending at once.
    pub max_pending_pods: f64,
    /// Largest queue or subscription backlog, messages.
    pub max_backlog: f64,
}

impl RunMetrics {
    /// `(name, value, lower_is_better)` of every metric, in a fixed order.
    pub fn fields(&self) -> Vec<(&'static str, f64, bool)> {
        vec![
            ("slo_violation_time_pct", self.slo_violation_time_pct, true),
            (
                "slo_violation_requests_pct",
                self.slo_violation_requests_pct,
                true,
            ),
            ("slo_violation_minutes", self.slo_violation_minutes, true),
            ("latency_mean_ms", self.latency_mean_ms, true),
            ("latency_p95_ms", self.latency_p95_ms, true),
            ("error_pct", self.error_pct, true),
            ("cpu_core_hours", self.cpu_core_hours, true),
            ("memory_gib_hours", self.memory_gib_hours, true),
            ("node_core_hours", self.node_core_hours, true),
            ("cpu_slack_pct", self.cpu_slack_pct, true),
            ("memory_slack_pct", self.memory_slack_pct, true),
            ("scaling_lag_mean_s", self.scaling_lag_mean_s, true),
            ("scaling_lag_max_s", self.scaling_lag_max_s, true),
            ("scaling_actions", self.scaling_actions, true),
            ("oscillations", self.oscillations, true),
            (
                "under_provisioning_accuracy_pct",
                self.under_provisioning_accuracy_pct,
                true,
            ),
            (
                "over_provisioning_accuracy_pct",
                self.over_provisioning_accuracy_pct,
                true,
            ),
            (
                "under_provisioning_timeshare_pct",
                self.under_provisioning_timeshare_pct,
                true,
            ),
            (
                "over_provisioning_timeshare_pct",
                self.over_provisioning_timeshare_pct,
                true,
            ),
            ("instability_pct", self.instability_pct, true),
            ("caf", self.caf, false),
            ("oom_kills", self.oom_kills, true),
            ("max_pending_pods", self.max_pending_pods, true),
            ("max_backlog", self.max_backlog, true),
            ("requests", self.requests, false),
        ]
    }
}

/// One minute of a run, for timelines.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MinutePoint {
    /// Minute index from the start.
    pub minute: u64,
    /// External load, rps (mean over the minute).
    pub load_rps: f64,
    /// Request-weighted mean of the per-step end-to-end p95 at the entries, ms.
    pub e2e_p95_ms: f64,
    /// % of the minute's requests violating the SLO.
    pub violation_pct: f64,
    /// Ready replicas per service at the end of the minute (in app order).
    pub ready: Vec<u32>,
    /// spec.replicas per service at the end of the minute.
    pub desired: Vec<u32>,
    /// CPU used per service, millicores, mean over the minute.
    pub cpu_m: Vec<f64>,
}

/// Accumulates [`RunMetrics`] and a per-minute timeline while a run steps.
#[derive(Debug, Clone)]
pub struct Recorder {
    slo_ms: f64,
    dt: f64,
    steps: u64,
    finished: f64,
    violating: f64,
    failed: f64,
    good: f64,
    lat_sum: f64,
    hist: Vec<f64>,
    violating_steps: u64,
    active_steps: u64,
    minute: MinuteAcc,
    violation_minutes: u64,
    cpu_req: f64,
    cpu_used: f64,
    mem_req: f64,
    mem_used: f64,
    node_cpu: f64,
    last_spec: Vec<u32>,
    last_action: Vec<Option<(Millis, i8)>>,
    actions: u64,
    oscillations: u64,
    window_offered: Vec<f64>,
    window_steps: u64,
    last_demand: Vec<Option<(u32, u32)>>,
    el: Elasticity,
    episode_start: Vec<Option<Millis>>,
    episodes: Vec<f64>,
    oom: u64,
    max_pending: u32,
    max_backlog: u64,
    keep_timeline: bool,
    timeline: Vec<MinutePoint>,
    warmup: Millis,
    warming: bool,
}

#[derive(Debug, Clone, Default)]
struct MinuteAcc {
    load: f64,
    p95w: f64,
    finished: f64,
    violating: f64,
    cpu: Vec<f64>,
    steps: u64,
}

#[derive(Debug, Clone, Default)]
struct Elasticity {
    n: f64,
    under_acc: f64,
    over_acc: f64,
    under_time: f64,
    over_time: f64,
    unstable: f64,
    moves: f64,
}

impl Recorder {
    /// A recorder for a run of `sim`'s app with the given SLO; `timeline` keeps per-minute points.
    pub fn new(sim: &Simulator, slo_ms: f64, timeline: bool) -> Self {
        let n = sim.app().services.len();
        Recorder {
            slo_ms,
            dt: sim.step_len().as_secs_f64(),
            steps: 0,
            finished: 0.0,
            violating: 0.0,
            failed: 0.0,
            good: 0.0,
            lat_sum: 0.0,
            hist: vec![0.0; BUCKETS],
            violating_steps: 0,
            active_steps: 0,
            minute: MinuteAcc {
                cpu: vec![0.0; n],
                ..Default::default()
            },
            violation_minutes: 0,
            cpu_req: 0.0,
            cpu_used: 0.0,
            mem_req: 0.0,
            mem_used: 0.0,
            node_cpu: 0.0,
            last_spec: sim.stats().iter().map(|s| s.spec_replicas).collect(),
            last_action: vec![None; n],
            actions: 0,
            oscillations: 0,
            window_offered: vec![0.0; n],
            window_steps: 0,
            last_demand: vec![None; n],
            el: Elasticity::default(),
            episode_start: vec![None; n],
            episodes: Vec::new(),
            oom: 0,
            max_pending: 0,
            max_backlog: 0,
            keep_timeline: timeline,
            timeline: Vec::new(),
            warmup: Millis(0),
            warming: false,
        }
    }

    /// Leaves the first `warmup` of the run out of every metric (not out of the timeline).
    /// Metrics then start at the first step after it, with the replicas of that moment, so a
    /// warm-up that ends on a whole minute keeps violation minutes whole.
    pub fn with_warmup(mut self, warmup: Millis) -> Self {
        self.warmup = warmup;
        self.warming = warmup.0 > 0;
        self
    }

    /// Records the step the simulator just made.
    pub fn record(&mut self, sim: &Simulator) {
        let now = graphscale_core::Clock::now(sim);
        if self.warming && now > self.warmup {
            // The warm-up is over: start every count afresh, keeping the timeline.
            let timeline = std::mem::take(&mut self.timeline);
            *self = Recorder {
                timeline,
                warmup: self.warmup,
                ..Recorder::new(sim, self.slo_ms, self.keep_timeline)
            };
        }
        let stats = sim.stats();
        self.steps += 1;
        // Entry requests.
        let (mut fin, mut viol, mut p95w) = (0.0, 0.0, 0.0);
        for &(s, _) in sim.entries() {
            let st = &stats[s];
            let finished = (st.served + st.failed) as f64;
            if finished <= 0.0 {
                continue;
            }
            let good = finished * st.e2e_success.clamp(0.0, 1.0);
            let failed = finished - good;
            let over = good * share_over(st.e2e_ms, self.slo_ms);
            fin += finished;
            viol += failed + over;
            p95w += st.e2e_ms[1] * finished;
            self.failed += failed;
            self.good += good;
            for (lo, hi, m) in segments(st.e2e_ms) {
                let mid = (lo * hi).sqrt();
                self.hist[bucket(mid)] += good * m;
                self.lat_sum += good * m * 0.5 * (lo + hi);
            }
        }
        self.finished += fin;
        self.violating += viol;
        if fin > 0.0 {
            self.active_steps += 1;
            if viol / fin > 0.05 {
                self.violating_steps += 1;
            }
        }
        // Cost, usage, actions.
        self.node_cpu += sim.node_cpu_millicores() * self.dt;
        let mut pending = 0;
        for (i, st) in stats.iter().enumerate() {
            self.cpu_req += st.requested.cpu_millicores * self.dt;
            self.mem_req += st.requested.memory_mib * self.dt;
            self.cpu_used += st.cpu_usage_m * self.dt;
            self.mem_used += st.memory_mib * self.dt;
            self.oom += st.oom_kills as u64;
            pending += st.pending;
            if st.spec_replicas != self.last_spec[i] {
                let dir: i8 = if st.spec_replicas > self.last_spec[i] {
                    1
                } else {
                    -1
                };
                self.actions += 1;
                if let Some((t, d)) = self.last_action[i] {
                    if d != dir && now.saturating_sub(t) <= Millis::from_secs(300) {
                        self.oscillations += 1;
                    }
                }
                self.last_action[i] = Some((now, dir));
                self.last_spec[i] = st.spec_replicas;
            }
            self.window_offered[i] += st.offered_rps;
            self.minute.cpu[i] += st.cpu_usage_m;
        }
        self.max_pending = self.max_pending.max(pending);
        for (_, _, backlog, _, _) in sim.backlogs() {
            self.max_backlog = self.max_backlog.max(backlog);
        }
        // Demand vs supply every 15 s.
        self.window_steps += 1;
        if self.window_steps as f64 * self.dt >= 15.0 {
            for (i, st) in stats.iter().enumerate() {
                let spec = &sim.app().services[i];
                let offered = self.window_offered[i] / self.window_steps as f64;
                // A replica's capacity at the pods' current CPU limit (resizes change it).
                let mu = sim
                    .resources(&spec.name)
                    .map_or(spec.replica_capacity_rps(), |r| {
                        r.limits.cpu_millicores / spec.cpu_ms_per_request
                    });
                let d = ((offered / (0.8 * mu)).ceil() as u32).max(1);
                let s = st.ready;
                let (df, sf) = (d as f64, s as f64);
                self.el.n += 1.0;
                self.el.under_acc += (df - sf).max(0.0) / df;
                self.el.over_acc += (sf - df).max(0.0) / df;
                if d > s {
                    self.el.under_time += 1.0;
                    if self.episode_start[i].is_none() {
                        self.episode_start[i] = Some(now);
                    }
                } else {
                    if s > d {
                        self.el.over_time += 1.0;
                    }
                    if let Some(t0) = self.episode_start[i].take() {
                        self.episodes.push(now.saturating_sub(t0).as_secs_f64());
                    }
                }
                if let Some((pd, ps)) = self.last_demand[i] {
                    self.el.moves += 1.0;
                    if (d as i64 - pd as i64).signum() != (s as i64 - ps as i64).signum() {
                        self.el.unstable += 1.0;
                    }
                }
                self.last_demand[i] = Some((d, s));
                self.window_offered[i] = 0.0;
            }
            self.window_steps = 0;
        }
        // Minutes.
        self.minute.load += sim.current_rate();
        self.minute.p95w += p95w;
        self.minute.finished += fin;
        self.minute.violating += viol;
        self.minute.steps += 1;
        if now.0.is_multiple_of(60_000) {
            let m = std::mem::take(&mut self.minute);
            if m.finished > 0.0 && m.violating / m.finished > 0.05 {
                self.violation_minutes += 1;
            }
            if self.keep_timeline {
                let steps = m.steps.max(1) as f64;
                self.timeline.push(MinutePoint {
                    minute: now.0 / 60_000 - 1,
                    load_rps: m.load / steps,
                    e2e_p95_ms: if m.finished > 0.0 {
                        m.p95w / m.finished
                    } else {
                        f64::NAN
                    },
                    violation_pct: if m.finished > 0.0 {
                        100.0 * m.violating / m.finished
                    } else {
                        0.0
                    },
                    ready: stats.iter().map(|s| s.ready).collect(),
                    desired: stats.iter().map(|s| s.spec_replicas).collect(),
                    cpu_m: m.cpu.iter().map(|c| c / steps).collect(),
                });
            }
            self.minute.cpu = vec![0.0; stats.len()];
        }
    }

    /// The run's metrics and, if kept, its timeline.
    pub fn finish(mut self, now: Millis) -> (RunMetrics, Vec<MinutePoint>) {
        for t0 in self.episode_start.iter_mut().filter_map(|x| x.take()) {
            self.episodes.push(now.saturating_sub(t0).as_secs_f64());
        }
        let pct = |a: f64, b: f64| if b > 0.0 { 100.0 * a / b } else { 0.0 };
        let total: f64 = self.hist.iter().sum();
        let mut p95 = f64::NAN;
        let mut acc = 0.0;
        for (i, h) in self.hist.iter().enumerate() {
            acc += h;
            if total > 0.0 && acc >= 0.95 * total {
                p95 = bucket_mid(i);
                break;
            }
        }
        let core_hours = self.cpu_req / 1000.0 / 3600.0;
        let el = &self.el;
        let m = RunMetrics {
            requests: self.finished,
            slo_violation_time_pct: pct(self.violating_steps as f64, self.active_steps as f64),
            slo_violation_requests_pct: pct(self.violating, self.finished),
            slo_violation_minutes: self.violation_minutes as f64,
            latency_mean_ms: if self.good > 0.0 {
                self.lat_sum / self.good
            } else {
                f64::NAN
            },
            latency_p95_ms: p95,
            error_pct: pct(self.failed, self.finished),
            cpu_core_hours: core_hours,
            memory_gib_hours: self.mem_req / 1024.0 / 3600.0,
            node_core_hours: self.node_cpu / 1000.0 / 3600.0,
            cpu_slack_pct: pct(self.cpu_req - self.cpu_used, self.cpu_req),
            memory_slack_pct: pct(self.mem_req - self.mem_used, self.mem_req),
            scaling_lag_mean_s: if self.episodes.is_empty() {
                0.0
            } else {
                self.episodes.iter().sum::<f64>() / self.episodes.len() as f64
            },
            scaling_lag_max_s: self.episodes.iter().cloned().fold(0.0, f64::max),
            scaling_actions: self.actions as f64,
            oscillations: self.oscillations as f64,
            under_provisioning_accuracy_pct: pct(el.under_acc, el.n),
            over_provisioning_accuracy_pct: pct(el.over_acc, el.n),
            under_provisioning_timeshare_pct: pct(el.under_time, el.n),
            over_provisioning_timeshare_pct: pct(el.over_time, el.n),
            instability_pct: pct(el.unstable, el.moves),
            caf: if core_hours > 0.0 {
                (self.finished - self.violating) / core_hours / 1000.0
            } else {
                0.0
            },
            oom_kills: self.oom as f64,
            max_pending_pods: self.max_pending as f64,
            max_backlog: self.max_backlog as f64,
        };
        (m, self.timeline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_over_matches_the_quantiles() {
        let q = [100.0, 200.0, 300.0];
        assert!((share_over(q, 200.0) - 0.05).abs() < 1e-12);
        assert!((share_over(q, 300.0) - 0.01).abs() < 1e-12);
        assert!((share_over(q, 100.0) - 0.5).abs() < 1e-12);
        assert_eq!(share_over(q, 1e9), 0.0);
        assert!((share_over(q, 1.0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn buckets_are_monotone_and_round_trip() {
        for ms in [0.1, 1.0, 10.0, 250.0, 9000.0] {
            let b = bucket(ms);
            let mid = bucket_mid(b);
            assert!(
                (mid / ms).log10().abs() < DECADES / BUCKETS as f64,
                "{ms} -> {mid}"
            );
        }
        assert!(bucket(5.0) < bucket(6.0));
    }
}
