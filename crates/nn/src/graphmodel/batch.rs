//! Batches: the tensors of a set of windows (node and edge inputs, adjacency, targets) and the loss.

use super::*;

/// The observed graph as a dense `[n, n]` matrix whose row `t` averages `t`'s upstream
/// neighbours (sources of edges into `t`); a row of a node with no incoming edge is zero.
pub(crate) fn observed_adjacency(layout: &Layout) -> Vec<f32> {
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

/// The node inputs of `samples`, `[samples * nodes, input width]` row-major.
pub(crate) fn node_inputs(
    cfg: &GraphModelConfig,
    layout: &Layout,
    data: &[Tensorised],
    samples: &[(usize, usize)],
) -> Vec<f32> {
    let n = layout.nodes.len();
    let mut x = Vec::with_capacity(samples.len() * n * input_width(cfg.window));
    for (s, t) in samples {
        data[*s].node_window(layout, *t, cfg.window, &mut x);
    }
    x
}

/// The graph of `samples` for the HGT: one copy of the layout's graph per sample, with the
/// edge features at the sample's time.
pub(crate) fn hetero_graph(
    layout: &Layout,
    data: &[Tensorised],
    samples: &[(usize, usize)],
) -> HeteroGraph {
    let n = layout.nodes.len();
    let mut relations = vec![RelationEdges::default(); RELATIONS.len()];
    for (k, (s, t)) in samples.iter().enumerate() {
        let e = data[*s].edges_at(layout, *t);
        for (j, (a, d, r)) in layout.edges.iter().enumerate() {
            relations[*r].src.push(k * n + a);
            relations[*r].dst.push(k * n + d);
            relations[*r]
                .features
                .extend_from_slice(&e[j * EDGE_METRICS.len()..(j + 1) * EDGE_METRICS.len()]);
        }
    }
    HeteroGraph {
        node_type: (0..samples.len())
            .flat_map(|_| layout.node_type.iter().copied())
            .collect(),
        node_types: NODE_KINDS.len(),
        relations,
        edge_features: EDGE_METRICS.len(),
    }
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
    let x = node_inputs(cfg, layout, data, samples);
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
            out.hetero = Some(DeviceGraph::new(
                &hetero_graph(layout, data, samples),
                device,
            )?);
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
pub(crate) fn targets(
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
pub(crate) fn loss(
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

pub(crate) fn to_vec(t: Tensor<2>) -> Result<Vec<f32>, NnError> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| NnError::Tensor {
            reason: format!("{e:?}"),
        })
}
