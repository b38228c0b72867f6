//! The graph networks besides HGT ([`crate::hgt`]): a multi-head, edge-aware GAT, a
//! DeepScaler-style spatio-temporal GNN with a learned adjacency, and the edge-blind MLP used
//! as the ablation.
//!
//! Every network maps node inputs `[nodes, window * features + node types]` (see
//! [`crate::graphdata::Tensorised::node_window`]) to `[nodes, outputs]`.

use burn::module::{Module, Param};
use burn::nn::{Gru, GruConfig, Initializer, Linear, LinearConfig};
use burn::tensor::activation::{gelu, leaky_relu, relu, softmax};
use burn::tensor::{Device, IndexingUpdateOp, Int, Tensor, TensorData};

use crate::hgt::{segment_softmax, RELATIONS};
use crate::NnError;

/// Edge features of the GAT: the edge's metrics, its relation (one-hot) and a self-loop flag.
pub fn gat_edge_features(metrics: usize) -> usize {
    metrics + RELATIONS.len() + 1
}

/// A homogeneous graph for the GAT: every relation's edges plus a self-loop per node.
#[derive(Debug, Clone)]
pub struct GatGraph {
    n: usize,
    src: Tensor<1, Int>,
    dst: Tensor<1, Int>,
    features: Tensor<2>,
}

impl GatGraph {
    /// `n` nodes; `edges` as `(src, dst, relation)`, `metrics` their features (row-major, width
    /// `width`). Self-loops are added with zero metrics.
    pub fn new(
        n: usize,
        edges: &[(usize, usize, usize)],
        metrics: &[f32],
        width: usize,
        device: &Device,
    ) -> Result<Self, NnError> {
        if metrics.len() != edges.len() * width {
            return Err(NnError::InvalidGraph {
                what: format!(
                    "{} edge feature values for {} edges of width {width}",
                    metrics.len(),
                    edges.len()
                ),
            });
        }
        if let Some((s, d, _)) = edges.iter().find(|(s, d, _)| *s >= n || *d >= n) {
            return Err(NnError::InvalidGraph {
                what: format!("edge {s} -> {d}, but the graph has {n} nodes"),
            });
        }
        if let Some(k) = metrics.iter().position(|v| !v.is_finite()) {
            return Err(NnError::InvalidGraph {
                what: format!("edge feature {k} is not finite"),
            });
        }
        let fe = gat_edge_features(width);
        let total = edges.len() + n;
        let mut src = Vec::with_capacity(total);
        let mut dst = Vec::with_capacity(total);
        let mut feat = Vec::with_capacity(total * fe);
        for (k, (s, d, r)) in edges.iter().enumerate() {
            src.push(*s as i64);
            dst.push(*d as i64);
            feat.extend_from_slice(&metrics[k * width..(k + 1) * width]);
            feat.extend((0..RELATIONS.len()).map(|x| if x == *r { 1.0 } else { 0.0 }));
            feat.push(0.0);
        }
        for i in 0..n {
            src.push(i as i64);
            dst.push(i as i64);
            feat.extend(std::iter::repeat_n(0.0, width + RELATIONS.len()));
            feat.push(1.0);
        }
        Ok(GatGraph {
            n,
            src: Tensor::from_data(TensorData::new(src, [total]), device),
            dst: Tensor::from_data(TensorData::new(dst, [total]), device),
            features: Tensor::from_data(TensorData::new(feat, [total, fe]), device),
        })
    }
}

/// One GAT layer (Velickovic et al. 2018) with an edge-feature term in the attention logit
/// (`leaky_relu(a_src . Wx_s + a_dst . Wx_t + w_e . e_st)`), multi-head, with a residual.
#[derive(Module, Debug)]
pub struct GatLayer {
    /// Shared node projection.
    pub w: Linear,
    /// Source attention vectors `[heads, dk]`.
    pub a_src: Param<Tensor<2>>,
    /// Destination attention vectors `[heads, dk]`.
    pub a_dst: Param<Tensor<2>>,
    /// Edge features to a logit per head.
    pub edge: Linear,
    /// Output map.
    pub out: Linear,
    heads: usize,
    dim: usize,
}

impl GatLayer {
    /// A layer of width `dim` with `heads` heads (`dim` a multiple of `heads`).
    pub fn new(dim: usize, heads: usize, edge_features: usize, device: &Device) -> Self {
        let heads = heads.max(1);
        let dk = (dim / heads).max(1);
        let vec = || {
            Initializer::XavierNormal { gain: 1.0 }.init_with(
                [heads, dk],
                Some(dk),
                Some(1),
                device,
            )
        };
        GatLayer {
            w: LinearConfig::new(dim, heads * dk)
                .with_bias(false)
                .init(device),
            a_src: vec(),
            a_dst: vec(),
            edge: LinearConfig::new(edge_features, heads).init(device),
            out: LinearConfig::new(heads * dk, dim).init(device),
            heads,
            dim,
        }
    }

    /// `x`: `[nodes, dim]` -> `[nodes, dim]`.
    pub fn forward(&self, x: Tensor<2>, g: &GatGraph) -> Tensor<2> {
        let h = self.heads;
        let dk = (self.dim / h).max(1);
        let n = g.n;
        let wh = self.w.forward(x.clone()).reshape([n, h, dk]);
        let score = |a: &Param<Tensor<2>>| {
            (wh.clone() * a.val().reshape([1, h, dk]))
                .sum_dim(2)
                .reshape([n, h])
        };
        let (s_src, s_dst) = (score(&self.a_src), score(&self.a_dst));
        let logits = leaky_relu(
            s_src.select(0, g.src.clone())
                + s_dst.select(0, g.dst.clone())
                + self.edge.forward(g.features.clone()),
            0.2,
        );
        let att = segment_softmax(logits, g.dst.clone(), n);
        let e = att.dims()[0];
        let msg = wh.select(0, g.src.clone()) * att.reshape([e, h, 1]);
        let agg = Tensor::<3>::zeros([n, h, dk], &x.device())
            .select_assign(0, g.dst.clone(), msg, IndexingUpdateOp::Add)
            .reshape([n, h * dk]);
        x + self.out.forward(gelu(agg))
    }
}

/// A GAT network: input map, layers, head.
#[derive(Module, Debug)]
pub struct GatNet {
    /// Input map.
    pub input: Linear,
    /// Layers.
    pub layers: Vec<GatLayer>,
    /// Output head.
    pub head: Linear,
}

impl GatNet {
    /// A network of `layers` layers.
    pub fn new(
        in_features: usize,
        dim: usize,
        heads: usize,
        layers: usize,
        edge_features: usize,
        outputs: usize,
        device: &Device,
    ) -> Self {
        GatNet {
            input: LinearConfig::new(in_features, dim).init(device),
            layers: (0..layers)
                .map(|_| GatLayer::new(dim, heads, edge_features, device))
                .collect(),
            head: LinearConfig::new(dim, outputs).init(device),
        }
    }

    /// `x`: `[nodes, in_features]` -> `[nodes, outputs]`.
    pub fn forward(&self, x: Tensor<2>, g: &GatGraph) -> Tensor<2> {
        let mut h = gelu(self.input.forward(x));
        for l in &self.layers {
            h = l.forward(h, g);
        }
        self.head.forward(h)
    }
}

/// A spatio-temporal GNN in the style of DeepScaler: at every step of the window, a graph
/// convolution mixes each node's features with its upstream neighbours' (the observed graph,
/// row-normalised) and with an adaptive adjacency `softmax(relu(E1 E2^T))` learned from node
/// embeddings; a GRU reads the convolved window per node and a head maps its last state (with
/// the node type) to the outputs.
#[derive(Module, Debug)]
pub struct StgnnNet {
    /// Source node embeddings `[nodes, embed]`.
    pub emb_src: Param<Tensor<2>>,
    /// Destination node embeddings `[nodes, embed]`.
    pub emb_dst: Param<Tensor<2>>,
    /// Own features.
    pub w_self: Linear,
    /// Observed-graph neighbours.
    pub w_obs: Linear,
    /// Learned-graph neighbours.
    pub w_adp: Linear,
    /// Temporal model.
    pub gru: Gru,
    /// Output head (GRU state + node type).
    pub head: Linear,
    nodes: usize,
    window: usize,
    features: usize,
    types: usize,
}

impl StgnnNet {
    /// A network for a graph of `nodes` nodes, windows of `window` steps of `features` each and
    /// `types` node-type inputs.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        nodes: usize,
        window: usize,
        features: usize,
        types: usize,
        dim: usize,
        embed: usize,
        outputs: usize,
        device: &Device,
    ) -> Self {
        let emb = || {
            Initializer::Normal {
                mean: 0.0,
                std: 0.5,
            }
            .init([nodes, embed.max(1)], device)
        };
        let lin = |i, o| LinearConfig::new(i, o).init(device);
        StgnnNet {
            emb_src: emb(),
            emb_dst: emb(),
            w_self: lin(features, dim),
            w_obs: lin(features, dim),
            w_adp: lin(features, dim),
            gru: GruConfig::new(dim, dim, true).init(device),
            head: lin(dim + types, outputs),
            nodes,
            window,
            features,
            types,
        }
    }

    /// The learned adjacency `[nodes, nodes]` (rows sum to one).
    pub fn adaptive_adjacency(&self) -> Tensor<2> {
        softmax(
            relu(self.emb_src.val().matmul(self.emb_dst.val().transpose())),
            1,
        )
    }

    /// `x`: `[batch * nodes, window * features + types]`, `adj`: the observed graph
    /// `[nodes, nodes]` (row `t` averages `t`'s upstream neighbours) -> `[batch * nodes, outputs]`.
    pub fn forward(&self, x: Tensor<2>, adj: Tensor<2>) -> Tensor<2> {
        let (n, w, f) = (self.nodes, self.window, self.features);
        let rows = x.dims()[0];
        let b = rows / n;
        let types = x.clone().narrow(1, w * f, self.types);
        // [b, n, w, f] -> [b * w, n, f]
        let seq = x
            .narrow(1, 0, w * f)
            .reshape([b, n, w, f])
            .swap_dims(1, 2)
            .reshape([b * w, n, f]);
        let bw = b * w;
        let obs = adj
            .unsqueeze_dim::<3>(0)
            .repeat_dim(0, bw)
            .matmul(seq.clone());
        let adp = self
            .adaptive_adjacency()
            .unsqueeze_dim::<3>(0)
            .repeat_dim(0, bw)
            .matmul(seq.clone());
        let z = relu(self.w_self.forward(seq) + self.w_obs.forward(obs) + self.w_adp.forward(adp));
        let d = z.dims()[2];
        let z = z
            .reshape([b, w, n, d])
            .swap_dims(1, 2)
            .reshape([b * n, w, d]);
        let out = self.gru.forward(z, None);
        let last = out.narrow(1, w - 1, 1).reshape([b * n, d]);
        self.head.forward(Tensor::cat(vec![last, types], 1))
    }
}

/// The edge-blind ablation: the same inputs through a two-layer MLP per node, shared by all
/// nodes; it never sees a neighbour.
#[derive(Module, Debug)]
pub struct MlpNet {
    /// First layer.
    pub l1: Linear,
    /// Second layer.
    pub l2: Linear,
    /// Output head.
    pub head: Linear,
}

impl MlpNet {
    /// A network of width `dim`.
    pub fn new(in_features: usize, dim: usize, outputs: usize, device: &Device) -> Self {
        MlpNet {
            l1: LinearConfig::new(in_features, dim).init(device),
            l2: LinearConfig::new(dim, dim).init(device),
            head: LinearConfig::new(dim, outputs).init(device),
        }
    }

    /// `x`: `[nodes, in_features]` -> `[nodes, outputs]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = gelu(self.l1.forward(x));
        let h = gelu(self.l2.forward(h.clone())) + h;
        self.head.forward(h)
    }
}
