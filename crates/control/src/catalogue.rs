//! The autoscaler catalogue: one table ([`CATALOGUE`]) of every named autoscaler, from which
//! the names, the `--help` lists and the "unknown autoscaler" errors come, and [`build`], which
//! turns an [`AutoscalerSpec`] into an autoscaler behind the safety layer.
//!
//! Adding an autoscaler is one [`Entry`]; a new kind of autoscaler is one [`AutoscalerSpec`]
//! variant and its arm in [`build`]. Nothing here needs the simulator: the static facts an
//! autoscaler needs (bounds, the CPU at the nominal peak) come in as
//! [`graphscale_core::WorkloadFacts`].

use std::collections::BTreeMap;

use graphscale_core::{Autoscaler, Millis, WorkloadFacts};
use graphscale_plan::fixed::StaticReplicas;
use graphscale_plan::guarded::{GuardConfig, Guarded};
use graphscale_plan::hpa::{HpaAutoscaler, HpaControllerConfig, HpaSpec, MetricTarget};
use graphscale_plan::phpa::PhpaAutoscaler;
use graphscale_plan::predictive::{PredictiveAutoscaler, PredictiveConfig};
use serde::{Deserialize, Serialize};

use crate::tuned::{self, HpaKnobs};
use crate::ControlError;

/// An autoscaler under test or in production, as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AutoscalerSpec {
    /// The Kubernetes HPA with one spec for every service.
    Hpa {
        /// Name in reports.
        name: String,
        /// Controller flags.
        #[serde(default)]
        controller: HpaControllerConfig,
        /// The HPA object's spec.
        spec: HpaSpec,
    },
    /// Fixed replicas: `replicas` for every service, or, when absent, the count each service
    /// needs at the app's nominal peak at 80 % of its CPU request (peak provisioning).
    Static {
        /// Name in reports.
        name: String,
        /// Replicas for every service.
        #[serde(default)]
        replicas: Option<u32>,
    },
    /// A forecaster per service + the planner + the safety layer
    /// ([`graphscale_plan::predictive`]).
    Predictive {
        /// Name in reports.
        name: String,
        /// Forecast model: `persistence`, `trend`, `seasonal-naive`, `ets`, `mstl`, `prophet`,
        /// `lstm`, `gru`, `hybrid-mstl`, or a graph model `hgt`, `gat`, `stgnn`, `mlp`.
        model: String,
        /// Season length in history samples for the models that use one; default 240 (one
        /// hour at 15 s).
        #[serde(default)]
        season: Option<usize>,
        /// Settings (see `docs/planner.md`).
        #[serde(default)]
        config: Box<PredictiveConfig>,
        /// A graph model written by `graphscale train` to start from, for a graph `model`
        /// (`hgt`, `gat`, `stgnn`, `mlp`) of the checkpoint's kind: the autoscaler forecasts
        /// from its first window and retrains online on schedule. Default: none (the model is
        /// trained online from scratch).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        checkpoint: Option<std::path::PathBuf>,
    },
    /// A policy trained by reinforcement learning (`graphscale rl train`), behind the safety
    /// layer with its default rules and the HPA rule as the fallback.
    Rl {
        /// Name in reports.
        name: String,
        /// The encoder the name promises: `gat`, `gcn` or `mlp`; the checkpoint must hold it.
        encoder: String,
        /// The policy's checkpoint.
        checkpoint: std::path::PathBuf,
    },
    /// The PHPA-style baseline: AutoETS (a damped trend) on the HPA's replica history.
    Phpa {
        /// Name in reports.
        name: String,
        /// Decisions ahead the replica count is predicted; default 4 (one minute).
        #[serde(default)]
        look_ahead: Option<usize>,
        /// Replica counts kept; default 60.
        #[serde(default)]
        history: Option<usize>,
        /// The HPA underneath; default as `hpa`.
        #[serde(default)]
        spec: Option<HpaSpec>,
    },
}

/// One named autoscaler of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// Its name (`hpa`, `graph-trend`, ...).
    pub name: &'static str,
    /// One line for `--help` and the docs.
    pub help: &'static str,
    /// Its spec.
    pub spec: fn(&str) -> AutoscalerSpec,
}

/// The name of the tuned HPA baseline.
pub const HPA_TUNED: &str = "hpa-tuned";

/// Every named autoscaler, in the order `--help` lists them.
pub static CATALOGUE: &[Entry] = &[
    Entry {
        name: "hpa",
        help: "the Kubernetes HPA with its defaults: CPU target 80 %, 1..=50 replicas",
        spec: hpa,
    },
    Entry {
        name: HPA_TUNED,
        help: "the HPA tuned per app by a grid search on seeds 1-5 (`graphscale tune-hpa`, data/hpa-tuned.json: CPU target, tolerance, scale-down window, scale-up policy); on apps it did not tune, hand-set: CPU target 60 %, tolerance 0.05, scale-down window 60 s, scale-up by up to 8 pods or 200 % per 15 s",
        spec: hpa_tuned,
    },
    Entry {
        name: "static",
        help: "peak provisioning: each service's replicas for the app's nominal peak at 80 % of its CPU request",
        spec: static_peak,
    },
    Entry {
        name: "phpa",
        help: "PHPA-style: AutoETS (a damped trend, non-seasonal) on the HPA's replica history, one minute ahead",
        spec: phpa,
    },
    Entry {
        name: "pred-persistence",
        help: "predictive, graph-blind: persistence per service",
        spec: blind,
    },
    Entry {
        name: "pred-trend",
        help: "predictive, graph-blind: local trend per service",
        spec: blind,
    },
    Entry {
        name: "pred-ets",
        help: "predictive, graph-blind: AutoETS per service",
        spec: blind,
    },
    Entry {
        name: "pred-lstm",
        help: "predictive, graph-blind: an LSTM per service",
        spec: blind,
    },
    Entry {
        name: "graph-persistence",
        help: "predictive: persistence per service, demand propagated along the graph",
        spec: graph,
    },
    Entry {
        name: "graph-trend",
        help: "predictive: local trend per service, demand propagated along the graph",
        spec: graph,
    },
    Entry {
        name: "graph-trend-vpa",
        help: "graph-trend that also resizes memory requests and limits in place (vertical.update = memory)",
        spec: graph_trend_vpa,
    },
    Entry {
        name: "graph-slo",
        help: "graph-trend with the whole-graph SLO planner: the least CPU whose predicted end-to-end p95 (learned M/M/c latency per service) stays within the app's SLO less 20 %, pods up to 95 % of their CPU request (docs/planner.md)",
        spec: graph_slo,
    },
    Entry {
        name: "graphscale",
        help: "the default: graph-slo with each pod's CPU request sized to what the plan has it use at 80 % (limits kept, replicas planned on the reference request), memory requests and limits resized in place, and a cost per scaling action: a scale-down only when the forecast over the lead plus the break-even time and the plans of the last 900 s allow it, by at least half of the pods; a scale-up by at least half (docs/planner.md)",
        spec: graphscale,
    },
    Entry {
        name: "graphscale-replicas",
        help: "graph-slo with the cost per scaling action at its quicker settings (the plans of the last 60 s, any step) and the pods' requests left as they are: replicas only (the default until 2026-12-07; docs/planner.md)",
        spec: graphscale_replicas,
    },
    Entry {
        name: "graph-ets",
        help: "predictive: AutoETS per service, demand propagated along the graph",
        spec: graph,
    },
    Entry {
        name: "graph-mstl",
        help: "predictive: MSTL per service, demand propagated along the graph",
        spec: graph,
    },
    Entry {
        name: "graph-prophet",
        help: "predictive: Prophet per service (fitted in Rust by L-BFGS), refit once a minute",
        spec: graph,
    },
    Entry {
        name: "graph-lstm",
        help: "predictive: an LSTM per service, trained every 10 minutes",
        spec: graph,
    },
    Entry {
        name: "graph-gru",
        help: "predictive: a GRU per service, trained every 10 minutes",
        spec: graph,
    },
    Entry {
        name: "graph-hgt",
        help: "one HGT forecasting every service from the whole graph (trained online after 10 minutes and every 10 minutes on the last 2 hours)",
        spec: graph,
    },
    Entry {
        name: "graph-gat",
        help: "one edge-aware GAT forecasting every service from the whole graph, trained online",
        spec: graph,
    },
    Entry {
        name: "graph-stgnn",
        help: "one STGNN with a learned adjacency forecasting every service, trained online",
        spec: graph,
    },
    Entry {
        name: "graph-mlp",
        help: "the edge-blind MLP ablation of the graph models, trained online",
        spec: graph,
    },
];

/// The predictive autoscalers of an ONNX model, `name: help` (besides the [`CATALOGUE`]).
pub const ONNX_AUTOSCALERS: [(&str, &str); 2] = [
    (
        "pred-onnx:PATH",
        "predictive, graph-blind: the per-series ONNX model in the file PATH (build with --features onnx; docs/forecast.md)",
    ),
    (
        "graph-onnx:PATH",
        "predictive: the per-series ONNX model in the file PATH, demand propagated along the graph",
    ),
];

/// The learned policies (besides the [`CATALOGUE`]), `name: help`.
pub const RL_AUTOSCALERS: [(&str, &str); 3] = [
    (
        "rl-gat:PATH",
        "a PPO policy with a GAT encoder trained by `graphscale rl train` (its checkpoint in PATH), behind the safety layer without scale-down hysteresis and cooldown (docs/rl.md)",
    ),
    (
        "rl-gcn:PATH",
        "the same with a GCN encoder",
    ),
    (
        "rl-mlp:PATH",
        "the same without the graph: an MLP over every workload's features (the ablation)",
    ),
];

/// The prefixes of the learned policies and their encoders.
const RL_PREFIXES: [(&str, &str); 3] = [("rl-gat:", "gat"), ("rl-gcn:", "gcn"), ("rl-mlp:", "mlp")];

/// The catalogue's names, comma-separated.
pub fn names() -> String {
    CATALOGUE
        .iter()
        .map(|e| e.name)
        .chain(ONNX_AUTOSCALERS.iter().map(|(n, _)| *n))
        .chain(RL_AUTOSCALERS.iter().map(|(n, _)| *n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The catalogue as `name: help` lines, for `--help`.
pub fn help() -> String {
    CATALOGUE
        .iter()
        .map(|e| (e.name, e.help))
        .chain(ONNX_AUTOSCALERS.iter().copied())
        .chain(RL_AUTOSCALERS.iter().copied())
        .map(|(name, help)| format!("{name}: {help}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn default_hpa_spec() -> HpaSpec {
    HpaSpec {
        min_replicas: 1,
        max_replicas: 50,
        metrics: vec![MetricTarget::CpuUtilization { target_percent: 80 }],
        ..HpaSpec::default()
    }
}

fn hpa(name: &str) -> AutoscalerSpec {
    AutoscalerSpec::Hpa {
        name: name.into(),
        controller: HpaControllerConfig::default(),
        spec: default_hpa_spec(),
    }
}

/// `hpa-tuned` before an app is known: the hand-set knobs; [`AutoscalerSpec::for_app`] swaps in
/// the grid search's knobs for the apps it tuned.
fn hpa_tuned(name: &str) -> AutoscalerSpec {
    HpaKnobs::HAND_SET.spec(name)
}

fn static_peak(name: &str) -> AutoscalerSpec {
    AutoscalerSpec::Static {
        name: name.into(),
        replicas: None,
    }
}

fn phpa(name: &str) -> AutoscalerSpec {
    AutoscalerSpec::Phpa {
        name: name.into(),
        look_ahead: None,
        history: None,
        spec: None,
    }
}

/// `pred-MODEL`: the model after the dash, graph-blind.
fn blind(name: &str) -> AutoscalerSpec {
    predictive(name, name.strip_prefix("pred-").unwrap_or(name), false)
}

/// `graph-MODEL`: the model after the dash, demand propagated along the graph.
fn graph(name: &str) -> AutoscalerSpec {
    predictive(name, name.strip_prefix("graph-").unwrap_or(name), true)
}

fn graph_trend_vpa(name: &str) -> AutoscalerSpec {
    let mut spec = predictive(name, "trend", true);
    if let AutoscalerSpec::Predictive { config, .. } = &mut spec {
        config.vertical.update = graphscale_plan::vertical::VerticalUpdate::Memory;
    }
    spec
}

fn graph_slo(name: &str) -> AutoscalerSpec {
    let mut spec = predictive(name, "trend", true);
    if let AutoscalerSpec::Predictive { config, .. } = &mut spec {
        config.planner.slo = Some(graphscale_plan::slo::SloConfig::default());
    }
    spec
}

fn graphscale_replicas(name: &str) -> AutoscalerSpec {
    let mut spec = graph_slo(name);
    if let AutoscalerSpec::Predictive { config, .. } = &mut spec {
        config.churn = Some(graphscale_plan::churn::ChurnConfig::default());
    }
    spec
}

fn graphscale(name: &str) -> AutoscalerSpec {
    let mut spec = graph_slo(name);
    if let AutoscalerSpec::Predictive { config, .. } = &mut spec {
        config.churn = Some(graphscale_plan::churn::ChurnConfig::for_sized_pods());
        config.cpu_requests = Some(graphscale_plan::cpu_request::CpuRequestConfig::default());
        config.vertical.update = graphscale_plan::vertical::VerticalUpdate::Memory;
    }
    spec
}

/// The network settings of the neural predictive autoscalers: a short window (4 minutes at 15-s
/// syncs) and a small network, so a fit on one hour of history takes well under a second.
pub fn autoscaler_rnn() -> graphscale_nn::rnn::RnnConfig {
    graphscale_nn::rnn::RnnConfig {
        window: 16,
        hidden: 16,
        max_horizon: 8,
        epochs: 15,
        patience: 3,
        ..Default::default()
    }
}

fn predictive(name: &str, model: &str, graph_aware: bool) -> AutoscalerSpec {
    let mut config = PredictiveConfig::default();
    config.planner.graph_aware = graph_aware;
    if model == "prophet" {
        // A Prophet fit costs more than the other models': refit once a minute, forecast
        // further in between.
        config.refit_every = 4;
    }
    if graphscale_nn::is_neural(model) {
        // A network is trained every 10 minutes (40 syncs) on the last hour, after a
        // warm-up long enough for its windows, and forecasts from the newest data in between.
        config.refit_every = 40;
        config.min_history = config.min_history.max(autoscaler_rnn().min_points());
    }
    AutoscalerSpec::Predictive {
        name: name.to_string(),
        model: model.to_string(),
        season: None,
        config: Box::new(config),
        checkpoint: None,
    }
}

impl AutoscalerSpec {
    /// The named autoscaler of the [`CATALOGUE`].
    pub fn named(name: &str) -> Result<Self, ControlError> {
        for (prefix, encoder) in RL_PREFIXES {
            if let Some(path) = name.strip_prefix(prefix).filter(|p| !p.is_empty()) {
                return Ok(AutoscalerSpec::Rl {
                    name: name.to_string(),
                    encoder: encoder.to_string(),
                    checkpoint: path.into(),
                });
            }
        }
        for (prefix, graph_aware) in [("pred-", false), ("graph-", true)] {
            if let Some(model) = name.strip_prefix(prefix) {
                if graphscale_forecast::onnx::path_of(model).is_some() {
                    return Ok(predictive(name, model, graph_aware));
                }
            }
        }
        CATALOGUE
            .iter()
            .find(|e| e.name == name)
            .map(|e| (e.spec)(e.name))
            .ok_or_else(|| ControlError::UnknownAutoscaler {
                name: name.to_string(),
                known: names(),
            })
    }

    /// Whether it can start from a graph-model checkpoint (a predictive autoscaler with a graph
    /// model: `hgt`, `gat`, `stgnn`, `mlp`).
    pub fn reads_checkpoint(&self) -> bool {
        matches!(self, AutoscalerSpec::Predictive { model, .. }
            if graphscale_nn::graphmodel::Kind::parse(model).is_ok())
    }

    /// Sets the end-to-end SLO of a predictive autoscaler's SLO planner when it has none (the
    /// evaluation and the simulator know the app's); other autoscalers are unchanged.
    pub fn with_default_slo(mut self, slo_ms: f64) -> Self {
        if let AutoscalerSpec::Predictive { config, .. } = &mut self {
            if let Some(slo) = config.planner.slo.as_mut() {
                slo.slo_ms.get_or_insert(slo_ms);
            }
        }
        self
    }

    /// For the app named `app`: `hpa-tuned`, as the catalogue makes it, takes the knobs that
    /// `graphscale tune-hpa` chose for that app (`data/hpa-tuned.json`) when it tuned it; every
    /// other spec, and an `hpa-tuned` whose settings were changed, is unchanged.
    pub fn for_app(self, app: &str) -> Self {
        // The shipped table is read (once) only for `hpa-tuned`.
        if self != hpa_tuned(HPA_TUNED) {
            return self;
        }
        match tuned::knobs_for(app) {
            Some(k) => k.spec(HPA_TUNED),
            None => self,
        }
    }

    /// Its name in reports.
    pub fn name(&self) -> &str {
        match self {
            AutoscalerSpec::Hpa { name, .. }
            | AutoscalerSpec::Static { name, .. }
            | AutoscalerSpec::Predictive { name, .. }
            | AutoscalerSpec::Rl { name, .. }
            | AutoscalerSpec::Phpa { name, .. } => name,
        }
    }
}

impl From<&str> for AutoscalerSpec {
    /// A named autoscaler; an unknown name becomes a static spec named `unknown:NAME` that
    /// validation rejects. Prefer [`AutoscalerSpec::named`] where the error matters.
    fn from(s: &str) -> Self {
        AutoscalerSpec::named(s).unwrap_or(AutoscalerSpec::Static {
            name: format!("unknown:{s}"),
            replicas: Some(0),
        })
    }
}

/// Builds the autoscaler `spec` describes, behind the safety layer, for workloads with `facts`.
///
/// The baselines (HPA, static, PHPA) pass through [`GuardConfig::bounds_only`]: bounds and no
/// scale-down on missing data, nothing that would change their own behaviour; the predictive
/// autoscalers through their own safety settings ([`PredictiveAutoscaler::guarded`]).
pub fn build(
    spec: &AutoscalerSpec,
    facts: &[WorkloadFacts],
) -> Result<Box<dyn Autoscaler + Send>, ControlError> {
    build_with(spec, facts, false)
}

/// [`build`], with each workload's own replica bounds from `facts` in the safety layer (the
/// operator: a PredictiveAutoscaler gives bounds per workload). `build` keeps the spec's bounds
/// for every workload but the static baseline's, as the evaluation has always run them.
pub fn build_bounded(
    spec: &AutoscalerSpec,
    facts: &[WorkloadFacts],
) -> Result<Box<dyn Autoscaler + Send>, ControlError> {
    build_with(spec, facts, true)
}

/// Per-workload bounds from `facts` when `bounded`.
fn bound<A: graphscale_plan::guarded::Propose>(
    g: Guarded<A>,
    facts: &[WorkloadFacts],
    bounded: bool,
) -> Result<Guarded<A>, graphscale_plan::PlanError> {
    if bounded {
        g.with_bounds(facts)
    } else {
        Ok(g)
    }
}

fn build_with(
    spec: &AutoscalerSpec,
    facts: &[WorkloadFacts],
    bounded: bool,
) -> Result<Box<dyn Autoscaler + Send>, ControlError> {
    let plan_err = |source| ControlError::Plan {
        name: spec.name().to_string(),
        source,
    };
    match spec {
        AutoscalerSpec::Hpa {
            name,
            controller,
            spec,
        } => {
            let hpa = HpaAutoscaler::new(
                name.clone(),
                controller.clone(),
                spec.clone(),
                BTreeMap::new(),
            )
            .map_err(plan_err)?;
            let guard = GuardConfig::bounds_only(spec.min_replicas, spec.max_replicas);
            let g = Guarded::new(hpa, guard).and_then(|g| bound(g, facts, bounded));
            Ok(Box::new(g.map_err(plan_err)?))
        }
        AutoscalerSpec::Static { name, replicas } => {
            let map = facts
                .iter()
                .filter_map(|f| {
                    replicas
                        .or_else(|| f.peak_replicas(0.8))
                        .map(|n| (f.name.clone(), n))
                })
                .collect();
            let fixed = StaticReplicas::new(map, Millis::from_secs(15))
                .map_err(plan_err)?
                .with_name(name.clone());
            let max = facts
                .iter()
                .map(|f| f.max_replicas)
                .max()
                .unwrap_or(u32::MAX);
            Ok(Box::new(
                Guarded::new(fixed, GuardConfig::bounds_only(1, max.max(1)))
                    .and_then(|g| g.with_bounds(facts))
                    .map_err(plan_err)?,
            ))
        }
        AutoscalerSpec::Predictive {
            name,
            model,
            season,
            config,
            checkpoint,
        } => {
            let online_cfg = graphscale_nn::online::OnlineConfig {
                step_ms: config.sync_period_s * 1000,
                ..graphscale_nn::online::OnlineConfig::default()
            };
            let kind = graphscale_nn::graphmodel::Kind::parse(model);
            let online = match (checkpoint, kind) {
                (Some(path), kind) => Some(warm(name, path, kind, online_cfg)?),
                (None, Ok(kind)) => Some(graphscale_nn::online::OnlineGraphModel::new(
                    kind, online_cfg,
                )),
                (None, Err(_)) => None,
            };
            if let Some(online) = online {
                let p = PredictiveAutoscaler::with_joint(
                    name.clone(),
                    Box::new(online),
                    (**config).clone(),
                )
                .map_err(plan_err)?;
                let g = p.guarded().and_then(|g| bound(g, facts, bounded));
                return Ok(Box::new(g.map_err(plan_err)?));
            }
            let rnn = autoscaler_rnn();
            // Networks get season inputs only when a season is given.
            let default_season = if graphscale_nn::is_neural(model) {
                0
            } else {
                240
            };
            let m = graphscale_nn::by_name(
                model,
                season.unwrap_or(default_season),
                config.sync_period_s,
                rnn.max_horizon,
                Some(&rnn),
            )
            .map_err(|source| ControlError::Model {
                name: name.clone(),
                source,
            })?;
            let p =
                PredictiveAutoscaler::new(name.clone(), m, (**config).clone()).map_err(plan_err)?;
            let g = p.guarded().and_then(|g| bound(g, facts, bounded));
            Ok(Box::new(g.map_err(plan_err)?))
        }
        AutoscalerSpec::Rl {
            name,
            encoder,
            checkpoint,
        } => {
            let rl_err = |source| ControlError::Policy {
                name: name.clone(),
                source,
            };
            let p = graphscale_rl::autoscaler::RlPolicy::load(name, checkpoint, facts)
                .map_err(rl_err)?;
            let has = p.manifest().encoder.name();
            if has != encoder {
                return Err(rl_err(graphscale_rl::RlError::Layout {
                    what: format!(
                        "{}: it holds a {has} policy; the autoscaler's encoder is {encoder}",
                        checkpoint.display()
                    ),
                }));
            }
            let hpa = default_hpa_spec();
            let g = Guarded::new(p, rl_guard())
                .and_then(|g| g.with_fallback(HpaControllerConfig::default(), hpa))
                .and_then(|g| g.with_bounds(facts));
            Ok(Box::new(g.map_err(plan_err)?))
        }
        AutoscalerSpec::Phpa {
            name,
            look_ahead,
            history,
            spec,
        } => {
            let m = graphscale_forecast::models::by_name("ets", 1).map_err(|source| {
                ControlError::Model {
                    name: name.clone(),
                    source,
                }
            })?;
            let hpa_spec = spec.clone().unwrap_or_else(default_hpa_spec);
            let guard = GuardConfig::bounds_only(hpa_spec.min_replicas, hpa_spec.max_replicas);
            let p = PhpaAutoscaler::new(
                name.clone(),
                HpaControllerConfig::default(),
                hpa_spec,
                m,
                look_ahead.unwrap_or(4),
                history.unwrap_or(60),
            )
            .map_err(plan_err)?;
            let g = Guarded::new(p, guard).and_then(|g| bound(g, facts, bounded));
            Ok(Box::new(g.map_err(plan_err)?))
        }
    }
}

/// The safety rules around a learned policy: the defaults (bounds, no scale-down on missing
/// data, the HPA rule as the fallback, step limits) without the scale-down hysteresis and
/// cooldown. The policy changes a workload by at most 2 replicas per sync and was trained without
/// them: a 10 % hysteresis would block every -1 from 11 replicas up, and a 60-s cooldown after any
/// action would block the scale-downs it plans in the next rounds.
pub fn rl_guard() -> GuardConfig {
    let mut g = GuardConfig::default();
    g.safety.down_threshold = 0.0;
    g.safety.cooldown_down_s = 0.0;
    g
}

/// The online graph model of autoscaler `name` warm-started from the checkpoint at `path`,
/// which must hold a model of `kind`.
fn warm(
    name: &str,
    path: &std::path::Path,
    kind: Result<graphscale_nn::graphmodel::Kind, graphscale_nn::NnError>,
    cfg: graphscale_nn::online::OnlineConfig,
) -> Result<graphscale_nn::online::OnlineGraphModel, ControlError> {
    let ck_err = |source| ControlError::Checkpoint {
        name: name.to_string(),
        path: path.display().to_string(),
        source,
    };
    let kind = kind.map_err(ck_err)?;
    let m = graphscale_nn::graphmodel::GraphModel::load(path).map_err(ck_err)?;
    if m.kind != kind {
        return Err(ck_err(graphscale_nn::NnError::Data {
            what: format!(
                "it holds a {} model; the autoscaler's model is {}",
                m.kind.name(),
                kind.name()
            ),
        }));
    }
    graphscale_nn::online::OnlineGraphModel::warm(m, cfg).map_err(ck_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_workload() -> Vec<WorkloadFacts> {
        vec![WorkloadFacts {
            name: "a".into(),
            min_replicas: 1,
            max_replicas: 10,
            peak_cpu_millicores: Some(900.0),
            cpu_request_millicores: Some(500.0),
        }]
    }

    #[test]
    fn hpa_tuned_takes_the_knobs_tuned_for_the_app() {
        let hand = AutoscalerSpec::named("hpa-tuned").unwrap();
        assert_eq!(hand, HpaKnobs::HAND_SET.spec("hpa-tuned"));
        let tuned = tuned::knobs_for("online-boutique").expect("the shipped table tunes OB");
        assert_eq!(
            hand.clone().for_app("online-boutique"),
            tuned.spec("hpa-tuned")
        );
        // An app the search did not tune, another autoscaler, or an hpa-tuned whose settings
        // were changed: unchanged.
        assert_eq!(hand.clone().for_app("random-7-3"), hand);
        let hpa = AutoscalerSpec::named("hpa").unwrap();
        assert_eq!(hpa.clone().for_app("online-boutique"), hpa);
        let mut mine = hand.clone();
        if let AutoscalerSpec::Hpa { spec, .. } = &mut mine {
            spec.max_replicas = 7;
        }
        assert_eq!(mine.clone().for_app("online-boutique"), mine);
    }

    #[test]
    fn every_entry_builds_and_keeps_its_name() {
        let facts = one_workload();
        for e in CATALOGUE {
            let spec = AutoscalerSpec::named(e.name).unwrap();
            assert_eq!(spec.name(), e.name);
            match build(&spec, &facts) {
                Ok(a) => assert_eq!(a.name(), e.name),
                Err(err) => panic!("{}: {err}", e.name),
            }
        }
    }

    #[test]
    fn an_unknown_name_lists_the_catalogue() {
        let e = AutoscalerSpec::named("hpa2").unwrap_err().to_string();
        assert!(e.contains("`hpa2`") && e.contains("graph-trend-vpa"), "{e}");
        assert!(names().starts_with("hpa, hpa-tuned, static"));
        assert_eq!(
            help().lines().count(),
            CATALOGUE.len() + ONNX_AUTOSCALERS.len() + RL_AUTOSCALERS.len()
        );
        assert!(names().ends_with("graph-onnx:PATH, rl-gat:PATH, rl-gcn:PATH, rl-mlp:PATH"));
    }

    #[test]
    fn learned_policies_name_their_file_and_encoder() {
        match AutoscalerSpec::named("rl-gat:p.safetensors").unwrap() {
            AutoscalerSpec::Rl {
                name,
                encoder,
                checkpoint,
            } => {
                assert_eq!(name, "rl-gat:p.safetensors");
                assert_eq!(encoder, "gat");
                assert_eq!(checkpoint, std::path::PathBuf::from("p.safetensors"));
            }
            other => panic!("{other:?}"),
        }
        assert!(AutoscalerSpec::named("rl-gat:").is_err());
        assert!(AutoscalerSpec::named("rl-ppo:x").is_err());
        let spec = AutoscalerSpec::named("rl-mlp:/no/such/policy.safetensors").unwrap();
        let e = format!(
            "{:#}",
            anyhow_like(build(&spec, &one_workload()).err().unwrap())
        );
        assert!(
            e.contains("rl-mlp:") && e.contains("/no/such/policy.safetensors"),
            "{e}"
        );
    }

    /// The error with its causes, `: `-separated.
    fn anyhow_like(e: ControlError) -> String {
        let mut s = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(c) = src {
            s.push_str(": ");
            s.push_str(&c.to_string());
            src = c.source();
        }
        s
    }

    #[test]
    fn onnx_autoscalers_name_their_file() {
        for (name, graph_aware) in [("pred-onnx:m.onnx", false), ("graph-onnx:m.onnx", true)] {
            match AutoscalerSpec::named(name).unwrap() {
                AutoscalerSpec::Predictive {
                    name: n,
                    model,
                    config,
                    ..
                } => {
                    assert_eq!((n.as_str(), model.as_str()), (name, "onnx:m.onnx"));
                    assert_eq!(config.planner.graph_aware, graph_aware);
                }
                other => panic!("{other:?}"),
            }
        }
        // Only the ONNX prefix opens the catalogue to free names.
        assert!(AutoscalerSpec::named("pred-arima").is_err());
        assert!(AutoscalerSpec::named("onnx:m.onnx").is_err());
        // A missing file fails the build and names the autoscaler and the file.
        let facts = one_workload();
        let spec = AutoscalerSpec::named("pred-onnx:/no/such/model.onnx").unwrap();
        let e = build(&spec, &facts).err().unwrap().to_string();
        assert!(
            e.contains("pred-onnx:/no/such/model.onnx") && e.contains("/no/such/model.onnx"),
            "{e}"
        );
    }
}
