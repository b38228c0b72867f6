//! Static replicas: the workload keeps a fixed count whatever the load.

use std::collections::BTreeMap;

use graphscale_core::{AppGraph, Autoscaler, ClusterSnapshot, Millis, Reason, ScalingDecision};

use crate::PlanError;

/// Keeps every workload at a fixed replica count: the one named in `replicas`, else its count
/// at the first decision.
#[derive(Debug, Clone)]
pub struct StaticReplicas {
    name: String,
    replicas: BTreeMap<String, u32>,
    sync: Millis,
}

impl StaticReplicas {
    /// `replicas` maps workloads to counts (>= 1); others keep their first observed count.
    pub fn new(replicas: BTreeMap<String, u32>, sync: Millis) -> Result<Self, PlanError> {
        if let Some((w, _)) = replicas.iter().find(|(_, n)| **n == 0) {
            return Err(PlanError::InvalidConfig {
                workload: w.clone(),
                field: "replicas".into(),
                reason: "a static count must be >= 1".into(),
            });
        }
        Ok(StaticReplicas {
            name: "static".into(),
            replicas,
            sync,
        })
    }

    /// With `name` in reports instead of `static`.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

impl Autoscaler for StaticReplicas {
    fn name(&self) -> &str {
        &self.name
    }

    fn sync_period(&self) -> Millis {
        self.sync
    }

    fn decide(&mut self, snapshot: &ClusterSnapshot, _graph: &AppGraph) -> Vec<ScalingDecision> {
        snapshot
            .workloads
            .iter()
            .map(|w| {
                let n = *self
                    .replicas
                    .entry(w.name.clone())
                    .or_insert(w.spec_replicas.max(1));
                ScalingDecision {
                    workload: w.name.clone(),
                    replicas: n,
                    reasons: vec![Reason::new("static", format!("fixed at {n} replicas"))],
                    resources: None,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use graphscale_core::WorkloadObservation;

    #[test]
    fn keeps_the_first_count_and_rejects_zero() {
        assert!(StaticReplicas::new([("a".to_string(), 0)].into(), Millis(15_000)).is_err());
        let mut s = StaticReplicas::new(BTreeMap::new(), Millis(15_000)).unwrap();
        let g = AppGraph::new("g", vec![], vec![]).unwrap();
        let mut snap = ClusterSnapshot {
            time: Millis(0),
            workloads: vec![WorkloadObservation {
                name: "a".into(),
                spec_replicas: 3,
                pods: vec![],
                rps: None,
                latency_p95_ms: None,
                error_rate: None,
                backlog: None,
            }],
            edges: vec![],
        };
        assert_eq!(s.decide(&snap, &g)[0].replicas, 3);
        snap.workloads[0].spec_replicas = 7;
        assert_eq!(s.decide(&snap, &g)[0].replicas, 3);
    }
}
