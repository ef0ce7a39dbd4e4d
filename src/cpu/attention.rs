//! Scaled dot-product attention fused per (batch, head):
//! O = softmax(Q·Kᵀ/√d + mask)·V.
//!
//! The forward saves the probabilities P [batch, heads, tq, tk]; the backward
//! uses them instead of recomputing Q·Kᵀ (at the model's sizes P is small:
//! 256·6·64·64 floats = 25 MB at sequence 64). Masked keys get probability 0;
//! a query whose keys are all masked gets an all-zero row (output 0, no NaN).

use super::gemm;
use super::softmax::{softmax_row_backward, softmax_row_inplace};
use crate::float::Float;
use rayon::prelude::*;

/// q [batch, heads, tq, d], k [batch, heads, tk, d], v [batch, heads, tk, dv],
/// out [batch, heads, tq, dv], probs [batch, heads, tq, tk];
/// key_mask [batch, tk] (true = attend).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionDims {
    pub batch: usize,
    pub heads: usize,
    pub tq: usize,
    pub tk: usize,
    pub d: usize,
    pub dv: usize,
}

impl AttentionDims {
    pub fn q_len(&self) -> usize {
        self.batch * self.heads * self.tq * self.d
    }
    pub fn k_len(&self) -> usize {
        self.batch * self.heads * self.tk * self.d
    }
    pub fn v_len(&self) -> usize {
        self.batch * self.heads * self.tk * self.dv
    }
    pub fn out_len(&self) -> usize {
        self.batch * self.heads * self.tq * self.dv
    }
    pub fn probs_len(&self) -> usize {
        self.batch * self.heads * self.tq * self.tk
    }
    fn scale<T: Float>(&self) -> T {
        T::ONE / T::from_usize(self.d).sqrt()
    }
}

/// out and probs (both overwritten).
pub fn attention_forward<T: Float>(
    a: &AttentionDims,
    q: &[T],
    k: &[T],
    v: &[T],
    key_mask: Option<&[bool]>,
    out: &mut [T],
    probs: &mut [T],
) {
    let AttentionDims {
        heads,
        tq,
        tk,
        d,
        dv,
        ..
    } = *a;
    assert_eq!(
        (q.len(), k.len(), v.len()),
        (a.q_len(), a.k_len(), a.v_len())
    );
    assert_eq!((out.len(), probs.len()), (a.out_len(), a.probs_len()));
    if let Some(m) = key_mask {
        assert_eq!(m.len(), a.batch * tk);
    }
    if out.is_empty() || probs.is_empty() {
        return;
    }
    let scale = a.scale::<T>();
    let neg_inf = T::from_f64(f64::NEG_INFINITY);
    out.par_chunks_mut(tq * dv)
        .zip(probs.par_chunks_mut(tq * tk))
        .enumerate()
        .for_each(|(bh, (o, p))| {
            let (qi, ki) = (&q[bh * tq * d..][..tq * d], &k[bh * tk * d..][..tk * d]);
            let vi = &v[bh * tk * dv..][..tk * dv];
            gemm(tq, d, tk, qi, false, ki, true, p, false, T::ZERO);
            let mask = key_mask.map(|m| &m[(bh / heads) * tk..][..tk]);
            for row in p.chunks_exact_mut(tk) {
                match mask {
                    Some(mask) => row.iter_mut().zip(mask).for_each(|(s, &keep)| {
                        *s = if keep { *s * scale } else { neg_inf };
                    }),
                    None => row.iter_mut().for_each(|s| *s *= scale),
                }
                softmax_row_inplace(row);
            }
            gemm(tq, tk, dv, p, false, vi, false, o, false, T::ZERO);
        });
}

/// dq, dk, dv (overwritten) from the saved probabilities and the output gradient:
/// dV = Pᵀ·dO, dP = dO·Vᵀ, dS = softmax backward of dP, dQ = dS·K/√d, dK = dSᵀ·Q/√d.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward<T: Float>(
    a: &AttentionDims,
    q: &[T],
    k: &[T],
    v: &[T],
    probs: &[T],
    g: &[T],
    dq: &mut [T],
    dk: &mut [T],
    dv_out: &mut [T],
) {
    let AttentionDims { tq, tk, d, dv, .. } = *a;
    assert_eq!(
        (q.len(), k.len(), v.len()),
        (a.q_len(), a.k_len(), a.v_len())
    );
    assert_eq!((probs.len(), g.len()), (a.probs_len(), a.out_len()));
    assert_eq!(
        (dq.len(), dk.len(), dv_out.len()),
        (a.q_len(), a.k_len(), a.v_len())
    );
    if probs.is_empty() {
        dq.fill(T::ZERO);
        dk.fill(T::ZERO);
        dv_out.fill(T::ZERO);
        return;
    }
    let scale = a.scale::<T>();
    dq.par_chunks_mut((tq * d).max(1))
        .zip(dk.par_chunks_mut((tk * d).max(1)))
        .zip(dv_out.par_chunks_mut((tk * dv).max(1)))
        .enumerate()
        .for_each_init(
            || (Vec::new(), Vec::new()),
            |(dp, ds), (bh, ((dqi, dki), dvi))| {
                let (qi, ki) = (&q[bh * tq * d..][..tq * d], &k[bh * tk * d..][..tk * d]);
                let vi = &v[bh * tk * dv..][..tk * dv];
                let (pi, gi) = (
                    &probs[bh * tq * tk..][..tq * tk],
                    &g[bh * tq * dv..][..tq * dv],
                );
                dp.resize(tq * tk, T::ZERO);
                ds.resize(tq * tk, T::ZERO);
                gemm(tk, tq, dv, pi, true, gi, false, dvi, false, T::ZERO);
                gemm(tq, dv, tk, gi, false, vi, true, dp, false, T::ZERO);
                for ((p_row, dp_row), ds_row) in pi
                    .chunks_exact(tk)
                    .zip(dp.chunks_exact(tk))
                    .zip(ds.chunks_exact_mut(tk))
                {
                    softmax_row_backward(p_row, dp_row, ds_row);
                    ds_row.iter_mut().for_each(|s| *s *= scale);
                }
                gemm(tq, tk, d, ds, false, ki, false, dqi, false, T::ZERO);
                gemm(tk, tq, d, ds, true, qi, false, dki, false, T::ZERO);
            },
        );
}
