//! Training: the time split, prepared data, and the training loop with early stopping.

use super::*;

/// Window ends of one series by split: `(train, validation, test)`.
pub fn split(cfg: &GraphModelConfig, len: usize) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let (w, h) = (cfg.window, cfg.horizon);
    let train_end = train_points(cfg, len);
    let val_end = ((len as f64) * (1.0 - cfg.test_share)).floor() as usize;
    let ends = |from: usize, to: usize| -> Vec<usize> {
        // Window inside the series, targets before `to`.
        (from.max(w - 1)..to.saturating_sub(h)).collect()
    };
    (
        ends(0, train_end),
        ends(train_end, val_end),
        ends(val_end, len),
    )
}

/// Points of a series of `len` used for training (and the normalisation).
pub fn train_points(cfg: &GraphModelConfig, len: usize) -> usize {
    ((len as f64) * (1.0 - cfg.validation_share - cfg.test_share)).floor() as usize
}

/// Data ready for a model: layout, normalisation fitted on the training ranges, and tensors.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The graph.
    pub graph: AppGraph,
    /// Its layout.
    pub layout: Layout,
    /// The normalisation.
    pub norm: Normalisation,
    /// One per series.
    pub data: Vec<Tensorised>,
    /// Step of the series, ms.
    pub step_ms: u64,
}

impl Prepared {
    /// Checks that every series has the first one's graph and step, fits the normalisation on
    /// the training ranges and tensorises.
    pub fn new(cfg: &GraphModelConfig, series: &[GraphSeries]) -> Result<Self, NnError> {
        cfg.check()?;
        let first = series.first().ok_or_else(|| NnError::Data {
            what: "no series to train on".into(),
        })?;
        let layout = Layout::of(&first.graph);
        if !layout
            .nodes
            .iter()
            .enumerate()
            .any(|(i, _)| layout.is_service(i))
        {
            return Err(NnError::Data {
                what: "the graph has no service".into(),
            });
        }
        for (k, s) in series.iter().enumerate() {
            layout.check(&s.graph).map_err(|e| NnError::Data {
                what: format!("series {k}: {}", e),
            })?;
            if s.step_ms != first.step_ms {
                return Err(NnError::Data {
                    what: format!(
                        "series {k}: step {} ms, the first has {} ms",
                        s.step_ms, first.step_ms
                    ),
                });
            }
        }
        let refs: Vec<&GraphSeries> = series.iter().collect();
        let upto: Vec<usize> = series.iter().map(|s| train_points(cfg, s.len)).collect();
        let norm = Normalisation::fit(&layout, &refs, &upto, cfg.slo_ms);
        let data = series
            .iter()
            .map(|s| norm.tensorise(&layout, s))
            .collect::<Result<_, _>>()?;
        Ok(Prepared {
            graph: first.graph.clone(),
            layout,
            norm,
            data,
            step_ms: first.step_ms,
        })
    }

    /// Samples of every series in one split (0 train, 1 validation, 2 test).
    pub fn samples(&self, cfg: &GraphModelConfig, which: usize) -> Vec<(usize, usize)> {
        self.data
            .iter()
            .enumerate()
            .flat_map(|(s, d)| {
                let sp = split(cfg, d.len);
                let v = match which {
                    0 => sp.0,
                    1 => sp.1,
                    _ => sp.2,
                };
                v.into_iter().map(move |t| (s, t))
            })
            .collect()
    }
}

/// Progress of training, reported after every epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochReport {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Validation loss.
    pub val_loss: f64,
    /// Whether these weights are the best so far.
    pub best: bool,
}

/// Mean loss of `net` over `samples`, in batches.
pub(crate) fn mean_loss(
    net: &GraphNet,
    kind: Kind,
    cfg: &GraphModelConfig,
    p: &Prepared,
    samples: &[(usize, usize)],
    device: &Device,
) -> Result<f64, NnError> {
    let mut total = 0.0;
    for chunk in samples.chunks(cfg.batch.max(64)) {
        let b = batch(kind, cfg, &p.layout, &p.data, chunk, device)?;
        let l = loss(net.forward(&b), cfg, &p.layout, &p.norm, &p.data, chunk);
        total += f64::from(l.into_scalar::<f32>()) * chunk.len() as f64;
    }
    Ok(total / samples.len().max(1) as f64)
}

/// Trains a `kind` model on `p`, reporting each epoch to `progress`.
pub fn train(
    kind: Kind,
    cfg: &GraphModelConfig,
    p: &Prepared,
    progress: &mut dyn FnMut(EpochReport),
) -> Result<GraphModel, NnError> {
    cfg.check()?;
    let span = tracing::info_span!(
        "train_graph_model",
        model = kind.name(),
        nodes = p.layout.nodes.len()
    );
    let _e = span.enter();
    let mut train_s = p.samples(cfg, 0);
    let val_s = p.samples(cfg, 1);
    if train_s.len() < 8 || val_s.is_empty() {
        return Err(NnError::Data {
            what: format!(
                "too little data: {} training and {} validation windows (window {}, horizon {}); \
             record longer series",
                train_s.len(),
                val_s.len(),
                cfg.window,
                cfg.horizon
            ),
        });
    }
    if train_s.len() > cfg.max_train_samples {
        train_s.sort_by_key(|s| s.1);
        train_s = train_s.split_off(train_s.len() - cfg.max_train_samples);
    }
    let device = Device::flex().autodiff();
    let plain = Device::flex();
    let mut net = GraphNet::new(kind, cfg, &p.layout, &device);
    let mut optim = AdamConfig::new().init();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut best: Option<(f64, GraphNet)> = None;
    let mut best_epoch = 0;
    let mut val_loss = Vec::new();
    for epoch in 1..=cfg.epochs {
        train_s.shuffle(&mut rng);
        let mut total = 0.0;
        for chunk in train_s.chunks(cfg.batch) {
            let b = batch(kind, cfg, &p.layout, &p.data, chunk, &device)?;
            let l = loss(net.forward(&b), cfg, &p.layout, &p.norm, &p.data, chunk);
            total += f64::from(l.clone().into_scalar::<f32>()) * chunk.len() as f64;
            let grads = GradientsParams::from_grads(l.backward(), &net);
            net = optim.step(cfg.learning_rate, net, grads);
        }
        let train_loss = total / train_s.len() as f64;
        let valid = net.valid();
        let v = mean_loss(&valid, kind, cfg, p, &val_s, &plain)?;
        if !v.is_finite() {
            return Err(NnError::Data { what: format!(
                "training diverged at epoch {epoch} (validation loss {v}); try a lower learning_rate"
            ) });
        }
        val_loss.push(v);
        let is_best = best.as_ref().is_none_or(|b| v < b.0);
        progress(EpochReport {
            epoch,
            train_loss,
            val_loss: v,
            best: is_best,
        });
        tracing::debug!(epoch, train_loss, val_loss = v, "epoch");
        if is_best {
            best = Some((v, valid));
            best_epoch = epoch;
        } else if epoch - best_epoch >= cfg.patience {
            break;
        }
    }
    let (_, net) = best.ok_or_else(|| NnError::Data {
        what: "no epoch ran".into(),
    })?;
    Ok(GraphModel {
        kind,
        config: cfg.clone(),
        graph: p.graph.clone(),
        layout: p.layout.clone(),
        norm: p.norm.clone(),
        step_ms: p.step_ms,
        net,
        val_loss,
        best_epoch,
        host: std::sync::OnceLock::new(),
    })
}
