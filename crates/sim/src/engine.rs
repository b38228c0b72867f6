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
//! 4. **Latency** of a service is the M/M/c response time with Sakasegawa's approximation of
//!    the mean queue (`Lq = rho^sqrt(2(c+1)) / (1 - rho)`), an exponential tail for the
//!    quantiles of waiting and service time, plus the time to drain the backlog and the fixed
//!    off-CPU latency. End-to-end latency at a service adds its callees' end-to-end latency
//!    weighted by the call ratio (sequential calls); the end-to-end success rate multiplies
//!    the callees' success rates.
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

use graphscale_core::exposition::{
    latency_cdf, latency_segments, ClusterCounters, DeploymentCounters, GroupCounters, PodCounters,
    RequestCounters, TopicCounters, ISTIO_DURATION_BUCKETS_MS,
};
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
    /// Keep the per-edge request counters and latency histograms that
    /// [`Simulator::counters`] exports (for `graphscale sim serve`); default off, for speed.
    pub exposition: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            step_ms: 1000,
            scrape_interval_s: 15,
            rate_window_s: 60,
            startup_jitter: 0.2,
            seed: 0,
            exposition: false,
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
    name: String,
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
}

impl Simulator {
    /// A cluster at time zero with each service at its initial replicas, already started and
    /// ready (a warm cluster), under the per-second external `rates` (rps; 0 after the end).
    pub fn new(app: AppSpec, cfg: SimConfig, rates: Vec<f64>) -> Result<Self, SimError> {
        app.validate()?;
        cfg.validate()?;
        if let Some(i) = rates.iter().position(|r| !(r.is_finite() && *r >= 0.0)) {
            return Err(SimError::InvalidSpec {
                field: format!("workload.rates[{i}]"),
                reason: "rates must be finite and >= 0".into(),
            });
        }
        let graph = app.graph().map_err(|e| SimError::InvalidSpec {
            field: "edges".into(),
            reason: e.to_string(),
        })?;
        let n = app.services.len();
        let svc_index = |id: &str| app.services.iter().position(|s| s.name == id);
        let mut channel_names = Vec::new();
        for q in &app.queues {
            channel_names.push((q.clone(), NodeKind::Queue));
        }
        for t in &app.topics {
            channel_names.push((t.clone(), NodeKind::Topic));
        }
        let chan_index = |id: &str| channel_names.iter().position(|(c, _)| c == id);
        let mut calls_out = vec![Vec::new(); n];
        let mut emits_out = vec![Vec::new(); n];
        let mut drains = vec![Vec::new(); n];
        let mut channel_slots = vec![Vec::new(); channel_names.len()];
        let mut backlogs: Vec<Backlog> = Vec::new();
        for (ci, (_, kind)) in channel_names.iter().enumerate() {
            if *kind == NodeKind::Queue {
                channel_slots[ci].push(backlogs.len());
                backlogs.push(Backlog {
                    channel: ci,
                    consumer: None,
                    backlog: 0,
                    produced: 0,
                    consumed: 0,
                });
            }
        }
        // Load-flow dependencies between services, for the processing order.
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (ei, e) in graph.edges.iter().enumerate() {
            match e.relation {
                Relation::Calls => {
                    let (s, t) = (
                        svc_index(&e.src).unwrap_or(0),
                        svc_index(&e.dst).unwrap_or(0),
                    );
                    calls_out[s].push((t, e.ratio, ei));
                    deps[s].push(t);
                }
                Relation::Produces | Relation::Publishes => {
                    let (s, c) = (
                        svc_index(&e.src).unwrap_or(0),
                        chan_index(&e.dst).unwrap_or(0),
                    );
                    emits_out[s].push((c, e.ratio, ei));
                }
                Relation::Consumes => {
                    let (s, c) = (
                        svc_index(&e.src).unwrap_or(0),
                        chan_index(&e.dst).unwrap_or(0),
                    );
                    drains[s].extend(channel_slots[c].iter().copied());
                }
                Relation::Subscribes => {
                    let (s, c) = (
                        svc_index(&e.src).unwrap_or(0),
                        chan_index(&e.dst).unwrap_or(0),
                    );
                    channel_slots[c].push(backlogs.len());
                    drains[s].push(backlogs.len());
                    backlogs.push(Backlog {
                        channel: c,
                        consumer: Some(s),
                        backlog: 0,
                        produced: 0,
                        consumed: 0,
                    });
                }
                Relation::RunsOn => {}
            }
        }
        for (s, emits) in emits_out.iter().enumerate() {
            for &(c, _, _) in emits {
                for &slot in &channel_slots[c] {
                    let consumers: Vec<usize> = match backlogs[slot].consumer {
                        Some(x) => vec![x],
                        None => (0..n).filter(|&x| drains[x].contains(&slot)).collect(),
                    };
                    deps[s].extend(consumers);
                }
            }
        }
        let order = topo_order(&deps);
        let g2 = graph.clone();
        let entries = app
            .entry_shares(&g2)
            .into_iter()
            .filter_map(|(name, share)| svc_index(&name).map(|i| (i, share)))
            .collect::<Vec<_>>();
        let nodes = app
            .cluster_nodes()
            .into_iter()
            .map(|spec| NodeState {
                spec,
                cpu_alloc: 0.0,
                mem_alloc: 0.0,
            })
            .collect();
        let edge_count = graph.edges.len();
        let mut sim = Simulator {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            cfg,
            graph,
            now: Millis::ZERO,
            svcs: app
                .services
                .iter()
                .map(|sp| Svc {
                    res: PodResources {
                        requests: sp.requests,
                        limits: sp.limits,
                    },
                    ..Svc::default()
                })
                .collect(),
            stats: vec![ServiceStats::default(); n],
            order,
            calls_out,
            emits_out,
            drains,
            channel_slots,
            channel_names,
            backlogs,
            edge_carry: vec![0.0; edge_count],
            edge_total: vec![0; edge_count],
            edge_ring: VecDeque::new(),
            nodes,
            entry_arrivals: vec![0; entries.len()],
            entries,
            rates,
            unbound: 0,
            sched_retry_at: Millis::ZERO,
            index: app
                .services
                .iter()
                .enumerate()
                .map(|(i, s)| (s.name.clone(), i))
                .collect(),
            drain_consumed: Vec::new(),
            edge_step: vec![0; edge_count],
            req_counters: Vec::new(),
            req_of_edge: vec![None; edge_count],
            app,
        };
        sim.drain_consumed = sim.drains.iter().map(|d| vec![0; d.len()]).collect();
        let new_counter = |source: &str, destination: &str| RequestCounters {
            source: source.to_string(),
            destination: destination.to_string(),
            ok_total: 0.0,
            error_total: 0.0,
            duration_buckets: vec![0.0; ISTIO_DURATION_BUCKETS_MS.len()],
            duration_sum_ms: 0.0,
            duration_count: 0.0,
        };
        for &(s, _) in &sim.entries {
            sim.req_counters
                .push(new_counter("unknown", &sim.app.services[s].name));
        }
        for (ei, e) in sim.graph.edges.iter().enumerate() {
            if e.relation == Relation::Calls {
                sim.req_of_edge[ei] = Some(sim.req_counters.len());
                sim.req_counters.push(new_counter(&e.src, &e.dst));
            }
        }
        for s in 0..n {
            let want = sim.app.services[s].initial_replicas;
            sim.svcs[s].spec_replicas = want;
            for _ in 0..want {
                sim.add_pod(s);
            }
        }
        sim.schedule();
        // A warm start: initial pods are ready at time zero.
        for s in 0..n {
            for p in sim.svcs[s].pods.iter_mut().filter(|p| p.node.is_some()) {
                p.ready = true;
                p.ready_at = Millis::ZERO;
                p.started = Some(Millis::ZERO);
                p.ready_transition = Some(Millis::ZERO);
            }
            sim.refresh_counts(s);
        }
        sim.scrape();
        sim.refresh_stats();
        Ok(sim)
    }

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
            for &(t, ratio, _) in &self.calls_out[s] {
                let ts = &self.stats[t];
                for (q, v) in e2e.iter_mut().enumerate() {
                    *v += ratio * ts.e2e_ms[q];
                }
                success *= ts.e2e_success.powf(ratio);
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

    fn update_request_counters(&mut self) {
        let add = |c: &mut RequestCounters, n: f64, st: &ServiceStats| {
            let ok = n * st.e2e_success.clamp(0.0, 1.0);
            c.ok_total += ok;
            c.error_total += n - ok;
            c.duration_count += ok;
            for (i, le) in ISTIO_DURATION_BUCKETS_MS.iter().enumerate() {
                c.duration_buckets[i] += ok * latency_cdf(st.e2e_ms, *le);
            }
            c.duration_sum_ms += ok
                * latency_segments(st.e2e_ms)
                    .iter()
                    .map(|(lo, hi, m)| m * 0.5 * (lo + hi))
                    .sum::<f64>();
        };
        for (k, &(s, _)) in self.entries.iter().enumerate() {
            let st = &self.stats[s];
            add(
                &mut self.req_counters[k],
                (st.served + st.failed) as f64,
                st,
            );
        }
        for (e, edge) in self.graph.edges.iter().enumerate() {
            if let Some(ci) = self.req_of_edge[e] {
                let t = self.index[&edge.dst];
                add(
                    &mut self.req_counters[ci],
                    self.edge_step[e] as f64,
                    &self.stats[t],
                );
                self.edge_step[e] = 0;
            }
        }
    }

    /// Cumulative counters as cluster exporters publish them (cAdvisor, kube-state-metrics,
    /// Istio, kafka-exporter), for `namespace`. Request counters and histograms are kept only
    /// with [`SimConfig::exposition`]; without it they stay at zero.
    pub fn counters(&self, namespace: &str) -> ClusterCounters {
        let mut pods = Vec::new();
        let mut deployments = Vec::new();
        for (s, sv) in self.svcs.iter().enumerate() {
            let spec = &self.app.services[s];
            for p in &sv.pods {
                let mem = if p.ready {
                    sv.mem_per_ready
                } else {
                    spec.memory_base_mib
                };
                pods.push(PodCounters {
                    pod: p.name.clone(),
                    deployment: spec.name.clone(),
                    node: p.node.map(|n| self.nodes[n].spec.name.clone()),
                    ready: p.ready,
                    cpu_seconds_total: self.pod_cpu_counter(s, p) / 1000.0,
                    memory_bytes: if p.node.is_some() {
                        mem * 1_048_576.0
                    } else {
                        0.0
                    },
                    requests: sv.res.requests,
                    limits: sv.res.limits,
                });
            }
            deployments.push(DeploymentCounters {
                name: spec.name.clone(),
                spec_replicas: sv.spec_replicas,
                ready_replicas: sv.ready,
            });
        }
        let mut topics: Vec<TopicCounters> = self
            .channel_names
            .iter()
            .map(|(name, _)| TopicCounters {
                topic: name.clone(),
                produced_total: 0.0,
                producers: Vec::new(),
                groups: Vec::new(),
            })
            .collect();
        for (s, emits) in self.emits_out.iter().enumerate() {
            for &(ch, _, e) in emits {
                topics[ch]
                    .producers
                    .push((self.app.services[s].name.clone(), self.edge_total[e] as f64));
            }
        }
        for (ch, slots) in self.channel_slots.iter().enumerate() {
            if let Some(&first) = slots.first() {
                topics[ch].produced_total = self.backlogs[first].produced as f64;
            }
        }
        for (s, slots) in self.drains.iter().enumerate() {
            for (k, &slot) in slots.iter().enumerate() {
                let b = &self.backlogs[slot];
                topics[b.channel].groups.push(GroupCounters {
                    group: self.app.services[s].name.clone(),
                    consumed_total: self.drain_consumed[s][k] as f64,
                    lag: b.backlog as f64,
                });
            }
        }
        ClusterCounters {
            namespace: namespace.to_string(),
            pods,
            deployments,
            requests: self.req_counters.clone(),
            topics,
        }
    }

    fn process(&mut self, s: usize, dt: f64) {
        let spec = &self.app.services[s];
        let sv = &mut self.svcs[s];
        let mu = sv.res.limits.cpu_millicores / spec.cpu_ms_per_request;
        let c = sv.ready;
        let arrivals = std::mem::take(&mut sv.inflow);
        sv.waiting += arrivals;
        let cap_rate = c as f64 * mu;
        let cap = cap_rate * dt + sv.cap_carry;
        let cap_floor = cap.floor();
        let served_sync = sv.waiting.min(cap_floor as u64);
        sv.waiting -= served_sync;
        let mut spare;
        if sv.waiting > 0 {
            sv.cap_carry = cap - cap_floor;
            spare = 0.0;
        } else {
            sv.cap_carry = 0.0;
            spare = (cap - served_sync as f64).max(0.0);
        }
        let mut pulled = 0u64;
        for (k, &slot) in self.drains[s].iter().enumerate() {
            if spare < 1.0 {
                break;
            }
            let b = &mut self.backlogs[slot];
            let take = b.backlog.min(spare.floor() as u64);
            b.backlog -= take;
            b.consumed += take;
            self.drain_consumed[s][k] += take;
            spare -= take as f64;
            pulled += take;
        }
        let served = served_sync + pulled;
        let max_wait = (cap_rate * spec.timeout_ms / 1000.0).floor() as u64;
        let mut failed = 0;
        if sv.waiting > max_wait {
            failed = sv.waiting - max_wait;
            sv.waiting = max_wait;
        }
        let offered = (arrivals + pulled) as f64 / dt;
        let (lat, mean_s) = latency(
            c,
            mu,
            offered,
            sv.waiting,
            spec.base_latency_ms,
            spec.timeout_ms,
        );
        // CPU: served work spread over the ready replicas, plus idle.
        let busy_m = served as f64 * spec.cpu_ms_per_request / dt;
        if c > 0 {
            sv.cum_cpu_per_ready += (busy_m / c as f64 + spec.idle_cpu_millicores) * dt;
        }
        let inflight = (served as f64 / dt) * mean_s;
        sv.mem_per_ready = if c > 0 {
            spec.memory_base_mib + spec.memory_per_inflight_mib * inflight / c as f64
        } else {
            spec.memory_base_mib
        };
        let mut oom = 0;
        if c > 0 && sv.mem_per_ready > sv.res.limits.memory_mib {
            // One replica is OOM-killed: its share of the queue fails, and it restarts.
            let share = sv.waiting / c as u64;
            sv.waiting -= share;
            failed += share;
            let victims: Vec<usize> = sv
                .pods
                .iter()
                .enumerate()
                .filter(|(_, p)| p.ready)
                .map(|(i, _)| i)
                .collect();
            let vi = victims[self.rng.random_range(0..victims.len())];
            let now = self.now;
            let startup = jittered(spec.startup_s, self.cfg.startup_jitter, &mut self.rng);
            let cum = sv.cum_cpu_per_ready;
            let p = &mut sv.pods[vi];
            p.cpu_base += cum - p.cum_at_ready;
            p.ready = false;
            p.started = Some(now);
            p.ready_at = now + startup;
            p.ready_transition = Some(now);
            sv.ready -= 1;
            sv.next_event = sv.next_event.min(p.ready_at.0);
            oom = 1;
        }
        sv.totals.arrived += arrivals + pulled;
        sv.totals.served += served;
        sv.totals.failed += failed;
        sv.totals.p95_weighted += lat[1] * served as f64;
        let starting = sv.bound - sv.ready;
        let waiting = sv.waiting;
        let (spec_replicas, ready, bound) = (sv.spec_replicas, sv.ready, sv.bound);
        let mem_total =
            sv.mem_per_ready * ready as f64 + spec.memory_base_mib * (bound - ready) as f64;
        let cpu_total = busy_m
            + ready as f64 * spec.idle_cpu_millicores
            + starting as f64 * sv.res.requests.cpu_millicores;
        let (req_cpu, req_mem) = (
            sv.res.requests.cpu_millicores * bound as f64,
            sv.res.requests.memory_mib * bound as f64,
        );
        let pods_len = sv.pods.len() as u32;
        for &(t, ratio, e) in &self.calls_out[s] {
            let carry = self.edge_carry[e] + served as f64 * ratio;
            let k = carry.floor();
            self.edge_carry[e] = carry - k;
            self.edge_total[e] += k as u64;
            self.edge_step[e] = k as u64;
            self.svcs[t].inflow += k as u64;
        }
        for &(ch, ratio, e) in &self.emits_out[s] {
            let carry = self.edge_carry[e] + served as f64 * ratio;
            let k = carry.floor();
            self.edge_carry[e] = carry - k;
            self.edge_total[e] += k as u64;
            for &slot in &self.channel_slots[ch] {
                let b = &mut self.backlogs[slot];
                b.backlog += k as u64;
                b.produced += k as u64;
            }
        }
        let st = &mut self.stats[s];
        st.arrived = arrivals + pulled;
        st.served = served;
        st.failed = failed;
        st.waiting = waiting;
        st.offered_rps = offered;
        st.capacity_rps = cap_rate;
        st.spec_replicas = spec_replicas;
        st.ready = ready;
        st.bound = bound;
        st.pending = pods_len - bound;
        st.cpu_usage_m = cpu_total;
        st.memory_mib = mem_total;
        st.requested = Resources::new(req_cpu, req_mem);
        st.latency_ms = lat;
        st.oom_kills = oom;
    }

    fn add_pod(&mut self, s: usize) {
        let sv = &mut self.svcs[s];
        sv.pods.push(Pod {
            id: sv.next_pod_id,
            name: pod_name(&self.app.services[s].name, sv.next_pod_id),
            node: None,
            started: None,
            ready_at: Millis(u64::MAX),
            ready: false,
            ready_transition: None,
            cpu_base: 0.0,
            cum_at_ready: 0.0,
            prev_scrape: None,
            sample: None,
        });
        sv.next_pod_id += 1;
        self.unbound += 1;
        self.sched_retry_at = Millis::ZERO;
    }

    /// Binds pending pods, least-allocated node first.
    fn schedule(&mut self) {
        let now = self.now;
        let mut placed_any = false;
        let mut left = 0;
        for s in 0..self.svcs.len() {
            if self.svcs[s].pods.len() as u32 == self.svcs[s].bound {
                continue;
            }
            let req = self.svcs[s].res.requests;
            let startup_s = self.app.services[s].startup_s;
            for pi in 0..self.svcs[s].pods.len() {
                if self.svcs[s].pods[pi].node.is_some() {
                    continue;
                }
                let best = self
                    .nodes
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| {
                        n.spec.cpu_millicores - n.cpu_alloc >= req.cpu_millicores
                            && n.spec.memory_mib - n.mem_alloc >= req.memory_mib
                    })
                    .max_by(|(_, a), (_, b)| {
                        let fa = (a.spec.cpu_millicores - a.cpu_alloc) / a.spec.cpu_millicores
                            + (a.spec.memory_mib - a.mem_alloc) / a.spec.memory_mib;
                        let fb = (b.spec.cpu_millicores - b.cpu_alloc) / b.spec.cpu_millicores
                            + (b.spec.memory_mib - b.mem_alloc) / b.spec.memory_mib;
                        fa.total_cmp(&fb)
                    })
                    .map(|(i, _)| i);
                match best {
                    Some(ni) => {
                        self.nodes[ni].cpu_alloc += req.cpu_millicores;
                        self.nodes[ni].mem_alloc += req.memory_mib;
                        let startup = jittered(startup_s, self.cfg.startup_jitter, &mut self.rng);
                        let sv = &mut self.svcs[s];
                        let p = &mut sv.pods[pi];
                        p.node = Some(ni);
                        p.started = Some(now);
                        p.ready_at = now + startup;
                        p.ready_transition = Some(now);
                        sv.next_event = sv.next_event.min(p.ready_at.0);
                        placed_any = true;
                    }
                    None => left += 1,
                }
            }
            self.refresh_counts(s);
        }
        self.unbound = left;
        if left > 0 && !placed_any {
            self.sched_retry_at = now + Millis::from_secs(10);
        }
    }

    fn promote_ready(&mut self, s: usize) {
        let now = self.now;
        let startup_cpu = self.svcs[s].res.requests.cpu_millicores;
        let sv = &mut self.svcs[s];
        let cum = sv.cum_cpu_per_ready;
        for p in sv.pods.iter_mut() {
            if !p.ready && p.node.is_some() && p.ready_at <= now {
                let started = p.started.unwrap_or(p.ready_at);
                p.cpu_base += startup_cpu * p.ready_at.saturating_sub(started).as_secs_f64();
                p.cum_at_ready = cum;
                p.ready = true;
                p.ready_transition = Some(p.ready_at);
            }
        }
        self.refresh_counts(s);
    }

    fn refresh_counts(&mut self, s: usize) {
        let sv = &mut self.svcs[s];
        sv.ready = sv.pods.iter().filter(|p| p.ready).count() as u32;
        sv.bound = sv.pods.iter().filter(|p| p.node.is_some()).count() as u32;
        sv.next_event = sv
            .pods
            .iter()
            .filter(|p| !p.ready && p.node.is_some())
            .map(|p| p.ready_at.0)
            .min()
            .unwrap_or(u64::MAX);
    }

    fn refresh_stats(&mut self) {
        for s in 0..self.svcs.len() {
            let sv = &self.svcs[s];
            let st = &mut self.stats[s];
            st.spec_replicas = sv.spec_replicas;
            st.ready = sv.ready;
            st.bound = sv.bound;
            st.pending = sv.pods.len() as u32 - sv.bound;
            st.e2e_success = 1.0;
        }
    }

    fn pod_cpu_counter(&self, s: usize, p: &Pod) -> f64 {
        let startup_cpu = self.svcs[s].res.requests.cpu_millicores;
        if p.ready {
            p.cpu_base + self.svcs[s].cum_cpu_per_ready - p.cum_at_ready
        } else if let (Some(_), Some(st)) = (p.node, p.started) {
            p.cpu_base + startup_cpu * self.now.saturating_sub(st).as_secs_f64()
        } else {
            p.cpu_base
        }
    }

    fn scrape(&mut self) {
        let now = self.now;
        let keep = (self.cfg.rate_window_s / self.cfg.scrape_interval_s) as usize + 1;
        for s in 0..self.svcs.len() {
            let counters: Vec<Option<f64>> = self.svcs[s]
                .pods
                .iter()
                .map(|p| p.started.map(|_| self.pod_cpu_counter(s, p)))
                .collect();
            let sv = &mut self.svcs[s];
            for (p, c) in sv.pods.iter_mut().zip(counters) {
                let Some(c) = c else { continue };
                p.sample = match p.prev_scrape {
                    Some((t0, c0)) if now > t0 && p.started.is_some_and(|st| st <= t0) => {
                        Some(CpuSample {
                            millicores: ((c - c0) / now.saturating_sub(t0).as_secs_f64()).max(0.0),
                            timestamp: now,
                            window: now.saturating_sub(t0),
                        })
                    }
                    _ => None,
                };
                p.prev_scrape = Some((now, c));
            }
            sv.ring.push_back((now, sv.totals));
            while sv.ring.len() > keep {
                sv.ring.pop_front();
            }
        }
        self.edge_ring.push_back((now, self.edge_total.clone()));
        while self.edge_ring.len() > keep {
            self.edge_ring.pop_front();
        }
    }
}

/// `<deployment>-<replicaset hash>-<suffix>`, as a Deployment names its pods: a stable
/// 10-character hash of the deployment name and a 5-character suffix from the pod's number.
fn pod_name(deployment: &str, id: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let base = ALPHABET.len() as u64;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in deployment.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    let mut name = String::with_capacity(deployment.len() + 17);
    name.push_str(deployment);
    name.push('-');
    let mut x = h;
    for _ in 0..10 {
        name.push(ALPHABET[(x % base) as usize] as char);
        x /= base;
    }
    name.push('-');
    // A bijection on 0..27^5 (1,000,003 is coprime with 27): names never repeat within a
    // deployment for its first 14 million pods.
    const SPACE: u64 = 27 * 27 * 27 * 27 * 27;
    let mut y = ((id % SPACE) * 1_000_003) % SPACE;
    for _ in 0..5 {
        name.push(ALPHABET[(y % base) as usize] as char);
        y /= base;
    }
    name
}

fn jittered(base_s: f64, jitter: f64, rng: &mut ChaCha8Rng) -> Millis {
    let f = if jitter > 0.0 {
        rng.random_range(1.0 - jitter..=1.0 + jitter)
    } else {
        1.0
    };
    Millis::from_secs_f64(base_s * f)
}

/// M/M/c response-time quantiles (p50, p95, p99, ms) and the mean time in service (s,
/// without the backlog wait); see the module docs.
fn latency(
    c: u32,
    mu: f64,
    offered: f64,
    waiting: u64,
    base_ms: f64,
    timeout_ms: f64,
) -> ([f64; 3], f64) {
    if c == 0 {
        return ([timeout_ms; 3], timeout_ms / 1000.0);
    }
    let cmu = c as f64 * mu;
    let rho = (offered / cmu).min(0.995);
    let lambda = rho * cmu;
    let headroom = cmu - lambda;
    let lq = rho.powf((2.0 * (c as f64 + 1.0)).sqrt()) / (1.0 - rho);
    let wq = if lambda > 0.0 { lq / lambda } else { 0.0 };
    let p_wait = (wq * headroom).min(1.0);
    let backlog_s = waiting as f64 / cmu;
    let svc_s = 1.0 / mu;
    let mut out = [0.0; 3];
    // (1 - q, -ln(1 - q)) for q = 0.5, 0.95, 0.99: constants, kept out of the hot loop.
    const TAILS: [(f64, f64); 3] = [
        (0.5, std::f64::consts::LN_2),
        (0.05, 2.995_732_273_553_991),
        (0.01, 4.605_170_185_988_091),
    ];
    let ln_p_wait = if p_wait > 0.0 {
        p_wait.ln()
    } else {
        f64::NEG_INFINITY
    };
    for (i, &(tail, neg_ln_tail)) in TAILS.iter().enumerate() {
        let w = if p_wait > tail {
            (ln_p_wait + neg_ln_tail) / headroom
        } else {
            0.0
        };
        let l = base_ms + 1000.0 * (neg_ln_tail * svc_s + w + backlog_s);
        out[i] = l.min(timeout_ms);
    }
    // Mean time in service and in the M/M/c queue, without the backlog wait: requests held
    // in the backlog do not occupy the replica's memory (they wait in the accept queue).
    let mean = base_ms / 1000.0 + svc_s + wq;
    (out, mean)
}

/// Kahn's algorithm; nodes left in cycles follow in index order.
fn topo_order(deps: &[Vec<usize>]) -> Vec<usize> {
    let n = deps.len();
    let mut indeg = vec![0usize; n];
    for d in deps {
        for &t in d {
            indeg[t] += 1;
        }
    }
    let mut queue: VecDeque<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    let mut done = vec![false; n];
    while let Some(i) = queue.pop_front() {
        order.push(i);
        done[i] = true;
        for &t in &deps[i] {
            indeg[t] -= 1;
            if indeg[t] == 0 {
                queue.push_back(t);
            }
        }
    }
    order.extend((0..n).filter(|&i| !done[i]));
    order
}

impl Clock for Simulator {
    fn now(&self) -> Millis {
        self.now
    }
}

impl MetricSource for Simulator {
    type Error = SimError;

    fn observe(&mut self) -> Result<ClusterSnapshot, SimError> {
        let mut workloads = Vec::with_capacity(self.svcs.len());
        for (s, sv) in self.svcs.iter().enumerate() {
            let spec = &self.app.services[s];
            let pods = sv
                .pods
                .iter()
                .map(|p| PodObservation {
                    name: p.name.clone(),
                    phase: if p.node.is_some() {
                        PodPhase::Running
                    } else {
                        PodPhase::Pending
                    },
                    deleting: false,
                    start_time: p.started,
                    ready: p.node.map(|_| p.ready),
                    ready_transition: p.ready_transition,
                    cpu: p.sample,
                    memory_mib: p.sample.map(|_| {
                        if p.ready {
                            sv.mem_per_ready
                        } else {
                            spec.memory_base_mib
                        }
                    }),
                    requests: sv.res.requests,
                    limits: sv.res.limits,
                })
                .collect();
            let (rps, p95, err) = match (sv.ring.front(), sv.ring.back()) {
                (Some((t0, a)), Some((t1, b))) if t1 > t0 => {
                    let secs = t1.saturating_sub(*t0).as_secs_f64();
                    let arrived = (b.arrived - a.arrived) as f64;
                    let served = (b.served - a.served) as f64;
                    let failed = (b.failed - a.failed) as f64;
                    let p95 = (served > 0.0).then(|| (b.p95_weighted - a.p95_weighted) / served);
                    let err = (served + failed > 0.0).then(|| failed / (served + failed));
                    (Some(arrived / secs), p95, err)
                }
                _ => (None, None, None),
            };
            let backlog = sv.waiting as f64
                + self.drains[s]
                    .iter()
                    .map(|&b| self.backlogs[b].backlog as f64)
                    .sum::<f64>();
            workloads.push(WorkloadObservation {
                name: spec.name.clone(),
                spec_replicas: sv.spec_replicas,
                pods,
                rps,
                latency_p95_ms: p95,
                error_rate: err,
                backlog: Some(backlog),
            });
        }
        let edges = self
            .graph
            .edges
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let rps = match (self.edge_ring.front(), self.edge_ring.back()) {
                    (Some((t0, a)), Some((t1, b))) if t1 > t0 => {
                        Some((b[i] - a[i]) as f64 / t1.saturating_sub(*t0).as_secs_f64())
                    }
                    _ => None,
                };
                EdgeObservation {
                    src: e.src.clone(),
                    dst: e.dst.clone(),
                    relation: e.relation,
                    rps: matches!(
                        e.relation,
                        Relation::Calls | Relation::Produces | Relation::Publishes
                    )
                    .then_some(rps)
                    .flatten(),
                }
            })
            .collect();
        Ok(ClusterSnapshot {
            time: self.now,
            workloads,
            edges,
        })
    }
}

impl TopologySource for Simulator {
    type Error = SimError;

    fn topology(&self) -> Result<AppGraph, SimError> {
        let mut nodes = self.graph.nodes.clone();
        let mut edges: Vec<Edge> = self.graph.edges.clone();
        for n in &self.nodes {
            nodes.push(Node::new(&n.spec.name, NodeKind::ClusterNode));
        }
        for (s, sv) in self.svcs.iter().enumerate() {
            let mut on: Vec<usize> = sv.pods.iter().filter_map(|p| p.node).collect();
            on.sort_unstable();
            on.dedup();
            for ni in on {
                edges.push(Edge::new(
                    &self.app.services[s].name,
                    &self.nodes[ni].spec.name,
                    Relation::RunsOn,
                    1.0,
                ));
            }
        }
        AppGraph::new(&self.graph.name, nodes, edges).map_err(|e| SimError::InvalidSpec {
            field: "topology".into(),
            reason: e.to_string(),
        })
    }
}

impl Simulator {
    /// The current requests and limits of `service`'s pods.
    pub fn resources(&self, service: &str) -> Option<PodResources> {
        self.index.get(service).map(|&s| self.svcs[s].res)
    }

    /// Resizes every pod of service `s` in place (Kubernetes' in-place pod resize) and the
    /// template of new ones. A request increase that does not fit on a pod's node leaves the
    /// whole service as it was (the resize is deferred: the caller may ask again).
    fn resize(&mut self, s: usize, to: PodResources) -> bool {
        let from = self.svcs[s].res;
        if from == to {
            return true;
        }
        let dc = to.requests.cpu_millicores - from.requests.cpu_millicores;
        let dm = to.requests.memory_mib - from.requests.memory_mib;
        let mut per_node = vec![0u32; self.nodes.len()];
        for p in &self.svcs[s].pods {
            if let Some(ni) = p.node {
                per_node[ni] += 1;
            }
        }
        let fits = self.nodes.iter().zip(&per_node).all(|(n, &k)| {
            let k = k as f64;
            n.cpu_alloc + k * dc <= n.spec.cpu_millicores + 1e-9
                && n.mem_alloc + k * dm <= n.spec.memory_mib + 1e-9
        });
        if !fits {
            return false;
        }
        for (n, &k) in self.nodes.iter_mut().zip(&per_node) {
            n.cpu_alloc += k as f64 * dc;
            n.mem_alloc += k as f64 * dm;
        }
        self.svcs[s].res = to;
        if dc < 0.0 || dm < 0.0 {
            // Freed room may let pending pods bind.
            self.sched_retry_at = Millis::ZERO;
        }
        true
    }
}

impl Actuator for Simulator {
    type Error = SimError;

    /// Sets `spec.replicas` (capped at the service's `max_replicas`) and creates or deletes
    /// pods as a ReplicaSet does: unscheduled pods go first, then unready ones, then the most
    /// recently started ready ones. A decision with `resources` first resizes the service's
    /// pods in place (see [`Simulator::resources`]); resources that are not finite and
    /// positive, or limits below requests, are refused with the workload's name.
    fn apply(&mut self, decisions: &[ScalingDecision]) -> Result<(), SimError> {
        for d in decisions {
            let s = *self
                .index
                .get(&d.workload)
                .ok_or_else(|| SimError::UnknownName {
                    what: "workload",
                    name: d.workload.clone(),
                    known: self
                        .app
                        .services
                        .iter()
                        .map(|x| x.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            if let Some(r) = d.resources {
                if let Some(why) = r.problem() {
                    return Err(SimError::InvalidDecision {
                        workload: d.workload.clone(),
                        reason: format!("resources: {why}"),
                    });
                }
                self.resize(s, r);
            }
            let want = d.replicas.min(self.app.services[s].max_replicas);
            self.svcs[s].spec_replicas = want;
            let have = self.svcs[s].pods.len() as u32;
            if want > have {
                for _ in have..want {
                    self.add_pod(s);
                }
            } else if want < have {
                let sv = &mut self.svcs[s];
                // Rank: unbound (0), unready (1), ready (2); newer first within a rank.
                let mut idx: Vec<usize> = (0..sv.pods.len()).collect();
                idx.sort_by_key(|&i| {
                    let p = &sv.pods[i];
                    let rank = if p.node.is_none() {
                        0
                    } else if !p.ready {
                        1
                    } else {
                        2
                    };
                    (
                        rank,
                        std::cmp::Reverse(p.started.unwrap_or(Millis::ZERO)),
                        std::cmp::Reverse(p.id),
                    )
                });
                let mut remove: Vec<usize> = idx[..(have - want) as usize].to_vec();
                remove.sort_unstable_by(|a, b| b.cmp(a));
                let req = sv.res.requests;
                for i in remove {
                    let p = sv.pods.swap_remove(i);
                    match p.node {
                        Some(ni) => {
                            self.nodes[ni].cpu_alloc -= req.cpu_millicores;
                            self.nodes[ni].mem_alloc -= req.memory_mib;
                            self.sched_retry_at = Millis::ZERO;
                        }
                        None => self.unbound = self.unbound.saturating_sub(1),
                    }
                }
                // Deterministic order after swap_remove.
                sv.pods.sort_by_key(|p| p.id);
                self.refresh_counts(s);
            }
            let sv = &self.svcs[s];
            let st = &mut self.stats[s];
            st.spec_replicas = sv.spec_replicas;
            st.ready = sv.ready;
            st.bound = sv.bound;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mm1_matches_the_closed_form() {
        // M/M/1, mu = 100/s, lambda = 50/s: W ~ Exp(mu - lambda) = Exp(50); p95 = ln(20)/50 s.
        // Our quantile adds the service and waiting quantiles separately (an upper bound).
        let (q, mean) = latency(1, 100.0, 50.0, 0, 0.0, 1e9);
        let exact_mean = 1.0 / (100.0 - 50.0);
        assert!((mean - exact_mean).abs() < 1e-9, "{mean} vs {exact_mean}");
        // Backlog adds to the quantiles, not to the time in service.
        let (qb, mean_b) = latency(1, 100.0, 50.0, 100, 0.0, 1e9);
        assert_eq!(mean_b, mean);
        assert!((qb[1] - q[1] - 1000.0).abs() < 1e-6);
        let exact_p95 = 1000.0 * (20f64).ln() / 50.0;
        assert!(
            q[1] >= exact_p95 * 0.95 && q[1] <= exact_p95 * 1.6,
            "{} vs {exact_p95}",
            q[1]
        );
    }

    #[test]
    fn latency_grows_with_load_and_backlog() {
        let (low, _) = latency(4, 10.0, 10.0, 0, 1.0, 1e9);
        let (high, _) = latency(4, 10.0, 38.0, 0, 1.0, 1e9);
        let (backlogged, _) = latency(4, 10.0, 38.0, 400, 1.0, 1e9);
        assert!(low[1] < high[1] && high[1] < backlogged[1]);
        assert!(low[0] < low[1] && low[1] < low[2]);
        let (none, _) = latency(0, 10.0, 1.0, 0, 1.0, 5000.0);
        assert_eq!(none, [5000.0; 3]);
    }

    #[test]
    fn pod_names_look_like_kubernetes_and_do_not_repeat() {
        let names: std::collections::HashSet<String> =
            (0..5000).map(|i| pod_name("cart", i)).collect();
        assert_eq!(names.len(), 5000);
        let n = pod_name("cart", 7);
        let parts: Vec<&str> = n.split('-').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!((parts[0], parts[1].len(), parts[2].len()), ("cart", 10, 5));
        assert_eq!(pod_name("cart", 7), n);
    }

    #[test]
    fn topo_order_handles_cycles() {
        let o = topo_order(&[vec![1], vec![2], vec![]]);
        assert_eq!(o, vec![0, 1, 2]);
        let o = topo_order(&[vec![1], vec![0], vec![0]]);
        assert_eq!(o.len(), 3);
        assert_eq!(o[0], 2);
    }
}
