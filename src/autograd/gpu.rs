//! The tape's ops on a GPU device: the same shapes and nodes as the CPU path,
//! computed by the `cuda::ops` launch wrappers on the executor of the device
//! (the GPU, or the emulator in the tests). Every function here is generic
//! over the executor; `on_gpu!` picks it once per op.

use super::node::{Node, Op, Var};
use super::LossKind;
use crate::autograd::Padding;
use crate::cpu::dropout::DropoutDims;
use crate::cpu::elementwise::{inverse_permutation, permuted_shape};
use crate::cpu::{AttentionDims, Conv1dDims, LayerNormDims, LinearDims, MatmulDims};
use crate::cuda::exec::{wrap_for, GpuExec};
use crate::cuda::launch::Backend;
use crate::cuda::ops::{self, Binary, ConvPadding, Epilogue, Gemm};
use crate::cuda::tensors::{alloc, buf, new, opt_buf};
use crate::cuda::GpuBuffer;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::on_gpu;
use crate::ops::unary::cuda::unary_bwd;
use crate::ops::unary::Unary;
use crate::tensor::Tensor;

fn conv_padding(p: Padding) -> ConvPadding {
    match p {
        Padding::Same => ConvPadding::Same,
        Padding::Valid => ConvPadding::Valid,
    }
}

fn conv_shape(d: &Conv1dDims) -> ops::Conv1d {
    ops::Conv1d {
        batch: d.batch,
        cin: d.c_in,
        len: d.len,
        cout: d.c_out,
        k: d.kernel,
        padding: conv_padding(d.padding),
    }
}

fn loss_code(kind: LossKind) -> ops::Loss {
    match kind {
        LossKind::Mse => ops::Loss::Mse,
        LossKind::Mae => ops::Loss::Mae,
        LossKind::Huber(d) => ops::Loss::Huber(d as f32),
        LossKind::Quantile(q) => ops::Loss::Quantile(q as f32),
    }
}

pub(super) fn binary<E: GpuExec, T: Float>(
    be: &E,
    op: Binary,
    a: &Tensor<T>,
    b: &Tensor<T>,
) -> Result<Tensor<T>> {
    new(be, a.shape(), |y| {
        ops::binary(be, op, a.numel(), buf::<E, T>(a)?, buf::<E, T>(b)?, y)
    })
}

pub(super) fn scale<E: GpuExec, T: Float>(be: &E, a: &Tensor<T>, s: T) -> Result<Tensor<T>> {
    new(be, a.shape(), |y| {
        ops::scale(be, a.numel(), s.to_f64() as f32, buf::<E, T>(a)?, y)
    })
}

/// One GEMM into a new tensor of `shape`.
fn gemm<E: GpuExec, T: Float>(
    be: &E,
    g: &Gemm,
    a: &Tensor<T>,
    b: &Tensor<T>,
    bias: Option<&Tensor<T>>,
    shape: &[usize],
) -> Result<Tensor<T>> {
    new(be, shape, |c| {
        ops::sgemm(
            be,
            g,
            buf::<E, T>(a)?,
            buf::<E, T>(b)?,
            opt_buf::<E, T>(bias)?,
            c,
        )
    })
}

fn plain_gemm(batch: usize, m: usize, n: usize, k: usize, trans_a: bool, trans_b: bool) -> Gemm {
    Gemm {
        batch,
        trans_a,
        trans_b,
        ..Gemm::new(m, n, k)
    }
}

pub(super) fn matmul<E: GpuExec, T: Float>(
    be: &E,
    d: &MatmulDims,
    a: &Tensor<T>,
    b: &Tensor<T>,
    shape: &[usize],
) -> Result<Tensor<T>> {
    let g = Gemm {
        batch_b: !d.b_shared,
        ..plain_gemm(d.batch, d.m, d.n, d.k, d.trans_a, d.trans_b)
    };
    gemm(be, &g, a, b, None, shape)
}

/// dA and dB of C = op(A) op(B), each in its stored layout.
fn matmul_backward<E: GpuExec, T: Float>(
    be: &E,
    d: &MatmulDims,
    a: &Tensor<T>,
    b: &Tensor<T>,
    dc: &Tensor<T>,
) -> Result<(Tensor<T>, Tensor<T>)> {
    let MatmulDims {
        batch,
        m,
        k,
        n,
        trans_a,
        trans_b,
        b_shared,
    } = *d;
    // dA = dC op(B)ᵀ, or its transpose op(B) dCᵀ when A is stored transposed.
    let da = if trans_a {
        let g = Gemm {
            batch_a: !b_shared,
            ..plain_gemm(batch, k, m, n, trans_b, true)
        };
        gemm(be, &g, b, dc, None, a.shape())?
    } else {
        let g = Gemm {
            batch_b: !b_shared,
            ..plain_gemm(batch, m, k, n, false, !trans_b)
        };
        gemm(be, &g, dc, b, None, a.shape())?
    };
    // dB = op(A)ᵀ dC, or dCᵀ op(A) when B is stored transposed. A shared B sums
    // over the batch: with A untransposed the batch folds into the rows.
    let (batch, rows) = if b_shared {
        if trans_a {
            return Err(Error::shape(
                "matmul backward",
                a.shape(),
                b.shape(),
                "a transposed batched A times a shared 2-D B has no GPU gradient yet",
            ));
        }
        (1, batch * m)
    } else {
        (batch, m)
    };
    let db = if trans_b {
        gemm(
            be,
            &plain_gemm(batch, n, k, rows, true, trans_a),
            dc,
            a,
            None,
            b.shape(),
        )?
    } else {
        gemm(
            be,
            &plain_gemm(batch, k, n, rows, !trans_a, false),
            a,
            dc,
            None,
            b.shape(),
        )?
    };
    Ok((da, db))
}

/// x · wᵀ + b, with relu applied in the GEMM's epilogue when asked (one launch).
pub(super) fn linear<E: GpuExec, T: Float>(
    be: &E,
    d: &LinearDims,
    x: &Tensor<T>,
    w: &Tensor<T>,
    b: Option<&Tensor<T>>,
    relu: bool,
    shape: &[usize],
) -> Result<Tensor<T>> {
    let g = Gemm {
        epilogue: if relu { Epilogue::Relu } else { Epilogue::None },
        ..plain_gemm(1, d.rows, d.d_out, d.d_in, false, true)
    };
    gemm(be, &g, x, w, b, shape)
}

pub(super) fn conv1d<E: GpuExec, T: Float>(
    be: &E,
    d: &Conv1dDims,
    x: &Tensor<T>,
    w: &Tensor<T>,
    b: Option<&Tensor<T>>,
) -> Result<Tensor<T>> {
    let s = conv_shape(d);
    new(be, &[d.batch, d.c_out, s.out_len()], |y| {
        ops::conv1d_fwd(
            be,
            &s,
            buf::<E, T>(x)?,
            buf::<E, T>(w)?,
            opt_buf::<E, T>(b)?,
            y,
        )
    })
}

/// y, mean and rstd of a layer norm.
pub(super) fn layer_norm<E: GpuExec, T: Float>(
    be: &E,
    d: &LayerNormDims,
    x: &Tensor<T>,
    w: &Tensor<T>,
    b: &Tensor<T>,
) -> Result<(Tensor<T>, Tensor<T>, Tensor<T>)> {
    let (y, mean, rstd) = (
        alloc(be, x.numel())?,
        alloc(be, d.rows)?,
        alloc(be, d.rows)?,
    );
    ops::layernorm_fwd(
        be,
        d.rows,
        d.dim,
        d.eps as f32,
        buf::<E, T>(x)?,
        buf::<E, T>(w)?,
        buf::<E, T>(b)?,
        &y,
        &mean,
        &rstd,
    )?;
    Ok((
        Tensor::from_gpu(E::wrap(y), x.shape())?,
        Tensor::from_gpu(E::wrap(mean), &[d.rows.max(1)])?,
        Tensor::from_gpu(E::wrap(rstd), &[d.rows.max(1)])?,
    ))
}

/// The key mask as one byte per entry on the executor of `device`.
pub(super) fn upload_mask(device: Device, mask: &[bool]) -> Result<GpuBuffer> {
    on_gpu!(device, be => Ok(wrap_for(be, be.upload_mask(mask)?)))
}

/// out and the log-sum-exp of each query row (what the backward needs).
pub(super) fn attention<E: GpuExec, T: Float>(
    be: &E,
    d: &AttentionDims,
    q: &Tensor<T>,
    k: &Tensor<T>,
    v: &Tensor<T>,
    mask: Option<&GpuBuffer>,
) -> Result<(Tensor<T>, Tensor<T>)> {
    let rows = d.batch * d.heads * d.tq;
    let (out, lse) = (alloc(be, d.out_len())?, alloc(be, rows)?);
    let mask = mask.map(E::unwrap).transpose()?;
    ops::attention_fwd(
        be,
        d,
        ops::AttentionPath::Auto,
        buf::<E, T>(q)?,
        buf::<E, T>(k)?,
        buf::<E, T>(v)?,
        mask,
        &out,
        &lse,
    )?;
    Ok((
        Tensor::from_gpu(E::wrap(out), &[d.batch, d.heads, d.tq, d.dv])?,
        Tensor::from_gpu(E::wrap(lse), &[rows])?,
    ))
}

/// Dropout forward, and its backward (the same mask applied to the gradient).
pub(super) fn dropout<E: GpuExec, T: Float>(
    be: &E,
    d: &DropoutDims,
    x: &Tensor<T>,
) -> Result<Tensor<T>> {
    if d.offset != 0 {
        return Err(Error::Device(
            "dropout: a tape holding a shard of the batch runs on the CPU only".into(),
        ));
    }
    new(be, x.shape(), |y| {
        ops::dropout(be, x.numel(), d.p, d.seed, d.call, buf::<E, T>(x)?, y)
    })
}

pub(super) fn add_bias<E: GpuExec, T: Float>(
    be: &E,
    x: &Tensor<T>,
    b: &Tensor<T>,
) -> Result<Tensor<T>> {
    let c = b.numel();
    new(be, x.shape(), |y| {
        ops::add_bias(be, x.numel() / c, c, buf::<E, T>(x)?, buf::<E, T>(b)?, y)
    })
}

/// Sums a gradient [rows, c] over its rows (the gradient of a bias).
fn column_sum<E: GpuExec, T: Float>(be: &E, g: &Tensor<T>, c: usize) -> Result<Tensor<T>> {
    new(be, &[c], |out| {
        ops::column_sum(be, g.numel() / c, c, buf::<E, T>(g)?, out)
    })
}

pub(super) fn permute<E: GpuExec, T: Float>(
    be: &E,
    x: &Tensor<T>,
    perm: &[usize],
) -> Result<Tensor<T>> {
    new(be, &permuted_shape(x.shape(), perm), |y| {
        ops::permute(be, x.shape(), perm, buf::<E, T>(x)?, y)
    })
}

pub(super) fn loss<E: GpuExec, T: Float>(
    be: &E,
    kind: LossKind,
    pred: &Tensor<T>,
    target: &Tensor<T>,
) -> Result<Tensor<T>> {
    new(be, &[1], |out| {
        ops::loss_fwd(
            be,
            loss_code(kind),
            pred.numel(),
            buf::<E, T>(pred)?,
            buf::<E, T>(target)?,
            out,
        )
    })
}

/// The gradients one node sends to its parents, on the device of `g`.
pub(super) fn backward<E: GpuExec, T: Float>(
    be: &E,
    nodes: &[Node<T>],
    op: &Op<T>,
    out: &Tensor<T>,
    g: Tensor<T>,
) -> Result<Vec<(Var, Tensor<T>)>> {
    let val = |v: Var| &nodes[v.0].value;
    let n = g.numel();
    let g = match op {
        Op::Linear { relu: true, .. } | Op::Conv1d { relu: true, .. } => {
            // relu's backward from the node's output (> 0 exactly where its input is).
            new(be, out.shape(), |dx| {
                unary_bwd(be, Unary::Relu, n, buf::<E, T>(out)?, buf::<E, T>(&g)?, dx)
            })?
        }
        _ => g,
    };
    let gb = buf::<E, T>(&g)?;
    Ok(match op {
        Op::Leaf | Op::Param(_) => Vec::new(),
        Op::Add(a, b) => vec![(*a, g.clone()), (*b, g)],
        Op::Mul(a, b) => vec![
            (*a, binary(be, Binary::Mul, &g, val(*b))?),
            (*b, binary(be, Binary::Mul, &g, val(*a))?),
        ],
        Op::Scale(a, s) => vec![(*a, scale(be, &g, *s)?)],
        Op::Reshape(a) => vec![(*a, g.reshape(val(*a).shape())?)],
        Op::Matmul { a, b, dims } => {
            let (da, db) = matmul_backward(be, dims, val(*a), val(*b), &g)?;
            vec![(*a, da), (*b, db)]
        }
        Op::Linear { x, w, b, dims, .. } => {
            let LinearDims { rows, d_in, d_out } = *dims;
            let dx = gemm(
                be,
                &plain_gemm(1, rows, d_in, d_out, false, false),
                &g,
                val(*w),
                None,
                val(*x).shape(),
            )?;
            let dw = gemm(
                be,
                &plain_gemm(1, d_out, d_in, rows, true, false),
                &g,
                val(*x),
                None,
                val(*w).shape(),
            )?;
            let mut grads = vec![(*x, dx), (*w, dw)];
            if let Some(b) = b {
                grads.push((*b, column_sum(be, &g, d_out)?));
            }
            grads
        }
        Op::Conv1d {
            x,
            w,
            b,
            dims,
            channels_last: false,
            ..
        } => {
            let s = conv_shape(dims);
            let dx = nodes[x.0]
                .needs_grad
                .then(|| alloc(be, dims.x_len()))
                .transpose()?;
            let dw = alloc(be, dims.w_len())?;
            let db = b.map(|_| alloc(be, dims.c_out)).transpose()?;
            ops::conv1d_bwd(
                be,
                &s,
                buf::<E, T>(val(*x))?,
                buf::<E, T>(val(*w))?,
                gb,
                dx.as_ref(),
                Some(&dw),
                db.as_ref(),
            )?;
            let mut grads = vec![(*w, Tensor::from_gpu(E::wrap(dw), val(*w).shape())?)];
            if let Some(dx) = dx {
                grads.push((*x, Tensor::from_gpu(E::wrap(dx), val(*x).shape())?));
            }
            if let (Some(b), Some(db)) = (b, db) {
                grads.push((*b, Tensor::from_gpu(E::wrap(db), &[dims.c_out])?));
            }
            grads
        }
        Op::LayerNormGpu {
            x,
            w,
            b,
            dims,
            mean,
            rstd,
        } => {
            let (dx, dw, db) = (alloc(be, n)?, alloc(be, dims.dim)?, alloc(be, dims.dim)?);
            ops::layernorm_bwd(
                be,
                dims.rows,
                dims.dim,
                buf::<E, T>(val(*x))?,
                buf::<E, T>(val(*w))?,
                buf::<E, T>(mean)?,
                buf::<E, T>(rstd)?,
                gb,
                &dx,
                &dw,
                &db,
            )?;
            vec![
                (*x, Tensor::from_gpu(E::wrap(dx), val(*x).shape())?),
                (*w, Tensor::from_gpu(E::wrap(dw), &[dims.dim])?),
                (*b, Tensor::from_gpu(E::wrap(db), &[dims.dim])?),
            ]
        }
        Op::AttentionGpu {
            q,
            k,
            v,
            dims,
            key_mask,
            lse,
        } => {
            let rows = dims.batch * dims.heads * dims.tq;
            let (dq, dk, dv, delta) = (
                alloc(be, dims.q_len())?,
                alloc(be, dims.k_len())?,
                alloc(be, dims.v_len())?,
                alloc(be, rows)?,
            );
            ops::attention_bwd(
                be,
                dims,
                buf::<E, T>(val(*q))?,
                buf::<E, T>(val(*k))?,
                buf::<E, T>(val(*v))?,
                key_mask.as_ref().map(E::unwrap).transpose()?,
                buf::<E, T>(out)?,
                gb,
                buf::<E, T>(lse)?,
                &delta,
                &dq,
                &dk,
                &dv,
            )?;
            vec![
                (*q, Tensor::from_gpu(E::wrap(dq), val(*q).shape())?),
                (*k, Tensor::from_gpu(E::wrap(dk), val(*k).shape())?),
                (*v, Tensor::from_gpu(E::wrap(dv), val(*v).shape())?),
            ]
        }
        Op::Dropout { x, dims, .. } => vec![(*x, dropout(be, dims, &g)?)],
        Op::AddBias(x, b) => {
            let c = val(*b).numel();
            vec![(*b, column_sum(be, &g, c)?), (*x, g)]
        }
        Op::Permute(x, perm) => {
            vec![(*x, permute(be, &g, &inverse_permutation(perm))?)]
        }
        Op::Loss { pred, target, kind } => {
            let p = val(*pred);
            let dp = new(be, p.shape(), |dp| {
                ops::loss_bwd(
                    be,
                    loss_code(*kind),
                    p.numel(),
                    buf::<E, T>(p)?,
                    buf::<E, T>(val(*target))?,
                    gb,
                    dp,
                )
            })?;
            let dt = scale(be, &dp, T::from_f64(-1.0))?.reshape(val(*target).shape())?;
            vec![(*pred, dp), (*target, dt)]
        }
        Op::Unary(..) | Op::Softmax(_) | Op::MeanPool(..) => {
            unreachable!("handled in backward::backward_op")
        }
        Op::LayerNorm { .. }
        | Op::Attention { .. }
        | Op::Conv1d {
            channels_last: true,
            ..
        } => {
            return Err(Error::Device(
                "a CPU node's backward with a GPU gradient".into(),
            ))
        }
    })
}

/// Σ x² of a device tensor (for the global gradient norm).
pub(crate) fn sum_squares<T: Float>(t: &Tensor<T>) -> Result<f64> {
    on_gpu!(t.device(), be => {
        let norm = ops::l2_norm(be, t.numel(), buf_of(be, t)?)?;
        Ok(norm * norm)
    })
}

/// s·t in a new buffer (gradients may share buffers, so never in place).
pub(crate) fn scaled<T: Float>(t: &Tensor<T>, s: T) -> Result<Tensor<T>> {
    on_gpu!(t.device(), be => scale(be, t, s))
}

/// One AdamW update of a device parameter with its gradient and moments.
pub(crate) fn adamw<T: Float>(
    step: &ops::AdamStep,
    p: &Tensor<T>,
    g: &Tensor<T>,
    m: &Tensor<T>,
    v: &Tensor<T>,
) -> Result<()> {
    on_gpu!(p.device(), be => ops::adamw_step(
        be,
        p.numel(),
        step,
        buf_of(be, p)?,
        buf_of(be, g)?,
        buf_of(be, m)?,
        buf_of(be, v)?,
    ))
}

fn buf_of<'a, E: GpuExec, T: Float>(_: &E, t: &'a Tensor<T>) -> Result<&'a E::Buffer> {
    buf::<E, T>(t)
}
