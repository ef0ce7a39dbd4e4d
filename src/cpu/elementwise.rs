//! Elementwise arithmetic, bias broadcast, mean pooling and axis permutation.

use super::fastmath::with_avx2;
use super::ELEMS_PER_TASK;
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
    assert!(c > 0 && y.len() % c == 0);
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
    super::sum_rows(g, g.len() / c.max(1), c, dbias);
}

/// The shape of x after `permute(perm)`: out axis i is input axis perm[i].
pub fn permuted_shape(shape: &[usize], perm: &[usize]) -> Vec<usize> {
    perm.iter().map(|&p| shape[p]).collect()
}

/// The permutation that undoes `perm`.
pub fn inverse_permutation(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    inv
}

/// y ← x with axes reordered: y's axis i is x's axis perm[i] (up to 4 axes).
/// `perm` must be a permutation of 0..shape.len().
pub fn permute<T: Float>(shape: &[usize], perm: &[usize], x: &[T], y: &mut [T]) {
    assert!(shape.len() == perm.len() && shape.len() <= 4);
    assert_eq!(x.len(), y.len());
    // Pad to 4 axes with leading size-1 axes so one loop nest serves every rank.
    let pad = 4 - shape.len();
    let mut dims = [1usize; 4];
    let mut in_strides = [0usize; 4];
    let mut stride = 1;
    for a in (0..shape.len()).rev() {
        in_strides[a + pad] = stride;
        stride *= shape[a];
        dims[a + pad] = shape[a];
    }
    let mut out_dims = [1usize; 4];
    let mut src_stride = [0usize; 4];
    for (i, &p) in perm.iter().enumerate() {
        out_dims[i + pad] = dims[p + pad];
        src_stride[i + pad] = in_strides[p + pad];
    }
    let inner = out_dims[3];
    let plane = out_dims[2] * inner;
    if plane == 0 {
        return;
    }
    // Several (small) planes per task, so that a task is worth handing out.
    let planes_per_task = (ELEMS_PER_TASK / plane).max(1);
    y.par_chunks_mut(plane * planes_per_task)
        .enumerate()
        .for_each(|(task, planes)| {
            for (j, yp) in planes.chunks_mut(plane).enumerate() {
                let i01 = task * planes_per_task + j;
                let (i0, i1) = (i01 / out_dims[1], i01 % out_dims[1]);
                for (i2, row) in yp.chunks_mut(inner).enumerate() {
                    let base = i0 * src_stride[0] + i1 * src_stride[1] + i2 * src_stride[2];
                    if src_stride[3] == 1 {
                        // The innermost axis stays innermost: a contiguous copy.
                        row.copy_from_slice(&x[base..base + inner]);
                    } else {
                        for (i3, v) in row.iter_mut().enumerate() {
                            *v = x[base + i3 * src_stride[3]];
                        }
                    }
                }
            }
        });
}
