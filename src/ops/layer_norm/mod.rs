//! Layer normalisation over the last axis with affine weight and bias: the
//! [`LayerNormDims`] descriptor, the CPU kernels (`cpu`), the CUDA launches
//! (`cuda`), and the tape's forward and backward. The forward saves each row's
//! mean and rstd on the device of x, so the backward never recomputes them.

pub mod cpu;
pub mod cuda;
pub(crate) mod dims;

pub use dims::LayerNormDims;
use dims::LayerNormSaved;

use crate::autograd::node::Op;
use crate::autograd::{Tape, Var};
use crate::cuda::exec::GpuExec;
use crate::cuda::tensors::{alloc, buf};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::on_gpu;
use crate::tensor::Tensor;

impl<T: Float> Tape<'_, T> {
    /// Layer normalisation over the last dimension with affine w, b [D].
    pub fn layer_norm(&mut self, x: Var, w: Var, b: Var, eps: f64) -> Result<Var> {
        let sx = self.shape(x).to_vec();
        let dim = sx[sx.len() - 1];
        for p in [w, b] {
            if self.shape(p) != [dim] {
                return Err(Error::shape(
                    "layer_norm",
                    &sx,
                    self.shape(p),
                    "weight and bias must be [last dim of x]",
                ));
            }
        }
        let dims = LayerNormDims {
            rows: sx.iter().product::<usize>() / dim.max(1),
            dim,
            eps,
        };
        let (xv, wv, bv) = (self.value(x), self.value(w), self.value(b));
        let [value, mean, rstd] = match self.device_of("layer_norm", &[x, w, b])? {
            Device::Cpu => cpu_forward(&dims, xv, wv, bv)?,
            dev => on_gpu!(dev, be => gpu_forward(be, &dims, xv, wv, bv))?,
        };
        let saved = LayerNormSaved {
            x,
            w,
            b,
            dims,
            mean,
            rstd,
        };
        Ok(self.push(value, Op::LayerNorm(saved)))
    }
}

/// y, mean and rstd.
fn cpu_forward<T: Float>(
    d: &LayerNormDims,
    x: &Tensor<T>,
    w: &Tensor<T>,
    b: &Tensor<T>,
) -> Result<[Tensor<T>; 3]> {
    let (mut y, mut mean, mut rstd) = (
        vec![T::ZERO; x.numel()],
        vec![T::ZERO; d.rows],
        vec![T::ZERO; d.rows],
    );
    cpu::layer_norm_forward(
        d,
        x.as_slice()?,
        w.as_slice()?,
        b.as_slice()?,
        &mut y,
        &mut mean,
        &mut rstd,
    );
    let stats = [d.rows];
    Ok([
        Tensor::from_vec(y, x.shape())?,
        Tensor::from_vec(mean, &stats)?,
        Tensor::from_vec(rstd, &stats)?,
    ])
}

fn gpu_forward<E: GpuExec, T: Float>(
    be: &E,
    d: &LayerNormDims,
    x: &Tensor<T>,
    w: &Tensor<T>,
    b: &Tensor<T>,
) -> Result<[Tensor<T>; 3]> {
    let (y, mean, rstd) = (
        alloc(be, x.numel())?,
        alloc(be, d.rows)?,
        alloc(be, d.rows)?,
    );
    cuda::layernorm_fwd(
        be,
        d,
        buf::<E, T>(x)?,
        buf::<E, T>(w)?,
        buf::<E, T>(b)?,
        &y,
        &mean,
        &rstd,
    )?;
    let stats = [d.rows.max(1)];
    Ok([
        Tensor::from_gpu(E::wrap(y), x.shape())?,
        Tensor::from_gpu(E::wrap(mean), &stats)?,
        Tensor::from_gpu(E::wrap(rstd), &stats)?,
    ])
}

/// dx, dw and db of a layer-norm node, on the device of the gradient `g`.
pub(crate) fn backward<T: Float>(
    s: &LayerNormSaved<T>,
    x: &Tensor<T>,
    w: &Tensor<T>,
    g: &Tensor<T>,
) -> Result<[Tensor<T>; 3]> {
    let d = &s.dims;
    match g.device() {
        Device::Cpu => {
            let mut dx = vec![T::ZERO; x.numel()];
            let (mut dw, mut db) = (vec![T::ZERO; d.dim], vec![T::ZERO; d.dim]);
            cpu::layer_norm_backward(
                d,
                x.as_slice()?,
                w.as_slice()?,
                s.mean.as_slice()?,
                s.rstd.as_slice()?,
                g.as_slice()?,
                &mut dx,
                &mut dw,
                &mut db,
            );
            Ok([
                Tensor::from_vec(dx, x.shape())?,
                Tensor::from_vec(dw, &[d.dim])?,
                Tensor::from_vec(db, &[d.dim])?,
            ])
        }
        dev => on_gpu!(dev, be => gpu_backward(be, s, x, w, g)),
    }
}

fn gpu_backward<E: GpuExec, T: Float>(
    be: &E,
    s: &LayerNormSaved<T>,
    x: &Tensor<T>,
    w: &Tensor<T>,
    g: &Tensor<T>,
) -> Result<[Tensor<T>; 3]> {
    let d = &s.dims;
    let (dx, dw, db) = (alloc(be, x.numel())?, alloc(be, d.dim)?, alloc(be, d.dim)?);
    cuda::layernorm_bwd(
        be,
        d,
        buf::<E, T>(x)?,
        buf::<E, T>(w)?,
        buf::<E, T>(&s.mean)?,
        buf::<E, T>(&s.rstd)?,
        buf::<E, T>(g)?,
        &dx,
        &dw,
        &db,
    )?;
    Ok([
        Tensor::from_gpu(E::wrap(dx), x.shape())?,
        Tensor::from_gpu(E::wrap(dw), &[d.dim])?,
        Tensor::from_gpu(E::wrap(db), &[d.dim])?,
    ])
}
