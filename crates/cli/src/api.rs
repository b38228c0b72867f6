//! `graphscale serve`: the HTTP API of `graphscale_api` on `graphscale_monitor::http::serve`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use graphscale_api::apply::{
    to_scaling, Applied, ApplyFuture, ApplyTarget, Decision, Outcome, WorkloadKind,
};
use graphscale_api::ApiError;
use graphscale_api::{Api, Models, Token};
use graphscale_monitor::http::ServerLimits;
use graphscale_operator::actuator::Outcome as KubeOutcome;
use graphscale_operator::crd::WorkloadKind as KubeKind;
use graphscale_operator::direct::Direct;
use graphscale_operator::OperatorError;

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

/// `/v1/apply` on a Kubernetes namespace, through the operator's actuator.
struct KubeApply(Direct);

impl KubeApply {
    async fn apply_now(
        &self,
        decisions: &[Decision],
        dry_run: bool,
    ) -> Result<Vec<Applied>, ApiError> {
        let plain: Vec<(KubeKind, _)> = decisions
            .iter()
            .map(|d| {
                let kind = match d.kind {
                    WorkloadKind::Deployment => KubeKind::Deployment,
                    WorkloadKind::StatefulSet => KubeKind::StatefulSet,
                };
                (kind, to_scaling(d))
            })
            .collect();
        let done = self.0.apply(&plain, dry_run).await.map_err(|e| match e {
            OperatorError::MissingTarget { ref name, .. } => {
                let i = decisions
                    .iter()
                    .position(|d| &d.workload == name)
                    .unwrap_or(0);
                ApiError::invalid(format!("decisions[{i}].workload"), e.to_string())
            }
            e => ApiError::actuator("kubernetes", e),
        })?;
        Ok(decisions
            .iter()
            .zip(done)
            .map(|(d, (t, o))| {
                let (outcome, detail) = match o {
                    KubeOutcome::Applied if dry_run => {
                        (Outcome::WouldApply, "server-side dry run".to_string())
                    }
                    KubeOutcome::Applied => (Outcome::Applied, String::new()),
                    KubeOutcome::Disabled => (
                        Outcome::Disabled,
                        format!("annotation {}=true", graphscale_operator::crd::KILL_SWITCH),
                    ),
                    KubeOutcome::Conflict(other) => {
                        (Outcome::Conflict, format!("{other} scales it"))
                    }
                    // Mode Auto and resolved targets: only Unchanged is left.
                    KubeOutcome::Unchanged | KubeOutcome::Recommended | KubeOutcome::NotTarget => {
                        (Outcome::Unchanged, String::new())
                    }
                };
                let after = match outcome {
                    Outcome::Applied | Outcome::WouldApply => d.replicas,
                    _ => t.replicas,
                };
                Applied {
                    workload: d.workload.clone(),
                    before: t.replicas,
                    after,
                    outcome,
                    detail: format!(
                        "{} {}/{}{}{detail}",
                        t.kind,
                        self.0.namespace(),
                        t.name,
                        if detail.is_empty() { "" } else { ": " }
                    ),
                }
            })
            .collect())
    }
}

impl ApplyTarget for KubeApply {
    fn name(&self) -> &str {
        "kubernetes"
    }

    fn apply<'a>(&'a self, decisions: &'a [Decision], dry_run: bool) -> ApplyFuture<'a> {
        Box::pin(self.apply_now(decisions, dry_run))
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
    let live = crate::live::Live::new(app, &a.sim_scenario, a.sim_seed, a.sim_speed)
        .with_context(|| format!("--sim-app {}", a.sim_app))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let mut api = Api::new(models, token);
        let mut driver = None;
        match &a.kube_namespace {
            Some(ns) => {
                api = api.with_actuator(Arc::new(KubeApply(
                    Direct::connect(ns, "graphscale-api")
                        .await
                        .with_context(|| format!("--kube-namespace {ns}"))?,
                )));
            }
            None => {
                api = api
                    .with_actuator(live.cluster.clone())
                    .with_board(live.board.clone());
                driver = Some(tokio::spawn(live.run()));
            }
        }
        let api = Arc::new(api);
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
        if let Some(d) = driver {
            if d.is_finished() {
                d.await.context("the simulated cluster")??;
            } else {
                d.abort();
            }
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
