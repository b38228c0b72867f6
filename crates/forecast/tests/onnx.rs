//! ONNX models (`onnx:PATH`): the shipped WorldCup98 model against PyTorch's own outputs, the
//! forecaster seam around it, and the files it must reject.
#![cfg(feature = "onnx")]

use std::path::{Path, PathBuf};

use graphscale_core::Forecaster;
use graphscale_forecast::conformal::Conformal;
use graphscale_forecast::models::by_name_with_step;
use graphscale_forecast::onnx::OnnxForecaster;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shipped() -> PathBuf {
    repo().join("models/onnx/wc98-mlp.onnx")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/onnx")
        .join(name)
}

#[derive(serde::Deserialize)]
struct Reference {
    window: usize,
    horizon: usize,
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    window: Vec<f64>,
    forecast: Vec<f64>,
}

fn reference() -> Reference {
    let text = std::fs::read_to_string(repo().join("models/onnx/wc98-mlp.reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn the_shipped_model_gives_pytorchs_outputs() {
    let r = reference();
    let m = OnnxForecaster::load(&shipped()).unwrap();
    assert_eq!((m.window(), m.horizon()), (r.window, r.horizon));
    assert!(r.cases.len() >= 5);
    for (i, c) in r.cases.iter().enumerate() {
        let got = m.run(&c.window).unwrap();
        assert_eq!(got.len(), c.forecast.len());
        for (g, want) in got.iter().zip(&c.forecast) {
            // float32 in both runtimes; values are requests per minute in the 10^3..10^5 range.
            let tol = 1e-5 * want.abs().max(1.0);
            assert!(
                (g - want).abs() <= tol,
                "case {i}: {got:?} vs {:?}",
                c.forecast
            );
        }
        // Not persistence: the network moves the forecast away from the newest value.
        let last = *c.window.last().unwrap();
        assert!(
            got.iter().any(|g| (g - last).abs() > 1.0),
            "case {i}: {got:?}"
        );
    }
}

#[test]
fn it_is_a_forecaster_by_name_with_recursive_horizons_and_calibrated_intervals() {
    let r = reference();
    let name = format!("onnx:{}", shipped().display());
    let model = by_name_with_step(&name, 1440, 60).unwrap();
    assert_eq!(model.name(), name);
    // A series whose newest 24 points are the first reference window.
    let mut y: Vec<f64> = (0..100).map(|i| 15_000.0 + 10.0 * i as f64).collect();
    y.extend_from_slice(&r.cases[0].window);
    let fitted = model.fit(&y).unwrap();
    let p8 = fitted.predict(8, &[]).unwrap().point;
    let direct = OnnxForecaster::load(&shipped()).unwrap();
    assert_eq!(p8, direct.run(&r.cases[0].window).unwrap());
    // 20 steps: three runs, each fed the previous forecasts.
    let p20 = fitted.predict(20, &[]).unwrap().point;
    assert_eq!(&p20[..8], &p8[..]);
    let mut tail = r.cases[0].window[8..].to_vec();
    tail.extend_from_slice(&p8);
    assert_eq!(&p20[8..16], &direct.run(&tail).unwrap()[..]);
    assert!(p20.iter().all(|v| v.is_finite() && *v >= 0.0));
    // Forecasting from newer data without refitting.
    let after = fitted
        .predict_after(&r.cases[1].window, 10, 8, &[])
        .unwrap()
        .unwrap();
    assert_eq!(after.point, direct.run(&r.cases[1].window).unwrap());
    // Quantiles need calibration, as for every point model.
    assert!(fitted.predict(4, &[0.9]).is_err());
    let series: Vec<f64> = (0..600)
        .map(|i| 20_000.0 + 3_000.0 * (i as f64 / 60.0).sin())
        .collect();
    let cal = Conformal::new(by_name_with_step(&name, 1440, 60).unwrap(), 8)
        .fit(&series)
        .unwrap()
        .predict(8, &[0.1, 0.9])
        .unwrap();
    let (lo, hi) = (cal.quantile(0.1).unwrap(), cal.quantile(0.9).unwrap());
    for h in 0..8 {
        assert!(lo[h] <= cal.point[h] && cal.point[h] <= hi[h], "{cal:?}");
    }
    assert!(hi[7] > lo[7]);
}

fn load_err(path: &Path) -> String {
    OnnxForecaster::load(path).unwrap_err().to_string()
}

#[test]
fn bad_files_are_refused_with_the_file_and_the_reason() {
    let missing = fixture("no-such.onnx");
    let e = load_err(&missing);
    assert!(
        e.contains("no-such.onnx") && e.contains("cannot read"),
        "{e}"
    );
    for (file, want) in [
        ("dynamic-batch.onnx", "fixed shape"),
        (
            "two-inputs.onnx",
            "one input and one output, it has 2 and 1",
        ),
        ("int-input.onnx", "must be float32"),
        ("wide-output.onnx", "output must have shape [1, N]"),
    ] {
        let e = load_err(&fixture(file));
        assert!(e.contains(file) && e.contains(want), "{file}: {e}");
    }
    // It loads, but its forecasts are not numbers: an error, never a NaN plan.
    let nan = OnnxForecaster::load(&fixture("not-finite.onnx")).unwrap();
    let e = nan.run(&[1.0; 24]).unwrap_err().to_string();
    assert!(e.contains("output 0 is not finite"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    // A truncated file and one that is not ONNX at all.
    let bytes = std::fs::read(shipped()).unwrap();
    for (name, body) in [
        ("truncated.onnx", &bytes[..bytes.len() / 2]),
        ("text.onnx", b"not a model\n".as_slice()),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        let e = load_err(&p);
        assert!(e.contains(name), "{e}");
    }
    // Larger than the bound: refused before it is parsed.
    let big = dir.path().join("big.onnx");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(graphscale_forecast::onnx::MAX_FILE_BYTES + 1)
        .unwrap();
    let e = load_err(&big);
    assert!(e.contains("big.onnx") && e.contains("at most"), "{e}");
    // An empty path, and bad inputs to a good model.
    let e = by_name_with_step("onnx:", 24, 60)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no file given"), "{e}");
    let m = OnnxForecaster::load(&shipped()).unwrap();
    assert!(m
        .run(&[1.0; 23])
        .unwrap_err()
        .to_string()
        .contains("window of 24"));
    let mut w = vec![1.0; 24];
    w[5] = f64::NAN;
    assert!(m.run(&w).unwrap_err().to_string().contains("input value 5"));
    let e = m.fit(&[1.0; 10]).err().unwrap().to_string();
    assert!(e.contains("at least 24 points"), "{e}");
    let e = m
        .fit(&[1.0; 30])
        .unwrap()
        .predict(24 * graphscale_forecast::onnx::MAX_RUNS, &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("runs of the model"), "{e}");
}

proptest::proptest! {
    /// A file with a few bytes changed, or cut short, is refused with its name or loads and
    /// forecasts finite values or says why not: never a panic.
    #[test]
    fn mutated_onnx_files_load_or_are_refused(
        edits in proptest::collection::vec(
            (proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()),
            1..6,
        ),
        cut in proptest::option::of(proptest::prelude::any::<proptest::sample::Index>()),
    ) {
        static BASE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let base = BASE.get_or_init(|| std::fs::read(shipped()).unwrap());
        let mut bytes = base.clone();
        for (i, b) in edits {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        if let Some(c) = cut {
            bytes.truncate(c.index(bytes.len()));
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mutated.onnx");
        std::fs::write(&p, &bytes).unwrap();
        match OnnxForecaster::load(&p) {
            Err(e) => proptest::prop_assert!(e.to_string().contains("mutated.onnx"), "{}", e),
            Ok(m) => {
                let w: Vec<f64> = (0..m.window()).map(|i| 1000.0 + i as f64).collect();
                if let Ok(out) = m.run(&w) {
                    proptest::prop_assert!(out.iter().all(|v| v.is_finite()));
                    proptest::prop_assert_eq!(out.len(), m.horizon());
                }
            }
        }
    }
}
