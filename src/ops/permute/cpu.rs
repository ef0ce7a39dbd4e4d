//! CPU permute of up to four axes.

use crate::cpu::ELEMS_PER_TASK;
use crate::float::Float;
use rayon::prelude::*;

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
