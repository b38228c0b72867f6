//! Building a simulator: validating the app, laying out services, edges, channels, nodes and counters.

use super::*;

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
            .map(NodeState::new)
            .collect();
        let edge_count = graph.edges.len();
        let edge_names = graph
            .edges
            .iter()
            .map(|e| (Arc::from(e.src.as_str()), Arc::from(e.dst.as_str())))
            .collect();
        let rate_alpha = if cfg.latency_rate_tau_s > 0.0 {
            1.0 - (-(cfg.step_ms as f64 / 1000.0) / cfg.latency_rate_tau_s).exp()
        } else {
            0.0
        };
        let sojourn = cfg.latency_sojourn.then(SojournTables::default);
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
            edge_names,
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
            placement: 0,
            cpu_share: vec![1.0; n],
            contended: false,
            rate_alpha,
            sojourn,
            ca: app.cluster_autoscaler.clone().map(cluster::CaState::new),
            evictions: 0,
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
}
