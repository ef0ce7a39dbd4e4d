//! Softmax over the last axis of a [rows, dim] matrix.

use super::fastmath::{as_f32_mut, exp_f32, with_avx2};
use super::lanes::fold_lanes;
use crate::float::Float;
use rayon::prelude::*;

/// Rows per rayon task.
const ROWS_PER_TASK: usize = 64;

/// One row in place: subtract the max for stability. A row of only -inf (every
/// key masked) becomes all zeros rather than NaN.
#[inline]
pub(crate) fn softmax_row_inplace<T: Float>(row: &mut [T]) {
    if let Some(row) = as_f32_mut(row) {
        return softmax_row_f32(row);
    }
    let max = row
        .iter()
        .fold(T::from_f64(f64::NEG_INFINITY), |m, &v| m.max(v));
    if !max.is_finite() {
        row.fill(T::ZERO);
        return;
    }
    let mut sum = T::ZERO;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = T::ONE / sum;
    row.iter_mut().for_each(|v| *v *= inv);
}

/// The f32 row with the vectorised exp (max and sum in separate passes, each
/// in lanes, so each loop vectorises).
#[inline]
fn softmax_row_f32(row: &mut [f32]) {
    let max = fold_lanes(row, f32::NEG_INFINITY, |m, v| if v > m { v } else { m });
    if !max.is_finite() {
        row.fill(0.0);
        return;
    }
    row.iter_mut().for_each(|v| *v = exp_f32(*v - max));
    let sum = fold_lanes(row, 0.0, |s, v| s + v);
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= inv);
}

/// dx = y ⊙ (g − Σ g⊙y) for one row.
#[inline]
pub(crate) fn softmax_row_backward<T: Float>(y: &[T], g: &[T], dx: &mut [T]) {
    for (d, (&y, &g)) in dx.iter_mut().zip(y.iter().zip(g)) {
        *d = y * g;
    }
    let dot = fold_lanes(dx, T::ZERO, |s, v| s + v);
    for ((d, &y), &g) in dx.iter_mut().zip(y).zip(g) {
        *d = y * (g - dot);
    }
}

pub fn softmax_forward<T: Float>(dim: usize, x: &[T], y: &mut [T]) {
    assert!(dim > 0 && x.len() == y.len() && x.len() % dim == 0);
    y.par_chunks_mut(dim * ROWS_PER_TASK)
        .zip(x.par_chunks(dim * ROWS_PER_TASK))
        .for_each(|(yc, xc)| {
            yc.copy_from_slice(xc);
            with_avx2(|| yc.chunks_exact_mut(dim).for_each(softmax_row_inplace));
        });
}

/// dx from the saved output y and the output gradient g.
pub fn softmax_backward<T: Float>(dim: usize, y: &[T], g: &[T], dx: &mut [T]) {
    assert!(dim > 0 && y.len() == g.len() && y.len() == dx.len());
    let step = dim * ROWS_PER_TASK;
    dx.par_chunks_mut(step)
        .zip(y.par_chunks(step).zip(g.par_chunks(step)))
        .for_each(|(dc, (yc, gc))| {
            for ((d, y), g) in dc
                .chunks_exact_mut(dim)
                .zip(yc.chunks_exact(dim))
                .zip(gc.chunks_exact(dim))
            {
                softmax_row_backward(y, g, d);
            }
        });
}
