//! The simulation engine: one fixed step at a time, deterministic for a seed.
//!
//! ## Model, per step of `dt` seconds
//! 1. **Pods.** Pending pods are bound to the least-allocated node whose free allocatable CPU
//!    and memory fit their requests; a pod that fits nowhere stays pending. A bound pod becomes
//!    ready `startup_s` (jittered by +/- `startup_jitter`) after binding, burning its CPU
//!    request while it starts.
//! 2. **Arrivals.** External requests arrive at the entry services as Poisson counts with the
//!    workload's rate.
//! 3. **Services**, in topological order of the load-flow graph (calls, produce -> consume,
//!    publish -> subscribe; cycles are cut and their calls arrive one step later). Each ready
//!    replica is a server of rate `mu = cpu_limit / cpu_ms_per_request` (CPU above the limit is
//!    throttled, so the limit caps the rate). Arrivals join a FIFO queue; `floor(c * mu * dt)`
//!    are served. Requests that would wait longer than the timeout fail (they count as errors),
//!    as do all requests when no replica is ready. Spare capacity drains the queues and topic
//!    subscriptions the service consumes. Served requests issue `ratio` calls on each callee
//!    and `ratio` messages to each queue or topic (fractional ratios carry over exactly).
//! 4. **Latency** of a service is the M/M/c time in the system with Sakasegawa's wait
//!    probability (`rho^(sqrt(2(c+1)) - 1)`, exact for c = 1) at an exponentially weighted
//!    arrival rate (`latency_rate_tau_s`), its quantiles from the distribution of service plus
//!    wait (`graphscale_core::queueing`), or the service time's plus the time to drain the
//!    backlog where that is longer; plus the fixed off-CPU latency. End-to-end latency at a
//!    service adds its callees' end-to-end latency weighted by the call ratio (sequential
//!    calls); the end-to-end success rate multiplies the callees' success rates.
//! 5. **Memory** of a ready replica is `base + per_inflight * in-flight / c`, with in-flight
//!    the requests in service (Little's law on throughput and time in service; requests in the
//!    backlog wait in the accept queue and hold no memory); above the limit one replica is
//!    OOM-killed per step: its share of the queue fails and it restarts (start-up delay again).
//! 6. **Observation**, every `scrape_interval_s`: per-pod CPU as a rate between the last two
//!    scrapes (a pod with one scrape has no sample yet: "missing", as with metrics-server),
//!    and per-service rates over `rate_window_s`. Autoscalers see only these.
//!
//! Invariants (property-tested): per service `arrived = served + failed + waiting`; per queue
//! `produced = consumed + backlog`; replicas within `[0, max_replicas]`; same seed, same run.

use std::collections::VecDeque;
use std::sync::Arc;

use graphscale_core::exposition::{
    latency_cdf, latency_segments, ClusterCounters, DeploymentCounters, GroupCounters, PodCounters,
    RequestCounters, TopicCounters, ISTIO_DURATION_BUCKETS_MS,
};
use graphscale_core::queueing::SojournTables;
use graphscale_core::{
    Actuator, AppGraph, Clock, ClusterSnapshot, CpuSample, Edge, EdgeObservation, MetricSource,
    Millis, Node, NodeKind, PodObservation, PodPhase, PodResources, Relation, Resources,
    ScalingDecision, TopologySource, WorkloadObservation,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson};
use serde::{Deserialize, Serialize};

use crate::spec::{AppSpec, NodeSpec};
use crate::SimError;

mod build;
mod cluster;
mod contention;
mod exposition;
mod pods;
mod queueing;
mod seams;

use pods::jittered;
use queueing::topo_order;

/// Simulator settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Step length in ms (100..=1000, dividing 1000); default 1000.
    pub step_ms: u64,
    /// Metrics scrape interval in seconds (like metrics-server and Prometheus); default 15.
    pub scrape_interval_s: u64,
    /// Window of the service-level rates (`rate(...[1m])`), seconds; default 60.
    pub rate_window_s: u64,
    /// Relative jitter of pod start-up times, 0..1; default 0.2.
    pub startup_jitter: f64,
    /// Seed of every random draw.
    pub seed: u64,
    /// Pods on a node share its CPU by their requests when their limits add up to more
    /// (`contention.rs`); default on. Off, every pod bursts to its limit whatever its node
    /// holds: the model before issue #17's fidelity work, kept for ablations.
    pub node_contention: bool,
    /// Keep the per-edge request counters and latency histograms that
    /// [`Simulator::counters`] exports (for `graphscale sim serve`); default off, for speed.
    pub exposition: bool,
    /// Time constant, seconds, of the arrival rate that each step's M/M/c latency is priced
    /// at: an exponentially weighted average of the steps' arrival counts (at most 600;
    /// default 60), so that a step's Poisson noise is not priced as a steady load; 0 prices
    /// each step at its own count, the model before issue #17's check against a request-level
    /// queue (docs/simulator.md, "Latency, checked against a request-level queue"). Real
    /// overload queues in the explicit backlog either way.
    pub latency_rate_tau_s: f64,
    /// Quantiles of the time in the system from its distribution (the service time plus the
    /// M/M/c wait, a mixture of exponentials; tabulated per replica count), with the backlog's
    /// drain counted once, where it is longer (default on). Off: the sum of the service-time
    /// and waiting-time quantiles plus the drain, an upper bound and the model before.
    pub latency_sojourn: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            step_ms: 1000,
            scrape_interval_s: 15,
            rate_window_s: 60,
            startup_jitter: 0.2,
            seed: 0,
            node_contention: true,
            exposition: false,
            latency_rate_tau_s: 60.0,
            latency_sojourn: true,
        }
    }
}

impl SimConfig {
    fn validate(&self) -> Result<(), SimError> {
        let bad = |field: &str, reason: &str| {
            Err(SimError::InvalidSpec {
                field: format!("sim.{field}"),
                reason: reason.to_string(),
            })
        };
        if !(100..=1000).contains(&self.step_ms) || 1000 % self.step_ms != 0 {
            return bad("step_ms", "must be in 100..=1000 and divide 1000");
        }
        if self.scrape_interval_s == 0 || self.rate_window_s < self.scrape_interval_s {
            return bad(
                "scrape_interval_s",
                "need 0 < scrape_interval_s <= rate_window_s",
            );
        }
        if !(0.0..1.0).contains(&self.startup_jitter) {
            return bad("startup_jitter", "must be in 0..1");
        }
        if !(0.0..=600.0).contains(&self.latency_rate_tau_s) {
            return bad("latency_rate_tau_s", "must be in 0..=600 seconds");
        }
        Ok(())
    }
}

/// What one service did in the last step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceStats {
    /// Requests and messages that arrived (including pulled messages).
    pub arrived: u64,
    /// Requests and messages served.
    pub served: u64,
    /// Requests that failed (timeout, no ready replica, OOM kill).
    pub failed: u64,
    /// Requests waiting after the step.
    pub waiting: u64,
    /// Offered load, rps.
    pub offered_rps: f64,
    /// Capacity of the ready replicas, rps.
    pub capacity_rps: f64,
    /// Replicas in the spec.
    pub spec_replicas: u32,
    /// Ready replicas.
    pub ready: u32,
    /// Pods bound to a node (starting or ready): what the cluster charges for.
    pub bound: u32,
    /// Pods that fit on no node.
    pub pending: u32,
    /// CPU used, millicores, all pods.
    pub cpu_usage_m: f64,
    /// Memory working set, MiB, all pods.
    pub memory_mib: f64,
    /// Requests of the bound pods.
    pub requested: Resources,
    /// Own latency p50, p95, p99, ms.
    pub latency_ms: [f64; 3],
    /// End-to-end latency p50, p95, p99 from this service down its call tree, ms.
    pub e2e_ms: [f64; 3],
    /// Share of requests that succeed end to end through this service's call tree.
    pub e2e_success: f64,
    /// OOM kills in this step.
    pub oom_kills: u32,
}

/// Cumulative counters of a service.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    /// Requests and messages that arrived.
    pub arrived: u64,
    /// Served.
    pub served: u64,
    /// Failed.
    pub failed: u64,
    /// Sum of own p95 latency (ms) times requests served, for windowed averages.
    pub p95_weighted: f64,
}

#[derive(Debug, Clone)]
struct Pod {
    id: u64,
    name: Arc<str>,
    node: Option<usize>,
    started: Option<Millis>,
    ready_at: Millis,
    ready: bool,
    ready_transition: Option<Millis>,
    cpu_base: f64,
    cum_at_ready: f64,
    prev_scrape: Option<(Millis, f64)>,
    sample: Option<CpuSample>,
}

#[derive(Debug, Clone, Default)]
struct Svc {
    /// The pod template's requests and limits (every pod has them: resizes are in place).
    res: PodResources,
    spec_replicas: u32,
    pods: Vec<Pod>,
    next_pod_id: u64,
    ready: u32,
    bound: u32,
    next_event: u64,
    waiting: u64,
    cap_carry: f64,
    /// The arrival rate latency is priced at when `latency_rate_tau_s` > 0 (rps).
    priced_rate: f64,
    inflow: u64,
    totals: Totals,
    cum_cpu_per_ready: f64,
    mem_per_ready: f64,
    ring: VecDeque<(Millis, Totals)>,
}

#[derive(Debug, Clone)]
struct NodeState {
    spec: NodeSpec,
    cpu_alloc: f64,
    mem_alloc: f64,
    /// CPU limits of the pods bound here: with at most the node's CPU, nobody contends.
    limit_sum: f64,
    /// Removed by the cluster autoscaler (the slot stays so that pod node indices hold).
    gone: bool,
    /// Pods bound here.
    pods: u32,
    /// Since when the cluster autoscaler has found the node unneeded.
    unneeded_since: Option<Millis>,
}

impl NodeState {
    fn new(spec: NodeSpec) -> Self {
        NodeState {
            spec,
            cpu_alloc: 0.0,
            mem_alloc: 0.0,
            limit_sum: 0.0,
            gone: false,
            pods: 0,
            unneeded_since: None,
        }
    }
}

/// A backlog: a queue (shared by its consumers) or one subscriber's position on a topic.
#[derive(Debug, Clone)]
struct Backlog {
    channel: usize,
    consumer: Option<usize>,
    backlog: u64,
    produced: u64,
    consumed: u64,
}

/// A simulated cluster running one application under one workload.
#[derive(Debug, Clone)]
pub struct Simulator {
    cfg: SimConfig,
    app: AppSpec,
    graph: AppGraph,
    now: Millis,
    rng: ChaCha8Rng,
    svcs: Vec<Svc>,
    stats: Vec<ServiceStats>,
    order: Vec<usize>,
    calls_out: Vec<Vec<(usize, f64, usize)>>,
    emits_out: Vec<Vec<(usize, f64, usize)>>,
    drains: Vec<Vec<usize>>,
    channel_slots: Vec<Vec<usize>>,
    channel_names: Vec<(String, NodeKind)>,
    backlogs: Vec<Backlog>,
    /// `(src, dst)` of each edge of `graph`, shared by every snapshot.
    edge_names: Vec<(Arc<str>, Arc<str>)>,
    edge_carry: Vec<f64>,
    edge_total: Vec<u64>,
    edge_ring: VecDeque<(Millis, Vec<u64>)>,
    nodes: Vec<NodeState>,
    entries: Vec<(usize, f64)>,
    entry_arrivals: Vec<u64>,
    rates: Vec<f64>,
    unbound: usize,
    sched_retry_at: Millis,
    index: std::collections::HashMap<String, usize>,
    drain_consumed: Vec<Vec<u64>>,
    edge_step: Vec<u64>,
    req_counters: Vec<RequestCounters>,
    req_of_edge: Vec<Option<usize>>,
    /// The topology's version: bumped when a service's pods come to a node or leave one, or a
    /// node comes or goes.
    placement: u64,
    /// Per service, the share of its ready pods' CPU limit that node contention leaves them
    /// this step (1: none).
    cpu_share: Vec<f64>,
    /// Whether a node's bound limits exceed its CPU (the contention pass runs only then).
    contended: bool,
    /// Weight of a step's arrival count in the rate latency is priced at
    /// (`1 - exp(-dt / latency_rate_tau_s)`; 0: the count itself).
    rate_alpha: f64,
    /// The time-in-system quantile tables, with `latency_sojourn`.
    sojourn: Option<SojournTables>,
    /// The cluster autoscaler's state, when the app has one.
    ca: Option<cluster::CaState>,
    /// Nodes the cluster autoscaler drained.
    evictions: u64,
}

impl Simulator {
    /// The app being simulated.
    pub fn app(&self) -> &AppSpec {
        &self.app
    }

    /// The application graph without cluster nodes.
    pub fn graph(&self) -> &AppGraph {
        &self.graph
    }

    /// Per-service statistics of the last step, in `app().services` order.
    pub fn stats(&self) -> &[ServiceStats] {
        &self.stats
    }

    /// Cumulative counters of service `i`.
    pub fn totals(&self, i: usize) -> Totals {
        self.svcs[i].totals
    }

    /// `(service index, share)` of each entry service.
    pub fn entries(&self) -> &[(usize, f64)] {
        &self.entries
    }

    /// External arrivals at each entry in the last step, in [`Simulator::entries`] order.
    pub fn entry_arrivals(&self) -> &[u64] {
        &self.entry_arrivals
    }

    /// `(name, kind, backlog, produced, consumed)` of each queue, and of each topic
    /// subscription (named `topic/subscriber`).
    pub fn backlogs(&self) -> Vec<(String, NodeKind, u64, u64, u64)> {
        self.backlogs
            .iter()
            .map(|b| {
                let (name, kind) = &self.channel_names[b.channel];
                let name = match b.consumer {
                    Some(c) => format!("{name}/{}", self.app.services[c].name),
                    None => name.clone(),
                };
                (name, *kind, b.backlog, b.produced, b.consumed)
            })
            .collect()
    }

    /// The external rate (rps) at the current time.
    pub fn current_rate(&self) -> f64 {
        let sec = (self.now.0 / 1000) as usize;
        self.rates.get(sec).copied().unwrap_or(0.0)
    }

    /// Step length.
    pub fn step_len(&self) -> Millis {
        Millis(self.cfg.step_ms)
    }

    /// Advances the simulation by one step.
    pub fn step(&mut self) {
        let dt = self.cfg.step_ms as f64 / 1000.0;
        self.now = self.now + Millis(self.cfg.step_ms);
        let now = self.now;
        if self.ca.is_some() {
            self.cluster_autoscale();
        }
        if self.unbound > 0 && now >= self.sched_retry_at {
            self.schedule();
        }
        for s in 0..self.svcs.len() {
            if self.svcs[s].next_event <= now.0 {
                self.promote_ready(s);
            }
        }
        let rate = self.current_rate();
        for k in 0..self.entries.len() {
            let (s, share) = self.entries[k];
            let mean = rate * share * dt;
            let n = if mean <= 0.0 {
                0
            } else if mean > 1e6 {
                mean.round() as u64
            } else {
                Poisson::new(mean)
                    .map(|p| p.sample(&mut self.rng) as u64)
                    .unwrap_or(0)
            };
            self.entry_arrivals[k] = n;
            self.svcs[s].inflow += n;
        }
        if self.cfg.node_contention {
            self.contend();
        }
        for k in 0..self.order.len() {
            let s = self.order[k];
            self.process(s, dt);
        }
        for k in (0..self.order.len()).rev() {
            let s = self.order[k];
            let mut e2e = self.stats[s].latency_ms;
            let own_fail = {
                let st = &self.stats[s];
                let done = st.served + st.failed;
                if done == 0 {
                    0.0
                } else {
                    st.failed as f64 / done as f64
                }
            };
            let mut success = 1.0 - own_fail;
            let parallel = self.app.services[s].parallel_calls;
            let mut slowest = [0.0f64; 3];
            for &(t, ratio, _) in &self.calls_out[s] {
                let ts = &self.stats[t];
                if parallel {
                    // Concurrent calls: the caller waits for the slowest callee.
                    for (q, v) in slowest.iter_mut().enumerate() {
                        *v = v.max(ratio.min(1.0) * ts.e2e_ms[q]);
                    }
                } else {
                    for (q, v) in e2e.iter_mut().enumerate() {
                        *v += ratio * ts.e2e_ms[q];
                    }
                }
                // 1^r = 1: the common case, a callee tree with no failure, skips the `pow`.
                if ts.e2e_success != 1.0 {
                    success *= ts.e2e_success.powf(ratio);
                }
            }
            for (v, w) in e2e.iter_mut().zip(slowest) {
                *v += w;
            }
            let st = &mut self.stats[s];
            st.e2e_ms = e2e;
            st.e2e_success = success;
        }
        if self.cfg.exposition {
            self.update_request_counters();
        }
        if now.0.is_multiple_of(self.cfg.scrape_interval_s * 1000) {
            self.scrape();
        }
    }
}
