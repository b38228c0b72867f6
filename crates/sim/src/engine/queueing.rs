//! One step of one service: arrivals, service, timeouts, calls and messages downstream; the M/M/c latency model and the load-flow order.

use super::*;
use graphscale_core::queueing::{ln_wait_probability, SojournTables, NEG_LN_TAILS, RHO_MAX, TAILS};

impl Simulator {
    pub(super) fn process(&mut self, s: usize, dt: f64) {
        let spec = &self.app.services[s];
        let sv = &mut self.svcs[s];
        // Node contention may leave a pod less than its limit (contention.rs).
        let mu = sv.res.limits.cpu_millicores * self.cpu_share[s] / spec.cpu_ms_per_request;
        let c = sv.ready;
        let arrivals = std::mem::take(&mut sv.inflow);
        sv.waiting += arrivals;
        let cap_rate = c as f64 * mu;
        let cap = cap_rate * dt + sv.cap_carry;
        let (cap_floor, cap_count) = floor_count(cap);
        let served_sync = sv.waiting.min(cap_count);
        sv.waiting -= served_sync;
        let mut spare;
        if sv.waiting > 0 {
            sv.cap_carry = cap - cap_floor;
            spare = 0.0;
        } else {
            sv.cap_carry = 0.0;
            spare = (cap - to_f64(served_sync)).max(0.0);
        }
        let mut pulled = 0u64;
        for (k, &slot) in self.drains[s].iter().enumerate() {
            if spare < 1.0 {
                break;
            }
            let b = &mut self.backlogs[slot];
            let take = b.backlog.min(spare as u64);
            b.backlog -= take;
            b.consumed += take;
            self.drain_consumed[s][k] += take;
            spare -= to_f64(take);
            pulled += take;
        }
        let served = served_sync + pulled;
        let max_wait = (cap_rate * spec.timeout_ms / 1000.0) as u64;
        let mut failed = 0;
        if sv.waiting > max_wait {
            failed = sv.waiting - max_wait;
            sv.waiting = max_wait;
        }
        let offered = to_f64(arrivals + pulled) / dt;
        let priced = if self.rate_alpha > 0.0 {
            sv.priced_rate += self.rate_alpha * (offered - sv.priced_rate);
            sv.priced_rate
        } else {
            offered
        };
        let (lat, mean_s) = latency(
            c,
            mu,
            priced,
            sv.waiting,
            spec.base_latency_ms,
            spec.timeout_ms,
            self.sojourn.as_mut(),
        );
        // CPU: served work spread over the ready replicas, plus idle.
        let served_f = to_f64(served);
        let busy_m = served_f * spec.cpu_ms_per_request / dt;
        if c > 0 {
            sv.cum_cpu_per_ready += (busy_m / c as f64 + spec.idle_cpu_millicores) * dt;
        }
        let inflight = (served_f / dt) * mean_s;
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
        sv.totals.p95_weighted += lat[1] * served_f;
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
            let carry = self.edge_carry[e] + served_f * ratio;
            let (k, n) = floor_count(carry);
            self.edge_carry[e] = carry - k;
            self.edge_total[e] += n;
            self.edge_step[e] = n;
            self.svcs[t].inflow += n;
        }
        for &(ch, ratio, e) in &self.emits_out[s] {
            let carry = self.edge_carry[e] + served_f * ratio;
            let (k, n) = floor_count(carry);
            self.edge_carry[e] = carry - k;
            self.edge_total[e] += n;
            for &slot in &self.channel_slots[ch] {
                let b = &mut self.backlogs[slot];
                b.backlog += n;
                b.produced += n;
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
}

/// `(x.floor(), x as u64)` for `x >= 0`, without the libm call that the default x86-64 target
/// makes for `floor` (no SSE4.1): truncation is the floor of a non-negative number, and numbers
/// from 2^53 up are integers already. The same bits as `floor` (tested). Through `i64`, whose
/// conversions are one instruction each way (`u64`'s take several on x86-64).
#[inline]
pub(super) fn floor_count(x: f64) -> (f64, u64) {
    if x < 9.0e15 {
        let n = x as i64;
        (n as f64, n as u64)
    } else {
        (x.floor(), x as u64)
    }
}

/// `x as f64`, through `i64` where it fits (one instruction instead of several on x86-64;
/// the same value, rounded the same way).
#[inline]
pub(super) fn to_f64(x: u64) -> f64 {
    if x <= i64::MAX as u64 {
        x as i64 as f64
    } else {
        x as f64
    }
}

/// M/M/c response-time quantiles (p50, p95, p99, ms) and the mean time in service (s,
/// without the backlog wait); see the module docs.
///
/// Without `sojourn` (the model before issue #17's latency check), each quantile is the sum
/// of the service time's and the wait's (an upper bound) plus the time to drain the backlog.
/// With it, each quantile is that of the time in the system ([`graphscale_core::queueing`]), or
/// the service time's plus the backlog's drain where that is longer: the backlog is the
/// queue the steady-state wait describes, so it is counted once, not added to it.
pub(super) fn latency(
    c: u32,
    mu: f64,
    offered: f64,
    waiting: u64,
    base_ms: f64,
    timeout_ms: f64,
    sojourn: Option<&mut SojournTables>,
) -> ([f64; 3], f64) {
    if c == 0 {
        return ([timeout_ms; 3], timeout_ms / 1000.0);
    }
    let cmu = c as f64 * mu;
    let rho = (offered / cmu).min(RHO_MAX);
    let lambda = rho * cmu;
    let headroom = cmu - lambda;
    // Sakasegawa: Lq = rho^a / (1 - rho) with a = sqrt(2(c+1)), so Wq = Lq / lambda =
    // rho^(a-1) / headroom and the wait probability Wq * headroom = rho^(a-1). Both come from
    // one logarithm of rho (and one `exp`), instead of a `pow` and a second logarithm.
    // An idle service (rho = 0) waits for nothing.
    let (wq, p_wait, ln_p_wait) = if rho > 0.0 {
        let ln_p_wait = ln_wait_probability(c, rho);
        let p_wait = ln_p_wait.exp().min(1.0);
        (p_wait / headroom, p_wait, ln_p_wait)
    } else {
        (0.0, 0.0, f64::NEG_INFINITY)
    };
    let backlog_s = to_f64(waiting) / cmu;
    let svc_s = 1.0 / mu;
    let mut out = [0.0; 3];
    if let Some(tables) = sojourn {
        let t = tables.quantiles(c, mu, rho);
        for i in 0..3 {
            let l = base_ms + 1000.0 * t[i].max(NEG_LN_TAILS[i] * svc_s + backlog_s);
            out[i] = l.min(timeout_ms);
        }
    } else {
        for i in 0..3 {
            let (tail, neg_ln_tail) = (TAILS[i], NEG_LN_TAILS[i]);
            let w = if p_wait > tail {
                (ln_p_wait + neg_ln_tail) / headroom
            } else {
                0.0
            };
            let l = base_ms + 1000.0 * (neg_ln_tail * svc_s + w + backlog_s);
            out[i] = l.min(timeout_ms);
        }
    }
    // Mean time in service and in the M/M/c queue, without the backlog wait: requests held
    // in the backlog do not occupy the replica's memory (they wait in the accept queue).
    let mean = base_ms / 1000.0 + svc_s + wq;
    (out, mean)
}

/// Kahn's algorithm; nodes left in cycles follow in index order.
pub(super) fn topo_order(deps: &[Vec<usize>]) -> Vec<usize> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sojourn_quantiles_of_one_replica_are_mm1s_exponential() {
        // M/M/1: the time in the system is Exp(mu - lambda), so its quantile q is
        // -ln(1 - q) / (mu - lambda).
        let mut tables = SojournTables::default();
        for (mu, lambda) in [(6.86, 2.5), (6.86, 5.5), (100.0, 1.0), (10.0, 9.0)] {
            let got = latency(1, mu, lambda, 0, 0.0, 1e12, Some(&mut tables)).0;
            for (g, tail) in got.iter().zip([0.5f64, 0.05, 0.01]) {
                let want = 1000.0 * -tail.ln() / (mu - lambda);
                assert!(
                    (g - want).abs() <= 1e-6 * want,
                    "{mu} {lambda} {tail}: {g} vs {want}"
                );
            }
        }
        // With several replicas, the quantile lies between the service time's alone and the
        // sum of the service and waiting quantiles, and grows with the load.
        let lo = latency(4, 10.0, 20.0, 0, 0.0, 1e12, Some(&mut tables)).0;
        let hi = latency(4, 10.0, 36.0, 0, 0.0, 1e12, Some(&mut tables)).0;
        for i in 0..3 {
            assert!(lo[i] < hi[i], "{lo:?} {hi:?}");
        }
        assert!(hi[1] >= 1000.0 * 20f64.ln() / 10.0, "{hi:?}");
        let (bound, _) = latency(4, 10.0, 36.0, 0, 0.0, 1e12, None);
        assert!(hi[1] <= bound[1], "{hi:?} {bound:?}");
    }

    #[test]
    fn mm1_matches_the_closed_form() {
        // M/M/1, mu = 100/s, lambda = 50/s: W ~ Exp(mu - lambda) = Exp(50); p95 = ln(20)/50 s.
        // Our quantile adds the service and waiting quantiles separately (an upper bound).
        let (q, mean) = latency(1, 100.0, 50.0, 0, 0.0, 1e9, None);
        let exact_mean = 1.0 / (100.0 - 50.0);
        assert!((mean - exact_mean).abs() < 1e-9, "{mean} vs {exact_mean}");
        // Backlog adds to the quantiles, not to the time in service.
        let (qb, mean_b) = latency(1, 100.0, 50.0, 100, 0.0, 1e9, None);
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
        let (low, _) = latency(4, 10.0, 10.0, 0, 1.0, 1e9, None);
        let (high, _) = latency(4, 10.0, 38.0, 0, 1.0, 1e9, None);
        let (backlogged, _) = latency(4, 10.0, 38.0, 400, 1.0, 1e9, None);
        assert!(low[1] < high[1] && high[1] < backlogged[1]);
        assert!(low[0] < low[1] && low[1] < low[2]);
        let (none, _) = latency(0, 10.0, 1.0, 0, 1.0, 5000.0, None);
        assert_eq!(none, [5000.0; 3]);
    }

    #[test]
    fn with_the_sojourn_model_a_backlog_counts_once() {
        // At utilisation 0.9 on one replica of 10/s the p95 of the time in the system is
        // ln 20 / 1 s. A backlog of 10 requests (1 s to drain) is within what that queue
        // holds: the p95 stays. A backlog of 100 (10 s) is more: the p95 is the service
        // time's plus the drain, not the sum of all three.
        let mut t = SojournTables::default();
        let exact = 1000.0 * 20f64.ln();
        let small = latency(1, 10.0, 9.0, 10, 0.0, 1e9, Some(&mut t)).0[1];
        assert!((small - exact).abs() < 1e-6 * exact, "{small} vs {exact}");
        let large = latency(1, 10.0, 9.0, 100, 0.0, 1e9, Some(&mut t)).0[1];
        let drain = 1000.0 * (20f64.ln() / 10.0 + 10.0);
        assert!((large - drain).abs() < 1e-6 * drain, "{large} vs {drain}");
        // The bound without it adds them.
        let bound = latency(1, 10.0, 9.0, 10, 0.0, 1e9, None).0[1];
        assert!(bound > small + 1000.0, "{bound} vs {small}");
    }

    #[test]
    fn floor_count_is_floor() {
        for x in [
            0.0,
            0.25,
            0.999_999_999_999,
            1.0,
            1.5,
            2.0 - f64::EPSILON,
            12_345.678,
            8.999_999_999_999e15,
            9.0e15,
            1e300,
            f64::INFINITY,
        ] {
            assert_eq!(floor_count(x).0.to_bits(), x.floor().to_bits(), "{x}");
            assert_eq!(floor_count(x).1, x as u64, "{x}");
        }
        for n in [
            0u64,
            1,
            12_345,
            1 << 53,
            (1 << 53) + 1,
            i64::MAX as u64,
            u64::MAX,
        ] {
            assert_eq!(to_f64(n).to_bits(), (n as f64).to_bits(), "{n}");
        }
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
