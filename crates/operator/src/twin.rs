//! The API server side of the digital twin (`graphscale sim serve --follow-cluster`): the
//! simulator registers its services as Deployments of a namespace, then follows what the API
//! server asks of them (`spec.replicas`, the pod template's requests and limits), so an
//! operator scaling those Deployments closes the loop over the simulated pods.

use std::collections::BTreeMap;

use graphscale_core::{PodResources, Resources};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::Client;
use serde_json::json;

use crate::target::{cpu_millicores, memory_mib};
use crate::OperatorError;

/// The field manager of the twin's writes.
pub const TWIN_MANAGER: &str = "graphscale-twin";
/// The label on every Deployment the twin registers.
pub const TWIN_LABEL: &str = "graphscale.dev/twin";

/// One service as the twin registers it.
#[derive(Debug, Clone, PartialEq)]
pub struct TwinService {
    /// Name.
    pub name: String,
    /// Replicas at the start.
    pub replicas: u32,
    /// Requests and limits of one pod.
    pub resources: PodResources,
}

/// What the API server asks of one Deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// `spec.replicas`.
    pub replicas: u32,
    /// The first container's requests and limits, when all four are set.
    pub resources: Option<PodResources>,
}

/// The twin's view of one namespace.
#[derive(Debug, Clone)]
pub struct Twin {
    api: Api<Deployment>,
    namespace: String,
}

impl Twin {
    /// The twin of `namespace`.
    pub fn new(client: Client, namespace: &str) -> Self {
        Twin {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
        }
    }

    /// The twin of `namespace` with the kubeconfig of the environment.
    pub async fn connect(namespace: &str) -> Result<Self, OperatorError> {
        let client = Client::try_default()
            .await
            .map_err(OperatorError::kube("load the kubeconfig"))?;
        Ok(Twin::new(client, namespace))
    }

    /// Creates the Deployments of `services` that do not exist yet (an existing one is left
    /// as it is: nothing stored is replaced unasked).
    pub async fn register(&self, services: &[TwinService]) -> Result<usize, OperatorError> {
        let mut created = 0;
        for s in services {
            let action = format!("get Deployment {}/{}", self.namespace, s.name);
            if self
                .api
                .get_opt(&s.name)
                .await
                .map_err(OperatorError::kube(action))?
                .is_some()
            {
                continue;
            }
            let r = &s.resources;
            let d: Deployment = serde_json::from_value(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": s.name, "namespace": self.namespace,
                    "labels": {"app": s.name, TWIN_LABEL: "true"}},
                "spec": {"replicas": s.replicas,
                    "selector": {"matchLabels": {"app": s.name}},
                    "template": {"metadata": {"labels": {"app": s.name}}, "spec": {"containers": [{
                        "name": "server", "image": "graphscale.invalid/twin:simulated",
                        "resources": {
                            "requests": {"cpu": format!("{}m", r.requests.cpu_millicores.round() as u64),
                                         "memory": format!("{}Mi", r.requests.memory_mib.round() as u64)},
                            "limits": {"cpu": format!("{}m", r.limits.cpu_millicores.round() as u64),
                                       "memory": format!("{}Mi", r.limits.memory_mib.round() as u64)}}
                    }]}}}
            }))
            .map_err(|e| OperatorError::InvalidSpec {
                field: format!("twin service {}", s.name),
                reason: e.to_string(),
            })?;
            let action = format!("create Deployment {}/{}", self.namespace, s.name);
            self.api
                .patch(
                    &s.name,
                    &PatchParams::apply(TWIN_MANAGER),
                    &Patch::Apply(&d),
                )
                .await
                .map_err(OperatorError::kube(action))?;
            created += 1;
        }
        Ok(created)
    }

    /// What the API server asks of every Deployment of the namespace, by name.
    pub async fn desired(&self) -> Result<BTreeMap<String, Desired>, OperatorError> {
        let list = self
            .api
            .list(&ListParams::default())
            .await
            .map_err(OperatorError::kube(format!(
                "list Deployments in {}",
                self.namespace
            )))?;
        let mut out = BTreeMap::new();
        for d in list {
            let Some(name) = d.metadata.name.clone() else {
                continue;
            };
            let spec = d.spec.unwrap_or_default();
            let resources = spec
                .template
                .spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .and_then(|c| c.resources.as_ref())
                .and_then(|r| {
                    let req = r.requests.as_ref()?;
                    let lim = r.limits.as_ref()?;
                    Some(PodResources {
                        requests: Resources::new(
                            cpu_millicores(req.get("cpu")?)?,
                            memory_mib(req.get("memory")?)?,
                        ),
                        limits: Resources::new(
                            cpu_millicores(lim.get("cpu")?)?,
                            memory_mib(lim.get("memory")?)?,
                        ),
                    })
                })
                .filter(|r| r.problem().is_none());
            out.insert(
                name,
                Desired {
                    replicas: spec.replicas.unwrap_or(1).max(0) as u32,
                    resources,
                },
            );
        }
        Ok(out)
    }
}
