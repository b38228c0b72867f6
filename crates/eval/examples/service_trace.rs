//! One service's simulator state, second by second, in a closed-loop run: what the 15 s series
//! and the per-minute metrics average away (a one-second latency spike, a scale-down's effect).
//!
//! ```text
//! cargo run --release -p graphscale-eval --example service_trace -- \
//!     train-ticket worldcup98 graph-slo 6 ts-gateway-service 2398 2430
//! ```
//!
//! Arguments: app, named scenario, autoscaler, seed, service, first and last second printed
//! (at most one simulated day). The run is the one `graphscale sim run` makes with the same
//! app, scenario, autoscaler and seed.

use std::error::Error;

use graphscale_control::ControlLoop;
use graphscale_core::Millis;
use graphscale_eval::{build_autoscaler, AutoscalerSpec, ExperimentSpec};
use graphscale_sim::engine::{SimConfig, Simulator};
use graphscale_sim::{topology, workload::WorkloadSpec};

const USAGE: &str = "usage: service_trace APP SCENARIO AUTOSCALER SEED SERVICE FROM_S TO_S";

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [app, scenario, autoscaler, seed, service, from, to] = args.as_slice() else {
        return Err(USAGE.into());
    };
    let seed: u64 = seed.parse().map_err(|e| format!("SEED `{seed}`: {e}"))?;
    let from: u64 = from.parse().map_err(|e| format!("FROM_S `{from}`: {e}"))?;
    let to: u64 = to.parse().map_err(|e| format!("TO_S `{to}`: {e}"))?;
    if from > to || to > 86_400 {
        return Err(format!("FROM_S ({from}) must not pass TO_S ({to}), at most 86400").into());
    }
    let app = topology::builtin(app)?;
    let s = app
        .services
        .iter()
        .position(|x| &x.name == service)
        .ok_or_else(|| format!("no service `{service}` in {}", app.name))?;
    let workload = WorkloadSpec::named(scenario, app.nominal_peak_rps)?;
    let duration = workload.natural_duration_s()?.min(to);
    let spec = ExperimentSpec::default();
    let rates = workload.rates(duration, seed)?;
    let cfg = SimConfig {
        seed,
        ..spec.sim.clone()
    };
    let mut sim = Simulator::new(app.clone(), cfg, rates)?;
    let scaler = build_autoscaler(&AutoscalerSpec::named(autoscaler)?, &app)?;
    let mut ctl = ControlLoop::simulated(scaler, Millis::from_secs(spec.decision_offset_s))?;
    println!("| s | spec | ready | arrived | served | failed | waiting | capacity rps | own p50/p95/p99 ms | end-to-end p50/p95/p99 ms | CPU m |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|");
    for t in 1..=duration {
        sim.step();
        if t >= from {
            let st = &sim.stats()[s];
            let q = |v: [f64; 3]| format!("{:.0} / {:.0} / {:.0}", v[0], v[1], v[2]);
            println!(
                "| {t} | {} | {} | {} | {} | {} | {} | {:.2} | {} | {} | {:.0} |",
                st.spec_replicas,
                st.ready,
                st.arrived,
                st.served,
                st.failed,
                st.waiting,
                st.capacity_rps,
                q(st.latency_ms),
                q(st.e2e_ms),
                st.cpu_usage_m
            );
        }
        ctl.tick(&mut sim)?;
    }
    Ok(())
}
