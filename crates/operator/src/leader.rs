//! Leader election with a `coordination.k8s.io/v1` Lease: of several operator replicas, the
//! one holding the Lease acts; the others wait and take it over when it is not renewed within
//! its duration. Every write carries the Lease's `resourceVersion`, so two candidates never
//! both win (the API server answers the second with 409).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::Client;
use tokio::sync::watch;

use crate::crd::FIELD_MANAGER;
use crate::OperatorError;

/// Lease settings.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Its name; default `graphscale-operator` (one per shard).
    pub name: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a Lease holds without renewal; default 15 s.
    pub duration: Duration,
    /// How often the holder renews and the others retry; default 5 s.
    pub renew_every: Duration,
}

impl LeaseConfig {
    /// Settings with the defaults.
    pub fn new(namespace: impl Into<String>, identity: impl Into<String>) -> Self {
        LeaseConfig {
            namespace: namespace.into(),
            name: "graphscale-operator".into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
        }
    }
}

/// One candidate.
#[derive(Debug, Clone)]
pub struct LeaderElector {
    api: Api<Lease>,
    cfg: LeaseConfig,
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

impl LeaderElector {
    /// A candidate for the Lease `cfg` names.
    pub fn new(client: Client, cfg: LeaseConfig) -> Self {
        LeaderElector {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
        }
    }

    fn spec(&self, transitions: i32, acquired: Option<MicroTime>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.cfg.identity.clone()),
            lease_duration_seconds: Some(self.cfg.duration.as_secs().max(1) as i32),
            acquire_time: acquired.or_else(|| Some(now())),
            renew_time: Some(now()),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// One attempt to take or keep the Lease: `true` when this candidate holds it now.
    pub async fn try_acquire(&self) -> Result<bool, OperatorError> {
        let name = &self.cfg.name;
        let action = format!("get Lease {}/{name}", self.cfg.namespace);
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        let Some(mut lease) = self
            .api
            .get_opt(name)
            .await
            .map_err(OperatorError::kube(action))?
        else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(self.cfg.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(self.spec(0, None)),
            };
            return match self.api.create(&pp, &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(OperatorError::Kube {
                    action: format!("create Lease {}/{name}", self.cfg.namespace),
                    source: e,
                }),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let mine = spec.holder_identity.as_deref() == Some(self.cfg.identity.as_str());
        let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
            (Some(t), Some(d)) => {
                let until = t.0.as_millisecond() + i64::from(d) * 1000;
                Timestamp::now().as_millisecond() > until
            }
            _ => true,
        };
        let free = spec.holder_identity.as_deref().is_none_or(str::is_empty);
        if !(mine || expired || free) {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let acquired = if mine { spec.acquire_time } else { None };
        lease.spec = Some(self.spec(transitions, acquired));
        match self.api.replace(name, &pp, &lease).await {
            Ok(_) => Ok(true),
            // Somebody else wrote it first.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(OperatorError::Kube {
                action: format!("update Lease {}/{name}", self.cfg.namespace),
                source: e,
            }),
        }
    }

    /// Gives the Lease up (on graceful shutdown), so another replica need not wait for it to
    /// expire. A Lease held by someone else is left alone.
    pub async fn release(&self) -> Result<(), OperatorError> {
        let name = &self.cfg.name;
        let Some(mut lease) = self
            .api
            .get_opt(name)
            .await
            .map_err(OperatorError::kube(format!("get Lease {name}")))?
        else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        lease.spec = Some(spec);
        match self.api.replace(name, &PostParams::default(), &lease).await {
            Ok(_) | Err(kube::Error::Api(_)) => Ok(()),
            Err(e) => Err(OperatorError::Kube {
                action: format!("release Lease {name}"),
                source: e,
            }),
        }
    }

    /// Campaigns until `stop` turns true: publishes on `leader` whether this candidate holds
    /// the Lease, renewing it every `renew_every`. Losing the Lease (not renewed in time, or an
    /// error for longer than its duration) publishes `false`. Releases it on stop.
    pub async fn run(self, leader: watch::Sender<bool>, mut stop: watch::Receiver<bool>) {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            let held = match self.try_acquire().await {
                Ok(h) => {
                    last_ok = tokio::time::Instant::now();
                    h
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lease: attempt failed");
                    // Keep leading only while the Lease cannot have expired.
                    *leader.borrow() && last_ok.elapsed() < self.cfg.duration
                }
            };
            if *leader.borrow() != held {
                tracing::info!(identity = %self.cfg.identity, held, "lease: leadership changed");
            }
            leader.send_replace(held);
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.renew_every) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        if *leader.borrow() {
            if let Err(e) = self.release().await {
                tracing::warn!(error = %e, "lease: release failed");
            }
        }
        leader.send_replace(false);
    }
}
