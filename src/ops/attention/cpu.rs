//! Scaled dot-product attention fused per (batch, head):
//! O = softmax(Q·Kᵀ/√d + mask)·V.
//!
//! q, k, v and out are laid out head-major ([batch, heads, t, d]) or
//! token-major ([batch, t, heads, d], as the projections produce them, so the
//! model needs no permutes around attention); the products read each head's
//! rows in place through strides.
//!
//! The forward saves the probabilities P [batch, heads, tq, tk]; the backward
//! uses them instead of recomputing Q·Kᵀ (at the model's sizes P is small:
//! 256·6·64·64 floats = 25 MB at sequence 64). Masked keys get probability 0;
//! a query whose keys are all masked gets an all-zero row (output 0, no NaN).

use super::{AttentionDims, HeadLayout};
use crate::cpu::gemm::{gemm_views, MatView};
use crate::float::Float;
use crate::ops::softmax::cpu::{softmax_backward_rows, softmax_rows};
use rayon::prelude::*;

impl AttentionDims {
    /// Batch entry b's q, k and v.
    fn entry<'a, T>(&self, b: usize, q: &'a [T], k: &'a [T], v: &'a [T]) -> [&'a [T]; 3] {
        let (qn, kn, vn) = (
            self.heads * self.tq * self.d,
            self.heads * self.tk * self.d,
            self.heads * self.tk * self.dv,
        );
        [&q[b * qn..][..qn], &k[b * kn..][..kn], &v[b * vn..][..vn]]
    }
    /// Panics unless q, k and v have these dims' lengths.
    fn check_operands<T>(&self, q: &[T], k: &[T], v: &[T]) {
        assert_eq!(
            (q.len(), k.len(), v.len()),
            (self.q_len(), self.k_len(), self.v_len())
        );
    }
    fn scale<T: Float>(&self) -> T {
        T::ONE / T::from_usize(self.d).sqrt()
    }
}

impl HeadLayout {
    /// Head h's t×width matrix inside a batch entry of heads·t·width values.
    fn head(self, h: usize, heads: usize, t: usize, width: usize) -> MatView {
        match self {
            HeadLayout::HeadMajor => MatView {
                offset: h * t * width,
                ..MatView::dense(t, width)
            },
            HeadLayout::TokenMajor => MatView {
                offset: h * width,
                rows: t,
                cols: width,
                rs: heads * width,
                cs: 1,
            },
        }
    }
}

/// One batch entry's keys (or values), `t` rows of `width` per head in
/// `layout`, transposed head by head into [heads, width, t]: the products
/// Q·Kᵀ and dO·Vᵀ then read their right operand's rows in place.
fn transpose_heads<T: Float>(
    layout: HeadLayout,
    heads: usize,
    t: usize,
    width: usize,
    xb: &[T],
    out: &mut Vec<T>,
) {
    // A plain double loop: `ops::permute::cpu::permute` (general axes, a rayon task
    // per call) made attention's backward 8% slower at sequence 16.
    out.resize(heads * width * t, T::ZERO);
    for (h, dst) in out.chunks_exact_mut((width * t).max(1)).enumerate() {
        let v = layout.head(h, heads, t, width);
        for r in 0..t {
            for e in 0..width {
                dst[e * t + r] = xb[v.offset + r * v.rs + e * v.cs];
            }
        }
    }
}

/// Head h's width×t block of [`transpose_heads`]'s output.
fn transposed_head(h: usize, t: usize, width: usize) -> MatView {
    MatView {
        offset: h * width * t,
        ..MatView::dense(width, t)
    }
}

/// out and probs (both overwritten), head-major.
pub fn attention_forward<T: Float>(
    a: &AttentionDims,
    q: &[T],
    k: &[T],
    v: &[T],
    key_mask: Option<&[bool]>,
    out: &mut [T],
    probs: &mut [T],
) {
    attention_forward_in(HeadLayout::HeadMajor, a, q, k, v, key_mask, out, probs);
}

/// out and probs (both overwritten), in either layout.
#[allow(clippy::too_many_arguments)]
pub fn attention_forward_in<T: Float>(
    layout: HeadLayout,
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
    a.check_operands(q, k, v);
    assert_eq!((out.len(), probs.len()), (a.out_len(), a.probs_len()));
    if let Some(m) = key_mask {
        assert_eq!(m.len(), a.batch * tk);
    }
    if probs.is_empty() {
        // No keys (or no queries): every output is an empty sum.
        out.fill(T::ZERO);
        return;
    }
    let scale = a.scale::<T>();
    out.par_chunks_mut(heads * tq * dv)
        .zip(probs.par_chunks_mut(heads * tq * tk))
        .enumerate()
        .for_each_init(Vec::new, |kt, (b, (ob, pb))| {
            let [qb, kb, vb] = a.entry(b, q, k, v);
            let mask = key_mask.map(|m| &m[b * tk..][..tk]);
            transpose_heads(layout, heads, tk, d, kb, kt);
            for (h, p) in pb.chunks_exact_mut(tq * tk).enumerate() {
                let pv = MatView::dense(tq, tk);
                gemm_views(
                    (qb, layout.head(h, heads, tq, d)),
                    (&kt[..], transposed_head(h, tk, d)),
                    (&mut *p, pv),
                    T::ZERO,
                );
                softmax_rows(tk, p, scale, mask);
                gemm_views(
                    (&*p, pv),
                    (vb, layout.head(h, heads, tk, dv)),
                    (&mut *ob, layout.head(h, heads, tq, dv)),
                    T::ZERO,
                );
            }
        });
}

/// dq, dk, dv (overwritten) from the saved probabilities and the output
/// gradient, head-major: dV = Pᵀ·dO, dP = dO·Vᵀ, dS = softmax backward of dP,
/// dQ = dS·K/√d, dK = dSᵀ·Q/√d.
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
    attention_backward_in(
        HeadLayout::HeadMajor,
        a,
        q,
        k,
        v,
        probs,
        g,
        [dq, dk, dv_out],
    );
}

/// [dq, dk, dv] (overwritten), in either layout (see [`attention_backward`]).
#[allow(clippy::too_many_arguments)]
pub fn attention_backward_in<T: Float>(
    layout: HeadLayout,
    a: &AttentionDims,
    q: &[T],
    k: &[T],
    v: &[T],
    probs: &[T],
    g: &[T],
    [dq, dk, dv_out]: [&mut [T]; 3],
) {
    let AttentionDims {
        heads,
        tq,
        tk,
        d,
        dv,
        ..
    } = *a;
    a.check_operands(q, k, v);
    assert_eq!((probs.len(), g.len()), (a.probs_len(), a.out_len()));
    a.check_operands(dq, dk, dv_out);
    if probs.is_empty() {
        dq.fill(T::ZERO);
        dk.fill(T::ZERO);
        dv_out.fill(T::ZERO);
        return;
    }
    let scale = a.scale::<T>();
    dq.par_chunks_mut((heads * tq * d).max(1))
        .zip(dk.par_chunks_mut((heads * tk * d).max(1)))
        .zip(dv_out.par_chunks_mut((heads * tk * dv).max(1)))
        .enumerate()
        .for_each_init(
            || (Vec::new(), Vec::new(), Vec::new()),
            |(dp, ds, vt), (b, ((dqb, dkb), dvb))| {
                let [qb, kb, vb] = a.entry(b, q, k, v);
                let (pb, gb) = (
                    &probs[b * heads * tq * tk..][..heads * tq * tk],
                    &g[b * heads * tq * dv..][..heads * tq * dv],
                );
                dp.resize(tq * tk, T::ZERO);
                ds.resize(tq * tk, T::ZERO);
                transpose_heads(layout, heads, tk, dv, vb, vt);
                let pv = MatView::dense(tq, tk);
                for (h, p) in pb.chunks_exact(tq * tk).enumerate() {
                    let (qv, kv) = (layout.head(h, heads, tq, d), layout.head(h, heads, tk, d));
                    let (vv, gv) = (layout.head(h, heads, tk, dv), layout.head(h, heads, tq, dv));
                    gemm_views((p, pv.t()), (gb, gv), (&mut *dvb, vv), T::ZERO);
                    gemm_views(
                        (gb, gv),
                        (&vt[..], transposed_head(h, tk, dv)),
                        (&mut dp[..], pv),
                        T::ZERO,
                    );
                    softmax_backward_rows(tk, p, dp, ds, scale);
                    gemm_views((&ds[..], pv), (kb, kv), (&mut *dqb, qv), T::ZERO);
                    gemm_views((&ds[..], pv.t()), (qb, qv), (&mut *dkb, kv), T::ZERO);
                }
            },
        );
}
