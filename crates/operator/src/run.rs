//! The operator process: the metrics and health endpoints, leader election, and the
//! controller while this replica leads. Losing the Lease stops the controller (reconciles in
//! flight finish); regaining it starts a fresh one. Shutdown (SIGTERM, Ctrl-C) stops the
//! controller gracefully and releases the Lease.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use kube::Client;
use tokio::sync::watch;

use crate::controller::{self, Context, ControllerConfig};
use crate::leader::{LeaderElector, LeaseConfig};
use crate::metrics::Metrics;
use crate::OperatorError;

/// Settings of the operator process.
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// The controller.
    pub controller: ControllerConfig,
    /// Leader election; `None`: this replica always leads (one replica only).
    pub lease: Option<LeaseConfig>,
    /// Where `/metrics`, `/healthz` and `/readyz` listen.
    pub listen: SocketAddr,
    /// Where KEDA's external-scaler gRPC service listens; `None`: not served. Every replica
    /// serves it, from the statuses the leader writes ([`crate::keda`]).
    pub keda_listen: Option<SocketAddr>,
}

#[derive(Clone)]
struct Http {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

async fn metrics_page(State(h): State<Http>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        h.metrics.encode(),
    )
}

async fn readiness(State(h): State<Http>) -> StatusCode {
    if h.ready.load(Ordering::Relaxed) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// Runs the operator with the kubeconfig of the environment (`KUBECONFIG`, `~/.kube/config`
/// or the in-cluster service account) until `shutdown` resolves.
pub async fn run(
    cfg: OperatorConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), OperatorError> {
    let client = Client::try_default()
        .await
        .map_err(OperatorError::kube("load the kubeconfig"))?;
    run_with(client, cfg, shutdown).await
}

/// [`run`] with a client.
pub async fn run_with(
    client: Client,
    cfg: OperatorConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), OperatorError> {
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| OperatorError::Listen {
            addr: cfg.listen,
            source: e,
        })?;
    let app = Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readiness))
        .with_state(Http {
            metrics: metrics.clone(),
            ready: ready.clone(),
        });
    let keda_listener = match cfg.keda_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| OperatorError::Listen { addr, source: e })?,
        ),
        None => None,
    };
    let (shut_tx, shut_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        shut_tx.send_replace(true);
    });
    let mut keda_tasks = Vec::new();
    if let Some(listener) = keda_listener {
        let board = Arc::new(graphscale_keda::PlanBoard::on_wall_clock());
        let (mut a, mut b) = (shut_rx.clone(), shut_rx.clone());
        keda_tasks.push(tokio::spawn(crate::keda::mirror(
            client.clone(),
            cfg.controller.namespace.clone(),
            board.clone(),
            async move {
                let _ = a.wait_for(|s| *s).await;
            },
        )));
        keda_tasks.push(tokio::spawn(graphscale_keda::serve(
            listener,
            board,
            graphscale_keda::GrpcLimits::default(),
            async move {
                let _ = b.wait_for(|s| *s).await;
            },
        )));
    }
    let mut http_shut = shut_rx.clone();
    // Probes and metrics under the same limits as every server of ours (docs/reliability.md).
    let server = tokio::spawn(graphscale_monitor::http::serve(
        listener,
        app,
        graphscale_monitor::http::ServerLimits::default(),
        async move {
            let _ = http_shut.wait_for(|s| *s).await;
        },
    ));
    client
        .apiserver_version()
        .await
        .map_err(OperatorError::kube("reach the API server"))?;
    ready.store(true, Ordering::Relaxed);

    let (lead_tx, lead_rx) = watch::channel(false);
    let elector = match cfg.lease.clone() {
        Some(l) => Some(tokio::spawn(
            LeaderElector::new(client.clone(), l).run(lead_tx, shut_rx.clone()),
        )),
        None => {
            lead_tx.send_replace(true);
            // Keep the sender alive so the receiver does not see it closed.
            std::mem::forget(lead_tx);
            None
        }
    };
    let ctx = Arc::new(Context::new(client, metrics.clone(), cfg.controller));
    loop {
        let mut lead = lead_rx.clone();
        let mut shut = shut_rx.clone();
        tokio::select! {
            r = lead.wait_for(|l| *l) => if r.is_err() { break },
            _ = shut.wait_for(|s| *s) => break,
        }
        tracing::info!("leading: controller started");
        metrics.leader.set(1);
        let (mut lost, mut stop) = (lead_rx.clone(), shut_rx.clone());
        controller::run(ctx.clone(), async move {
            tokio::select! {
                _ = lost.wait_for(|l| !*l) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        })
        .await;
        metrics.leader.set(0);
        tracing::info!("controller stopped");
        if *shut_rx.borrow() {
            break;
        }
    }
    if let Some(e) = elector {
        let _ = e.await;
    }
    let _ = server.await;
    for t in keda_tasks {
        let _ = t.await;
    }
    Ok(())
}
