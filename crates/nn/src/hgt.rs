//! A Heterogeneous Graph Transformer layer (Hu, Dong, Wang and Sun, WWW 2020) on burn's tensor
//! ops: the first graph-model piece of issue #4 (no training command or comparison yet).
//!
//! For an edge `s -> t` of relation `r` and each head `h` (dimension `dk = dim / heads`):
//! - attention logit `(K_type(s)(x_s) W_att_r,h) . Q_type(t)(x_t) * mu_r,h / sqrt(dk)` plus a
//!   learned linear function of the edge's features (RPS, p95, errors, backlog...);
//! - the logits are normalised by a softmax over all incoming edges of `t`, across relations
//!   ([`segment_softmax`]: a scatter-max, exponentials, a scatter-add);
//! - message `V_type(s)(x_s) W_msg_r,h`, summed into `t` with the attention weights;
//! - output `A_type(t)(gelu(aggregate))`, mixed with the input by a gated residual
//!   `sigmoid(skip_type) * out + (1 - sigmoid(skip_type)) * x`.
//!
//! Type-specific linear maps are applied to each type's rows (gathered, mapped, scattered
//! back); a graph with one node type maps all rows at once.

use crate::NnError;
use burn::module::{Module, Param};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::{gelu, sigmoid};
use burn::tensor::{Device, IndexingUpdateOp, Int, Tensor, TensorData};

/// Edges of one relation: sources, destinations and `features` per edge (row-major).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RelationEdges {
    /// Source node indices.
    pub src: Vec<usize>,
    /// Destination node indices.
    pub dst: Vec<usize>,
    /// Edge features, `src.len() * edge_features` values.
    pub features: Vec<f32>,
}

/// A heterogeneous graph as plain data: the type of each node and the edges of each relation.
#[derive(Debug, Clone, PartialEq)]
pub struct HeteroGraph {
    /// Node type per node (`< node_types`).
    pub node_type: Vec<usize>,
    /// Number of node types.
    pub node_types: usize,
    /// Edges per relation.
    pub relations: Vec<RelationEdges>,
    /// Features per edge.
    pub edge_features: usize,
}

impl HeteroGraph {
    /// Checks indices, types and feature widths, naming the first problem.
    pub fn validate(&self) -> Result<(), NnError> {
        let n = self.node_type.len();
        if let Some(i) = self.node_type.iter().position(|t| *t >= self.node_types) {
            return Err(NnError::InvalidGraph {
                what: format!(
                    "node {i} has type {} but there are {} node types",
                    self.node_type[i], self.node_types
                ),
            });
        }
        for (r, e) in self.relations.iter().enumerate() {
            if e.src.len() != e.dst.len() {
                return Err(NnError::InvalidGraph {
                    what: format!(
                        "relation {r}: {} sources but {} destinations",
                        e.src.len(),
                        e.dst.len()
                    ),
                });
            }
            if e.features.len() != e.src.len() * self.edge_features {
                return Err(NnError::InvalidGraph {
                    what: format!(
                        "relation {r}: {} edge feature values for {} edges of width {}",
                        e.features.len(),
                        e.src.len(),
                        self.edge_features
                    ),
                });
            }
            if let Some(k) = e.src.iter().chain(&e.dst).position(|i| *i >= n) {
                let bad = e.src.iter().chain(&e.dst).nth(k).copied().unwrap_or(0);
                return Err(NnError::InvalidGraph {
                    what: format!(
                        "relation {r}: edge to or from node {bad}, but the graph has {n} nodes"
                    ),
                });
            }
            if let Some(k) = e.features.iter().position(|v| !v.is_finite()) {
                return Err(NnError::InvalidGraph {
                    what: format!("relation {r}: edge feature {k} is not finite"),
                });
            }
        }
        Ok(())
    }
}

fn ints(v: &[usize], device: &Device) -> Tensor<1, Int> {
    let data: Vec<i64> = v.iter().map(|x| *x as i64).collect();
    Tensor::from_data(TensorData::new(data, [v.len()]), device)
}

/// One relation's edges on a device.
#[derive(Debug, Clone)]
struct DeviceRelation {
    src: Tensor<1, Int>,
    dst: Tensor<1, Int>,
    features: Tensor<2>,
}

/// A graph's index tensors on a device, built once and reused by every forward pass.
#[derive(Debug, Clone)]
pub struct DeviceGraph {
    n: usize,
    masks: Vec<Tensor<2>>,
    /// Row indices per node type (`None` for absent types).
    rows: Vec<Option<Tensor<1, Int>>>,
    /// The type of every node when there is only one.
    single: Option<usize>,
    /// Whether any node has the type (type-specific maps of absent types are skipped).
    present: Vec<bool>,
    relations: Vec<Option<DeviceRelation>>,
    dst_all: Option<Tensor<1, Int>>,
}

impl DeviceGraph {
    /// Moves `g` to `device` after checking it.
    pub fn new(g: &HeteroGraph, device: &Device) -> Result<Self, NnError> {
        g.validate()?;
        let n = g.node_type.len();
        let present = (0..g.node_types)
            .map(|t| g.node_type.contains(&t))
            .collect();
        let masks = (0..g.node_types)
            .map(|t| {
                let m: Vec<f32> = g
                    .node_type
                    .iter()
                    .map(|x| if *x == t { 1.0 } else { 0.0 })
                    .collect();
                Tensor::from_data(TensorData::new(m, [n, 1]), device)
            })
            .collect();
        let relations = g
            .relations
            .iter()
            .map(|e| {
                (!e.src.is_empty()).then(|| DeviceRelation {
                    src: ints(&e.src, device),
                    dst: ints(&e.dst, device),
                    features: Tensor::from_data(
                        TensorData::new(e.features.clone(), [e.src.len(), g.edge_features]),
                        device,
                    ),
                })
            })
            .collect();
        let all: Vec<usize> = g.relations.iter().flat_map(|e| e.dst.clone()).collect();
        let rows = (0..g.node_types)
            .map(|t| {
                let r: Vec<usize> = (0..n).filter(|i| g.node_type[*i] == t).collect();
                (!r.is_empty()).then(|| ints(&r, device))
            })
            .collect::<Vec<_>>();
        let single = match rows.iter().filter(|r| r.is_some()).count() {
            1 => rows.iter().position(|r| r.is_some()),
            _ => None,
        };
        Ok(DeviceGraph {
            n,
            masks,
            rows,
            single,
            present,
            relations,
            dst_all: (!all.is_empty()).then(|| ints(&all, device)),
        })
    }

    /// Nodes.
    pub fn nodes(&self) -> usize {
        self.n
    }
}

/// Softmax of `logits` (`[edges, heads]`) over the edges that share a destination in `dst`
/// (`n` nodes): each destination's incoming weights sum to one per head.
pub fn segment_softmax(logits: Tensor<2>, dst: Tensor<1, Int>, n: usize) -> Tensor<2> {
    let [_, h] = logits.dims();
    let device = logits.device();
    // The maximum only stabilises the exponentials: no gradient flows through it.
    let max = Tensor::<2>::full([n, h], f32::NEG_INFINITY, &device).select_assign(
        0,
        dst.clone(),
        logits.clone().detach(),
        IndexingUpdateOp::Max,
    );
    let ex = (logits - max.select(0, dst.clone())).exp();
    let den = Tensor::<2>::zeros([n, h], &device).select_assign(
        0,
        dst.clone(),
        ex.clone(),
        IndexingUpdateOp::Add,
    );
    ex / den.select(0, dst)
}

/// Settings of an HGT layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HgtConfig {
    /// Node types.
    pub node_types: usize,
    /// Relations.
    pub relations: usize,
    /// Hidden dimension (a multiple of `heads`).
    pub dim: usize,
    /// Attention heads.
    pub heads: usize,
    /// Features per edge.
    pub edge_features: usize,
}

/// One HGT layer.
#[derive(Module, Debug)]
pub struct HgtLayer {
    /// Keys per node type.
    pub k: Vec<Linear>,
    /// Queries per node type.
    pub q: Vec<Linear>,
    /// Values per node type.
    pub v: Vec<Linear>,
    /// Output maps per node type.
    pub a: Vec<Linear>,
    /// Gated-residual logits per node type.
    pub skip: Param<Tensor<1>>,
    /// Attention matrices per relation, `[heads, dk, dk]`.
    pub att: Vec<Param<Tensor<3>>>,
    /// Message matrices per relation, `[heads, dk, dk]`.
    pub msg: Vec<Param<Tensor<3>>>,
    /// Priors per relation, `[heads]`.
    pub prior: Vec<Param<Tensor<1>>>,
    /// Edge features to attention biases per relation.
    pub edge: Vec<Linear>,
    heads: usize,
    dim: usize,
}

impl HgtLayer {
    /// A layer with seeded-by-device weights.
    ///
    /// # Panics
    /// If `heads` is 0 or `dim` is not a multiple of it (a programming error: `bench hgt` checks
    /// its flags before building a layer).
    pub fn new(cfg: &HgtConfig, device: &Device) -> Self {
        assert!(
            cfg.heads > 0 && cfg.dim.is_multiple_of(cfg.heads),
            "dim must be a multiple of heads"
        );
        let dk = cfg.dim / cfg.heads;
        let lin = |i, o| LinearConfig::new(i, o).init(device);
        let per_type = |_| lin(cfg.dim, cfg.dim);
        let mat = || {
            Initializer::XavierNormal { gain: 1.0 }.init_with(
                [cfg.heads, dk, dk],
                Some(dk),
                Some(dk),
                device,
            )
        };
        HgtLayer {
            k: (0..cfg.node_types).map(per_type).collect(),
            q: (0..cfg.node_types).map(per_type).collect(),
            v: (0..cfg.node_types).map(per_type).collect(),
            a: (0..cfg.node_types).map(per_type).collect(),
            skip: Param::from_tensor(Tensor::ones([cfg.node_types], device)),
            att: (0..cfg.relations).map(|_| mat()).collect(),
            msg: (0..cfg.relations).map(|_| mat()).collect(),
            prior: (0..cfg.relations)
                .map(|_| Param::from_tensor(Tensor::ones([cfg.heads], device)))
                .collect(),
            edge: (0..cfg.relations)
                .map(|_| lin(cfg.edge_features.max(1), cfg.heads))
                .collect(),
            heads: cfg.heads,
            dim: cfg.dim,
        }
    }

    /// Each node through its own type's map: with one type, the map on every row; otherwise
    /// each type's rows are gathered, mapped and scattered back, so every row is multiplied
    /// once (masking every map's output would multiply every row once per type).
    fn typed(lins: &[Linear], x: &Tensor<2>, g: &DeviceGraph) -> Tensor<2> {
        if let Some(t) = g.single {
            return lins[t].forward(x.clone());
        }
        let mut out: Option<Tensor<2>> = None;
        for (l, rows) in lins.iter().zip(&g.rows) {
            let Some(rows) = rows else { continue };
            let y = l.forward(x.clone().select(0, rows.clone()));
            let o = out.unwrap_or_else(|| Tensor::<2>::zeros([g.n, y.dims()[1]], &x.device()));
            out = Some(o.select_assign(0, rows.clone(), y, IndexingUpdateOp::Add));
        }
        out.unwrap_or_else(|| x.clone())
    }

    /// `x`: `[nodes, dim]` -> `[nodes, dim]`.
    pub fn forward(&self, x: Tensor<2>, g: &DeviceGraph) -> Tensor<2> {
        let (h, d) = (self.heads, self.dim);
        let dk = d / h;
        let n = g.n;
        let device = x.device();
        let k = Self::typed(&self.k, &x, g);
        let q = Self::typed(&self.q, &x, g);
        let v = Self::typed(&self.v, &x, g);
        let heads = |t: Tensor<2>| {
            let e = t.dims()[0];
            t.reshape([e, h, dk]).swap_dims(0, 1)
        };
        // A relation matrix applied to every node: [n, d] -> [n, d] (per head).
        let per_node = |t: &Tensor<2>, w: Tensor<3>| -> Tensor<2> {
            heads(t.clone()).matmul(w).swap_dims(0, 1).reshape([n, d])
        };
        let scale = 1.0 / (dk as f64).sqrt();
        let mut logits = Vec::new();
        let mut msgs = Vec::new();
        for (r, rel) in g.relations.iter().enumerate() {
            let Some(rel) = rel else { continue };
            let e = rel.src.dims()[0];
            // (k_s W) . q_t = k_s . (q_t W^T): with more edges than nodes, the relation
            // matrices are applied per node and the rows gathered per edge; otherwise the rows
            // are gathered first.
            let (l, vs) = if e > n {
                let ks = k.clone().select(0, rel.src.clone());
                let qa = per_node(&q, self.att[r].val().swap_dims(1, 2)).select(0, rel.dst.clone());
                let l = (ks * qa).reshape([e, h, dk]).sum_dim(2).reshape([e, h]);
                let vs = per_node(&v, self.msg[r].val())
                    .select(0, rel.src.clone())
                    .reshape([e, h, dk]);
                (l, vs)
            } else {
                let ks = heads(k.clone().select(0, rel.src.clone())).matmul(self.att[r].val());
                let qt = heads(q.clone().select(0, rel.dst.clone()));
                let l = (ks * qt).sum_dim(2).reshape([h, e]).swap_dims(0, 1);
                let vs = heads(v.clone().select(0, rel.src.clone()))
                    .matmul(self.msg[r].val())
                    .swap_dims(0, 1);
                (l, vs)
            };
            let l = l * self.prior[r].val().reshape([1, h]) * scale;
            logits.push(l + self.edge[r].forward(rel.features.clone())); // [e, h]
            msgs.push((vs, rel.dst.clone(), e)); // [e, h, dk]
        }
        let agg = match &g.dst_all {
            Some(dst) if !logits.is_empty() => {
                let att = segment_softmax(Tensor::cat(logits, 0), dst.clone(), n);
                // Each relation's messages are weighted and summed into their destinations
                // without concatenating them first.
                let mut acc = Tensor::<3>::zeros([n, h, dk], &device);
                let mut offset = 0;
                for (vs, dst_r, e) in msgs {
                    let a = att.clone().narrow(0, offset, e).reshape([e, h, 1]);
                    acc = acc.select_assign(0, dst_r, vs * a, IndexingUpdateOp::Add);
                    offset += e;
                }
                acc.reshape([n, d])
            }
            _ => Tensor::<2>::zeros([n, d], &device),
        };
        let out = Self::typed(&self.a, &gelu(agg), g);
        let gate = sigmoid(self.skip.val());
        let mut alpha: Option<Tensor<2>> = None;
        for (t, m) in g.masks.iter().enumerate().filter(|(t, _)| g.present[*t]) {
            let a = m.clone() * gate.clone().slice(t..t + 1).reshape([1, 1]);
            alpha = Some(match alpha {
                Some(x) => x + a,
                None => a,
            });
        }
        let alpha = alpha.unwrap_or_else(|| Tensor::ones([n, 1], &device));
        out * alpha.clone() + x * (alpha.neg() + 1.0)
    }
}

/// An HGT network for per-node regression: a linear input map per node type, `layers` HGT
/// layers and a linear head.
#[derive(Module, Debug)]
pub struct HgtNet {
    /// Input maps per node type.
    pub input: Vec<Linear>,
    /// The layers.
    pub layers: Vec<HgtLayer>,
    /// Output head.
    pub head: Linear,
}

impl HgtNet {
    /// A network with `in_features` per node and `outputs` per node.
    pub fn new(
        cfg: &HgtConfig,
        in_features: usize,
        layers: usize,
        outputs: usize,
        device: &Device,
    ) -> Self {
        HgtNet {
            input: (0..cfg.node_types)
                .map(|_| LinearConfig::new(in_features, cfg.dim).init(device))
                .collect(),
            layers: (0..layers).map(|_| HgtLayer::new(cfg, device)).collect(),
            head: LinearConfig::new(cfg.dim, outputs).init(device),
        }
    }

    /// `x`: `[nodes, in_features]` -> `[nodes, outputs]`.
    pub fn forward(&self, x: Tensor<2>, g: &DeviceGraph) -> Tensor<2> {
        let mut hdn = HgtLayer::typed(&self.input, &x, g);
        for l in &self.layers {
            hdn = l.forward(hdn, g);
        }
        self.head.forward(hdn)
    }
}

/// Node kinds in the order of their type index.
pub const NODE_KINDS: [graphscale_core::NodeKind; 4] = [
    graphscale_core::NodeKind::Service,
    graphscale_core::NodeKind::Queue,
    graphscale_core::NodeKind::Topic,
    graphscale_core::NodeKind::ClusterNode,
];

/// Relations in the order of their index.
pub const RELATIONS: [graphscale_core::Relation; 6] = [
    graphscale_core::Relation::Calls,
    graphscale_core::Relation::Produces,
    graphscale_core::Relation::Consumes,
    graphscale_core::Relation::Publishes,
    graphscale_core::Relation::Subscribes,
    graphscale_core::Relation::RunsOn,
];

/// The structure of an application graph with `features(edge)` (of width `edge_features`) on
/// each edge: 4 node types ([`NODE_KINDS`]) and 6 relations ([`RELATIONS`]).
pub fn from_app_graph(
    g: &graphscale_core::AppGraph,
    edge_features: usize,
    features: &dyn Fn(&graphscale_core::Edge) -> Vec<f32>,
) -> Result<HeteroGraph, NnError> {
    let node_type = g
        .nodes
        .iter()
        .map(|n| NODE_KINDS.iter().position(|k| *k == n.kind).unwrap_or(0))
        .collect();
    let mut relations = vec![RelationEdges::default(); RELATIONS.len()];
    for e in &g.edges {
        let idx = |id: &str| {
            g.index_of(id).ok_or_else(|| NnError::InvalidGraph {
                what: format!("edge {} -> {}: unknown node `{id}`", e.src, e.dst),
            })
        };
        let r = RELATIONS.iter().position(|x| *x == e.relation).unwrap_or(0);
        let f = features(e);
        if f.len() != edge_features {
            return Err(NnError::InvalidGraph {
                what: format!(
                    "edge {} -> {}: {} features, expected {edge_features}",
                    e.src,
                    e.dst,
                    f.len()
                ),
            });
        }
        relations[r].src.push(idx(&e.src)?);
        relations[r].dst.push(idx(&e.dst)?);
        relations[r].features.extend(f);
    }
    let h = HeteroGraph {
        node_type,
        node_types: NODE_KINDS.len(),
        relations,
        edge_features,
    };
    h.validate()?;
    Ok(h)
}

/// A seeded random heterogeneous graph for benchmarks: `n` nodes (80 % services, 10 % queues,
/// 10 % topics) and `e` edges spread over calls (60 %) and produces, consumes, publishes and
/// subscribes (10 % each), each between nodes of the right kinds, with 4 random edge features.
pub fn synthetic(n: usize, e: usize, seed: u64) -> HeteroGraph {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut next = move || splitmix64(&mut state);
    let node_type: Vec<usize> = (0..n.max(10))
        .map(|i| match i % 10 {
            8 => 1,
            9 => 2,
            _ => 0,
        })
        .collect();
    let of = |t: usize| -> Vec<usize> {
        (0..node_type.len())
            .filter(|i| node_type[*i] == t)
            .collect()
    };
    let (svc, queue, topic) = (of(0), of(1), of(2));
    let mut relations = vec![RelationEdges::default(); RELATIONS.len()];
    for _ in 0..e {
        let roll = next() % 10;
        let pick = |v: &Vec<usize>, r: u64| v[(r % v.len() as u64) as usize];
        let (r, s, d) = match roll {
            0 => (1, pick(&svc, next()), pick(&queue, next())),
            1 => (2, pick(&queue, next()), pick(&svc, next())),
            2 => (3, pick(&svc, next()), pick(&topic, next())),
            3 => (4, pick(&topic, next()), pick(&svc, next())),
            _ => (0, pick(&svc, next()), pick(&svc, next())),
        };
        relations[r].src.push(s);
        relations[r].dst.push(d);
        for _ in 0..4 {
            relations[r].features.push((next() % 1000) as f32 / 1000.0);
        }
    }
    HeteroGraph {
        node_type,
        node_types: NODE_KINDS.len(),
        relations,
        edge_features: 4,
    }
}

/// SplitMix64: the next number of the seeded sequence of the benchmark graphs.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The graphs of the PyTorch Geometric peer benchmark (`shared/peers/bench_hgt.py`), by its
/// size names: `(services, queues, topics, cluster nodes, calls)`.
pub const PEER_SIZES: [(&str, [usize; 5]); 3] = [
    ("boutique11", [11, 2, 1, 3, 20]),
    ("svc1k", [1_000, 100, 50, 100, 5_000]),
    ("svc10k", [10_000, 1_000, 500, 1_000, 50_000]),
];

/// The peer benchmark's graph schema, for a like-for-like timing: 4 node types (services,
/// queues, topics, cluster nodes) and 12 relations, each of the 6 below also reversed —
/// random calls between distinct services; per queue 2 producers and 2 consumers; per topic 2
/// publishers and 3 subscribers; every service runs on one node. Seeded random endpoints (the
/// peer draws its own with PyTorch's generator: the counts per relation are the same, the
/// endpoints are not), with 4 random edge features (the peer's HGT has none).
pub fn peer_graph(size: &str, seed: u64) -> Option<HeteroGraph> {
    let [s, q, t, n, calls] = PEER_SIZES.iter().find(|(name, _)| *name == size)?.1;
    let mut state = seed ^ 0xD1B5_4A32_D192_ED03;
    let mut next = move |below: usize| (splitmix64(&mut state) % below as u64) as usize;
    let (q0, t0, n0) = (s, s + q, s + q + t);
    let mut node_type = vec![0; s];
    node_type.extend(std::iter::repeat_n(1, q));
    node_type.extend(std::iter::repeat_n(2, t));
    node_type.extend(std::iter::repeat_n(3, n));
    // (source, destination) pairs of the 6 forward relations.
    let mut forward: Vec<Vec<(usize, usize)>> = vec![Vec::new(); 6];
    for _ in 0..calls {
        let a = next(s);
        forward[0].push((a, (a + 1 + next(s - 1)) % s));
    }
    for b in 0..q {
        for _ in 0..2 {
            forward[1].push((next(s), q0 + b));
            forward[2].push((q0 + b, next(s)));
        }
    }
    for b in 0..t {
        for _ in 0..2 {
            forward[3].push((next(s), t0 + b));
        }
        for _ in 0..3 {
            forward[4].push((t0 + b, next(s)));
        }
    }
    for a in 0..s {
        forward[5].push((a, n0 + next(n)));
    }
    let mut relations = Vec::with_capacity(12);
    for pairs in &forward {
        for reversed in [false, true] {
            let mut r = RelationEdges::default();
            for &(a, b) in pairs {
                let (x, y) = if reversed { (b, a) } else { (a, b) };
                r.src.push(x);
                r.dst.push(y);
                for _ in 0..4 {
                    r.features.push(next(1000) as f32 / 1000.0);
                }
            }
            relations.push(r);
        }
    }
    Some(HeteroGraph {
        node_type,
        node_types: NODE_KINDS.len(),
        relations,
        edge_features: 4,
    })
}

#[cfg(test)]
mod peer_tests {
    use super::*;

    #[test]
    fn peer_graphs_have_the_peers_counts() {
        // Nodes and edges (every edge also reversed) as the peer counts them.
        for (size, nodes, edges) in [
            ("boutique11", 17, 88),
            ("svc1k", 1_250, 13_300),
            ("svc10k", 12_500, 133_000),
        ] {
            let g = peer_graph(size, 1).unwrap();
            g.validate().unwrap();
            assert_eq!(g.node_type.len(), nodes, "{size}");
            assert_eq!(g.relations.len(), 12, "{size}");
            let total: usize = g.relations.iter().map(|r| r.src.len()).sum();
            assert_eq!(total, edges, "{size}");
            // Calls never loop; each relation has its reverse next to it.
            assert!(g.relations[0]
                .src
                .iter()
                .zip(&g.relations[0].dst)
                .all(|(a, b)| a != b));
            for pair in g.relations.chunks(2) {
                assert_eq!(pair[0].src, pair[1].dst);
                assert_eq!(pair[0].dst, pair[1].src);
            }
        }
        assert!(peer_graph("svc5k", 1).is_none());
        assert_eq!(peer_graph("svc1k", 7), peer_graph("svc1k", 7));
    }
}
