//! The one control loop: at every round of its [`Schedule`], the graph from the topology
//! source, a snapshot from the metric source, the autoscaler's observe-train-decide, and the
//! decisions to the actuator.
//!
//! ```text
//!  Cluster::topology -> AppGraph ----------+
//!  Cluster::observe  -> ClusterSnapshot ---+-> Autoscaler::observe -> training_jobs -> TrainingRunner
//!                                          |                                              |
//!                                          |   Autoscaler::install <- ready(now) <--------+
//!                                          +-> Autoscaler::decide  -> Cluster::apply
//! ```
//!
//! The same loop drives the simulator (a synchronous [`SyncCluster`], rounds on simulated time,
//! [`SimulatedTraining`]) and a real cluster ([`Seams`] over the async seams, [`ThreadTraining`]).
//! The round itself is one async function; over synchronous seams it completes at its first
//! poll, so [`ControlLoop::round_now`] runs it without an executor.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use graphscale_core::{
    Actuator, AppGraph, AsyncActuator, AsyncMetricSource, AsyncTopologySource, Autoscaler, Clock,
    ClusterSnapshot, MetricSource, Millis, ScalingDecision, TopologySource,
};
use tracing::Instrument;

use crate::error::Stage;
use crate::schedule::Schedule;
use crate::training::{SimulatedTraining, ThreadTraining, TrainingRunner};
use crate::ControlError;

/// A seam's error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The cluster as the control loop reaches it: topology, metrics, actuation.
pub trait Cluster: Send {
    /// The current graph.
    fn topology(&mut self) -> impl Future<Output = Result<AppGraph, BoxError>> + Send;
    /// The topology's version when the source can tell cheaply ([`TopologySource::version`]);
    /// `None` (default): the loop reads the topology every round.
    fn topology_version(&mut self) -> Option<u64> {
        None
    }
    /// The current snapshot.
    fn observe(&mut self) -> impl Future<Output = Result<ClusterSnapshot, BoxError>> + Send;
    /// Applies the decisions.
    fn apply(
        &mut self,
        decisions: &[ScalingDecision],
    ) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// Three async seams (or sync ones, through the core blanket impls) as one [`Cluster`]: the
/// Prometheus source for metrics and topology, the Kubernetes actuator, or fakes in tests.
#[derive(Debug)]
pub struct Seams<M, T, X> {
    /// The metric source.
    pub metrics: M,
    /// The topology source.
    pub topology: T,
    /// The actuator.
    pub actuator: X,
}

impl<M: AsyncMetricSource, T: AsyncTopologySource, X: AsyncActuator> Cluster for Seams<M, T, X> {
    async fn topology(&mut self) -> Result<AppGraph, BoxError> {
        self.topology
            .topology_async()
            .await
            .map_err(|e| Box::new(e) as BoxError)
    }

    async fn observe(&mut self) -> Result<ClusterSnapshot, BoxError> {
        self.metrics
            .observe_async()
            .await
            .map_err(|e| Box::new(e) as BoxError)
    }

    async fn apply(&mut self, decisions: &[ScalingDecision]) -> Result<(), BoxError> {
        self.actuator
            .apply_async(decisions)
            .await
            .map_err(|e| Box::new(e) as BoxError)
    }
}

/// One value that is metric source, topology source and actuator at once (the simulator).
#[derive(Debug)]
pub struct SyncCluster<'a, C>(pub &'a mut C);

impl<C> Cluster for SyncCluster<'_, C>
where
    C: MetricSource + TopologySource + Actuator + Send,
{
    fn topology(&mut self) -> impl Future<Output = Result<AppGraph, BoxError>> + Send {
        std::future::ready(TopologySource::topology(&*self.0).map_err(|e| Box::new(e) as BoxError))
    }

    fn topology_version(&mut self) -> Option<u64> {
        TopologySource::version(&*self.0)
    }

    fn observe(&mut self) -> impl Future<Output = Result<ClusterSnapshot, BoxError>> + Send {
        std::future::ready(MetricSource::observe(self.0).map_err(|e| Box::new(e) as BoxError))
    }

    fn apply(
        &mut self,
        decisions: &[ScalingDecision],
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        std::future::ready(Actuator::apply(self.0, decisions).map_err(|e| Box::new(e) as BoxError))
    }
}

/// What one round saw and did.
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    /// When it ran.
    pub time: Millis,
    /// The graph it decided on (shared with the loop, which keeps it while its version holds).
    pub graph: Arc<AppGraph>,
    /// What the autoscaler saw.
    pub snapshot: ClusterSnapshot,
    /// What it decided, with reasons (as applied).
    pub decisions: Vec<ScalingDecision>,
    /// Training jobs handed out in this round.
    pub jobs_handed_out: usize,
    /// Trained models installed before this round's decision.
    pub models_installed: usize,
    /// Wall time of `Autoscaler::decide` alone (a measurement for benchmarks and metrics; no
    /// decision depends on it).
    pub decide_time: Duration,
}

/// The autoscaler's part of a round ([`ControlLoop::decide`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    /// The decisions.
    pub decisions: Vec<ScalingDecision>,
    /// Training jobs handed out.
    pub jobs_handed_out: usize,
    /// Trained models installed before the decision.
    pub models_installed: usize,
    /// Wall time of `Autoscaler::decide` alone.
    pub decide_time: Duration,
}

/// The control loop. See the module documentation.
pub struct ControlLoop<A> {
    autoscaler: A,
    schedule: Schedule,
    training: Box<dyn TrainingRunner>,
    rounds: u64,
    /// The newest graph and its version, when the topology source has versions.
    graph: Option<(u64, Arc<AppGraph>)>,
}

impl<A: Autoscaler> std::fmt::Debug for ControlLoop<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlLoop")
            .field("autoscaler", &self.autoscaler.name())
            .field("schedule", &self.schedule)
            .field("rounds", &self.rounds)
            .finish()
    }
}

impl<A: Autoscaler> ControlLoop<A> {
    /// A loop running `autoscaler` on `schedule`, its fits on `training`.
    pub fn new(autoscaler: A, schedule: Schedule, training: Box<dyn TrainingRunner>) -> Self {
        ControlLoop {
            autoscaler,
            schedule,
            training,
            rounds: 0,
            graph: None,
        }
    }

    /// A loop for a simulated cluster: rounds every sync period of the autoscaler at `offset`
    /// after each scrape, fits installed after their modelled training time.
    pub fn simulated(autoscaler: A, offset: Millis) -> Result<Self, ControlError> {
        let schedule = Schedule::new(autoscaler.sync_period(), offset)?;
        Ok(Self::new(
            autoscaler,
            schedule,
            Box::<SimulatedTraining>::default(),
        ))
    }

    /// A loop for a real cluster: fits on `threads` training threads, installed when done.
    pub fn threaded(autoscaler: A, offset: Millis, threads: usize) -> Result<Self, ControlError> {
        let schedule = Schedule::new(autoscaler.sync_period(), offset)?;
        Ok(Self::new(
            autoscaler,
            schedule,
            Box::new(ThreadTraining::new(threads)),
        ))
    }

    /// The schedule.
    pub fn schedule(&self) -> Schedule {
        self.schedule
    }

    /// The autoscaler.
    pub fn autoscaler(&self) -> &A {
        &self.autoscaler
    }

    /// The autoscaler, mutable.
    pub fn autoscaler_mut(&mut self) -> &mut A {
        &mut self.autoscaler
    }

    /// Rounds run so far.
    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    /// Training jobs not yet installed.
    pub fn training_pending(&self) -> usize {
        self.training.pending()
    }

    /// Waits for every training job handed out and installs the results; returns how many.
    pub fn finish_training(&mut self) -> usize {
        let done = self.training.wait();
        let n = done.len();
        for (id, trained) in done {
            self.autoscaler.install(id, trained);
        }
        n
    }

    /// The autoscaler's part of a round, open loop: observe, hand out and install fits,
    /// decide. `now` is the training runner's clock.
    pub fn decide(&mut self, now: Millis, snapshot: &ClusterSnapshot, graph: &AppGraph) -> Decided {
        self.autoscaler.observe(snapshot, graph);
        let jobs = self.autoscaler.training_jobs();
        let handed = jobs.len();
        self.training.submit(now, jobs);
        let ready = self.training.ready(now);
        let installed = ready.len();
        for (id, trained) in ready {
            self.autoscaler.install(id, trained);
        }
        let started = Instant::now();
        let decisions = {
            let span = tracing::debug_span!("decide", workloads = snapshot.workloads.len());
            let _e = span.enter();
            self.autoscaler.decide(snapshot, graph)
        };
        let decide_time = started.elapsed();
        // Fits that fell due in the decision itself.
        let late = self.autoscaler.training_jobs();
        let handed = handed + late.len();
        self.training.submit(now, late);
        Decided {
            decisions,
            jobs_handed_out: handed,
            models_installed: installed,
            decide_time,
        }
    }

    /// One round at `now` on `cluster`.
    pub async fn round<C: Cluster>(
        &mut self,
        now: Millis,
        cluster: &mut C,
    ) -> Result<Round, ControlError> {
        let span = tracing::info_span!("round", time = %now, autoscaler = self.autoscaler.name());
        async move {
            let fail = |stage: Stage| {
                move |source: BoxError| ControlError::Round {
                    time: now,
                    stage,
                    source,
                }
            };
            let version = cluster.topology_version();
            let graph = match (&self.graph, version) {
                (Some((v, g)), Some(now_v)) if *v == now_v => Arc::clone(g),
                _ => {
                    let g = Arc::new(cluster.topology().await.map_err(fail(Stage::Topology))?);
                    self.graph = version.map(|v| (v, Arc::clone(&g)));
                    g
                }
            };
            let snapshot = cluster.observe().await.map_err(fail(Stage::Metrics))?;
            let Decided {
                decisions,
                jobs_handed_out,
                models_installed,
                decide_time,
            } = self.decide(now, &snapshot, &graph);
            cluster
                .apply(&decisions)
                .await
                .map_err(fail(Stage::Actuate))?;
            self.rounds += 1;
            Ok(Round {
                time: now,
                graph,
                snapshot,
                decisions,
                jobs_handed_out,
                models_installed,
                decide_time,
            })
        }
        .instrument(span)
        .await
    }

    /// One round at `now` over synchronous seams, without an executor.
    pub fn round_now<C>(&mut self, now: Millis, cluster: &mut C) -> Result<Round, ControlError>
    where
        C: MetricSource + TopologySource + Actuator + Send,
    {
        let mut sync = SyncCluster(cluster);
        now_or_never(self.round(now, &mut sync))
            .unwrap_or(Err(ControlError::NotReady { time: now }))
    }

    /// A round if one is due at the cluster's time (the simulator's step loop calls this after
    /// every step).
    pub fn tick<C>(&mut self, cluster: &mut C) -> Result<Option<Round>, ControlError>
    where
        C: MetricSource + TopologySource + Actuator + Clock + Send,
    {
        let now = cluster.now();
        if !self.schedule.is_due(now) {
            return Ok(None);
        }
        self.round_now(now, cluster).map(Some)
    }
}

/// Polls `f` once: its output if it is ready.
fn now_or_never<F: Future>(f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}
