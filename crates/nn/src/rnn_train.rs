//! The recurrent forecasters' training step on the host: the forward pass over a batch of windows
//! with every gate kept, the backward pass through time written out, and Adam, as burn computes
//! them (burn's `Lstm` or `Gru` with its defaults, a linear head on the last hidden state, the mean
//! squared error, burn's `Adam` with its defaults). On burn's `flex` backend a step is a dozen small
//! tensor operations per time step with autodiff's bookkeeping, and the gate functions run element
//! by element through libm (the profile is in docs/benchmarks.md); here each time step is a few
//! matrix products over the batch ([`crate::linalg`]) and loops over contiguous rows, with the
//! exponential in a form the compiler vectorises. Tests check the weights after several steps
//! against burn's, for both cells.
//!
//! The weights live here during training; [`HostTrainer::write`] puts them back into the network
//! (checkpoints, the modules' forward and the prediction kernel read it).

use burn::module::Param;
use burn::nn::{GateController, Gru, Lstm};
use burn::tensor::{Device, Tensor, TensorData};

use crate::linalg::{matmul, Mat};
use crate::rnn::{Cell, RnnNet};
use crate::rnn_host::{bias, matrix};
use rayon::prelude::*;

/// Parameters: input weights `[f, g h]`, recurrent weights `[h, g h]`, input-side and hidden-side
/// biases `[g h]` (burn keeps both, and Adam moves each on its own), head weights `[h, o]` and bias
/// `[o]`; `g` gates side by side: the LSTM's input, forget, output and cell gates, the GRU's update,
/// reset and new gates.
const PARAMS: usize = 6;

/// burn's `AdamConfig` defaults.
const BETA_1: f32 = 0.9;
const BETA_2: f32 = 0.999;
const EPSILON: f32 = 1e-5;

/// A recurrent forecaster's weights and Adam's moments, for training steps on the host.
#[derive(Debug, Clone)]
pub struct HostTrainer {
    dims: Dims,
    params: [Vec<f32>; PARAMS],
    grads: [Vec<f32>; PARAMS],
    moment_1: [Vec<f32>; PARAMS],
    moment_2: [Vec<f32>; PARAMS],
    time: i32,
    /// One per part of a batch that a thread takes.
    shards: Vec<Shard>,
}

#[derive(Debug, Clone, Copy)]
struct Dims {
    cell: Cell,
    inputs: usize,
    hidden: usize,
    outputs: usize,
}

/// The buffers of one part of a batch: gate values `[steps][rows, g h]` (after their functions)
/// and the gradients of their pre-activations (for the GRU the hidden side's; `dzx`, the input
/// side's, for one step), the LSTM's cell states `[steps + 1][rows, h]` (for the GRU its new
/// gate's hidden-side sum, `[steps][rows, h]`), hidden states `[steps + 1][rows, h]` (the first
/// all zero), `tanh` of the LSTM's cell states, and this part's gradients.
#[derive(Debug, Clone, Default)]
struct Shard {
    gates: Vec<f32>,
    dz: Vec<f32>,
    dzx: Vec<f32>,
    cells: Vec<f32>,
    states: Vec<f32>,
    tanh_cells: Vec<f32>,
    grads: [Vec<f32>; PARAMS],
}

/// Windows below which a batch is not split between threads.
const SPLIT_ROWS: usize = 16;

fn lstm_gates(l: &Lstm) -> Option<[&GateController; 4]> {
    Some([
        &l.input_gate,
        l.forget_gate.as_ref()?,
        &l.output_gate,
        &l.cell_gate,
    ])
}

fn gru_gates(g: &Gru) -> [&GateController; 3] {
    [&g.update_gate, &g.reset_gate, &g.new_gate]
}

/// `e^x` for `x` in f32's range, within 2 units in the last place: Cody and Waite's reduction to
/// `[-ln 2 / 2, ln 2 / 2]`, Cephes' polynomial, the power of two built from its bits. Branch-free,
/// so loops over it vectorise. A NaN stays a NaN.
#[inline]
fn exp(x: f32) -> f32 {
    // Rounded to the nearest integer n by adding 1.5 * 2^23: the sum's bits are those of
    // 1.5 * 2^23 plus n, so n is read from them without a conversion (which would not vectorise).
    const ROUND: f32 = 12_582_912.0;
    const ROUND_BITS: u32 = 0x4B40_0000;
    let x = x.clamp(-87.3, 88.3);
    let k = x * std::f32::consts::LOG2_E + ROUND;
    let nf = k - ROUND;
    let r = x - nf * 0.693_359_4 + nf * 2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(k.to_bits().wrapping_sub(ROUND_BITS).wrapping_add(127) << 23)
}

#[inline]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[inline]
fn tanh(x: f32) -> f32 {
    let e = exp(-2.0 * x.abs());
    ((1.0 - e) / (1.0 + e)).copysign(x)
}

impl HostTrainer {
    /// The weights of `net` (either cell); `None` for shapes other than burn's.
    pub fn of(net: &RnnNet) -> Option<Self> {
        let (cell, g): (Cell, Vec<&GateController>) = match (&net.lstm, &net.gru) {
            (Some(l), None) => (Cell::Lstm, lstm_gates(l)?.to_vec()),
            (None, Some(g)) => (Cell::Gru, gru_gates(g).to_vec()),
            _ => return None,
        };
        let head = &net.head;
        let (head_w, [hidden, outputs]) = matrix(&head.weight);
        if head_w.len() != hidden * outputs {
            return None;
        }
        let head_b = bias(head, outputs)?;
        let inputs = matrix(&g[0].input_transform.weight).1[0];
        let (hg, mut w_x, mut w_h) = (g.len() * hidden, Vec::new(), Vec::new());
        w_x.resize(inputs * hg, 0.0);
        w_h.resize(hidden * hg, 0.0);
        let (mut b_x, mut b_h) = (Vec::with_capacity(hg), Vec::with_capacity(hg));
        for (k, gate) in g.iter().enumerate() {
            for (w, rows, lin) in [
                (&mut w_x, inputs, &gate.input_transform),
                (&mut w_h, hidden, &gate.hidden_transform),
            ] {
                let (v, dims) = matrix(&lin.weight);
                if dims != [rows, hidden] || v.len() != rows * hidden {
                    return None;
                }
                for r in 0..rows {
                    w[r * hg + k * hidden..r * hg + (k + 1) * hidden]
                        .copy_from_slice(&v[r * hidden..(r + 1) * hidden]);
                }
            }
            b_x.extend(bias(&gate.input_transform, hidden)?);
            b_h.extend(bias(&gate.hidden_transform, hidden)?);
        }
        let params = [w_x, w_h, b_x, b_h, head_w, head_b];
        let zeros = || params.clone().map(|p| vec![0.0; p.len()]);
        Some(HostTrainer {
            dims: Dims {
                cell,
                inputs,
                hidden,
                outputs,
            },
            grads: zeros(),
            moment_1: zeros(),
            moment_2: zeros(),
            params,
            time: 0,
            shards: Vec::new(),
        })
    }

    /// Inputs per step.
    pub fn inputs(&self) -> usize {
        self.dims.inputs
    }

    /// The head's outputs (`[batch, outputs]`) for `batch` windows `x` (`[batch, steps,
    /// inputs]`).
    pub fn outputs(&mut self, x: &[f32], batch: usize) -> Vec<f32> {
        let steps = x.len() / (batch * self.dims.inputs).max(1);
        self.shards.resize_with(1, Shard::default);
        forward(
            self.dims,
            &self.params,
            &mut self.shards[0],
            x,
            batch,
            steps,
        )
    }

    /// A copy of the weights and moments, without the buffers of the last batch.
    pub fn weights(&self) -> Self {
        HostTrainer {
            dims: self.dims,
            params: self.params.clone(),
            grads: self.grads.clone(),
            moment_1: self.moment_1.clone(),
            moment_2: self.moment_2.clone(),
            time: self.time,
            shards: Vec::new(),
        }
    }

    /// One training step on `batch` windows `x` (`[batch, steps, inputs]`, row-major) and their
    /// targets (`[batch, outputs]`): the mean squared error's gradient and one Adam step of rate
    /// `lr`. Returns the loss before the step, or `None` (and no step) when the sizes do not
    /// fit: no window, windows of another width, or another number of targets. With several
    /// threads, the batch is split between them and their gradients summed.
    pub fn step(&mut self, x: &[f32], targets: &[f32], batch: usize, lr: f32) -> Option<f32> {
        let Dims {
            inputs: f,
            outputs: o,
            ..
        } = self.dims;
        let steps = x.len() / (batch * f).max(1);
        if batch == 0 || steps == 0 || x.len() != batch * steps * f || targets.len() != batch * o {
            return None;
        }
        let parts = if batch >= SPLIT_ROWS {
            rayon::current_num_threads().clamp(1, batch / (SPLIT_ROWS / 2))
        } else {
            1
        };
        self.shards.resize_with(parts, Shard::default);
        let count = (batch * o) as f32;
        let per = batch.div_ceil(parts);
        let (dims, params) = (self.dims, &self.params);
        let run = |(k, shard): (usize, &mut Shard)| -> f32 {
            let (a, b) = (k * per, ((k + 1) * per).min(batch));
            if a >= b {
                shard.grads.iter_mut().for_each(|g| g.clear());
                return 0.0;
            }
            let xs = &x[a * steps * f..b * steps * f];
            let y = forward(dims, params, shard, xs, b - a, steps);
            let mut loss = 0.0;
            let dy: Vec<f32> = y
                .iter()
                .zip(&targets[a * o..b * o])
                .map(|(yv, t)| {
                    loss += (yv - t) * (yv - t);
                    2.0 * (yv - t) / count
                })
                .collect();
            backward(dims, params, shard, xs, &dy, b - a, steps);
            loss
        };
        let loss: f32 = if parts > 1 {
            self.shards.par_iter_mut().enumerate().map(run).sum()
        } else {
            self.shards.iter_mut().enumerate().map(run).sum()
        };
        for (k, g) in self.grads.iter_mut().enumerate() {
            g.fill(0.0);
            for shard in &self.shards {
                g.iter_mut().zip(&shard.grads[k]).for_each(|(a, b)| *a += b);
            }
        }
        self.adam(lr);
        Some(loss / count)
    }

    /// One Adam step of rate `lr` on every parameter, as burn's `Adam` with its defaults.
    fn adam(&mut self, lr: f32) {
        self.time += 1;
        let bc2 = (1.0 - BETA_2.powi(self.time)).sqrt();
        let factor = bc2 / (1.0 - BETA_1.powi(self.time));
        for k in 0..PARAMS {
            let (p, g) = (&mut self.params[k], &self.grads[k]);
            let (m1, m2) = (&mut self.moment_1[k], &mut self.moment_2[k]);
            for j in 0..p.len() {
                m1[j] = m1[j] * BETA_1 + g[j] * (1.0 - BETA_1);
                m2[j] = m2[j] * BETA_2 + g[j] * g[j] * (1.0 - BETA_2);
                p[j] -= lr * (m1[j] * factor / (m2[j].sqrt() + EPSILON * bc2));
            }
        }
    }

    /// Puts the weights back into `net` (the network they were read from).
    pub fn write(&self, net: &mut RnnNet, device: &Device) {
        let (f, h) = (self.dims.inputs, self.dims.hidden);
        let [w_x, w_h, b_x, b_h, head_w, head_b] = &self.params;
        let matrix = |v: Vec<f32>, r: usize, c: usize| {
            Param::from_tensor(Tensor::<2>::from_data(TensorData::new(v, [r, c]), device))
        };
        let vector = |v: &[f32]| {
            Param::from_tensor(Tensor::<1>::from_data(
                TensorData::new(v.to_vec(), [v.len()]),
                device,
            ))
        };
        let mut gates: Vec<&mut GateController> = match (&mut net.lstm, &mut net.gru) {
            (Some(l), None) => match l.forget_gate.as_mut() {
                Some(fg) => vec![&mut l.input_gate, fg, &mut l.output_gate, &mut l.cell_gate],
                None => return,
            },
            (None, Some(g)) => vec![&mut g.update_gate, &mut g.reset_gate, &mut g.new_gate],
            _ => return,
        };
        let hg = gates.len() * h;
        let column = |w: &[f32], rows: usize, k: usize| -> Vec<f32> {
            (0..rows)
                .flat_map(|r| w[r * hg + k * h..r * hg + (k + 1) * h].iter().copied())
                .collect()
        };
        for (k, gate) in gates.iter_mut().enumerate() {
            gate.input_transform.weight = matrix(column(w_x, f, k), f, h);
            gate.hidden_transform.weight = matrix(column(w_h, h, k), h, h);
            gate.input_transform.bias = Some(vector(&b_x[k * h..(k + 1) * h]));
            gate.hidden_transform.bias = Some(vector(&b_h[k * h..(k + 1) * h]));
        }
        net.head.weight = matrix(head_w.clone(), h, self.dims.outputs);
        net.head.bias = Some(vector(head_b));
    }
}

/// The forward pass of `batch` windows with every gate kept in `sh`; the head's outputs
/// `[batch, outputs]`.
fn forward(
    dims: Dims,
    params: &[Vec<f32>; PARAMS],
    sh: &mut Shard,
    x: &[f32],
    batch: usize,
    steps: usize,
) -> Vec<f32> {
    match dims.cell {
        Cell::Lstm => forward_lstm(dims, params, sh, x, batch, steps),
        Cell::Gru => forward_gru(dims, params, sh, x, batch, steps),
    }
}

/// Gradients of the loss whose gradient at the outputs is `dy`, into `sh.grads`.
fn backward(
    dims: Dims,
    params: &[Vec<f32>; PARAMS],
    sh: &mut Shard,
    x: &[f32],
    dy: &[f32],
    batch: usize,
    steps: usize,
) {
    for (g, p) in sh.grads.iter_mut().zip(params) {
        g.clear();
        g.resize(p.len(), 0.0);
    }
    match dims.cell {
        Cell::Lstm => backward_lstm(dims, params, sh, x, dy, batch, steps),
        Cell::Gru => backward_gru(dims, params, sh, x, dy, batch, steps),
    }
}

/// The head's outputs from the last hidden states, and its gradients; the gradient at the last
/// hidden states.
fn head(dims: Dims, params: &[Vec<f32>; PARAMS], last: &[f32], batch: usize) -> Vec<f32> {
    let (h, o) = (dims.hidden, dims.outputs);
    let mut y = vec![0.0; batch * o];
    for row in y.chunks_exact_mut(o) {
        row.copy_from_slice(&params[5]);
    }
    matmul(
        batch,
        h,
        o,
        Mat::rows(last, h),
        Mat::rows(&params[4], o),
        &mut y,
        o,
        1.0,
    );
    y
}

/// The head's gradients (`dW = h_T^T dy`, `db` = column sums of `dy`) into `grads`, and the
/// gradient at the last hidden states (`dy W^T`).
fn head_backward(
    dims: Dims,
    params: &[Vec<f32>; PARAMS],
    grads: &mut [Vec<f32>; PARAMS],
    last: &[f32],
    dy: &[f32],
    batch: usize,
) -> Vec<f32> {
    let (h, o) = (dims.hidden, dims.outputs);
    let [.., g_hw, g_hb] = grads;
    matmul(
        h,
        batch,
        o,
        Mat {
            v: last,
            rs: 1,
            cs: h,
        },
        Mat::rows(dy, o),
        g_hw,
        o,
        0.0,
    );
    for row in dy.chunks_exact(o) {
        g_hb.iter_mut().zip(row).for_each(|(g, d)| *g += d);
    }
    let mut dh = vec![0.0; batch * h];
    let wt = Mat {
        v: &params[4],
        rs: 1,
        cs: o,
    };
    matmul(batch, o, h, Mat::rows(dy, o), wt, &mut dh, h, 0.0);
    dh
}

/// The GRU's forward pass (burn's: the reset gate scales the new gate's hidden-side sum, bias
/// included; `h' = (1 - u) n + u h`).
fn forward_gru(
    dims: Dims,
    params: &[Vec<f32>; PARAMS],
    sh: &mut Shard,
    x: &[f32],
    batch: usize,
    steps: usize,
) -> Vec<f32> {
    let Dims {
        inputs: f,
        hidden: h,
        ..
    } = dims;
    let (h3, bh) = (3 * h, batch * h);
    let [w_x, w_h, b_x, b_h, ..] = params;
    sh.gates.resize(steps * batch * h3, 0.0);
    sh.cells.resize(steps * bh, 0.0);
    sh.states.resize((steps + 1) * bh, 0.0);
    sh.states[..bh].fill(0.0);
    let mut zh = vec![0.0; batch * h3];
    for t in 0..steps {
        let zx = &mut sh.gates[t * batch * h3..(t + 1) * batch * h3];
        for row in zx.chunks_exact_mut(h3) {
            row.copy_from_slice(b_x);
        }
        let xt = Mat {
            v: &x[t * f..],
            rs: steps * f,
            cs: 1,
        };
        matmul(batch, f, h3, xt, Mat::rows(w_x, h3), zx, h3, 1.0);
        for row in zh.chunks_exact_mut(h3) {
            row.copy_from_slice(b_h);
        }
        let (prev, next) = sh.states.split_at_mut((t + 1) * bh);
        let hp = &prev[t * bh..];
        matmul(
            batch,
            h,
            h3,
            Mat::rows(hp, h),
            Mat::rows(w_h, h3),
            &mut zh,
            h3,
            1.0,
        );
        let zn = &mut sh.cells[t * bh..(t + 1) * bh];
        let hn = &mut next[..bh];
        for b in 0..batch {
            let (zr, hr) = (&mut zx[b * h3..(b + 1) * h3], &zh[b * h3..(b + 1) * h3]);
            for j in 0..2 * h {
                zr[j] = sigmoid(zr[j] + hr[j]);
            }
            for j in 0..h {
                let k = b * h + j;
                zn[k] = hr[2 * h + j];
                let n = tanh(zr[2 * h + j] + zr[h + j] * zn[k]);
                zr[2 * h + j] = n;
                let u = zr[j];
                hn[k] = (1.0 - u) * n + u * hp[k];
            }
        }
    }
    head(dims, params, &sh.states[steps * bh..], batch)
}

fn backward_gru(
    dims: Dims,
    params: &[Vec<f32>; PARAMS],
    sh: &mut Shard,
    x: &[f32],
    dy: &[f32],
    batch: usize,
    steps: usize,
) {
    let Dims {
        inputs: f,
        hidden: h,
        ..
    } = dims;
    let (h3, bh) = (3 * h, batch * h);
    let w_h = &params[1];
    let last = &sh.states[steps * bh..];
    let mut dh = head_backward(dims, params, &mut sh.grads, last, dy, batch);
    let [g_wx, g_wh, g_bx, g_bh, ..] = &mut sh.grads;
    sh.dz.resize(steps * batch * h3, 0.0);
    sh.dzx.resize(batch * h3, 0.0);
    let mut carry = vec![0.0; bh];
    for t in (0..steps).rev() {
        let z = &sh.gates[t * batch * h3..(t + 1) * batch * h3];
        let zn = &sh.cells[t * bh..(t + 1) * bh];
        let hp = &sh.states[t * bh..(t + 1) * bh];
        let dzh = &mut sh.dz[t * batch * h3..(t + 1) * batch * h3];
        let dzx = &mut sh.dzx;
        for b in 0..batch {
            let zr = &z[b * h3..(b + 1) * h3];
            let (dx, dhr) = (
                &mut dzx[b * h3..(b + 1) * h3],
                &mut dzh[b * h3..(b + 1) * h3],
            );
            for j in 0..h {
                let k = b * h + j;
                let (u, r, n) = (zr[j], zr[h + j], zr[2 * h + j]);
                let d = dh[k];
                let dn = d * (1.0 - u) * (1.0 - n * n);
                let du = d * (hp[k] - n) * u * (1.0 - u);
                let dr = dn * zn[k] * r * (1.0 - r);
                dx[j] = du;
                dx[h + j] = dr;
                dx[2 * h + j] = dn;
                dhr[j] = du;
                dhr[h + j] = dr;
                dhr[2 * h + j] = dn * r;
                carry[k] = d * u;
            }
        }
        // dW_x += x_t^T dzx, the biases' column sums, dh = h' u + dzh W_h^T.
        let xt = Mat {
            v: &x[t * f..],
            rs: 1,
            cs: steps * f,
        };
        matmul(f, batch, h3, xt, Mat::rows(dzx, h3), g_wx, h3, 1.0);
        for (rx, rh) in dzx.chunks_exact(h3).zip(dzh.chunks_exact(h3)) {
            g_bx.iter_mut().zip(rx).for_each(|(g, d)| *g += d);
            g_bh.iter_mut().zip(rh).for_each(|(g, d)| *g += d);
        }
        dh.copy_from_slice(&carry);
        let wht = Mat {
            v: w_h,
            rs: 1,
            cs: h3,
        };
        matmul(batch, h3, h, Mat::rows(dzh, h3), wht, &mut dh, h, 1.0);
    }
    let hp = Mat {
        v: &sh.states[..steps * bh],
        rs: 1,
        cs: h,
    };
    matmul(
        h,
        steps * batch,
        h3,
        hp,
        Mat::rows(&sh.dz, h3),
        g_wh,
        h3,
        0.0,
    );
}

/// The LSTM's forward pass.
fn forward_lstm(
    dims: Dims,
    params: &[Vec<f32>; PARAMS],
    sh: &mut Shard,
    x: &[f32],
    batch: usize,
    steps: usize,
) -> Vec<f32> {
    let Dims {
        inputs: f,
        hidden: h,
        ..
    } = dims;
    let (h4, bh) = (4 * h, batch * h);
    let [w_x, w_h, b_x, b_h, ..] = params;
    // Every value is written before it is read, but the first states.
    for (v, len) in [
        (&mut sh.gates, steps * batch * h4),
        (&mut sh.cells, (steps + 1) * bh),
        (&mut sh.states, (steps + 1) * bh),
        (&mut sh.tanh_cells, steps * bh),
    ] {
        v.resize(len, 0.0);
    }
    sh.cells[..bh].fill(0.0);
    sh.states[..bh].fill(0.0);
    let bias: Vec<f32> = b_x.iter().zip(b_h).map(|(a, b)| a + b).collect();
    for t in 0..steps {
        let z = &mut sh.gates[t * batch * h4..(t + 1) * batch * h4];
        for row in z.chunks_exact_mut(h4) {
            row.copy_from_slice(&bias);
        }
        // Step t of every window: rows `t * f` apart by `steps * f`.
        let xt = Mat {
            v: &x[t * f..],
            rs: steps * f,
            cs: 1,
        };
        matmul(batch, f, h4, xt, Mat::rows(w_x, h4), z, h4, 1.0);
        let (prev, next) = sh.states.split_at_mut((t + 1) * bh);
        let hp = &prev[t * bh..];
        matmul(
            batch,
            h,
            h4,
            Mat::rows(hp, h),
            Mat::rows(w_h, h4),
            z,
            h4,
            1.0,
        );
        let (cprev, cnext) = sh.cells.split_at_mut((t + 1) * bh);
        let cp = &cprev[t * bh..];
        let c = &mut cnext[..bh];
        let tc = &mut sh.tanh_cells[t * bh..(t + 1) * bh];
        let hn = &mut next[..bh];
        for b in 0..batch {
            let zr = &mut z[b * h4..(b + 1) * h4];
            for v in &mut zr[..3 * h] {
                *v = sigmoid(*v);
            }
            for v in &mut zr[3 * h..] {
                *v = tanh(*v);
            }
            for j in 0..h {
                let k = b * h + j;
                let (i, fg, og, g) = (zr[j], zr[h + j], zr[2 * h + j], zr[3 * h + j]);
                c[k] = fg * cp[k] + i * g;
                tc[k] = tanh(c[k]);
                hn[k] = og * tc[k];
            }
        }
    }
    head(dims, params, &sh.states[steps * bh..], batch)
}

fn backward_lstm(
    dims: Dims,
    params: &[Vec<f32>; PARAMS],
    sh: &mut Shard,
    x: &[f32],
    dy: &[f32],
    batch: usize,
    steps: usize,
) {
    let Dims {
        inputs: f,
        hidden: h,
        ..
    } = dims;
    let (h4, bh) = (4 * h, batch * h);
    let w_h = &params[1];
    let last = &sh.states[steps * bh..];
    let mut dh = head_backward(dims, params, &mut sh.grads, last, dy, batch);
    let [g_wx, g_wh, g_bx, g_bh, ..] = &mut sh.grads;
    let mut dc = vec![0.0; bh];
    sh.dz.resize(steps * batch * h4, 0.0);
    for t in (0..steps).rev() {
        let z = &sh.gates[t * batch * h4..(t + 1) * batch * h4];
        let cp = &sh.cells[t * bh..(t + 1) * bh];
        let tc = &sh.tanh_cells[t * bh..(t + 1) * bh];
        let dz = &mut sh.dz[t * batch * h4..(t + 1) * batch * h4];
        for b in 0..batch {
            let zr = &z[b * h4..(b + 1) * h4];
            let dr = &mut dz[b * h4..(b + 1) * h4];
            for j in 0..h {
                let k = b * h + j;
                let (i, fg, og, g) = (zr[j], zr[h + j], zr[2 * h + j], zr[3 * h + j]);
                let d_o = dh[k] * tc[k];
                let d_c = dc[k] + dh[k] * og * (1.0 - tc[k] * tc[k]);
                dr[j] = d_c * g * i * (1.0 - i);
                dr[h + j] = d_c * cp[k] * fg * (1.0 - fg);
                dr[2 * h + j] = d_o * og * (1.0 - og);
                dr[3 * h + j] = d_c * i * (1.0 - g * g);
                dc[k] = d_c * fg;
            }
        }
        // dW_x += x_t^T dz, db += column sums, dh = dz W_h^T.
        let xt = Mat {
            v: &x[t * f..],
            rs: 1,
            cs: steps * f,
        };
        matmul(f, batch, h4, xt, Mat::rows(dz, h4), g_wx, h4, 1.0);
        for row in dz.chunks_exact(h4) {
            g_bx.iter_mut().zip(row).for_each(|(g, d)| *g += d);
        }
        let wht = Mat {
            v: w_h,
            rs: 1,
            cs: h4,
        };
        matmul(batch, h4, h, Mat::rows(dz, h4), wht, &mut dh, h, 0.0);
    }
    // dW_h = sum over steps of h_{t-1}^T dz_t: one product over all steps' rows at once.
    let hp = Mat {
        v: &sh.states[..steps * bh],
        rs: 1,
        cs: h,
    };
    matmul(
        h,
        steps * batch,
        h4,
        hp,
        Mat::rows(&sh.dz, h4),
        g_wh,
        h4,
        0.0,
    );
    g_bh.copy_from_slice(g_bx);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rnn::RnnConfig;
    use burn::module::Module;
    use burn::optim::{AdamConfig, GradientsParams};
    use burn::tensor::Distribution;

    #[test]
    fn steps_on_the_host_move_the_weights_as_burns_do() {
        // Small batches run whole; 40 windows are split between the pool's threads (3 parts
        // with 3 threads) and their gradients summed.
        for cell in [Cell::Lstm, Cell::Gru] {
            for (threads, features, hidden, window, outputs, batch) in [
                (1, 1, 16, 10, 1, 8),
                (1, 3, 8, 6, 4, 5),
                (3, 1, 16, 10, 2, 40),
                (2, 3, 8, 6, 1, 40),
            ] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| compare(cell, features, hidden, window, outputs, batch));
            }
        }
    }

    fn compare(
        cell: Cell,
        features: usize,
        hidden: usize,
        window: usize,
        outputs: usize,
        batch: usize,
    ) {
        let ad = Device::flex().autodiff();
        let cfg = RnnConfig {
            cell,
            hidden,
            window,
            max_horizon: outputs,
            period: if features == 3 { 24 } else { 0 },
            ..RnnConfig::default()
        };
        assert_eq!(cfg.features(), features);
        let mut net = RnnNet::new(&cfg, &ad);
        let valid = net.valid();
        let mut host = HostTrainer::of(&valid).unwrap();
        let mut optim = AdamConfig::new().init();
        for step in 0..4 {
            let x = Tensor::<3>::random(
                [batch, window, features],
                Distribution::Normal(0.0, 1.0),
                &ad,
            );
            let t = Tensor::<2>::random([batch, outputs], Distribution::Normal(0.0, 1.0), &ad);
            let xv: Vec<f32> = x.clone().into_data().try_into_vec().unwrap();
            let tv: Vec<f32> = t.clone().into_data().try_into_vec().unwrap();
            let loss = (net.forward(x) - t).powi_scalar(2).mean();
            let want: f32 = loss.clone().into_scalar();
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(1e-2, net, grads);
            let got = host.step(&xv, &tv, batch, 1e-2).unwrap();
            let what = format!("{cell:?}, batch {batch}, step {step}");
            assert!(
                (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                "{what}: loss {got} vs {want}"
            );
            let valid = net.valid();
            let theirs = HostTrainer::of(&valid).unwrap();
            for (k, (a, b)) in host.params.iter().zip(&theirs.params).enumerate() {
                let worst = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0f32, f32::max);
                assert!(worst <= 1e-4, "{what}, parameter {k}: off by {worst}");
            }
        }
        // The outputs of a forward pass are the module's; written back, the module holds the
        // host weights.
        let x = Tensor::<3>::random([3, window, features], Distribution::Default, &ad);
        let xv: Vec<f32> = x.clone().into_data().try_into_vec().unwrap();
        let want: Vec<f32> = net
            .valid()
            .forward(x.inner())
            .into_data()
            .try_into_vec()
            .unwrap();
        let got = host.outputs(&xv, 3);
        for (a, b) in got.iter().zip(&want) {
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                "{got:?} vs {want:?}"
            );
        }
        let mut back = net.valid();
        host.write(&mut back, &Device::flex());
        let again = HostTrainer::of(&back).unwrap();
        assert_eq!(again.params, host.params);
        // Sizes that do not fit take no step.
        let before = host.params.clone();
        assert_eq!(host.step(&xv, &[0.0; 1], 3, 1e-2), None);
        assert_eq!(host.step(&xv[1..], &vec![0.0; 3 * outputs], 3, 1e-2), None);
        assert_eq!(host.step(&[], &[], 0, 1e-2), None);
        assert_eq!(host.params, before);
    }

    #[test]
    fn the_exponential_is_within_two_units_in_the_last_place() {
        for i in -8700..=8830 {
            let x = i as f32 * 0.01;
            let (a, b) = (exp(x), x.exp());
            assert!((a - b).abs() <= 2.5 * f32::EPSILON * b, "{x}: {a} vs {b}");
        }
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(-1e9) < 1e-37 && exp(1e9).is_finite());
    }
}
