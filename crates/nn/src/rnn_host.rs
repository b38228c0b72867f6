//! The recurrent forecaster's forward pass for one window, in plain Rust on the host: what a
//! prediction runs. burn's LSTM and GRU launch a dozen small tensor operations per time step,
//! each with its own allocation and dispatch; for one window (batch 1) that overhead is most of
//! the time. Here the gates' weights are laid out once, side by side (`[inputs, gates x hidden]`,
//! row-major), so each step is two vector-matrix products written as contiguous multiply-adds,
//! and the gate functions. Same arithmetic as burn's modules (f32; LSTM with sigmoid gates and
//! tanh cell; GRU with the reset gate applied after the hidden product, burn's default); a test
//! compares the outputs. Training stays on burn (autodiff).

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::Tensor;

use crate::rnn::Cell;

/// The weights of a trained [`crate::rnn::RnnNet`], laid out for one-window forwards.
#[derive(Debug, Clone)]
pub struct HostRnn {
    cell: Cell,
    inputs: usize,
    hidden: usize,
    /// `[inputs, gates * hidden]`.
    w_x: Vec<f32>,
    /// `[hidden, gates * hidden]`.
    w_h: Vec<f32>,
    /// Input-side biases, `gates * hidden` (LSTM: input and hidden biases summed).
    b_x: Vec<f32>,
    /// Hidden-side biases, `gates * hidden` (GRU: kept apart, the reset gate scales them).
    b_h: Vec<f32>,
    /// Head `[hidden, outputs]` and its bias.
    head_w: Vec<f32>,
    head_b: Vec<f32>,
}

/// A matrix parameter's values (`[d_in, d_out]`, row-major) and its shape.
pub(crate) fn matrix(p: &Param<Tensor<2>>) -> (Vec<f32>, [usize; 2]) {
    let t = p.val();
    let dims = t.dims();
    (
        t.into_data().try_into_vec::<f32>().unwrap_or_default(),
        dims,
    )
}

/// A layer's bias of `n` values (zeros for a layer without one); `None` when it has another
/// length or cannot be read.
pub(crate) fn bias(l: &Linear, n: usize) -> Option<Vec<f32>> {
    match &l.bias {
        None => Some(vec![0.0; n]),
        Some(b) => b
            .val()
            .into_data()
            .try_into_vec::<f32>()
            .ok()
            .filter(|v| v.len() == n),
    }
}

/// Appends `gates`' matrices column block by column block: `[d_in, gates * d_out]`.
fn side_by_side(gates: &[&Linear], d_in: usize, d_out: usize) -> Option<Vec<f32>> {
    let mats: Vec<(Vec<f32>, [usize; 2])> = gates.iter().map(|l| matrix(&l.weight)).collect();
    if mats
        .iter()
        .any(|(v, d)| *d != [d_in, d_out] || v.len() != d_in * d_out)
    {
        return None;
    }
    let g = gates.len();
    let mut out = vec![0.0; d_in * g * d_out];
    for (k, (m, _)) in mats.iter().enumerate() {
        for r in 0..d_in {
            out[r * g * d_out + k * d_out..r * g * d_out + (k + 1) * d_out]
                .copy_from_slice(&m[r * d_out..(r + 1) * d_out]);
        }
    }
    Some(out)
}

/// `acc += x W` for `W` `[x.len(), acc.len()]` row-major. Blocks of 32 outputs stay in
/// registers while every row passes; each output still sums its rows in order.
#[inline]
fn add_product(acc: &mut [f32], x: &[f32], w: &[f32]) {
    const B: usize = 32;
    let n = acc.len();
    let mut j = 0;
    while j + B <= n {
        let mut local = [0.0f32; B];
        local.copy_from_slice(&acc[j..j + B]);
        for (xi, row) in x.iter().zip(w.chunks_exact(n)) {
            for (l, wv) in local.iter_mut().zip(&row[j..j + B]) {
                *l += xi * wv;
            }
        }
        acc[j..j + B].copy_from_slice(&local);
        j += B;
    }
    for (jj, a) in acc.iter_mut().enumerate().skip(j) {
        for (xi, row) in x.iter().zip(w.chunks_exact(n)) {
            *a += xi * row[jj];
        }
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `tanh` from one exponential (`(1 - e^-2|x|) / (1 + e^-2|x|)`, signed), cheaper than the
/// library's; within a few units in the last place of it.
fn tanh(x: f32) -> f32 {
    let e = (-2.0 * x.abs()).exp();
    ((1.0 - e) / (1.0 + e)).copysign(x)
}

impl HostRnn {
    /// The host layout of a network's weights; `None` when the network is not one cell and a
    /// head of the expected shapes (it always is, for networks built by [`crate::rnn`]).
    pub fn new(
        cell: Cell,
        lstm: Option<&burn::nn::Lstm>,
        gru: Option<&burn::nn::Gru>,
        head: &Linear,
    ) -> Option<Self> {
        let (head_w, [hidden, outputs]) = matrix(&head.weight);
        if head_w.len() != hidden * outputs {
            return None;
        }
        let head_b = bias(head, outputs)?;
        let gates: Vec<&burn::nn::GateController> = match (cell, lstm, gru) {
            (Cell::Lstm, Some(l), None) => vec![
                &l.input_gate,
                l.forget_gate.as_ref()?,
                &l.output_gate,
                &l.cell_gate,
            ],
            (Cell::Gru, None, Some(g)) => vec![&g.update_gate, &g.reset_gate, &g.new_gate],
            _ => return None,
        };
        let inputs = matrix(&gates[0].input_transform.weight).1[0];
        let xs: Vec<&Linear> = gates.iter().map(|g| &g.input_transform).collect();
        let hs: Vec<&Linear> = gates.iter().map(|g| &g.hidden_transform).collect();
        let w_x = side_by_side(&xs, inputs, hidden)?;
        let w_h = side_by_side(&hs, hidden, hidden)?;
        let biases = |ls: &[&Linear]| -> Option<Vec<f32>> {
            let each: Option<Vec<Vec<f32>>> = ls.iter().map(|l| bias(l, hidden)).collect();
            Some(each?.concat())
        };
        let (bx, bh) = (biases(&xs)?, biases(&hs)?);
        let (b_x, b_h) = match cell {
            Cell::Lstm => (
                bx.iter().zip(&bh).map(|(a, b)| a + b).collect(),
                vec![0.0; bh.len()],
            ),
            Cell::Gru => (bx, bh),
        };
        Some(HostRnn {
            cell,
            inputs,
            hidden,
            w_x,
            w_h,
            b_x,
            b_h,
            head_w,
            head_b,
        })
    }

    /// Inputs per step.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// The head's outputs for one window `x` (`[steps, inputs]`, row-major).
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        let (f, h) = (self.inputs, self.hidden);
        let g = match self.cell {
            Cell::Lstm => 4,
            Cell::Gru => 3,
        };
        let mut state = vec![0.0f32; h];
        let mut cell = vec![0.0f32; h];
        let mut zx = vec![0.0f32; g * h];
        let mut zh = vec![0.0f32; g * h];
        for step in x.chunks_exact(f.max(1)) {
            zx.copy_from_slice(&self.b_x);
            add_product(&mut zx, step, &self.w_x);
            zh.copy_from_slice(&self.b_h);
            add_product(&mut zh, &state, &self.w_h);
            match self.cell {
                Cell::Lstm => {
                    for j in 0..h {
                        let i = sigmoid(zx[j] + zh[j]);
                        let fg = sigmoid(zx[h + j] + zh[h + j]);
                        let o = sigmoid(zx[2 * h + j] + zh[2 * h + j]);
                        let c = tanh(zx[3 * h + j] + zh[3 * h + j]);
                        cell[j] = fg * cell[j] + i * c;
                        state[j] = o * tanh(cell[j]);
                    }
                }
                Cell::Gru => {
                    for j in 0..h {
                        let u = sigmoid(zx[j] + zh[j]);
                        let r = sigmoid(zx[h + j] + zh[h + j]);
                        let n = tanh(zx[2 * h + j] + r * zh[2 * h + j]);
                        state[j] = (1.0 - u) * n + u * state[j];
                    }
                }
            }
        }
        let mut out = self.head_b.clone();
        add_product(&mut out, &state, &self.head_w);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rnn::{RnnConfig, RnnNet};
    use burn::tensor::{Device, Distribution, Tensor};

    #[test]
    fn tanh_is_the_librarys() {
        for i in -2000..=2000 {
            let x = i as f32 * 0.01;
            assert!(
                (tanh(x) - x.tanh()).abs() <= 2e-7,
                "{x}: {} vs {}",
                tanh(x),
                x.tanh()
            );
        }
        assert_eq!(tanh(1e6), 1.0);
        assert_eq!(tanh(-1e6), -1.0);
        assert_eq!(tanh(0.0), 0.0);
    }

    #[test]
    fn the_host_forward_equals_burns_modules() {
        let device = Device::flex();
        for (cell, hidden, window, outputs, seed) in [
            (Cell::Lstm, 64, 60, 1, 1),
            (Cell::Lstm, 8, 5, 3, 2),
            (Cell::Gru, 64, 60, 1, 3),
            (Cell::Gru, 16, 12, 4, 4),
        ] {
            let cfg = RnnConfig {
                cell,
                hidden,
                window,
                max_horizon: outputs,
                seed,
                ..RnnConfig::default()
            };
            let net = RnnNet::new(&cfg, &device);
            let host = net.host().unwrap();
            let f = cfg.features();
            assert_eq!(host.inputs(), f);
            for _ in 0..3 {
                let x =
                    Tensor::<3>::random([1, window, f], Distribution::Normal(0.0, 2.0), &device);
                let want: Vec<f32> = net.forward(x.clone()).into_data().try_into_vec().unwrap();
                let got = host.forward(&x.into_data().try_into_vec::<f32>().unwrap());
                assert_eq!(got.len(), outputs);
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                        "{cell:?}: {got:?} vs {want:?}"
                    );
                }
            }
        }
    }
}
