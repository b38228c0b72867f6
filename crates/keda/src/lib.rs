//! graphscale's KEDA external scaler (part of the Execute stage).
//!
//! KEDA asks an external scaler over gRPC (`externalscaler.proto`, vendored in `proto/` with
//! its licence) whether a ScaledObject is active and what its metric is. This crate answers
//! from a [`PlanBoard`]: the last plan of each workload, which the operator's rounds publish.
//! The metric is the planned replicas with a target of 1 (`metricType: AverageValue`), so the
//! HPA that KEDA creates sets the plan; a plan that is stale or did not come from a forecast is
//! an error (`UNAVAILABLE`), so that KEDA's `fallback` acts; an unknown workload is
//! `NOT_FOUND` and a request missing its metadata `INVALID_ARGUMENT`, each with a message that
//! names the field or the workload. `deploy/keda/` has a ScaledObject with `fallback` and a
//! `scalingModifiers` recipe; docs/operator.md describes both.

pub mod board;
mod error;
pub mod scaler;
pub mod server;

/// The code `tonic-prost-build` generates from `proto/externalscaler.proto`, checked in so
/// that a build needs no `protoc` (`tests/codegen.rs` keeps the two in step).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod generated {
    include!("generated/externalscaler.rs");
}

pub use board::{Plan, PlanBoard};
pub use error::KedaError;
pub use scaler::{Scaler, METRIC_NAME};
pub use server::{serve, GrpcLimits};

/// Binds `addr` and serves the scaler from `board` until `shutdown` resolves.
pub async fn listen_and_serve(
    addr: std::net::SocketAddr,
    board: std::sync::Arc<PlanBoard>,
    limits: GrpcLimits,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), KedaError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| KedaError::Listen { addr, source })?;
    serve(listener, board, limits, shutdown).await;
    Ok(())
}
