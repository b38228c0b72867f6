//! The client against a Prometheus that is down, slow, failing or answering badly. A real
//! Prometheus cannot be made to misbehave on cue, so these faults come from tiny loopback
//! servers that answer with a scripted HTTP response; everything else is tested against a
//! real Prometheus (crates/cli/tests/prometheus.rs).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use graphscale_monitor::prom::{Grid, PromClient, PromConfig};
use graphscale_monitor::MonitorError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves `response` (a full HTTP response) to every connection; counts connections. With
/// `None` it accepts and never answers.
async fn scripted(response: Option<String>) -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            h.fetch_add(1, Ordering::SeqCst);
            let response = response.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                match response {
                    Some(r) => {
                        let _ = s.write_all(r.as_bytes()).await;
                        let _ = s.shutdown().await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(30)).await,
                }
            });
        }
    });
    (url, hits)
}

fn http(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn client(url: &str) -> PromClient {
    PromClient::new(PromConfig {
        url: url.into(),
        timeout_ms: 300,
        retries: 2,
        backoff_ms: 10,
        max_response_bytes: 4096,
    })
    .unwrap()
}

#[tokio::test]
async fn down_is_unreachable_after_retries() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = client(&format!("http://127.0.0.1:{port}"))
        .query("up", None)
        .await
        .unwrap_err();
    assert!(matches!(e, MonitorError::Unreachable { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("127.0.0.1:{port}/api/v1/query")),
        "{e}"
    );
}

#[tokio::test]
async fn slow_is_a_timeout_and_is_retried() {
    let (url, hits) = scripted(None).await;
    let e = client(&url).query("up", None).await.unwrap_err();
    assert!(
        matches!(e, MonitorError::Timeout { after_ms: 300, .. }),
        "{e}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3, "one try and two retries");
}

#[tokio::test]
async fn server_errors_are_retried_bad_queries_are_not() {
    let (url, hits) = scripted(Some(http("502 Bad Gateway", "upstream down"))).await;
    let e = client(&url).query("up", None).await.unwrap_err();
    assert!(matches!(e, MonitorError::Http { status: 502, .. }), "{e}");
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    let body =
        r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected \"}\""}"#;
    let (url, hits) = scripted(Some(http("400 Bad Request", body))).await;
    let e = client(&url).query("up{", None).await.unwrap_err();
    assert!(
        e.to_string().contains("bad_data") && e.to_string().contains("parse error"),
        "{e}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1, "a bad query is not retried");
}

#[tokio::test]
async fn malformed_answers_are_clear_errors() {
    for body in [
        "<html>proxy error</html>",
        r#"{"status":"success"}"#,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"abc"]}]}}"#,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1"]}]}}"#,
        r#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#,
    ] {
        let (url, _) = scripted(Some(http("200 OK", body))).await;
        let e = client(&url).query("up", None).await.unwrap_err();
        assert!(matches!(e, MonitorError::Malformed(_)), "{body}: {e}");
    }
}

#[tokio::test]
async fn partial_data_keeps_gaps_and_nan_apart_from_zero() {
    let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
        {"metric":{"destination_workload":"cart","ns":"q\"uo ü"},"values":[[1005,"0"],[1035,"NaN"],[1050,"2.5"]]}]}}"#;
    let (url, _) = scripted(Some(http("200 OK", body))).await;
    let grid = Grid::aligned(1005.0, 1050.0, 15).unwrap();
    let r = client(&url).query_range("x", grid).await.unwrap();
    assert_eq!(
        r[0].values,
        vec![Some(0.0), None, None, Some(2.5)],
        "a zero, a gap, a NaN, a value"
    );
    assert_eq!(r[0].labels["ns"], "q\"uo ü");
    let (url, _) = scripted(Some(http(
        "200 OK",
        r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
    )))
    .await;
    assert!(client(&url).query("x", None).await.unwrap().is_empty());
}

#[tokio::test]
async fn huge_responses_are_refused() {
    let big = format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{"a":"{}"}},"value":[1,"1"]}}]}}}}"#,
        "x".repeat(10_000)
    );
    let (url, _) = scripted(Some(http("200 OK", &big))).await;
    let e = client(&url).query("x", None).await.unwrap_err();
    assert!(
        matches!(e, MonitorError::TooLarge { limit: 4096, .. }),
        "{e}"
    );
}

#[test]
fn bad_urls_are_rejected_up_front() {
    let e = PromClient::new(PromConfig {
        url: "localhost:9090".into(),
        ..PromConfig::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("must start with http://"), "{e}");
}
