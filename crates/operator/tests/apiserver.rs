//! The operator against a real kube-apiserver (`../shared/k8s`, started by
//! `scripts/test.sh`, which sets `GRAPHSCALE_TEST_KUBECONFIG`): the CRD and RBAC of `deploy/`,
//! the operator under its own ServiceAccount's token, Recommend then Auto, coexistence with an
//! HPA, the finalizer, and leader election between two candidates.
//!
//! Without `GRAPHSCALE_TEST_KUBECONFIG` these tests say so and pass, unless
//! `GRAPHSCALE_REQUIRE_K8S=1` (the test script sets it), when they fail.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use graphscale_operator::controller::{self, Context, ControllerConfig};
use graphscale_operator::leader::{LeaderElector, LeaseConfig};
use graphscale_operator::metrics::Metrics;
use graphscale_operator::PredictiveAutoscaler;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::discovery::{pinned_kind, Scope};
use kube::{Client, Config};
use serde_json::{json, Value};
use tokio::sync::watch;

fn kubeconfig() -> Option<PathBuf> {
    match std::env::var_os("GRAPHSCALE_TEST_KUBECONFIG") {
        Some(p) => Some(p.into()),
        None if std::env::var("GRAPHSCALE_REQUIRE_K8S").as_deref() == Ok("1") => {
            panic!("GRAPHSCALE_REQUIRE_K8S=1 but GRAPHSCALE_TEST_KUBECONFIG is not set")
        }
        None => {
            eprintln!(
                "skipped: no GRAPHSCALE_TEST_KUBECONFIG (scripts/test.sh starts an API server)"
            );
            None
        }
    }
}

async fn admin_config(path: &PathBuf) -> Config {
    let kc = Kubeconfig::read_from(path).expect("kubeconfig");
    Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig config")
}

fn deploy(path: &str) -> String {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/base/");
    std::fs::read_to_string(format!("{p}{path}")).unwrap()
}

/// Server-side applies every document of a YAML file.
async fn apply_yaml(client: &Client, text: &str) {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).unwrap();
    for doc in docs {
        let obj: DynamicObject = serde_json::from_value(doc).unwrap();
        let tm = obj.types.clone().unwrap();
        let (group, version) = tm
            .api_version
            .split_once('/')
            .unwrap_or(("", &tm.api_version));
        let gvk = GroupVersionKind::gvk(group, version, &tm.kind);
        let (ar, caps) = pinned_kind(client, &gvk).await.unwrap();
        let api: Api<DynamicObject> = match (caps.scope, &obj.metadata.namespace) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
            _ => Api::all_with(client.clone(), &ar),
        };
        let name = obj.metadata.name.clone().unwrap();
        api.patch(
            &name,
            &PatchParams::apply("graphscale-test").force(),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {} {name}: {e}", tm.kind));
    }
}

async fn namespace(client: &Client, name: &str) {
    let ns: Api<Namespace> = Api::all(client.clone());
    let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    ns.patch(
        name,
        &PatchParams::apply("graphscale-test"),
        &Patch::Apply(&obj),
    )
    .await
    .unwrap();
}

async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The CRD and the RBAC of deploy/, and a client with the operator's ServiceAccount token.
async fn operator_client(admin: &Client, admin_cfg: &Config) -> Client {
    apply_yaml(admin, &deploy("crd.yaml")).await;
    apply_yaml(admin, &deploy("namespace.yaml")).await;
    apply_yaml(admin, &deploy("rbac.yaml")).await;
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), "graphscale-system");
    let tr = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let token = sas
        .create_token_request("graphscale-operator", &PostParams::default(), &tr)
        .await
        .unwrap()
        .status
        .and_then(|s| s.token)
        .expect("a token");
    let mut cfg = admin_cfg.clone();
    cfg.auth_info = AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    let client = Client::try_from(cfg).unwrap();
    // The CRD is served once it is established.
    let pas: Api<PredictiveAutoscaler> = Api::all(client.clone());
    eventually("the CRD to be served", Duration::from_secs(30), || async {
        pas.list(&ListParams::default()).await.ok()
    })
    .await;
    client
}

async fn replicas(api: &Api<Deployment>, name: &str) -> i32 {
    api.get(name).await.unwrap().spec.unwrap().replicas.unwrap()
}

async fn reasons(client: &Client, ns: &str) -> Vec<String> {
    let ev: Api<Event> = Api::namespaced(client.clone(), ns);
    ev.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect()
}

fn condition(pa: &PredictiveAutoscaler, t: &str) -> Option<(String, String)> {
    pa.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| (c.status.clone(), c.message.clone()))
}

#[tokio::test]
async fn recommend_writes_status_and_events_then_auto_scales_through_the_scale_subresource() {
    let Some(path) = kubeconfig() else { return };
    let admin_cfg = admin_config(&path).await;
    let admin = Client::try_from(admin_cfg.clone()).unwrap();
    // A namespace of this run's own, so a rerun on the same API server starts clean.
    let ns = &format!("it-operator-{}", std::process::id());
    namespace(&admin, ns).await;
    let client = operator_client(&admin, &admin_cfg).await;

    // The operator's account is denied what it does not need.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    match secrets.list(&ListParams::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{s:?}"),
        other => panic!("reading Secrets was not denied: {other:?}"),
    }

    let deps: Api<Deployment> = Api::namespaced(admin.clone(), ns);
    let dep: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "cart", "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "cart"}},
            "template": {"metadata": {"labels": {"app": "cart"}}, "spec": {"containers": [
                {"name": "server", "image": "example.invalid/cart:1",
                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}}
    }))
    .unwrap();
    deps.patch(
        "cart",
        &PatchParams::apply("graphscale-test"),
        &Patch::Apply(&dep),
    )
    .await
    .unwrap();

    let (stop_tx, mut stop_rx) = watch::channel(false);
    let ctx = Arc::new(Context::new(
        client.clone(),
        Arc::new(Metrics::default()),
        ControllerConfig {
            namespace: Some(ns.to_string()),
            ..ControllerConfig::default()
        },
    ));
    let running = tokio::spawn(controller::run(ctx.clone(), async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));

    // Recommend: the minimum of 3 is recommended (Prometheus is not there: metrics missing,
    // the safety layer holds everything else), nothing is written to the Deployment.
    let pas: Api<PredictiveAutoscaler> = Api::namespaced(admin.clone(), ns);
    let pa: PredictiveAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling.graphscale.dev/v1alpha1", "kind": "PredictiveAutoscaler",
        "metadata": {"name": "shop", "namespace": ns},
        "spec": {"targets": {"workloads": [{"name": "cart"}]}, "mode": "Recommend",
            "autoscaler": "hpa", "minReplicas": 3, "maxReplicas": 6, "syncPeriodSeconds": 2,
            "prometheus": {"url": "http://127.0.0.1:9"}}
    }))
    .unwrap();
    pas.create(&PostParams::default(), &pa).await.unwrap();
    let got = eventually("a round in Recommend", Duration::from_secs(60), || async {
        let p = pas.get("shop").await.ok()?;
        (p.status.as_ref()?.rounds >= 1).then_some(p)
    })
    .await;
    let st = got.status.clone().unwrap();
    assert_eq!(st.workloads.len(), 1);
    let w = &st.workloads[0];
    assert_eq!(
        (w.current_replicas, w.desired_replicas, w.applied),
        (1, 3, false),
        "{w:?}"
    );
    assert!(!w.reasons.is_empty());
    assert_eq!(condition(&got, "Ready").unwrap().0, "True");
    assert_eq!(condition(&got, "MetricsAvailable").unwrap().0, "False");
    assert!(got
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == graphscale_operator::crd::FINALIZER)));
    assert_eq!(
        replicas(&deps, "cart").await,
        1,
        "Recommend wrote the Deployment"
    );
    eventually("a Recommended Event", Duration::from_secs(30), || async {
        reasons(&admin, ns)
            .await
            .contains(&"Recommended".to_string())
            .then_some(())
    })
    .await;

    // Auto: spec.replicas through the scale subresource, by the field manager graphscale.
    pas.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"mode": "Auto"}})),
    )
    .await
    .unwrap();
    eventually("3 replicas in Auto", Duration::from_secs(60), || async {
        (replicas(&deps, "cart").await == 3).then_some(())
    })
    .await;
    let d = deps.get("cart").await.unwrap();
    let managers = d.metadata.managed_fields.unwrap_or_default();
    assert!(
        managers
            .iter()
            .any(|m| m.manager.as_deref() == Some("graphscale")
                && m.subresource.as_deref() == Some("scale")),
        "{managers:?}"
    );
    eventually("a Scaled Event", Duration::from_secs(30), || async {
        reasons(&admin, ns)
            .await
            .contains(&"Scaled".to_string())
            .then_some(())
    })
    .await;

    // An HPA on the same Deployment: Conflict, and no more writes.
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(admin.clone(), ns);
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": "cart", "namespace": ns},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "cart"},
            "minReplicas": 1, "maxReplicas": 5}
    }))
    .unwrap();
    hpas.create(&PostParams::default(), &hpa).await.unwrap();
    pas.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"minReplicas": 4}})),
    )
    .await
    .unwrap();
    let got = eventually(
        "the Conflict condition",
        Duration::from_secs(60),
        || async {
            let p = pas.get("shop").await.ok()?;
            (condition(&p, "Conflict")?.0 == "True").then_some(p)
        },
    )
    .await;
    assert!(condition(&got, "Conflict")
        .unwrap()
        .1
        .contains("HorizontalPodAutoscaler/cart"));
    assert_eq!(got.status.unwrap().workloads[0].desired_replicas, 4);
    assert_eq!(
        replicas(&deps, "cart").await,
        3,
        "the operator fought the HPA"
    );

    // An invalid spec the API server cannot see (an unknown autoscaler): Degraded names it.
    pas.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"autoscaler": "hpa2"}})),
    )
    .await
    .unwrap();
    let got = eventually(
        "the Degraded condition",
        Duration::from_secs(60),
        || async {
            let p = pas.get("shop").await.ok()?;
            let (status, msg) = condition(&p, "Degraded")?;
            (status == "True" && msg.starts_with("spec.autoscaler")).then_some(p)
        },
    )
    .await;
    let msg = condition(&got, "Degraded").unwrap().1;
    assert!(msg.starts_with("spec.autoscaler: "), "{msg}");

    // Deleting it: the finalizer runs and the object goes.
    pas.delete("shop", &DeleteParams::default()).await.unwrap();
    eventually(
        "the PredictiveAutoscaler to go",
        Duration::from_secs(30),
        || async { pas.get_opt("shop").await.unwrap().is_none().then_some(()) },
    )
    .await;
    assert_eq!(ctx.running().await, 0);
    stop_tx.send_replace(true);
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("graceful shutdown")
        .unwrap();
}

#[tokio::test]
async fn the_other_candidate_takes_over_within_the_lease_duration() {
    let Some(path) = kubeconfig() else { return };
    let admin = Client::try_from(admin_config(&path).await).unwrap();
    let ns = &format!("it-lease-{}", std::process::id());
    namespace(&admin, ns).await;
    let cfg = |id: &str| {
        let mut c = LeaseConfig::new(ns.as_str(), id);
        c.name = "it-lease".into();
        c.duration = Duration::from_secs(4);
        c.renew_every = Duration::from_secs(1);
        c
    };
    let start = |id: &str| {
        let (tx, rx) = watch::channel(false);
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(LeaderElector::new(admin.clone(), cfg(id)).run(tx, stop_rx));
        (rx, stop_tx, task)
    };
    let (mut a, _a_stop, a_task) = start("a");
    tokio::time::timeout(Duration::from_secs(10), a.wait_for(|l| *l))
        .await
        .expect("a leads")
        .unwrap();
    let (mut b, b_stop, b_task) = start("b");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!*b.borrow(), "two leaders");
    // a dies without releasing the Lease: b leads within the lease duration (+ one retry).
    a_task.abort();
    let died = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), b.wait_for(|l| *l))
        .await
        .expect("b takes over")
        .unwrap();
    let took = died.elapsed();
    assert!(
        took <= Duration::from_secs(4 + 1 + 1),
        "took {took:?}, lease duration 4 s"
    );
    // b stops gracefully and releases: c leads at its first attempt.
    b_stop.send_replace(true);
    b_task.await.unwrap();
    let (mut c, c_stop, c_task) = start("c");
    tokio::time::timeout(Duration::from_secs(3), c.wait_for(|l| *l))
        .await
        .expect("c leads at once after a release")
        .unwrap();
    c_stop.send_replace(true);
    c_task.await.unwrap();
}
