//! A request-level M/M/c queue: the reference that the step model's latency
//! ([`crate::engine`]) is checked against.
//!
//! Each request is simulated: Poisson arrivals at a rate that may change every second, `c`
//! identical replicas serving in first-come, first-served order, exponential service times,
//! and a fixed base latency added to every request. Nothing is approximated: a request's time
//! in the system is its wait for the earliest free replica plus its own service time. It is
//! slow (one event per request) and has no timeouts, autoscaling or call graph; it exists to
//! measure how far the per-step model, which prices a second at a time, is from the queue it
//! models (`examples/latency_reference.rs`, docs/simulator.md).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Poisson};

use crate::SimError;

/// At most this many requests in one run (bounds the memory of the outcome).
pub const MAX_REQUESTS: u64 = 50_000_000;

/// One replica group served request by request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestLevelQueue {
    /// Replicas (servers), at least 1.
    pub replicas: u32,
    /// Requests per second one replica serves (the exponential service time's rate).
    pub mu: f64,
    /// Latency added to every request, ms (the step model's `base_latency_ms`).
    pub base_ms: f64,
}

/// One request's outcome.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Request {
    /// The second of the run it arrived in (index into the rates).
    pub second: usize,
    /// Its time in the system, ms: base latency, wait and service.
    pub latency_ms: f64,
}

impl RequestLevelQueue {
    /// Every request of a run whose second `t` has Poisson arrivals at `rates[t]` per second,
    /// uniform within the second, in arrival order. Deterministic in `seed`.
    pub fn run(&self, rates: &[f64], seed: u64) -> Result<Vec<Request>, SimError> {
        let bad = |field: &str, reason: String| SimError::InvalidSpec {
            field: format!("reference.{field}"),
            reason,
        };
        if self.replicas == 0 || self.replicas > 10_000 {
            return Err(bad(
                "replicas",
                format!("{} not in 1..=10000", self.replicas),
            ));
        }
        if !(self.mu.is_finite() && self.mu > 0.0) {
            return Err(bad("mu", format!("{} is not finite and positive", self.mu)));
        }
        if !(self.base_ms.is_finite() && self.base_ms >= 0.0) {
            return Err(bad(
                "base_ms",
                format!("{} is not finite and >= 0", self.base_ms),
            ));
        }
        let mut expected = 0.0;
        for (t, &r) in rates.iter().enumerate() {
            if !(r.is_finite() && r >= 0.0) {
                return Err(bad(
                    "rates",
                    format!("second {t}: {r} is not finite and >= 0"),
                ));
            }
            expected += r;
        }
        if expected > MAX_REQUESTS as f64 / 2.0 {
            return Err(bad(
                "rates",
                format!(
                    "about {expected:.0} requests, more than {}",
                    MAX_REQUESTS / 2
                ),
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let service = Exp::new(self.mu).map_err(|e| bad("mu", e.to_string()))?;
        // The times (s) at which each replica is next free; the earliest on top.
        let mut free: BinaryHeap<Reverse<Time>> =
            (0..self.replicas).map(|_| Reverse(Time(0.0))).collect();
        let mut out = Vec::with_capacity(expected as usize + 16);
        let mut times = Vec::new();
        for (t, &r) in rates.iter().enumerate() {
            let n = if r > 0.0 {
                let d = Poisson::new(r).map_err(|e| bad("rates", format!("second {t}: {e}")))?;
                d.sample(&mut rng) as u64
            } else {
                0
            };
            if out.len() as u64 + n > MAX_REQUESTS {
                return Err(bad("rates", format!("more than {MAX_REQUESTS} requests")));
            }
            times.clear();
            times.extend((0..n).map(|_| t as f64 + rng.random::<f64>()));
            times.sort_by(f64::total_cmp);
            for &a in &times {
                let Reverse(Time(f)) = free.pop().expect("at least one replica");
                let done = a.max(f) + service.sample(&mut rng);
                free.push(Reverse(Time(done)));
                out.push(Request {
                    second: t,
                    latency_ms: self.base_ms + 1000.0 * (done - a),
                });
            }
        }
        Ok(out)
    }
}

/// A finite time, ordered.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Time(f64);

impl Eq for Time {}

impl PartialOrd for Time {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Time {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every request's latency (ms) of `replicas` at rate `mu` under a steady `rate`.
    fn latencies(replicas: u32, mu: f64, base_ms: f64, rate: f64, seed: u64) -> Vec<f64> {
        let q = RequestLevelQueue {
            replicas,
            mu,
            base_ms,
        };
        let reqs = q.run(&vec![rate; 20_000], seed).unwrap();
        reqs.iter().map(|r| r.latency_ms).collect()
    }

    #[test]
    fn one_replica_has_mm1s_exponential_time_in_the_system() {
        // M/M/1 at rho = 0.6: the time in the system is Exp(mu - lambda).
        let lat = latencies(1, 10.0, 0.0, 6.0, 1);
        let n = lat.len() as f64;
        assert!((n - 120_000.0).abs() < 1_500.0, "{n}");
        let mean = lat.iter().sum::<f64>() / n;
        assert!((mean - 250.0).abs() < 10.0, "mean {mean} ms against 250");
        // P(T > 0.5 s) = e^(-2).
        let over = lat.iter().filter(|&&l| l > 500.0).count() as f64 / n;
        assert!((over - (-2f64).exp()).abs() < 0.01, "{over}");
    }

    #[test]
    fn several_replicas_match_erlang_c() {
        // M/M/4, mu = 5, lambda = 16 (rho = 0.8): Erlang C's wait probability 0.5964 and
        // mean wait C / (c mu - lambda) = 0.1491 s.
        let lat = latencies(4, 5.0, 1.0, 16.0, 2);
        let mean = lat.iter().sum::<f64>() / lat.len() as f64;
        let exact = 1.0 + 1000.0 * (0.2 + 0.5964 / 4.0);
        assert!(
            (mean - exact).abs() < 0.03 * exact,
            "mean {mean} ms against {exact}"
        );
    }

    #[test]
    fn a_seed_replays_and_bad_input_is_named() {
        let q = RequestLevelQueue {
            replicas: 2,
            mu: 3.0,
            base_ms: 0.0,
        };
        assert_eq!(
            q.run(&[4.0; 100], 9).unwrap(),
            q.run(&[4.0; 100], 9).unwrap()
        );
        let e = q.run(&[1.0, f64::NAN], 9).unwrap_err().to_string();
        assert!(
            e.contains("reference.rates") && e.contains("second 1"),
            "{e}"
        );
        let e = RequestLevelQueue { replicas: 0, ..q }
            .run(&[1.0], 9)
            .unwrap_err()
            .to_string();
        assert!(e.contains("reference.replicas"), "{e}");
        let e = q.run(&[1e9; 100], 9).unwrap_err().to_string();
        assert!(e.contains("more than"), "{e}");
    }
}
