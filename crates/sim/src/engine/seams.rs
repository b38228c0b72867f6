//! The simulator behind the core seams: its clock, metric source, topology source and actuator, and in-place resizes.

use super::*;

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
                let (src, dst) = &self.edge_names[i];
                EdgeObservation {
                    src: Arc::clone(src),
                    dst: Arc::clone(dst),
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

    /// The app's graph with the cluster nodes and a `runs_on` edge from each service to every
    /// node one of its pods is bound to.
    fn topology(&self) -> Result<AppGraph, SimError> {
        // Sized once: growing a 1,000-service graph's vectors copied them, often.
        let mut nodes = Vec::with_capacity(self.graph.nodes.len() + self.nodes.len());
        nodes.extend_from_slice(&self.graph.nodes);
        let pods: usize = self.svcs.iter().map(|sv| sv.pods.len()).sum();
        let mut edges: Vec<Edge> = Vec::with_capacity(self.graph.edges.len() + pods);
        edges.extend_from_slice(&self.graph.edges);
        for n in self.nodes.iter().filter(|n| !n.gone) {
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

    /// Changes whenever a service's pods come to a node or leave one, or a node comes or
    /// goes: what the `runs_on` edges show (the app's graph never changes).
    fn version(&self) -> Option<u64> {
        Some(self.placement)
    }
}

impl Simulator {
    /// The current requests and limits of `service`'s pods.
    pub fn resources(&self, service: &str) -> Option<PodResources> {
        self.index.get(service).map(|&s| self.svcs[s].res)
    }

    /// The index of service `name`, tried first at `pos`: decisions come in the snapshot's
    /// order, which is the services' order, so this is usually one name comparison.
    fn service_at(&self, pos: usize, name: &str) -> Option<usize> {
        match self.app.services.get(pos) {
            Some(x) if x.name == name => Some(pos),
            _ => self.index.get(name).copied(),
        }
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
        let dl = to.limits.cpu_millicores - from.limits.cpu_millicores;
        for (n, &k) in self.nodes.iter_mut().zip(&per_node) {
            n.cpu_alloc += k as f64 * dc;
            n.mem_alloc += k as f64 * dm;
            n.limit_sum += k as f64 * dl;
            self.contended |= n.limit_sum > n.spec.cpu_millicores + 1e-9;
        }
        // A starting pod burns its request: what it burnt so far stays at the old request
        // (its CPU counter is continuous), the rest of its start-up at the new one.
        if dc != 0.0 {
            let now = self.now;
            for p in self.svcs[s].pods.iter_mut() {
                if let (false, Some(_), Some(st)) = (p.ready, p.node, p.started) {
                    p.cpu_base -= dc * now.saturating_sub(st).as_secs_f64();
                }
            }
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
        for (pos, d) in decisions.iter().enumerate() {
            let s = self
                .service_at(pos, &d.workload)
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
                let limit = sv.res.limits.cpu_millicores;
                let mut freed = Vec::new();
                for i in remove {
                    let p = sv.pods.swap_remove(i);
                    match p.node {
                        Some(ni) => {
                            // The topology changes only with the service's last pod here.
                            if !sv.pods.iter().any(|q| q.node == Some(ni)) {
                                self.placement += 1;
                            }
                            self.nodes[ni].cpu_alloc -= req.cpu_millicores;
                            self.nodes[ni].mem_alloc -= req.memory_mib;
                            freed.push(ni);
                            self.sched_retry_at = Millis::ZERO;
                        }
                        None => self.unbound = self.unbound.saturating_sub(1),
                    }
                }
                // Deterministic order after swap_remove.
                sv.pods.sort_by_key(|p| p.id);
                for ni in freed {
                    self.unbind_limit(ni, limit);
                }
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
