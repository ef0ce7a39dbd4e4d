//! Mean pooling over one axis: the [`PoolDims`] descriptor, the CPU kernels
//! (`cpu`), the CUDA launches (`cuda`), and the tape's forward and backward.

pub mod cpu;
pub mod cuda;
mod dims;

pub use dims::PoolDims;

use crate::autograd::node::Op;
use crate::autograd::{Tape, Var};
use crate::cuda::exec::GpuExec;
use crate::cuda::tensors::{buf, new};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::on_gpu;
use crate::tensor::Tensor;

impl<T: Float> Tape<'_, T> {
    /// Mean over `axis`, which is removed (a 1-D input gives shape [1]).
    pub fn mean_pool(&mut self, x: Var, axis: usize) -> Result<Var> {
        let sx = self.shape(x).to_vec();
        if axis >= sx.len() || sx[axis] == 0 {
            return Err(Error::shape(
                "mean_pool",
                &sx,
                &[axis],
                "axis out of range or empty",
            ));
        }
        let dims = PoolDims::around(&sx, axis);
        let mut shape: Vec<usize> = sx
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != axis)
            .map(|(_, &d)| d)
            .collect();
        if shape.is_empty() {
            shape.push(1);
        }
        let xv = self.value(x);
        let value = match xv.device() {
            Device::Cpu => {
                let mut y = vec![T::ZERO; dims.outer * dims.inner];
                cpu::mean_pool_forward(&dims, xv.as_slice()?, &mut y);
                Tensor::from_vec(y, &shape)?
            }
            dev => on_gpu!(dev, be => gpu_forward(be, &dims, xv, &shape))?,
        };
        Ok(self.push(value, Op::MeanPool(x, dims)))
    }
}

/// The gradient to x [outer, n, inner] of a node y = mean_pool(x), given the
/// gradient of y, on the device of the gradient.
pub(crate) fn backward<T: Float>(d: &PoolDims, x: &Tensor<T>, g: &Tensor<T>) -> Result<Tensor<T>> {
    match g.device() {
        Device::Cpu => {
            let mut dx = vec![T::ZERO; x.numel()];
            cpu::mean_pool_backward(d, g.as_slice()?, &mut dx);
            Tensor::from_vec(dx, x.shape())
        }
        dev => on_gpu!(dev, be => gpu_backward(be, d, x, g)),
    }
}

fn gpu_forward<E: GpuExec, T: Float>(
    be: &E,
    d: &PoolDims,
    x: &Tensor<T>,
    shape: &[usize],
) -> Result<Tensor<T>> {
    new(be, shape, |y| {
        cuda::mean_pool_fwd(be, d, buf::<E, T>(x)?, y)
    })
}

fn gpu_backward<E: GpuExec, T: Float>(
    be: &E,
    d: &PoolDims,
    x: &Tensor<T>,
    g: &Tensor<T>,
) -> Result<Tensor<T>> {
    new(be, x.shape(), |dx| {
        cuda::mean_pool_bwd(be, d, buf::<E, T>(g)?, dx)
    })
}
