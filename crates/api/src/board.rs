//! The live board behind `GET /` (the web page) and `GET /v1/board`: what a watched cluster does
//! now (the service graph with its load), a model's forecast of every service with its bands,
//! the plan and its reasons, what the HPA would do in its place (its shadow: decided, never
//! applied), and the decisions `POST /v1/apply` carried out.
//!
//! A driver (the simulated cluster of `graphscale serve`) pushes snapshots with
//! [`Board::observe`] and the HPA's shadow decisions with [`Board::shadow`]; the API records
//! applied decisions with [`Board::applied`]. [`Board::view`] turns that into a [`BoardView`],
//! the forecast included: pure given the models, no clock read.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use graphscale_core::{AppGraph, ClusterSnapshot, GraphSeries, Metric, ScalingDecision};
use serde::{Deserialize, Serialize};

use crate::apply::{Applied, Decision};
use crate::models::Models;
use crate::predict::{predict_with, PlanEntry, PredictRequest, ServiceFacts};
use crate::ApiError;

/// Most snapshots a board keeps (one per scrape: an hour at 15 s).
pub const MAX_FRAMES: usize = 240;
/// Most applied decisions a board lists, newest first.
pub const MAX_APPLIED: usize = 100;

/// One service now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServiceNow {
    /// Service.
    pub name: String,
    /// Replicas asked for (`spec.replicas`).
    pub replicas: u32,
    /// Pods ready.
    pub ready: u32,
    /// Requests per second arriving; absent when the source has none.
    pub rps: Option<f64>,
    /// CPU used over CPU requested, of the pods with a sample (1 is 100 %).
    pub cpu_utilisation: Option<f64>,
    /// Own 95th-percentile latency, ms.
    pub latency_p95_ms: Option<f64>,
    /// Failed share of requests.
    pub error_rate: Option<f64>,
    /// What the HPA would set now (its shadow), when the driver runs one.
    pub hpa_replicas: Option<u32>,
    /// The HPA's reasons for it.
    pub hpa_reasons: Vec<String>,
}

/// One edge of the service graph now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EdgeNow {
    /// Caller, producer or subscriber.
    pub src: String,
    /// Callee, queue or topic.
    pub dst: String,
    /// `calls`, `produces`, `consumes`, `publishes` or `subscribes`.
    pub relation: String,
    /// Calls or messages per second; absent when the source has none.
    pub rps: Option<f64>,
}

/// One node of the service graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NodeNow {
    /// Node id.
    pub id: String,
    /// `service`, `queue` or `topic`.
    pub kind: String,
}

/// One point of a forecast band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BandPoint {
    /// Seconds ahead of the newest point.
    pub ahead_s: f64,
    /// 0.1 quantile of requests per second.
    pub p10: f64,
    /// Median.
    pub p50: f64,
    /// 0.9 quantile.
    pub p90: f64,
}

/// A model's forecast on the board.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BoardForecast {
    /// The model.
    pub model: String,
    /// Its network.
    pub kind: String,
    /// The quantile the plan provisions for.
    pub quantile: f64,
    /// Requests per second ahead, per service.
    pub rps: BTreeMap<String, Vec<BandPoint>>,
    /// The plan of every service, with its reasons.
    pub plan: Vec<PlanEntry>,
}

/// The recent history of every service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct History {
    /// Seconds between points.
    pub step_s: f64,
    /// Time of the newest point, seconds since the source started.
    pub end_s: f64,
    /// Requests per second per service, oldest first (`null` where the source had none).
    pub rps: BTreeMap<String, Vec<Option<f64>>>,
    /// Replicas asked for per service, oldest first.
    pub replicas: BTreeMap<String, Vec<u32>>,
}

/// A decision `POST /v1/apply` carried out, with its reasons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AppliedEntry {
    /// When, seconds since the source started (its newest snapshot then).
    pub at_s: f64,
    /// Workload.
    pub workload: String,
    /// Replicas before.
    pub before: u32,
    /// Replicas after.
    pub after: u32,
    /// `applied`, `would_apply`, `unchanged`, `disabled` or `conflict`.
    pub outcome: String,
    /// The reasons the decision carried.
    pub reasons: Vec<String>,
}

/// What `GET /v1/board` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BoardView {
    /// The cluster watched (`simulator`).
    pub source: String,
    /// Its application.
    pub app: String,
    /// Whether the source still advances (a simulated scenario ends).
    pub running: bool,
    /// Time of the newest snapshot, seconds since the source started.
    pub time_s: f64,
    /// Nodes of the application graph.
    pub nodes: Vec<NodeNow>,
    /// Its edges with their traffic now.
    pub edges: Vec<EdgeNow>,
    /// Every workload now.
    pub services: Vec<ServiceNow>,
    /// Their recent history.
    pub history: History,
    /// The forecast and plan, when a model fits the graph and enough history is in.
    pub forecast: Option<BoardForecast>,
    /// Why there is no forecast, when there is none.
    pub forecast_note: Option<String>,
    /// Decisions applied through the API, newest first.
    pub applied: Vec<AppliedEntry>,
}

#[derive(Debug)]
struct State {
    graph: AppGraph,
    step_ms: u64,
    frames: VecDeque<ClusterSnapshot>,
    hpa: Vec<ScalingDecision>,
    running: bool,
    applied: VecDeque<AppliedEntry>,
}

/// The board's state, shared by its driver and the API.
#[derive(Debug)]
pub struct Board {
    source: String,
    state: Mutex<State>,
}

fn relation_name(r: graphscale_core::Relation) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{r:?}"))
}

/// CPU used over requested, of the pods with a sample.
fn utilisation(w: &graphscale_core::WorkloadObservation) -> Option<f64> {
    let (used, asked) = w
        .pods
        .iter()
        .filter(|p| !p.deleting)
        .filter_map(|p| p.cpu.map(|c| (c.millicores, p.requests.cpu_millicores)))
        .fold((0.0, 0.0), |(u, a), (c, r)| (u + c, a + r));
    (asked > 0.0).then_some(used / asked)
}

impl Board {
    /// A board of `source` watching `graph`, sampled every `step_ms` (> 0).
    pub fn new(source: impl Into<String>, graph: AppGraph, step_ms: u64) -> Self {
        Board {
            source: source.into(),
            state: Mutex::new(State {
                graph,
                step_ms: step_ms.max(1),
                frames: VecDeque::new(),
                hpa: Vec::new(),
                running: true,
                applied: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update replaces whole values: a panic elsewhere cannot leave one half-written.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the snapshot of one scrape (the oldest beyond [`MAX_FRAMES`] is dropped) and the
    /// graph it was taken on.
    pub fn observe(&self, graph: &AppGraph, snapshot: ClusterSnapshot) {
        let mut s = self.lock();
        if s.graph.nodes != graph.nodes || s.graph.edges != graph.edges {
            s.graph = graph.clone();
        }
        if s.frames.len() == MAX_FRAMES {
            s.frames.pop_front();
        }
        s.frames.push_back(snapshot);
    }

    /// What the HPA would do now, in its place (never applied).
    pub fn shadow(&self, decisions: Vec<ScalingDecision>) {
        self.lock().hpa = decisions;
    }

    /// The source stopped advancing (its scenario ended).
    pub fn stopped(&self) {
        self.lock().running = false;
    }

    /// Records what `POST /v1/apply` did with `decisions` (a dry run is recorded too: its
    /// outcome says `would_apply`).
    pub fn applied(&self, decisions: &[Decision], results: &[Applied]) {
        let mut s = self.lock();
        let at_s = s.frames.back().map_or(0.0, |f| f.time.as_secs_f64());
        for (d, r) in decisions.iter().zip(results) {
            if s.applied.len() == MAX_APPLIED {
                s.applied.pop_back();
            }
            s.applied.push_front(AppliedEntry {
                at_s,
                workload: r.workload.clone(),
                before: r.before,
                after: r.after,
                outcome: r.outcome.as_str().to_string(),
                reasons: d
                    .reasons
                    .iter()
                    .map(|r| format!("{}: {}", r.rule, r.detail))
                    .collect(),
            });
        }
    }

    /// The recorded snapshots as a series on the board's graph (docs/schema.md), oldest first.
    pub fn series(&self) -> GraphSeries {
        let s = self.lock();
        series_of(&s.graph, s.step_ms, &s.frames)
    }

    /// The board now. `model` picks the model of the forecast; without it the first model of
    /// `models` whose graph is the board's is used. A named model that is missing is an error;
    /// one that does not fit, or too little history, leaves the forecast out with a note.
    pub fn view(&self, models: &Models, model: Option<&str>) -> Result<BoardView, ApiError> {
        let (mut view, series, facts) = {
            let s = self.lock();
            let view = self.now(&s);
            let facts = facts_of(view.services.iter().map(|w| w.name.as_str()), &s);
            (view, series_of(&s.graph, s.step_ms, &s.frames), facts)
        };
        let names: Vec<String> = match model {
            Some(m) => {
                crate::models::check_name(m, "model")?;
                models.get(m)?;
                vec![m.to_string()]
            }
            None => models.list().into_iter().map(|m| m.name).collect(),
        };
        if names.is_empty() {
            view.forecast_note = Some(
                "no model is served: train one (POST /v1/train, or graphscale train) on this \
                 graph for a forecast"
                    .into(),
            );
            return Ok(view);
        }
        let mut notes = Vec::new();
        for name in names {
            let m = models.get(&name)?;
            if series.len < m.config.window {
                notes.push(format!(
                    "model `{name}` reads {} points; {} recorded so far",
                    m.config.window, series.len
                ));
                continue;
            }
            let req = PredictRequest {
                model: name.clone(),
                series: series.clone(),
                quantile: 0.9,
                services: facts.clone(),
                planner: None,
            };
            match predict_with(&name, &m, &req) {
                Ok(p) => {
                    let mut rps: BTreeMap<String, Vec<BandPoint>> = BTreeMap::new();
                    for f in p.forecasts {
                        rps.entry(f.service).or_default().push(BandPoint {
                            ahead_s: f.ahead_s,
                            p10: f.rps.p10,
                            p50: f.rps.p50,
                            p90: f.rps.p90,
                        });
                    }
                    view.forecast = Some(BoardForecast {
                        model: p.model,
                        kind: p.kind,
                        quantile: p.quantile,
                        rps,
                        plan: p.plan,
                    });
                    return Ok(view);
                }
                Err(e) => notes.push(format!("model `{name}`: {e}")),
            }
        }
        view.forecast_note = Some(notes.join("; "));
        Ok(view)
    }

    fn now(&self, s: &State) -> BoardView {
        let app = s.graph.application();
        let last = s.frames.back();
        let hpa: BTreeMap<&str, &ScalingDecision> =
            s.hpa.iter().map(|d| (d.workload.as_str(), d)).collect();
        let services = last.map_or_else(Vec::new, |f| {
            f.workloads
                .iter()
                .map(|w| {
                    let h = hpa.get(w.name.as_str());
                    ServiceNow {
                        name: w.name.clone(),
                        replicas: w.spec_replicas,
                        ready: w.ready_pods() as u32,
                        rps: w.rps.filter(|x| x.is_finite()),
                        cpu_utilisation: utilisation(w),
                        latency_p95_ms: w.latency_p95_ms.filter(|x| x.is_finite()),
                        error_rate: w.error_rate.filter(|x| x.is_finite()),
                        hpa_replicas: h.map(|d| d.replicas),
                        hpa_reasons: h.map_or_else(Vec::new, |d| {
                            d.reasons
                                .iter()
                                .map(|r| format!("{}: {}", r.rule, r.detail))
                                .collect()
                        }),
                    }
                })
                .collect()
        });
        let traffic: BTreeMap<(&str, &str), Option<f64>> = last.map_or_else(BTreeMap::new, |f| {
            f.edges
                .iter()
                .map(|e| ((&*e.src, &*e.dst), e.rps))
                .collect()
        });
        let edges = app
            .edges
            .iter()
            .map(|e| EdgeNow {
                src: e.src.clone(),
                dst: e.dst.clone(),
                relation: relation_name(e.relation),
                rps: traffic
                    .get(&(e.src.as_str(), e.dst.as_str()))
                    .copied()
                    .flatten()
                    .filter(|x| x.is_finite()),
            })
            .collect();
        let mut history = History {
            step_s: s.step_ms as f64 / 1000.0,
            end_s: last.map_or(0.0, |f| f.time.as_secs_f64()),
            rps: BTreeMap::new(),
            replicas: BTreeMap::new(),
        };
        for f in &s.frames {
            for w in &f.workloads {
                history
                    .rps
                    .entry(w.name.clone())
                    .or_default()
                    .push(w.rps.filter(|x| x.is_finite()));
                history
                    .replicas
                    .entry(w.name.clone())
                    .or_default()
                    .push(w.spec_replicas);
            }
        }
        BoardView {
            source: self.source.clone(),
            app: s.graph.name.clone(),
            running: s.running,
            time_s: history.end_s,
            nodes: app
                .nodes
                .iter()
                .map(|n| NodeNow {
                    id: n.id.clone(),
                    kind: n.kind.to_string(),
                })
                .collect(),
            edges,
            services,
            history,
            forecast: None,
            forecast_note: None,
            applied: s.applied.iter().cloned().collect(),
        }
    }
}

/// What the plan knows of each service, from the newest snapshot: one pod's requests and the
/// replicas now.
fn facts_of<'a>(names: impl Iterator<Item = &'a str>, s: &State) -> BTreeMap<String, ServiceFacts> {
    let Some(last) = s.frames.back() else {
        return BTreeMap::new();
    };
    let by = last.by_name();
    names
        .filter_map(|n| {
            let w = by.get(n)?;
            let req = w.pods.first()?.requests;
            (req.cpu_millicores > 0.0).then(|| {
                (
                    n.to_string(),
                    ServiceFacts {
                        cpu_request_millicores: Some(req.cpu_millicores),
                        memory_request_mib: Some(req.memory_mib.max(0.0)),
                        current: Some(w.spec_replicas.min(crate::predict::MAX_REPLICAS)),
                        min_replicas: None,
                        max_replicas: None,
                    },
                )
            })
        })
        .collect()
}

/// Snapshots as a series: per workload its rate, CPU and memory summed over pods, latency,
/// errors, backlog and replicas; per edge its rate. Values a snapshot lacks are NaN.
fn series_of(graph: &AppGraph, step_ms: u64, frames: &VecDeque<ClusterSnapshot>) -> GraphSeries {
    let len = frames.len();
    let start = frames.front().map_or(0, |f| f.time.0);
    let mut s = GraphSeries::new(graph.clone(), start, step_ms, len);
    for (k, f) in frames.iter().enumerate() {
        for w in &f.workloads {
            if graph.node(&w.name).is_none() {
                continue;
            }
            let m = s.nodes.entry(w.name.clone()).or_default();
            let mut put = |metric: Metric, v: Option<f64>| {
                m.entry(metric).or_insert_with(|| vec![f64::NAN; len])[k] = v.unwrap_or(f64::NAN)
            };
            let live = w.pods.iter().filter(|p| !p.deleting);
            let cpu: Vec<f64> = live
                .clone()
                .filter_map(|p| p.cpu.map(|c| c.millicores))
                .collect();
            let mem: Vec<f64> = live.filter_map(|p| p.memory_mib).collect();
            put(Metric::Rps, w.rps);
            put(
                Metric::CpuMillicores,
                (!cpu.is_empty()).then(|| cpu.iter().sum()),
            );
            put(
                Metric::MemoryMib,
                (!mem.is_empty()).then(|| mem.iter().sum()),
            );
            put(Metric::LatencyP95Ms, w.latency_p95_ms);
            put(Metric::ErrorRate, w.error_rate);
            put(Metric::Backlog, w.backlog);
            put(Metric::ReplicasDesired, Some(f64::from(w.spec_replicas)));
            put(Metric::ReplicasReady, Some(w.ready_pods() as f64));
        }
        for e in &f.edges {
            let known = graph
                .edges
                .iter()
                .any(|x| *x.src == *e.src && *x.dst == *e.dst && x.relation == e.relation);
            if known {
                s.edge_metric_mut(&e.src, &e.dst, e.relation, Metric::Rps)[k] =
                    e.rps.unwrap_or(f64::NAN);
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use graphscale_core::{Actuator, Clock, MetricSource};
    use graphscale_sim::engine::{SimConfig, Simulator};

    fn sim(rps: f64) -> (Simulator, Board) {
        let app = graphscale_sim::topology::builtin("online-boutique").unwrap();
        let rates = vec![rps; 600];
        let sim = Simulator::new(app, SimConfig::default(), rates).unwrap();
        let board = Board::new("simulator", sim.graph().clone(), 15_000);
        (sim, board)
    }

    fn run(sim: &mut Simulator, board: &Board, scrapes: usize) {
        let step = 15_000;
        let mut k = 0;
        while k < scrapes {
            sim.step();
            if sim.now().0.is_multiple_of(step) {
                board.observe(&sim.graph().clone(), sim.observe().unwrap());
                k += 1;
            }
        }
    }

    #[test]
    fn the_board_shows_load_history_and_applied_decisions() {
        let (mut sim, board) = sim(40.0);
        run(&mut sim, &board, 8);
        let v = board.view(&Models::in_memory(), None).unwrap();
        assert_eq!(v.app, "online-boutique");
        assert_eq!(v.time_s, 120.0);
        let services = v.nodes.iter().filter(|n| n.kind == "service").count();
        assert!(services >= 10, "{:?}", v.nodes);
        assert_eq!(v.services.len(), services);
        let front = v.services.iter().find(|s| s.name == "frontend").unwrap();
        let rps = front.rps.unwrap();
        assert!(rps > 20.0 && rps < 60.0, "frontend at {rps} rps");
        assert!(front.cpu_utilisation.unwrap() > 0.0);
        assert_eq!(v.history.rps["frontend"].len(), 8);
        assert!(v.edges.iter().any(|e| e.src == "frontend"
            && e.relation == "calls"
            && e.rps.is_some_and(|r| r > 0.0)));
        assert!(v.forecast.is_none());
        assert!(v.forecast_note.unwrap().contains("no model is served"));
        // The HPA's shadow shows beside each service.
        board.shadow(vec![ScalingDecision {
            workload: "frontend".into(),
            replicas: 3,
            reasons: vec![graphscale_core::Reason::new("hpa.scale_up", "cpu 90 %")],
            resources: None,
        }]);
        // Applied decisions are listed newest first, with their reasons.
        let d = Decision {
            workload: "cartservice".into(),
            kind: Default::default(),
            replicas: 4,
            reasons: vec![crate::predict::ReasonBody {
                rule: "plan.demand".into(),
                detail: "40 rps".into(),
            }],
        };
        sim.apply(&[crate::apply::to_scaling(&d)]).unwrap();
        board.applied(
            std::slice::from_ref(&d),
            &[Applied {
                workload: "cartservice".into(),
                before: 1,
                after: 4,
                outcome: crate::apply::Outcome::Applied,
                detail: String::new(),
            }],
        );
        run(&mut sim, &board, 1);
        let v = board.view(&Models::in_memory(), None).unwrap();
        let front = v.services.iter().find(|s| s.name == "frontend").unwrap();
        assert_eq!(front.hpa_replicas, Some(3));
        assert_eq!(front.hpa_reasons, vec!["hpa.scale_up: cpu 90 %"]);
        assert_eq!(v.applied[0].workload, "cartservice");
        assert_eq!(v.applied[0].at_s, 120.0);
        assert_eq!(v.applied[0].reasons, vec!["plan.demand: 40 rps"]);
        assert_eq!(*v.history.replicas["cartservice"].last().unwrap(), 4);
        // A model that is not served is a 404, not an empty board.
        let e = board
            .view(&Models::in_memory(), Some("nosuch"))
            .unwrap_err();
        assert!(e.to_string().contains("nosuch"), "{e}");
    }

    #[test]
    fn the_series_is_valid_and_keeps_only_the_newest_frames() {
        let (mut sim, board) = sim(10.0);
        run(&mut sim, &board, MAX_FRAMES + 3);
        let s = board.series();
        s.validate().unwrap();
        assert_eq!(s.len, MAX_FRAMES);
        assert_eq!(s.start_ms, 4 * 15_000);
        let rps = &s.nodes["frontend"][&Metric::Rps];
        assert!(rps.iter().all(|x| x.is_finite()), "{rps:?}");
        assert!(s.nodes["frontend"][&Metric::CpuMillicores][0] > 0.0);
        assert!(!s.edges.is_empty());
    }
}
