//! The PredictiveAutoscaler controller, in the shape of kube-rs's controller-rs: a
//! [`reconcile`] per object and event, an [`error_policy`], a shared [`Context`].
//!
//! Each PredictiveAutoscaler has its own control loop ([`graphscale_control::ControlLoop`],
//! fits on training threads) over its [`KubeCluster`]; a reconcile runs one round when one is
//! due (every sync period of its autoscaler) and writes the status. The HPA's decision on the
//! same snapshot (an open-loop shadow) goes into the status beside ours.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use graphscale_control::{catalogue, ControlError, ControlLoop, Round, Stage};
use graphscale_core::{Autoscaler, Millis};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::Mutex;

use crate::actuator::KubeActuator;
use crate::cluster::KubeCluster;
use crate::crd::{
    Mode, PredictiveAutoscaler, PredictiveAutoscalerSpec, PredictiveAutoscalerStatus,
    FIELD_MANAGER, FINALIZER,
};
use crate::metrics::{Metrics, WorkloadRound};
use crate::settings;
use crate::status::{by_workload, condition, outcome_label, rfc3339, workload_status};
use crate::target::Target;
use crate::OperatorError;

/// Settings of the controller.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Namespace to watch; `None`: every namespace.
    pub namespace: Option<String>,
    /// Training threads per PredictiveAutoscaler; default 1.
    pub training_threads: usize,
    /// Offset of a round after a scrape; default 0 (real metrics are scraped continuously).
    pub offset: Millis,
    /// Requeue after a failed reconcile, first; doubled per failure up to 5 minutes. Default 5 s.
    pub error_backoff: Duration,
    /// This replica's name, in Events.
    pub instance: String,
    /// The folder a PredictiveAutoscaler's `checkpoint` is read from; default `/models`.
    pub models_dir: std::path::PathBuf,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            namespace: None,
            training_threads: 1,
            offset: Millis(0),
            error_backoff: Duration::from_secs(5),
            instance: "graphscale-operator".into(),
            models_dir: "/models".into(),
        }
    }
}

type Loop = ControlLoop<Box<dyn Autoscaler + Send>>;
/// (namespace, name) of a PredictiveAutoscaler.
type Key = (String, String);

/// The running state of one PredictiveAutoscaler.
struct State {
    generation: Option<i64>,
    /// The spec the loop was built for, with the mode set to `Off` (a changed mode keeps the
    /// loop, its history and models).
    built_for: PredictiveAutoscalerSpec,
    control: Loop,
    shadow: Loop,
    cluster: KubeCluster,
    target_names: Vec<String>,
    ignored: Vec<String>,
    last_round: Option<Instant>,
    period: Duration,
}

/// What every reconcile shares.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Settings.
    pub config: ControllerConfig,
    reporter: Reporter,
    states: Mutex<HashMap<Key, Arc<Mutex<State>>>>,
    failures: Mutex<HashMap<Key, u32>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config)
            .finish()
    }
}

impl Context {
    /// A context for `client`.
    pub fn new(client: Client, metrics: Arc<Metrics>, config: ControllerConfig) -> Self {
        let reporter = Reporter {
            controller: "graphscale-operator".into(),
            instance: Some(config.instance.clone()),
        };
        Context {
            client,
            metrics,
            config,
            reporter,
            states: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    /// Objects with a running control loop.
    pub async fn running(&self) -> usize {
        self.states.lock().await.len()
    }
}

fn key(pa: &PredictiveAutoscaler) -> Result<(String, String), OperatorError> {
    Ok((
        pa.namespace().ok_or(OperatorError::NoMeta("namespace"))?,
        pa.meta()
            .name
            .clone()
            .ok_or(OperatorError::NoMeta("name"))?,
    ))
}

fn wall_clock() -> Millis {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Millis(d.as_millis() as u64)
}

/// Reconciles one PredictiveAutoscaler: the finalizer, then [`apply`] or [`cleanup`].
pub async fn reconcile(
    pa: Arc<PredictiveAutoscaler>,
    ctx: Arc<Context>,
) -> Result<Action, OperatorError> {
    let started = Instant::now();
    ctx.metrics.reconciles.inc();
    let (ns, _) = key(&pa)?;
    let api: Api<PredictiveAutoscaler> = Api::namespaced(ctx.client.clone(), &ns);
    let out = finalizer(&api, FINALIZER, pa, |event| async {
        match event {
            Finalizer::Apply(pa) => apply(pa, ctx.clone()).await,
            Finalizer::Cleanup(pa) => cleanup(pa, ctx.clone()).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => OperatorError::Finalizer(Box::new(other)),
    });
    ctx.metrics
        .reconcile_seconds
        .observe(started.elapsed().as_secs_f64());
    out
}

/// Requeues a failed reconcile with backoff per object (5 s doubling to 5 minutes).
pub fn error_policy(
    pa: Arc<PredictiveAutoscaler>,
    err: &OperatorError,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics
        .errors
        .get_or_create(&crate::metrics::Kind {
            kind: err.metric_label().into(),
        })
        .inc();
    let n = key(&pa)
        .ok()
        .and_then(|k| {
            ctx.failures.try_lock().ok().map(|mut f| {
                let n = f.entry(k).or_insert(0);
                *n = n.saturating_add(1);
                *n
            })
        })
        .unwrap_or(1);
    let wait = ctx
        .config
        .error_backoff
        .saturating_mul(1 << n.saturating_sub(1).min(6))
        .min(Duration::from_secs(300));
    tracing::warn!(name = %pa.name_any(), error = %err, retry_in = ?wait, "reconcile failed");
    Action::requeue(wait)
}

/// The object as the Events' related object.
fn reference(pa: &PredictiveAutoscaler) -> ObjectReference {
    pa.object_ref(&())
}

async fn build_state(
    pa: &PredictiveAutoscaler,
    ctx: &Context,
    ns: &str,
) -> Result<State, OperatorError> {
    let (spec, ignored) = settings::autoscaler(&pa.spec, &ctx.config.models_dir)?;
    let prom = settings::prom_source(&pa.spec, ns)?;
    let actuator = KubeActuator::new(
        ctx.client.clone(),
        ns.to_string(),
        pa.spec.mode,
        ctx.reporter.clone(),
        reference(pa),
    )
    .with_vertical(pa.spec.vertical)
    .with_take_over(pa.spec.take_over);
    let mut cluster = KubeCluster::new(
        ctx.client.clone(),
        ns.to_string(),
        pa.spec.clone(),
        prom,
        actuator,
    );
    let targets = cluster.refresh_targets().await?.to_vec();
    let facts: Vec<_> = targets.iter().map(Target::facts).collect();
    let autoscaler = catalogue::build_bounded(&spec, &facts).map_err(|e| match e {
        // A checkpoint that cannot be used is the spec's fault: Degraded, naming the field and
        // the reason.
        e @ graphscale_control::ControlError::Checkpoint { .. } => OperatorError::InvalidSpec {
            field: "checkpoint".into(),
            reason: graphscale_core::error::chain(&e),
        },
        e => e.into(),
    })?;
    let period = Duration::from_millis(autoscaler.sync_period().0.max(1000));
    // Prometheus must answer within 80 % of a sync period, or the round holds.
    let cluster = cluster.with_deadline(period.mul_f64(0.8));
    let control =
        ControlLoop::threaded(autoscaler, ctx.config.offset, ctx.config.training_threads)?;
    let hpa = catalogue::build_bounded(&graphscale_control::AutoscalerSpec::named("hpa")?, &facts)?;
    let shadow = ControlLoop::simulated(hpa, ctx.config.offset)?;
    Ok(State {
        generation: pa.meta().generation,
        built_for: without_mode(&pa.spec),
        control,
        shadow,
        cluster,
        target_names: targets.iter().map(|t| t.name.clone()).collect(),
        ignored,
        last_round: None,
        period,
    })
}

fn without_mode(spec: &PredictiveAutoscalerSpec) -> PredictiveAutoscalerSpec {
    PredictiveAutoscalerSpec {
        mode: Mode::Off,
        ..spec.clone()
    }
}

async fn patch_status(
    ctx: &Context,
    pa: &PredictiveAutoscaler,
    status: &PredictiveAutoscalerStatus,
) -> Result<(), OperatorError> {
    let (ns, name) = key(pa)?;
    let api: Api<PredictiveAutoscaler> = Api::namespaced(ctx.client.clone(), &ns);
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let patch = Patch::Merge(json!({ "status": status }));
    crate::actuator::with_retry(
        Default::default(),
        &format!("patch status of PredictiveAutoscaler {ns}/{name}"),
        || api.patch_status(&name, &pp, &patch),
    )
    .await?;
    Ok(())
}

/// The status when no round could run: Ready false, Degraded true, `why` naming the field or
/// the request.
async fn degrade(
    ctx: &Context,
    pa: &PredictiveAutoscaler,
    reason: &str,
    why: &str,
) -> Result<(), OperatorError> {
    let prev = pa.status.clone().unwrap_or_default();
    let g = pa.meta().generation;
    let mut status = prev.clone();
    status.observed_generation = g;
    status.conditions = vec![
        condition(&prev.conditions, "Ready", false, reason, why, g),
        condition(&prev.conditions, "Degraded", true, reason, why, g),
    ];
    patch_status(ctx, pa, &status).await
}

/// Runs a round when one is due and writes the status.
pub async fn apply(
    pa: Arc<PredictiveAutoscaler>,
    ctx: Arc<Context>,
) -> Result<Action, OperatorError> {
    let k = key(&pa)?;
    let (ns, _) = k.clone();
    if pa.spec.mode == Mode::Off {
        ctx.states.lock().await.remove(&k);
        let prev = pa.status.clone().unwrap_or_default();
        let g = pa.meta().generation;
        let status = PredictiveAutoscalerStatus {
            observed_generation: g,
            conditions: vec![condition(
                &prev.conditions,
                "Ready",
                false,
                "Off",
                "mode is Off: no rounds",
                g,
            )],
            ..prev
        };
        patch_status(&ctx, &pa, &status).await?;
        return Ok(Action::await_change());
    }
    let existing = ctx.states.lock().await.get(&k).cloned();
    let mut reuse = None;
    if let Some(s) = existing {
        let mut st = s.lock().await;
        if st.generation == pa.meta().generation {
            drop(st);
            reuse = Some(s);
        } else if st.built_for == without_mode(&pa.spec) {
            // Only the mode changed: the same loop goes on.
            st.generation = pa.meta().generation;
            drop(st);
            reuse = Some(s);
        }
    }
    let state = match reuse {
        Some(s) => s,
        _ => match build_state(&pa, &ctx, &ns).await {
            Ok(s) => {
                let s = Arc::new(Mutex::new(s));
                ctx.states.lock().await.insert(k.clone(), s.clone());
                s
            }
            Err(e) => return settle(&ctx, &pa, &k, e).await,
        },
    };
    let mut st = state.lock().await;
    if let Some(last) = st.last_round {
        let since = last.elapsed();
        if since < st.period {
            return Ok(Action::requeue(st.period - since));
        }
    }
    let started = Instant::now();
    if let Err(e) = st.cluster.refresh_targets().await {
        drop(st);
        return settle(&ctx, &pa, &k, e).await;
    }
    let names: Vec<String> = st
        .cluster
        .targets()
        .iter()
        .map(|t| t.name.clone())
        .collect();
    if names != st.target_names {
        // The selected workloads changed: a new loop for the new set (bounds, facts).
        let gone: Vec<String> = st
            .target_names
            .iter()
            .filter(|n| !names.contains(n))
            .cloned()
            .collect();
        ctx.metrics.forget(&k.0, &gone);
        drop(st);
        ctx.states.lock().await.remove(&k);
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    st.cluster.actuator.set_mode(pa.spec.mode);
    let now = wall_clock();
    let State {
        control, cluster, ..
    } = &mut *st;
    let round = control.round(now, cluster).await;
    st.last_round = Some(started);
    match round {
        Ok(round) => {
            ctx.metrics.rounds.inc();
            let shadow = st.shadow.decide(now, &round.snapshot, &round.graph);
            let shadow: HashMap<String, u32> = shadow
                .decisions
                .into_iter()
                .map(|d| (d.workload, d.replicas))
                .collect();
            let slo_p95_ms = pa.spec.slo.as_ref().map(|s| s.p95_ms);
            ctx.metrics.record_round(
                &k.0,
                now.0 as f64 / 1000.0,
                &round.snapshot,
                &round.decisions,
                |w| WorkloadRound {
                    shadow_hpa: shadow.get(w).copied(),
                    slo_p95_ms,
                },
            );
            let status = round_status(&pa, &st, &round, &shadow, now);
            for o in st.cluster.actuator.outcomes().values() {
                ctx.metrics.outcome(outcome_label(o));
            }
            let period = st.period;
            drop(st);
            ctx.failures.lock().await.remove(&k);
            patch_status(&ctx, &pa, &status).await?;
            Ok(Action::requeue(period))
        }
        Err(ControlError::Round {
            stage: Stage::Actuate,
            source,
            ..
        }) => {
            drop(st);
            // The round decided but a write failed for good: say so; the next round decides
            // again from what the API server then has (every write is absolute).
            let why = format!("actuating: {source}");
            degrade(&ctx, &pa, "ActuationFailed", &why).await?;
            Err(OperatorError::Actuation(source))
        }
        Err(e) => {
            drop(st);
            settle(&ctx, &pa, &k, OperatorError::Control(e)).await
        }
    }
}

/// An error before or in a round: a spec or permission problem becomes a Degraded condition
/// and a slow requeue (no crash loop); anything else goes to the error policy.
async fn settle(
    ctx: &Context,
    pa: &PredictiveAutoscaler,
    k: &(String, String),
    e: OperatorError,
) -> Result<Action, OperatorError> {
    let permanent = matches!(
        e,
        OperatorError::InvalidSpec { .. }
            | OperatorError::MissingTarget { .. }
            | OperatorError::Control(_)
    ) || matches!(e.status_code(), Some(401 | 403 | 404 | 422));
    if !permanent {
        return Err(e);
    }
    ctx.states.lock().await.remove(k);
    let reason = match e.status_code() {
        Some(401 | 403) => "Forbidden",
        _ => match e {
            OperatorError::InvalidSpec { .. } => "InvalidSpec",
            OperatorError::MissingTarget { .. } => "MissingTarget",
            _ => "Failed",
        },
    };
    ctx.metrics
        .errors
        .get_or_create(&crate::metrics::Kind {
            kind: e.metric_label().into(),
        })
        .inc();
    tracing::warn!(name = %pa.name_any(), error = %e, "degraded");
    if let Err(w) = degrade(ctx, pa, reason, &e.to_string()).await {
        tracing::warn!(error = %w, "could not write the Degraded condition");
    }
    Ok(Action::requeue(Duration::from_secs(60)))
}

fn round_status(
    pa: &PredictiveAutoscaler,
    st: &State,
    round: &Round,
    shadow: &HashMap<String, u32>,
    now: Millis,
) -> PredictiveAutoscalerStatus {
    let prev = pa.status.clone().unwrap_or_default();
    let g = pa.meta().generation;
    let decisions = by_workload(&round.decisions);
    let observed = round.snapshot.by_name();
    let age = now.0.saturating_sub(round.snapshot.time.0) as f64 / 1000.0;
    let slo = pa.spec.slo.as_ref().map(|s| s.p95_ms);
    let outcomes = st.cluster.actuator.outcomes();
    let targets = st.cluster.targets();
    let workloads: Vec<_> = targets
        .iter()
        .map(|t| {
            workload_status(
                t,
                decisions.get(t.name.as_str()).copied(),
                outcomes.get(&t.name),
                shadow.get(&t.name).copied(),
                observed.get(t.name.as_str()).and_then(|w| w.latency_p95_ms),
                slo,
                now,
                age,
                crate::status::reason_budget(targets.len()),
            )
        })
        .collect();
    let conflicts: Vec<String> = targets
        .iter()
        .filter_map(|t| t.conflict.as_ref().map(|c| format!("{} ({c})", t.name)))
        .collect();
    let warming: Vec<&str> = round
        .decisions
        .iter()
        .filter(|d| {
            d.reasons.iter().any(|r| {
                matches!(
                    r.rule.as_str(),
                    "forecast.warmup" | "forecast.training" | "forecast.failed"
                )
            })
        })
        .map(|d| d.workload.as_str())
        .collect();
    let metrics = &st.cluster.metrics_problem;
    let mut ready_msg = format!(
        "round at {} on {} workloads with {} (mode {:?})",
        rfc3339(now),
        targets.len(),
        pa.spec.autoscaler,
        pa.spec.mode
    );
    if !st.ignored.is_empty() {
        ready_msg.push_str(&format!("; {}", st.ignored.join("; ")));
    }
    let c = &prev.conditions;
    let conditions = vec![
        condition(c, "Ready", true, "RoundRan", ready_msg, g),
        match metrics {
            None => condition(
                c,
                "MetricsAvailable",
                true,
                "Observed",
                "every target has metrics",
                g,
            ),
            Some(why) => condition(
                c,
                "MetricsAvailable",
                false,
                "MetricsMissing",
                why.clone(),
                g,
            ),
        },
        if warming.is_empty() {
            condition(
                c,
                "ModelReady",
                true,
                "Forecasting",
                "every workload's forecast is ready",
                g,
            )
        } else {
            condition(
                c,
                "ModelReady",
                false,
                "WarmingUp",
                format!(
                    "{} workloads plan on the observed rate for now: {}",
                    warming.len(),
                    warming
                        .iter()
                        .take(5)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                g,
            )
        },
        match metrics {
            None => condition(c, "Degraded", false, "Healthy", "", g),
            Some(why) => condition(
                c,
                "Degraded",
                true,
                "MetricsMissing",
                format!("held: {why}"),
                g,
            ),
        },
        if conflicts.is_empty() || pa.spec.take_over {
            condition(
                c,
                "Conflict",
                false,
                "NoConflict",
                if conflicts.is_empty() {
                    String::new()
                } else {
                    format!("taken over: {}", conflicts.join(", "))
                },
                g,
            )
        } else {
            condition(
                c,
                "Conflict",
                true,
                "OtherScaler",
                format!("left alone: {}", conflicts.join(", ")),
                g,
            )
        },
    ];
    PredictiveAutoscalerStatus {
        observed_generation: g,
        conditions,
        rounds: st.control.rounds(),
        last_round: Some(rfc3339(now)),
        workload_count: targets.len() as u32,
        sync_period_seconds: Some(st.period.as_secs_f64()),
        workloads,
    }
}

/// Drops the object's control loop; the workloads keep the replicas they have.
pub async fn cleanup(
    pa: Arc<PredictiveAutoscaler>,
    ctx: Arc<Context>,
) -> Result<Action, OperatorError> {
    let k = key(&pa)?;
    // Its per-workload series go: those of its loop, else those its status names (a loop
    // stopped by a permanent error keeps its series, so the forecast shows as stale).
    let mut names: Vec<String> = pa
        .status
        .iter()
        .flat_map(|s| s.workloads.iter().map(|w| w.name.clone()))
        .collect();
    if let Some(st) = ctx.states.lock().await.remove(&k) {
        names.extend(st.lock().await.target_names.iter().cloned());
    }
    ctx.metrics.forget(&k.0, &names);
    ctx.failures.lock().await.remove(&k);
    tracing::info!(namespace = %k.0, name = %k.1, "deleted: control loop stopped");
    Ok(Action::await_change())
}

/// Runs the controller until `shutdown` resolves (graceful: reconciles in flight finish).
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let api: Api<PredictiveAutoscaler> = match &ctx.config.namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    Controller::new(api, watcher::Config::default().any_semantic())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "reconcile result");
            }
        })
        .await;
}
