//! The external scaler over a real gRPC connection on loopback, as KEDA calls it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use graphscale_core::Millis;
use graphscale_keda::generated::external_scaler_client::ExternalScalerClient;
use graphscale_keda::generated::{GetMetricsRequest, ScaledObjectRef};
use graphscale_keda::{GrpcLimits, Plan, PlanBoard, METRIC_NAME};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;
use tonic::Code;

struct Server {
    addr: std::net::SocketAddr,
    board: Arc<PlanBoard>,
    clock: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(limits: GrpcLimits) -> Server {
    let clock = Arc::new(AtomicU64::new(1_000_000));
    let c = clock.clone();
    let board = Arc::new(PlanBoard::new(Arc::new(move || {
        Millis(c.load(Ordering::Relaxed))
    })));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(graphscale_keda::serve(
        listener,
        board.clone(),
        limits,
        async move {
            let _ = rx.await;
        },
    ));
    Server {
        addr,
        board,
        clock,
        stop: Some(tx),
        task,
    }
}

impl Server {
    async fn client(&self) -> ExternalScalerClient<Channel> {
        let ch = Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .connect()
            .await
            .unwrap();
        ExternalScalerClient::new(ch)
    }

    fn plan(&self, workload: &str, replicas: u32) {
        let now = Millis(self.clock.load(Ordering::Relaxed));
        self.board.publish(
            "shop",
            [(
                workload.to_string(),
                Plan {
                    autoscaler: "boutique".into(),
                    replicas,
                    decided_at: now,
                    stale_after: Millis(45_000),
                    failure: None,
                },
            )],
        );
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("the server stops within its grace period")
            .unwrap();
    }
}

fn so(ns: &str, meta: &[(&str, &str)]) -> ScaledObjectRef {
    ScaledObjectRef {
        name: "cart-so".into(),
        namespace: ns.into(),
        scaler_metadata: meta
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([("scalerAddress".to_string(), "graphscale:9090".to_string())])
            .collect::<HashMap<_, _>>(),
    }
}

async fn next<T>(st: &mut tonic::codec::Streaming<T>) -> Result<Option<T>, tonic::Status> {
    tokio::time::timeout(Duration::from_secs(5), st.message())
        .await
        .expect("an answer within 5 s")
}

fn metrics(r: ScaledObjectRef) -> GetMetricsRequest {
    GetMetricsRequest {
        scaled_object_ref: Some(r),
        metric_name: METRIC_NAME.into(),
    }
}

#[tokio::test]
async fn the_plan_is_the_metric_and_a_stale_or_failed_one_is_an_error() {
    let s = start(GrpcLimits::default()).await;
    let mut c = s.client().await;
    let cart = so("shop", &[("workload", "cart")]);

    let spec = c.get_metric_spec(cart.clone()).await.unwrap().into_inner();
    assert_eq!(spec.metric_specs.len(), 1);
    assert_eq!(spec.metric_specs[0].metric_name, METRIC_NAME);
    assert_eq!(spec.metric_specs[0].target_size, 1);
    assert_eq!(spec.metric_specs[0].target_size_float, 1.0);

    // Before the first round: not found, named.
    let e = c.get_metrics(metrics(cart.clone())).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("no plan for shop/cart"), "{e:?}");
    let e = c.is_active(cart.clone()).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "never 'inactive'");

    s.plan("cart", 4);
    let m = c
        .get_metrics(metrics(cart.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.metric_values.len(), 1);
    assert_eq!(m.metric_values[0].metric_name, METRIC_NAME);
    assert_eq!(m.metric_values[0].metric_value, 4);
    assert_eq!(m.metric_values[0].metric_value_float, 4.0);
    assert!(c.is_active(cart.clone()).await.unwrap().into_inner().result);

    // The named autoscaler must be the one planning it.
    let e = c
        .get_metrics(metrics(so(
            "shop",
            &[("workload", "cart"), ("autoscaler", "other")],
        )))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("planned by boutique, not other"));

    // Stale: 46 s without a round.
    s.clock.fetch_add(46_000, Ordering::Relaxed);
    let e = c.get_metrics(metrics(cart.clone())).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    assert!(
        e.message().contains("46.0 s old, stale after 45.0 s"),
        "{e:?}"
    );
    let e = c.is_active(cart.clone()).await.unwrap_err();
    assert_eq!(
        e.code(),
        Code::Unavailable,
        "stale is an error, not inactive"
    );

    // A round that failed.
    s.plan("cart", 5);
    assert_eq!(
        c.get_metrics(metrics(cart.clone()))
            .await
            .unwrap()
            .into_inner()
            .metric_values[0]
            .metric_value,
        5
    );
    s.board.fail(
        "shop",
        "boutique",
        "metrics: Prometheus did not answer in 10 s",
    );
    let e = c.get_metrics(metrics(cart.clone())).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    assert!(e.message().contains("Prometheus did not answer"), "{e:?}");

    // A plan from the safety layer's fallback, not a forecast.
    s.board.publish(
        "shop",
        [(
            "cart".to_string(),
            Plan {
                autoscaler: "boutique".into(),
                replicas: 3,
                decided_at: Millis(s.clock.load(Ordering::Relaxed)),
                stale_after: Millis(45_000),
                failure: graphscale_keda::board::failure_of(&[graphscale_core::Reason::new(
                    "safety.fallback_hpa",
                    "no plan: the reactive HPA rule decides",
                )]),
            },
        )],
    );
    let e = c.get_metrics(metrics(cart.clone())).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    assert!(
        e.message()
            .contains("no forecast for shop/cart: safety.fallback_hpa"),
        "{e:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn requests_with_missing_or_bad_fields_are_refused_by_name() {
    let s = start(GrpcLimits::default()).await;
    let mut c = s.client().await;
    let e = c.get_metric_spec(so("shop", &[])).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message()
            .starts_with("scalerMetadata.workload is missing"),
        "{e:?}"
    );
    let e = c
        .is_active(so("", &[("workload", "cart")]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("scaledObjectRef.namespace"));
    let e = c
        .get_metrics(GetMetricsRequest {
            scaled_object_ref: None,
            metric_name: METRIC_NAME.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("scaledObjectRef is missing"));
    let e = c
        .get_metrics(GetMetricsRequest {
            scaled_object_ref: Some(so("shop", &[("workload", "cart")])),
            metric_name: "s0-cpu".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("serves only"), "{e:?}");
    let e = c
        .get_metrics(metrics(so("shop", &[("workload", "Cart_1")])))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("not a Kubernetes object name"));
    // A message over the size limit: refused, and the server goes on.
    let huge = "x".repeat(200_000);
    let e = c
        .get_metrics(metrics(so("shop", &[("workload", "cart"), ("pad", &huge)])))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
    s.plan("cart", 2);
    assert!(c
        .get_metrics(metrics(so("shop", &[("workload", "cart")])))
        .await
        .is_ok());
    s.stop().await;
}

#[tokio::test]
async fn streams_answer_at_once_then_on_change_and_end_with_the_error() {
    let s = start(GrpcLimits::default()).await;
    let mut c = s.client().await;
    let cart = so("shop", &[("workload", "cart")]);
    let e = c.stream_is_active(cart.clone()).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    s.plan("cart", 3);
    let mut st = c.stream_is_active(cart.clone()).await.unwrap().into_inner();
    let first = next(&mut st).await.unwrap().unwrap();
    assert!(first.result);
    s.plan("cart", 0);
    assert!(!next(&mut st).await.unwrap().unwrap().result);
    s.plan("cart", 2);
    assert!(next(&mut st).await.unwrap().unwrap().result);
    // Stale: the next change of the board ends the stream with the error.
    s.clock.fetch_add(60_000, Ordering::Relaxed);
    s.plan("ads", 1);
    let e = next(&mut st).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    assert!(e.message().contains("stale after"), "{e:?}");

    let mut spec = c
        .stream_metric_spec(cart.clone())
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), spec.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.metric_specs[0].target_size_float, 1.0);
    // Open until shutdown.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), spec.message())
            .await
            .is_err(),
        "the spec stream stays open"
    );
    s.stop().await;
    let end = tokio::time::timeout(Duration::from_secs(15), spec.message())
        .await
        .expect("shutdown ends the stream");
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
}

#[tokio::test]
async fn silent_and_half_sent_connections_are_closed_and_answers_go_on() {
    let limits = GrpcLimits {
        max_connections: 16,
        preface_timeout: Duration::from_millis(300),
        ..GrpcLimits::default()
    };
    let s = start(limits).await;
    s.plan("cart", 4);
    // Fill every slot: 8 silent connections and 8 that send half of the preface.
    let mut slow = Vec::new();
    for i in 0..16 {
        let mut t = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        if i % 2 == 1 {
            t.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        }
        slow.push(t);
    }
    // Within the preface deadline each is closed by the server.
    for t in &mut slow {
        let mut b = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), t.read(&mut b))
            .await
            .expect("the server closes a slow connection")
            .unwrap_or(0);
        assert_eq!(n, 0, "closed without an answer");
    }
    // A connection that speaks something else is closed too.
    let mut h1 = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    h1.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut b = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), h1.read(&mut b))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    let mut c = s.client().await;
    let m = c
        .get_metrics(metrics(so("shop", &[("workload", "cart")])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.metric_values[0].metric_value, 4);
    s.stop().await;
}
