//! Axis permutation: the CPU kernel (`cpu`), the CUDA launch (`cuda`), and the
//! tape's forward and backward (the inverse permutation of the gradient).

pub mod cpu;
pub mod cuda;

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
    /// Reorders axes: output axis i is input axis perm[i].
    pub fn permute(&mut self, x: Var, perm: &[usize]) -> Result<Var> {
        let sx = self.shape(x);
        let mut seen = vec![false; sx.len()];
        let valid = perm.len() == sx.len()
            && perm
                .iter()
                .all(|&p| p < sx.len() && !std::mem::replace(&mut seen[p], true));
        if !valid {
            return Err(Error::shape(
                "permute",
                sx,
                perm,
                "perm must be a permutation of the axes",
            ));
        }
        let value = permuted(self.value(x), perm)?;
        Ok(self.push(value, Op::Permute(x, perm.to_vec())))
    }
}

/// x with its axes reordered, on the device of x.
fn permuted<T: Float>(x: &Tensor<T>, perm: &[usize]) -> Result<Tensor<T>> {
    match x.device() {
        Device::Cpu => {
            let mut y = vec![T::ZERO; x.numel()];
            cpu::permute(x.shape(), perm, x.as_slice()?, &mut y);
            Tensor::from_vec(y, &cpu::permuted_shape(x.shape(), perm))
        }
        dev => on_gpu!(dev, be => gpu_permute(be, x, perm)),
    }
}

/// The gradient to x of y = permute(x, perm), from that of y.
pub(crate) fn backward<T: Float>(perm: &[usize], g: &Tensor<T>) -> Result<Tensor<T>> {
    permuted(g, &cpu::inverse_permutation(perm))
}

fn gpu_permute<E: GpuExec, T: Float>(be: &E, x: &Tensor<T>, perm: &[usize]) -> Result<Tensor<T>> {
    new(be, &cpu::permuted_shape(x.shape(), perm), |y| {
        cuda::permute(be, x.shape(), perm, buf::<E, T>(x)?, y)
    })
}
