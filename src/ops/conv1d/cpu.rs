//! 1-D convolution over (batch, channels, length), stride 1, as one GEMM per
//! fixed chunk of samples on an im2col buffer:
//! out [c_out, chunk·l_out] = W [c_out, c_in·k] · cols [c_in·k, chunk·l_out],
//! with cols[(ci·k + j), (b·l_out + t)] = x[b, ci, t + j − pad_left] (0 outside).

use super::Conv1dDims;
use crate::cpu::gemm::gemm;
use crate::cpu::reduce_in_order;
use crate::float::Float;
use rayon::prelude::*;

/// Samples per GEMM. Fixed (not derived from the thread count) because the
/// weight gradient is summed per chunk, then over chunks in order.
pub const CONV_CHUNK: usize = 8;

/// For tap j: outputs `t0..t1` read inputs from `src` on (the others read
/// padding zeros); the range is empty when the tap sees padding only.
fn tap_range(d: &Conv1dDims, j: usize) -> (usize, usize, usize) {
    let shift = j as isize - d.pad_left() as isize;
    let t0 = (-shift).clamp(0, d.out_len() as isize) as usize;
    let t1 = (d.len as isize - shift).clamp(t0 as isize, d.out_len() as isize) as usize;
    let src = if t1 > t0 {
        (t0 as isize + shift) as usize
    } else {
        0
    };
    (src, t0, t1)
}

/// Fills cols [c_in·k, n·l_out] from the n samples of x_chunk: each row
/// segment is a shifted copy of one input row, zeros where it reads padding.
fn im2col<T: Float>(d: &Conv1dDims, x_chunk: &[T], n: usize, cols: &mut [T]) {
    let lo = d.out_len();
    let width = n * lo;
    for ci in 0..d.c_in {
        for j in 0..d.kernel {
            let (src, t0, t1) = tap_range(d, j);
            let row = &mut cols[(ci * d.kernel + j) * width..][..width];
            for (b, dst) in row.chunks_exact_mut(lo.max(1)).enumerate() {
                let xs = &x_chunk[(b * d.c_in + ci) * d.len..][..d.len];
                dst[..t0].fill(T::ZERO);
                dst[t1..].fill(T::ZERO);
                dst[t0..t1].copy_from_slice(&xs[src..src + (t1 - t0)]);
            }
        }
    }
}

/// dx_chunk ← Σ over taps of dcols (the adjoint of im2col), overwritten.
fn col2im<T: Float>(d: &Conv1dDims, dcols: &[T], n: usize, dx_chunk: &mut [T]) {
    let lo = d.out_len();
    let width = n * lo;
    dx_chunk.fill(T::ZERO);
    for ci in 0..d.c_in {
        for j in 0..d.kernel {
            let (src, t0, t1) = tap_range(d, j);
            let row = &dcols[(ci * d.kernel + j) * width..][..width];
            for (b, seg) in row.chunks_exact(lo.max(1)).enumerate() {
                let dxs = &mut dx_chunk[(b * d.c_in + ci) * d.len..][..d.len];
                for (o, &v) in dxs[src..src + (t1 - t0)].iter_mut().zip(&seg[t0..t1]) {
                    *o += v;
                }
            }
        }
    }
}

/// y ← conv1d(x, w) + bias.
pub fn conv1d_forward<T: Float>(d: &Conv1dDims, x: &[T], w: &[T], bias: Option<&[T]>, y: &mut [T]) {
    assert_eq!(
        (x.len(), w.len(), y.len()),
        (d.x_len(), d.w_len(), d.y_len())
    );
    let (lo, ck) = (d.out_len(), d.c_in * d.kernel);
    let (x_per, y_per) = (d.c_in * d.len, d.c_out * lo);
    if y.is_empty() {
        return;
    }
    y.par_chunks_mut(CONV_CHUNK * y_per)
        .zip(x.par_chunks(CONV_CHUNK * x_per))
        .for_each(|(yc, xc)| {
            let n = yc.len() / y_per;
            let mut cols = vec![T::ZERO; ck * n * lo];
            let mut out = vec![T::ZERO; d.c_out * n * lo];
            im2col(d, xc, n, &mut cols);
            gemm(
                d.c_out,
                ck,
                n * lo,
                w,
                false,
                &cols,
                false,
                &mut out,
                false,
                T::ZERO,
            );
            for co in 0..d.c_out {
                let b_co = bias.map_or(T::ZERO, |b| b[co]);
                for b in 0..n {
                    let src = &out[co * n * lo + b * lo..][..lo];
                    for (o, &v) in yc[b * y_per + co * lo..][..lo].iter_mut().zip(src) {
                        *o = v + b_co;
                    }
                }
            }
        });
}

/// dx, dw and dbias (all overwritten) from x, w and the output gradient g;
/// without `dx` (an input nobody wants the gradient of) its GEMM is skipped.
/// im2col is recomputed rather than saved.
#[allow(clippy::too_many_arguments)]
pub fn conv1d_backward<T: Float>(
    d: &Conv1dDims,
    x: &[T],
    w: &[T],
    g: &[T],
    dx: Option<&mut [T]>,
    dw: &mut [T],
    dbias: Option<&mut [T]>,
) {
    assert_eq!(
        (x.len(), w.len(), g.len()),
        (d.x_len(), d.w_len(), d.y_len())
    );
    assert_eq!(dw.len(), d.w_len());
    let (lo, ck) = (d.out_len(), d.c_in * d.kernel);
    let (x_per, y_per) = (d.c_in * d.len, d.c_out * lo);
    let w_len = d.w_len();
    let dx_chunks: Vec<Option<&mut [T]>> = match dx {
        Some(dx) => {
            assert_eq!(dx.len(), d.x_len());
            dx.chunks_mut((CONV_CHUNK * x_per).max(1))
                .map(Some)
                .collect()
        }
        None => (0..d.batch.div_ceil(CONV_CHUNK)).map(|_| None).collect(),
    };
    // Each chunk returns its partial [dw | dbias]; summed below in chunk order.
    let partials: Vec<Vec<T>> = dx_chunks
        .into_par_iter()
        .zip(x.par_chunks((CONV_CHUNK * x_per).max(1)))
        .zip(g.par_chunks((CONV_CHUNK * y_per).max(1)))
        .map(|((dxc, xc), gc)| {
            let n = gc.len() / y_per.max(1);
            let width = n * lo;
            let mut cols = vec![T::ZERO; ck * width];
            im2col(d, xc, n, &mut cols);
            // The chunk's output gradient as [c_out, n·l_out].
            let mut gm = vec![T::ZERO; d.c_out * width];
            for co in 0..d.c_out {
                for b in 0..n {
                    gm[co * width + b * lo..][..lo]
                        .copy_from_slice(&gc[b * y_per + co * lo..][..lo]);
                }
            }
            let mut acc = vec![T::ZERO; w_len + d.c_out];
            let (acc_w, acc_b) = acc.split_at_mut(w_len);
            gemm(
                d.c_out,
                width,
                ck,
                &gm,
                false,
                &cols,
                true,
                acc_w,
                false,
                T::ZERO,
            );
            for (s, row) in acc_b.iter_mut().zip(gm.chunks_exact(width.max(1))) {
                *s = row.iter().copied().sum();
            }
            let Some(dxc) = dxc else { return acc };
            // cols is reused as dcols = Wᵀ · gm.
            gemm(
                ck,
                d.c_out,
                width,
                w,
                true,
                &gm,
                false,
                &mut cols,
                false,
                T::ZERO,
            );
            col2im(d, &cols, n, dxc);
            acc
        })
        .collect();
    let mut both = vec![T::ZERO; w_len + d.c_out];
    reduce_in_order(&partials, &mut both);
    dw.copy_from_slice(&both[..w_len]);
    if let Some(dbias) = dbias {
        dbias.copy_from_slice(&both[w_len..]);
    }
}
