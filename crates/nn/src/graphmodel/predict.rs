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
        let host = self
            .host
            .get_or_init(|| self.net.hgt.as_ref().and_then(HostHgt::of))
            .as_ref();
        let mut all = Vec::with_capacity(samples.len());
        for chunk in samples.chunks(64) {
            let out = match host {
                Some(host) => host.forward(
                    &batch::node_inputs(&self.config, &self.layout, data, chunk),
                    &HostGraph::new(&batch::hetero_graph(&self.layout, data, chunk))?,
                )?,
                None => to_vec(self.net.forward(&batch(
                    self.kind,
                    &self.config,
                    &self.layout,
                    data,
                    chunk,
                    &device,
                )?))?,
            };
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

#[cfg(test)]
mod tests {
    use super::*;
    use graphscale_core::{Edge, Metric, Node, NodeKind, Relation};
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

    /// Three services calling each other and a queue that `b` produces to and `c` consumes
    /// from; random loads.
    fn series(points: usize) -> GraphSeries {
        let svc = |id: &str| Node::new(id, NodeKind::Service);
        let g = AppGraph::new(
            "chain",
            vec![
                svc("a"),
                svc("b"),
                svc("c"),
                Node::new("q", NodeKind::Queue),
            ],
            vec![
                Edge::new("a", "b", Relation::Calls, 1.0),
                Edge::new("a", "c", Relation::Calls, 0.5),
                Edge::new("b", "c", Relation::Calls, 1.0),
                Edge::new("b", "q", Relation::Produces, 1.0),
                Edge::new("c", "q", Relation::Consumes, 1.0),
            ],
        )
        .unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut s = GraphSeries::new(g, 0, 15_000, points);
        for id in ["a", "b", "c", "q"] {
            let v: Vec<f64> = (0..points).map(|_| rng.random_range(10.0..100.0)).collect();
            let mut m = BTreeMap::new();
            m.insert(Metric::CpuMillicores, v.iter().map(|x| 5.0 * x).collect());
            m.insert(Metric::Rps, v);
            m.insert(Metric::MemoryMib, vec![200.0; points]);
            m.insert(Metric::ReplicasReady, vec![2.0; points]);
            s.nodes.insert(id.into(), m);
        }
        s
    }

    #[test]
    fn host_predictions_of_an_hgt_equal_those_through_burns_modules() {
        let cfg = GraphModelConfig {
            window: 4,
            horizon: 2,
            hidden: 16,
            heads: 4,
            epochs: 2,
            ..GraphModelConfig::default()
        };
        let s = series(200);
        let p = Prepared::new(&cfg, std::slice::from_ref(&s)).unwrap();
        let host = train(Kind::Hgt, &cfg, &p, &mut |_| {}).unwrap();
        let mut modules = host.clone();
        // Read as "not an HGT": predictions go through burn's modules.
        modules.host = std::sync::OnceLock::from(None);
        let samples = p.samples(&cfg, 2);
        assert!(samples.len() > 10);
        let a = host.predict_many(&p.data, &samples).unwrap();
        let b = modules.predict_many(&p.data, &samples).unwrap();
        assert!(
            host.host.get().is_some_and(|h| h.is_some()),
            "host path taken"
        );
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
            assert_eq!((&x.service, x.step), (&y.service, y.step));
            for (u, v) in x
                .rps
                .iter()
                .chain(&x.cpu_m)
                .chain(&x.memory_mib)
                .zip(y.rps.iter().chain(&y.cpu_m).chain(&y.memory_mib))
            {
                assert!((u - v).abs() <= 1e-4 * (1.0 + v.abs()), "{x:?} vs {y:?}");
            }
            assert!(x.replicas.abs_diff(y.replicas) <= 1, "{x:?} vs {y:?}");
        }
    }
}
