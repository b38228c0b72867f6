//! The graph models end to end: GAT and STGNN shapes and gradients, a task that needs the
//! upstream neighbour (graph models learn it, the edge-blind MLP cannot), checkpoint round trips
//! and bad input.

mod common;

use std::collections::BTreeMap;

use burn::tensor::{Device, Distribution, Tensor};
use common::{nonzero_grads, weights};
use graphscale_core::{AppGraph, Edge, GraphSeries, Metric, Node, NodeKind, Relation};
use graphscale_nn::gnn::{gat_edge_features, GatGraph, GatNet, StgnnNet};
use graphscale_nn::graphmodel::{train, GraphModel, GraphModelConfig, Kind, Prepared};
use rand::{Rng, SeedableRng};

#[test]
fn gat_shapes_isolated_nodes_and_gradients() {
    let _rng = common::rng_lock();
    let d = Device::flex().autodiff();
    d.seed(3);
    // Node 3 has no incoming edge (only its self-loop); node 2 has two.
    let edges = [(0, 1, 0), (0, 2, 0), (1, 2, 1)];
    let feats = vec![0.5f32, -0.2, 0.1, 1.0, 0.3, -0.4, 0.0, 0.2, 0.9];
    let g = GatGraph::new(4, &edges, &feats, 3, &d).unwrap();
    let net = GatNet::new(5, 8, 2, 2, gat_edge_features(3), 3, &d);
    let x = Tensor::<2>::random([4, 5], Distribution::Default, &d);
    let out = net.forward(x, &g);
    assert_eq!(out.dims(), [4, 3]);
    let loss = (out - Tensor::<2>::random([4, 3], Distribution::Default, &d))
        .powi_scalar(2)
        .mean();
    let (checked, missing) = nonzero_grads(&net, &loss.backward());
    // input (w, b); per layer: w, a_src, a_dst, edge (w, b), out (w, b); head (w, b).
    assert_eq!(checked, 2 + 2 * 7 + 2);
    assert!(missing.is_empty(), "no gradient: {missing:?}");
    // An edge to a node that does not exist is named.
    let e = GatGraph::new(2, &[(0, 5, 0)], &[0.0; 3], 3, &d).unwrap_err();
    assert!(e.to_string().contains("0 -> 5"), "{e}");
    let e = GatGraph::new(2, &[(0, 1, 0)], &[f32::NAN, 0.0, 0.0], 3, &d).unwrap_err();
    assert!(e.to_string().contains("not finite"), "{e}");
}

#[test]
fn stgnn_shapes_learned_adjacency_and_gradients() {
    let _rng = common::rng_lock();
    let d = Device::flex().autodiff();
    d.seed(4);
    let (n, w, f, types) = (3, 4, 2, 4);
    let net = StgnnNet::new(n, w, f, types, 8, 4, 6, &d);
    let adj = Tensor::<2>::from_floats([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.5, 0.0]], &d);
    // Two samples of three nodes.
    let x = Tensor::<2>::random([2 * n, w * f + types], Distribution::Default, &d);
    let out = net.forward(x, adj);
    assert_eq!(out.dims(), [2 * n, 6]);
    let a = net.adaptive_adjacency();
    let rows: Vec<f32> = a
        .sum_dim(1)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap();
    assert!(rows.iter().all(|r| (r - 1.0).abs() < 1e-5), "{rows:?}");
    let loss = out.powi_scalar(2).mean();
    let (checked, missing) = nonzero_grads(&net, &loss.backward());
    // 2 embeddings, 3 maps x (w, b), the GRU's gates, head (w, b).
    assert!(checked >= 2 + 6 + 2, "{checked}");
    assert!(missing.is_empty(), "no gradient: {missing:?}");
}

/// Two services `a -> b`: `a`'s load is random and `b` serves it one step later, so `b`'s next
/// load is `a`'s current one: known to a model that reads the edge, unknowable from `b`'s own
/// history.
fn delayed_pair(points: usize, seed: u64) -> GraphSeries {
    let g = AppGraph::new(
        "pair",
        vec![
            Node::new("a", NodeKind::Service),
            Node::new("b", NodeKind::Service),
        ],
        vec![Edge::new("a", "b", Relation::Calls, 1.0)],
    )
    .unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let a: Vec<f64> = (0..points).map(|_| rng.random_range(10.0..100.0)).collect();
    let b: Vec<f64> = (0..points)
        .map(|t| if t == 0 { 50.0 } else { a[t - 1] })
        .collect();
    let mut s = GraphSeries::new(g, 0, 15_000, points);
    for (id, v) in [("a", &a), ("b", &b)] {
        let mut m = BTreeMap::new();
        m.insert(Metric::Rps, v.clone());
        m.insert(Metric::CpuMillicores, v.iter().map(|x| 5.0 * x).collect());
        m.insert(Metric::MemoryMib, vec![200.0; points]);
        m.insert(Metric::ReplicasReady, vec![1.0; points]);
        s.nodes.insert(id.into(), m);
    }
    s.edges.push(graphscale_core::series::EdgeSeries {
        src: "a".into(),
        dst: "b".into(),
        relation: Relation::Calls,
        metrics: [(Metric::Rps, a.clone())].into_iter().collect(),
    });
    s
}

fn small() -> GraphModelConfig {
    GraphModelConfig {
        window: 3,
        horizon: 1,
        hidden: 16,
        heads: 2,
        epochs: 60,
        patience: 8,
        batch: 16,
        learning_rate: 1e-2,
        ..GraphModelConfig::default()
    }
}

/// Mean absolute error of `b`'s next RPS on the test range.
fn b_error(m: &GraphModel, p: &Prepared) -> f64 {
    let samples = p.samples(&m.config, 2);
    let mut total = 0.0;
    for (s, t) in &samples {
        let pr = m.predict_at(&p.data[*s], *t).unwrap();
        let b = pr.iter().find(|x| x.service == "b" && x.step == 1).unwrap();
        let actual = p.data[*s].raw(&p.layout, t + 1, 1, 0);
        total += (b.rps[1] - actual).abs();
    }
    total / samples.len() as f64
}

#[test]
fn graph_models_learn_the_upstream_neighbour_and_the_edge_blind_mlp_cannot() {
    let _rng = common::rng_lock();
    let cfg = small();
    let p = Prepared::new(&cfg, &[delayed_pair(500, 7)]).unwrap();
    let mlp = b_error(&train(Kind::Mlp, &cfg, &p, &mut |_| {}).unwrap(), &p);
    // `a` is uniform on 10..100: the best edge-blind guess is off by about 22 on average.
    assert!(mlp > 15.0, "mlp {mlp}");
    for kind in [Kind::Hgt, Kind::Gat, Kind::Stgnn] {
        let m = train(kind, &cfg, &p, &mut |_| {}).unwrap();
        let e = b_error(&m, &p);
        eprintln!("{}: {e:.2} (mlp {mlp:.2})", kind.name());
        assert!(
            e < 0.5 * mlp,
            "{}: error {e} is not well below the edge-blind mlp's {mlp}",
            kind.name()
        );
    }
}

#[test]
fn checkpoints_round_trip_and_bad_input_is_named() {
    let _rng = common::rng_lock();
    let dir = std::env::temp_dir().join(format!("gs-graph-ck-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = GraphModelConfig {
        epochs: 2,
        ..small()
    };
    let series = delayed_pair(200, 9);
    let p = Prepared::new(&cfg, std::slice::from_ref(&series)).unwrap();
    for kind in Kind::ALL {
        let m = train(kind, &cfg, &p, &mut |_| {}).unwrap();
        let path = dir.join(format!("{}.safetensors", kind.name()));
        m.save(&path).unwrap();
        let back = GraphModel::load(&path).unwrap();
        assert_eq!(back.kind, kind);
        assert_eq!(back.norm, m.norm);
        assert_eq!(
            back.predict_series(&series).unwrap(),
            m.predict_series(&series).unwrap(),
            "{}",
            kind.name()
        );
    }
    let m = GraphModel::load(&dir.join("gat.safetensors")).unwrap();

    // A checkpoint whose manifest names another network than its weights: refused by name.
    let bytes = std::fs::read(dir.join("gat.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let manifest = meta.metadata().as_ref().unwrap()["graph_model"]
        .replace("\"kind\":\"gat\"", "\"kind\":\"hgt\"");
    let meta = [("graph_model".to_string(), manifest)]
        .into_iter()
        .collect();
    let relabelled = dir.join("relabelled.safetensors");
    std::fs::write(
        &relabelled,
        safetensors::tensor::serialize(st.tensors(), Some(meta)).unwrap(),
    )
    .unwrap();
    let e = GraphModel::load(&relabelled).unwrap_err().to_string();
    assert!(e.contains("weights do not fit the hgt network"), "{e}");

    // A NaN weight: refused by name, never a model that forecasts zeros.
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone();
    let mut tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.dtype(), t.shape().to_vec(), t.data().to_vec()))
        .collect();
    let poisoned = tensors
        .iter_mut()
        .find(|t| t.1 == safetensors::Dtype::F32)
        .unwrap();
    poisoned.3[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    let poisoned_name = poisoned.0.clone();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, d, sh, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, sh.clone(), b).unwrap(),
            )
        })
        .collect();
    let nan = dir.join("nan.safetensors");
    std::fs::write(&nan, safetensors::tensor::serialize(views, meta).unwrap()).unwrap();
    let e = GraphModel::load(&nan).unwrap_err().to_string();
    assert!(
        e.contains(&format!("weight `{poisoned_name}` holds NaN")),
        "{e}"
    );

    // A snapshot of another graph: the unknown node is named.
    let mut other = series.clone();
    other.graph = AppGraph::new(
        "pair",
        vec![
            Node::new("a", NodeKind::Service),
            Node::new("c", NodeKind::Service),
        ],
        vec![Edge::new("a", "c", Relation::Calls, 1.0)],
    )
    .unwrap();
    let e = m.predict_series(&other).unwrap_err().to_string();
    assert!(e.contains("unknown node id `c`"), "{e}");
    // An infinite feature is named with its node, metric and point.
    let mut inf = series.clone();
    inf.nodes
        .get_mut("b")
        .unwrap()
        .get_mut(&Metric::CpuMillicores)
        .unwrap()[150] = f64::INFINITY;
    let e = m.predict_series(&inf).unwrap_err().to_string();
    assert!(
        e.contains("node `b`") && e.contains("cpu") && e.contains("point 150"),
        "{e}"
    );
    // A normalisation that finite inputs overflow (a corrupt checkpoint: the long fuzz run found
    // a one-byte edit that made every rps forecast infinite): an error, not an infinite forecast.
    let mut overflow = GraphModel::load(&dir.join("gat.safetensors")).unwrap();
    overflow.norm.node[0][0].std = 1e300;
    overflow.norm.node[0][0].mean = 1e300;
    let e = overflow.predict_series(&series).unwrap_err().to_string();
    assert!(
        e.contains("forecasts inf for service `a`") && e.contains("cannot be right"),
        "{e}"
    );
    // Too short a snapshot.
    let mut short = delayed_pair(2, 1);
    short.len = 2;
    let e = m.predict_series(&short).unwrap_err().to_string();
    assert!(e.contains("model reads the last 3"), "{e}");
    // A forecaster checkpoint and a file that is not safetensors.
    let fc = dir.join("ets.safetensors");
    let y: Vec<f64> = (0..200).map(|i| 10.0 + (i % 7) as f64).collect();
    graphscale_nn::checkpoint::fit("ets", 7, &y, 60, 0.0, 4, None)
        .unwrap()
        .0
        .save(&fc)
        .unwrap();
    let e = GraphModel::load(&fc).unwrap_err().to_string();
    assert!(e.contains("forecaster checkpoint"), "{e}");
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"not a model").unwrap();
    let e = GraphModel::load(&junk).unwrap_err().to_string();
    assert!(e.contains("not a safetensors file"), "{e}");
    // A config whose width is not a multiple of the heads is named.
    let bad = GraphModelConfig {
        hidden: 10,
        heads: 4,
        ..small()
    };
    let e = Prepared::new(&bad, std::slice::from_ref(&series))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`hidden`"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// burn draws parameters lazily, at their first use. Two same-seed networks built before either
/// is used, and then used in the other order, must still have the same weights: the seed alone
/// decides them, whatever else draws from burn's process-wide generator meanwhile.
#[test]
fn weights_come_from_the_seed_alone() {
    let _rng = common::rng_lock();
    use graphscale_nn::graphdata::Layout;
    use graphscale_nn::graphmodel::GraphNet;
    use graphscale_nn::rnn::{RnnConfig, RnnNet};

    let d = Device::flex().autodiff();
    let layout = Layout::of(&delayed_pair(4, 1).graph);
    let cfg = GraphModelConfig {
        hidden: 8,
        heads: 2,
        ..GraphModelConfig::default()
    };
    for kind in [Kind::Hgt, Kind::Gat, Kind::Stgnn, Kind::Mlp] {
        let a = GraphNet::new(kind, &cfg, &layout, &d);
        let b = GraphNet::new(kind, &cfg, &layout, &d);
        let other = GraphNet::new(
            kind,
            &GraphModelConfig {
                seed: 99,
                ..cfg.clone()
            },
            &layout,
            &d,
        );
        let (wb, wother, wa) = (weights(&b), weights(&other), weights(&a));
        assert!(!wa.is_empty());
        assert_eq!(wa, wb, "{kind:?}: same seed, same weights");
        assert_ne!(wa, wother, "{kind:?}: another seed, other weights");
    }
    let rc = RnnConfig::default();
    let a = RnnNet::new(&rc, &d);
    let b = RnnNet::new(&rc, &d);
    let _ = weights(&RnnNet::new(
        &RnnConfig {
            seed: 99,
            ..rc.clone()
        },
        &d,
    ));
    assert_eq!(
        weights(&b),
        weights(&a),
        "recurrent: same seed, same weights"
    );
}
