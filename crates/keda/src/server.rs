//! The gRPC server: HTTP/2 over hyper with the limits every server of ours has
//! (docs/reliability.md): a connection limit (a connection over it is closed at once, never
//! queued), a deadline for the client's HTTP/2 preface (a connection that sends nothing, or
//! half of it, is closed), a message-size limit, a bound on concurrent streams per connection,
//! keep-alive pings that drop dead peers, and a maximum connection age after which a connection
//! is asked to go away (KEDA reconnects at once). Shutdown ends the streams, lets unary calls in
//! flight finish for at most the grace period, and returns.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::board::PlanBoard;
use crate::generated::external_scaler_server::ExternalScalerServer;
use crate::scaler::Scaler;

/// The server's limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GrpcLimits {
    /// Connections served at once; default 256.
    pub max_connections: usize,
    /// Time for a new connection to send HTTP/2's 24-byte preface; default 5 s.
    pub preface_timeout: Duration,
    /// Largest request message, bytes; default 64 KiB (a request is a name and a few labels).
    pub max_message_bytes: usize,
    /// Streams open at once on one connection; default 64.
    pub max_concurrent_streams: u32,
    /// Keep-alive ping interval; default 30 s. A ping unanswered for `keep_alive_timeout`
    /// (default 10 s) closes the connection.
    pub keep_alive_interval: Duration,
    /// See `keep_alive_interval`.
    pub keep_alive_timeout: Duration,
    /// Age after which a connection is asked to go away; default 10 minutes.
    pub max_connection_age: Duration,
    /// Time calls get to finish after a go-away or at shutdown; default 10 s.
    pub grace: Duration,
}

impl Default for GrpcLimits {
    fn default() -> Self {
        GrpcLimits {
            max_connections: 256,
            preface_timeout: Duration::from_secs(5),
            max_message_bytes: 64 * 1024,
            max_concurrent_streams: 64,
            keep_alive_interval: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(10),
            max_connection_age: Duration::from_secs(600),
            grace: Duration::from_secs(10),
        }
    }
}

/// HTTP/2's client connection preface.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Waits until the client has sent the whole preface (peeked, not read); false when it sends
/// something else, closes, or takes longer than `limit`.
async fn preface(stream: &TcpStream, limit: Duration) -> bool {
    let check = async {
        let mut buf = [0u8; 24];
        loop {
            let n = match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            };
            if buf[..n] != PREFACE[..n] {
                return false;
            }
            if n == PREFACE.len() {
                return true;
            }
            // Part of it: wait for the rest (peek returns at once while data is queued).
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(limit, check).await.unwrap_or(false)
}

/// Serves KEDA's external-scaler protocol from `board` on `listener` under `limits` until
/// `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    board: Arc<PlanBoard>,
    limits: GrpcLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let svc = ExternalScalerServer::new(Scaler::new(board, stop_rx.clone()))
        .max_decoding_message_size(limits.max_message_bytes);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    while let Some((stream, permit)) =
        graphscale_monitor::http::accept_limited(&listener, &permits, shutdown.as_mut()).await
    {
        // Small answers, sent at once: without it Nagle's algorithm and delayed ACKs hold some
        // for about 40 ms.
        let _ = stream.set_nodelay(true);
        let svc = TowerToHyperService::new(svc.clone());
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if !preface(&stream, limits.preface_timeout).await {
                tracing::debug!("no HTTP/2 preface in time; closing");
                return;
            }
            let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            b.timer(TokioTimer::new())
                .keep_alive_interval(Some(limits.keep_alive_interval))
                .keep_alive_timeout(limits.keep_alive_timeout)
                .max_concurrent_streams(limits.max_concurrent_streams)
                .max_header_list_size(16 * 1024);
            let conn = b.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = tokio::time::sleep(limits.max_connection_age) => {}
                _ = async { stop.wait_for(|v| *v).await.is_ok() } => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(limits.grace, conn).await;
        });
    }
    stop_tx.send_replace(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(limits.grace, permits.acquire_many(all)).await;
}
