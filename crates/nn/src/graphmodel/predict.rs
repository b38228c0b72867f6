//! Predictions per service from a trained model.

use super::*;

/// One service's forecast at one step ahead, in units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServicePrediction {
    /// Service id.
    pub service: String,
    /// Steps ahead (1-based).
    pub step: usize,
    /// Seconds ahead.
    pub ahead_s: f64,
    /// RPS at the 0.1, 0.5 and 0.9 quantiles.
    pub rps: [f64; 3],
    /// CPU millicores at the quantiles.
    pub cpu_m: [f64; 3],
    /// Memory MiB at the quantiles.
    pub memory_mib: [f64; 3],
    /// Replicas that keep the service within its SLO.
    pub replicas: u32,
}

impl GraphModel {
    /// Predictions from the window ending at `t` of `data` (built with this model's
    /// normalisation), for every service.
    pub fn predict_at(
        &self,
        data: &Tensorised,
        t: usize,
    ) -> Result<Vec<ServicePrediction>, NnError> {
        Ok(self
            .predict_many(std::slice::from_ref(data), &[(0, t)])?
            .remove(0))
    }

    pub(crate) fn predict_many(
        &self,
        data: &[Tensorised],
        samples: &[(usize, usize)],
    ) -> Result<Vec<Vec<ServicePrediction>>, NnError> {
        let device = Device::flex();
        let n = self.layout.nodes.len();
        let (h, k, q) = (self.config.horizon, TARGETS.len(), QUANTILES.len());
        let mut all = Vec::with_capacity(samples.len());
        for chunk in samples.chunks(64) {
            let b = batch(self.kind, &self.config, &self.layout, data, chunk, &device)?;
            let out = to_vec(self.net.forward(&b))?;
            for (bi, (s, t)) in chunk.iter().enumerate() {
                let d = &data[*s];
                let mut preds = Vec::new();
                for i in (0..n).filter(|i| self.layout.is_service(*i)) {
                    let row = bi * n + i;
                    for step in 0..h {
                        let o = &out[(row * h + step) * OUTPUTS_PER_STEP..][..OUTPUTS_PER_STEP];
                        let unit = |j: usize| {
                            let z0 = f64::from(d.z(&self.layout, *t, i, j));
                            let mut v: Vec<f64> = (0..q)
                                .map(|qi| {
                                    let dz =
                                        f64::from(o[j * q + qi]).clamp(-MAX_STEP_Z, MAX_STEP_Z);
                                    self.norm.node[i][j].x(z0 + dz)
                                })
                                .collect();
                            v.sort_by(f64::total_cmp);
                            [v[0], v[1], v[2]]
                        };
                        let now = d.replicas[t * n + i];
                        let reps = (now + f64::from(o[k * q])).round().max(1.0);
                        let (rps, cpu_m, memory_mib) = (unit(0), unit(1), unit(2));
                        // A forecast that is not a number is no forecast: weights or a
                        // normalisation that finite inputs overflow (a corrupt checkpoint)
                        // would otherwise plan for infinite load.
                        if let Some(v) = rps
                            .iter()
                            .chain(&cpu_m)
                            .chain(&memory_mib)
                            .chain(std::iter::once(&reps))
                            .find(|v| !v.is_finite())
                        {
                            return Err(NnError::Data {
                                what: format!(
                                    "the model forecasts {v} for service `{}`: its weights or normalisation cannot be right",
                                    self.layout.nodes[i]
                                ),
                            });
                        }
                        preds.push(ServicePrediction {
                            service: self.layout.nodes[i].clone(),
                            step: step + 1,
                            ahead_s: (step + 1) as f64 * self.step_ms as f64 / 1000.0,
                            rps,
                            cpu_m,
                            memory_mib,
                            replicas: reps.min(f64::from(u32::MAX)) as u32,
                        });
                    }
                }
                all.push(preds);
            }
        }
        Ok(all)
    }

    /// Predictions from the newest window of `s` (at least `window` points, this model's graph).
    pub fn predict_series(&self, s: &GraphSeries) -> Result<Vec<ServicePrediction>, NnError> {
        self.layout.check(&s.graph)?;
        if s.len < self.config.window {
            return Err(NnError::Data {
                what: format!(
                    "the snapshot has {} points; the model reads the last {}",
                    s.len, self.config.window
                ),
            });
        }
        let d = self.norm.tensorise(&self.layout, s)?;
        let t = s.len - 1;
        for (i, id) in self.layout.nodes.iter().enumerate() {
            if self.layout.is_service(i) && !d.raw(&self.layout, t, i, 0).is_finite() {
                return Err(NnError::Data {
                    what: format!(
                        "service `{id}` has no rps at the newest point: cannot predict from it"
                    ),
                });
            }
        }
        self.predict_at(&d, t)
    }
}
