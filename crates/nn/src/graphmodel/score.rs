//! Scores on the held-out range against persistence and a per-service LSTM.

use super::*;

/// MAE, RMSE and the 80 % interval's coverage of one target on a test range.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct TargetScore {
    /// Mean absolute error.
    pub mae: f64,
    /// Root mean squared error.
    pub rmse: f64,
    /// Share of actual values inside the 0.1..0.9 quantiles (NaN for point forecasts).
    pub coverage: f64,
    /// Points scored.
    pub points: usize,
}

#[derive(Default)]
pub(crate) struct Acc {
    abs: f64,
    sq: f64,
    inside: f64,
    n: usize,
}

impl Acc {
    pub(crate) fn add(&mut self, pred: f64, actual: f64, interval: Option<(f64, f64)>) {
        self.abs += (pred - actual).abs();
        self.sq += (pred - actual).powi(2);
        if let Some((lo, hi)) = interval {
            if lo <= actual && actual <= hi {
                self.inside += 1.0;
            }
        }
        self.n += 1;
    }

    pub(crate) fn score(&self, intervals: bool) -> TargetScore {
        let n = self.n.max(1) as f64;
        TargetScore {
            mae: self.abs / n,
            rmse: (self.sq / n).sqrt(),
            coverage: if intervals { self.inside / n } else { f64::NAN },
            points: self.n,
        }
    }
}

/// Scores per target (`rps, cpu_m, memory_mib, replicas`) on the given samples. `predict`
/// gives, for each sample, what [`GraphModel::predict_at`] gives; the points scored are the
/// service, sample and step where the actual value and the value at the window's end are known.
pub fn score(
    p: &Prepared,
    samples: &[(usize, usize)],
    horizon: usize,
    preds: &[Vec<ServicePrediction>],
    intervals: bool,
) -> [TargetScore; 4] {
    let mut acc: [Acc; 4] = Default::default();
    let l = &p.layout;
    for ((s, t), pr) in samples.iter().zip(preds) {
        let d = &p.data[*s];
        for sp in pr {
            let Some(i) = l.nodes.iter().position(|x| *x == sp.service) else {
                continue;
            };
            let fut = t + sp.step;
            if sp.step > horizon || fut >= d.len {
                continue;
            }
            for (j, v) in [sp.rps, sp.cpu_m, sp.memory_mib].iter().enumerate() {
                let actual = d.raw(l, fut, i, j);
                if actual.is_finite() && d.raw(l, *t, i, j).is_finite() {
                    acc[j].add(v[1], actual, Some((v[0], v[2])));
                }
            }
            let need = p.norm.replicas_for(i, d.raw(l, fut, i, 0));
            if need.is_finite() && d.raw(l, *t, i, 0).is_finite() {
                acc[3].add(f64::from(sp.replicas), need, None);
            }
        }
    }
    [
        acc[0].score(intervals),
        acc[1].score(intervals),
        acc[2].score(intervals),
        acc[3].score(false),
    ]
}

/// Persistence: every target keeps its value at the window's end (replicas: what that load
/// needs).
pub fn persistence(
    p: &Prepared,
    samples: &[(usize, usize)],
    horizon: usize,
) -> Vec<Vec<ServicePrediction>> {
    let l = &p.layout;
    samples
        .iter()
        .map(|(s, t)| {
            let d = &p.data[*s];
            let mut out = Vec::new();
            for i in (0..l.nodes.len()).filter(|i| l.is_service(*i)) {
                for step in 1..=horizon {
                    let v = |j| {
                        let x = d.raw(l, *t, i, j);
                        [x, x, x]
                    };
                    out.push(ServicePrediction {
                        service: l.nodes[i].clone(),
                        step,
                        ahead_s: step as f64 * p.step_ms as f64 / 1000.0,
                        rps: v(0),
                        cpu_m: v(1),
                        memory_mib: v(2),
                        replicas: p.norm.replica_count(i, d.raw(l, *t, i, 0)),
                    });
                }
            }
            out
        })
        .collect()
}

impl GraphModel {
    /// Scores on the test range of `p` (which must use this model's normalisation).
    pub fn test_scores(&self, p: &Prepared) -> Result<[TargetScore; 4], NnError> {
        let samples = p.samples(&self.config, 2);
        let preds = self.predict_many(&p.data, &samples)?;
        Ok(score(p, &samples, self.config.horizon, &preds, true))
    }
}

/// The per-service baseline: one recurrent network (`rnn`, its cell and window) per series,
/// service and target, trained on the training and validation ranges of that series alone
/// (gaps filled with the previous value), forecasting every test window; replicas follow from
/// its RPS forecast. A series a network cannot train on (too short) falls back to persistence;
/// the second value counts those.
pub fn rnn_baseline(
    p: &Prepared,
    cfg: &GraphModelConfig,
    rnn: &crate::rnn::RnnConfig,
) -> Result<(Vec<Vec<ServicePrediction>>, usize), NnError> {
    let l = &p.layout;
    let samples = p.samples(cfg, 2);
    let mut preds = persistence(p, &samples, cfg.horizon);
    let mut fallbacks = 0;
    let rc = crate::rnn::RnnConfig {
        max_horizon: cfg.horizon,
        ..rnn.clone()
    };
    for (si, d) in p.data.iter().enumerate() {
        let val_end = ((d.len as f64) * (1.0 - cfg.test_share)).floor() as usize;
        for i in (0..l.nodes.len()).filter(|i| l.is_service(*i)) {
            for j in 0..TARGETS.len() {
                let mut y: Vec<f64> = (0..d.len).map(|t| d.raw(l, t, i, j)).collect();
                let first = y.iter().copied().find(|v| v.is_finite()).unwrap_or(0.0);
                let mut last = first;
                for v in &mut y {
                    if v.is_finite() {
                        last = *v;
                    } else {
                        *v = last;
                    }
                }
                let Ok(trained) = crate::rnn::train(&rc, &y[..val_end], 0) else {
                    fallbacks += 1;
                    continue;
                };
                for (k, (s, t)) in samples.iter().enumerate() {
                    if *s != si || *t + 1 < rc.window {
                        continue;
                    }
                    let f = trained
                        .forecast(&y[..=*t], *t, cfg.horizon)
                        .map_err(NnError::from)?;
                    for sp in preds[k].iter_mut().filter(|sp| sp.service == l.nodes[i]) {
                        let v = f[sp.step - 1].max(0.0);
                        match j {
                            0 => {
                                sp.rps = [v; 3];
                                sp.replicas = p.norm.replica_count(i, v);
                            }
                            1 => sp.cpu_m = [v; 3],
                            _ => sp.memory_mib = [v; 3],
                        }
                    }
                }
            }
        }
    }
    Ok((preds, fallbacks))
}
