//! Node CPU contention: pods whose CPU limits add up to more than their node's CPU share it in
//! proportion to their CPU requests, as the kubelet's cgroup weights make Linux do.
//!
//! Kubernetes turns a container's CPU request into its cgroup's CPU weight (`cpu.shares` /
//! `cpu.weight`), and a limit into a quota; the node's pods together get its allocatable CPU
//! (the `kubepods` cgroup). When the pods on a node want more CPU than it has, each gets CPU in
//! proportion to its weight, and what a pod leaves unused goes to the others: weighted max-min
//! fairness. Every pod therefore gets at least its request (the scheduler never books more
//! requests than a node has), and bursting towards the limit works only while the node has
//! spare CPU.
//!
//! Per step, a pod's demand is what it used to want the step before: a ready pod of a service
//! with a backlog wants its limit, otherwise its share of the service's offered work plus its
//! idle CPU, at most the limit; a starting pod burns its request. The step's service rate of a
//! ready pod is then `min(limit, level * request)`, with `level` the node's water level: a pod
//! that wants less than that could grow to it without taking CPU from anybody.

use super::*;

impl Simulator {
    /// Sets [`Simulator::cpu_share`] for this step. Costs nothing while every node's bound
    /// limits fit in its CPU.
    pub(super) fn contend(&mut self) {
        if !self.contended {
            return;
        }
        let over: Vec<usize> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| !n.gone && n.limit_sum > n.spec.cpu_millicores + 1e-9)
            .map(|(i, _)| i)
            .collect();
        self.cpu_share.iter_mut().for_each(|x| *x = 1.0);
        if over.is_empty() {
            self.contended = false;
            return;
        }
        let mut on_node: Vec<Option<usize>> = vec![None; self.nodes.len()];
        for (k, &ni) in over.iter().enumerate() {
            on_node[ni] = Some(k);
        }
        // Per contended node: (service, ready, demand, weight) of each bound pod.
        let mut pods: Vec<Vec<(usize, bool, f64, f64)>> = vec![Vec::new(); over.len()];
        for (s, sv) in self.svcs.iter().enumerate() {
            let spec = &self.app.services[s];
            let st = &self.stats[s];
            let limit = sv.res.limits.cpu_millicores;
            let request = sv.res.requests.cpu_millicores;
            let backlog = st.waiting > 0
                || self.drains[s]
                    .iter()
                    .any(|&slot| self.backlogs[slot].backlog > 0);
            let ready_demand = if backlog || st.ready == 0 {
                limit
            } else {
                (st.offered_rps * spec.cpu_ms_per_request / st.ready as f64
                    + spec.idle_cpu_millicores)
                    .min(limit)
            };
            for p in &sv.pods {
                if let Some(k) = p.node.and_then(|ni| on_node[ni]) {
                    let demand = if p.ready { ready_demand } else { request };
                    pods[k].push((s, p.ready, demand, request));
                }
            }
        }
        let mut granted = vec![0.0f64; self.svcs.len()];
        let mut counted = vec![0u32; self.svcs.len()];
        for (k, &ni) in over.iter().enumerate() {
            let group = &pods[k];
            let level = water_level(
                self.nodes[ni].spec.cpu_millicores,
                group.iter().map(|&(_, _, d, w)| (d, w)),
            );
            for &(s, ready, _, weight) in group {
                if ready {
                    let limit = self.svcs[s].res.limits.cpu_millicores;
                    granted[s] += (level * weight).min(limit) / limit;
                    counted[s] += 1;
                }
            }
        }
        for s in 0..self.svcs.len() {
            let ready = self.svcs[s].ready;
            if counted[s] > 0 && ready > 0 {
                // Pods on nodes without contention keep their whole limit.
                let free = (ready - counted[s].min(ready)) as f64;
                self.cpu_share[s] = (granted[s] + free) / ready as f64;
            }
        }
    }
}

/// The water level `t` of weighted max-min fairness: `sum(min(demand, t * weight)) = capacity`,
/// or infinity when every demand fits. Weights are positive.
pub(super) fn water_level(capacity: f64, pods: impl Iterator<Item = (f64, f64)>) -> f64 {
    let mut v: Vec<(f64, f64)> = pods.filter(|&(_, w)| w > 0.0).collect();
    let total: f64 = v.iter().map(|&(d, _)| d.max(0.0)).sum();
    if total <= capacity {
        return f64::INFINITY;
    }
    // Pods in order of demand per weight: the first ones are satisfied below the level.
    v.sort_by(|a, b| (a.0 / a.1).total_cmp(&(b.0 / b.1)));
    let mut left = capacity;
    let mut weight: f64 = v.iter().map(|&(_, w)| w).sum();
    for &(d, w) in &v {
        let level = left / weight;
        if d.max(0.0) / w <= level {
            left -= d.max(0.0);
            weight -= w;
        } else {
            return level;
        }
    }
    // Unreachable when the demands exceed the capacity; the last level is the safe answer.
    if weight > 0.0 {
        left / weight
    } else {
        f64::INFINITY
    }
}

#[cfg(test)]
mod tests {
    use super::water_level;

    #[test]
    fn water_level_splits_by_request_and_hands_on_what_is_unused() {
        // Everything fits: no level.
        assert!(water_level(1000.0, [(300.0, 100.0), (400.0, 100.0)].into_iter()).is_infinite());
        // Two equal pods wanting 800 each on 1000: 500 each.
        let t = water_level(1000.0, [(800.0, 200.0), (800.0, 200.0)].into_iter());
        assert!((t * 200.0 - 500.0).abs() < 1e-9);
        // Weights 1:3, both greedy: 250 / 750.
        let t = water_level(1000.0, [(1000.0, 100.0), (1000.0, 300.0)].into_iter());
        assert!((t * 100.0 - 250.0).abs() < 1e-9 && (t * 300.0 - 750.0).abs() < 1e-9);
        // A small pod keeps its demand; the rest goes to the greedy one.
        let t = water_level(1000.0, [(100.0, 200.0), (2000.0, 200.0)].into_iter());
        assert!((t * 200.0 - 900.0).abs() < 1e-9);
    }
}
