//! Batched matrix products and the linear layer: the [`MatmulDims`] and
//! [`LinearDims`] descriptors, the CPU kernels (`cpu`, on the engine's GEMM),
//! the tiled CUDA SGEMM with its fused epilogue (`cuda`, whose [`Gemm`] each
//! descriptor maps onto), and the tape's forward and backward.

pub mod cpu;
pub mod cuda;
mod dims;

pub use dims::{LinearDims, MatmulDims};

pub use cuda::{Epilogue, Gemm};

use crate::autograd::node::Op;
use crate::autograd::{Tape, Var};
use crate::cuda::exec::GpuExec;
use crate::cuda::tensors::{buf, new, opt_buf};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::on_gpu;
use crate::ops::elementwise;
use crate::ops::unary;
use crate::tensor::Tensor;

/// A GEMM of `batch` products with no bias, no epilogue, no shared operand.
fn plain_gemm(batch: usize, m: usize, n: usize, k: usize, trans_a: bool, trans_b: bool) -> Gemm {
    Gemm {
        batch,
        trans_a,
        trans_b,
        ..Gemm::new(m, n, k)
    }
}

impl MatmulDims {
    /// The GPU GEMM of this product.
    pub fn gemm(&self) -> Gemm {
        Gemm {
            batch_b: !self.b_shared,
            ..plain_gemm(
                self.batch,
                self.m,
                self.n,
                self.k,
                self.trans_a,
                self.trans_b,
            )
        }
    }
}

impl LinearDims {
    /// The GPU GEMM of x · wᵀ + b, with relu in its epilogue when asked.
    pub fn forward_gemm(&self, relu: bool) -> Gemm {
        Gemm {
            epilogue: if relu { Epilogue::Relu } else { Epilogue::None },
            ..plain_gemm(1, self.rows, self.d_out, self.d_in, false, true)
        }
    }
}

impl<T: Float> Tape<'_, T> {
    /// a [..., m, k] · b [..., k, n] (either transposed: a stored [..., k, m],
    /// b stored [..., n, k]); b has a's leading dims or is 2-D and shared.
    pub fn matmul(&mut self, a: Var, b: Var, trans_a: bool, trans_b: bool) -> Result<Var> {
        let (sa, sb) = (self.shape(a).to_vec(), self.shape(b).to_vec());
        let bad = |why: &str| Error::shape("matmul", &sa, &sb, why);
        if sa.len() < 2 || sb.len() < 2 {
            return Err(bad("both operands need at least 2 dimensions"));
        }
        let b_shared = sb.len() == 2 && sa.len() > 2;
        if !b_shared && sa[..sa.len() - 2] != sb[..sb.len() - 2] {
            return Err(bad("leading (batch) dimensions differ"));
        }
        let (ra, ca) = (sa[sa.len() - 2], sa[sa.len() - 1]);
        let (rb, cb) = (sb[sb.len() - 2], sb[sb.len() - 1]);
        let (m, k) = if trans_a { (ca, ra) } else { (ra, ca) };
        let (kb, n) = if trans_b { (cb, rb) } else { (rb, cb) };
        if k != kb {
            return Err(bad(&format!("inner dimensions differ ({k} vs {kb})")));
        }
        let batch = sa[..sa.len() - 2].iter().product();
        let dims = MatmulDims {
            batch,
            m,
            k,
            n,
            trans_a,
            trans_b,
            b_shared,
        };
        let mut shape = sa[..sa.len() - 2].to_vec();
        shape.extend([m, n]);
        let value = match self.device_of("matmul", &[a, b])? {
            Device::Cpu => {
                let mut c = vec![T::ZERO; dims.c_len()];
                cpu::matmul_forward(&dims, self.data(a)?, self.data(b)?, &mut c);
                Tensor::from_vec(c, &shape)?
            }
            dev => {
                on_gpu!(dev, be => gemm(be, &dims.gemm(), self.value(a), self.value(b), None, &shape))?
            }
        };
        Ok(self.push(value, Op::Matmul { a, b, dims }))
    }

    /// x [..., in] · wᵀ + b, with w [out, in] and b [out].
    pub fn linear(&mut self, x: Var, w: Var, b: Option<Var>) -> Result<Var> {
        self.linear_then(x, w, b, false)
    }

    /// relu(x · wᵀ + b) as one node: the activation is applied in place on the
    /// product, and its backward masks the incoming gradient in place.
    pub fn linear_relu(&mut self, x: Var, w: Var, b: Option<Var>) -> Result<Var> {
        self.linear_then(x, w, b, true)
    }

    fn linear_then(&mut self, x: Var, w: Var, b: Option<Var>, relu: bool) -> Result<Var> {
        let (sx, sw) = (self.shape(x).to_vec(), self.shape(w).to_vec());
        if sw.len() != 2 || sx[sx.len() - 1] != sw[1] {
            return Err(Error::shape(
                "linear",
                &sx,
                &sw,
                "x [..., in] needs a weight [out, in]",
            ));
        }
        let (d_in, d_out) = (sw[1], sw[0]);
        let device = self.layer_device("linear", [x, w], b, d_out, "bias must be [out]")?;
        let dims = LinearDims {
            rows: sx.iter().product::<usize>() / d_in.max(1),
            d_in,
            d_out,
        };
        let mut shape = sx.clone();
        *shape.last_mut().expect("rank >= 1") = d_out;
        let value = match device {
            Device::Cpu => {
                let bias = b.map(|b| self.data(b)).transpose()?;
                // Bias and relu in the GEMM's store.
                let y = cpu::linear_forward_new(&dims, self.data(x)?, self.data(w)?, bias, relu);
                Tensor::from_vec(y, &shape)?
            }
            dev => {
                let bias = b.map(|b| self.value(b));
                on_gpu!(dev, be => gemm(be, &dims.forward_gemm(relu), self.value(x), self.value(w), bias, &shape))?
            }
        };
        Ok(self.push(
            value,
            Op::Linear {
                x,
                w,
                b,
                dims,
                relu,
            },
        ))
    }
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
        cuda::sgemm(
            be,
            g,
            buf::<E, T>(a)?,
            buf::<E, T>(b)?,
            opt_buf::<E, T>(bias)?,
            c,
        )
    })
}

/// dA and dB of C = op(A) op(B), each in its stored layout, on the device of
/// the gradient `g`.
pub(crate) fn matmul_backward<T: Float>(
    d: &MatmulDims,
    a: &Tensor<T>,
    b: &Tensor<T>,
    g: &Tensor<T>,
) -> Result<[Tensor<T>; 2]> {
    match g.device() {
        Device::Cpu => {
            let (mut da, mut db) = (vec![T::ZERO; d.a_len()], vec![T::ZERO; d.b_len()]);
            let (xa, xb, gs) = (a.as_slice()?, b.as_slice()?, g.as_slice()?);
            cpu::matmul_backward(d, xa, xb, gs, &mut da, &mut db);
            Ok([
                Tensor::from_vec(da, a.shape())?,
                Tensor::from_vec(db, b.shape())?,
            ])
        }
        dev => on_gpu!(dev, be => gpu_matmul_backward(be, d, a, b, g)),
    }
}

fn gpu_matmul_backward<E: GpuExec, T: Float>(
    be: &E,
    d: &MatmulDims,
    a: &Tensor<T>,
    b: &Tensor<T>,
    dc: &Tensor<T>,
) -> Result<[Tensor<T>; 2]> {
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
        let g = plain_gemm(batch, n, k, rows, true, trans_a);
        gemm(be, &g, dc, a, None, b.shape())?
    } else {
        let g = plain_gemm(batch, k, n, rows, !trans_a, false);
        gemm(be, &g, a, dc, None, b.shape())?
    };
    Ok([da, db])
}

/// dx, dw and (when the node has a bias) db of a linear node whose output is
/// `out`, on the device of the gradient `g`.
pub(crate) fn linear_backward<T: Float>(
    d: &LinearDims,
    [x, w]: [&Tensor<T>; 2],
    has_bias: bool,
    relu: bool,
    out: &Tensor<T>,
    g: Tensor<T>,
) -> Result<(Tensor<T>, Tensor<T>, Option<Tensor<T>>)> {
    let g = if relu {
        unary::fused_relu_backward(out, g)?
    } else {
        g
    };
    if g.device() != Device::Cpu {
        let (dx, dw) = on_gpu!(g.device(), be => gpu_linear_backward(be, d, x, w, &g))?;
        let db = has_bias
            .then(|| elementwise::bias_backward(&g, d.d_out))
            .transpose()?;
        return Ok((dx, dw, db));
    }
    let (dx, dw, db) =
        cpu::linear_backward_new(d, x.as_slice()?, w.as_slice()?, g.as_slice()?, has_bias);
    Ok((
        Tensor::from_vec(dx, x.shape())?,
        Tensor::from_vec(dw, w.shape())?,
        db.map(|db| Tensor::from_vec(db, &[d.d_out])).transpose()?,
    ))
}

fn gpu_linear_backward<E: GpuExec, T: Float>(
    be: &E,
    d: &LinearDims,
    x: &Tensor<T>,
    w: &Tensor<T>,
    g: &Tensor<T>,
) -> Result<(Tensor<T>, Tensor<T>)> {
    let LinearDims { rows, d_in, d_out } = *d;
    let dx_gemm = plain_gemm(1, rows, d_in, d_out, false, false);
    let dx = gemm(be, &dx_gemm, g, w, None, x.shape())?;
    let dw_gemm = plain_gemm(1, d_out, d_in, rows, true, false);
    let dw = gemm(be, &dw_gemm, g, x, None, w.shape())?;
    Ok((dx, dw))
}
