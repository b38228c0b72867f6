//! `graphscale bench keda`: `GetMetrics` latency and throughput of the KEDA external scaler,
//! over a real gRPC connection on 127.0.0.1 (one HTTP/2 connection, as KEDA holds one per
//! scaler address), with `C` requests in flight at once.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use graphscale_core::Millis;
use graphscale_keda::generated::external_scaler_client::ExternalScalerClient;
use graphscale_keda::generated::{GetMetricsRequest, ScaledObjectRef};
use graphscale_keda::{GrpcLimits, Plan, PlanBoard, METRIC_NAME};

/// Most requests a run may make.
pub const MAX_REQUESTS: usize = 10_000_000;

fn request(workload: usize) -> GetMetricsRequest {
    GetMetricsRequest {
        scaled_object_ref: Some(ScaledObjectRef {
            name: format!("w{workload}"),
            namespace: "bench".into(),
            scaler_metadata: [
                ("workload".to_string(), format!("w{workload}")),
                (
                    "scalerAddress".to_string(),
                    "graphscale-operator.graphscale-system.svc:9090".to_string(),
                ),
            ]
            .into(),
        }),
        metric_name: METRIC_NAME.into(),
    }
}

fn pct(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e6
}

/// Runs the benchmark and prints a Markdown table.
pub fn keda(workloads: usize, requests: usize, concurrency: &[usize]) -> Result<ExitCode> {
    if workloads == 0 || workloads > graphscale_keda::board::MAX_PLANS {
        bail!(
            "--workloads {workloads}: must be 1..={}",
            graphscale_keda::board::MAX_PLANS
        );
    }
    if requests == 0 || requests > MAX_REQUESTS {
        bail!("--requests {requests}: must be 1..={MAX_REQUESTS}");
    }
    if concurrency.iter().any(|&c| c == 0 || c > 1024) {
        bail!("--concurrency: each must be 1..=1024");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let board = Arc::new(PlanBoard::on_wall_clock());
        let now = board.now();
        board.publish(
            "bench",
            (0..workloads).map(|i| {
                (
                    format!("w{i}"),
                    Plan {
                        autoscaler: "bench".into(),
                        replicas: 1 + (i % 20) as u32,
                        decided_at: now,
                        stale_after: Millis(3_600_000),
                        failure: None,
                    },
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(graphscale_keda::serve(
            listener,
            board,
            GrpcLimits::default(),
            async move {
                let _ = stop_rx.await;
            },
        ));
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))?
            .connect()
            .await
            .context("connecting to the scaler")?;
        let client = ExternalScalerClient::new(channel);
        crate::say!("`GetMetrics` on 127.0.0.1, one HTTP/2 connection, {workloads} workloads planned, {requests} requests per row (after 1,000 warm-up)")?;
        crate::say!()?;
        crate::say!("| in flight | requests/s | p50 µs | p90 µs | p99 µs | max µs |")?;
        crate::say!("|---|---|---|---|---|---|")?;
        for &c in concurrency {
            let mut warm = client.clone();
            for i in 0..1000 {
                warm.get_metrics(request(i % workloads)).await?;
            }
            let started = Instant::now();
            let mut tasks = Vec::new();
            for t in 0..c {
                let mut cl = client.clone();
                let n = requests / c + usize::from(t < requests % c);
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::with_capacity(n);
                    for i in 0..n {
                        let r = request((t * 7919 + i) % workloads);
                        let t0 = Instant::now();
                        let got = cl.get_metrics(r).await?;
                        lat.push(t0.elapsed());
                        anyhow::ensure!(
                            got.get_ref().metric_values.len() == 1,
                            "an answer without its value"
                        );
                    }
                    Ok::<_, anyhow::Error>(lat)
                }));
            }
            let mut all = Vec::with_capacity(requests);
            for t in tasks {
                all.extend(t.await??);
            }
            let wall = started.elapsed().as_secs_f64();
            all.sort();
            crate::say!(
                "| {c} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
                all.len() as f64 / wall,
                pct(&all, 0.5),
                pct(&all, 0.9),
                pct(&all, 0.99),
                pct(&all, 1.0)
            )?;
        }
        let _ = stop_tx.send(());
        let _ = server.await;
        Ok(ExitCode::SUCCESS)
    })
}
