//! The neural forecasters learn, calibrate, round-trip through checkpoints and refuse bad
//! input with a clear error.

use graphscale_core::Forecaster;
use graphscale_forecast::models::{Mstl, Persistence};
use graphscale_nn::rnn::{Cell, Rnn, RnnConfig};
use graphscale_nn::{by_name, checkpoint};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

fn small(cell: Cell, period: usize) -> RnnConfig {
    RnnConfig {
        cell,
        window: 24,
        hidden: 16,
        max_horizon: 4,
        period,
        epochs: 25,
        patience: 5,
        ..RnnConfig::default()
    }
}

/// A daily-like wave of period 24 with mild noise.
fn wave(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let noise = Normal::new(0.0, 1.0).unwrap();
    (0..n)
        .map(|i| {
            50.0 + 20.0 * (std::f64::consts::TAU * i as f64 / 24.0).sin() + noise.sample(&mut rng)
        })
        .collect()
}

fn rmse(pairs: &[(f64, f64)]) -> f64 {
    (pairs.iter().map(|(a, b)| (a - b).powi(2)).sum::<f64>() / pairs.len() as f64).sqrt()
}

/// Held-out errors at step `h` of a model fitted once on `y[..cut]`, forecasting from every
/// later origin without refitting, against persistence at the same origins.
fn held_out(model: &dyn Forecaster, y: &[f64], cut: usize, h: usize) -> (f64, f64) {
    let fitted = model.fit(&y[..cut]).unwrap();
    let (mut m, mut p) = (Vec::new(), Vec::new());
    for o in (cut..y.len() - h).step_by(3) {
        let f = fitted
            .predict_after(&y[..o], o - cut, h, &[])
            .expect("neural models forecast from new data")
            .unwrap();
        m.push((y[o + h - 1], f.point[h - 1]));
        p.push((y[o + h - 1], y[o - 1]));
    }
    (rmse(&m), rmse(&p))
}

#[test]
fn lstm_and_gru_learn_a_season_and_beat_persistence() {
    let y = wave(700, 1);
    for cell in [Cell::Lstm, Cell::Gru] {
        let model = Rnn {
            config: small(cell, 24),
        };
        let (m, p) = held_out(&model, &y, 560, 4);
        assert!(
            m < 0.5 * p,
            "{}: held-out RMSE at 4 steps {m:.2} vs persistence {p:.2}",
            cell.name()
        );
    }
}

#[test]
fn intervals_cover_about_their_level() {
    // Noise N(0, 3) around a wave: the interval of the validation errors must cover held-out
    // points at about the nominal 80 %.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let noise = Normal::new(0.0, 3.0).unwrap();
    let y: Vec<f64> = (0..1400)
        .map(|i| {
            40.0 + 10.0 * (std::f64::consts::TAU * i as f64 / 24.0).sin() + noise.sample(&mut rng)
        })
        .collect();
    let mut cfg = small(Cell::Gru, 24);
    cfg.validation_share = 0.4;
    let fitted = Rnn { config: cfg }.fit(&y[..800]).unwrap();
    let (mut covered, mut total) = (0, 0);
    for o in 800..1396 {
        let f = fitted
            .predict_after(&y[..o], o - 800, 1, &[0.1, 0.9])
            .unwrap()
            .unwrap();
        let (lo, hi) = (f.quantile(0.1).unwrap()[0], f.quantile(0.9).unwrap()[0]);
        assert!(lo <= f.point[0] && f.point[0] <= hi);
        covered += usize::from(y[o] >= lo && y[o] <= hi);
        total += 1;
    }
    let c = covered as f64 / total as f64;
    assert!((0.72..=0.88).contains(&c), "80 % interval covered {c:.3}");
}

#[test]
fn hybrid_beats_its_base_when_residuals_are_predictable() {
    // Season plus AR(1) residuals (phi 0.9): MSTL models the season, and the residual network
    // should recover much of the autocorrelated part at one step ahead.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let noise = Normal::new(0.0, 2.0).unwrap();
    let mut ar = 0.0;
    let y: Vec<f64> = (0..900)
        .map(|i| {
            ar = 0.9 * ar + noise.sample(&mut rng);
            100.0 + 15.0 * (std::f64::consts::TAU * i as f64 / 24.0).sin() + ar
        })
        .collect();
    let hybrid = by_name("hybrid-mstl", 24, 60, 2, Some(&small(Cell::Lstm, 24))).unwrap();
    assert_eq!(hybrid.name(), "hybrid-mstl");
    let fitted = hybrid.fit(&y[..720]).unwrap();
    let base = Mstl { periods: vec![24] };
    let (mut h, mut b) = (Vec::new(), Vec::new());
    for o in (720..898).step_by(6) {
        let f = fitted
            .predict_after(&y[..o], o - 720, 1, &[])
            .unwrap()
            .unwrap();
        h.push((y[o], f.point[0]));
        let m = base.fit(&y[..o]).unwrap().predict(1, &[]).unwrap();
        b.push((y[o], m.point[0]));
    }
    let (h, b) = (rmse(&h), rmse(&b));
    assert!(h < 0.9 * b, "hybrid RMSE {h:.2} vs MSTL alone {b:.2}");
}

#[test]
fn checkpoints_round_trip_bit_exact_and_refuse_mismatches() {
    let dir = std::env::temp_dir().join(format!("gs-nn-ckpt-{}", std::process::id()));
    let path = dir.join("lstm.safetensors");
    let y = wave(300, 2);
    let mut cfg = small(Cell::Lstm, 24);
    cfg.epochs = 3;
    for kind in ["lstm", "hybrid-mstl"] {
        let (ck, fitted) = checkpoint::fit(kind, 24, &y, 60, 1_000.0, 4, Some(&cfg)).unwrap();
        assert!(!ck.weights.is_empty(), "{kind}: weights stored");
        ck.save(&path).unwrap();
        let back = checkpoint::load(&path).unwrap();
        assert_eq!(back, ck, "{kind}");
        let a = fitted.predict(4, &[0.05, 0.95]).unwrap();
        let b = checkpoint::restore(&back)
            .unwrap()
            .predict(4, &[0.05, 0.95])
            .unwrap();
        assert_eq!(a, b, "{kind}: bit-exact after a round trip");
    }
    // A checkpoint whose weights belong to another network is refused with a reason.
    let (mut ck, _) = checkpoint::fit("lstm", 24, &y, 60, 0.0, 4, Some(&cfg)).unwrap();
    ck.manifest.hyper["hidden"] = serde_json::json!(8);
    let e = checkpoint::restore(&ck).err().unwrap().to_string();
    assert!(e.contains("weights do not fit the lstm network"), "{e}");
    ck.manifest.kind = "transformer".into();
    ck.save(&path).unwrap();
    let e = checkpoint::load(&path).unwrap_err().to_string();
    assert!(e.contains("model kind `transformer`"), "{e}");
    // Classical kinds still go through the same functions.
    let (ck, _) = checkpoint::fit("persistence", 24, &y, 60, 0.0, 4, None).unwrap();
    assert!(ck.weights.is_empty());
    assert!(checkpoint::restore(&ck).is_ok());
}

#[test]
fn bad_input_is_a_clear_error() {
    let model = Rnn {
        config: small(Cell::Lstm, 0),
    };
    let e = model.fit(&[1.0; 20]).err().unwrap().to_string();
    assert!(e.contains("needs at least 44 points"), "{e}");
    let mut y = wave(200, 4);
    y[10] = f64::NAN;
    let e = model.fit(&y).err().unwrap().to_string();
    assert!(e.contains("point 10 is not finite"), "{e}");
    // A constant series trains (its scale falls back to 1) and forecasts the constant.
    let mut cfg = small(Cell::Gru, 0);
    cfg.epochs = 2;
    let f = Rnn { config: cfg }.fit(&[7.0; 120]).unwrap();
    let p = f.predict(4, &[]).unwrap();
    assert!(p.point.iter().all(|v| (v - 7.0).abs() < 1.0), "{p:?}");
    let e = f.predict(5, &[]).err().unwrap().to_string();
    assert!(e.contains("up to 4 steps"), "{e}");
    let e = f.predict(2, &[1.5]).err().unwrap().to_string();
    assert!(e.contains("quantile levels"), "{e}");
    let e = f
        .predict_after(&[1.0; 3], 0, 1, &[])
        .unwrap()
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("needs the last 24 points"), "{e}");
    assert!(by_name("arima", 24, 60, 4, None)
        .err()
        .unwrap()
        .to_string()
        .contains("lstm"));
    // Persistence does not forecast from new data without refitting.
    assert!(Persistence
        .fit(&[1.0, 2.0])
        .unwrap()
        .predict_after(&[3.0], 1, 1, &[])
        .is_none());
}
