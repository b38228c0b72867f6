//! Timings for `graphscale bench nn`: one training step (forward, backward, Adam) and one
//! forward pass, on random inputs of a given shape. The caller sets the thread count
//! (`RAYON_NUM_THREADS`) and prints the table.

use std::time::Instant;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Tensor};

use crate::rnn::{Cell, RnnConfig, RnnNet};

/// Which network to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    /// A recurrent forecaster.
    Rnn(Cell),
    /// Baseline: one linear layer from the flattened window to the outputs.
    Linear,
}

impl Net {
    /// Its name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Net::Rnn(c) => c.name(),
            Net::Linear => "linear (baseline)",
        }
    }
}

/// Medians in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// One training step at `batch`: what training runs (for the recurrent networks, the host
    /// step of [`crate::rnn_train`]).
    pub train_step_ms: f64,
    /// One training step at `batch` through burn's modules and autodiff (the same as
    /// `train_step_ms` where training runs them).
    pub train_step_modules_ms: f64,
    /// One forward pass at batch 1: what a prediction runs (for the recurrent networks the
    /// host kernel of [`crate::rnn_host`], for the HGT that of [`crate::hgt_host`]).
    pub forward_ms: f64,
    /// One forward pass at batch 1 through burn's modules (the recurrent networks and the HGT;
    /// the same as `forward_ms` for the others).
    pub forward_modules_ms: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    graphscale_core::stats::median(&mut v)
}

/// Times `net` with `batch` windows of `window` steps, `hidden` units and `outputs` outputs:
/// `runs` measured repetitions after 3 warm-up ones.
pub fn time(
    net: Net,
    batch: usize,
    window: usize,
    hidden: usize,
    outputs: usize,
    runs: usize,
) -> Result<Timing, crate::NnError> {
    let ad = Device::flex().autodiff();
    let plain = Device::flex();
    let cfg = RnnConfig {
        cell: match net {
            Net::Rnn(c) => c,
            Net::Linear => Cell::Lstm,
        },
        window,
        hidden,
        max_horizon: outputs,
        ..RnnConfig::default()
    };
    let x = Tensor::<3>::random([batch, window, 1], Distribution::Default, &ad);
    let t = Tensor::<2>::random([batch, outputs], Distribution::Default, &ad);
    let x1 = Tensor::<3>::random([1, window, 1], Distribution::Default, &plain);
    let mut optim = AdamConfig::new().init();
    let (mut train, mut fwd, mut modules) = (Vec::new(), Vec::new(), Vec::new());
    let mut host_train = Vec::new();
    match net {
        Net::Rnn(_) => {
            let mut m = RnnNet::new(&cfg, &ad);
            for k in 0..runs + 3 {
                let start = Instant::now();
                let loss = (m.forward(x.clone()) - t.clone()).powi_scalar(2).mean();
                let grads = GradientsParams::from_grads(loss.backward(), &m);
                m = optim.step(1e-3, m, grads);
                let _ = m.weight_sum();
                if k >= 3 {
                    train.push(start.elapsed().as_secs_f64() * 1e3);
                }
            }
            let v = m.valid();
            // What training runs: the host step, from the same weights.
            let mut host = v.host_trainer().ok_or_else(|| crate::NnError::Tensor {
                reason: "the network's weights cannot be read for the host step".into(),
            })?;
            let xv: Vec<f32> = x
                .clone()
                .into_data()
                .try_into_vec::<f32>()
                .unwrap_or_default();
            let tv: Vec<f32> = t
                .clone()
                .into_data()
                .try_into_vec::<f32>()
                .unwrap_or_default();
            for k in 0..runs + 3 {
                let start = Instant::now();
                let loss =
                    host.step(&xv, &tv, batch, 1e-3)
                        .ok_or_else(|| crate::NnError::Tensor {
                            reason: "the host step was given a batch of the wrong size".into(),
                        })?;
                std::hint::black_box(loss);
                if k >= 3 {
                    host_train.push(start.elapsed().as_secs_f64() * 1e3);
                }
            }
            for k in 0..runs + 3 {
                let start = Instant::now();
                let _ = v.forward(x1.clone()).into_data();
                if k >= 3 {
                    modules.push(start.elapsed().as_secs_f64() * 1e3);
                }
            }
            // What a prediction runs: the same weights in the host layout.
            let host = v.host().ok_or_else(|| crate::NnError::Tensor {
                reason: "the network's weights have no host layout".into(),
            })?;
            let window1: Vec<f32> = x1.into_data().try_into_vec::<f32>().unwrap_or_default();
            for k in 0..runs + 3 {
                let start = Instant::now();
                std::hint::black_box(host.forward(std::hint::black_box(&window1)));
                if k >= 3 {
                    fwd.push(start.elapsed().as_secs_f64() * 1e3);
                }
            }
        }
        Net::Linear => {
            let mut m: Linear = LinearConfig::new(window, outputs).init(&ad);
            let flat = x.clone().reshape([batch, window]);
            for k in 0..runs + 3 {
                let start = Instant::now();
                let loss = (m.forward(flat.clone()) - t.clone()).powi_scalar(2).mean();
                let grads = GradientsParams::from_grads(loss.backward(), &m);
                m = optim.step(1e-3, m, grads);
                let _ = m.weight.val().sum().into_data();
                if k >= 3 {
                    train.push(start.elapsed().as_secs_f64() * 1e3);
                }
            }
            let v = m.valid();
            let flat1 = x1.reshape([1, window]);
            for k in 0..runs + 3 {
                let start = Instant::now();
                let _ = v.forward(flat1.clone()).into_data();
                if k >= 3 {
                    fwd.push(start.elapsed().as_secs_f64() * 1e3);
                }
            }
            modules = fwd.clone();
        }
    }
    let train_modules = median(train);
    Ok(Timing {
        train_step_ms: if host_train.is_empty() {
            train_modules
        } else {
            median(host_train)
        },
        train_step_modules_ms: train_modules,
        forward_ms: median(fwd),
        forward_modules_ms: median(modules),
    })
}

/// Times one HGT network (input maps, `layers` layers of `cfg`, a linear head with 4 outputs per
/// node) on `graph` with 8 random input features per node: a training step (forward, backward,
/// Adam on the mean squared error of all nodes) and a forward pass; `runs` measured repetitions
/// after 3 warm-up ones.
pub fn time_hgt(
    graph: &crate::hgt::HeteroGraph,
    cfg: &crate::hgt::HgtConfig,
    layers: usize,
    runs: usize,
) -> Result<Timing, crate::NnError> {
    use crate::hgt::{DeviceGraph, HgtNet};
    let ad = Device::flex().autodiff();
    let plain = Device::flex();
    let n = graph.node_type.len();
    let (ga, gp) = (
        DeviceGraph::new(graph, &ad)?,
        DeviceGraph::new(graph, &plain)?,
    );
    let x = Tensor::<2>::random([n, 8], Distribution::Default, &ad);
    let t = Tensor::<2>::random([n, 4], Distribution::Default, &ad);
    let xp = Tensor::<2>::random([n, 8], Distribution::Default, &plain);
    let mut m = HgtNet::new(cfg, 8, layers, 4, &ad);
    let mut optim = AdamConfig::new().init();
    let (mut train, mut fwd) = (Vec::new(), Vec::new());
    for k in 0..runs + 3 {
        let start = Instant::now();
        let loss = (m.forward(x.clone(), &ga) - t.clone())
            .powi_scalar(2)
            .mean();
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        m = optim.step(1e-3, m, grads);
        let _ = m.head.weight.val().sum().into_data();
        if k >= 3 {
            train.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let v = m.valid();
    let mut modules = Vec::new();
    for k in 0..runs + 3 {
        let start = Instant::now();
        let _ = v.forward(xp.clone(), &gp).into_data();
        if k >= 3 {
            modules.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    // What a prediction runs: the host forward, graph laid out once as a prediction's is.
    let host = crate::hgt_host::HostHgt::of(&v).ok_or_else(|| crate::NnError::Tensor {
        reason: "the HGT's weights cannot be read for the host forward".into(),
    })?;
    let hg = crate::hgt_host::HostGraph::new(graph)?;
    let xv = xp
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| crate::NnError::Tensor {
            reason: format!("{e:?}"),
        })?;
    for k in 0..runs + 3 {
        let start = Instant::now();
        let y = host.forward(&xv, &hg)?;
        std::hint::black_box(y);
        if k >= 3 {
            fwd.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let train = median(train);
    Ok(Timing {
        train_step_ms: train,
        train_step_modules_ms: train,
        forward_ms: median(fwd),
        forward_modules_ms: median(modules),
    })
}
