//! The Kubernetes actuator against a scripted mock API server (kube-rs controller-rs
//! `fixtures.rs` style): every step asserts the method, the path and query, the content type,
//! the field manager and the body, then answers.

mod common;

use std::time::Duration;

use graphscale_core::{AsyncActuator, Reason, ScalingDecision};
use graphscale_operator::actuator::{KubeActuator, Outcome, Retry};
use graphscale_operator::crd::Mode;
use graphscale_operator::target::Target;
use http::{Request, Response};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::client::Body;
use kube::runtime::events::Reporter;
use kube::Client;
use serde_json::{json, Value};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// One expected request and the answer.
struct Step {
    method: &'static str,
    path: &'static str,
    /// Query parameters that must be present (`fieldManager=graphscale`).
    query: &'static [&'static str],
    content_type: Option<&'static str>,
    /// Checks the JSON body.
    body: fn(&Value),
    status: u16,
    answer: Value,
}

async fn serve(mut handle: Handle, steps: Vec<Step>) {
    for (i, s) in steps.into_iter().enumerate() {
        let (req, send) = handle
            .next_request()
            .await
            .unwrap_or_else(|| panic!("step {i}: no request came"));
        assert_eq!(req.method().as_str(), s.method, "step {i}: method");
        assert_eq!(req.uri().path(), s.path, "step {i}: path");
        let query = req.uri().query().unwrap_or("");
        for q in s.query {
            assert!(
                query.split('&').any(|p| p == *q),
                "step {i}: query {query} lacks {q}"
            );
        }
        let ct = req
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(ct.as_deref(), s.content_type, "step {i}: content type");
        let bytes = req.into_body().collect().await.unwrap().to_bytes();
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (s.body)(&body);
        send.send_response(
            Response::builder()
                .status(s.status)
                .body(Body::from(serde_json::to_vec(&s.answer).unwrap()))
                .unwrap(),
        );
    }
}

fn scale(replicas: u32) -> Value {
    json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": "cart", "namespace": "shop"},
        "spec": {"replicas": replicas}, "status": {"replicas": replicas}})
}

fn event_answer() -> Value {
    json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "cart.1", "namespace": "shop"}, "eventTime": "2026-12-01T00:00:00.000000Z"})
}

fn conflict() -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
        "reason": "Conflict", "message": "the object has been modified", "code": 409})
}

fn actuator(mode: Mode) -> (KubeActuator, Handle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(svc, "shop");
    let recorder = Reporter {
        controller: "graphscale-operator".into(),
        instance: Some("test".into()),
    };
    let owner = ObjectReference {
        api_version: Some("autoscaling.graphscale.dev/v1alpha1".into()),
        kind: Some("PredictiveAutoscaler".into()),
        name: Some("shop".into()),
        namespace: Some("shop".into()),
        ..Default::default()
    };
    let mut a = KubeActuator::new(client, "shop".into(), mode, recorder, owner).with_retry(Retry {
        attempts: 3,
        first: Duration::from_millis(1),
    });
    a.set_targets(&[target()]);
    (a, handle)
}

fn target() -> Target {
    common::cart(2)
}

fn decision(replicas: u32) -> ScalingDecision {
    ScalingDecision {
        workload: "cart".into(),
        replicas,
        reasons: vec![Reason::new("forecast.demand", "trend: observed 40 rps")],
        resources: None,
    }
}

fn scale_step(status: u16, answer: Value) -> Step {
    Step {
        method: "PATCH",
        path: "/apis/apps/v1/namespaces/shop/deployments/cart/scale",
        query: &["fieldManager=graphscale"],
        content_type: Some("application/merge-patch+json"),
        body: scale_body,
        status,
        answer,
    }
}

fn event_step(body: fn(&Value)) -> Step {
    Step {
        method: "POST",
        path: "/apis/events.k8s.io/v1/namespaces/shop/events",
        query: &[],
        content_type: Some("application/json"),
        body,
        status: 201,
        answer: event_answer(),
    }
}

fn scale_body(b: &Value) {
    assert_eq!(b, &json!({"spec": {"replicas": 4}}));
}

fn scaled_event(b: &Value) {
    assert_eq!(b["reason"], "Scaled");
    assert_eq!(b["regarding"]["kind"], "Deployment");
    assert_eq!(b["regarding"]["name"], "cart");
    assert_eq!(b["related"]["kind"], "PredictiveAutoscaler");
    let note = b["note"].as_str().unwrap();
    assert!(
        note.starts_with("replicas 2 -> 4: forecast.demand: trend"),
        "{note}"
    );
}

async fn apply(a: &mut KubeActuator, d: &[ScalingDecision]) {
    tokio::time::timeout(Duration::from_secs(10), a.apply_async(d))
        .await
        .expect("the actuator waited for an answer no step gives")
        .unwrap();
}

#[tokio::test]
async fn auto_patches_the_scale_subresource_then_publishes_an_event() {
    let (mut a, handle) = actuator(Mode::Auto);
    let script = tokio::spawn(serve(
        handle,
        vec![scale_step(200, scale(4)), event_step(scaled_event)],
    ));
    apply(&mut a, &[decision(4)]).await;
    script.await.unwrap();
    assert_eq!(a.outcomes()["cart"], Outcome::Applied);
}

#[tokio::test]
async fn a_conflict_a_throttle_and_server_errors_are_retried_and_the_scale_written_once() {
    let (mut a, handle) = actuator(Mode::Auto);
    let status = |code: u16, reason: &str| {
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
            "reason": reason, "message": reason, "code": code})
    };
    let script = tokio::spawn(serve(
        handle,
        vec![
            scale_step(409, conflict()),
            scale_step(200, scale(4)),
            event_step(scaled_event),
        ],
    ));
    apply(&mut a, &[decision(4)]).await;
    script.await.unwrap();
    // 429 and 5xx: the same; two failures, then the write; the Event once.
    let (mut a, handle) = actuator(Mode::Auto);
    let script = tokio::spawn(serve(
        handle,
        vec![
            scale_step(429, status(429, "TooManyRequests")),
            scale_step(503, status(503, "ServiceUnavailable")),
            scale_step(200, scale(4)),
            event_step(scaled_event),
        ],
    ));
    apply(&mut a, &[decision(4)]).await;
    script.await.unwrap();
    // Three failures in a row (the attempts of this actuator): the round fails, naming the
    // request, and nothing was written.
    let (mut a, handle) = actuator(Mode::Auto);
    let script = tokio::spawn(serve(
        handle,
        vec![
            scale_step(500, status(500, "InternalError")),
            scale_step(500, status(500, "InternalError")),
            scale_step(500, status(500, "InternalError")),
        ],
    ));
    let e = tokio::time::timeout(Duration::from_secs(10), a.apply_async(&[decision(4)]))
        .await
        .unwrap()
        .unwrap_err();
    script.await.unwrap();
    assert_eq!(e.status_code(), Some(500));
}

#[tokio::test]
async fn recommend_publishes_an_event_and_writes_no_workload() {
    let (mut a, handle) = actuator(Mode::Recommend);
    let script = tokio::spawn(serve(
        handle,
        vec![event_step(|b| {
            assert_eq!(b["reason"], "Recommended");
            let note = b["note"].as_str().unwrap();
            assert!(
                note.starts_with("would set replicas 2 -> 4 (mode Recommend)"),
                "{note}"
            );
        })],
    ));
    apply(&mut a, &[decision(4)]).await;
    // The same recommendation again: no second Event (and no request at all).
    apply(&mut a, &[decision(4)]).await;
    script.await.unwrap();
    assert_eq!(a.outcomes()["cart"], Outcome::Recommended);
}

#[tokio::test]
async fn a_conflicting_or_switched_off_workload_is_left_alone() {
    let (mut a, handle) = actuator(Mode::Auto);
    a.set_targets(&[Target {
        conflict: Some("HorizontalPodAutoscaler/cart".into()),
        ..target()
    }]);
    let script = tokio::spawn(serve(
        handle,
        vec![event_step(|b| {
            assert_eq!(b["reason"], "Conflict");
            assert_eq!(b["type"], "Warning");
            assert!(b["note"]
                .as_str()
                .unwrap()
                .contains("HorizontalPodAutoscaler/cart"));
        })],
    ));
    apply(&mut a, &[decision(4)]).await;
    script.await.unwrap();
    assert_eq!(
        a.outcomes()["cart"],
        Outcome::Conflict("HorizontalPodAutoscaler/cart".into())
    );
    // Unchanged replicas: no request.
    let (mut b, _handle) = actuator(Mode::Auto);
    apply(&mut b, &[decision(2)]).await;
    assert_eq!(b.outcomes()["cart"], Outcome::Unchanged);
}

#[tokio::test]
async fn a_forbidden_write_is_not_retried_and_names_the_request() {
    let (mut a, handle) = actuator(Mode::Auto);
    let script = tokio::spawn(serve(
        handle,
        vec![Step {
            method: "PATCH",
            path: "/apis/apps/v1/namespaces/shop/deployments/cart/scale",
            query: &["fieldManager=graphscale"],
            content_type: Some("application/merge-patch+json"),
            body: scale_body,
            status: 403,
            answer: json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
                "reason": "Forbidden", "message": "deployments.apps \"cart\" is forbidden", "code": 403}),
        }],
    ));
    let e = tokio::time::timeout(Duration::from_secs(10), a.apply_async(&[decision(4)]))
        .await
        .unwrap()
        .unwrap_err();
    script.await.unwrap();
    assert_eq!(e.status_code(), Some(403));
    assert!(
        e.to_string()
            .starts_with("patch scale of Deployment shop/cart to 4: "),
        "{e}"
    );
}

fn deployment(name: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "shop", "labels": {"app": "shop"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [
                {"name": "server", "image": "x", "resources": {"requests": {"cpu": "250m"}}}]}}}})
}

fn list(kind: &str, items: Vec<Value>, next: Option<&str>) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "items": items,
        "metadata": {"resourceVersion": "1", "continue": next.unwrap_or("")}})
}

/// Targets by selector are listed in pages, each page reduced to its targets before the next
/// is read (the continue token passed on), so memory does not grow with the whole list; then
/// who else scales them.
#[tokio::test]
async fn targets_by_selector_are_listed_in_pages() {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(svc, "shop");
    let spec: graphscale_operator::crd::PredictiveAutoscalerSpec =
        serde_json::from_value(json!({"targets": {"selector": {"matchLabels": {"app": "shop"}}}}))
            .unwrap();
    let none = |_: &Value| {};
    let get = |path, query, answer| Step {
        method: "GET",
        path,
        query,
        content_type: None,
        body: none,
        status: 200,
        answer,
    };
    let steps = vec![
        get(
            "/apis/apps/v1/namespaces/shop/deployments",
            &["labelSelector=app%3Dshop", "limit=250"],
            list("DeploymentList", vec![deployment("cart")], Some("page2")),
        ),
        get(
            "/apis/apps/v1/namespaces/shop/deployments",
            &["labelSelector=app%3Dshop", "limit=250", "continue=page2"],
            list("DeploymentList", vec![deployment("api")], None),
        ),
        get(
            "/apis/apps/v1/namespaces/shop/statefulsets",
            &["labelSelector=app%3Dshop", "limit=250"],
            list("StatefulSetList", vec![], None),
        ),
        get(
            "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers",
            &[],
            list("HorizontalPodAutoscalerList", vec![], None),
        ),
        Step {
            status: 404,
            ..get(
                "/apis/keda.sh/v1alpha1/namespaces/shop/scaledobjects",
                &[],
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "reason": "NotFound", "message": "not found", "code": 404}),
            )
        },
    ];
    let server = tokio::spawn(serve(handle, steps));
    let targets = graphscale_operator::target::resolve(&client, "shop", &spec)
        .await
        .unwrap();
    server.await.unwrap();
    let names: Vec<_> = targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["api", "cart"]);
    assert!(targets
        .iter()
        .all(|t| t.cpu_request_millicores == Some(250.0) && t.replicas == 2));
}

fn pod(name: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "shop", "labels": {"app": "cart"}},
        "spec": {"containers": [{"name": "server", "image": "x",
            "resources": {"requests": {"cpu": "200m", "memory": "64Mi"},
                          "limits": {"cpu": "500m", "memory": "128Mi"}}}]}})
}

fn cpu_resize_body(b: &Value) {
    assert_eq!(
        b,
        &json!({"spec": {"containers": [
            {"name": "server", "resources": {"requests": {"cpu": "63m"}}}]}})
    );
}

fn cpu_resized_event(b: &Value) {
    assert_eq!(b["reason"], "Scaled");
    let note = b["note"].as_str().unwrap();
    assert!(
        note.starts_with("CPU request 63m (2 pods resized in place): vertical.cpu_request: "),
        "{note}"
    );
}

fn cpu_decision() -> ScalingDecision {
    ScalingDecision {
        workload: "cart".into(),
        replicas: 2,
        reasons: vec![Reason::new(
            "vertical.cpu_request",
            "CPU request 200 m -> 63 m (down)",
        )],
        resources: Some(graphscale_core::PodResources {
            requests: graphscale_core::Resources::new(63.0, 64.0),
            limits: graphscale_core::Resources::new(500.0, 128.0),
        }),
    }
}

/// `vertical: cpu` resizes the CPU request of every running pod through its `resize`
/// subresource (a strategic merge patch of the request alone: limits, memory and the pod
/// template are not written); without it the same decision writes nothing.
#[tokio::test]
async fn a_cpu_request_sized_with_the_plan_is_resized_in_place_on_the_pods_only() {
    let (a, handle) = actuator(Mode::Auto);
    let mut a = a.with_vertical(graphscale_operator::crd::Vertical::Cpu);
    let resize = |path| Step {
        method: "PATCH",
        path,
        query: &["fieldManager=graphscale"],
        content_type: Some("application/strategic-merge-patch+json"),
        body: cpu_resize_body,
        status: 200,
        answer: pod("cart-a"),
    };
    let steps = vec![
        Step {
            method: "GET",
            path: "/api/v1/namespaces/shop/pods",
            query: &["labelSelector=app%3Dcart"],
            content_type: None,
            body: |_| {},
            status: 200,
            answer: list("PodList", vec![pod("cart-a"), pod("cart-b")], None),
        },
        resize("/api/v1/namespaces/shop/pods/cart-a/resize"),
        resize("/api/v1/namespaces/shop/pods/cart-b/resize"),
        event_step(cpu_resized_event),
    ];
    let script = tokio::spawn(serve(handle, steps));
    apply(&mut a, &[cpu_decision()]).await;
    script.await.unwrap();
    assert_eq!(a.outcomes()["cart"], Outcome::Applied);
    // `vertical: memory` does not apply a CPU request; nothing changes, nothing is written.
    let (a, handle) = actuator(Mode::Auto);
    let mut a = a.with_vertical(graphscale_operator::crd::Vertical::Memory);
    let script = tokio::spawn(serve(handle, vec![]));
    apply(&mut a, &[cpu_decision()]).await;
    script.await.unwrap();
    assert_eq!(a.outcomes()["cart"], Outcome::Unchanged);
}
