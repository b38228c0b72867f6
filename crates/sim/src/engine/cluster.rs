//! The cluster autoscaler: new nodes for pods that fit nowhere, after a delay; empty added
//! nodes removed again (see [`crate::spec::ClusterAutoscalerSpec`]).

use super::*;
use crate::spec::{first_fit, ClusterAutoscalerSpec};

/// What the cluster autoscaler is doing.
#[derive(Debug, Clone)]
pub(super) struct CaState {
    spec: ClusterAutoscalerSpec,
    /// When each requested node will be Ready.
    provisioning: Vec<Millis>,
    next_scan: Millis,
    /// Nodes added so far (names them).
    added: u64,
    /// The last scan that asked for nodes.
    last_scale_up: Option<Millis>,
}

impl CaState {
    pub(super) fn new(spec: ClusterAutoscalerSpec) -> Self {
        CaState {
            spec,
            provisioning: Vec::new(),
            next_scan: Millis::ZERO,
            added: 0,
            last_scale_up: None,
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

    /// Nodes the cluster autoscaler has drained of their pods so far.
    pub fn nodes_drained(&self) -> u64 {
        self.evictions
    }

    /// Nodes the cluster autoscaler has asked for that are not Ready yet.
    pub fn nodes_provisioning(&self) -> usize {
        self.ca.as_ref().map_or(0, |ca| ca.provisioning.len())
    }

    /// One step of the cluster autoscaler: Ready nodes join, and on a scan pending pods ask
    /// for nodes and unneeded nodes go.
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
            let node = NodeState::new(spec);
            match self.nodes.iter().position(|n| n.gone) {
                Some(i) => self.nodes[i] = node,
                None => self.nodes.push(node),
            }
            self.placement += 1;
            self.sched_retry_at = Millis::ZERO;
        }
        if now >= ca.next_scan {
            ca.next_scan = now + Millis::from_secs_f64(ca.spec.scan_interval_s);
            if self.unbound > 0 {
                let want = self.nodes_for_pending(&ca.spec);
                let have = self.node_count() + ca.provisioning.len();
                let room = (ca.spec.max_nodes as usize).saturating_sub(have);
                let ready_at = now + Millis::from_secs_f64(ca.spec.node_ready_s);
                let add = want.saturating_sub(ca.provisioning.len()).min(room);
                for _ in 0..add {
                    ca.provisioning.push(ready_at);
                }
                if add > 0 {
                    ca.last_scale_up = Some(now);
                }
            }
            self.scale_down(&mut ca);
        }
        self.ca = Some(ca);
    }

    /// The scan's scale-down: marks the unneeded nodes, and removes those unneeded for long
    /// enough (empty ones all, one with pods per scan), evicting their pods.
    fn scale_down(&mut self, ca: &mut CaState) {
        let now = self.now;
        let quiet = Millis::from_secs_f64(ca.spec.scale_down_delay_after_add_s);
        let may_remove = ca.provisioning.is_empty()
            && self.unbound == 0
            && ca
                .last_scale_up
                .is_none_or(|t| now.saturating_sub(t) >= quiet);
        let unneeded_for = Millis::from_secs_f64(ca.spec.scale_down_unneeded_s);
        let mut removed: Vec<usize> = Vec::new();
        let mut drained_one = false;
        let live = self.node_count();
        for ni in 0..self.nodes.len() {
            if self.nodes[ni].gone {
                continue;
            }
            let unneeded = self.node_underused(ni, ca.spec.scale_down_utilization)
                && self.pods_fit_elsewhere(ni, &removed);
            let n = &mut self.nodes[ni];
            if !unneeded {
                n.unneeded_since = None;
                continue;
            }
            let since = *n.unneeded_since.get_or_insert(now);
            if !may_remove || live - removed.len() <= 1 || now.saturating_sub(since) < unneeded_for
            {
                continue;
            }
            if self.nodes[ni].pods > 0 {
                if drained_one {
                    continue;
                }
                drained_one = true;
                self.evict_all(ni);
            }
            removed.push(ni);
        }
        for ni in removed {
            self.nodes[ni].gone = true;
            self.placement += 1;
        }
    }

    /// Whether the pods on node `ni` request less than `threshold` of its CPU and memory.
    fn node_underused(&self, ni: usize, threshold: f64) -> bool {
        let n = &self.nodes[ni];
        n.cpu_alloc < threshold * n.spec.cpu_millicores
            && n.mem_alloc < threshold * n.spec.memory_mib
    }

    /// Whether every pod on node `ni` fits, first-fit, on the live nodes other than `ni` and
    /// `leaving`.
    fn pods_fit_elsewhere(&self, ni: usize, leaving: &[usize]) -> bool {
        let mut free: Vec<(f64, f64)> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| !n.gone && *i != ni && !leaving.contains(i))
            .map(|(_, n)| {
                (
                    n.spec.cpu_millicores - n.cpu_alloc,
                    n.spec.memory_mib - n.mem_alloc,
                )
            })
            .collect();
        for sv in &self.svcs {
            let (c, m) = (sv.res.requests.cpu_millicores, sv.res.requests.memory_mib);
            for _ in sv.pods.iter().filter(|p| p.node == Some(ni)) {
                if !first_fit(&mut free, c, m) {
                    return false;
                }
            }
        }
        true
    }

    /// Evicts every pod of node `ni`: each is deleted and its ReplicaSet makes a new one,
    /// which the scheduler binds elsewhere and which starts again.
    fn evict_all(&mut self, ni: usize) {
        for s in 0..self.svcs.len() {
            let before = self.svcs[s].pods.len();
            self.svcs[s].pods.retain(|p| p.node != Some(ni));
            let evicted = before - self.svcs[s].pods.len();
            if evicted == 0 {
                continue;
            }
            let req = self.svcs[s].res.requests;
            let limit = self.svcs[s].res.limits.cpu_millicores;
            for _ in 0..evicted {
                self.nodes[ni].cpu_alloc -= req.cpu_millicores;
                self.nodes[ni].mem_alloc -= req.memory_mib;
                self.unbind_limit(ni, limit);
                self.add_pod(s);
            }
            self.refresh_counts(s);
        }
        self.evictions += 1;
        self.placement += 1;
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
                if !first_fit(&mut free, c, m) {
                    free.push((spec.node_cpu_millicores - c, spec.node_memory_mib - m));
                }
            }
        }
        free.len() - existing
    }
}
