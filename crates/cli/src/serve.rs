//! `graphscale sim serve` and `graphscale collect` / `discover`: the simulator as a Prometheus
//! target, and the collector that reads it (or a real cluster) back.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use graphscale_core::Clock;
use graphscale_eval::{build_autoscaler, AutoscalerSpec};
use graphscale_monitor::collect::{collect, write_dir};
use graphscale_monitor::discovery::{discover, from_kiali, DiscoveryConfig, MAX_KIALI_FILE_BYTES};
use graphscale_monitor::exporter::{render, router, Exposition};
use graphscale_monitor::prom::{Grid, PromClient, PromConfig};
use graphscale_monitor::templates::Templates;
use graphscale_sim::engine::{SimConfig, Simulator};
use graphscale_sim::{topology, workload::WorkloadSpec};
use serde::{Deserialize, Serialize};

/// Settings of `sim serve`.
pub struct ServeArgs {
    pub app: String,
    pub scenario: String,
    pub autoscaler: String,
    pub seed: u64,
    pub speed: f64,
    pub listen: SocketAddr,
    pub namespace: String,
    pub duration: Option<u64>,
    pub follow_cluster: bool,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Runs the simulation at `speed` times real time and serves its exposition on `/metrics`
/// until the scenario ends (or Ctrl-C).
pub fn sim_serve(a: ServeArgs) -> Result<ExitCode> {
    if !(a.speed.is_finite() && a.speed > 0.0 && a.speed <= 10_000.0) {
        bail!("--speed must be in (0, 10000], got {}", a.speed);
    }
    let app = topology::builtin(&a.app)?;
    let workload = WorkloadSpec::named(&a.scenario, app.nominal_peak_rps)?;
    let duration = match a.duration {
        Some(d) => d,
        None => workload.natural_duration_s()?,
    };
    let rates = workload.rates(duration, a.seed)?;
    let cfg = SimConfig {
        seed: a.seed,
        exposition: true,
        ..SimConfig::default()
    };
    let mut sim = Simulator::new(app.clone(), cfg, rates)?;
    let scaler = build_autoscaler(&AutoscalerSpec::named(&a.autoscaler)?, &app)?;
    let mut ctl = graphscale_control::ControlLoop::simulated(
        scaler,
        graphscale_control::schedule::DEFAULT_OFFSET,
    )?;
    let exposition = Exposition::default();
    exposition.publish(render(&sim.counters(&a.namespace)).context("rendering metrics")?);
    let rt = runtime()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .with_context(|| format!("binding {}", a.listen))?;
        let addr = listener.local_addr()?;
        crate::say!(
            "serving {} / {} / {} at {}x real time on http://{addr}/metrics for {} simulated s",
            app.name,
            a.scenario,
            if a.follow_cluster {
                format!("the Deployments of namespace {}", a.namespace)
            } else {
                a.autoscaler.clone()
            },
            a.speed,
            duration
        )?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let app_router = router(exposition.clone());
        // Header-read and request timeouts, a body limit and a connection limit: half-sent
        // requests cannot starve the scrapes (docs/reliability.md).
        let server = tokio::spawn(graphscale_monitor::http::serve(
            listener,
            app_router,
            graphscale_monitor::http::ServerLimits::default(),
            async move {
                let _ = stop_rx.await;
            },
        ));
        let mut twin = match a.follow_cluster {
            true => Some(crate::twin::Follow::start(&app, &a.namespace).await?),
            false => None,
        };
        let tick = Duration::from_millis(100);
        let step_ms = sim.step_len().0 as f64;
        let mut owed_ms = 0.0;
        let end_ms = duration * 1000;
        let mut interval = tokio::time::interval(tick);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = tokio::signal::ctrl_c() => break,
            }
            owed_ms += tick.as_millis() as f64 * a.speed;
            if let Some(t) = &mut twin {
                t.follow(&mut sim).await;
            }
            while owed_ms >= step_ms && sim.now().0 < end_ms {
                sim.step();
                owed_ms -= step_ms;
                if twin.is_none() {
                    ctl.tick(&mut sim)?;
                }
            }
            exposition.publish(render(&sim.counters(&a.namespace)).context("rendering metrics")?);
            if sim.now().0 >= end_ms {
                break;
            }
        }
        let _ = stop_tx.send(());
        server.await.context("server task")?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The collector's config file (`--config`): discovery settings plus templates.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectConfig {
    /// Discovery settings.
    pub discovery: Option<DiscoveryConfig>,
    /// PromQL templates.
    pub templates: Option<Templates>,
    /// Client settings (the URL comes from --prometheus).
    pub prometheus: Option<PromConfig>,
}

/// Arguments of `collect` and `discover`.
pub struct CollectArgs {
    pub prometheus: Option<String>,
    pub kiali: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub namespace: Option<String>,
    pub range_s: u64,
    pub step_s: u64,
    pub end: Option<f64>,
    pub time_scale: Option<f64>,
    pub timeout_ms: Option<u64>,
    pub retries: Option<u32>,
    pub deadline_s: Option<u64>,
    pub out: Option<PathBuf>,
    pub print_recording_rules: bool,
}

/// How long `discover` waits for Prometheus in all, retries included, unless `--deadline`.
pub const DISCOVER_DEADLINE_S: u64 = 60;
/// How long `collect` waits for Prometheus in all, unless `--deadline`: range queries over
/// many services are slow (about a minute for 1,000 services, docs/benchmarks.md).
pub const COLLECT_DEADLINE_S: u64 = 3600;

/// Runs `fut` under the command's deadline; a miss is an error that names the deadline and the
/// flag that sets it.
fn within<T>(
    what: &str,
    deadline_s: u64,
    fut: impl std::future::Future<Output = Result<T, graphscale_monitor::MonitorError>>,
) -> Result<T> {
    let deadline = std::time::Duration::from_secs(deadline_s.max(1));
    match runtime()?.block_on(async { tokio::time::timeout(deadline, fut).await }) {
        Ok(r) => Ok(r?),
        Err(_) => bail!(
            "{what}: Prometheus did not answer within the deadline of {deadline_s} s \
             (--deadline; --timeout-ms and --retries bound each request)"
        ),
    }
}

fn load(a: &CollectArgs) -> Result<(PromClient, Templates, DiscoveryConfig)> {
    let cfg: CollectConfig = match &a.config {
        Some(p) => {
            let t =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_str(&t)
                .with_context(|| format!("{}: invalid collector config", p.display()))?
        }
        None => CollectConfig::default(),
    };
    let mut prom = cfg.prometheus.unwrap_or_default();
    if let Some(u) = &a.prometheus {
        prom.url = u.clone();
    }
    if let Some(t) = a.timeout_ms {
        prom.timeout_ms = t;
    }
    if let Some(r) = a.retries {
        prom.retries = r;
    }
    let mut disc = cfg.discovery.unwrap_or_default();
    if let Some(ns) = &a.namespace {
        disc.namespace = ns.clone();
    }
    if let Some(s) = a.time_scale {
        disc.time_scale = s;
    }
    let templates = cfg.templates.unwrap_or_default();
    templates.validate(&disc.namespace)?;
    Ok((PromClient::new(prom)?, templates, disc))
}

fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `graphscale collect`.
pub fn collect_cmd(a: CollectArgs) -> Result<ExitCode> {
    if a.print_recording_rules {
        let (_, templates, _) = load(&a)?;
        crate::say!(
            "{}",
            graphscale_monitor::recorded::rules_yaml(&templates.window)?.trim_end()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    if a.prometheus.is_none() {
        bail!("--prometheus URL is required");
    }
    let out = a.out.clone().context("--out DIR is required")?;
    let (client, templates, disc) = load(&a)?;
    if a.step_s == 0 || a.range_s < a.step_s {
        bail!("need 0 < --step <= --range");
    }
    let end = a.end.unwrap_or_else(now_unix);
    let grid = Grid::aligned(end - a.range_s as f64, end, a.step_s as i64)?;
    let (found, series, recorded) = within(
        "collect",
        a.deadline_s.unwrap_or(COLLECT_DEADLINE_S),
        collect(&client, &templates, &disc, grid),
    )?;
    write_dir(&series, &out, crate::app::existing())?;
    let p95 = match (recorded.node, recorded.edge) {
        (true, true) => "recorded by the recording rules",
        (false, false) => "computed from the histograms",
        _ => "partly recorded (one of the two recording rules is missing)",
    };
    crate::say!(
        "collected {} points x {} nodes and {} edges ({} entries) into {}; p95s {p95} (window {})",
        series.len,
        series.nodes.len(),
        series.edges.len(),
        found.entries.len(),
        out.display(),
        templates.window
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `graphscale discover`: prints the discovered graph with its features as JSON.
pub fn discover_cmd(a: CollectArgs) -> Result<ExitCode> {
    let found = match (&a.kiali, &a.prometheus) {
        (Some(path), None) => {
            let bytes = graphscale_fsio::read_at_most(path, MAX_KIALI_FILE_BYTES)
                .with_context(|| format!("reading {}", path.display()))?;
            let text = String::from_utf8(bytes)
                .map_err(|e| anyhow::anyhow!("{}: not UTF-8 text: {e}", path.display()))?;
            from_kiali(&text, &path.display().to_string())?
        }
        (None, Some(_)) => {
            let (client, templates, disc) = load(&a)?;
            within(
                "discover",
                a.deadline_s.unwrap_or(DISCOVER_DEADLINE_S),
                discover(&client, &templates, &disc, a.end),
            )?
        }
        _ => bail!("give exactly one of --prometheus URL or --kiali FILE"),
    };
    let text = serde_json::to_string_pretty(&found)?;
    match &a.out {
        Some(p) => {
            graphscale_eval::report::write_atomic(p, text.as_bytes(), crate::app::existing())?;
            crate::say!("wrote {}", p.display())?;
        }
        None => crate::say!("{text}")?,
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_collector_config_parses() {
        let doc = include_str!("../../../docs/monitor.md");
        let start = doc.find("## Collector config").unwrap();
        let block = &doc[start..];
        let json = &block[block.find("```json").unwrap() + 7..];
        let json = &json[..json.find("```").unwrap()];
        let cfg: CollectConfig = serde_json::from_str(json).unwrap();
        let d = cfg.discovery.unwrap();
        assert_eq!(d.namespace, "shop");
        assert_eq!(
            d.ignore,
            vec![("api".to_string(), "metrics-sidecar".to_string())]
        );
        cfg.templates.unwrap().validate("shop").unwrap();
    }
}
