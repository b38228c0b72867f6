//! A Prometheus that accepts and never answers holds a round for at most its deadline, never
//! for the queries' own timeouts (10 s each, retried): every workload is held and the status
//! says why.

mod common;

use std::time::{Duration, Instant};

use graphscale_control::Cluster;
use graphscale_operator::actuator::KubeActuator;
use graphscale_operator::cluster::KubeCluster;
use graphscale_operator::crd::{Mode, PredictiveAutoscalerSpec};
use graphscale_operator::settings::prom_source;
use http::{Request, Response};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::client::Body;
use kube::runtime::events::Reporter;
use kube::Client;

#[tokio::test]
async fn a_prometheus_that_never_answers_holds_the_round_for_its_deadline_only() {
    // A black hole: it accepts connections and never answers.
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = hole.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hole.accept().await {
            held.push(s);
        }
    });
    let spec: PredictiveAutoscalerSpec = serde_json::from_value(serde_json::json!({
        "targets": {"workloads": [{"name": "cart"}]},
        "prometheus": {"url": format!("http://{addr}")}
    }))
    .unwrap();
    // The API server is not asked anything here: a mock that would fail any request.
    let (svc, _handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(svc, "shop");
    let actuator = KubeActuator::new(
        client.clone(),
        "shop".into(),
        Mode::Recommend,
        Reporter {
            controller: "graphscale-operator".into(),
            instance: None,
        },
        ObjectReference::default(),
    );
    let mut cluster = KubeCluster::new(
        client,
        "shop".into(),
        spec.clone(),
        prom_source(&spec, "shop").unwrap(),
        actuator,
    )
    .with_deadline(Duration::from_secs(2));
    cluster.set_targets(vec![common::cart(3)]);
    let start = Instant::now();
    let graph = cluster.topology().await.unwrap();
    let snap = cluster.observe().await.unwrap();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(4), "the round took {took:?}");
    assert!(graph.node("cart").is_some());
    let w = &snap.workloads[0];
    assert_eq!((w.name.as_str(), w.spec_replicas), ("cart", 3));
    assert!(w.pods.is_empty() && w.rps.is_none(), "no metrics: held");
    let why = cluster.metrics_problem.clone().unwrap();
    assert!(
        why.contains("deadline") && why.contains("every workload held"),
        "{why}"
    );
}
