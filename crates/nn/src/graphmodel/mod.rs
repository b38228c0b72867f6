//! Graph models end to end: HGT, GAT, STGNN and the edge-blind MLP behind one [`GraphNet`],
//! trained on [`GraphSeries`] (simulator rollouts, `graphscale collect` folders, or imported real
//! metrics), evaluated on a held-out time range against persistence, and saved as safetensors
//! with the normalisation and graph in the header.
//!
//! Every series is split by time: the first `1 - validation_share - test_share` for training
//! (and the normalisation), then validation (early stopping), then test. A sample is a window
//! ending at `t` and the targets at `t + 1 ..= t + horizon`; no training target lies past the
//! end of the training range.
//!
//! Outputs per node and step ahead: for RPS, CPU and memory the change of the normalised value
//! at [`QUANTILES`] (pinball loss), then the change in replicas (squared error). Only service
//! nodes with an observed target count in the loss and the metrics.

use std::path::Path;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Device, Tensor, TensorData};
use graphscale_core::{AppGraph, GraphSeries};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use crate::gnn::{gat_edge_features, GatGraph, GatNet, MlpNet, StgnnNet};
use crate::graphdata::{
    input_width, Layout, Normalisation, Tensorised, EDGE_METRICS, MAX_STEP_Z, NODE_METRICS,
    OUTPUTS_PER_STEP, QUANTILES, TARGETS,
};
use crate::hgt::{
    DeviceGraph, HeteroGraph, HgtConfig, HgtNet, RelationEdges, NODE_KINDS, RELATIONS,
};
use crate::hgt_host::{HostGraph, HostHgt};
use crate::NnError;

mod adjacency;
mod batch;
mod checkpoint;
mod predict;
mod score;
mod training;

pub use adjacency::{agreement, service_links, AdjacencyAgreement};
pub use batch::batch;
use batch::{loss, to_vec};
pub use checkpoint::{non_finite_weight, Manifest};
pub use predict::ServicePrediction;
pub use score::{persistence, rnn_baseline, score, TargetScore};
pub use training::{split, train, train_points, EpochReport, Prepared};

/// Checkpoint format name.
pub const FORMAT: &str = "graphscale-graph-model";

/// Checkpoint format version.
pub const FORMAT_VERSION: u32 = 1;

/// Which network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Heterogeneous Graph Transformer.
    Hgt,
    /// Graph attention network over all edges.
    Gat,
    /// Spatio-temporal GNN with a learned adjacency.
    Stgnn,
    /// Edge-blind MLP (ablation).
    Mlp,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 4] = [Kind::Hgt, Kind::Gat, Kind::Stgnn, Kind::Mlp];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hgt => "hgt",
            Kind::Gat => "gat",
            Kind::Stgnn => "stgnn",
            Kind::Mlp => "mlp",
        }
    }

    /// The kind of `name`.
    pub fn parse(name: &str) -> Result<Self, NnError> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| NnError::UnknownModel {
                name: name.to_string(),
                known: "hgt, gat, stgnn, mlp",
            })
    }
}

/// Settings of a graph model and its training. Defaults suit 15 s to 1 min steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphModelConfig {
    /// Input window, steps; default 12.
    pub window: usize,
    /// Steps ahead predicted; default 4.
    pub horizon: usize,
    /// Hidden width (a multiple of `heads`); default 32.
    pub hidden: usize,
    /// Attention heads (HGT, GAT); default 4.
    pub heads: usize,
    /// Graph layers (HGT, GAT); default 2.
    pub layers: usize,
    /// Node embedding width of the STGNN's learned adjacency; default 8.
    pub embed: usize,
    /// Most epochs; default 40.
    pub epochs: usize,
    /// Epochs without a better validation loss before stopping; default 5.
    pub patience: usize,
    /// Samples (graph snapshots) per batch; default 16.
    pub batch: usize,
    /// Adam's learning rate; default 0.003.
    pub learning_rate: f64,
    /// Share of each series for validation; default 0.2.
    pub validation_share: f64,
    /// Share of each series held out for the test; default 0.2.
    pub test_share: f64,
    /// Most training samples per epoch (the newest); default 4000.
    pub max_train_samples: usize,
    /// p95 objective (ms) for the replica target; default: per service, twice its median p95.
    pub slo_ms: Option<f64>,
    /// Seed of the weights and the batch order; default 42.
    pub seed: u64,
}

impl Default for GraphModelConfig {
    fn default() -> Self {
        GraphModelConfig {
            window: 12,
            horizon: 4,
            hidden: 32,
            heads: 4,
            layers: 2,
            embed: 8,
            epochs: 40,
            patience: 5,
            batch: 16,
            learning_rate: 3e-3,
            validation_share: 0.2,
            test_share: 0.2,
            max_train_samples: 4000,
            slo_ms: None,
            seed: 42,
        }
    }
}

impl GraphModelConfig {
    /// Checks ranges, naming the field.
    pub fn check(&self) -> Result<(), NnError> {
        let bad = |f: &str, why: String| {
            Err(NnError::Config {
                field: f.to_string(),
                reason: why,
            })
        };
        // Upper bounds too: a manifest or config file sizes tensors with these.
        for (f, v, max) in [
            ("window", self.window, 10_000),
            ("horizon", self.horizon, 1_000),
            ("hidden", self.hidden, 4_096),
            ("heads", self.heads, 64),
            ("layers", self.layers, 16),
            ("embed", self.embed, 1_024),
            ("epochs", self.epochs, 100_000),
            ("batch", self.batch, 65_536),
            ("max_train_samples", self.max_train_samples, 10_000_000),
        ] {
            if v == 0 || v > max {
                return bad(f, format!("must be in 1..={max}, got {v}"));
            }
        }
        if !self.hidden.is_multiple_of(self.heads) {
            return bad(
                "hidden",
                format!(
                    "{} is not a multiple of heads ({})",
                    self.hidden, self.heads
                ),
            );
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad(
                "learning_rate",
                format!("must be > 0, got {}", self.learning_rate),
            );
        }
        for (f, v) in [
            ("validation_share", self.validation_share),
            ("test_share", self.test_share),
        ] {
            if !(0.0..0.5).contains(&v) {
                return bad(f, format!("must be in [0, 0.5), got {v}"));
            }
        }
        if let Some(s) = self.slo_ms {
            if !(s > 0.0 && s.is_finite()) {
                return bad("slo_ms", format!("must be > 0, got {s}"));
            }
        }
        Ok(())
    }

    pub(crate) fn outputs(&self) -> usize {
        self.horizon * OUTPUTS_PER_STEP
    }
}

/// One of the four networks.
#[derive(Module, Debug)]
pub struct GraphNet {
    hgt: Option<HgtNet>,
    gat: Option<GatNet>,
    stgnn: Option<StgnnNet>,
    mlp: Option<MlpNet>,
}

impl GraphNet {
    /// A `kind` network for `layout`, weights drawn from `cfg.seed`.
    pub fn new(kind: Kind, cfg: &GraphModelConfig, layout: &Layout, device: &Device) -> Self {
        crate::seeded(cfg.seed, device, || {
            let inw = input_width(cfg.window);
            let out = cfg.outputs();
            let mut net = GraphNet {
                hgt: None,
                gat: None,
                stgnn: None,
                mlp: None,
            };
            match kind {
                Kind::Hgt => {
                    let hc = HgtConfig {
                        node_types: NODE_KINDS.len(),
                        relations: RELATIONS.len(),
                        dim: cfg.hidden,
                        heads: cfg.heads,
                        edge_features: EDGE_METRICS.len(),
                    };
                    net.hgt = Some(HgtNet::new(&hc, inw, cfg.layers, out, device));
                }
                Kind::Gat => {
                    net.gat = Some(GatNet::new(
                        inw,
                        cfg.hidden,
                        cfg.heads,
                        cfg.layers,
                        gat_edge_features(EDGE_METRICS.len()),
                        out,
                        device,
                    ));
                }
                Kind::Stgnn => {
                    net.stgnn = Some(StgnnNet::new(
                        layout.nodes.len(),
                        cfg.window,
                        NODE_METRICS.len(),
                        NODE_KINDS.len(),
                        cfg.hidden,
                        cfg.embed,
                        out,
                        device,
                    ));
                }
                Kind::Mlp => net.mlp = Some(MlpNet::new(inw, cfg.hidden, out, device)),
            }
            net
        })
    }

    /// Parameters.
    pub fn parameters(&self) -> usize {
        self.num_params()
    }

    /// `[samples * nodes, outputs]` for a batch.
    pub fn forward(&self, b: &Batch) -> Tensor<2> {
        if let (Some(m), Some(g)) = (&self.hgt, &b.hetero) {
            m.forward(b.x.clone(), g)
        } else if let (Some(m), Some(g)) = (&self.gat, &b.gat) {
            m.forward(b.x.clone(), g)
        } else if let (Some(m), Some(a)) = (&self.stgnn, &b.adj) {
            m.forward(b.x.clone(), a.clone())
        } else if let Some(m) = &self.mlp {
            m.forward(b.x.clone())
        } else {
            unreachable!("a batch is built for its network's kind")
        }
    }
}

/// The inputs of a batch of samples on a device.
#[derive(Debug, Clone)]
pub struct Batch {
    x: Tensor<2>,
    hetero: Option<DeviceGraph>,
    gat: Option<GatGraph>,
    adj: Option<Tensor<2>>,
    /// Samples in the batch.
    pub samples: usize,
}

/// A trained graph model.
#[derive(Debug, Clone)]
pub struct GraphModel {
    /// The network.
    pub kind: Kind,
    /// Its settings.
    pub config: GraphModelConfig,
    /// Graph and data layout.
    pub graph: AppGraph,
    /// Layout of the graph.
    pub layout: Layout,
    /// Normalisation of inputs and outputs.
    pub norm: Normalisation,
    /// Step of the training series, ms.
    pub step_ms: u64,
    /// Weights (plain device). Predictions of an HGT run a host copy of them, made at the
    /// first prediction ([`crate::hgt_host`]): a model's weights are not changed in place.
    pub net: GraphNet,
    /// Validation loss per epoch.
    pub val_loss: Vec<f64>,
    /// Epoch of the kept weights.
    pub best_epoch: usize,
    /// The HGT's weights laid out for host forwards, once read (`None` inside: not an HGT, or
    /// weights that cannot be read, and predictions go through burn's modules).
    host: std::sync::OnceLock<Option<HostHgt>>,
}
