//! Serving HTTP to clients nobody vouches for (`sim serve`'s `/metrics`, the operator's probes
//! and metrics): [`serve`] runs a router with a connection limit, a header-read timeout, a
//! request timeout and a body limit ([`ServerLimits`]), so a flood of half-sent requests holds
//! a connection for at most the header-read timeout and cannot starve a scrape for longer.
//!
//! axum's own `serve` has none of these (no header-read timeout: a request that never finishes
//! its headers holds its connection for as long as the client keeps it open).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Limits of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections served at once; one more is closed at once. Default 256.
    pub max_connections: usize,
    /// Time a client has to send a request's headers, from the connection or the previous
    /// response. Default 5 s.
    pub header_read_timeout: Duration,
    /// Time one request may take from its headers to its response (503 after). Default 30 s.
    pub request_timeout: Duration,
    /// Largest request body. Default 1 MiB.
    pub max_body_bytes: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 256,
            header_read_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 1 << 20,
        }
    }
}

async fn deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the request took more than {} s", limit.as_secs_f64()),
        )
            .into_response(),
    }
}

/// The next connection on `listener` with one of `permits`, or `None` once `shutdown` resolves.
/// A connection over the limit is closed at once (the client may retry), never queued; a failed
/// accept (out of file descriptors and the like) is retried after 50 ms.
pub async fn accept_limited<F: Future>(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
    mut shutdown: std::pin::Pin<&mut F>,
) -> Option<(TcpStream, OwnedSemaphorePermit)> {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.as_mut() => return None,
        };
        match permits.clone().try_acquire_owned() {
            Ok(permit) => return Some((stream, permit)),
            Err(_) => tracing::debug!("connection limit reached; closing a new connection"),
        }
    }
}

/// Serves `router` on `listener` under `limits` until `shutdown` resolves; then stops
/// accepting, lets the requests in flight finish (for at most the request timeout) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let router = router
        .layer(axum::middleware::from_fn_with_state(
            limits.request_timeout,
            deadline,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(limits.max_body_bytes));
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (close_tx, close_rx) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    while let Some((stream, permit)) = accept_limited(&listener, &permits, shutdown.as_mut()).await
    {
        let svc = TowerToHyperService::new(router.clone());
        let mut close = close_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let conn = b.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = async { close.wait_for(|c| *c).await.is_ok() } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(limits.request_timeout, conn).await;
                }
            }
        });
    }
    close_tx.send_replace(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(limits.request_timeout, permits.acquire_many(all)).await;
}
