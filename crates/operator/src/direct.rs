//! Decisions from outside a PredictiveAutoscaler (`graphscale serve`'s `POST /v1/apply`): the
//! named workloads of one namespace are resolved as targets, then written by the same
//! [`KubeActuator`] as the operator's, in mode `Auto`: the kill switch and other scalers are
//! respected, every write is absolute and retried, and every action is an Event.

use graphscale_core::{AsyncActuator, ScalingDecision};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::Reporter;
use kube::Client;

use crate::actuator::{KubeActuator, Outcome};
use crate::crd::{Mode, PredictiveAutoscalerSpec, Targets, WorkloadKind, WorkloadTarget};
use crate::target::{resolve, Target};
use crate::OperatorError;

/// Writes decisions to the workloads of one namespace.
#[derive(Clone)]
pub struct Direct {
    client: Client,
    namespace: String,
    reporter: Reporter,
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direct")
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl Direct {
    /// Decisions for `namespace`, their Events reported by `controller` (`graphscale-api`).
    pub fn new(client: Client, namespace: impl Into<String>, controller: &str) -> Self {
        Direct {
            client,
            namespace: namespace.into(),
            reporter: Reporter {
                controller: controller.to_string(),
                instance: std::env::var("POD_NAME").ok(),
            },
        }
    }

    /// [`Direct::new`] with the kubeconfig of the environment (`KUBECONFIG`, `~/.kube/config`
    /// or the in-cluster service account).
    pub async fn connect(namespace: &str, controller: &str) -> Result<Self, OperatorError> {
        let client = Client::try_default()
            .await
            .map_err(OperatorError::kube("load the kubeconfig"))?;
        Ok(Direct::new(client, namespace, controller))
    }

    /// The namespace written to.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Resolves the workloads of `decisions` (an absent one is
    /// [`OperatorError::MissingTarget`], before anything is written), then applies them, or
    /// with `dry_run` checks them with server-side dry runs. One (target as found, outcome) per
    /// decision, in their order. Names must be unique.
    pub async fn apply(
        &self,
        decisions: &[(WorkloadKind, ScalingDecision)],
        dry_run: bool,
    ) -> Result<Vec<(Target, Outcome)>, OperatorError> {
        let spec = PredictiveAutoscalerSpec {
            targets: Targets {
                workloads: decisions
                    .iter()
                    .map(|(kind, d)| WorkloadTarget {
                        kind: *kind,
                        name: d.workload.clone(),
                        min_replicas: None,
                        max_replicas: None,
                    })
                    .collect(),
                selector: None,
            },
            ..spec_defaults()
        };
        let targets = resolve(&self.client, &self.namespace, &spec).await?;
        let mut act = KubeActuator::new(
            self.client.clone(),
            self.namespace.clone(),
            Mode::Auto,
            self.reporter.clone(),
            ObjectReference::default(),
        )
        .without_owner()
        .with_dry_run(dry_run);
        act.set_targets(&targets);
        let plain: Vec<ScalingDecision> = decisions.iter().map(|(_, d)| d.clone()).collect();
        act.apply_async(&plain).await?;
        Ok(targets
            .into_iter()
            .map(|t| {
                let o = act
                    .outcomes()
                    .get(&t.name)
                    .cloned()
                    .unwrap_or(Outcome::NotTarget);
                (t, o)
            })
            .collect())
    }
}

fn spec_defaults() -> PredictiveAutoscalerSpec {
    // Every field but `targets` has a default; the CRD's own defaults are the ones used.
    serde_json::from_value(serde_json::json!({"targets": {}}))
        .unwrap_or_else(|e| unreachable!("the spec's defaults parse: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_spec_defaults_parse() {
        let s = super::spec_defaults();
        assert!(s.targets.workloads.is_empty());
    }
}
