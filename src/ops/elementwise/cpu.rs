//! CPU elementwise arithmetic and the bias broadcast and its gradient.

use crate::cpu::fastmath::with_avx2;
use crate::cpu::ELEMS_PER_TASK;
use crate::float::Float;
use rayon::prelude::*;

/// out ← f(a, b) elementwise, in parallel.
pub fn zip_map<T: Float>(a: &[T], b: &[T], out: &mut [T], f: impl Fn(T, T) -> T + Sync) {
    assert!(a.len() == b.len() && a.len() == out.len());
    out.par_chunks_mut(ELEMS_PER_TASK)
        .zip(
            a.par_chunks(ELEMS_PER_TASK)
                .zip(b.par_chunks(ELEMS_PER_TASK)),
        )
        .for_each(|(o, (a, b))| {
            with_avx2(|| {
                for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) {
                    *o = f(x, y);
                }
            })
        });
}

/// out ← f(a) elementwise, in parallel.
pub fn map<T: Float>(a: &[T], out: &mut [T], f: impl Fn(T) -> T + Sync) {
    assert_eq!(a.len(), out.len());
    out.par_chunks_mut(ELEMS_PER_TASK)
        .zip(a.par_chunks(ELEMS_PER_TASK))
        .for_each(|(o, a)| {
            with_avx2(|| {
                for (o, &x) in o.iter_mut().zip(a) {
                    *o = f(x);
                }
            })
        });
}

/// acc += x elementwise, in parallel.
pub fn add_assign<T: Float>(acc: &mut [T], x: &[T]) {
    assert_eq!(acc.len(), x.len());
    acc.par_chunks_mut(ELEMS_PER_TASK)
        .zip(x.par_chunks(ELEMS_PER_TASK))
        .for_each(|(a, x)| a.iter_mut().zip(x).for_each(|(a, &v)| *a += v));
}

/// y [rows, c] += bias [c] on every row.
pub fn add_bias_inplace<T: Float>(y: &mut [T], bias: &[T]) {
    let c = bias.len();
    assert!(c > 0 && y.len().is_multiple_of(c));
    let rows_per_task = (ELEMS_PER_TASK / c).max(1);
    y.par_chunks_mut(rows_per_task * c).for_each(|chunk| {
        for row in chunk.chunks_exact_mut(c) {
            for (v, &b) in row.iter_mut().zip(bias) {
                *v += b;
            }
        }
    });
}

/// y ← x + bias broadcast over the last axis (x is [rows, c]).
pub fn add_bias_forward<T: Float>(x: &[T], bias: &[T], y: &mut [T]) {
    y.copy_from_slice(x);
    add_bias_inplace(y, bias);
}

/// dbias ← column sums of g [rows, c] (the gradient to x is g itself).
pub fn add_bias_backward<T: Float>(g: &[T], c: usize, dbias: &mut [T]) {
    crate::cpu::sum_rows(g, g.len() / c.max(1), c, dbias);
}
