//! The simulated cluster of `graphscale serve`, live: it advances at `--sim-speed` times real
//! time under `--sim-scenario`, its replicas change only through `POST /v1/apply`, and every
//! scrape goes onto the board of the web page with the HPA's shadow (what the HPA would set,
//! decided from the same snapshot and never applied).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use graphscale_api::apply::LocalActuator;
use graphscale_api::board::Board;
use graphscale_core::{Autoscaler, Clock, MetricSource, Millis};
use graphscale_eval::{build_autoscaler, AutoscalerSpec};
use graphscale_sim::engine::{SimConfig, Simulator};
use graphscale_sim::spec::AppSpec;
use graphscale_sim::workload::WorkloadSpec;

/// Most simulated steps one tick runs: a fast `--sim-speed` holds the simulator (and so
/// `/v1/apply`) for a bounded time per tick, and falls behind instead.
const MAX_STEPS_PER_TICK: u32 = 2_000;

/// A simulated cluster, its board and the HPA shadowing it.
pub(crate) struct Live {
    pub(crate) cluster: Arc<LocalActuator<Simulator>>,
    pub(crate) board: Arc<Board>,
    hpa: Box<dyn Autoscaler + Send>,
    speed: f64,
    end: Millis,
    scrape: Millis,
}

impl Live {
    /// `app` under `scenario` (its natural length) with `seed`, at `speed` times real time.
    pub(crate) fn new(app: AppSpec, scenario: &str, seed: u64, speed: f64) -> Result<Self> {
        if !(speed.is_finite() && speed > 0.0 && speed <= 10_000.0) {
            bail!("--sim-speed must be in (0, 10000], got {speed}");
        }
        let workload = WorkloadSpec::named(scenario, app.nominal_peak_rps)
            .with_context(|| format!("--sim-scenario {scenario}"))?;
        let duration = workload
            .natural_duration_s()
            .with_context(|| format!("--sim-scenario {scenario}"))?;
        let rates = workload
            .rates(duration, seed)
            .with_context(|| format!("--sim-scenario {scenario}"))?;
        let cfg = SimConfig {
            seed,
            ..SimConfig::default()
        };
        let scrape = Millis::from_secs(cfg.scrape_interval_s);
        let hpa = build_autoscaler(&AutoscalerSpec::named("hpa")?, &app)?;
        let sim = Simulator::new(app.clone(), cfg, rates)
            .with_context(|| format!("--sim-app {}: cannot simulate it", app.name))?;
        let board = Arc::new(Board::new("simulator", sim.graph().clone(), scrape.0));
        Ok(Live {
            cluster: Arc::new(LocalActuator::new("simulator", sim)),
            board,
            hpa,
            speed,
            end: Millis::from_secs(duration),
            scrape,
        })
    }

    /// Advances the cluster by `wall` of real time (at most [`MAX_STEPS_PER_TICK`] steps):
    /// each scrape goes onto the board, and the HPA decides at its sync period. `owed` carries
    /// the simulated milliseconds not yet stepped. Returns false once the scenario has ended.
    pub(crate) fn advance(&mut self, wall: Duration, owed: &mut f64) -> Result<bool> {
        *owed += wall.as_secs_f64() * 1000.0 * self.speed;
        let (board, hpa, end, scrape) = (&self.board, &mut self.hpa, self.end, self.scrape);
        let sync = hpa.sync_period().0.max(1);
        self.cluster.with(|sim| -> Result<bool> {
            let step = sim.step_len().0 as f64;
            let mut steps = 0;
            while *owed >= step && sim.now() < end && steps < MAX_STEPS_PER_TICK {
                sim.step();
                *owed -= step;
                steps += 1;
                let now = sim.now().0;
                if now.is_multiple_of(scrape.0) {
                    let snap = sim.observe()?;
                    let graph = sim.graph().clone();
                    if now.is_multiple_of(sync) {
                        hpa.observe(&snap, &graph);
                        board.shadow(hpa.decide(&snap, &graph));
                    }
                    board.observe(&graph, snap);
                }
            }
            if steps == MAX_STEPS_PER_TICK {
                // Behind: drop what is owed rather than hold the cluster longer.
                *owed = owed.min(step * f64::from(MAX_STEPS_PER_TICK));
            }
            Ok(sim.now() < end)
        })
    }

    /// Runs until the scenario ends (the board then says so) or the task is dropped.
    pub(crate) async fn run(mut self) -> Result<()> {
        let tick = Duration::from_millis(100);
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut owed = 0.0;
        loop {
            interval.tick().await;
            if !self.advance(tick, &mut owed)? {
                self.board.stopped();
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use graphscale_api::Models;

    #[test]
    fn the_live_cluster_fills_the_board_with_the_hpa_shadow() {
        let app = graphscale_sim::topology::builtin("online-boutique").unwrap();
        let mut live = Live::new(app, "rush", 3, 1000.0).unwrap();
        let mut owed = 0.0;
        // 0.3 s of wall time at 1000x: 300 simulated seconds, 20 scrapes.
        for _ in 0..3 {
            assert!(live.advance(Duration::from_millis(100), &mut owed).unwrap());
        }
        let v = live.board.view(&Models::in_memory(), None).unwrap();
        assert_eq!(v.time_s, 300.0);
        assert_eq!(v.history.rps["frontend"].len(), 20);
        let front = v.services.iter().find(|s| s.name == "frontend").unwrap();
        assert!(front.hpa_replicas.is_some(), "{front:?}");
        assert!(!front.hpa_reasons.is_empty(), "{front:?}");
        // The HPA is a shadow: replicas change only through /v1/apply.
        assert!(v.history.replicas["frontend"]
            .iter()
            .all(|r| *r == front.replicas));
        assert!(Live::new(
            graphscale_sim::topology::builtin("online-boutique").unwrap(),
            "nosuch",
            1,
            1.0
        )
        .is_err());
        let e = Live::new(
            graphscale_sim::topology::builtin("online-boutique").unwrap(),
            "rush",
            1,
            0.0,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("--sim-speed"), "{e}");
    }
}
