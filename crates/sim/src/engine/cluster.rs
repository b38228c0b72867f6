//! The cluster autoscaler: new nodes for pods that fit nowhere, after a delay; empty added
//! nodes removed again (see [`crate::spec::ClusterAutoscalerSpec`]).

use super::*;
use crate::spec::ClusterAutoscalerSpec;

/// What the cluster autoscaler is doing.
#[derive(Debug, Clone)]
pub(super) struct CaState {
    spec: ClusterAutoscalerSpec,
    /// When each requested node will be Ready.
    provisioning: Vec<Millis>,
    next_scan: Millis,
    /// Nodes added so far (names them).
    added: u64,
}

impl CaState {
    pub(super) fn new(spec: ClusterAutoscalerSpec) -> Self {
        CaState {
            spec,
            provisioning: Vec::new(),
            next_scan: Millis::ZERO,
            added: 0,
        }
    }
}

impl Simulator {
    /// Nodes of the cluster now (the cluster autoscaler's removed ones not counted).
    pub fn node_count(&self) -> usize {
        self.nodes.iter().filter(|n| !n.gone).count()
    }

    /// Allocatable CPU of the cluster's nodes now, millicores.
    pub fn node_cpu_millicores(&self) -> f64 {
        self.nodes
            .iter()
            .filter(|n| !n.gone)
            .map(|n| n.spec.cpu_millicores)
            .sum()
    }

    /// Nodes the cluster autoscaler has asked for that are not Ready yet.
    pub fn nodes_provisioning(&self) -> usize {
        self.ca.as_ref().map_or(0, |ca| ca.provisioning.len())
    }

    /// One step of the cluster autoscaler: Ready nodes join, and on a scan pending pods ask
    /// for nodes and empty added nodes go.
    pub(super) fn cluster_autoscale(&mut self) {
        let now = self.now;
        let Some(mut ca) = self.ca.take() else {
            return;
        };
        let (joined, waiting): (Vec<Millis>, Vec<Millis>) =
            ca.provisioning.iter().partition(|&&t| t <= now);
        ca.provisioning = waiting;
        for _ in joined {
            let spec = NodeSpec {
                name: format!("ca-node-{}", ca.added),
                cpu_millicores: ca.spec.node_cpu_millicores,
                memory_mib: ca.spec.node_memory_mib,
            };
            ca.added += 1;
            let node = NodeState::new(spec, true, now);
            match self.nodes.iter().position(|n| n.gone) {
                Some(i) => self.nodes[i] = node,
                None => self.nodes.push(node),
            }
            self.placement += 1;
            self.sched_retry_at = Millis::ZERO;
        }
        if now >= ca.next_scan {
            ca.next_scan = now + Millis::from_secs_f64(ca.spec.scan_interval_s);
            let unneeded = Millis::from_secs_f64(ca.spec.scale_down_unneeded_s);
            for n in self.nodes.iter_mut() {
                if n.added && !n.gone && n.pods == 0 {
                    if let Some(t) = n.empty_since {
                        if now.saturating_sub(t) >= unneeded {
                            n.gone = true;
                            self.placement += 1;
                        }
                    }
                }
            }
            if self.unbound > 0 {
                let want = self.nodes_for_pending(&ca.spec);
                let have = self.node_count() + ca.provisioning.len();
                let room = (ca.spec.max_nodes as usize).saturating_sub(have);
                let ready_at = now + Millis::from_secs_f64(ca.spec.node_ready_s);
                for _ in 0..want.saturating_sub(ca.provisioning.len()).min(room) {
                    ca.provisioning.push(ready_at);
                }
            }
        }
        self.ca = Some(ca);
    }

    /// New template nodes that first-fit packing of the pending pods needs, beyond the free
    /// room of the current nodes (pods larger than the template are left out: no node helps).
    fn nodes_for_pending(&self, spec: &ClusterAutoscalerSpec) -> usize {
        let mut free: Vec<(f64, f64)> = self
            .nodes
            .iter()
            .filter(|n| !n.gone)
            .map(|n| {
                (
                    n.spec.cpu_millicores - n.cpu_alloc,
                    n.spec.memory_mib - n.mem_alloc,
                )
            })
            .collect();
        let existing = free.len();
        for sv in &self.svcs {
            let (c, m) = (sv.res.requests.cpu_millicores, sv.res.requests.memory_mib);
            if c > spec.node_cpu_millicores || m > spec.node_memory_mib {
                continue;
            }
            for _ in sv.pods.iter().filter(|p| p.node.is_none()) {
                match free.iter_mut().find(|(fc, fm)| *fc >= c && *fm >= m) {
                    Some(slot) => {
                        slot.0 -= c;
                        slot.1 -= m;
                    }
                    None => free.push((spec.node_cpu_millicores - c, spec.node_memory_mib - m)),
                }
            }
        }
        free.len() - existing
    }
}
