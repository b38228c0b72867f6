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
use crate::NnError;

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
        for (f, v) in [
            ("window", self.window),
            ("horizon", self.horizon),
            ("hidden", self.hidden),
            ("heads", self.heads),
            ("layers", self.layers),
            ("embed", self.embed),
            ("epochs", self.epochs),
            ("batch", self.batch),
            ("max_train_samples", self.max_train_samples),
        ] {
            if v == 0 {
                return bad(f, "must be >= 1".into());
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

    fn outputs(&self) -> usize {
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

/// The observed graph as a dense `[n, n]` matrix whose row `t` averages `t`'s upstream
/// neighbours (sources of edges into `t`); a row of a node with no incoming edge is zero.
fn observed_adjacency(layout: &Layout) -> Vec<f32> {
    let n = layout.nodes.len();
    let mut a = vec![0f32; n * n];
    let mut deg = vec![0f32; n];
    for (s, d, _) in &layout.edges {
        a[d * n + s] += 1.0;
        deg[*d] += 1.0;
    }
    for t in 0..n {
        if deg[t] > 0.0 {
            for s in 0..n {
                a[t * n + s] /= deg[t];
            }
        }
    }
    a
}

/// Builds the batch of `samples` (`(series index, window end)`).
pub fn batch(
    kind: Kind,
    cfg: &GraphModelConfig,
    layout: &Layout,
    data: &[Tensorised],
    samples: &[(usize, usize)],
    device: &Device,
) -> Result<Batch, NnError> {
    let n = layout.nodes.len();
    let b = samples.len();
    let mut x = Vec::with_capacity(b * n * input_width(cfg.window));
    for (s, t) in samples {
        data[*s].node_window(layout, *t, cfg.window, &mut x);
    }
    let x = Tensor::from_data(TensorData::new(x, [b * n, input_width(cfg.window)]), device);
    let mut out = Batch {
        x,
        hetero: None,
        gat: None,
        adj: None,
        samples: b,
    };
    match kind {
        Kind::Hgt => {
            let mut relations = vec![RelationEdges::default(); RELATIONS.len()];
            for (k, (s, t)) in samples.iter().enumerate() {
                let e = data[*s].edges_at(layout, *t);
                for (j, (a, d, r)) in layout.edges.iter().enumerate() {
                    relations[*r].src.push(k * n + a);
                    relations[*r].dst.push(k * n + d);
                    relations[*r].features.extend_from_slice(
                        &e[j * EDGE_METRICS.len()..(j + 1) * EDGE_METRICS.len()],
                    );
                }
            }
            let g = HeteroGraph {
                node_type: (0..b)
                    .flat_map(|_| layout.node_type.iter().copied())
                    .collect(),
                node_types: NODE_KINDS.len(),
                relations,
                edge_features: EDGE_METRICS.len(),
            };
            out.hetero = Some(DeviceGraph::new(&g, device)?);
        }
        Kind::Gat => {
            let mut edges = Vec::with_capacity(b * layout.edges.len());
            let mut feats = Vec::with_capacity(b * layout.edges.len() * EDGE_METRICS.len());
            for (k, (s, t)) in samples.iter().enumerate() {
                edges.extend(
                    layout
                        .edges
                        .iter()
                        .map(|(a, d, r)| (k * n + a, k * n + d, *r)),
                );
                feats.extend_from_slice(data[*s].edges_at(layout, *t));
            }
            out.gat = Some(GatGraph::new(
                b * n,
                &edges,
                &feats,
                EDGE_METRICS.len(),
                device,
            )?);
        }
        Kind::Stgnn => {
            out.adj = Some(Tensor::from_data(
                TensorData::new(observed_adjacency(layout), [n, n]),
                device,
            ));
        }
        Kind::Mlp => {}
    }
    Ok(out)
}

/// Normalised target changes and masks for a batch: `(quantile targets [b*n, h*3], their mask,
/// replica changes [b*n, h], their mask)`.
fn targets(
    cfg: &GraphModelConfig,
    layout: &Layout,
    norm: &Normalisation,
    data: &[Tensorised],
    samples: &[(usize, usize)],
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let n = layout.nodes.len();
    let (h, k) = (cfg.horizon, TARGETS.len());
    let rows = samples.len() * n;
    let (mut tq, mut mq) = (vec![0f32; rows * h * k], vec![0f32; rows * h * k]);
    let (mut tr, mut mr) = (vec![0f32; rows * h], vec![0f32; rows * h]);
    for (b, (s, t)) in samples.iter().enumerate() {
        let d = &data[*s];
        for i in (0..n).filter(|i| layout.is_service(*i)) {
            let row = b * n + i;
            let now = d.replicas[t * n + i];
            for step in 0..h {
                let fut = t + 1 + step;
                for j in 0..k {
                    let v = d.raw(layout, fut, i, j);
                    if v.is_finite() {
                        let idx = (row * h + step) * k + j;
                        tq[idx] = (norm.node[i][j].z(v) as f32) - d.z(layout, *t, i, j);
                        mq[idx] = 1.0;
                    }
                }
                let need = norm.replicas_for(i, d.raw(layout, fut, i, 0));
                if need.is_finite() {
                    tr[row * h + step] = (need - now) as f32;
                    mr[row * h + step] = 1.0;
                }
            }
        }
    }
    (tq, mq, tr, mr)
}

/// The training loss of `out` against the targets of `samples`.
fn loss(
    out: Tensor<2>,
    cfg: &GraphModelConfig,
    layout: &Layout,
    norm: &Normalisation,
    data: &[Tensorised],
    samples: &[(usize, usize)],
) -> Tensor<1> {
    let device = out.device();
    let rows = out.dims()[0];
    let (h, k, q) = (cfg.horizon, TARGETS.len(), QUANTILES.len());
    let (tq, mq, tr, mr) = targets(cfg, layout, norm, data, samples);
    let t2 =
        |v: Vec<f32>, shape: [usize; 4]| Tensor::<4>::from_data(TensorData::new(v, shape), &device);
    let out = out.reshape([rows, h, OUTPUTS_PER_STEP]);
    let pred_q = out.clone().narrow(2, 0, k * q).reshape([rows, h, k, q]);
    let tq = t2(tq, [rows, h, k, 1]);
    let mq = t2(mq, [rows, h, k, 1]);
    let qs = Tensor::<4>::from_data(TensorData::new(QUANTILES.to_vec(), [1, 1, 1, q]), &device);
    let diff = tq - pred_q;
    let pinball = burn::tensor::activation::relu(diff.clone()) * qs.clone()
        + burn::tensor::activation::relu(diff.neg()) * (qs.neg() + 1.0);
    let lq = (pinball * mq.clone()).sum() / (mq.sum() * q as f32).clamp_min(1.0);
    let pred_r = out.narrow(2, k * q, 1).reshape([rows, h]);
    let tr = Tensor::<2>::from_data(TensorData::new(tr, [rows, h]), &device);
    let mr = Tensor::<2>::from_data(TensorData::new(mr, [rows, h]), &device);
    let lr = ((pred_r - tr).powi_scalar(2) * mr.clone()).sum() / mr.sum().clamp_min(1.0);
    lq + lr * 0.1
}

fn to_vec(t: Tensor<2>) -> Result<Vec<f32>, NnError> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| NnError::Tensor {
            reason: format!("{e:?}"),
        })
}

/// Window ends of one series by split: `(train, validation, test)`.
pub fn split(cfg: &GraphModelConfig, len: usize) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let (w, h) = (cfg.window, cfg.horizon);
    let train_end = train_points(cfg, len);
    let val_end = ((len as f64) * (1.0 - cfg.test_share)).floor() as usize;
    let ends = |from: usize, to: usize| -> Vec<usize> {
        // Window inside the series, targets before `to`.
        (from.max(w - 1)..to.saturating_sub(h)).collect()
    };
    (
        ends(0, train_end),
        ends(train_end, val_end),
        ends(val_end, len),
    )
}

/// Points of a series of `len` used for training (and the normalisation).
pub fn train_points(cfg: &GraphModelConfig, len: usize) -> usize {
    ((len as f64) * (1.0 - cfg.validation_share - cfg.test_share)).floor() as usize
}

/// Data ready for a model: layout, normalisation fitted on the training ranges, and tensors.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The graph.
    pub graph: AppGraph,
    /// Its layout.
    pub layout: Layout,
    /// The normalisation.
    pub norm: Normalisation,
    /// One per series.
    pub data: Vec<Tensorised>,
    /// Step of the series, ms.
    pub step_ms: u64,
}

impl Prepared {
    /// Checks that every series has the first one's graph and step, fits the normalisation on
    /// the training ranges and tensorises.
    pub fn new(cfg: &GraphModelConfig, series: &[GraphSeries]) -> Result<Self, NnError> {
        cfg.check()?;
        let first = series.first().ok_or_else(|| NnError::Data {
            what: "no series to train on".into(),
        })?;
        let layout = Layout::of(&first.graph);
        if !layout
            .nodes
            .iter()
            .enumerate()
            .any(|(i, _)| layout.is_service(i))
        {
            return Err(NnError::Data {
                what: "the graph has no service".into(),
            });
        }
        for (k, s) in series.iter().enumerate() {
            layout.check(&s.graph).map_err(|e| NnError::Data {
                what: format!("series {k}: {}", e),
            })?;
            if s.step_ms != first.step_ms {
                return Err(NnError::Data {
                    what: format!(
                        "series {k}: step {} ms, the first has {} ms",
                        s.step_ms, first.step_ms
                    ),
                });
            }
        }
        let refs: Vec<&GraphSeries> = series.iter().collect();
        let upto: Vec<usize> = series.iter().map(|s| train_points(cfg, s.len)).collect();
        let norm = Normalisation::fit(&layout, &refs, &upto, cfg.slo_ms);
        let data = series
            .iter()
            .map(|s| norm.tensorise(&layout, s))
            .collect::<Result<_, _>>()?;
        Ok(Prepared {
            graph: first.graph.clone(),
            layout,
            norm,
            data,
            step_ms: first.step_ms,
        })
    }

    /// Samples of every series in one split (0 train, 1 validation, 2 test).
    pub fn samples(&self, cfg: &GraphModelConfig, which: usize) -> Vec<(usize, usize)> {
        self.data
            .iter()
            .enumerate()
            .flat_map(|(s, d)| {
                let sp = split(cfg, d.len);
                let v = match which {
                    0 => sp.0,
                    1 => sp.1,
                    _ => sp.2,
                };
                v.into_iter().map(move |t| (s, t))
            })
            .collect()
    }
}

/// Progress of training, reported after every epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochReport {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Validation loss.
    pub val_loss: f64,
    /// Whether these weights are the best so far.
    pub best: bool,
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
    /// Weights (plain device).
    pub net: GraphNet,
    /// Validation loss per epoch.
    pub val_loss: Vec<f64>,
    /// Epoch of the kept weights.
    pub best_epoch: usize,
}

/// Mean loss of `net` over `samples`, in batches.
fn mean_loss(
    net: &GraphNet,
    kind: Kind,
    cfg: &GraphModelConfig,
    p: &Prepared,
    samples: &[(usize, usize)],
    device: &Device,
) -> Result<f64, NnError> {
    let mut total = 0.0;
    for chunk in samples.chunks(cfg.batch.max(64)) {
        let b = batch(kind, cfg, &p.layout, &p.data, chunk, device)?;
        let l = loss(net.forward(&b), cfg, &p.layout, &p.norm, &p.data, chunk);
        total += f64::from(l.into_scalar::<f32>()) * chunk.len() as f64;
    }
    Ok(total / samples.len().max(1) as f64)
}

/// Trains a `kind` model on `p`, reporting each epoch to `progress`.
pub fn train(
    kind: Kind,
    cfg: &GraphModelConfig,
    p: &Prepared,
    progress: &mut dyn FnMut(EpochReport),
) -> Result<GraphModel, NnError> {
    cfg.check()?;
    let span = tracing::info_span!(
        "train_graph_model",
        model = kind.name(),
        nodes = p.layout.nodes.len()
    );
    let _e = span.enter();
    let mut train_s = p.samples(cfg, 0);
    let val_s = p.samples(cfg, 1);
    if train_s.len() < 8 || val_s.is_empty() {
        return Err(NnError::Data {
            what: format!(
                "too little data: {} training and {} validation windows (window {}, horizon {}); \
             record longer series",
                train_s.len(),
                val_s.len(),
                cfg.window,
                cfg.horizon
            ),
        });
    }
    if train_s.len() > cfg.max_train_samples {
        train_s.sort_by_key(|s| s.1);
        train_s = train_s.split_off(train_s.len() - cfg.max_train_samples);
    }
    let device = Device::flex().autodiff();
    let plain = Device::flex();
    let mut net = GraphNet::new(kind, cfg, &p.layout, &device);
    let mut optim = AdamConfig::new().init();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut best: Option<(f64, GraphNet)> = None;
    let mut best_epoch = 0;
    let mut val_loss = Vec::new();
    for epoch in 1..=cfg.epochs {
        train_s.shuffle(&mut rng);
        let mut total = 0.0;
        for chunk in train_s.chunks(cfg.batch) {
            let b = batch(kind, cfg, &p.layout, &p.data, chunk, &device)?;
            let l = loss(net.forward(&b), cfg, &p.layout, &p.norm, &p.data, chunk);
            total += f64::from(l.clone().into_scalar::<f32>()) * chunk.len() as f64;
            let grads = GradientsParams::from_grads(l.backward(), &net);
            net = optim.step(cfg.learning_rate, net, grads);
        }
        let train_loss = total / train_s.len() as f64;
        let valid = net.valid();
        let v = mean_loss(&valid, kind, cfg, p, &val_s, &plain)?;
        if !v.is_finite() {
            return Err(NnError::Data { what: format!(
                "training diverged at epoch {epoch} (validation loss {v}); try a lower learning_rate"
            ) });
        }
        val_loss.push(v);
        let is_best = best.as_ref().is_none_or(|b| v < b.0);
        progress(EpochReport {
            epoch,
            train_loss,
            val_loss: v,
            best: is_best,
        });
        tracing::debug!(epoch, train_loss, val_loss = v, "epoch");
        if is_best {
            best = Some((v, valid));
            best_epoch = epoch;
        } else if epoch - best_epoch >= cfg.patience {
            break;
        }
    }
    let (_, net) = best.ok_or_else(|| NnError::Data {
        what: "no epoch ran".into(),
    })?;
    Ok(GraphModel {
        kind,
        config: cfg.clone(),
        graph: p.graph.clone(),
        layout: p.layout.clone(),
        norm: p.norm.clone(),
        step_ms: p.step_ms,
        net,
        val_loss,
        best_epoch,
    })
}

/// One service's forecast at one step ahead, in units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServicePrediction {
    /// Service id.
    pub service: String,
    /// Steps ahead (1-based).
    pub step: usize,
    /// Seconds ahead.
    pub ahead_s: f64,
    /// RPS at the 0.1, 0.5 and 0.9 quantiles.
    pub rps: [f64; 3],
    /// CPU millicores at the quantiles.
    pub cpu_m: [f64; 3],
    /// Memory MiB at the quantiles.
    pub memory_mib: [f64; 3],
    /// Replicas that keep the service within its SLO.
    pub replicas: u32,
}

impl GraphModel {
    /// Predictions from the window ending at `t` of `data` (built with this model's
    /// normalisation), for every service.
    pub fn predict_at(
        &self,
        data: &Tensorised,
        t: usize,
    ) -> Result<Vec<ServicePrediction>, NnError> {
        Ok(self
            .predict_many(std::slice::from_ref(data), &[(0, t)])?
            .remove(0))
    }

    fn predict_many(
        &self,
        data: &[Tensorised],
        samples: &[(usize, usize)],
    ) -> Result<Vec<Vec<ServicePrediction>>, NnError> {
        let device = Device::flex();
        let n = self.layout.nodes.len();
        let (h, k, q) = (self.config.horizon, TARGETS.len(), QUANTILES.len());
        let mut all = Vec::with_capacity(samples.len());
        for chunk in samples.chunks(64) {
            let b = batch(self.kind, &self.config, &self.layout, data, chunk, &device)?;
            let out = to_vec(self.net.forward(&b))?;
            for (bi, (s, t)) in chunk.iter().enumerate() {
                let d = &data[*s];
                let mut preds = Vec::new();
                for i in (0..n).filter(|i| self.layout.is_service(*i)) {
                    let row = bi * n + i;
                    for step in 0..h {
                        let o = &out[(row * h + step) * OUTPUTS_PER_STEP..][..OUTPUTS_PER_STEP];
                        let unit = |j: usize| {
                            let z0 = f64::from(d.z(&self.layout, *t, i, j));
                            let mut v: Vec<f64> = (0..q)
                                .map(|qi| {
                                    let dz =
                                        f64::from(o[j * q + qi]).clamp(-MAX_STEP_Z, MAX_STEP_Z);
                                    self.norm.node[i][j].x(z0 + dz)
                                })
                                .collect();
                            v.sort_by(f64::total_cmp);
                            [v[0], v[1], v[2]]
                        };
                        let now = d.replicas[t * n + i];
                        let reps = (now + f64::from(o[k * q])).round().max(1.0);
                        preds.push(ServicePrediction {
                            service: self.layout.nodes[i].clone(),
                            step: step + 1,
                            ahead_s: (step + 1) as f64 * self.step_ms as f64 / 1000.0,
                            rps: unit(0),
                            cpu_m: unit(1),
                            memory_mib: unit(2),
                            replicas: reps.min(f64::from(u32::MAX)) as u32,
                        });
                    }
                }
                all.push(preds);
            }
        }
        Ok(all)
    }

    /// Predictions from the newest window of `s` (at least `window` points, this model's graph).
    pub fn predict_series(&self, s: &GraphSeries) -> Result<Vec<ServicePrediction>, NnError> {
        self.layout.check(&s.graph)?;
        if s.len < self.config.window {
            return Err(NnError::Data {
                what: format!(
                    "the snapshot has {} points; the model reads the last {}",
                    s.len, self.config.window
                ),
            });
        }
        let d = self.norm.tensorise(&self.layout, s)?;
        let t = s.len - 1;
        for (i, id) in self.layout.nodes.iter().enumerate() {
            if self.layout.is_service(i) && !d.raw(&self.layout, t, i, 0).is_finite() {
                return Err(NnError::Data {
                    what: format!(
                        "service `{id}` has no rps at the newest point: cannot predict from it"
                    ),
                });
            }
        }
        self.predict_at(&d, t)
    }
}

/// MAE, RMSE and the 80 % interval's coverage of one target on a test range.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct TargetScore {
    /// Mean absolute error.
    pub mae: f64,
    /// Root mean squared error.
    pub rmse: f64,
    /// Share of actual values inside the 0.1..0.9 quantiles (NaN for point forecasts).
    pub coverage: f64,
    /// Points scored.
    pub points: usize,
}

#[derive(Default)]
struct Acc {
    abs: f64,
    sq: f64,
    inside: f64,
    n: usize,
}

impl Acc {
    fn add(&mut self, pred: f64, actual: f64, interval: Option<(f64, f64)>) {
        self.abs += (pred - actual).abs();
        self.sq += (pred - actual).powi(2);
        if let Some((lo, hi)) = interval {
            if lo <= actual && actual <= hi {
                self.inside += 1.0;
            }
        }
        self.n += 1;
    }

    fn score(&self, intervals: bool) -> TargetScore {
        let n = self.n.max(1) as f64;
        TargetScore {
            mae: self.abs / n,
            rmse: (self.sq / n).sqrt(),
            coverage: if intervals { self.inside / n } else { f64::NAN },
            points: self.n,
        }
    }
}

/// Scores per target (`rps, cpu_m, memory_mib, replicas`) on the given samples. `predict`
/// gives, for each sample, what [`GraphModel::predict_at`] gives; the points scored are the
/// service, sample and step where the actual value and the value at the window's end are known.
pub fn score(
    p: &Prepared,
    samples: &[(usize, usize)],
    horizon: usize,
    preds: &[Vec<ServicePrediction>],
    intervals: bool,
) -> [TargetScore; 4] {
    let mut acc: [Acc; 4] = Default::default();
    let l = &p.layout;
    for ((s, t), pr) in samples.iter().zip(preds) {
        let d = &p.data[*s];
        for sp in pr {
            let Some(i) = l.nodes.iter().position(|x| *x == sp.service) else {
                continue;
            };
            let fut = t + sp.step;
            if sp.step > horizon || fut >= d.len {
                continue;
            }
            for (j, v) in [sp.rps, sp.cpu_m, sp.memory_mib].iter().enumerate() {
                let actual = d.raw(l, fut, i, j);
                if actual.is_finite() && d.raw(l, *t, i, j).is_finite() {
                    acc[j].add(v[1], actual, Some((v[0], v[2])));
                }
            }
            let need = p.norm.replicas_for(i, d.raw(l, fut, i, 0));
            if need.is_finite() && d.raw(l, *t, i, 0).is_finite() {
                acc[3].add(f64::from(sp.replicas), need, None);
            }
        }
    }
    [
        acc[0].score(intervals),
        acc[1].score(intervals),
        acc[2].score(intervals),
        acc[3].score(false),
    ]
}

/// Persistence: every target keeps its value at the window's end (replicas: what that load
/// needs).
pub fn persistence(
    p: &Prepared,
    samples: &[(usize, usize)],
    horizon: usize,
) -> Vec<Vec<ServicePrediction>> {
    let l = &p.layout;
    samples
        .iter()
        .map(|(s, t)| {
            let d = &p.data[*s];
            let mut out = Vec::new();
            for i in (0..l.nodes.len()).filter(|i| l.is_service(*i)) {
                for step in 1..=horizon {
                    let v = |j| {
                        let x = d.raw(l, *t, i, j);
                        [x, x, x]
                    };
                    out.push(ServicePrediction {
                        service: l.nodes[i].clone(),
                        step,
                        ahead_s: step as f64 * p.step_ms as f64 / 1000.0,
                        rps: v(0),
                        cpu_m: v(1),
                        memory_mib: v(2),
                        replicas: p.norm.replica_count(i, d.raw(l, *t, i, 0)),
                    });
                }
            }
            out
        })
        .collect()
}

impl GraphModel {
    /// Scores on the test range of `p` (which must use this model's normalisation).
    pub fn test_scores(&self, p: &Prepared) -> Result<[TargetScore; 4], NnError> {
        let samples = p.samples(&self.config, 2);
        let preds = self.predict_many(&p.data, &samples)?;
        Ok(score(p, &samples, self.config.horizon, &preds, true))
    }
}

/// The manifest in a checkpoint's header.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The network.
    pub kind: Kind,
    /// Settings.
    pub config: GraphModelConfig,
    /// The graph it was trained on.
    pub graph: AppGraph,
    /// Normalisation.
    pub norm: Normalisation,
    /// Step of the training series, ms.
    pub step_ms: u64,
    /// Validation loss per epoch.
    pub val_loss: Vec<f64>,
    /// Epoch of the kept weights.
    pub best_epoch: usize,
    /// The build that wrote it.
    pub graphscale_version: String,
}

fn ck_err(path: &Path, why: impl std::fmt::Display) -> NnError {
    NnError::Checkpoint {
        path: path.display().to_string(),
        reason: why.to_string(),
    }
}

impl GraphModel {
    /// Writes the model to `path` atomically (a temporary file, then a rename).
    pub fn save(&self, path: &Path) -> Result<(), NnError> {
        let manifest = Manifest {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            kind: self.kind,
            config: self.config.clone(),
            graph: self.graph.clone(),
            norm: self.norm.clone(),
            step_ms: self.step_ms,
            val_loss: self.val_loss.clone(),
            best_epoch: self.best_epoch,
            graphscale_version: env!("CARGO_PKG_VERSION").into(),
        };
        let text = serde_json::to_string(&manifest).map_err(|e| ck_err(path, e))?;
        let mut store = SafetensorsStore::from_bytes(None);
        self.net
            .save_into(&mut store)
            .map_err(|e| ck_err(path, format!("{e:?}")))?;
        let bytes = store
            .get_bytes()
            .map_err(|e| ck_err(path, format!("{e:?}")))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| ck_err(path, e))?;
        let views: Vec<(String, safetensors::tensor::TensorView)> = st.tensors();
        let meta = [("graph_model".to_string(), text)].into_iter().collect();
        let data =
            safetensors::tensor::serialize(views, Some(meta)).map_err(|e| ck_err(path, e))?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &data).map_err(|e| ck_err(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| ck_err(path, e))
    }

    /// Reads a model written by [`GraphModel::save`]; another file (a forecaster checkpoint, a
    /// network of another shape) is refused with the reason.
    pub fn load(path: &Path) -> Result<Self, NnError> {
        let data = std::fs::read(path).map_err(|e| ck_err(path, e))?;
        let (_, meta) = SafeTensors::read_metadata(&data)
            .map_err(|e| ck_err(path, format!("not a safetensors file: {e}")))?;
        let md = meta.metadata().as_ref();
        let text = md.and_then(|m| m.get("graph_model")).ok_or_else(|| {
            if md.is_some_and(|m| m.contains_key("manifest")) {
                ck_err(path, "a forecaster checkpoint, not a graph model (train one with `graphscale train`)")
            } else {
                ck_err(path, "no graph-model manifest in the header: not a graphscale graph model")
            }
        })?;
        let raw: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ck_err(path, format!("manifest: {e}")))?;
        if raw.get("format").and_then(|v| v.as_str()) != Some(FORMAT) {
            return Err(ck_err(path, format!("manifest format is not `{FORMAT}`")));
        }
        let version = raw
            .get("format_version")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        if version != u64::from(FORMAT_VERSION) {
            return Err(ck_err(
                path,
                format!("format version {version}; this build reads version {FORMAT_VERSION}"),
            ));
        }
        let m: Manifest =
            serde_json::from_value(raw).map_err(|e| ck_err(path, format!("manifest: {e}")))?;
        m.config.check().map_err(|e| ck_err(path, e))?;
        let layout = Layout::of(&m.graph);
        if m.norm.node.len() != layout.nodes.len() || m.norm.edge.len() != layout.edges.len() {
            return Err(ck_err(path, "the normalisation does not match the graph"));
        }
        let device = Device::flex();
        let mut net = GraphNet::new(m.kind, &m.config, &layout, &device);
        let mut store = SafetensorsStore::from_bytes(Some(data));
        let applied = net.load_from(&mut store).map_err(|e| {
            ck_err(
                path,
                format!("weights do not fit the {} network: {e:?}", m.kind.name()),
            )
        })?;
        if !applied.missing.is_empty() || !applied.unused.is_empty() || !applied.errors.is_empty() {
            return Err(ck_err(
                path,
                format!(
                    "weights do not fit the {} network: missing {:?}, unused {:?}, errors {:?}",
                    m.kind.name(),
                    applied.missing,
                    applied.unused,
                    applied.errors
                ),
            ));
        }
        Ok(GraphModel {
            kind: m.kind,
            config: m.config,
            graph: m.graph,
            layout,
            norm: m.norm,
            step_ms: m.step_ms,
            net,
            val_loss: m.val_loss,
            best_epoch: m.best_epoch,
        })
    }

    /// Prepares `series` with this model's normalisation (for scoring held-out data).
    pub fn prepare(&self, series: &[GraphSeries]) -> Result<Prepared, NnError> {
        let data = series
            .iter()
            .map(|s| {
                self.layout.check(&s.graph)?;
                self.norm.tensorise(&self.layout, s)
            })
            .collect::<Result<_, _>>()?;
        Ok(Prepared {
            graph: self.graph.clone(),
            layout: self.layout.clone(),
            norm: self.norm.clone(),
            data,
            step_ms: self.step_ms,
        })
    }
}

/// The per-service baseline: one recurrent network (`rnn`, its cell and window) per series,
/// service and target, trained on the training and validation ranges of that series alone
/// (gaps filled with the previous value), forecasting every test window; replicas follow from
/// its RPS forecast. A series a network cannot train on (too short) falls back to persistence;
/// the second value counts those.
pub fn rnn_baseline(
    p: &Prepared,
    cfg: &GraphModelConfig,
    rnn: &crate::rnn::RnnConfig,
) -> Result<(Vec<Vec<ServicePrediction>>, usize), NnError> {
    let l = &p.layout;
    let samples = p.samples(cfg, 2);
    let mut preds = persistence(p, &samples, cfg.horizon);
    let mut fallbacks = 0;
    let rc = crate::rnn::RnnConfig {
        max_horizon: cfg.horizon,
        ..rnn.clone()
    };
    for (si, d) in p.data.iter().enumerate() {
        let val_end = ((d.len as f64) * (1.0 - cfg.test_share)).floor() as usize;
        for i in (0..l.nodes.len()).filter(|i| l.is_service(*i)) {
            for j in 0..TARGETS.len() {
                let mut y: Vec<f64> = (0..d.len).map(|t| d.raw(l, t, i, j)).collect();
                let first = y.iter().copied().find(|v| v.is_finite()).unwrap_or(0.0);
                let mut last = first;
                for v in &mut y {
                    if v.is_finite() {
                        last = *v;
                    } else {
                        *v = last;
                    }
                }
                let Ok(trained) = crate::rnn::train(&rc, &y[..val_end], 0) else {
                    fallbacks += 1;
                    continue;
                };
                for (k, (s, t)) in samples.iter().enumerate() {
                    if *s != si || *t + 1 < rc.window {
                        continue;
                    }
                    let f = trained
                        .forecast(&y[..=*t], *t, cfg.horizon)
                        .map_err(NnError::from)?;
                    for sp in preds[k].iter_mut().filter(|sp| sp.service == l.nodes[i]) {
                        let v = f[sp.step - 1].max(0.0);
                        match j {
                            0 => {
                                sp.rps = [v; 3];
                                sp.replicas = p.norm.replica_count(i, v);
                            }
                            1 => sp.cpu_m = [v; 3],
                            _ => sp.memory_mib = [v; 3],
                        }
                    }
                }
            }
        }
    }
    Ok((preds, fallbacks))
}
