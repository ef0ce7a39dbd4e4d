//! Softmax over the last axis: the CPU kernels (`cpu`, shared with
//! attention), the CUDA launches (`cuda`), and the tape's forward and
//! backward. Its backward needs only the node's output.

pub mod cpu;
pub mod cuda;

use crate::autograd::node::Op;
use crate::autograd::{Tape, Var};
use crate::cuda::exec::GpuExec;
use crate::cuda::tensors::{buf, new};
use crate::device::Device;
use crate::error::Result;
use crate::float::Float;
use crate::on_gpu;
use crate::tensor::Tensor;

impl<T: Float> Tape<'_, T> {
    /// Softmax over the last dimension.
    pub fn softmax(&mut self, x: Var) -> Result<Var> {
        let value = forward(self.value(x))?;
        Ok(self.push(value, Op::Softmax(x)))
    }
}

/// The width of the rows softmax runs over (the last dimension).
fn row_width<T: Float>(x: &Tensor<T>) -> usize {
    *x.shape().last().expect("rank >= 1")
}

fn forward<T: Float>(x: &Tensor<T>) -> Result<Tensor<T>> {
    let dim = row_width(x);
    match x.device() {
        Device::Cpu => {
            let mut y = vec![T::ZERO; x.numel()];
            if dim > 0 {
                cpu::softmax_forward(dim, x.as_slice()?, &mut y);
            }
            Tensor::from_vec(y, x.shape())
        }
        dev => on_gpu!(dev, be => gpu_forward(be, dim, x)),
    }
}

/// The gradient to the input of a node y = softmax(x), given y and the
/// gradient of y, on the device of the gradient.
pub(crate) fn backward<T: Float>(y: &Tensor<T>, g: &Tensor<T>) -> Result<Tensor<T>> {
    let dim = row_width(y);
    match g.device() {
        Device::Cpu => {
            let mut dx = vec![T::ZERO; y.numel()];
            if dim > 0 {
                cpu::softmax_backward(dim, y.as_slice()?, g.as_slice()?, &mut dx);
            }
            Tensor::from_vec(dx, y.shape())
        }
        dev => on_gpu!(dev, be => gpu_backward(be, dim, y, g)),
    }
}

fn gpu_forward<E: GpuExec, T: Float>(be: &E, dim: usize, x: &Tensor<T>) -> Result<Tensor<T>> {
    new(be, x.shape(), |y| {
        cuda::softmax_fwd(be, x.numel() / dim.max(1), dim, buf::<E, T>(x)?, y)
    })
}

fn gpu_backward<E: GpuExec, T: Float>(
    be: &E,
    dim: usize,
    y: &Tensor<T>,
    g: &Tensor<T>,
) -> Result<Tensor<T>> {
    let rows = y.numel() / dim.max(1);
    new(be, y.shape(), |dx| {
        cuda::softmax_bwd(be, rows, dim, buf::<E, T>(y)?, buf::<E, T>(g)?, dx)
    })
}
