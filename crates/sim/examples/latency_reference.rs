//! The step model's latency against the request-level queue it models
//! ([`graphscale_sim::reference`]), on one service with a fixed number of replicas.
//!
//! ```text
//! cargo run --release -p graphscale-sim --example latency_reference -- TAU_S SOJOURN
//! ```
//!
//! `TAU_S` and `SOJOURN` (0 or 1) are the simulator's `latency_rate_tau_s` and
//! `latency_sojourn`. The service is Train Ticket's gateway (72.871 ms of CPU per request at a
//! 500 m limit: 6.86 requests/s a replica, 0.5 ms base latency; `data/topologies`) with a 2 s
//! SLO. Each case runs 2 hours after a 10-minute warm-up, seeds 1-3; both models see the same
//! rates. Printed per case, the model's figure and the reference's: the share of requests over
//! the SLO, the minutes in which more than 5 % of requests are over it (the evaluation's
//! violation minutes), and the p95 of all requests (ms). The model's per-step quantiles are
//! turned into requests with the evaluation's interpolation ([`latency_cdf`]).

use std::error::Error;

use graphscale_core::exposition::latency_cdf;
use graphscale_core::Resources;
use graphscale_sim::engine::{SimConfig, Simulator};
use graphscale_sim::reference::RequestLevelQueue;
use graphscale_sim::spec::{AppSpec, EntrySpec, NodeSpec, ServiceSpec};

const CPU_MS: f64 = 72.871;
const LIMIT_M: f64 = 500.0;
const BASE_MS: f64 = 0.5;
const SLO_MS: f64 = 2000.0;
const WARMUP_S: usize = 600;
const RUN_S: usize = 7200;
const SEEDS: [u64; 3] = [1, 2, 3];
const USAGE: &str = "usage: latency_reference TAU_S SOJOURN(0|1)";

/// Per case: requests, those over the SLO, violation minutes, and every latency (ms) with
/// its weight (requests) for the p95.
#[derive(Default)]
struct Tally {
    requests: f64,
    over: f64,
    minutes: f64,
    samples: Vec<(f64, f64)>,
}

impl Tally {
    fn p95(&mut self) -> f64 {
        self.samples.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total: f64 = self.samples.iter().map(|s| s.1).sum();
        let mut acc = 0.0;
        for &(x, w) in &self.samples {
            acc += w;
            if acc >= 0.95 * total {
                return x;
            }
        }
        f64::NAN
    }
}

fn app(replicas: u32) -> AppSpec {
    AppSpec {
        name: "latency-reference".into(),
        description: String::new(),
        slo_ms: SLO_MS,
        nominal_peak_rps: 1.0,
        services: vec![ServiceSpec {
            name: "gw".into(),
            cpu_ms_per_request: CPU_MS,
            base_latency_ms: BASE_MS,
            memory_base_mib: 32.0,
            memory_per_inflight_mib: 0.0,
            idle_cpu_millicores: 0.0,
            requests: Resources::new(LIMIT_M, 64.0),
            limits: Resources::new(LIMIT_M, 128.0),
            startup_s: 0.0,
            initial_replicas: replicas,
            max_replicas: replicas,
            timeout_ms: 60_000.0,
            parallel_calls: false,
        }],
        queues: vec![],
        topics: vec![],
        edges: vec![],
        entries: vec![EntrySpec {
            service: "gw".into(),
            share: 1.0,
        }],
        nodes: vec![NodeSpec {
            name: "n0".into(),
            cpu_millicores: LIMIT_M * replicas as f64,
            memory_mib: 1024.0 * replicas as f64,
        }],
        cluster_autoscaler: None,
    }
}

/// The step model on `rates`: its requests after the warm-up, per minute.
fn model(
    replicas: u32,
    rates: &[f64],
    cfg: &SimConfig,
    t: &mut Tally,
) -> Result<(), Box<dyn Error>> {
    let mut sim = Simulator::new(app(replicas), cfg.clone(), rates.to_vec())?;
    let (mut fin, mut over) = (0.0, 0.0);
    for s in 0..rates.len() - 1 {
        sim.step();
        if s < WARMUP_S {
            continue;
        }
        let st = &sim.stats()[0];
        let n = st.served as f64;
        let q = st.latency_ms;
        fin += n;
        over += n * (1.0 - latency_cdf(q, SLO_MS));
        // The step's requests, spread over its interpolated distribution (20 points).
        for k in 0..20 {
            t.samples
                .push((inverse(q, (k as f64 + 0.5) / 20.0), n / 20.0));
        }
        if (s + 1 - WARMUP_S).is_multiple_of(60) {
            t.requests += fin;
            t.over += over;
            if fin > 0.0 && over / fin > 0.05 {
                t.minutes += 1.0;
            }
            (fin, over) = (0.0, 0.0);
        }
    }
    Ok(())
}

/// The latency at which [`latency_cdf`] reaches `p`, by bisection.
fn inverse(q: [f64; 3], p: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, 1.3 * q[2].max(q[1]).max(q[0]) + 1.0);
    for _ in 0..50 {
        let mid = 0.5 * (lo + hi);
        if latency_cdf(q, mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// The request-level queue on `rates`: its requests after the warm-up, per minute.
fn reference(replicas: u32, rates: &[f64], seed: u64, t: &mut Tally) -> Result<(), Box<dyn Error>> {
    let q = RequestLevelQueue {
        replicas,
        mu: LIMIT_M / CPU_MS,
        base_ms: BASE_MS,
    };
    let mut minute = vec![(0.0, 0.0); rates.len() / 60 + 1];
    for r in q.run(&rates[..rates.len() - 1], seed)? {
        if r.second < WARMUP_S {
            continue;
        }
        let m = &mut minute[(r.second - WARMUP_S) / 60];
        m.0 += 1.0;
        t.requests += 1.0;
        t.samples.push((r.latency_ms, 1.0));
        if r.latency_ms > SLO_MS {
            m.1 += 1.0;
            t.over += 1.0;
        }
    }
    t.minutes += minute
        .iter()
        .filter(|m| m.0 > 0.0 && m.1 / m.0 > 0.05)
        .count() as f64;
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [tau, sojourn] = args.as_slice() else {
        return Err(USAGE.into());
    };
    let tau: f64 = tau.parse().map_err(|e| format!("TAU_S `{tau}`: {e}"))?;
    let sojourn = match sojourn.as_str() {
        "0" => false,
        "1" => true,
        x => return Err(format!("SOJOURN `{x}`: 0 or 1").into()),
    };
    let mu = LIMIT_M / CPU_MS;
    // (label, replicas, utilisation per second).
    let mut cases: Vec<(String, u32, Vec<f64>)> = Vec::new();
    for c in [1u32, 2, 4, 8] {
        for rho in [0.4, 0.6, 0.8, 0.9, 0.95] {
            cases.push((format!("steady {rho}"), c, vec![rho; WARMUP_S + RUN_S + 1]));
        }
        // At 0.5, with a 2-minute surge to 1.3 every 20 minutes.
        let surge = (0..=WARMUP_S + RUN_S)
            .map(|s| if s % 1200 >= 1080 { 1.3 } else { 0.5 })
            .collect();
        cases.push(("0.5, 2 min at 1.3 every 20".into(), c, surge));
        // From 0.3 up to 0.95 and back, linearly, every 20 minutes.
        let ramp = (0..=WARMUP_S + RUN_S)
            .map(|s| {
                let x = (s % 1200) as f64 / 600.0;
                0.3 + 0.65 * if x <= 1.0 { x } else { 2.0 - x }
            })
            .collect();
        cases.push(("0.3 to 0.95 and back every 20 min".into(), c, ramp));
    }
    println!("tau {tau} s, sojourn {sojourn}; model / reference, means over seeds 1-3");
    println!();
    println!("| replicas | utilisation | requests over SLO % | violation minutes | p95 ms |");
    println!("|---:|---|---|---|---|");
    for (label, c, rho) in cases {
        let rates: Vec<f64> = rho.iter().map(|r| r * c as f64 * mu).collect();
        let (mut m, mut r) = (Tally::default(), Tally::default());
        for seed in SEEDS {
            let cfg = SimConfig {
                seed,
                startup_jitter: 0.0,
                latency_rate_tau_s: tau,
                latency_sojourn: sojourn,
                ..SimConfig::default()
            };
            model(c, &rates, &cfg, &mut m)?;
            reference(c, &rates, seed, &mut r)?;
        }
        let n = SEEDS.len() as f64;
        println!(
            "| {c} | {label} | {:.3} / {:.3} | {:.1} / {:.1} | {:.0} / {:.0} |",
            100.0 * m.over / m.requests,
            100.0 * r.over / r.requests,
            m.minutes / n,
            r.minutes / n,
            m.p95(),
            r.p95()
        );
    }
    Ok(())
}
