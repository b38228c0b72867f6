//! `POST /v1/apply`: decisions (a plan's replicas) handed to an actuator, or checked without a
//! write (`dry_run`). The actuator is the server's: an in-memory simulated cluster by default
//! ([`LocalActuator`] over the simulator), or a Kubernetes namespace (`graphscale serve
//! --kube-namespace`, implemented with the operator's actuator).
//!
//! Every decision is checked before any is applied: one unknown workload, duplicate or
//! out-of-range value refuses the whole request with a 422 naming `decisions[i]`.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use graphscale_core::{Actuator, MetricSource, Reason, ScalingDecision};
use serde::{Deserialize, Serialize};

use crate::predict::{ReasonBody, MAX_REPLICAS};
use crate::ApiError;

/// Most decisions in one request (the operator's bound on the targets of one autoscaler).
pub const MAX_DECISIONS: usize = 2000;
/// Most reasons of one decision.
pub const MAX_REASONS: usize = 32;
/// Longest workload name (a Kubernetes object name).
pub const MAX_NAME_LEN: usize = 253;
/// Longest rule or detail of a reason, bytes.
pub const MAX_REASON_LEN: usize = 1024;

/// The kind of a workload; only a Kubernetes actuator reads it.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub enum WorkloadKind {
    /// `apps/v1` Deployment (the default).
    #[default]
    Deployment,
    /// `apps/v1` StatefulSet.
    #[serde(rename = "StatefulSet")]
    StatefulSet,
}

/// One decision to apply.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// The workload (a service of the simulated app, or a Deployment or StatefulSet name).
    pub workload: String,
    /// Its kind, for a Kubernetes actuator; default `Deployment`.
    #[serde(default)]
    pub kind: WorkloadKind,
    /// Replicas to set, 0..=10,000.
    pub replicas: u32,
    /// Why (a plan's reasons, as `/v1/predict` gives them); written into the Kubernetes Event.
    #[serde(default)]
    pub reasons: Vec<ReasonBody>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// An apply request.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    /// The decisions, 1..=2000, one per workload name.
    pub decisions: Vec<Decision>,
    /// Check and report what would change without writing anything (Kubernetes: a server-side
    /// dry run, so admission and validation run); default false.
    #[serde(default)]
    pub dry_run: bool,
}

/// What became of one decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Written.
    Applied,
    /// A dry run: it would be written.
    WouldApply,
    /// Equal to the current replicas: nothing to write.
    Unchanged,
    /// The workload's kill switch (`graphscale.io/disabled: "true"`) is on: left alone.
    Disabled,
    /// Another scaler (an HPA or a KEDA ScaledObject) targets the workload: left alone.
    Conflict,
}

impl Outcome {
    /// As the answer and the metric's label write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::WouldApply => "would_apply",
            Outcome::Unchanged => "unchanged",
            Outcome::Disabled => "disabled",
            Outcome::Conflict => "conflict",
        }
    }
}

/// The result of one decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Applied {
    /// The workload.
    pub workload: String,
    /// Replicas before.
    pub before: u32,
    /// Replicas after (what is set, or would be set; the old value when left alone).
    pub after: u32,
    /// What happened.
    pub outcome: Outcome,
    /// More, in words (a cap, the other scaler).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// An apply answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ApplyResponse {
    /// The actuator: `simulator` or `kubernetes`.
    pub actuator: String,
    /// Whether this was a dry run.
    #[serde(default, skip_serializing_if = "is_false")]
    pub dry_run: bool,
    /// One per decision, in the request's order.
    pub results: Vec<Applied>,
}

/// What an actuator's `apply` returns.
pub type ApplyFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<Applied>, ApiError>> + Send + 'a>>;

/// Where `/v1/apply` sends decisions. Implementations refuse an unknown workload with
/// [`ApiError::invalid`] naming `decisions[i].workload` before writing anything, and report a
/// failed write as [`ApiError::Actuator`].
pub trait ApplyTarget: Send + Sync {
    /// `simulator` or `kubernetes`.
    fn name(&self) -> &str;
    /// Applies (or, with `dry_run`, checks) `decisions`, checked by [`check`]; one result per
    /// decision in their order.
    fn apply<'a>(&'a self, decisions: &'a [Decision], dry_run: bool) -> ApplyFuture<'a>;
}

/// The checks every actuator relies on: a count in 1..=2000, names that are plain and unique,
/// replicas in range, reasons bounded.
pub fn check(req: &ApplyRequest) -> Result<(), ApiError> {
    if req.decisions.is_empty() || req.decisions.len() > MAX_DECISIONS {
        return Err(ApiError::invalid(
            "decisions",
            format!(
                "must hold 1 to {MAX_DECISIONS} decisions, got {}",
                req.decisions.len()
            ),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, d) in req.decisions.iter().enumerate() {
        let field = |k: &str| format!("decisions[{i}].{k}");
        let plain = d
            .workload
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if d.workload.is_empty() || d.workload.len() > MAX_NAME_LEN || !plain {
            return Err(ApiError::invalid(
                field("workload"),
                format!(
                    "`{}` is not a workload name: 1 to {MAX_NAME_LEN} letters, digits, `-`, `_` or `.`",
                    graphscale_core::error::quote(&d.workload)
                ),
            ));
        }
        if !seen.insert(d.workload.as_str()) {
            return Err(ApiError::invalid(
                field("workload"),
                format!("`{}` has another decision in this request", d.workload),
            ));
        }
        if d.replicas > MAX_REPLICAS {
            return Err(ApiError::invalid(
                field("replicas"),
                format!("must be at most {MAX_REPLICAS}, got {}", d.replicas),
            ));
        }
        if d.reasons.len() > MAX_REASONS {
            return Err(ApiError::invalid(
                field("reasons"),
                format!("at most {MAX_REASONS} reasons, got {}", d.reasons.len()),
            ));
        }
        for (j, r) in d.reasons.iter().enumerate() {
            if r.rule.len() > MAX_REASON_LEN || r.detail.len() > MAX_REASON_LEN {
                return Err(ApiError::invalid(
                    format!("decisions[{i}].reasons[{j}]"),
                    format!("a rule or detail is at most {MAX_REASON_LEN} bytes"),
                ));
            }
        }
    }
    Ok(())
}

/// `d` as the core's decision (replicas only; resources are left as they are).
pub fn to_scaling(d: &Decision) -> ScalingDecision {
    let mut reasons: Vec<Reason> = d
        .reasons
        .iter()
        .map(|r| Reason::new(r.rule.clone(), r.detail.clone()))
        .collect();
    if reasons.is_empty() {
        reasons.push(Reason::new("api.apply", "set through POST /v1/apply"));
    }
    ScalingDecision {
        workload: d.workload.clone(),
        replicas: d.replicas,
        reasons,
        resources: None,
    }
}

/// An actuator that is also a metric source in this process: the simulator, or anything else
/// behind the core's seams. One request at a time holds it.
pub struct LocalActuator<T> {
    name: String,
    inner: Mutex<T>,
}

impl<T> LocalActuator<T> {
    /// `inner`, reported as `name`.
    pub fn new(name: impl Into<String>, inner: T) -> Self {
        LocalActuator {
            name: name.into(),
            inner: Mutex::new(inner),
        }
    }

    /// Runs `f` on the inner actuator, holding it (a driver steps a simulated cluster so,
    /// between requests).
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // As in `apply_now`: a poisoned lock is taken over.
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl<T> LocalActuator<T>
where
    T: Actuator + MetricSource + Send,
{
    fn apply_now(&self, decisions: &[Decision], dry_run: bool) -> Result<Vec<Applied>, ApiError> {
        // A panic of an earlier request cannot leave the state half-applied (decisions are
        // applied one workload at a time), so a poisoned lock is taken over.
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let before = inner
            .observe()
            .map_err(|e| ApiError::actuator(&self.name, e))?;
        let by_name = before.by_name();
        let mut now = Vec::with_capacity(decisions.len());
        for (i, d) in decisions.iter().enumerate() {
            let Some(w) = by_name.get(d.workload.as_str()) else {
                let mut known: Vec<&str> = by_name.keys().copied().collect();
                known.sort_unstable();
                return Err(ApiError::invalid(
                    format!("decisions[{i}].workload"),
                    format!(
                        "`{}` is not a workload of the {} (known: {})",
                        d.workload,
                        self.name,
                        graphscale_core::error::quote(&known.join(", "))
                    ),
                ));
            };
            now.push(w.spec_replicas);
        }
        let changed: Vec<ScalingDecision> = decisions
            .iter()
            .zip(&now)
            .filter(|(d, n)| d.replicas != **n)
            .map(|(d, _)| to_scaling(d))
            .collect();
        let after = if dry_run || changed.is_empty() {
            None
        } else {
            inner
                .apply(&changed)
                .map_err(|e| ApiError::actuator(&self.name, e))?;
            Some(
                inner
                    .observe()
                    .map_err(|e| ApiError::actuator(&self.name, e))?,
            )
        };
        let after = after.as_ref().map(|s| s.by_name());
        Ok(decisions
            .iter()
            .zip(now)
            .map(|(d, before)| {
                let set = after
                    .as_ref()
                    .and_then(|a| a.get(d.workload.as_str()))
                    .map_or(d.replicas, |w| w.spec_replicas);
                let outcome = if d.replicas == before {
                    Outcome::Unchanged
                } else if dry_run {
                    Outcome::WouldApply
                } else {
                    Outcome::Applied
                };
                let detail = if set != d.replicas {
                    format!(
                        "asked {}, the {} set {set} (its bound)",
                        d.replicas, self.name
                    )
                } else {
                    String::new()
                };
                Applied {
                    workload: d.workload.clone(),
                    before,
                    after: if outcome == Outcome::Unchanged {
                        before
                    } else {
                        set
                    },
                    outcome,
                    detail,
                }
            })
            .collect())
    }
}

impl<T> ApplyTarget for LocalActuator<T>
where
    T: Actuator + MetricSource + Send,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn apply<'a>(&'a self, decisions: &'a [Decision], dry_run: bool) -> ApplyFuture<'a> {
        // In-memory and quick: no thread of its own.
        Box::pin(std::future::ready(self.apply_now(decisions, dry_run)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: &str) -> ApplyRequest {
        crate::auth::parse_body(json.as_bytes()).unwrap()
    }

    #[test]
    fn checks_name_the_decision_that_is_wrong() {
        let e = check(&req(r#"{"decisions": []}"#)).unwrap_err();
        assert_eq!(e.field(), Some("decisions"));
        let e = check(&req(
            r#"{"decisions": [{"workload": "a", "replicas": 1}, {"workload": "a", "replicas": 2}]}"#,
        ))
        .unwrap_err();
        assert_eq!(e.field(), Some("decisions[1].workload"), "{e}");
        let e = check(&req(
            r#"{"decisions": [{"workload": "a b", "replicas": 1}]}"#,
        ))
        .unwrap_err();
        assert_eq!(e.field(), Some("decisions[0].workload"), "{e}");
        let e = check(&req(
            r#"{"decisions": [{"workload": "a", "replicas": 10001}]}"#,
        ))
        .unwrap_err();
        assert_eq!(e.field(), Some("decisions[0].replicas"), "{e}");
        // One decision per name, whatever the kinds.
        let e = check(&req(
            r#"{"decisions": [{"workload": "a", "replicas": 1}, {"workload": "a", "kind": "StatefulSet", "replicas": 2}]}"#,
        ))
        .unwrap_err();
        assert_eq!(e.field(), Some("decisions[1].workload"), "{e}");
        let e = crate::auth::parse_body::<ApplyRequest>(
            br#"{"decisions": [{"workload": "a", "replicas": -1}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("decisions[0].replicas"), "{e}");
    }

    #[test]
    fn decisions_without_reasons_say_where_they_came_from() {
        let d = req(r#"{"decisions": [{"workload": "a", "replicas": 3}]}"#);
        let s = to_scaling(&d.decisions[0]);
        assert_eq!(s.replicas, 3);
        assert_eq!(s.reasons[0].rule, "api.apply");
    }

    #[test]
    fn outcome_names_are_the_serialized_ones() {
        for o in [
            Outcome::Applied,
            Outcome::WouldApply,
            Outcome::Unchanged,
            Outcome::Disabled,
            Outcome::Conflict,
        ] {
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
    }
}
