//! The HGT's forward pass in plain Rust on the host: what a prediction and `bench hgt`'s forward
//! run. On burn's `flex` backend a forward is mostly moving rows between per-edge and per-node
//! tensors (scatter-adds, gathers, fresh zeroed tensors; the profile is in docs/benchmarks.md).
//! Here the rows are permuted once so that each node type is a contiguous block (a type's linear
//! maps are one matrix product each), every relation's matrices are applied to the distinct
//! nodes it touches rather than to every edge, and the softmax and the weighted sum of the
//! messages walk each destination's incoming edges in one pass (edges sorted by destination),
//! with nothing scattered. Matrix products are nalgebra's (matrixmultiply's blocked kernels).
//!
//! Same arithmetic as [`crate::hgt::HgtNet::forward`] (f32; the same logits, softmax, GELU and
//! gated residual); sums run in another order, so outputs agree within rounding, which a test
//! checks on graphs with several node types and relations. Training stays on burn (autodiff).

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::activation::sigmoid;
use burn::tensor::Tensor;
use rayon::prelude::*;
use std::cell::RefCell;

use crate::hgt::{HeteroGraph, HgtLayer, HgtNet};
use crate::linalg::{dot, matmul, Mat};
use crate::NnError;

/// A linear map: `[d_in, d_out]` row-major and a bias of `d_out`.
#[derive(Debug, Clone)]
struct HostLinear {
    w: Vec<f32>,
    b: Vec<f32>,
    d_in: usize,
    d_out: usize,
}

fn values<const D: usize>(p: &Param<Tensor<D>>) -> Option<(Vec<f32>, [usize; D])> {
    let t = p.val();
    let dims = t.dims();
    let v = t.into_data().convert::<f32>().try_into_vec::<f32>().ok()?;
    (v.len() == dims.iter().product::<usize>()).then_some((v, dims))
}

impl HostLinear {
    fn of(l: &Linear) -> Option<Self> {
        let (w, [d_in, d_out]) = values(&l.weight)?;
        let b = match &l.bias {
            Some(b) => values(b)?.0,
            None => vec![0.0; d_out],
        };
        (b.len() == d_out).then_some(HostLinear { w, b, d_in, d_out })
    }

    /// Maps with the same input side by side: `[d_in, sum of d_out]`.
    fn side_by_side(maps: &[&HostLinear]) -> Self {
        let d_in = maps[0].d_in;
        let d_out: usize = maps.iter().map(|m| m.d_out).sum();
        let mut w = Vec::with_capacity(d_in * d_out);
        for r in 0..d_in {
            for m in maps {
                w.extend_from_slice(&m.w[r * m.d_out..(r + 1) * m.d_out]);
            }
        }
        let b = maps.iter().flat_map(|m| m.b.iter().copied()).collect();
        HostLinear { w, b, d_in, d_out }
    }

    /// `y = x W + b` for `rows` rows of `x` (`[rows, d_in]`, row stride `d_in`) into `y`
    /// (`[rows, d_out]`, contiguous).
    fn apply(&self, x: &[f32], rows: usize, y: &mut [f32]) {
        for r in y.chunks_exact_mut(self.d_out).take(rows) {
            r.copy_from_slice(&self.b);
        }
        matmul(
            rows,
            self.d_in,
            self.d_out,
            Mat::rows(x, self.d_in),
            Mat::rows(&self.w, self.d_out),
            y,
            self.d_out,
            1.0,
        );
    }

    /// [`Self::apply`], in blocks of rows over rayon's threads when there are many rows.
    fn apply_rows(&self, x: &[f32], rows: usize, y: &mut [f32]) {
        if !parallel(rows) {
            return self.apply(x, rows, y);
        }
        y[..rows * self.d_out]
            .par_chunks_mut(CHUNK_ROWS * self.d_out)
            .zip(x[..rows * self.d_in].par_chunks(CHUNK_ROWS * self.d_in))
            .for_each(|(y, x)| self.apply(x, x.len() / self.d_in, y));
    }
}

/// One layer's weights, per node type and per relation.
#[derive(Debug, Clone)]
struct HostLayer {
    /// Keys, queries and values side by side (`[dim, 3 dim]`) per node type: one product.
    kqv: Vec<HostLinear>,
    a: Vec<HostLinear>,
    /// `sigmoid(skip)` per node type.
    alpha: Vec<f32>,
    /// `[heads, dk, dk]` per relation.
    att: Vec<Vec<f32>>,
    msg: Vec<Vec<f32>>,
    /// `[heads]` per relation.
    prior: Vec<Vec<f32>>,
    edge: Vec<HostLinear>,
}

impl HostLayer {
    fn of(l: &HgtLayer, dim: usize, heads: usize) -> Option<Self> {
        let lins = |v: &[Linear]| -> Option<Vec<HostLinear>> {
            v.iter()
                .map(|l| HostLinear::of(l).filter(|h| h.d_in == dim && h.d_out == dim))
                .collect()
        };
        let dk = dim / heads;
        let mats = |v: &[Param<Tensor<3>>]| -> Option<Vec<Vec<f32>>> {
            v.iter()
                .map(|p| {
                    values(p)
                        .filter(|(_, d)| *d == [heads, dk, dk])
                        .map(|x| x.0)
                })
                .collect()
        };
        let skip = sigmoid(l.skip.val())
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .ok()?;
        let prior: Option<Vec<Vec<f32>>> = l
            .prior
            .iter()
            .map(|p| values(p).filter(|(_, d)| *d == [heads]).map(|x| x.0))
            .collect();
        let edge: Option<Vec<HostLinear>> = l
            .edge
            .iter()
            .map(|e| HostLinear::of(e).filter(|h| h.d_out == heads))
            .collect();
        let out = HostLayer {
            kqv: lins(&l.k)?
                .iter()
                .zip(lins(&l.q)?.iter().zip(&lins(&l.v)?))
                .map(|(k, (q, v))| HostLinear::side_by_side(&[k, q, v]))
                .collect(),
            a: lins(&l.a)?,
            alpha: skip,
            att: mats(&l.att)?,
            msg: mats(&l.msg)?,
            prior: prior?,
            edge: edge?,
        };
        let types = out.kqv.len();
        let rels = out.att.len();
        let consistent = [l.q.len(), l.v.len(), out.a.len(), out.alpha.len()]
            .iter()
            .all(|x| *x == types)
            && [out.msg.len(), out.prior.len(), out.edge.len()]
                .iter()
                .all(|x| *x == rels);
        consistent.then_some(out)
    }
}

/// The weights of a trained [`HgtNet`], laid out for host forwards.
#[derive(Debug, Clone)]
pub struct HostHgt {
    input: Vec<HostLinear>,
    layers: Vec<HostLayer>,
    head: HostLinear,
    dim: usize,
    heads: usize,
}

/// Distinct values of `v` (below `n`) in increasing order, and each value's index among them.
fn distinct(v: &[u32], n: usize) -> (Vec<u32>, Vec<u32>) {
    let mut slot = vec![u32::MAX; n];
    for x in v {
        slot[*x as usize] = 0;
    }
    let mut uniq = Vec::new();
    for (i, s) in slot.iter_mut().enumerate() {
        if *s == 0 {
            *s = uniq.len() as u32;
            uniq.push(i as u32);
        }
    }
    let idx = v.iter().map(|x| slot[*x as usize]).collect();
    (uniq, idx)
}

/// An edge as its destination's pass reads it: its relation and its source's index among the
/// relation's distinct sources.
#[derive(Debug, Clone, Copy)]
struct InEdge {
    relation: u32,
    source: u32,
}

/// A graph laid out for [`HostHgt::forward`]: nodes sorted by type, each relation's distinct
/// sources, and every edge listed under its destination with its features in that order, so
/// that a destination's pass reads its edges in sequence and, per edge, one block of its
/// source's rows.
#[derive(Debug, Clone)]
pub struct HostGraph {
    n: usize,
    /// Row of each node in the type-sorted order.
    pos: Vec<usize>,
    /// Rows `[start, end)` of each node type.
    ranges: Vec<(usize, usize)>,
    /// Distinct sources (rows) per relation.
    sources: Vec<Vec<u32>>,
    /// Incoming edges of row `t`: `incoming[in_start[t]..in_start[t + 1]]`.
    in_start: Vec<usize>,
    incoming: Vec<InEdge>,
    /// Edge features in the order of `incoming`.
    features: Vec<f32>,
    edge_features: usize,
}

impl HostGraph {
    /// Lays out `g` after checking it.
    pub fn new(g: &HeteroGraph) -> Result<Self, NnError> {
        g.validate()?;
        let n = g.node_type.len();
        let edges: usize = g.relations.iter().map(|r| r.src.len()).sum();
        if n.max(edges).max(g.relations.len()) >= u32::MAX as usize {
            return Err(NnError::InvalidGraph {
                what: format!(
                    "{n} nodes, {edges} edges, {} relations: at most {} of each are supported",
                    g.relations.len(),
                    u32::MAX - 1
                ),
            });
        }
        let mut ranges = Vec::with_capacity(g.node_types);
        let mut pos = vec![0; n];
        let mut next = 0;
        for t in 0..g.node_types {
            let start = next;
            for (i, ty) in g.node_type.iter().enumerate() {
                if *ty == t {
                    pos[i] = next;
                    next += 1;
                }
            }
            ranges.push((start, next));
        }
        let mut in_start = vec![0usize; n + 1];
        for e in &g.relations {
            for d in &e.dst {
                in_start[pos[*d] + 1] += 1;
            }
        }
        for t in 0..n {
            in_start[t + 1] += in_start[t];
        }
        let ef = g.edge_features;
        let mut fill = in_start.clone();
        let mut incoming = vec![
            InEdge {
                relation: 0,
                source: 0
            };
            edges
        ];
        let mut features = vec![0.0; edges * ef];
        let mut sources = Vec::with_capacity(g.relations.len());
        for (r, e) in g.relations.iter().enumerate() {
            let src: Vec<u32> = e.src.iter().map(|s| pos[*s] as u32).collect();
            let (uniq, idx) = distinct(&src, n);
            for (j, d) in e.dst.iter().enumerate() {
                let slot = &mut fill[pos[*d]];
                incoming[*slot] = InEdge {
                    relation: r as u32,
                    source: idx[j],
                };
                features[*slot * ef..(*slot + 1) * ef]
                    .copy_from_slice(&e.features[j * ef..(j + 1) * ef]);
                *slot += 1;
            }
            sources.push(uniq);
        }
        Ok(HostGraph {
            n,
            pos,
            ranges,
            sources,
            in_start,
            incoming,
            features,
            edge_features: ef,
        })
    }

    /// Nodes.
    pub fn nodes(&self) -> usize {
        self.n
    }
}

/// `0.5 x (1 + erf(x / sqrt 2))`, as burn's `gelu`.
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x / std::f32::consts::SQRT_2))
}

/// Columns `[c, c + d)` of rows `rows` of `x` (row stride `ld`) copied side by side:
/// `[rows.len(), d]`.
fn gather(x: &[f32], ld: usize, c: usize, d: usize, rows: &[u32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * d);
    for r in rows {
        let r = *r as usize * ld + c;
        out.extend_from_slice(&x[r..r + d]);
    }
    out
}

impl HostHgt {
    /// The weights of `net`; `None` when a parameter cannot be read or has an unexpected shape.
    pub fn of(net: &HgtNet) -> Option<Self> {
        let head = HostLinear::of(&net.head)?;
        let dim = head.d_in;
        let heads = net
            .layers
            .first()
            .and_then(|l| l.att.first())
            .map(|a| a.val().dims()[0])
            .unwrap_or(1);
        if heads == 0 || !dim.is_multiple_of(heads) {
            return None;
        }
        let input: Option<Vec<HostLinear>> = net
            .input
            .iter()
            .map(|l| HostLinear::of(l).filter(|h| h.d_out == dim))
            .collect();
        let input = input?;
        let d_in = input.first()?.d_in;
        if input.iter().any(|l| l.d_in != d_in) {
            return None;
        }
        let layers: Option<Vec<HostLayer>> = net
            .layers
            .iter()
            .map(|l| HostLayer::of(l, dim, heads))
            .collect();
        let layers = layers?;
        if layers.iter().any(|l| l.kqv.len() != input.len()) {
            return None;
        }
        Some(HostHgt {
            input,
            layers,
            head,
            dim,
            heads,
        })
    }

    /// Outputs per node.
    pub fn outputs(&self) -> usize {
        self.head.d_out
    }

    /// `x` (`[nodes, in_features]`, row-major) -> `[nodes, outputs]`, as
    /// [`HgtNet::forward`]. An error names a graph or input this network cannot take.
    pub fn forward(&self, x: &[f32], g: &HostGraph) -> Result<Vec<f32>, NnError> {
        let bad = |what: String| Err(NnError::InvalidGraph { what });
        let d_in = self.input[0].d_in;
        if x.len() != g.n * d_in {
            return bad(format!(
                "{} input values for {} nodes of {d_in} features",
                x.len(),
                g.n
            ));
        }
        if g.ranges.len() > self.input.len() {
            return bad(format!(
                "{} node types, the network has {}",
                g.ranges.len(),
                self.input.len()
            ));
        }
        for l in &self.layers {
            if g.sources.len() > l.att.len() {
                return bad(format!(
                    "{} relations, the network has {}",
                    g.sources.len(),
                    l.att.len()
                ));
            }
            if l.edge.iter().any(|e| e.d_in != g.edge_features) {
                return bad(format!(
                    "{} edge features, the network takes another number",
                    g.edge_features
                ));
            }
        }
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut s) => Ok(self.forward_in(x, g, &mut s)),
            Err(_) => Ok(self.forward_in(x, g, &mut Scratch::default())),
        })
    }

    fn forward_in(&self, x: &[f32], g: &HostGraph, s: &mut Scratch) -> Vec<f32> {
        let d_in = self.input[0].d_in;
        // Inputs in the type-sorted order.
        zeroed(&mut s.xs, x.len());
        for (i, p) in g.pos.iter().enumerate() {
            s.xs[p * d_in..(p + 1) * d_in].copy_from_slice(&x[i * d_in..(i + 1) * d_in]);
        }
        let mut hidden = std::mem::take(&mut s.hidden);
        let mut next = std::mem::take(&mut s.next);
        typed(&self.input, &s.xs, d_in, g, &mut hidden);
        for l in &self.layers {
            self.layer(l, &hidden, g, s, &mut next);
            std::mem::swap(&mut hidden, &mut next);
        }
        let o = self.head.d_out;
        zeroed(&mut s.xs, g.n * o);
        self.head.apply_rows(&hidden, g.n, &mut s.xs);
        let mut y = vec![0.0; g.n * o];
        for (i, p) in g.pos.iter().enumerate() {
            y[i * o..(i + 1) * o].copy_from_slice(&s.xs[p * o..(p + 1) * o]);
        }
        s.hidden = hidden;
        s.next = next;
        y
    }

    /// One layer from `x` into `out` (both `[n, dim]`, type-sorted rows).
    fn layer(&self, l: &HostLayer, x: &[f32], g: &HostGraph, s: &mut Scratch, out: &mut Vec<f32>) {
        let (d, h) = (self.dim, self.heads);
        let dk = d / h;
        let n = g.n;
        // Rows of `[k | q | v]`, 3d wide.
        let mut kqv = std::mem::take(&mut s.kqv);
        typed(&l.kqv, x, d, g, &mut kqv);
        let d3 = 3 * d;
        let scale = (1.0 / (dk as f64).sqrt()) as f32;
        // Per relation and distinct source, side by side in one row of 2d: `k_s W_att` (so
        // that the logit is `k_s W_att . q_t`) and the message `v_s W_msg`, per head.
        let w2 = 2 * d;
        s.kv.resize_with(g.sources.len(), Vec::new);
        let transform = |r: usize, rows: &[u32], kv: &mut Vec<f32>| {
            zeroed(kv, rows.len() * w2);
            if rows.is_empty() {
                return;
            }
            for (column, w, offset) in [(0, &l.att[r], 0), (2 * d, &l.msg[r], d)] {
                let gathered = gather(&kqv, d3, column, d, rows);
                for hh in 0..h {
                    matmul(
                        rows.len(),
                        dk,
                        dk,
                        Mat::rows(&gathered[hh * dk..], d),
                        Mat::rows(&w[hh * dk * dk..(hh + 1) * dk * dk], dk),
                        &mut kv[offset + hh * dk..],
                        w2,
                        0.0,
                    );
                }
            }
        };
        if parallel(n) {
            s.kv.par_iter_mut()
                .zip(g.sources.par_iter())
                .enumerate()
                .for_each(|(r, (kv, rows))| transform(r, rows, kv));
        } else {
            for (r, (kv, rows)) in s.kv.iter_mut().zip(&g.sources).enumerate() {
                transform(r, rows, kv);
            }
        }
        // Each edge's attention bias from its features, in the order of `incoming`.
        let ef = g.edge_features;
        zeroed(&mut s.bias, g.incoming.len() * h);
        for (i, (e, b)) in g
            .incoming
            .iter()
            .zip(s.bias.chunks_exact_mut(h))
            .enumerate()
        {
            let lin = &l.edge[e.relation as usize];
            b.copy_from_slice(&lin.b);
            for (fv, w) in g.features[i * ef..(i + 1) * ef]
                .iter()
                .zip(lin.w.chunks_exact(h))
            {
                b.iter_mut().zip(w).for_each(|(o, w)| *o += fv * w);
            }
        }
        // Per destination, in one pass over its incoming edges: the logits, their softmax per
        // head, and the weighted sum of the messages, then GELU.
        let (kv, bias) = (&s.kv, &s.bias);
        let attend = |t0: usize, agg: &mut [f32]| {
            let mut lg: Vec<f32> = Vec::new();
            let mut max = vec![0.0f32; h];
            let mut den = vec![0.0f32; h];
            for (t, out) in (t0..).zip(agg.chunks_exact_mut(d)) {
                out.fill(0.0);
                let (a, b) = (g.in_start[t], g.in_start[t + 1]);
                if a == b {
                    continue;
                }
                let qt = &kqv[t * d3 + d..t * d3 + 2 * d];
                lg.clear();
                max.fill(f32::NEG_INFINITY);
                for (e, eb) in g.incoming[a..b]
                    .iter()
                    .zip(bias[a * h..b * h].chunks_exact(h))
                {
                    let r = e.relation as usize;
                    let u = e.source as usize;
                    let ks = &kv[r][u * w2..u * w2 + d];
                    let prior = &l.prior[r];
                    for hh in 0..h {
                        let z = dot(&ks[hh * dk..(hh + 1) * dk], &qt[hh * dk..(hh + 1) * dk])
                            * prior[hh]
                            * scale
                            + eb[hh];
                        max[hh] = max[hh].max(z);
                        lg.push(z);
                    }
                }
                den.fill(0.0);
                for row in lg.chunks_exact_mut(h) {
                    for hh in 0..h {
                        row[hh] = (row[hh] - max[hh]).exp();
                        den[hh] += row[hh];
                    }
                }
                for (e, w) in g.incoming[a..b].iter().zip(lg.chunks_exact(h)) {
                    let u = e.source as usize;
                    let m = &kv[e.relation as usize][u * w2 + d..(u + 1) * w2];
                    for hh in 0..h {
                        let w = w[hh] / den[hh];
                        for (o, x) in out[hh * dk..(hh + 1) * dk]
                            .iter_mut()
                            .zip(&m[hh * dk..(hh + 1) * dk])
                        {
                            *o += x * w;
                        }
                    }
                }
                for o in out.iter_mut() {
                    *o = gelu(*o);
                }
            }
        };
        let mut agg = std::mem::take(&mut s.agg);
        zeroed(&mut agg, n * d);
        if parallel(n) {
            agg.par_chunks_mut(CHUNK_ROWS * d)
                .enumerate()
                .for_each(|(c, rows)| attend(c * CHUNK_ROWS, rows));
        } else {
            attend(0, &mut agg);
        }
        typed(&l.a, &agg, d, g, out);
        for (t, (a, b)) in g.ranges.iter().enumerate() {
            let alpha = l.alpha[t];
            for (o, xv) in out[a * d..b * d].iter_mut().zip(&x[a * d..b * d]) {
                *o = *o * alpha + xv * (1.0 - alpha);
            }
        }
        s.kqv = kqv;
        s.agg = agg;
    }
}

/// Graphs of at least this many nodes spread a layer's work over rayon's threads.
const PARALLEL_ROWS: usize = 512;

/// Whether `rows` rows are worth spreading: enough of them, and more than one thread.
fn parallel(rows: usize) -> bool {
    rows >= PARALLEL_ROWS && rayon::current_num_threads() > 1
}

/// Destinations per parallel task.
const CHUNK_ROWS: usize = 256;

/// Buffers of a forward pass, kept per thread between passes: fresh buffers of a large graph
/// cost more in page faults than the arithmetic that fills them.
#[derive(Debug, Default)]
struct Scratch {
    xs: Vec<f32>,
    hidden: Vec<f32>,
    next: Vec<f32>,
    kqv: Vec<f32>,
    kv: Vec<Vec<f32>>,
    bias: Vec<f32>,
    agg: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// `v` as `len` zeros, its capacity kept.
fn zeroed(v: &mut Vec<f32>, len: usize) {
    v.clear();
    v.resize(len, 0.0);
}

/// Each type's block of rows through that type's map, into `y` (`[n, d_out]`).
fn typed(lins: &[HostLinear], x: &[f32], d_in: usize, g: &HostGraph, y: &mut Vec<f32>) {
    let d = lins.first().map_or(0, |l| l.d_out);
    zeroed(y, g.n * d);
    for ((s, e), l) in g.ranges.iter().zip(lins) {
        if e > s {
            l.apply_rows(&x[s * d_in..e * d_in], e - s, &mut y[s * d..e * d]);
        }
    }
}
