//! Fuzzing that stays: mutated Kiali exports give a graph or an error, never a panic. The test
//! script runs proptest's default 256 cases; `PROPTEST_CASES=1000000` is the long run
//! (docs/reliability.md). Prometheus answers are fuzzed in `prom.rs`'s unit tests.

use graphscale_monitor::discovery::from_kiali;
use proptest::prelude::*;

#[path = "../../sim/tests/common/mutate.rs"]
mod mutate;
use mutate::mutated;

const KIALI: &str = include_str!("data/kiali.json");

proptest! {
    #[test]
    fn kiali_exports_never_panic(text in mutated(KIALI)) {
        if let Ok(g) = from_kiali(&text, "fuzz.json") {
            // What is accepted is plausible: finite, non-negative ratios and entry rates.
            prop_assert!(g.graph.edges.iter().all(|e| e.ratio.is_finite() && e.ratio >= 0.0));
            prop_assert!(g.entries.values().all(|r| r.is_finite() && *r >= 0.0));
        }
    }
}

#[test]
fn the_seed_export_parses() {
    assert!(from_kiali(KIALI, "k.json").is_ok());
}
