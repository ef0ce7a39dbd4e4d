//! Batched matrix products and the linear layer.

use super::{LinearDims, MatmulDims};
pub use crate::cpu::gemm::GemmEpilogue;
use crate::cpu::gemm::{gemm, gemm_new, gemm_new_with_epilogue, gemm_with_epilogue};
use crate::cpu::sum_rows;
use crate::float::Float;
use crate::ops::elementwise::cpu::{add_assign, add_bias_inplace};
use crate::ops::unary::cpu::relu_inplace;
use rayon::prelude::*;

impl MatmulDims {
    /// A shared B with a non-transposed A is one GEMM over batch·m rows.
    fn flattens(&self) -> bool {
        self.b_shared && !self.trans_a
    }
}

/// c ← op(a)·op(b) (see [`MatmulDims`] for layouts).
pub fn matmul_forward<T: Float>(d: &MatmulDims, a: &[T], b: &[T], c: &mut [T]) {
    assert_eq!(
        (a.len(), b.len(), c.len()),
        (d.a_len(), d.b_len(), d.c_len())
    );
    let MatmulDims { m, k, n, .. } = *d;
    if d.flattens() {
        return gemm(d.batch * m, k, n, a, false, b, d.trans_b, c, false, T::ZERO);
    }
    let b_stride = if d.b_shared { 0 } else { k * n };
    c.par_chunks_mut((m * n).max(1))
        .enumerate()
        .for_each(|(i, ci)| {
            let ai = &a[i * m * k..(i + 1) * m * k];
            let bi = &b[i * b_stride..i * b_stride + k * n];
            gemm(m, k, n, ai, d.trans_a, bi, d.trans_b, ci, false, T::ZERO);
        });
}

/// da ← ∂/∂a, db ← ∂/∂b of Σ g ⊙ c (both overwritten).
///
/// With `dop(A) = G·op(B)ᵀ` and `dop(B) = op(A)ᵀ·G`, each written back in the
/// operand's own (possibly transposed) layout. A shared B sums over the batch in
/// batch order.
pub fn matmul_backward<T: Float>(
    d: &MatmulDims,
    a: &[T],
    b: &[T],
    g: &[T],
    da: &mut [T],
    db: &mut [T],
) {
    assert_eq!(
        (a.len(), b.len(), g.len()),
        (d.a_len(), d.b_len(), d.c_len())
    );
    assert_eq!((da.len(), db.len()), (d.a_len(), d.b_len()));
    let MatmulDims { m, k, n, .. } = *d;
    if d.flattens() {
        let rows = d.batch * m;
        gemm(rows, n, k, g, false, b, !d.trans_b, da, false, T::ZERO);
        gemm(k, rows, n, a, true, g, false, db, d.trans_b, T::ZERO);
        return;
    }
    let (a_len, c_len) = (m * k, m * n);
    if d.b_shared {
        for i in 0..d.batch {
            let (ai, gi) = (&a[i * a_len..][..a_len], &g[i * c_len..][..c_len]);
            let beta = if i == 0 { T::ZERO } else { T::ONE };
            gemm(k, m, n, ai, !d.trans_a, gi, false, db, d.trans_b, beta);
        }
        da.par_chunks_mut(a_len.max(1))
            .enumerate()
            .for_each(|(i, dai)| {
                let gi = &g[i * c_len..][..c_len];
                gemm(m, n, k, gi, false, b, !d.trans_b, dai, d.trans_a, T::ZERO);
            });
        return;
    }
    let b_len = k * n;
    da.par_chunks_mut(a_len.max(1))
        .zip(db.par_chunks_mut(b_len.max(1)))
        .enumerate()
        .for_each(|(i, (dai, dbi))| {
            let (ai, bi) = (&a[i * a_len..][..a_len], &b[i * b_len..][..b_len]);
            let gi = &g[i * c_len..][..c_len];
            gemm(m, n, k, gi, false, bi, !d.trans_b, dai, d.trans_a, T::ZERO);
            gemm(k, m, n, ai, !d.trans_a, gi, false, dbi, d.trans_b, T::ZERO);
        });
}

pub fn linear_forward<T: Float>(d: &LinearDims, x: &[T], w: &[T], bias: Option<&[T]>, y: &mut [T]) {
    let ep = GemmEpilogue {
        bias,
        ..Default::default()
    };
    linear_forward_with(d, x, w, ep, y);
}

/// y ← x·wᵀ, then `ep` (bias, relu, y's previous value added last).
pub fn linear_forward_with<T: Float>(
    d: &LinearDims,
    x: &[T],
    w: &[T],
    ep: GemmEpilogue<'_, T>,
    y: &mut [T],
) {
    let LinearDims { rows, d_in, d_out } = *d;
    assert_eq!(
        (x.len(), w.len(), y.len()),
        (rows * d_in, d_out * d_in, rows * d_out)
    );
    product_with_epilogue(rows, d_in, d_out, x, w, ep, y);
}

/// y [m, n] ← a [m, k] · wᵀ (w stored [n, k]), then `ep`: fused into the
/// GEMM's store where the backend can, else the GEMM and then one pass per
/// step, with the same bits either way (tests/ops_reference.rs checks the
/// fused path against the GEMM and the passes, bit for bit).
pub(crate) fn product_with_epilogue<T: Float>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    w: &[T],
    ep: GemmEpilogue<'_, T>,
    y: &mut [T],
) {
    if gemm_with_epilogue(m, k, n, a, false, w, true, y, ep) {
        return;
    }
    if ep.residual {
        let mut product = gemm_new(m, k, n, a, false, w, true);
        finish_epilogue(&mut product, ep);
        add_assign(y, &product);
    } else {
        gemm(m, k, n, a, false, w, true, y, false, T::ZERO);
        finish_epilogue(y, ep);
    }
}

/// The bias and relu of `ep` as passes over a product [rows, bias.len()].
fn finish_epilogue<T: Float>(c: &mut [T], ep: GemmEpilogue<'_, T>) {
    if let Some(bias) = ep.bias {
        add_bias_inplace(c, bias);
    }
    if ep.relu {
        relu_inplace(c);
    }
}

/// x·wᵀ, then the bias and relu, into a new [rows, d_out] buffer that is not
/// zeroed first where the store fuses them (the bits of [`linear_forward_with`]).
pub fn linear_forward_new<T: Float>(
    d: &LinearDims,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    relu: bool,
) -> Vec<T> {
    let LinearDims { rows, d_in, d_out } = *d;
    assert_eq!((x.len(), w.len()), (rows * d_in, d_out * d_in));
    let ep = GemmEpilogue {
        bias,
        relu,
        residual: false,
    };
    gemm_new_with_epilogue(rows, d_in, d_out, x, false, w, true, ep).unwrap_or_else(|| {
        let mut y = gemm_new(rows, d_in, d_out, x, false, w, true);
        finish_epilogue(&mut y, ep);
        y
    })
}

/// [`linear_backward`]'s dx, dw and (if `has_bias`) dbias as new buffers;
/// dx and dw are not zeroed first.
pub fn linear_backward_new<T: Float>(
    d: &LinearDims,
    x: &[T],
    w: &[T],
    g: &[T],
    has_bias: bool,
) -> (Vec<T>, Vec<T>, Option<Vec<T>>) {
    let LinearDims { rows, d_in, d_out } = *d;
    assert_eq!(
        (x.len(), w.len(), g.len()),
        (rows * d_in, d_out * d_in, rows * d_out)
    );
    let dbias = has_bias.then(|| {
        let mut db = vec![T::ZERO; d_out];
        sum_rows(g, rows, d_out, &mut db);
        db
    });
    (
        gemm_new(rows, d_out, d_in, g, false, w, false),
        gemm_new(d_out, rows, d_in, g, true, x, false),
        dbias,
    )
}

/// dx ← g·w, dw ← gᵀ·x, dbias ← column sums of g (all overwritten).
pub fn linear_backward<T: Float>(
    d: &LinearDims,
    x: &[T],
    w: &[T],
    g: &[T],
    dx: &mut [T],
    dw: &mut [T],
    dbias: Option<&mut [T]>,
) {
    let LinearDims { rows, d_in, d_out } = *d;
    assert_eq!(
        (g.len(), dx.len(), dw.len()),
        (rows * d_out, rows * d_in, d_out * d_in)
    );
    gemm(rows, d_out, d_in, g, false, w, false, dx, false, T::ZERO);
    gemm(d_out, rows, d_in, g, true, x, false, dw, false, T::ZERO);
    if let Some(dbias) = dbias {
        sum_rows(g, rows, d_out, dbias);
    }
}
