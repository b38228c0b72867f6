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

/// A one-container Deployment `cart` with one replica in `ns`.
async fn cart(admin: &Client, ns: &str) -> Api<Deployment> {
    let deps: Api<Deployment> = Api::namespaced(admin.clone(), ns);
    let dep: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "cart", "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "cart"}},
            "template": {"metadata": {"labels": {"app": "cart"}}, "spec": {"containers": [
                {"name": "server", "image": "example.invalid/cart:1"}]}}}
    }))
    .unwrap();
    let pp = PatchParams::apply("graphscale-test");
    deps.patch("cart", &pp, &Patch::Apply(&dep)).await.unwrap();
    deps
}

/// The controller on `ns` with `client`, until the sender says stop.
fn start(
    client: Client,
    metrics: Arc<Metrics>,
    ns: &str,
    error_backoff: Duration,
) -> (
    watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
    Arc<Context>,
) {
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let ctx = Arc::new(Context::new(
        client,
        metrics,
        ControllerConfig {
            namespace: Some(ns.to_string()),
            error_backoff,
            ..ControllerConfig::default()
        },
    ));
    let running = tokio::spawn(controller::run(ctx.clone(), async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    (stop_tx, running, ctx)
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

    let models = tempfile::tempdir().unwrap();
    std::fs::write(models.path().join("junk.safetensors"), b"not a model").unwrap();
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let metrics = Arc::new(Metrics::default());
    let ctx = Arc::new(Context::new(
        client.clone(),
        metrics.clone(),
        ControllerConfig {
            namespace: Some(ns.to_string()),
            models_dir: models.path().to_path_buf(),
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
        (p.status.as_ref()?.rounds >= 2).then_some(p)
    })
    .await;
    let st = got.status.clone().unwrap();
    let rounds_in_recommend = st.rounds;
    assert_eq!(st.workloads.len(), 1);
    let w = &st.workloads[0];
    assert_eq!(
        (w.current_replicas, w.desired_replicas, w.applied),
        (1, 3, false),
        "{w:?}"
    );
    assert!(!w.reasons.is_empty());
    // The plan, the observed replicas and the round's time, per workload, on /metrics.
    let text = metrics.encode();
    let series = |name: &str| {
        let prefix = format!("{name}{{namespace=\"{ns}\",workload=\"cart\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.parse::<f64>().ok())
    };
    assert_eq!(
        series("graphscale_operator_planned_replicas"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        series("graphscale_operator_current_replicas"),
        Some(1.0),
        "{text}"
    );
    let decided = series("graphscale_operator_last_decision_timestamp_seconds").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - 120.0..=now + 1.0).contains(&decided),
        "{decided} vs {now}"
    );
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

    // KEDA's external scaler, from the statuses under the operator's own token: the round held
    // (no Prometheus), so the plan is refused as UNAVAILABLE with the reason, never a number
    // and never "inactive"; KEDA's fallback would act.
    let board = Arc::new(graphscale_keda::PlanBoard::on_wall_clock());
    let (keda_stop, keda_rx) = watch::channel(false);
    let (mut a, mut b) = (keda_rx.clone(), keda_rx);
    let mirror = tokio::spawn(graphscale_operator::keda::mirror(
        client.clone(),
        Some(ns.to_string()),
        board.clone(),
        async move {
            let _ = a.wait_for(|s| *s).await;
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let keda_addr = listener.local_addr().unwrap();
    let scaler = tokio::spawn(graphscale_keda::serve(
        listener,
        board.clone(),
        graphscale_keda::GrpcLimits::default(),
        async move {
            let _ = b.wait_for(|s| *s).await;
        },
    ));
    let channel = tonic::transport::Channel::from_shared(format!("http://{keda_addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut keda =
        graphscale_keda::generated::external_scaler_client::ExternalScalerClient::new(channel);
    let so = graphscale_keda::generated::ScaledObjectRef {
        name: "cart".into(),
        namespace: ns.to_string(),
        scaler_metadata: [("workload".to_string(), "cart".to_string())].into(),
    };
    let ask = || graphscale_keda::generated::GetMetricsRequest {
        scaled_object_ref: Some(so.clone()),
        metric_name: graphscale_keda::METRIC_NAME.into(),
    };
    let refused = eventually("the mirrored plan", Duration::from_secs(30), || {
        let mut k = keda.clone();
        let req = ask();
        async move {
            let e = k.get_metrics(req).await.err()?;
            (e.code() == tonic::Code::Unavailable).then_some(e)
        }
    })
    .await;
    assert!(
        refused.message().contains("no forecast for")
            && refused.message().contains("Degraded: held"),
        "{refused:?}"
    );
    assert_eq!(
        keda.is_active(so.clone()).await.unwrap_err().code(),
        tonic::Code::Unavailable
    );
    assert_eq!(board.len(), 1);
    let plan = board.lookup(ns, "cart", None).err().unwrap();
    assert!(plan.to_string().contains("held"), "{plan}");

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
    // The mode changed, not the loop: its rounds (and history) go on.
    let rounds = pas.get("shop").await.unwrap().status.unwrap().rounds;
    assert!(
        rounds > rounds_in_recommend,
        "{rounds} rounds after {rounds_in_recommend}: the loop restarted"
    );
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

    // A checkpoint for an autoscaler that reads none, or outside the models folder: the API
    // server refuses it.
    for (spec, why) in [
        (
            json!({"autoscaler": "graph-trend", "checkpoint": "m.safetensors"}),
            "checkpoint needs a graph-model autoscaler",
        ),
        (
            json!({"autoscaler": "graph-mlp", "checkpoint": "../etc/m.safetensors"}),
            "checkpoint must be a relative path",
        ),
    ] {
        match pas
            .patch(
                "shop",
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": spec })),
            )
            .await
        {
            Err(kube::Error::Api(s)) => {
                assert_eq!(s.code, 422, "{s:?}");
                assert!(s.message.contains(why), "{}", s.message);
            }
            other => panic!("{spec} was accepted: {other:?}"),
        }
    }
    // A checkpoint that is not a model: Degraded names the field, the file and why.
    pas.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"autoscaler": "graph-mlp", "checkpoint": "junk.safetensors"}}),
        ),
    )
    .await
    .unwrap();
    let got = eventually(
        "Degraded by the checkpoint",
        Duration::from_secs(60),
        || async {
            let p = pas.get("shop").await.ok()?;
            let (status, msg) = condition(&p, "Degraded")?;
            (status == "True" && msg.starts_with("spec.checkpoint")).then_some(p)
        },
    )
    .await;
    let msg = condition(&got, "Degraded").unwrap().1;
    assert!(
        msg.contains("junk.safetensors") && msg.contains("not a safetensors file"),
        "{msg}"
    );

    // An invalid spec the API server cannot see (an unknown autoscaler): Degraded names it.
    pas.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"autoscaler": "hpa2", "checkpoint": null}})),
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

    // A bound the CRD's CEL rules check: the API server refuses it and names the field.
    let e = pas
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"nodeGiBPerCore": 0.0}})),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("nodeGiBPerCore must be in (0, 1024]"), "{e}");
    pas.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"nodeGiBPerCore": 4.0}})),
    )
    .await
    .unwrap();

    // Deleting it: the finalizer runs and the object goes.
    pas.delete("shop", &DeleteParams::default()).await.unwrap();
    eventually(
        "the PredictiveAutoscaler to go",
        Duration::from_secs(30),
        || async { pas.get_opt("shop").await.unwrap().is_none().then_some(()) },
    )
    .await;
    assert_eq!(ctx.running().await, 0);
    // Its plans are gone from the scaler too.
    let gone = eventually("the plan to go", Duration::from_secs(30), || {
        let mut k = keda.clone();
        let req = ask();
        async move {
            let e = k.get_metrics(req).await.err()?;
            (e.code() == tonic::Code::NotFound).then_some(e)
        }
    })
    .await;
    assert!(gone.message().contains("no plan for"), "{gone:?}");
    keda_stop.send_replace(true);
    tokio::time::timeout(Duration::from_secs(30), async {
        mirror.await.unwrap();
        scaler.await.unwrap();
    })
    .await
    .expect("the mirror and the scaler stop");
    let text = metrics.encode();
    assert!(
        !text.contains("workload=\"cart\""),
        "a deleted PredictiveAutoscaler's series stayed:\n{text}"
    );
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

/// The Deployment `cart` (container `server`, 100m / 64Mi requested, 200m / 128Mi limits) with
/// its 2 pods made by the controller-manager.
async fn cart_with_two_pods(
    admin: &Client,
    ns: &str,
) -> (Api<Deployment>, Api<k8s_openapi::api::core::v1::Pod>) {
    let deps: Api<Deployment> = Api::namespaced(admin.clone(), ns);
    let dep: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "cart", "namespace": ns},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "cart"}},
            "template": {"metadata": {"labels": {"app": "cart"}}, "spec": {"containers": [
                {"name": "server", "image": "example.invalid/cart:1",
                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                               "limits": {"cpu": "200m", "memory": "128Mi"}}}]}}}
    }))
    .unwrap();
    deps.patch(
        "cart",
        &PatchParams::apply("graphscale-test"),
        &Patch::Apply(&dep),
    )
    .await
    .unwrap();
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(admin.clone(), ns);
    eventually("2 pods", Duration::from_secs(60), || async {
        let n = pods
            .list(&ListParams::default().labels("app=cart"))
            .await
            .ok()?
            .items
            .len();
        (n == 2).then_some(())
    })
    .await;
    (deps, pods)
}

/// An actuator in mode Auto with `vertical` for a resource that targets `cart`.
async fn vertical_actuator(
    client: &Client,
    ns: &str,
    vertical: &str,
) -> graphscale_operator::actuator::KubeActuator {
    let spec: graphscale_operator::PredictiveAutoscalerSpec = serde_json::from_value(json!({
        "targets": {"workloads": [{"name": "cart"}]}, "mode": "Auto", "vertical": vertical
    }))
    .unwrap();
    let targets = graphscale_operator::target::resolve(client, ns, &spec)
        .await
        .unwrap();
    assert_eq!(targets[0].container.as_deref(), Some("server"));
    assert_eq!(targets[0].cpu_request_millicores, Some(100.0));
    let recorder = kube::runtime::events::Reporter {
        controller: "graphscale-operator".into(),
        instance: None,
    };
    let mut act = graphscale_operator::actuator::KubeActuator::new(
        client.clone(),
        ns.to_string(),
        graphscale_operator::crd::Mode::Auto,
        recorder,
        Default::default(),
    )
    .with_vertical(spec.vertical);
    act.set_targets(&targets);
    act
}

/// The first container's resources: the template's, and each running pod's.
async fn cart_resources(
    deps: &Api<Deployment>,
    pods: &Api<k8s_openapi::api::core::v1::Pod>,
) -> (
    k8s_openapi::api::core::v1::ResourceRequirements,
    Vec<k8s_openapi::api::core::v1::ResourceRequirements>,
) {
    let tpl = deps
        .get("cart")
        .await
        .unwrap()
        .spec
        .unwrap()
        .template
        .spec
        .unwrap();
    let template = tpl.containers[0].resources.clone().unwrap();
    let list = pods
        .list(&ListParams::default().labels("app=cart"))
        .await
        .unwrap();
    let live = list
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            p.spec.as_ref().unwrap().containers[0]
                .resources
                .clone()
                .unwrap()
        })
        .collect();
    (template, live)
}

/// `cart` with 2 pods in a fresh namespace, an actuator with `vertical`, and `d` applied; the
/// admin client, the namespace and the resources after it.
async fn apply_vertical(
    path: &PathBuf,
    prefix: &str,
    vertical: &str,
    d: graphscale_core::ScalingDecision,
) -> (
    Client,
    String,
    k8s_openapi::api::core::v1::ResourceRequirements,
    Vec<k8s_openapi::api::core::v1::ResourceRequirements>,
) {
    let admin_cfg = admin_config(path).await;
    let admin = Client::try_from(admin_cfg.clone()).unwrap();
    let ns = format!("{prefix}-{}", std::process::id());
    namespace(&admin, &ns).await;
    let client = operator_client(&admin, &admin_cfg).await;
    let (deps, pods) = cart_with_two_pods(&admin, &ns).await;
    let mut act = vertical_actuator(&client, &ns, vertical).await;
    use graphscale_core::AsyncActuator;
    act.apply_async(&[d]).await.unwrap();
    let (template, live) = cart_resources(&deps, &pods).await;
    (admin, ns, template, live)
}

#[tokio::test]
async fn memory_is_applied_to_the_template_and_resized_in_place_on_running_pods() {
    let Some(path) = kubeconfig() else { return };
    let d = graphscale_core::ScalingDecision {
        workload: "cart".into(),
        replicas: 2,
        reasons: vec![graphscale_core::Reason::new(
            "vertical.resize",
            "p95 usage 70 MiB",
        )],
        resources: Some(graphscale_core::PodResources {
            requests: graphscale_core::Resources::new(100.0, 96.0),
            limits: graphscale_core::Resources::new(200.0, 192.0),
        }),
    };
    let (admin, ns, r, live) = apply_vertical(&path, "it-vertical", "memory", d).await;
    assert_eq!(r.requests.unwrap()["memory"].0, "96Mi");
    assert_eq!(r.limits.unwrap()["memory"].0, "192Mi");
    // The running pods were resized in place (their spec), not recreated.
    let resized = live
        .iter()
        .filter(|r| r.requests.as_ref().map(|q| q["memory"].0.clone()) == Some("96Mi".into()))
        .count();
    assert!(resized >= 2, "{resized} pods resized: {live:?}");
    assert!(reasons(&admin, &ns).await.contains(&"Scaled".to_string()));
}

#[tokio::test]
async fn a_cpu_request_is_resized_in_place_on_running_pods_and_the_template_kept() {
    let Some(path) = kubeconfig() else { return };
    let d = graphscale_core::ScalingDecision {
        workload: "cart".into(),
        replicas: 2,
        reasons: vec![graphscale_core::Reason::new(
            "vertical.cpu_request",
            "CPU request 100 m -> 40 m (down)",
        )],
        resources: Some(graphscale_core::PodResources {
            requests: graphscale_core::Resources::new(40.0, 64.0),
            limits: graphscale_core::Resources::new(200.0, 128.0),
        }),
    };
    let (admin, ns, r, live) = apply_vertical(&path, "it-cpu", "cpu", d).await;
    // The template keeps its request (the reference the replicas are planned on).
    assert_eq!(r.requests.unwrap()["cpu"].0, "100m");
    // The running pods have the new CPU request, their limits and memory as they were.
    assert_eq!(live.len(), 2, "{live:?}");
    for r in live {
        let (req, lim) = (r.requests.unwrap(), r.limits.unwrap());
        assert_eq!(req["cpu"].0, "40m");
        assert_eq!(req["memory"].0, "64Mi");
        assert_eq!(lim["cpu"].0, "200m");
        assert_eq!(lim["memory"].0, "128Mi");
    }
    assert!(reasons(&admin, &ns).await.contains(&"Scaled".to_string()));
}

/// A TCP proxy on loopback in front of the API server that can be taken down: every open
/// connection dropped and new ones refused while it is down.
struct Proxy {
    addr: std::net::SocketAddr,
    down: Arc<std::sync::atomic::AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Proxy {
    async fn start(upstream: std::net::SocketAddr) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (cut, cut_rx) = watch::channel(0u64);
        let d = down.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if d.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cut_rx = cut_rx.clone();
                // Only cuts after this connection was opened.
                cut_rx.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut out) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut out) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        Proxy { addr, down, cut }
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
        if down {
            self.cut.send_modify(|n| *n += 1);
        }
    }
}

#[tokio::test]
async fn the_api_server_down_for_a_minute_loses_no_decision_and_applies_none_twice() {
    let Some(path) = kubeconfig() else { return };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("GRAPHSCALE_LOG"))
        .with_test_writer()
        .try_init();
    let outage: u64 = std::env::var("OUTAGE_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let admin_cfg = admin_config(&path).await;
    let admin = Client::try_from(admin_cfg.clone()).unwrap();
    let ns = &format!("it-faults-{}", std::process::id());
    namespace(&admin, ns).await;
    let direct = operator_client(&admin, &admin_cfg).await;
    drop(direct);
    // The operator reaches the API server through the proxy, with the admin's credentials.
    let url: http::Uri = admin_cfg.cluster_url.clone();
    let upstream: std::net::SocketAddr =
        format!("{}:{}", url.host().unwrap(), url.port_u16().unwrap())
            .parse()
            .unwrap();
    let proxy = Proxy::start(upstream).await;
    let mut cfg = admin_cfg.clone();
    cfg.cluster_url = format!("https://{}", proxy.addr).parse().unwrap();
    let client = Client::try_from(cfg).unwrap();

    let deps = cart(&admin, ns).await;
    let (stop_tx, running, _ctx) = start(
        client,
        Arc::new(Metrics::default()),
        ns,
        Duration::from_secs(1),
    );
    let pas: Api<PredictiveAutoscaler> = Api::namespaced(admin.clone(), ns);
    let pa: PredictiveAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling.graphscale.dev/v1alpha1", "kind": "PredictiveAutoscaler",
        "metadata": {"name": "shop", "namespace": ns},
        "spec": {"targets": {"workloads": [{"name": "cart"}]}, "mode": "Auto",
            "autoscaler": "hpa", "minReplicas": 2, "maxReplicas": 6, "syncPeriodSeconds": 2,
            "prometheus": {"url": "http://127.0.0.1:9"}}
    }))
    .unwrap();
    pas.create(&PostParams::default(), &pa).await.unwrap();
    eventually("2 replicas", Duration::from_secs(60), || async {
        (replicas(&deps, "cart").await == 2).then_some(())
    })
    .await;

    // Down for a minute; meanwhile the spec asks for 3.
    proxy.set_down(true);
    pas.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"minReplicas": 3}})),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(outage)).await;
    assert_eq!(
        replicas(&deps, "cart").await,
        2,
        "a write got through a dead proxy"
    );
    proxy.set_down(false);
    let back = Instant::now();
    eventually(
        "3 replicas after the outage",
        Duration::from_secs(120),
        || async { (replicas(&deps, "cart").await == 3).then_some(()) },
    )
    .await;
    eprintln!(
        "applied {:?} after the API server came back",
        back.elapsed()
    );
    // Each change was written once: one Scaled Event per change, none repeated as a series.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let ev: Api<Event> = Api::namespaced(admin.clone(), ns);
    let scaled: Vec<Event> = ev
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Scaled"))
        .collect();
    let notes: Vec<String> = scaled.iter().filter_map(|e| e.note.clone()).collect();
    assert_eq!(scaled.len(), 2, "{notes:?}");
    assert!(
        notes.iter().any(|n| n.starts_with("replicas 1 -> 2")),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.starts_with("replicas 2 -> 3")),
        "{notes:?}"
    );
    assert!(
        scaled.iter().all(|e| e.series.is_none()),
        "an Event repeated: {notes:?}"
    );
    stop_tx.send_replace(true);
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("graceful shutdown")
        .unwrap();
}

#[tokio::test]
async fn a_keda_scaled_object_is_a_conflict_and_a_token_without_rights_a_clear_condition() {
    let Some(path) = kubeconfig() else { return };
    let admin_cfg = admin_config(&path).await;
    let admin = Client::try_from(admin_cfg.clone()).unwrap();
    let ns = &format!("it-rights-{}", std::process::id());
    namespace(&admin, ns).await;
    let _ = operator_client(&admin, &admin_cfg).await;
    // KEDA's ScaledObject, as far as the operator reads it.
    apply_yaml(
        &admin,
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: scaledobjects.keda.sh}
spec:
  group: keda.sh
  names: {kind: ScaledObject, plural: scaledobjects, singular: scaledobject}
  scope: Namespaced
  versions:
    - name: v1alpha1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#,
    )
    .await;
    let gvk = GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject");
    let (ar, _) = eventually("ScaledObjects served", Duration::from_secs(30), || async {
        pinned_kind(&admin, &gvk).await.ok()
    })
    .await;
    let sos: Api<DynamicObject> = Api::namespaced_with(admin.clone(), ns, &ar);
    let so: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "cart-so", "namespace": ns},
        "spec": {"scaleTargetRef": {"name": "cart"}}
    }))
    .unwrap();
    sos.create(&PostParams::default(), &so).await.unwrap();
    let deps = cart(&admin, ns).await;
    let targets = graphscale_operator::target::resolve(
        &operator_client(&admin, &admin_cfg).await,
        ns,
        &serde_json::from_value(json!({"targets": {"workloads": [{"name": "cart"}]}})).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(targets[0].conflict.as_deref(), Some("ScaledObject/cart-so"));

    // A ServiceAccount that may read and write PredictiveAutoscalers but not Deployments.
    apply_yaml(
        &admin,
        &format!(
            r#"apiVersion: v1
kind: ServiceAccount
metadata: {{name: weak, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: weak, namespace: {ns}}}
rules:
  - apiGroups: ["autoscaling.graphscale.dev"]
    resources: ["predictiveautoscalers", "predictiveautoscalers/status"]
    verbs: ["get", "list", "watch", "patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: weak, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: weak}}
subjects: [{{kind: ServiceAccount, name: weak, namespace: {ns}}}]
"#
        ),
    )
    .await;
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
    let token = sas
        .create_token_request(
            "weak",
            &PostParams::default(),
            &TokenRequest {
                spec: Some(TokenRequestSpec {
                    expiration_seconds: Some(3600),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .status
        .and_then(|s| s.token)
        .unwrap();
    let mut cfg = admin_cfg.clone();
    cfg.auth_info = AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    let weak = Client::try_from(cfg).unwrap();
    let metrics = Arc::new(Metrics::default());
    let (stop_tx, running, _ctx) = start(
        weak,
        metrics.clone(),
        ns,
        ControllerConfig::default().error_backoff,
    );
    let pas: Api<PredictiveAutoscaler> = Api::namespaced(admin.clone(), ns);
    let pa: PredictiveAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling.graphscale.dev/v1alpha1", "kind": "PredictiveAutoscaler",
        "metadata": {"name": "shop", "namespace": ns},
        "spec": {"targets": {"workloads": [{"name": "cart"}]}, "mode": "Auto", "autoscaler": "hpa",
            "prometheus": {"url": "http://127.0.0.1:9"}}
    }))
    .unwrap();
    pas.create(&PostParams::default(), &pa).await.unwrap();
    let got = eventually(
        "the Forbidden condition",
        Duration::from_secs(60),
        || async {
            let p = pas.get("shop").await.ok()?;
            let c = p
                .status
                .as_ref()?
                .conditions
                .iter()
                .find(|c| c.type_ == "Degraded")?
                .clone();
            (c.status == "True").then_some(c)
        },
    )
    .await;
    assert_eq!(got.reason, "Forbidden");
    assert!(got.message.contains("get Deployment"), "{}", got.message);
    // No crash loop: a few seconds later at most the first attempts were made.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let errors = metrics.encode();
    let forbidden: f64 = errors
        .lines()
        .find(|l| l.starts_with("graphscale_operator_reconcile_errors_total{kind=\"forbidden\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(
        (1.0..=3.0).contains(&forbidden),
        "{forbidden} forbidden reconciles:\n{errors}"
    );
    assert_eq!(replicas(&deps, "cart").await, 1);
    stop_tx.send_replace(true);
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("graceful shutdown")
        .unwrap();
}

/// `graphscale serve`'s `/v1/apply` on Kubernetes: a dry run is a server-side dry run (nothing
/// stored, no Event), a real one scales through the scale subresource with an Event of its
/// reasons, the same again is unchanged, and a missing workload refuses the whole request.
#[tokio::test]
async fn direct_decisions_dry_run_then_scale_and_refuse_a_missing_workload() {
    use graphscale_core::{Reason, ScalingDecision};
    use graphscale_operator::actuator::Outcome;
    use graphscale_operator::crd::WorkloadKind;
    use graphscale_operator::direct::Direct;
    let Some(path) = kubeconfig() else { return };
    let admin = Client::try_from(admin_config(&path).await).unwrap();
    let ns = "gs-direct";
    namespace(&admin, ns).await;
    let deps = cart(&admin, ns).await;
    let direct = Direct::new(admin.clone(), ns, "graphscale-api");
    let decide = |name: &str, replicas: u32| {
        (
            WorkloadKind::Deployment,
            ScalingDecision {
                workload: name.to_string(),
                replicas,
                reasons: vec![Reason::new("plan.demand", "from the direct test")],
                resources: None,
            },
        )
    };
    let scaled = |client: Client| async move {
        let ev: Api<Event> = Api::namespaced(client, ns);
        ev.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| {
                e.reason.as_deref() == Some("Scaled")
                    && e.related.is_none()
                    && e.note
                        .as_deref()
                        .is_some_and(|n| n.contains("from the direct test"))
            })
            .count()
    };
    let got = direct.apply(&[decide("cart", 3)], true).await.unwrap();
    assert_eq!(got[0].0.replicas, 1);
    assert_eq!(got[0].1, Outcome::Applied);
    assert_eq!(replicas(&deps, "cart").await, 1, "a dry run stores nothing");
    assert_eq!(
        scaled(admin.clone()).await,
        0,
        "a dry run publishes no Event"
    );

    let got = direct.apply(&[decide("cart", 3)], false).await.unwrap();
    assert_eq!(got[0].1, Outcome::Applied);
    assert_eq!(replicas(&deps, "cart").await, 3);
    assert_eq!(scaled(admin.clone()).await, 1, "one Event with the reasons");
    let got = direct.apply(&[decide("cart", 3)], false).await.unwrap();
    assert_eq!((got[0].0.replicas, &got[0].1), (3, &Outcome::Unchanged));

    let e = direct
        .apply(&[decide("cart", 5), decide("nosuch", 1)], false)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("nosuch"), "{e}");
    assert_eq!(replicas(&deps, "cart").await, 3, "nothing applied");
}
