//! A graph model inside a control loop: [`OnlineGraphModel`] implements the core
//! [`JointForecaster`] seam. It records one row of node and edge metrics per sync; once it has
//! `min_history` rows, and again every `refit_every` syncs, it hands out a training job
//! ([`graphscale_core::training`]) that trains a graph model ([`crate::graphmodel`]) on a copy of
//! its history; the control loop runs the job off the decision path and installs the model.
//! Every sync it forecasts every service's request rate (the median quantile) from the newest
//! window with the newest installed model, never training.
//!
//! The model sees the application graph (services, queues, topics and their edges,
//! [`AppGraph::application`]): a pod that moves to another cluster node changes nothing. When a
//! service, queue or edge appears or goes, the rows keep their data (they are keyed by name), the
//! installed model keeps forecasting on the graph it was trained on while every service of that
//! graph is still observed, and a retraining on the new graph falls due at once.

use std::collections::{BTreeMap, VecDeque};

use graphscale_core::series::EdgeSeries;
use graphscale_core::{
    AppGraph, ClusterSnapshot, GraphSeries, JobId, JointForecaster, Metric, Millis, NoForecast,
    PodPhase, Relation, Trained, TrainingJob,
};

use crate::graphdata::NODE_METRICS;
use crate::graphmodel::{train, GraphModel, GraphModelConfig, Kind, Prepared};

/// Settings of the online model.
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineConfig {
    /// The network and its training settings (`test_share` is set to 0: every row trains or
    /// validates).
    pub model: GraphModelConfig,
    /// Rows before the first training.
    pub min_history: usize,
    /// Rows kept (the newest).
    pub history: usize,
    /// Syncs between trainings.
    pub refit_every: usize,
    /// Step between rows, ms (the sync period).
    pub step_ms: u64,
    /// Modelled training time, ms of simulated time: a model is installed this long after its
    /// job was handed out (a training takes seconds; default 15 000, the next sync).
    pub training_ms: u64,
}

impl Default for OnlineConfig {
    /// Trains after 10 minutes at 15 s and every 10 minutes on the last 2 hours.
    fn default() -> Self {
        OnlineConfig {
            model: GraphModelConfig {
                epochs: 30,
                ..GraphModelConfig::default()
            },
            min_history: 40,
            history: 480,
            refit_every: 40,
            step_ms: 15_000,
            training_ms: 15_000,
        }
    }
}

type EdgeKey = (String, String, Relation);

/// One sync's observations.
#[derive(Debug, Clone, Default)]
struct Row {
    nodes: BTreeMap<String, [f64; NODE_METRICS.len()]>,
    edges: BTreeMap<EdgeKey, f64>,
}

/// A graph model trained and used online.
pub struct OnlineGraphModel {
    kind: Kind,
    cfg: OnlineConfig,
    graph: Option<AppGraph>,
    rows: VecDeque<Row>,
    model: Option<GraphModel>,
    /// Forecasts since the newest installed model's data ended.
    since_fit: usize,
    trainings: usize,
    /// The training handed out and not yet installed, with the forecasts made since.
    in_flight: Option<(JobId, usize)>,
    /// Why the last training failed, while there is no model.
    failure: Option<String>,
    /// The graph changed since the installed model's training: retrain at once.
    stale_graph: bool,
}

/// What a training job of the online model produces.
type TrainResult = Result<GraphModel, crate::NnError>;

impl std::fmt::Debug for OnlineGraphModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnlineGraphModel")
            .field("kind", &self.kind)
            .field("rows", &self.rows.len())
            .field("trainings", &self.trainings)
            .finish()
    }
}

impl OnlineGraphModel {
    /// A `kind` model with `cfg`.
    pub fn new(kind: Kind, mut cfg: OnlineConfig) -> Self {
        cfg.model.test_share = 0.0;
        OnlineGraphModel {
            kind,
            cfg,
            graph: None,
            rows: VecDeque::new(),
            model: None,
            since_fit: 0,
            trainings: 0,
            in_flight: None,
            failure: None,
            stale_graph: false,
        }
    }

    /// A model warm-started from `model` (a checkpoint written by `graphscale train`): it
    /// forecasts as soon as it has observed one window of the checkpoint's graph, and retrains
    /// online on schedule, with the checkpoint's network settings, like [`OnlineGraphModel::new`]'s
    /// (at once when the observed graph is not the checkpoint's). The checkpoint must have been
    /// trained at the sync period (`cfg.step_ms`): its horizon steps are that long.
    pub fn warm(model: GraphModel, mut cfg: OnlineConfig) -> Result<Self, crate::NnError> {
        if model.step_ms != cfg.step_ms {
            return Err(crate::NnError::Data {
                what: format!(
                    "the checkpoint was trained on {} ms steps; the autoscaler syncs every {} ms",
                    model.step_ms, cfg.step_ms
                ),
            });
        }
        cfg.model = GraphModelConfig {
            epochs: cfg.model.epochs,
            ..model.config.clone()
        };
        let mut m = OnlineGraphModel::new(model.kind, cfg);
        m.model = Some(model);
        Ok(m)
    }

    /// The installed model (the checkpoint's until a training is installed), to save it.
    pub fn model(&self) -> Option<&GraphModel> {
        self.model.as_ref()
    }

    /// Trainings installed so far.
    pub fn trainings(&self) -> usize {
        self.trainings
    }

    fn min_rows(&self) -> usize {
        self.cfg.min_history.max(self.cfg.model.window)
    }

    /// The rows as a series on `graph`, the newest `last` of them (all when `None`).
    fn series(&self, graph: &AppGraph, last: Option<usize>) -> GraphSeries {
        let skip = last.map_or(0, |n| self.rows.len().saturating_sub(n));
        let len = self.rows.len() - skip;
        let mut s = GraphSeries::new(graph.clone(), 0, self.cfg.step_ms, len);
        for (t, row) in self.rows.iter().skip(skip).enumerate() {
            for (id, vals) in row.nodes.iter().filter(|(id, _)| graph.node(id).is_some()) {
                let m = s.nodes.entry(id.clone()).or_default();
                for (f, metric) in NODE_METRICS.iter().enumerate() {
                    if vals[f].is_finite() {
                        m.entry(*metric).or_insert_with(|| vec![f64::NAN; len])[t] = vals[f];
                    }
                }
            }
        }
        let mut edges: BTreeMap<EdgeKey, Vec<f64>> = BTreeMap::new();
        let known: std::collections::BTreeSet<EdgeKey> = graph
            .edges
            .iter()
            .map(|e| (e.src.clone(), e.dst.clone(), e.relation))
            .collect();
        for (t, row) in self.rows.iter().skip(skip).enumerate() {
            for (k, v) in row.edges.iter().filter(|(k, _)| known.contains(*k)) {
                edges
                    .entry(k.clone())
                    .or_insert_with(|| vec![f64::NAN; len])[t] = *v;
            }
        }
        s.edges = edges
            .into_iter()
            .map(|((src, dst, relation), v)| EdgeSeries {
                src,
                dst,
                relation,
                metrics: [(Metric::Rps, v)].into_iter().collect(),
            })
            .collect();
        s
    }
}

fn finite(v: Option<f64>) -> f64 {
    v.filter(|x| x.is_finite()).unwrap_or(f64::NAN)
}

impl JointForecaster for OnlineGraphModel {
    fn name(&self) -> String {
        self.kind.name().into()
    }

    fn observe(&mut self, snapshot: &ClusterSnapshot, graph: &AppGraph) {
        let graph = &graph.application();
        if self.graph.as_ref() != Some(graph) {
            // The rows keep their data; the model keeps forecasting on its own graph until a
            // training on this one is installed. A checkpoint's graph counts as the one before.
            let before = self
                .graph
                .as_ref()
                .or(self.model.as_ref().map(|m| &m.graph));
            if before.is_some_and(|b| b != graph) {
                self.stale_graph = true;
            }
            self.graph = Some(graph.clone());
        }
        let mut row = Row::default();
        for w in &snapshot.workloads {
            if graph.node(&w.name).is_none() {
                continue;
            }
            let ready = w
                .pods
                .iter()
                .filter(|p| p.ready == Some(true) && p.phase == PodPhase::Running && !p.deleting);
            let (mut cpu, mut mem, mut any_cpu, mut any_mem) = (0.0, 0.0, false, false);
            for p in ready {
                if let Some(c) = p.cpu.filter(|c| c.millicores.is_finite()) {
                    cpu += c.millicores;
                    any_cpu = true;
                }
                if let Some(m) = p.memory_mib.filter(|m| m.is_finite()) {
                    mem += m;
                    any_mem = true;
                }
            }
            row.nodes.insert(
                w.name.clone(),
                [
                    finite(w.rps),
                    if any_cpu { cpu } else { f64::NAN },
                    if any_mem { mem } else { f64::NAN },
                    finite(w.latency_p95_ms),
                    finite(w.error_rate),
                    finite(w.backlog),
                    w.ready_pods() as f64,
                ],
            );
        }
        for e in &snapshot.edges {
            if let Some(r) = e.rps.filter(|r| r.is_finite()) {
                row.edges
                    .insert((e.src.to_string(), e.dst.to_string(), e.relation), r);
            }
        }
        if self.rows.len() == self.cfg.history {
            self.rows.pop_front();
        }
        self.rows.push_back(row);
    }

    fn forecast(&mut self, horizon: usize) -> Result<BTreeMap<String, Vec<f64>>, NoForecast> {
        if self.graph.is_none() {
            return Err(NoForecast::WarmingUp("no snapshot observed yet".into()));
        }
        let Some(model) = self.model.as_ref() else {
            if let Some(f) = &self.failure {
                return Err(NoForecast::Failed(f.clone()));
            }
            return Err(NoForecast::WarmingUp(if self.in_flight.is_some() {
                format!("{} training", self.kind.name())
            } else {
                format!(
                    "{} warming up: {} of {} snapshots",
                    self.kind.name(),
                    self.rows.len(),
                    self.min_rows()
                )
            }));
        };
        if self.rows.len() < model.config.window {
            return Err(NoForecast::WarmingUp(format!(
                "{} from its checkpoint: {} of {} snapshots",
                self.kind.name(),
                self.rows.len(),
                model.config.window
            )));
        }
        // The model forecasts on the graph it was trained on, from its newest window (the
        // inputs are normalised point by point, so older rows change nothing).
        let series = self.series(&model.graph, Some(model.config.window));
        let preds = model.predict_series(&series);
        self.since_fit += 1;
        if let Some((_, n)) = &mut self.in_flight {
            *n += 1;
        }
        let preds = preds.map_err(|e| {
            NoForecast::Failed(format!("{} could not forecast: {e}", self.kind.name()))
        })?;
        let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for p in preds.into_iter().filter(|p| p.step <= horizon) {
            out.entry(p.service).or_default().push(p.rps[1]);
        }
        Ok(out)
    }

    fn training_job(&mut self, id: JobId) -> Option<TrainingJob> {
        let graph = self.graph.clone()?;
        let due =
            self.model.is_none() || self.since_fit >= self.cfg.refit_every || self.stale_graph;
        if self.in_flight.is_some() || self.rows.len() < self.min_rows() || !due {
            return None;
        }
        let series = self.series(&graph, None);
        let (kind, cfg) = (self.kind, self.cfg.model.clone());
        self.in_flight = Some((id, 0));
        self.stale_graph = false;
        Some(TrainingJob::new(
            id,
            format!("{} on {} rows", kind.name(), series.len),
            Millis(self.cfg.training_ms),
            move || -> TrainResult {
                let span =
                    tracing::debug_span!("online_train", model = kind.name(), rows = series.len);
                let _e = span.enter();
                Prepared::new(&cfg, std::slice::from_ref(&series))
                    .and_then(|p| train(kind, &cfg, &p, &mut |_| {}))
            },
        ))
    }

    fn install(&mut self, job: JobId, trained: Trained) {
        let Some((want, since)) = self.in_flight else {
            return;
        };
        if want != job {
            return;
        }
        self.in_flight = None;
        match trained.0.downcast::<TrainResult>().map(|b| *b) {
            Ok(Ok(m)) => {
                self.model = Some(m);
                self.trainings += 1;
                self.since_fit = since;
                self.failure = None;
            }
            // Keep the previous model, if any; try again at the next refit.
            Ok(Err(e)) => {
                self.since_fit = 0;
                if self.model.is_none() {
                    self.failure = Some(format!("{} could not train: {e}", self.kind.name()));
                } else {
                    tracing::debug!(error = %e, "retraining failed; keeping the previous model");
                }
            }
            Err(_) => {}
        }
    }
}
