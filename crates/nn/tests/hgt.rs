//! The HGT layer: segment softmax, shapes and masking, gradients, bad graphs.

mod common;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use common::nonzero_grads;
use graphscale_nn::hgt::{
    segment_softmax, DeviceGraph, HeteroGraph, HgtConfig, HgtLayer, HgtNet, RelationEdges,
};

fn vec2(t: Tensor<2>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

/// Two node types (services 0..3, a queue 3) and three relations: calls 0->1, 0->2, 1->2;
/// produces 1->3, 0->3; consumes 3->2. Node 0 has no incoming edge. (Where a destination has a
/// single incoming edge, the softmax gives it weight 1 whatever its logit, so the parameters
/// that only feed such logits get no gradient: each relation here reaches a node with two.)
fn graph(empty_relation: bool) -> HeteroGraph {
    let rel = |src: Vec<usize>, dst: Vec<usize>| RelationEdges {
        features: (0..src.len() * 2).map(|i| i as f32 * 0.1).collect(),
        src,
        dst,
    };
    let mut relations = vec![
        rel(vec![0, 0, 1], vec![1, 2, 2]),
        rel(vec![1, 0], vec![3, 3]),
        rel(vec![3], vec![2]),
    ];
    if empty_relation {
        relations.push(RelationEdges::default());
    }
    HeteroGraph {
        node_type: vec![0, 0, 0, 1],
        node_types: 2,
        relations,
        edge_features: 2,
    }
}

fn cfg(relations: usize) -> HgtConfig {
    HgtConfig {
        node_types: 2,
        relations,
        dim: 8,
        heads: 2,
        edge_features: 2,
    }
}

#[test]
fn segment_softmax_sums_to_one_per_destination() {
    let _rng = common::rng_lock();
    let d = Device::flex();
    let logits = Tensor::<2>::from_data(
        TensorData::new(vec![1.0f32, 0.0, 2.0, 5.0, -3.0, 1.0, 40.0, -40.0], [4, 2]),
        &d,
    );
    let dst = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 2, 0, 0], [4]), &d);
    let att = vec2(segment_softmax(logits, dst, 3));
    for h in 0..2 {
        let to0: f32 = [0, 2, 3].iter().map(|e| att[e * 2 + h]).sum();
        assert!((to0 - 1.0).abs() < 1e-5, "head {h}: {to0}");
        assert!(
            (att[2 + h] - 1.0).abs() < 1e-6,
            "a single incoming edge gets weight 1"
        );
    }
    // Large logits do not overflow: the maximum is subtracted per destination.
    assert!(att.iter().all(|v| v.is_finite()));
    // Hand-computed: head 0 to node 0 has logits 1, -3, 40.
    let z = (1f32 - 40.0).exp() + (-3f32 - 40.0).exp() + 1.0;
    assert!((att[3 * 2] - 1.0 / z).abs() < 1e-6);
}

#[test]
fn shapes_and_masking_with_isolated_nodes_and_empty_relations() {
    let _rng = common::rng_lock();
    let d = Device::flex();
    d.seed(1);
    let g = DeviceGraph::new(&graph(true), &d).unwrap();
    let layer = HgtLayer::new(&cfg(4), &d);
    let x = Tensor::<2>::random([4, 8], Distribution::Default, &d);
    let y = layer.forward(x.clone(), &g);
    assert_eq!(y.dims(), [4, 8]);
    let v = vec2(y);
    assert!(v.iter().all(|v| v.is_finite()));
    // Node 0 has no incoming edge: its aggregate is zero, so its output is the gated mix of
    // A(gelu(0)) = A's bias and its input, whatever the other nodes hold.
    let x2 = x.clone().slice([1..4, 0..8]) * 3.0;
    let x2 = Tensor::cat(vec![x.clone().slice([0..1, 0..8]), x2], 0);
    let v2 = vec2(layer.forward(x2, &g));
    for j in 0..8 {
        assert!(
            (v[j] - v2[j]).abs() < 1e-5,
            "node 0 must not depend on others"
        );
    }
    // Node 2 has three incoming edges: changing a neighbour changes it.
    assert!((0..8).any(|j| (v[16 + j] - v2[16 + j]).abs() > 1e-4));
    // A network: input maps, two layers, a head.
    let net = HgtNet::new(&cfg(4), 3, 2, 5, &d);
    let out = net.forward(Tensor::<2>::random([4, 3], Distribution::Default, &d), &g);
    assert_eq!(out.dims(), [4, 5]);
}

#[test]
fn gradients_reach_every_parameter() {
    let _rng = common::rng_lock();
    let d = Device::flex().autodiff();
    d.seed(2);
    let g = DeviceGraph::new(&graph(false), &d).unwrap();
    let net = HgtNet::new(&cfg(3), 3, 2, 1, &d);
    let x = Tensor::<2>::random([4, 3], Distribution::Default, &d);
    let target = Tensor::<2>::random([4, 1], Distribution::Default, &d);
    let loss = (net.forward(x, &g) - target).powi_scalar(2).mean();
    let (checked, missing) = nonzero_grads(&net, &loss.backward());
    // input 2 x (w, b); per layer: 4 maps x 2 types x (w, b) + skip + 3 x (att, msg, prior)
    // + 3 edge maps x (w, b); head (w, b).
    assert_eq!(checked, 4 + 2 * (16 + 1 + 9 + 6) + 2);
    assert!(
        missing.is_empty(),
        "parameters without a gradient: {missing:?}"
    );
}

#[test]
fn bad_graphs_are_named() {
    let _rng = common::rng_lock();
    let d = Device::flex();
    let mut g = graph(false);
    g.relations[1].dst = vec![3, 9];
    let e = DeviceGraph::new(&g, &d).unwrap_err().to_string();
    assert!(
        e.contains("relation 1") && e.contains("node 9") && e.contains("4 nodes"),
        "{e}"
    );
    let mut g = graph(false);
    g.node_type[2] = 5;
    let e = DeviceGraph::new(&g, &d).unwrap_err().to_string();
    assert!(e.contains("node 2 has type 5"), "{e}");
    let mut g = graph(false);
    g.relations[0].features.pop();
    assert!(DeviceGraph::new(&g, &d)
        .unwrap_err()
        .to_string()
        .contains("edge feature values"));
    let mut g = graph(false);
    g.relations[2].features[0] = f32::NAN;
    assert!(DeviceGraph::new(&g, &d)
        .unwrap_err()
        .to_string()
        .contains("not finite"));
}

/// Trains `net` on `g` for `steps` Adam steps and returns the final mean squared error on the
/// nodes listed in `scored`.
fn fit_mse(g: &HeteroGraph, x: &[f32], y: &[f32], scored: &[usize], steps: usize) -> f32 {
    use burn::optim::{AdamConfig, GradientsParams};
    let d = Device::flex().autodiff();
    d.seed(11);
    let n = g.node_type.len();
    let dg = DeviceGraph::new(g, &d).unwrap();
    let mut net = HgtNet::new(&cfg(g.relations.len()), 1, 1, 1, &d);
    let xt = Tensor::<2>::from_data(TensorData::new(x.to_vec(), [n, 1]), &d);
    let yt = Tensor::<2>::from_data(TensorData::new(y.to_vec(), [n, 1]), &d);
    let mask: Vec<f32> = (0..n)
        .map(|i| f32::from(u8::from(scored.contains(&i))))
        .collect();
    let mt = Tensor::<2>::from_data(TensorData::new(mask, [n, 1]), &d);
    let mut optim = AdamConfig::new().init();
    for _ in 0..steps {
        let loss = ((net.forward(xt.clone(), &dg) - yt.clone()) * mt.clone())
            .powi_scalar(2)
            .sum()
            / scored.len() as f64;
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(0.01, net, grads);
    }
    let p = vec2(
        net.valid()
            .forward(xt.inner(), &DeviceGraph::new(g, &Device::flex()).unwrap()),
    );
    scored.iter().map(|&i| (p[i] - y[i]).powi(2)).sum::<f32>() / scored.len() as f32
}

#[test]
fn learns_a_task_that_needs_the_neighbour_and_an_edge_blind_network_cannot() {
    let _rng = common::rng_lock();
    // 16 pairs: a source with a random value, and a destination whose target is that value and
    // whose own input is zero. Only the edge carries the answer.
    let pairs = 16;
    let mut state = 7u64;
    let mut rnd = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
    };
    let mut x = vec![0.0f32; 2 * pairs];
    let mut y = vec![0.0f32; 2 * pairs];
    for p in 0..pairs {
        let v = rnd();
        x[2 * p] = v;
        y[2 * p] = v;
        y[2 * p + 1] = v;
    }
    let dsts: Vec<usize> = (0..pairs).map(|p| 2 * p + 1).collect();
    let variance = dsts.iter().map(|&i| y[i] * y[i]).sum::<f32>() / pairs as f32;
    let with_edges = HeteroGraph {
        node_type: vec![0; 2 * pairs],
        node_types: 2,
        relations: vec![RelationEdges {
            src: (0..pairs).map(|p| 2 * p).collect(),
            dst: dsts.clone(),
            features: vec![1.0; pairs * 2],
        }],
        edge_features: 2,
    };
    let blind = HeteroGraph {
        relations: vec![RelationEdges::default()],
        ..with_edges.clone()
    };
    let seen = fit_mse(&with_edges, &x, &y, &dsts, 300);
    let unseen = fit_mse(&blind, &x, &y, &dsts, 300);
    assert!(
        seen < 0.1 * variance,
        "with edges: MSE {seen} vs variance {variance}"
    );
    assert!(
        unseen > 0.8 * variance,
        "edge-blind: MSE {unseen} vs variance {variance}"
    );
}
