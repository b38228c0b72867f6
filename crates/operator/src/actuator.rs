//! The Kubernetes actuator: decisions become writes to the API server, and every action an
//! Event with its reasons.
//!
//! - Replicas: a merge patch of the `scale` subresource (field manager `graphscale`).
//! - Memory (`vertical: memory`): a server-side apply of the workload's pod template (its
//!   first container's memory requests and limits, so new pods match) and a patch of every
//!   running pod's `resize` subresource (in-place resize).
//! - `Recommend`: Events only, never a write to a workload.
//! - A workload with the kill-switch annotation, or scaled by an HPA or a ScaledObject (unless
//!   `takeOver`), is left alone, with an Event saying why.
//!
//! A write that the API server refuses for a reason that passes (409, 429, 5xx, a dropped
//! connection) is retried with backoff; every write sets an absolute value, so a retried write
//! never applies a decision twice.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use graphscale_core::{AsyncActuator, ScalingDecision};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::Reporter;
use kube::Client;
use serde_json::json;
use tracing::Instrument;

use crate::crd::{Mode, Vertical, WorkloadKind, FIELD_MANAGER};
use crate::target::Target;
use crate::OperatorError;

/// The type of an Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Something done.
    Normal,
    /// Something held back that a human should look at.
    Warning,
}

impl EventType {
    /// As the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// What happened to one decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written to the API server.
    Applied,
    /// Equal to the current state: nothing to write.
    Unchanged,
    /// Recommend mode: an Event, no write.
    Recommended,
    /// The kill switch is on.
    Disabled,
    /// Another scaler targets it.
    Conflict(String),
    /// Not a target (the autoscaler decided for a workload we do not scale).
    NotTarget,
}

/// Retry settings for writes.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts in all.
    pub attempts: u32,
    /// First wait; doubled after each failure.
    pub first: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 5,
            first: Duration::from_millis(200),
        }
    }
}

/// Whether an API error may pass if we try again.
pub fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 409 || s.code == 429 || s.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Runs `f` until it succeeds, fails for good or runs out of attempts.
pub async fn with_retry<T, F, Fut>(retry: Retry, action: &str, mut f: F) -> Result<T, OperatorError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut wait = retry.first;
    let mut attempt = 1;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < retry.attempts && transient(&e) => {
                tracing::warn!(%action, attempt, error = %e, "retrying");
                tokio::time::sleep(wait).await;
                wait = wait.saturating_mul(2);
                attempt += 1;
            }
            Err(source) => {
                return Err(OperatorError::Kube {
                    action: action.to_string(),
                    source,
                })
            }
        }
    }
}

/// The actuator of one PredictiveAutoscaler.
pub struct KubeActuator {
    client: Client,
    namespace: String,
    mode: Mode,
    vertical: Vertical,
    take_over: bool,
    reporter: Reporter,
    /// The PredictiveAutoscaler, as the Events' related object (none for decisions of the API).
    owner: Option<ObjectReference>,
    /// Writes are server-side dry runs and no Event is published.
    dry_run: bool,
    retry: Retry,
    targets: BTreeMap<String, Target>,
    /// The last decision each workload got an Event for (replicas, outcome), so a held
    /// recommendation is not an Event every round.
    last_event: BTreeMap<String, (u32, Outcome)>,
    outcomes: BTreeMap<String, Outcome>,
}

impl std::fmt::Debug for KubeActuator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeActuator")
            .field("namespace", &self.namespace)
            .field("mode", &self.mode)
            .field("targets", &self.targets.len())
            .finish()
    }
}

impl KubeActuator {
    /// An actuator writing to `namespace` in `mode`.
    pub fn new(
        client: Client,
        namespace: String,
        mode: Mode,
        reporter: Reporter,
        owner: ObjectReference,
    ) -> Self {
        KubeActuator {
            client,
            namespace,
            mode,
            vertical: Vertical::Off,
            take_over: false,
            reporter,
            owner: Some(owner),
            dry_run: false,
            retry: Retry::default(),
            targets: BTreeMap::new(),
            last_event: BTreeMap::new(),
            outcomes: BTreeMap::new(),
        }
    }

    /// Resizes memory, CPU requests or both too (`vertical`).
    pub fn with_vertical(mut self, vertical: Vertical) -> Self {
        self.vertical = vertical;
        self
    }

    /// Acts on workloads another scaler targets.
    pub fn with_take_over(mut self, take_over: bool) -> Self {
        self.take_over = take_over;
        self
    }

    /// Events name no related object: the decisions come from outside a PredictiveAutoscaler
    /// (`POST /v1/apply`).
    pub fn without_owner(mut self) -> Self {
        self.owner = None;
        self
    }

    /// Every write a server-side dry run (`?dryRun=All`: admission and validation run, nothing
    /// is stored), and no Event.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Retry settings.
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// The mode (a changed spec changes it without losing the Event history).
    pub fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
    }

    /// The targets as found this round.
    pub fn set_targets(&mut self, targets: &[Target]) {
        self.targets = targets
            .iter()
            .map(|t| (t.name.clone(), t.clone()))
            .collect();
    }

    /// What happened to each workload's decision in the last `apply`.
    pub fn outcomes(&self) -> &BTreeMap<String, Outcome> {
        &self.outcomes
    }

    fn reference(&self, t: &Target) -> ObjectReference {
        ObjectReference {
            api_version: Some("apps/v1".into()),
            kind: Some(t.kind.to_string()),
            name: Some(t.name.clone()),
            namespace: Some(self.namespace.clone()),
            ..Default::default()
        }
    }

    async fn event(
        &self,
        t: &Target,
        type_: EventType,
        reason: &str,
        note: String,
    ) -> Result<(), OperatorError> {
        // The API server caps a note at 1 KiB.
        let mut note = note;
        if note.len() > 1000 {
            let mut cut = 1000;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
            note.push('…');
        }
        // One Event per action, each with its own note (kube's Recorder folds Events of the
        // same reason into a series that keeps the first note: later reasons would be lost).
        let ev = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}-", t.name)),
                namespace: Some(self.namespace.clone()),
                ..Default::default()
            },
            type_: Some(type_.as_str().into()),
            reason: Some(reason.into()),
            action: Some(reason.into()),
            note: Some(note),
            event_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            regarding: Some(self.reference(t)),
            related: self.owner.clone(),
            ..Default::default()
        };
        let action = format!("publish Event {reason} for {} {}", t.kind, t.name);
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.namespace);
        let pp = PostParams::default();
        with_retry(self.retry, &action, || api.create(&pp, &ev)).await?;
        Ok(())
    }

    /// A patch of the workload (`scale`: of its scale subresource), whatever its kind.
    async fn patch_workload(
        &self,
        t: &Target,
        action: &str,
        scale: bool,
        pp: &PatchParams,
        patch: &Patch<serde_json::Value>,
    ) -> Result<(), OperatorError> {
        match t.kind {
            WorkloadKind::Deployment => {
                self.patch_as::<Deployment>(&t.name, action, scale, pp, patch)
                    .await
            }
            WorkloadKind::StatefulSet => {
                self.patch_as::<StatefulSet>(&t.name, action, scale, pp, patch)
                    .await
            }
        }
    }

    async fn patch_as<K>(
        &self,
        name: &str,
        action: &str,
        scale: bool,
        pp: &PatchParams,
        patch: &Patch<serde_json::Value>,
    ) -> Result<(), OperatorError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &self.namespace);
        if scale {
            with_retry(self.retry, action, || api.patch_scale(name, pp, patch)).await?;
        } else {
            with_retry(self.retry, action, || api.patch(name, pp, patch)).await?;
        }
        Ok(())
    }

    async fn scale(&self, t: &Target, replicas: u32) -> Result<(), OperatorError> {
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            dry_run: self.dry_run,
            ..Default::default()
        };
        let patch = Patch::Merge(json!({ "spec": { "replicas": replicas } }));
        let action = format!(
            "patch scale of {} {}/{} to {replicas}",
            t.kind, self.namespace, t.name
        );
        self.patch_workload(t, &action, true, &pp, &patch).await
    }

    /// The memory of the first container: the template by server-side apply, the running pods
    /// through `resize`.
    async fn resize_memory(
        &self,
        t: &Target,
        request_mib: f64,
        limit_mib: f64,
    ) -> Result<usize, OperatorError> {
        let Some(container) = &t.container else {
            return Ok(0);
        };
        let resources = json!({
            "requests": { "memory": format!("{}Mi", request_mib.ceil() as u64) },
            "limits": { "memory": format!("{}Mi", limit_mib.ceil().max(request_mib.ceil()) as u64) },
        });
        let apply = json!({
            "apiVersion": "apps/v1",
            "kind": t.kind.to_string(),
            "metadata": { "name": t.name, "namespace": self.namespace },
            "spec": { "template": { "spec": { "containers": [
                { "name": container, "resources": resources }
            ] } } }
        });
        let mut pp = PatchParams::apply(FIELD_MANAGER).force();
        pp.dry_run = self.dry_run;
        let apply = Patch::Apply(apply);
        let action = format!(
            "server-side apply of {} {}/{} memory",
            t.kind, self.namespace, t.name
        );
        self.patch_workload(t, &action, false, &pp, &apply).await?;
        self.resize_pods(t, container, &resources, "memory").await
    }

    /// The CPU request of the first container of every running pod, in place through `resize`;
    /// limits and the pod template are kept (new pods start at the template's request, the
    /// reference the replicas are planned on, and the next decision sizes them).
    async fn resize_cpu(&self, t: &Target, request_mc: f64) -> Result<usize, OperatorError> {
        let Some(container) = &t.container else {
            return Ok(0);
        };
        let resources = json!({ "requests": { "cpu": format!("{}m", request_mc.ceil() as u64) } });
        self.resize_pods(t, container, &resources, "CPU").await
    }

    /// `resources` of `container` in every running pod of `t`, through each pod's `resize`
    /// subresource (a strategic merge patch: the fields not named stay); the pods resized.
    async fn resize_pods(
        &self,
        t: &Target,
        container: &str,
        resources: &serde_json::Value,
        what: &str,
    ) -> Result<usize, OperatorError> {
        let Some(sel) = &t.pod_selector else {
            return Ok(0);
        };
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let lp = ListParams::default().labels(sel);
        let list = with_retry(self.retry, &format!("list pods of {}", t.name), || {
            pods.list(&lp)
        })
        .await?;
        let resize = Patch::Strategic(json!({ "spec": { "containers": [
            { "name": container, "resources": resources }
        ] } }));
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            dry_run: self.dry_run,
            ..Default::default()
        };
        let mut n = 0;
        for p in list {
            if p.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let name = p.metadata.name.unwrap_or_default();
            let action = format!("resize pod {}/{name} {what}", self.namespace);
            with_retry(self.retry, &action, || {
                pods.patch_subresource("resize", &name, &pp, &resize)
            })
            .await?;
            n += 1;
        }
        Ok(n)
    }

    async fn apply_one(&mut self, d: &ScalingDecision) -> Result<Outcome, OperatorError> {
        let Some(t) = self.targets.get(&d.workload).cloned() else {
            return Ok(Outcome::NotTarget);
        };
        let reasons = d
            .reasons
            .iter()
            .map(|r| format!("{}: {}", r.rule, r.detail))
            .collect::<Vec<_>>()
            .join("; ");
        // Each part of a resize is applied when its rule made it and `vertical` asks for it:
        // memory on `vertical.resize`, the CPU request on `vertical.cpu_request`.
        let made_by = |rule: &str| d.reasons.iter().any(|x| x.rule == rule);
        let memory = match d.resources {
            Some(r) if self.vertical.memory() && made_by("vertical.resize") => {
                Some((r.requests.memory_mib, r.limits.memory_mib))
            }
            _ => None,
        };
        let cpu = match d.resources {
            Some(r) if self.vertical.cpu() && made_by("vertical.cpu_request") => {
                Some(r.requests.cpu_millicores)
            }
            _ => None,
        };
        let changes = d.replicas != t.replicas || memory.is_some() || cpu.is_some();
        let outcome = if t.disabled {
            Outcome::Disabled
        } else if let (Some(other), false) = (&t.conflict, self.take_over) {
            Outcome::Conflict(other.clone())
        } else if !changes {
            Outcome::Unchanged
        } else if self.mode != Mode::Auto {
            Outcome::Recommended
        } else {
            Outcome::Applied
        };
        let (type_, reason, note) = match &outcome {
            Outcome::Applied => {
                let mut what = Vec::new();
                if d.replicas != t.replicas {
                    self.scale(&t, d.replicas).await?;
                    what.push(format!("replicas {} -> {}", t.replicas, d.replicas));
                }
                if let Some((req, lim)) = memory {
                    let pods = self.resize_memory(&t, req, lim).await?;
                    what.push(format!(
                        "memory request {req:.0} MiB, limit {lim:.0} MiB ({pods} pods resized in place)"
                    ));
                }
                if let Some(mc) = cpu {
                    let pods = self.resize_cpu(&t, mc).await?;
                    what.push(format!(
                        "CPU request {:.0}m ({pods} pods resized in place)",
                        mc.ceil()
                    ));
                }
                (
                    EventType::Normal,
                    "Scaled",
                    format!("{}: {reasons}", what.join(", ")),
                )
            }
            Outcome::Recommended => (
                EventType::Normal,
                "Recommended",
                format!(
                    "would set replicas {} -> {} (mode Recommend): {reasons}",
                    t.replicas, d.replicas
                ),
            ),
            Outcome::Disabled => (
                EventType::Normal,
                "Disabled",
                format!(
                    "left alone: annotation {}=true (decided {} replicas)",
                    crate::crd::KILL_SWITCH,
                    d.replicas
                ),
            ),
            Outcome::Conflict(other) => (
                EventType::Warning,
                "Conflict",
                format!(
                    "{other} scales this workload: no writes (set spec.takeOver to act anyway); decided {} replicas",
                    d.replicas
                ),
            ),
            Outcome::Unchanged | Outcome::NotTarget => return Ok(outcome),
        };
        let key = (d.replicas, outcome.clone());
        if self.dry_run {
            return Ok(outcome);
        }
        if outcome == Outcome::Applied || self.last_event.get(&d.workload) != Some(&key) {
            self.event(&t, type_, reason, note).await?;
            self.last_event.insert(d.workload.clone(), key);
        }
        Ok(outcome)
    }
}

impl AsyncActuator for KubeActuator {
    type Error = OperatorError;

    async fn apply_async(&mut self, decisions: &[ScalingDecision]) -> Result<(), OperatorError> {
        self.outcomes.clear();
        if self.mode == Mode::Off {
            return Ok(());
        }
        for d in decisions {
            let span =
                tracing::info_span!("actuate", workload = %d.workload, replicas = d.replicas);
            let outcome = self.apply_one(d).instrument(span).await?;
            self.outcomes.insert(d.workload.clone(), outcome);
        }
        Ok(())
    }
}
