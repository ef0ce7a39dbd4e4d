//! Unary activations (relu, gelu): the [`Unary`] descriptor, the CPU kernels
//! (`cpu`), the CUDA launches (`cuda`), and the tape's forward and backward.

pub mod cpu;
pub mod cuda;
mod kind;

pub use kind::Unary;

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
    pub fn relu(&mut self, x: Var) -> Result<Var> {
        self.unary(x, Unary::Relu)
    }

    /// GELU, tanh approximation.
    pub fn gelu(&mut self, x: Var) -> Result<Var> {
        self.unary(x, Unary::Gelu)
    }

    fn unary(&mut self, x: Var, op: Unary) -> Result<Var> {
        let value = forward(op, self.value(x))?;
        Ok(self.push(value, Op::Unary(x, op)))
    }
}

/// op(x), on the device of x.
pub(crate) fn forward<T: Float>(op: Unary, x: &Tensor<T>) -> Result<Tensor<T>> {
    match x.device() {
        Device::Cpu => {
            let mut y = vec![T::ZERO; x.numel()];
            cpu::forward(op, x.as_slice()?, &mut y);
            Tensor::from_vec(y, x.shape())
        }
        dev => on_gpu!(dev, be => gpu_forward(be, op, x)),
    }
}

/// The gradient to x of a node y = op(x), given the gradient of y, on the
/// device of the gradient.
pub(crate) fn backward<T: Float>(op: Unary, x: &Tensor<T>, g: &Tensor<T>) -> Result<Tensor<T>> {
    match g.device() {
        Device::Cpu => {
            let mut dx = vec![T::ZERO; g.numel()];
            cpu::backward(op, x.as_slice()?, g.as_slice()?, &mut dx);
            Tensor::from_vec(dx, x.shape())
        }
        dev => on_gpu!(dev, be => gpu_backward(be, op, x, g)),
    }
}

/// The gradient of a node with relu fused in (`linear_relu`, `conv1d_relu`),
/// taken back through the relu from the node's output `y` (> 0 exactly where
/// its input is): in place on the CPU, into a new tensor on a GPU.
pub(crate) fn fused_relu_backward<T: Float>(y: &Tensor<T>, mut g: Tensor<T>) -> Result<Tensor<T>> {
    match g.device() {
        Device::Cpu => {
            cpu::relu_backward_inplace(y.as_slice()?, g.as_mut_slice()?);
            Ok(g)
        }
        dev => on_gpu!(dev, be => gpu_backward(be, Unary::Relu, y, &g)),
    }
}

fn gpu_forward<E: GpuExec, T: Float>(be: &E, op: Unary, x: &Tensor<T>) -> Result<Tensor<T>> {
    new(be, x.shape(), |y| {
        cuda::unary_fwd(be, op, x.numel(), buf::<E, T>(x)?, y)
    })
}

fn gpu_backward<E: GpuExec, T: Float>(
    be: &E,
    op: Unary,
    x: &Tensor<T>,
    g: &Tensor<T>,
) -> Result<Tensor<T>> {
    new(be, x.shape(), |dx| {
        cuda::unary_bwd(be, op, g.numel(), buf::<E, T>(x)?, buf::<E, T>(g)?, dx)
    })
}
