//! Fuzzing that stays: a graph-model checkpoint with bytes changed (in its JSON manifest or its
//! tensors) or cut short loads as a model that predicts finite numbers, or is refused with the
//! reason; never a panic, an abort or a NaN forecast. Also series JSON (the snapshot format).
//! The test script runs proptest's default 256 cases; `PROPTEST_CASES=...` runs longer
//! (docs/reliability.md).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use graphscale_core::{AppGraph, Edge, GraphSeries, Metric, Node, NodeKind, Relation};
use graphscale_nn::graphmodel::{train, GraphModel, GraphModelConfig, Kind, Prepared};
use proptest::prelude::*;

fn series() -> GraphSeries {
    let g = AppGraph::new(
        "pair",
        vec![
            Node::new("a", NodeKind::Service),
            Node::new("b", NodeKind::Service),
        ],
        vec![Edge::new("a", "b", Relation::Calls, 1.0)],
    )
    .unwrap();
    let n = 80;
    let mut s = GraphSeries::new(g, 0, 15_000, n);
    for (id, base) in [("a", 40.0), ("b", 20.0)] {
        let v: Vec<f64> = (0..n).map(|t| base + (t % 7) as f64).collect();
        let mut m = BTreeMap::new();
        m.insert(Metric::CpuMillicores, v.iter().map(|x| 5.0 * x).collect());
        m.insert(Metric::Rps, v);
        m.insert(Metric::MemoryMib, vec![200.0; n]);
        m.insert(Metric::ReplicasReady, vec![1.0; n]);
        s.nodes.insert(id.into(), m);
    }
    s
}

/// A small trained checkpoint, as bytes, and the length of its header.
fn checkpoint() -> &'static (Vec<u8>, usize) {
    static CK: OnceLock<(Vec<u8>, usize)> = OnceLock::new();
    CK.get_or_init(|| {
        let cfg = GraphModelConfig {
            window: 3,
            horizon: 2,
            hidden: 8,
            heads: 2,
            epochs: 2,
            ..GraphModelConfig::default()
        };
        let s = series();
        let p = Prepared::new(&cfg, std::slice::from_ref(&s)).unwrap();
        let m = train(Kind::Gat, &cfg, &p, &mut |_| {}).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        m.save(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        (bytes, header)
    })
}

fn load(bytes: &[u8]) -> Result<GraphModel, graphscale_nn::NnError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    std::fs::write(&path, bytes).unwrap();
    GraphModel::load(&path)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64), ..ProptestConfig::default() })]

    #[test]
    fn mutated_checkpoints_load_or_are_refused(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        in_header in any::<bool>(),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let (base, header) = checkpoint();
        let mut b = base.clone();
        for (i, byte) in edits {
            let at = if in_header { 8 + i.index(header - 8) } else { i.index(b.len()) };
            b[at] = byte;
        }
        if let Some(c) = cut {
            b.truncate(c.index(b.len()));
        }
        if let Ok(m) = load(&b) {
            if let Ok(preds) = m.predict_series(&series()) {
                for p in preds {
                    prop_assert!(p.rps.iter().all(|x| x.is_finite()), "{p:?}");
                }
            }
        }
    }

    #[test]
    fn mutated_series_json_never_panics(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
    ) {
        let text = series().to_json().unwrap();
        let mut b = text.into_bytes();
        for (i, byte) in edits {
            let at = i.index(b.len());
            b[at] = byte;
        }
        let _ = GraphSeries::from_json(&String::from_utf8_lossy(&b), "fuzz.json");
    }
}

#[test]
fn the_seed_checkpoint_loads() {
    let (b, _) = checkpoint();
    let m = load(b).unwrap();
    assert!(m.predict_series(&series()).is_ok());
}
