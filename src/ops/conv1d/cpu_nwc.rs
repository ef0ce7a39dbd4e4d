//! 1-D convolution over channels-last samples: x [batch, len, c_in] →
//! y [batch, l_out, c_out], the layout of the transformer after it, so the
//! model needs no permutes around its convolutions. Weights keep PyTorch's
//! [c_out, c_in, kernel] (see [`Conv1dDims`]).
//!
//! One GEMM over all the batch's time steps on an im2col buffer:
//! y [batch·l_out, c_out] = cols [batch·l_out, k·c_in] · W' [k·c_in, c_out],
//! with cols[(b, t), (j, ci)] = x[b, t + j − pad_left, ci] (0 outside) and
//! W'[(j, ci), co] = w[co, ci, j]. Channels-last, a row of cols is `kernel`
//! consecutive rows of x: away from the edges it is one contiguous copy.
//!
//! Reproducibility: each weight-gradient element is one GEMM dot product over
//! all rows in order, so it does not depend on the thread count.

use super::Conv1dDims;
use crate::cpu::gemm::gemm;
use crate::cpu::sum_rows;
use crate::float::Float;
use crate::ops::matmul::cpu::{product_with_epilogue, GemmEpilogue};
use rayon::prelude::*;

/// Each rows×cols block of `src` (blocks one after another), transposed into
/// `dst`. Weights [c_out, c_in, k] become [c_out, k, c_in] (row co of that is
/// column co of W'), and back.
fn transpose_blocks<T: Float>(rows: usize, cols: usize, src: &[T], dst: &mut [T]) {
    let block = (rows * cols).max(1);
    for (d, s) in dst.chunks_exact_mut(block).zip(src.chunks_exact(block)) {
        for r in 0..rows {
            for c in 0..cols {
                d[c * rows + r] = s[r * cols + c];
            }
        }
    }
}

/// w [c_out, c_in, k] as [c_out, k, c_in].
pub(crate) fn taps_major<T: Float>(d: &Conv1dDims, w: &[T]) -> Vec<T> {
    let mut out = vec![T::ZERO; w.len()];
    transpose_blocks(d.c_in, d.kernel, w, &mut out);
    out
}

/// The input time step that output step t reads at tap 0 (may lie before 0).
fn first_tap(d: &Conv1dDims, t: usize) -> isize {
    t as isize - d.pad_left() as isize
}

/// cols [batch·l_out, k·c_in] from x (every element written).
fn im2col<T: Float>(d: &Conv1dDims, x: &[T], cols: &mut [T]) {
    let (lo, width) = (d.out_len(), d.kernel * d.c_in);
    cols.par_chunks_mut((lo * width).max(1))
        .zip(x.par_chunks((d.len * d.c_in).max(1)))
        .for_each(|(sample_cols, xs)| {
            for (t, row) in sample_cols.chunks_exact_mut(width.max(1)).enumerate() {
                let s0 = first_tap(d, t);
                if s0 >= 0 && s0 as usize + d.kernel <= d.len {
                    let s0 = s0 as usize;
                    row.copy_from_slice(&xs[s0 * d.c_in..(s0 + d.kernel) * d.c_in]);
                    continue;
                }
                for (j, tap) in row.chunks_exact_mut(d.c_in).enumerate() {
                    match usize::try_from(s0 + j as isize) {
                        Ok(s) if s < d.len => tap.copy_from_slice(&xs[s * d.c_in..][..d.c_in]),
                        _ => tap.fill(T::ZERO),
                    }
                }
            }
        });
}

/// dx ← the adjoint of im2col applied to dcols (overwritten).
fn col2im<T: Float>(d: &Conv1dDims, dcols: &[T], dx: &mut [T]) {
    let (lo, width) = (d.out_len(), d.kernel * d.c_in);
    dx.par_chunks_mut((d.len * d.c_in).max(1))
        .zip(dcols.par_chunks((lo * width).max(1)))
        .for_each(|(dxs, sample_cols)| {
            dxs.fill(T::ZERO);
            for (t, row) in sample_cols.chunks_exact(width.max(1)).enumerate() {
                for (j, tap) in row.chunks_exact(d.c_in).enumerate() {
                    if let Ok(s) = usize::try_from(first_tap(d, t) + j as isize) {
                        if s < d.len {
                            let dst = &mut dxs[s * d.c_in..][..d.c_in];
                            dst.iter_mut().zip(tap).for_each(|(o, &v)| *o += v);
                        }
                    }
                }
            }
        });
}

/// y [batch, l_out, c_out] ← conv1d(x [batch, len, c_in], w) + bias.
pub fn conv1d_forward_nwc<T: Float>(
    d: &Conv1dDims,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
) {
    assert_eq!(w.len(), d.w_len());
    let ep = GemmEpilogue {
        bias,
        ..Default::default()
    };
    conv1d_forward_taps(d, x, &taps_major(d, w), ep, y, &mut Vec::new());
}

/// [`conv1d_forward_nwc`] with the weights already in [`taps_major`] order and
/// the im2col buffer `cols` supplied (grown as needed), so a caller running
/// many batches converts the weights and allocates the buffer once.
pub(crate) fn conv1d_forward_taps<T: Float>(
    d: &Conv1dDims,
    x: &[T],
    w_taps: &[T],
    ep: GemmEpilogue<'_, T>,
    y: &mut [T],
    cols: &mut Vec<T>,
) {
    assert_eq!(
        (x.len(), w_taps.len(), y.len()),
        (d.x_len(), d.w_len(), d.y_len())
    );
    let (rows, width) = (d.batch * d.out_len(), d.kernel * d.c_in);
    cols.resize(rows * width, T::ZERO);
    im2col(d, x, cols);
    product_with_epilogue(rows, width, d.c_out, cols, w_taps, ep, y);
}

/// dx, dw and dbias (all overwritten) from x, w and the output gradient
/// g [batch, l_out, c_out]; without `dx` its GEMM is skipped.
#[allow(clippy::too_many_arguments)]
pub fn conv1d_backward_nwc<T: Float>(
    d: &Conv1dDims,
    x: &[T],
    w: &[T],
    g: &[T],
    dx: Option<&mut [T]>,
    dw: &mut [T],
    dbias: Option<&mut [T]>,
) {
    assert_eq!(
        (x.len(), w.len(), g.len(), dw.len()),
        (d.x_len(), d.w_len(), d.y_len(), d.w_len())
    );
    let (rows, width) = (d.batch * d.out_len(), d.kernel * d.c_in);
    let mut cols = vec![T::ZERO; rows * width];
    im2col(d, x, &mut cols);
    // dW' = gᵀ · cols, as [c_out, k·c_in].
    let mut dwt = vec![T::ZERO; d.w_len()];
    gemm(
        d.c_out,
        rows,
        width,
        g,
        true,
        &cols,
        false,
        &mut dwt,
        false,
        T::ZERO,
    );
    transpose_blocks(d.kernel, d.c_in, &dwt, dw);
    if let Some(dbias) = dbias {
        sum_rows(g, rows, d.c_out, dbias);
    }
    if let Some(dx) = dx {
        assert_eq!(dx.len(), d.x_len());
        // cols is reused as dcols = g · W'ᵀ.
        let wt = taps_major(d, w);
        gemm(
            rows,
            d.c_out,
            width,
            g,
            false,
            &wt,
            false,
            &mut cols,
            false,
            T::ZERO,
        );
        col2im(d, &cols, dx);
    }
}
