//! Dense products on plain slices, for the host kernels (`hgt_host`, `rnn_train`): row-major or
//! strided operands through nalgebra's views over matrixmultiply's blocked kernels, and a plain loop
//! for the small products nalgebra would not hand over.

use nalgebra::{DMatrixView, DMatrixViewMut};

/// A matrix operand: values and (row, column) strides.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub(crate) v: &'a [f32],
    pub(crate) rs: usize,
    pub(crate) cs: usize,
}

impl<'a> Mat<'a> {
    /// Row-major with row stride `ld`.
    pub(crate) fn rows(v: &'a [f32], ld: usize) -> Self {
        Mat { v, rs: ld, cs: 1 }
    }
}

/// `y = a b + beta y` for `a` `[m, k]`, `b` `[k, n]`, `y` `[m, n]` with row stride `ldy`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    m: usize,
    k: usize,
    n: usize,
    a: Mat,
    b: Mat,
    y: &mut [f32],
    ldy: usize,
    beta: f32,
) {
    if m == 0 || n == 0 {
        return;
    }
    // nalgebra hands products with every side above 5 to matrixmultiply; its own loop for
    // smaller ones assumes column-major views, so those are summed here.
    if m <= 5 || n <= 5 || k <= 5 {
        small_matmul(m, k, n, a, b, y, ldy, beta);
        return;
    }
    let a = DMatrixView::from_slice_with_strides(a.v, m, k, a.rs, a.cs);
    let b = DMatrixView::from_slice_with_strides(b.v, k, n, b.rs, b.cs);
    let len = (m - 1) * ldy + n;
    let mut y = DMatrixViewMut::from_slice_with_strides_mut(&mut y[..len], m, n, ldy, 1);
    y.gemm(1.0, &a, &b, beta);
}

/// [`matmul`] for small products, written so that the inner loops run over contiguous rows.
#[allow(clippy::too_many_arguments)]
fn small_matmul(
    m: usize,
    k: usize,
    n: usize,
    a: Mat,
    b: Mat,
    y: &mut [f32],
    ldy: usize,
    beta: f32,
) {
    for i in 0..m {
        let yr = &mut y[i * ldy..i * ldy + n];
        if beta == 0.0 {
            yr.fill(0.0);
        } else if beta != 1.0 {
            yr.iter_mut().for_each(|v| *v *= beta);
        }
        if b.cs == 1 {
            // y_i += a_il b_l, row by row of b.
            for l in 0..k {
                let s = a.v[i * a.rs + l * a.cs];
                let br = &b.v[l * b.rs..l * b.rs + n];
                yr.iter_mut().zip(br).for_each(|(o, x)| *o += s * x);
            }
        } else if b.rs == 1 && a.cs == 1 {
            // y_ij += a_i . (column j of b, contiguous).
            let ar = &a.v[i * a.rs..i * a.rs + k];
            for (j, o) in yr.iter_mut().enumerate() {
                *o += dot(ar, &b.v[j * b.cs..j * b.cs + k]);
            }
        } else {
            for (j, o) in yr.iter_mut().enumerate() {
                *o += (0..k)
                    .map(|l| a.v[i * a.rs + l * a.cs] * b.v[l * b.rs + j * b.cs])
                    .sum::<f32>();
            }
        }
    }
}

/// `a . b` with eight running sums (so the compiler can keep them in vector registers).
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}
