//! The workloads a PredictiveAutoscaler targets, as the API server has them now: replicas,
//! bounds, the CPU request of a pod, the kill switch, and who else scales them (an HPA or a
//! KEDA ScaledObject).

use std::collections::BTreeMap;

use graphscale_core::WorkloadFacts;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::Client;

use crate::crd::{PredictiveAutoscalerSpec, WorkloadKind, KILL_SWITCH};
use crate::OperatorError;

/// Most workloads one PredictiveAutoscaler may target (the CRD allows as many in a list).
pub const MAX_TARGETS: usize = 2000;
/// Default replica bounds.
pub const DEFAULT_MIN: u32 = 1;
/// Default replica bounds.
pub const DEFAULT_MAX: u32 = 50;

/// One target workload as found.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Kind.
    pub kind: WorkloadKind,
    /// Name.
    pub name: String,
    /// `spec.replicas`.
    pub replicas: u32,
    /// Bounds.
    pub min_replicas: u32,
    /// Bounds.
    pub max_replicas: u32,
    /// CPU request of one pod (all containers), millicores, when every container has one.
    pub cpu_request_millicores: Option<f64>,
    /// The name of the pod's first container (the one a memory resize applies to).
    pub container: Option<String>,
    /// The pod selector, as a label selector string, for listing its pods.
    pub pod_selector: Option<String>,
    /// The kill switch annotation is set: leave it alone.
    pub disabled: bool,
    /// Who else scales it (`HorizontalPodAutoscaler/cart`, `ScaledObject/cart`).
    pub conflict: Option<String>,
}

impl Target {
    /// Its static facts for the catalogue.
    pub fn facts(&self) -> WorkloadFacts {
        WorkloadFacts {
            name: self.name.clone(),
            min_replicas: self.min_replicas,
            max_replicas: self.max_replicas,
            peak_cpu_millicores: None,
            cpu_request_millicores: self.cpu_request_millicores,
        }
    }
}

/// A label selector as the `labelSelector` query parameter writes it.
pub fn selector_string(sel: &LabelSelector) -> Result<String, OperatorError> {
    let invalid = |field: String, reason: String| OperatorError::InvalidSpec { field, reason };
    let mut parts = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        parts.push(format!("{k}={v}"));
    }
    for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
        let field = format!("targets.selector.matchExpressions[{i}]");
        let values = e.values.clone().unwrap_or_default();
        match e.operator.as_str() {
            "In" | "NotIn" => {
                if values.is_empty() {
                    return Err(invalid(field, format!("{} needs values", e.operator)));
                }
                let op = if e.operator == "In" { "in" } else { "notin" };
                parts.push(format!("{} {op} ({})", e.key, values.join(",")));
            }
            "Exists" => parts.push(e.key.clone()),
            "DoesNotExist" => parts.push(format!("!{}", e.key)),
            other => {
                return Err(invalid(
                    format!("{field}.operator"),
                    format!("`{other}` is not In, NotIn, Exists or DoesNotExist"),
                ))
            }
        }
    }
    if parts.is_empty() {
        return Err(invalid(
            "targets.selector".into(),
            "an empty selector would select every workload".into(),
        ));
    }
    Ok(parts.join(","))
}

/// CPU of a quantity in millicores (`500m`, `1`, `1.5`); `None` when unparsable.
pub fn cpu_millicores(q: &Quantity) -> Option<f64> {
    let s = q.0.trim();
    let v = match s.strip_suffix('m') {
        Some(m) => m.parse::<f64>().ok()?,
        None => s.parse::<f64>().ok()? * 1000.0,
    };
    v.is_finite().then_some(v)
}

/// Memory of a quantity in MiB (`512Mi`, `1Gi`, `1G`, `1048576`); `None` when unparsable.
pub fn memory_mib(q: &Quantity) -> Option<f64> {
    let s = q.0.trim();
    const UNITS: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    let (num, mult) = UNITS
        .iter()
        .find_map(|(u, m)| s.strip_suffix(u).map(|n| (n, *m)))
        .unwrap_or((s, 1.0));
    let v = num.parse::<f64>().ok()? * mult / (1024.0 * 1024.0);
    v.is_finite().then_some(v)
}

fn template_facts(t: Option<&PodTemplateSpec>) -> (Option<f64>, Option<String>) {
    let Some(containers) = t.and_then(|t| t.spec.as_ref()).map(|s| &s.containers) else {
        return (None, None);
    };
    let mut total = 0.0;
    for c in containers {
        let req = c
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("cpu"))
            .and_then(cpu_millicores);
        match req {
            Some(m) => total += m,
            None => return (None, containers.first().map(|c| c.name.clone())),
        }
    }
    (
        (total > 0.0).then_some(total),
        containers.first().map(|c| c.name.clone()),
    )
}

fn pod_selector(sel: &LabelSelector) -> Option<String> {
    selector_string(sel).ok()
}

/// The bounds of `name` under `spec`: its own, else the spec's, else 1..=50.
fn bounds(spec: &PredictiveAutoscalerSpec, name: &str) -> (u32, u32) {
    let own = spec.targets.workloads.iter().find(|w| w.name == name);
    let min = own
        .and_then(|w| w.min_replicas)
        .or(spec.min_replicas)
        .unwrap_or(DEFAULT_MIN);
    let max = own
        .and_then(|w| w.max_replicas)
        .or(spec.max_replicas)
        .unwrap_or(DEFAULT_MAX);
    (min, max)
}

struct Found {
    kind: WorkloadKind,
    name: String,
    replicas: Option<i32>,
    annotations: BTreeMap<String, String>,
    template: Option<PodTemplateSpec>,
    selector: Option<LabelSelector>,
}

fn from_deployment(d: Deployment) -> Found {
    let spec = d.spec.unwrap_or_default();
    Found {
        kind: WorkloadKind::Deployment,
        name: d.metadata.name.unwrap_or_default(),
        replicas: spec.replicas,
        annotations: d.metadata.annotations.unwrap_or_default(),
        template: Some(spec.template),
        selector: Some(spec.selector),
    }
}

fn from_statefulset(s: StatefulSet) -> Found {
    let spec = s.spec.unwrap_or_default();
    Found {
        kind: WorkloadKind::StatefulSet,
        name: s.metadata.name.unwrap_or_default(),
        replicas: spec.replicas,
        annotations: s.metadata.annotations.unwrap_or_default(),
        template: Some(spec.template),
        selector: Some(spec.selector),
    }
}

/// Who scales what in `namespace` besides us: (kind, name) -> `Kind/object`.
pub async fn other_scalers(
    client: &Client,
    namespace: &str,
) -> Result<BTreeMap<(WorkloadKind, String), String>, OperatorError> {
    let mut out = BTreeMap::new();
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), namespace);
    let list = hpas
        .list(&ListParams::default())
        .await
        .map_err(OperatorError::kube(format!(
            "list HorizontalPodAutoscalers in {namespace}"
        )))?;
    for h in list {
        let r = h.spec.scale_target_ref;
        if let Some(kind) = kind_of(&r.kind) {
            out.insert(
                (kind, r.name),
                format!(
                    "HorizontalPodAutoscaler/{}",
                    h.metadata.name.unwrap_or_default()
                ),
            );
        }
    }
    // KEDA's ScaledObjects, when KEDA is installed (404: it is not).
    let gvk = GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "scaledobjects");
    let sos: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
    match sos.list(&ListParams::default()).await {
        Ok(list) => {
            for so in list {
                let target = so.data.get("spec").and_then(|s| s.get("scaleTargetRef"));
                let name = target.and_then(|t| t.get("name")).and_then(|n| n.as_str());
                let kind = target
                    .and_then(|t| t.get("kind"))
                    .and_then(|k| k.as_str())
                    .unwrap_or("Deployment");
                if let (Some(name), Some(kind)) = (name, kind_of(kind)) {
                    out.insert(
                        (kind, name.to_string()),
                        format!("ScaledObject/{}", so.metadata.name.unwrap_or_default()),
                    );
                }
            }
        }
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => {
            return Err(OperatorError::Kube {
                action: format!("list keda.sh ScaledObjects in {namespace}"),
                source: e,
            })
        }
    }
    Ok(out)
}

fn kind_of(kind: &str) -> Option<WorkloadKind> {
    match kind {
        "Deployment" => Some(WorkloadKind::Deployment),
        "StatefulSet" => Some(WorkloadKind::StatefulSet),
        _ => None,
    }
}

/// Objects per page when the targets are listed by selector: a page is parsed and reduced to
/// its targets before the next is read, so a round's memory does not grow with the whole list.
pub const LIST_PAGE: u32 = 250;

/// Every `K` matching `lp` in pages of [`LIST_PAGE`], each reduced by `f` as it arrives; more
/// than [`MAX_TARGETS`] is an error as soon as it is seen.
async fn list_paged<K, T>(
    api: &Api<K>,
    lp: &ListParams,
    what: &str,
    out: &mut Vec<T>,
    f: impl Fn(K) -> T,
) -> Result<(), OperatorError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut lp = lp.clone().limit(LIST_PAGE);
    loop {
        let page = api
            .list(&lp)
            .await
            .map_err(OperatorError::kube(format!("list {what}")))?;
        out.extend(page.items.into_iter().map(&f));
        if out.len() > MAX_TARGETS {
            return Err(too_many(out.len()));
        }
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => lp = lp.continue_token(&token),
            _ => return Ok(()),
        }
    }
}

fn too_many(n: usize) -> OperatorError {
    OperatorError::InvalidSpec {
        field: "targets".into(),
        reason: format!("{n} or more workloads selected, at most {MAX_TARGETS}"),
    }
}

/// The targets of `spec` in `namespace`, in a stable order (the list's, or by kind and name).
pub async fn resolve(
    client: &Client,
    namespace: &str,
    spec: &PredictiveAutoscalerSpec,
) -> Result<Vec<Target>, OperatorError> {
    let deps: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    let target = |f: Found| {
        let (min_replicas, max_replicas) = bounds(spec, &f.name);
        let (cpu, container) = template_facts(f.template.as_ref());
        Target {
            conflict: None,
            disabled: f.annotations.get(KILL_SWITCH).map(String::as_str) == Some("true"),
            replicas: f.replicas.unwrap_or(1).max(0) as u32,
            min_replicas,
            max_replicas,
            cpu_request_millicores: cpu,
            container,
            pod_selector: f.selector.as_ref().and_then(pod_selector),
            kind: f.kind,
            name: f.name,
        }
    };
    let mut found = Vec::new();
    if let Some(sel) = &spec.targets.selector {
        let lp = ListParams::default().labels(&selector_string(sel)?);
        let what = format!("Deployments in {namespace}");
        list_paged(&deps, &lp, &what, &mut found, |d| {
            target(from_deployment(d))
        })
        .await?;
        let what = format!("StatefulSets in {namespace}");
        list_paged(&sts, &lp, &what, &mut found, |s| {
            target(from_statefulset(s))
        })
        .await?;
        found.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    } else {
        if spec.targets.workloads.len() > MAX_TARGETS {
            return Err(too_many(spec.targets.workloads.len()));
        }
        for w in &spec.targets.workloads {
            let action = format!("get {} {namespace}/{}", w.kind, w.name);
            let got = match w.kind {
                WorkloadKind::Deployment => {
                    deps.get_opt(&w.name).await.map(|o| o.map(from_deployment))
                }
                WorkloadKind::StatefulSet => {
                    sts.get_opt(&w.name).await.map(|o| o.map(from_statefulset))
                }
            }
            .map_err(OperatorError::kube(action))?;
            found.push(target(got.ok_or_else(|| OperatorError::MissingTarget {
                kind: w.kind.to_string(),
                namespace: namespace.to_string(),
                name: w.name.clone(),
            })?));
        }
    }
    // Who else scales them, once the targets are known (a token that cannot read the targets
    // is told so first).
    let others = other_scalers(client, namespace).await?;
    for t in &mut found {
        t.conflict = others.get(&(t.kind, t.name.clone())).cloned();
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn selectors_are_written_as_the_api_server_reads_them() {
        let sel = LabelSelector {
            match_labels: Some(BTreeMap::from([("app".into(), "shop".into())])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["web".into(), "api".into()]),
                },
                LabelSelectorRequirement {
                    key: "legacy".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        assert_eq!(
            selector_string(&sel).unwrap(),
            "app=shop,tier in (web,api),!legacy"
        );
        let bad = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "x".into(),
                operator: "Near".into(),
                values: None,
            }]),
            ..Default::default()
        };
        let e = selector_string(&bad).unwrap_err().to_string();
        assert!(
            e.contains("targets.selector.matchExpressions[0].operator"),
            "{e}"
        );
        assert!(selector_string(&LabelSelector::default()).is_err());
    }

    #[test]
    fn quantities_parse_and_garbage_does_not() {
        assert_eq!(cpu_millicores(&Quantity("250m".into())), Some(250.0));
        assert_eq!(cpu_millicores(&Quantity("1.5".into())), Some(1500.0));
        assert_eq!(cpu_millicores(&Quantity("lots".into())), None);
        assert_eq!(memory_mib(&Quantity("512Mi".into())), Some(512.0));
        assert_eq!(memory_mib(&Quantity("1Gi".into())), Some(1024.0));
        assert_eq!(memory_mib(&Quantity("1048576".into())), Some(1.0));
        assert_eq!(memory_mib(&Quantity("Mi".into())), None);
    }
}
