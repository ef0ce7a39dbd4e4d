//! Layer normalisation over the last axis, with affine weight and bias.
//! The forward saves each row's mean and reciprocal standard deviation (as
//! llm.c), so the backward never recomputes the statistics.

use super::{partial_sums, reduce_in_order};
use crate::float::Float;
use rayon::prelude::*;

/// x, y: [rows, dim]; weight, bias: [dim]; mean, rstd: [rows].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerNormDims {
    pub rows: usize,
    pub dim: usize,
    pub eps: f64,
}

const ROWS_PER_TASK: usize = 32;

/// y = (x − mean) · rstd · weight + bias, rstd = 1/√(var + eps) (biased variance).
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_forward<T: Float>(
    d: &LayerNormDims,
    x: &[T],
    weight: &[T],
    bias: &[T],
    y: &mut [T],
    mean: &mut [T],
    rstd: &mut [T],
) {
    let LayerNormDims { rows, dim, eps } = *d;
    assert_eq!((x.len(), y.len()), (rows * dim, rows * dim));
    assert_eq!((weight.len(), bias.len()), (dim, dim));
    assert_eq!((mean.len(), rstd.len()), (rows, rows));
    let inv_dim = T::ONE / T::from_usize(dim);
    let eps = T::from_f64(eps);
    y.par_chunks_mut(dim * ROWS_PER_TASK)
        .zip(x.par_chunks(dim * ROWS_PER_TASK))
        .zip(
            mean.par_chunks_mut(ROWS_PER_TASK)
                .zip(rstd.par_chunks_mut(ROWS_PER_TASK)),
        )
        .for_each(|((yc, xc), (mc, rc))| {
            for (((yr, xr), m), r) in yc
                .chunks_exact_mut(dim)
                .zip(xc.chunks_exact(dim))
                .zip(mc.iter_mut())
                .zip(rc.iter_mut())
            {
                let mu = xr.iter().copied().sum::<T>() * inv_dim;
                let var = xr.iter().map(|&v| (v - mu) * (v - mu)).sum::<T>() * inv_dim;
                let s = T::ONE / (var + eps).sqrt();
                for (((o, &v), &w), &b) in yr.iter_mut().zip(xr).zip(weight).zip(bias) {
                    *o = (v - mu) * s * w + b;
                }
                *m = mu;
                *r = s;
            }
        });
}

/// dx, dweight, dbias (all overwritten) from the saved mean and rstd.
/// dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂)), with ĝ = g ⊙ weight and
/// x̂ the normalised input; dweight = Σ g ⊙ x̂ and dbias = Σ g over rows, summed
/// over a fixed partition of the rows.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward<T: Float>(
    d: &LayerNormDims,
    x: &[T],
    weight: &[T],
    mean: &[T],
    rstd: &[T],
    g: &[T],
    dx: &mut [T],
    dweight: &mut [T],
    dbias: &mut [T],
) {
    let LayerNormDims { rows, dim, .. } = *d;
    assert_eq!(
        (x.len(), g.len(), dx.len()),
        (rows * dim, rows * dim, rows * dim)
    );
    assert_eq!((dweight.len(), dbias.len()), (dim, dim));
    let inv_dim = T::ONE / T::from_usize(dim);
    dx.par_chunks_mut(dim * ROWS_PER_TASK)
        .enumerate()
        .for_each(|(task, dxc)| {
            let r0 = task * ROWS_PER_TASK;
            for (j, dxr) in dxc.chunks_exact_mut(dim).enumerate() {
                let r = r0 + j;
                let (xr, gr) = (&x[r * dim..][..dim], &g[r * dim..][..dim]);
                let (mu, s) = (mean[r], rstd[r]);
                let mut mean_g = T::ZERO;
                let mut mean_gx = T::ZERO;
                for ((&v, &gv), &w) in xr.iter().zip(gr).zip(weight) {
                    let gh = gv * w;
                    mean_g += gh;
                    mean_gx += gh * (v - mu) * s;
                }
                mean_g *= inv_dim;
                mean_gx *= inv_dim;
                for (((o, &v), &gv), &w) in dxr.iter_mut().zip(xr).zip(gr).zip(weight) {
                    let xh = (v - mu) * s;
                    *o = s * (gv * w - mean_g - xh * mean_gx);
                }
            }
        });
    // dweight and dbias side by side in one accumulator of 2·dim.
    let partials = partial_sums(rows, 2 * dim, |r0, r1, acc| {
        let (aw, ab) = acc.split_at_mut(dim);
        for r in r0..r1 {
            let (xr, gr) = (&x[r * dim..][..dim], &g[r * dim..][..dim]);
            let (mu, s) = (mean[r], rstd[r]);
            for (((w, b), &v), &gv) in aw.iter_mut().zip(ab.iter_mut()).zip(xr).zip(gr) {
                *w += gv * (v - mu) * s;
                *b += gv;
            }
        }
    });
    let mut both = vec![T::ZERO; 2 * dim];
    reduce_in_order(&partials, &mut both);
    dweight.copy_from_slice(&both[..dim]);
    dbias.copy_from_slice(&both[dim..]);
}
