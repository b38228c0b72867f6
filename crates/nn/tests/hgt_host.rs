//! The host HGT forward against burn's modules: same outputs within rounding on graphs with
//! several node types and relations, absent types, nodes without incoming edges, relations on
//! either side of the nodes' count; bad inputs named.

mod common;

use burn::module::Param;
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use graphscale_nn::hgt::{
    peer_graph, synthetic, DeviceGraph, HeteroGraph, HgtConfig, HgtNet, RelationEdges,
};
use graphscale_nn::hgt_host::{HostGraph, HostHgt};

/// A network whose per-type gates and per-relation priors differ (burn initialises them all to
/// one), so that a mix-up of types, relations or heads shows.
fn net(cfg: &HgtConfig, inputs: usize, layers: usize, outputs: usize, d: &Device) -> HgtNet {
    let mut net = HgtNet::new(cfg, inputs, layers, outputs, d);
    for (li, l) in net.layers.iter_mut().enumerate() {
        let skip: Vec<f32> = (0..cfg.node_types)
            .map(|t| -1.5 + t as f32 * 0.9 + li as f32 * 0.2)
            .collect();
        l.skip = Param::from_tensor(Tensor::from_data(
            TensorData::new(skip, [cfg.node_types]),
            d,
        ));
        for (r, p) in l.prior.iter_mut().enumerate() {
            let v: Vec<f32> = (0..cfg.heads)
                .map(|h| 0.5 + 0.3 * h as f32 + 0.2 * r as f32)
                .collect();
            *p = Param::from_tensor(Tensor::from_data(TensorData::new(v, [cfg.heads]), d));
        }
    }
    net
}

fn check(g: &HeteroGraph, dim: usize, heads: usize, layers: usize, what: &str) {
    let _rng = common::rng_lock();
    let d = Device::flex();
    let cfg = HgtConfig {
        node_types: g.node_types,
        relations: g.relations.len(),
        dim,
        heads,
        edge_features: g.edge_features,
    };
    let (inputs, outputs) = (5, 3);
    let net = net(&cfg, inputs, layers, outputs, &d);
    let host = HostHgt::of(&net).expect("weights readable");
    assert_eq!(host.outputs(), outputs);
    let hg = HostGraph::new(g).unwrap();
    let dg = DeviceGraph::new(g, &d).unwrap();
    let n = g.node_type.len();
    assert_eq!(hg.nodes(), n);
    let x = Tensor::<2>::random([n, inputs], Distribution::Normal(0.0, 1.5), &d);
    let xv: Vec<f32> = x.clone().into_data().try_into_vec().unwrap();
    let want: Vec<f32> = net.forward(x, &dg).into_data().try_into_vec().unwrap();
    let got = host.forward(&xv, &hg).unwrap();
    assert_eq!(got.len(), want.len(), "{what}");
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
        .fold(0.0f32, f32::max);
    assert!(worst <= 2e-5, "{what}: worst relative difference {worst}");
    // Not vacuous: the outputs vary across nodes.
    let spread = want.iter().fold(0.0f32, |m, v| m.max((v - want[0]).abs()));
    assert!(spread > 1e-3, "{what}: outputs do not vary");
}

/// Three node types, a fourth absent; node 5 has no incoming edge; relation 2 has more edges
/// than there are nodes, relation 1 fewer; relation 3 is empty.
fn mixed() -> HeteroGraph {
    let rel = |pairs: &[(usize, usize)]| RelationEdges {
        src: pairs.iter().map(|p| p.0).collect(),
        dst: pairs.iter().map(|p| p.1).collect(),
        features: (0..pairs.len() * 3)
            .map(|i| ((i * 7) % 11) as f32 * 0.1)
            .collect(),
    };
    let many: Vec<(usize, usize)> = (0..20).map(|i| (i % 4, (i * 3 + 1) % 5)).collect();
    HeteroGraph {
        node_type: vec![0, 2, 0, 1, 2, 0],
        node_types: 4,
        relations: vec![
            rel(&[(0, 1), (2, 1), (3, 2), (1, 0), (4, 3)]),
            rel(&[(5, 4), (5, 2)]),
            rel(&many),
            RelationEdges::default(),
        ],
        edge_features: 3,
    }
}

#[test]
fn the_host_forward_equals_burns_modules() {
    check(&mixed(), 8, 2, 2, "mixed types");
    check(&mixed(), 12, 3, 1, "three heads");
    let single = HeteroGraph {
        node_type: vec![0; 7],
        node_types: 1,
        relations: vec![RelationEdges {
            src: vec![0, 1, 2, 3, 4, 5, 6, 0],
            dst: vec![1, 2, 3, 4, 5, 6, 0, 3],
            features: (0..16).map(|i| i as f32 * 0.05).collect(),
        }],
        edge_features: 2,
    };
    check(&single, 16, 4, 2, "one type");
    check(&synthetic(300, 900, 3), 64, 4, 2, "synthetic");
    check(
        &peer_graph("boutique11", 1).unwrap(),
        64,
        4,
        2,
        "peer boutique11",
    );
    check(&peer_graph("svc1k", 2).unwrap(), 16, 4, 2, "peer svc1k");
}

#[test]
fn a_graph_the_network_cannot_take_is_named() {
    let _rng = common::rng_lock();
    let d = Device::flex();
    let g = mixed();
    let cfg = HgtConfig {
        node_types: 2,
        relations: 4,
        dim: 8,
        heads: 2,
        edge_features: 3,
    };
    let host = HostHgt::of(&HgtNet::new(&cfg, 5, 1, 3, &d)).unwrap();
    let hg = HostGraph::new(&g).unwrap();
    let err = host.forward(&[0.0; 6 * 5], &hg).unwrap_err().to_string();
    assert!(err.contains("4 node types, the network has 2"), "{err}");
    let cfg4 = HgtConfig {
        node_types: 4,
        ..cfg
    };
    let host = HostHgt::of(&HgtNet::new(&cfg4, 5, 1, 3, &d)).unwrap();
    let err = host.forward(&[0.0; 7], &hg).unwrap_err().to_string();
    assert!(
        err.contains("7 input values for 6 nodes of 5 features"),
        "{err}"
    );
    let mut bad = g.clone();
    bad.relations[0].dst[0] = 9;
    let err = HostGraph::new(&bad).unwrap_err().to_string();
    assert!(err.contains("node 9"), "{err}");
}
