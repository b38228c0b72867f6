//! What the simulated cluster exposes: request counters per edge, the exporter's counters, and the periodic scrape that autoscalers read.

use super::*;

impl Simulator {
    pub(super) fn update_request_counters(&mut self) {
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
                    pod: p.name.to_string(),
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

    pub(super) fn pod_cpu_counter(&self, s: usize, p: &Pod) -> f64 {
        let startup_cpu = self.svcs[s].res.requests.cpu_millicores;
        if p.ready {
            p.cpu_base + self.svcs[s].cum_cpu_per_ready - p.cum_at_ready
        } else if let (Some(_), Some(st)) = (p.node, p.started) {
            p.cpu_base + startup_cpu * self.now.saturating_sub(st).as_secs_f64()
        } else {
            p.cpu_base
        }
    }

    pub(super) fn scrape(&mut self) {
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
