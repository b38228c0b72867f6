//! `sim serve --follow-cluster`: the simulator as the digital twin of a namespace.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use graphscale_core::{Actuator, PodResources, ScalingDecision};
use graphscale_operator::twin::{Twin, TwinService};
use graphscale_sim::engine::Simulator;
use graphscale_sim::spec::AppSpec;

/// How often the twin reads the API server.
const EVERY: Duration = Duration::from_secs(1);

/// The twin's loop state.
pub(crate) struct Follow {
    twin: Twin,
    resources: BTreeMap<String, PodResources>,
    replicas: BTreeMap<String, u32>,
    last: Option<Instant>,
    failing: bool,
}

impl Follow {
    /// Registers `app`'s services as Deployments of `namespace` (those missing).
    pub(crate) async fn start(app: &AppSpec, namespace: &str) -> Result<Self> {
        let twin = Twin::connect(namespace).await.context("--follow-cluster")?;
        let services: Vec<TwinService> = app
            .services
            .iter()
            .map(|s| TwinService {
                name: s.name.clone(),
                replicas: s.initial_replicas.max(1),
                resources: PodResources {
                    requests: s.requests,
                    limits: s.limits,
                },
            })
            .collect();
        let created = twin.register(&services).await?;
        crate::say!(
            "twin: {created} of {} Deployments created in namespace {namespace}",
            services.len()
        )?;
        Ok(Follow {
            twin,
            resources: services
                .iter()
                .map(|s| (s.name.clone(), s.resources))
                .collect(),
            replicas: BTreeMap::new(),
            last: None,
            failing: false,
        })
    }

    /// At most once a second: the API server's replicas and resources to the simulator. An
    /// API server that does not answer leaves the simulated pods as they are.
    pub(crate) async fn follow(&mut self, sim: &mut Simulator) {
        if self.last.is_some_and(|t| t.elapsed() < EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        let desired = match self.twin.desired().await {
            Ok(d) => {
                if self.failing {
                    tracing::info!("twin: API server answers again");
                }
                self.failing = false;
                d
            }
            Err(e) => {
                if !self.failing {
                    tracing::warn!(error = %e, "twin: API server unreachable; pods held");
                }
                self.failing = true;
                return;
            }
        };
        let mut decisions = Vec::new();
        for (name, d) in desired {
            if !self.resources.contains_key(&name) {
                continue;
            }
            let resources = d.resources.filter(|r| self.resources.get(&name) != Some(r));
            if self.replicas.get(&name) == Some(&d.replicas) && resources.is_none() {
                continue;
            }
            if let Some(r) = resources {
                self.resources.insert(name.clone(), r);
            }
            self.replicas.insert(name.clone(), d.replicas);
            decisions.push(ScalingDecision {
                workload: name,
                replicas: d.replicas,
                reasons: Vec::new(),
                resources,
            });
        }
        if !decisions.is_empty() {
            if let Err(e) = sim.apply(&decisions) {
                tracing::warn!(error = %e, "twin: the simulator refused a change");
            }
        }
    }
}
