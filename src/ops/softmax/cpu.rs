//! CPU kernels of softmax over the last axis of a [rows, dim] matrix, and the
//! row kernels attention runs on its scores.

use crate::cpu::fastmath::{as_f32_mut, avx2_kernel, exp_f32};
use crate::cpu::lanes::{fold_lanes, sum_zip_lanes};
use crate::float::Float;
use rayon::prelude::*;

/// Rows per rayon task.
const ROWS_PER_TASK: usize = 64;

/// Rows whose softmax runs pass by pass together (max, exp, sum, scale): the
/// exps of different rows then overlap in the pipeline, where a row at a time
/// (16 keys) waited on its own max and sum.
const ROW_BLOCK: usize = 16;

/// row ← exp(row − max), with the vectorised exp for f32.
#[inline(always)]
fn exp_shifted<T: Float>(row: &mut [T], max: T) {
    match as_f32_mut(row) {
        Some(row) => {
            let max = max.to_f64() as f32;
            row.iter_mut().for_each(|v| *v = exp_f32(*v - max));
        }
        None => row.iter_mut().for_each(|v| *v = (*v - max).exp()),
    }
}

avx2_kernel! {
/// Softmax of each `dim`-wide row of `rows` in place, of the scores scaled by
/// `scale` (attention's 1/√d), with the keys where `key_mask` is false set to
/// -inf first. Each row subtracts its max for stability; a row of only -inf
/// (every key masked) becomes all zeros rather than NaN.
pub(crate) fn softmax_rows<T: Float>(dim: usize, rows: &mut [T], scale: T, key_mask: Option<&[bool]>) {
    let neg_inf = T::from_f64(f64::NEG_INFINITY);
    for block in rows.chunks_mut(dim * ROW_BLOCK) {
        for row in block.chunks_exact_mut(dim) {
            match key_mask {
                Some(mask) => row.iter_mut().zip(mask).for_each(|(s, &keep)| {
                    *s = if keep { *s * scale } else { neg_inf };
                }),
                None if scale != T::ONE => row.iter_mut().for_each(|s| *s *= scale),
                None => {}
            }
        }
        let mut max = [T::ZERO; ROW_BLOCK];
        for (m, row) in max.iter_mut().zip(block.chunks_exact(dim)) {
            *m = fold_lanes(row, neg_inf, |m, v| if v > m { v } else { m });
        }
        for (row, &m) in block.chunks_exact_mut(dim).zip(&max) {
            if m.is_finite() {
                exp_shifted(row, m);
            } else {
                row.fill(T::ZERO);
            }
        }
        for (row, &m) in block.chunks_exact_mut(dim).zip(&max) {
            if m.is_finite() {
                let inv = T::ONE / fold_lanes(row, T::ZERO, |s, v| s + v);
                row.iter_mut().for_each(|v| *v *= inv);
            }
        }
    }
}
}

avx2_kernel! {
/// dx = scale · y ⊙ (g − Σ g⊙y) for each `dim`-wide row (scale 1 for a plain
/// softmax; attention's 1/√d).
pub(crate) fn softmax_backward_rows<T: Float>(dim: usize, y: &[T], g: &[T], dx: &mut [T], scale: T) {
    for ((y, g), dx) in y.chunks_exact(dim).zip(g.chunks_exact(dim)).zip(dx.chunks_exact_mut(dim)) {
        let dot = sum_zip_lanes([y, g], |[y, g]| y * g);
        for ((d, &y), &g) in dx.iter_mut().zip(y).zip(g) {
            *d = y * (g - dot) * scale;
        }
    }
}
}

pub fn softmax_forward<T: Float>(dim: usize, x: &[T], y: &mut [T]) {
    assert!(dim > 0 && x.len() == y.len() && x.len().is_multiple_of(dim));
    y.par_chunks_mut(dim * ROWS_PER_TASK)
        .zip(x.par_chunks(dim * ROWS_PER_TASK))
        .for_each(|(yc, xc)| {
            yc.copy_from_slice(xc);
            softmax_rows(dim, yc, T::ONE, None);
        });
}

/// dx from the saved output y and the output gradient g.
pub fn softmax_backward<T: Float>(dim: usize, y: &[T], g: &[T], dx: &mut [T]) {
    assert!(dim > 0 && y.len() == g.len() && y.len() == dx.len());
    let step = dim * ROWS_PER_TASK;
    dx.par_chunks_mut(step)
        .zip(y.par_chunks(step).zip(g.par_chunks(step)))
        .for_each(|(dc, (yc, gc))| softmax_backward_rows(dim, yc, gc, dc, T::ONE));
}
