//! A trained policy as an autoscaler: every sync period it builds the observation from the
//! snapshot ([`crate::features`]), runs the network forward and proposes, per workload, the
//! most likely replica change. It implements [`Propose`], so
//! [`graphscale_plan::guarded::Guarded`] wraps it: the safety rules (fallback, no scale-down on
//! missing data, hysteresis, cooldowns, step limits, bounds) apply to every action.
//!
//! A snapshot the policy cannot read (a workload missing) proposes nothing for any workload,
//! with the reason, so the safety layer holds or falls back; a workload with a missing metric
//! is proposed with its health marked missing.

use std::path::Path;

use burn::tensor::Device;
use graphscale_core::{AppGraph, ClusterSnapshot, Millis, Reason, WorkloadFacts};
use graphscale_plan::guarded::{Propose, WorkloadPlan};
use graphscale_plan::safety::{Health, Proposal};

use crate::checkpoint::{self, Manifest};
use crate::features::{ObsBuilder, DELTAS, NODE_FEATURES};
use crate::policy::{GraphTensors, ObsBatch, PolicyNet};
use crate::ppo::{greedy, to_vec};
use crate::RlError;

/// A trained policy proposing replica changes.
pub struct RlPolicy {
    name: String,
    net: PolicyNet,
    graph: GraphTensors,
    builder: ObsBuilder,
    manifest: Manifest,
    sync: Millis,
}

impl RlPolicy {
    /// The policy in the checkpoint at `path`, named `name`, for workloads with `facts`: every
    /// workload the policy scales must be among them, and no other.
    pub fn load(name: &str, path: &Path, facts: &[WorkloadFacts]) -> Result<Self, RlError> {
        let device = Device::flex();
        let (net, manifest) = checkpoint::load(path, &device)?;
        let want: Vec<&str> = manifest
            .graph
            .workloads
            .iter()
            .map(String::as_str)
            .collect();
        let mut have: Vec<&str> = facts.iter().map(|f| f.name.as_str()).collect();
        have.sort_unstable();
        let mut sorted = want.clone();
        sorted.sort_unstable();
        if have != sorted {
            return Err(RlError::Layout {
                what: format!(
                    "{}: the policy was trained on app `{}` with workloads [{}]; this app has [{}]",
                    path.display(),
                    manifest.app,
                    want.join(", "),
                    have.join(", ")
                ),
            });
        }
        Ok(RlPolicy {
            name: name.to_string(),
            graph: GraphTensors::new(&manifest.graph, &device),
            builder: ObsBuilder::new(manifest.graph.clone()),
            sync: Millis::from_secs(manifest.env.sync_s),
            net,
            manifest,
        })
    }

    /// The checkpoint's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn plans(&mut self, snapshot: &ClusterSnapshot) -> Result<Vec<WorkloadPlan>, RlError> {
        let obs = self.builder.build(snapshot)?;
        let g = self.builder.graph();
        let n = g.len();
        let batch = ObsBatch::new(&[&obs], n, &Device::flex())?;
        let (logits, value) = self.net.forward(&batch, &self.graph);
        let logits = to_vec(logits)?;
        let value = to_vec(value)?.first().copied().unwrap_or(f32::NAN);
        let actions = greedy(&logits);
        let enc = self.manifest.encoder.name();
        Ok(actions
            .iter()
            .enumerate()
            .map(|(i, &a)| {
                let row = &logits[i * DELTAS.len()..(i + 1) * DELTAS.len()];
                let max = row.iter().fold(f32::NEG_INFINITY, |x, &y| x.max(y));
                let z: f32 = row.iter().map(|l| (l - max).exp()).sum();
                let p = 1.0 / z;
                let spec = obs.spec[i];
                let missing = obs.nodes[i * NODE_FEATURES + NODE_FEATURES - 1] > 0.5;
                let replicas = g.target(i, spec, a).ok();
                WorkloadPlan {
                    workload: g.workloads[i].clone(),
                    proposal: Proposal {
                        replicas,
                        relative_width: None,
                        reasons: vec![Reason::new(
                            "rl-policy",
                            format!(
                                "the {enc} policy ({} updates) chose {:+} replicas from {spec} (probability {p:.2}; value of the state {value:.2})",
                                self.manifest.updates, DELTAS[a]
                            ),
                        )],
                        hpa_rule: None,
                    },
                    health: Some(Health {
                        missing: missing.then(|| "a metric of the observation is missing".to_string()),
                        stale: None,
                        recent_error: None,
                    }),
                    resize: None,
                    cpu: None,
                }
            })
            .collect())
    }
}

impl Propose for RlPolicy {
    fn name(&self) -> &str {
        &self.name
    }

    fn sync_period(&self) -> Millis {
        self.sync
    }

    fn propose(&mut self, snapshot: &ClusterSnapshot, _graph: &AppGraph) -> Vec<WorkloadPlan> {
        let _span = tracing::debug_span!("rl_propose", policy = %self.name).entered();
        match self.plans(snapshot) {
            Ok(p) => p,
            Err(e) => snapshot
                .workloads
                .iter()
                .map(|w| WorkloadPlan {
                    workload: w.name.clone(),
                    proposal: Proposal {
                        replicas: None,
                        relative_width: None,
                        reasons: vec![Reason::new("rl-policy", format!("no plan: {e}"))],
                        hpa_rule: None,
                    },
                    health: None,
                    resize: None,
                    cpu: None,
                })
                .collect(),
        }
    }
}
