//! Layer normalisation over the last axis, with affine weight and bias.
//! The forward saves each row's mean and reciprocal standard deviation (as
//! llm.c), so the backward never recomputes the statistics.

use super::LayerNormDims;
use crate::cpu::fastmath::avx2_kernel;
use crate::cpu::lanes::{fold_lanes, sum_zip_lanes};
use crate::cpu::{partial_sums, reduce_in_order};
use crate::float::Float;
use rayon::prelude::*;

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
    let eps = T::from_f64(eps);
    y.par_chunks_mut(dim * ROWS_PER_TASK)
        .zip(x.par_chunks(dim * ROWS_PER_TASK))
        .zip(
            mean.par_chunks_mut(ROWS_PER_TASK)
                .zip(rstd.par_chunks_mut(ROWS_PER_TASK)),
        )
        .for_each(|((yc, xc), (mc, rc))| normalize_rows(dim, eps, xc, weight, bias, yc, mc, rc));
}

avx2_kernel! {
/// The forward of a block of rows; the row sums run in lanes (vectorised).
#[allow(clippy::too_many_arguments)]
fn normalize_rows<T: Float>(
    dim: usize,
    eps: T,
    x: &[T],
    weight: &[T],
    bias: &[T],
    y: &mut [T],
    mean: &mut [T],
    rstd: &mut [T],
) {
    let inv_dim = T::ONE / T::from_usize(dim);
    for (((yr, xr), m), r) in y
        .chunks_exact_mut(dim)
        .zip(x.chunks_exact(dim))
        .zip(mean.iter_mut())
        .zip(rstd.iter_mut())
    {
        let mu = fold_lanes(xr, T::ZERO, |a, b| a + b) * inv_dim;
        let var = sum_zip_lanes([xr], |[v]| (v - mu) * (v - mu)) * inv_dim;
        let s = T::ONE / (var + eps).sqrt();
        for (((o, &v), &w), &b) in yr.iter_mut().zip(xr).zip(weight).zip(bias) {
            *o = (v - mu) * s * w + b;
        }
        *m = mu;
        *r = s;
    }
}
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
    dx.par_chunks_mut(dim * ROWS_PER_TASK)
        .enumerate()
        .for_each(|(task, dxc)| {
            let rows = task * ROWS_PER_TASK * dim..(task * ROWS_PER_TASK * dim + dxc.len());
            let (x, g) = (&x[rows.clone()], &g[rows]);
            let stats = task * ROWS_PER_TASK..;
            let (mean, rstd) = (&mean[stats.clone()], &rstd[stats]);
            input_grad_rows(dim, x, weight, mean, rstd, g, dxc)
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

avx2_kernel! {
/// dx of a block of rows; the two row means run in lanes (vectorised).
fn input_grad_rows<T: Float>(
    dim: usize,
    x: &[T],
    weight: &[T],
    mean: &[T],
    rstd: &[T],
    g: &[T],
    dx: &mut [T],
) {
    let inv_dim = T::ONE / T::from_usize(dim);
    for ((((dxr, xr), gr), &mu), &s) in dx
        .chunks_exact_mut(dim)
        .zip(x.chunks_exact(dim))
        .zip(g.chunks_exact(dim))
        .zip(mean)
        .zip(rstd)
    {
        let (xr, gr, w) = (&xr[..dim], &gr[..dim], &weight[..dim]);
        let mean_g = sum_zip_lanes([gr, w], |[g, w]| g * w) * inv_dim;
        let mean_gx = sum_zip_lanes([gr, w, xr], |[g, w, v]| g * w * (v - mu) * s) * inv_dim;
        for (((o, &v), &gv), &w) in dxr.iter_mut().zip(xr).zip(gr).zip(w) {
            let xh = (v - mu) * s;
            *o = s * (gv * w - mean_g - xh * mean_gx);
        }
    }
}
}
