//! A server under a flood of half-sent requests still answers a scrape: each half-sent request
//! holds its connection for at most the header-read timeout, and connections past the limit are
//! closed at once. Bounded: 60 connections on loopback, a few seconds.

use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use graphscale_monitor::http::{serve, ServerLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn get_metrics(addr: std::net::SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_string(&mut out))
        .await
        .ok()?
        .ok()?;
    out.starts_with("HTTP/1.1 200").then_some(out)
}

#[tokio::test]
async fn half_sent_requests_cannot_starve_a_scrape() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = ServerLimits {
        max_connections: 20,
        header_read_timeout: Duration::from_secs(1),
        ..ServerLimits::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let router = Router::new().route("/metrics", get(|| async { "up 1\n" }));
    let server = tokio::spawn(serve(listener, router, limits, async move {
        let _ = stop_rx.await;
    }));
    assert!(get_metrics(addr).await.is_some(), "the server answers");

    // 60 clients that send half a request and wait: three times the connection limit.
    let mut slow = Vec::new();
    for _ in 0..60 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n").await;
        slow.push(s);
    }
    // A scrape gets through once the half-sent requests time out (1 s), well before they
    // would give up.
    let start = Instant::now();
    let mut answered = None;
    while start.elapsed() < Duration::from_secs(10) {
        if let Some(body) = get_metrics(addr).await {
            answered = Some(start.elapsed());
            assert!(body.ends_with("up 1\n"), "{body}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let waited = answered.expect("the scrape was starved for 10 s");
    assert!(waited < Duration::from_secs(4), "answered after {waited:?}");
    // Every half-sent request was closed by the server (end of stream or an error answer),
    // not left open.
    for s in &mut slow {
        let mut buf = [0u8; 256];
        let r = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await;
        assert!(
            r.is_ok(),
            "a half-sent request was still open after the timeout"
        );
    }
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("graceful shutdown")
        .unwrap();
}
