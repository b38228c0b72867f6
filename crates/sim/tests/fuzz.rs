//! Fuzzing that stays: mutated and arbitrary inputs to the simulator's parsers (CSV series, app
//! JSON) give a value or an error, never a panic, an abort or a hang. The test script runs
//! proptest's default 256 cases per target; `PROPTEST_CASES=1000000 cargo test --release -p
//! graphscale-sim --test fuzz` is the long run (docs/reliability.md).

use graphscale_sim::spec::AppSpec;
use graphscale_sim::topology;
use graphscale_sim::workload::parse_series_csv;
use proptest::prelude::*;

#[path = "common/mutate.rs"]
mod mutate;
use mutate::mutated;

const CSV: &str = "timestamp,requests\n\
    1998-06-30T00:00:00Z,10\n1998-06-30T00:01:00Z,12.5\n1998-06-30T00:02:00Z,9\n\
    899164980,11\n899165040,1e3\n";

proptest! {
    #[test]
    fn csv_series_never_panic(text in mutated(CSV)) {
        if let Ok((t, v)) = parse_series_csv(&text, "fuzz.csv", None, None) {
            prop_assert_eq!(t.len(), v.len());
            prop_assert!(t.windows(2).all(|w| w[0] < w[1]), "times increase");
            prop_assert!(v.iter().all(|x| x.is_finite() && *x >= 0.0));
        }
    }

    #[test]
    fn arbitrary_csv_never_panics(text in "\\PC{0,200}") {
        let _ = parse_series_csv(&text, "fuzz.csv", None, None);
    }

    #[test]
    fn app_json_never_panics(text in mutated(APP)) {
        if let Ok(app) = AppSpec::from_json(&text, "fuzz.json") {
            // What parses either validates or names what is wrong; a valid app has bounded
            // replicas.
            if app.validate().is_ok() {
                prop_assert!(app.services.iter().all(|s| s.max_replicas <= graphscale_sim::spec::MAX_REPLICAS));
            }
        }
    }
}

static APP: &str = include_str!("../../../data/topologies/online-boutique.json");

#[test]
fn the_seed_app_is_valid() {
    // The fuzz base must itself parse, or the mutations test only the JSON parser.
    let app = AppSpec::from_json(APP, "online-boutique.json").unwrap();
    app.validate().unwrap();
    assert!(topology::builtin("online-boutique").is_ok());
}
