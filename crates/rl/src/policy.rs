//! The policy and value network: an encoder of the workload graph (GAT, GCN or, as the ablation
//! without topology, an MLP over the flattened features), a per-workload action head (logits of
//! the [`ACTIONS`] replica changes) and a value head.
//!
//! - **Inputs** per observation: node features `[workloads, NODE_FEATURES]` with the global
//!   scalars appended to every node.
//! - **GAT** (Velickovic et al. 2018, dense, 2 heads): attention over each workload's
//!   neighbours in the undirected service graph ([`PolicyGraph::links`]) and itself, with a
//!   residual; **GCN** (Kipf and Welling 2017): `h + gelu(A_hat W h)` with the symmetric
//!   normalised adjacency with self-loops. Both are shared by every workload, so the actor head
//!   sees only a workload's embedding.
//! - **MLP**: every workload's inputs flattened into one vector, two layers, and a head with
//!   one set of logits per workload: it can learn each workload apart, but never sees the
//!   graph.
//! - **Value**: the mean of the node embeddings (the MLP's hidden vector) through two layers.
//!
//! Masked actions get a logit of `-1e9`, so their probability is 0 and their log-probability
//! finite.

use burn::module::{Module, Param};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::{gelu, leaky_relu, log_softmax, softmax, tanh};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::features::{Obs, PolicyGraph, ACTIONS, GLOBAL_FEATURES, NODE_FEATURES};
use crate::RlError;

/// The logit of a masked action.
pub const MASKED: f32 = -1e9;

/// The graph encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoder {
    /// Graph attention (the main model).
    Gat,
    /// Graph convolution (the design's GCN baseline).
    Gcn,
    /// No topology: the flattened features (the ablation).
    Mlp,
}

impl Encoder {
    /// Every encoder.
    pub const ALL: [Encoder; 3] = [Encoder::Gat, Encoder::Gcn, Encoder::Mlp];

    /// `gat`, `gcn` or `mlp`.
    pub fn name(self) -> &'static str {
        match self {
            Encoder::Gat => "gat",
            Encoder::Gcn => "gcn",
            Encoder::Mlp => "mlp",
        }
    }

    /// The encoder named `s`.
    pub fn parse(s: &str) -> Result<Self, RlError> {
        Encoder::ALL
            .into_iter()
            .find(|e| e.name() == s)
            .ok_or_else(|| RlError::Config {
                field: "encoder".into(),
                reason: format!("unknown encoder `{s}` (known: gat, gcn, mlp)"),
            })
    }
}

/// Inputs per node: its features and the global scalars.
pub const INPUTS: usize = NODE_FEATURES + GLOBAL_FEATURES;

/// One dense GAT layer with a residual.
#[derive(Module, Debug)]
pub struct DenseGat {
    /// Node projection.
    pub w: Linear,
    /// Source attention vectors `[heads, dk]`.
    pub a_src: Param<Tensor<2>>,
    /// Destination attention vectors `[heads, dk]`.
    pub a_dst: Param<Tensor<2>>,
    heads: usize,
}

impl DenseGat {
    fn new(dim: usize, heads: usize, device: &Device) -> Self {
        let dk = dim / heads;
        let vec = || {
            Initializer::XavierNormal { gain: 1.0 }.init_with(
                [heads, dk],
                Some(dk),
                Some(1),
                device,
            )
        };
        DenseGat {
            w: LinearConfig::new(dim, dim).with_bias(false).init(device),
            a_src: vec(),
            a_dst: vec(),
            heads,
        }
    }

    /// `h`: `[b, n, dim]`; `mask`: `[n, n]`, 0 where `i` attends to `j`, [`MASKED`] elsewhere.
    fn forward(&self, h: Tensor<3>, mask: &Tensor<2>) -> Tensor<3> {
        let [b, n, dim] = h.dims();
        let (hd, dk) = (self.heads, dim / self.heads);
        // [b, heads, n, dk]
        let wh = self
            .w
            .forward(h.clone())
            .reshape([b, n, hd, dk])
            .swap_dims(1, 2);
        let score = |a: &Param<Tensor<2>>| {
            (wh.clone() * a.val().reshape([1, hd, 1, dk]).expand([b, hd, n, dk])).sum_dim(3)
        };
        let src = score(&self.a_src)
            .reshape([b, hd, 1, n])
            .expand([b, hd, n, n]);
        let dst = score(&self.a_dst).expand([b, hd, n, n]);
        let logits =
            leaky_relu(src + dst, 0.2) + mask.clone().reshape([1, 1, n, n]).expand([b, hd, n, n]);
        let att = softmax(logits, 3);
        let out = att.matmul(wh).swap_dims(1, 2).reshape([b, n, dim]);
        h + gelu(out)
    }
}

/// The policy and value network.
#[derive(Module, Debug)]
pub struct PolicyNet {
    /// Node inputs to the hidden width (the MLP: all nodes' inputs).
    pub input: Linear,
    /// GCN layers.
    pub gcn: Vec<Linear>,
    /// GAT layers.
    pub gat: Vec<DenseGat>,
    /// MLP hidden layer.
    pub hidden: Vec<Linear>,
    /// Action logits (per node; the MLP: every node's).
    pub actor: Linear,
    /// Value, first layer.
    pub critic1: Linear,
    /// Value, output.
    pub critic2: Linear,
    encoder: usize,
    nodes: usize,
}

/// Settings of the network; part of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetConfig {
    /// Hidden width (4..=256, even); default 32.
    pub hidden: usize,
    /// Graph layers (1..=4); default 2.
    pub layers: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            hidden: 32,
            layers: 2,
        }
    }
}

impl NetConfig {
    /// Checks every field.
    pub fn check(&self) -> Result<(), RlError> {
        if !(4..=256).contains(&self.hidden) || !self.hidden.is_multiple_of(2) {
            return Err(RlError::Config {
                field: "net.hidden".into(),
                reason: format!("{} is not an even number in 4..=256", self.hidden),
            });
        }
        if !(1..=4).contains(&self.layers) {
            return Err(RlError::Config {
                field: "net.layers".into(),
                reason: format!("{} is not in 1..=4", self.layers),
            });
        }
        Ok(())
    }
}

/// The constant tensors of a graph: the GCN's normalised adjacency and the GAT's mask.
#[derive(Debug, Clone)]
pub struct GraphTensors {
    a_hat: Tensor<2>,
    att_mask: Tensor<2>,
    n: usize,
}

impl GraphTensors {
    /// The tensors of `g` on `device`.
    pub fn new(g: &PolicyGraph, device: &Device) -> Self {
        let n = g.len();
        let mut adj = vec![0f32; n * n];
        for i in 0..n {
            adj[i * n + i] = 1.0;
        }
        for &(a, b) in &g.links {
            adj[a * n + b] = 1.0;
            adj[b * n + a] = 1.0;
        }
        let deg: Vec<f32> = (0..n)
            .map(|i| adj[i * n..(i + 1) * n].iter().sum())
            .collect();
        let a_hat: Vec<f32> = (0..n * n)
            .map(|k| adj[k] / (deg[k / n] * deg[k % n]).sqrt())
            .collect();
        let mask: Vec<f32> = adj
            .iter()
            .map(|&a| if a > 0.0 { 0.0 } else { MASKED })
            .collect();
        GraphTensors {
            a_hat: Tensor::from_data(TensorData::new(a_hat, [n, n]), device),
            att_mask: Tensor::from_data(TensorData::new(mask, [n, n]), device),
            n,
        }
    }
}

/// A batch of observations as tensors.
#[derive(Debug, Clone)]
pub struct ObsBatch {
    /// `[b, n, INPUTS]`.
    pub x: Tensor<3>,
    /// `[b, n, ACTIONS]`: 0 or [`MASKED`].
    pub mask: Tensor<3>,
}

impl ObsBatch {
    /// Stacks `obs` (each of `n` workloads) on `device`.
    pub fn new(obs: &[&Obs], n: usize, device: &Device) -> Result<Self, RlError> {
        let b = obs.len();
        let mut x = Vec::with_capacity(b * n * INPUTS);
        let mut m = Vec::with_capacity(b * n * ACTIONS);
        for o in obs {
            if o.nodes.len() != n * NODE_FEATURES
                || o.global.len() != GLOBAL_FEATURES
                || o.mask.len() != n * ACTIONS
            {
                return Err(RlError::Layout {
                    what: format!(
                        "an observation of {} node features, {} global and {} mask entries; the policy needs {} workloads",
                        o.nodes.len(),
                        o.global.len(),
                        o.mask.len(),
                        n
                    ),
                });
            }
            for i in 0..n {
                for &v in &o.nodes[i * NODE_FEATURES..(i + 1) * NODE_FEATURES] {
                    x.push(if v.is_finite() { v } else { 0.0 });
                }
                for &v in &o.global {
                    x.push(if v.is_finite() { v } else { 0.0 });
                }
            }
            m.extend(o.mask.iter().map(|&ok| if ok { 0.0 } else { MASKED }));
        }
        Ok(ObsBatch {
            x: Tensor::from_data(TensorData::new(x, [b, n, INPUTS]), device),
            mask: Tensor::from_data(TensorData::new(m, [b, n, ACTIONS]), device),
        })
    }
}

impl PolicyNet {
    /// A network with `encoder` for `nodes` workloads.
    pub fn new(encoder: Encoder, nodes: usize, cfg: &NetConfig, device: &Device) -> Self {
        let h = cfg.hidden;
        let lin = |i: usize, o: usize| LinearConfig::new(i, o).init(device);
        let (input, actor) = match encoder {
            Encoder::Mlp => (lin(nodes * INPUTS, h), lin(h, nodes * ACTIONS)),
            _ => (lin(INPUTS, h), lin(h, ACTIONS)),
        };
        PolicyNet {
            input,
            gcn: if encoder == Encoder::Gcn {
                (0..cfg.layers).map(|_| lin(h, h)).collect()
            } else {
                Vec::new()
            },
            gat: if encoder == Encoder::Gat {
                (0..cfg.layers)
                    .map(|_| DenseGat::new(h, 2, device))
                    .collect()
            } else {
                Vec::new()
            },
            hidden: if encoder == Encoder::Mlp {
                (1..cfg.layers.max(2)).map(|_| lin(h, h)).collect()
            } else {
                Vec::new()
            },
            actor,
            critic1: lin(h, h),
            critic2: lin(h, 1),
            encoder: encoder as usize,
            nodes,
        }
    }

    /// The encoder.
    pub fn encoder(&self) -> Encoder {
        Encoder::ALL[self.encoder.min(2)]
    }

    /// Masked action logits `[b, n, ACTIONS]` and values `[b]`.
    pub fn forward(&self, obs: &ObsBatch, g: &GraphTensors) -> (Tensor<3>, Tensor<1>) {
        let [b, n, _] = obs.x.dims();
        let (logits, pooled) = match self.encoder() {
            Encoder::Mlp => {
                let mut h = tanh(self.input.forward(obs.x.clone().reshape([b, n * INPUTS])));
                for l in &self.hidden {
                    h = tanh(l.forward(h));
                }
                (self.actor.forward(h.clone()).reshape([b, n, ACTIONS]), h)
            }
            enc => {
                let mut h = gelu(self.input.forward(obs.x.clone()));
                debug_assert_eq!(n, g.n);
                if enc == Encoder::Gcn {
                    let a = g.a_hat.clone().reshape([1, n, n]).expand([b, n, n]);
                    for l in &self.gcn {
                        h = h.clone() + gelu(a.clone().matmul(l.forward(h)));
                    }
                } else {
                    for l in &self.gat {
                        h = l.forward(h, &g.att_mask);
                    }
                }
                let d = h.dims()[2];
                let pooled = h.clone().mean_dim(1).reshape([b, d]);
                (self.actor.forward(h), pooled)
            }
        };
        let v = self
            .critic2
            .forward(tanh(self.critic1.forward(pooled)))
            .reshape([b]);
        (logits + obs.mask.clone(), v)
    }
}

/// Log-probabilities `[b, n, ACTIONS]` of masked logits.
pub fn log_probs(logits: Tensor<3>) -> Tensor<3> {
    log_softmax(logits, 2)
}
