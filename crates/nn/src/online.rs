//! A graph model inside a control loop: [`OnlineGraphModel`] implements the core
//! [`JointForecaster`] seam. It records one row of node and edge metrics per sync, trains a
//! graph model ([`crate::graphmodel`]) on its history once it has `min_history` rows and again
//! every `refit_every` syncs, and in between forecasts every service's request rate (the median
//! quantile) from the newest window without retraining.

use std::collections::{BTreeMap, VecDeque};

use graphscale_core::series::EdgeSeries;
use graphscale_core::{
    AppGraph, ClusterSnapshot, GraphSeries, JointForecaster, Metric, NoForecast, PodPhase, Relation,
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
    since_fit: usize,
    trainings: usize,
}

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
        }
    }

    /// Trainings so far.
    pub fn trainings(&self) -> usize {
        self.trainings
    }

    fn series(&self, graph: &AppGraph) -> GraphSeries {
        let len = self.rows.len();
        let mut s = GraphSeries::new(graph.clone(), 0, self.cfg.step_ms, len);
        for (t, row) in self.rows.iter().enumerate() {
            for (id, vals) in &row.nodes {
                let m = s.nodes.entry(id.clone()).or_default();
                for (f, metric) in NODE_METRICS.iter().enumerate() {
                    if vals[f].is_finite() {
                        m.entry(*metric).or_insert_with(|| vec![f64::NAN; len])[t] = vals[f];
                    }
                }
            }
        }
        let mut edges: BTreeMap<EdgeKey, Vec<f64>> = BTreeMap::new();
        for (t, row) in self.rows.iter().enumerate() {
            for (k, v) in &row.edges {
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
        if self.graph.as_ref() != Some(graph) {
            // A new graph: the old history and model no longer fit it.
            self.graph = Some(graph.clone());
            self.rows.clear();
            self.model = None;
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
                    .insert((e.src.clone(), e.dst.clone(), e.relation), r);
            }
        }
        if self.rows.len() == self.cfg.history {
            self.rows.pop_front();
        }
        self.rows.push_back(row);
    }

    fn forecast(&mut self, horizon: usize) -> Result<BTreeMap<String, Vec<f64>>, NoForecast> {
        let graph = self
            .graph
            .clone()
            .ok_or_else(|| NoForecast::WarmingUp("no snapshot observed yet".into()))?;
        if self.rows.len() < self.cfg.min_history.max(self.cfg.model.window) {
            return Err(NoForecast::WarmingUp(format!(
                "{} warming up: {} of {} snapshots",
                self.kind.name(),
                self.rows.len(),
                self.cfg.min_history
            )));
        }
        let series = self.series(&graph);
        if self.model.is_none() || self.since_fit >= self.cfg.refit_every {
            let span =
                tracing::debug_span!("online_train", model = self.kind.name(), rows = series.len);
            let _e = span.enter();
            let trained = Prepared::new(&self.cfg.model, std::slice::from_ref(&series))
                .and_then(|p| train(self.kind, &self.cfg.model, &p, &mut |_| {}));
            match trained {
                Ok(m) => {
                    self.model = Some(m);
                    self.trainings += 1;
                }
                // Keep the previous model, if any; try again next time.
                Err(e) if self.model.is_none() => {
                    return Err(NoForecast::Failed(format!(
                        "{} could not train: {e}",
                        self.kind.name()
                    )))
                }
                Err(e) => {
                    tracing::debug!(error = %e, "retraining failed; keeping the previous model")
                }
            }
            self.since_fit = 0;
        }
        self.since_fit += 1;
        let model = self
            .model
            .as_ref()
            .ok_or_else(|| NoForecast::Failed("no model".into()))?;
        let preds = model.predict_series(&series).map_err(|e| {
            NoForecast::Failed(format!("{} could not forecast: {e}", self.kind.name()))
        })?;
        let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for p in preds.into_iter().filter(|p| p.step <= horizon) {
            out.entry(p.service).or_default().push(p.rps[1]);
        }
        Ok(out)
    }
}
