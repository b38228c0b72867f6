//! Pods: creation, binding to nodes, readiness, the counts and stats that follow, and their names.

use super::*;

impl Simulator {
    pub(super) fn add_pod(&mut self, s: usize) {
        let sv = &mut self.svcs[s];
        sv.pods.push(Pod {
            id: sv.next_pod_id,
            name: pod_name(&self.app.services[s].name, sv.next_pod_id).into(),
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
    pub(super) fn schedule(&mut self) {
        let now = self.now;
        let mut placed_any = false;
        let mut left = 0;
        for s in 0..self.svcs.len() {
            if self.svcs[s].pods.len() as u32 == self.svcs[s].bound {
                continue;
            }
            let req = self.svcs[s].res.requests;
            let limit_cpu = self.svcs[s].res.limits.cpu_millicores;
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
                        !n.gone
                            && n.spec.cpu_millicores - n.cpu_alloc >= req.cpu_millicores
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
                        self.bind_limit(ni, limit_cpu);
                        let startup = jittered(startup_s, self.cfg.startup_jitter, &mut self.rng);
                        let sv = &mut self.svcs[s];
                        // The topology changes only with the first pod of the service here.
                        if !sv.pods.iter().any(|q| q.node == Some(ni)) {
                            self.placement += 1;
                        }
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

    /// Books a pod with CPU limit `limit` on node `ni`.
    pub(super) fn bind_limit(&mut self, ni: usize, limit: f64) {
        let n = &mut self.nodes[ni];
        n.limit_sum += limit;
        n.pods += 1;
        self.contended |= n.limit_sum > n.spec.cpu_millicores + 1e-9;
    }

    /// Releases a pod with CPU limit `limit` from node `ni`.
    pub(super) fn unbind_limit(&mut self, ni: usize, limit: f64) {
        let n = &mut self.nodes[ni];
        n.limit_sum -= limit;
        n.pods = n.pods.saturating_sub(1);
        if n.pods == 0 {
            n.limit_sum = 0.0;
        }
    }

    pub(super) fn promote_ready(&mut self, s: usize) {
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

    pub(super) fn refresh_counts(&mut self, s: usize) {
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

    pub(super) fn refresh_stats(&mut self) {
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
}

/// `<deployment>-<replicaset hash>-<suffix>`, as a Deployment names its pods: a stable
/// 10-character hash of the deployment name and a 5-character suffix from the pod's number.
pub(super) fn pod_name(deployment: &str, id: u64) -> String {
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

pub(super) fn jittered(base_s: f64, jitter: f64, rng: &mut ChaCha8Rng) -> Millis {
    let f = if jitter > 0.0 {
        rng.random_range(1.0 - jitter..=1.0 + jitter)
    } else {
        1.0
    };
    Millis::from_secs_f64(base_s * f)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
