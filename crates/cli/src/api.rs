//! `graphscale serve`: the HTTP API of `graphscale_api` on `graphscale_monitor::http::serve`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use graphscale_api::apply::LocalActuator;
use graphscale_api::{Api, Models, Token};
use graphscale_monitor::http::ServerLimits;
use graphscale_sim::engine::{SimConfig, Simulator};

use crate::flags::ServeArgs;

fn token(a: &ServeArgs) -> Result<Token> {
    if let Some(p) = &a.token_file {
        let bytes = graphscale_fsio::read_at_most(p, 4096)
            .with_context(|| format!("--token-file {}", p.display()))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("--token-file {}: not UTF-8 text", p.display()))?;
        return Ok(Token::new(&text, &format!("--token-file {}", p.display()))?);
    }
    match std::env::var("GRAPHSCALE_API_TOKEN") {
        Ok(t) => Ok(Token::new(&t, "GRAPHSCALE_API_TOKEN")?),
        Err(_) => Ok(Token::none()),
    }
}

pub(crate) fn serve(a: ServeArgs) -> Result<ExitCode> {
    if a.openapi {
        crate::say!(
            "{}",
            serde_json::to_string_pretty(&graphscale_api::openapi::document())?
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let token = token(&a)?;
    let models = match &a.models_dir {
        Some(d) => Models::load_dir(d).with_context(|| format!("--models-dir {}", d.display()))?,
        None => Models::in_memory(),
    };
    let limits = ServerLimits {
        max_connections: a.max_connections as usize,
        max_body_bytes: (a.max_body_mib as usize) << 20,
        ..ServerLimits::default()
    };
    if !token.is_set() {
        tracing::warn!("no token configured: POST /v1/train and /v1/apply answer 403");
    }
    let n = models.len();
    let app = graphscale_sim::topology::builtin(&a.sim_app)
        .with_context(|| format!("--sim-app {}", a.sim_app))?;
    let sim = Simulator::new(app, SimConfig::default(), Vec::new())
        .with_context(|| format!("--sim-app {}: cannot simulate it", a.sim_app))?;
    let actuator = Arc::new(LocalActuator::new("simulator", sim));
    let api = Arc::new(Api::new(models, token).with_actuator(actuator));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&a.listen)
            .await
            .with_context(|| format!("--listen {}: cannot bind", a.listen))?;
        let addr = listener.local_addr()?;
        // The address first, on stdout: scripts and tests read it (port 0 picks a free one).
        crate::say!("graphscale API on http://{addr} ({n} model(s))")?;
        graphscale_monitor::http::serve(
            listener,
            graphscale_api::router(api),
            limits,
            crate::operator::shutdown_signal(),
        )
        .await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
