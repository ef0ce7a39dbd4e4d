//! Inverted dropout: the [`DropoutDims`] descriptor (which Philox draw), the
//! CPU kernels (`cpu`), the CUDA launch (`cuda`), and the tape's forward and
//! backward. The CPU keeps the forward's mask; a GPU redraws it.

pub mod cpu;
pub mod cuda;
pub(crate) mod dims;

pub use dims::DropoutDims;
use dims::DropoutSaved;

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
    /// Inverted dropout: identity unless in training mode. The mask of call c
    /// (c = the tape's dropout counter, starting at 0 and incremented by every
    /// training-mode dropout call, p = 0 included) comes from Philox(seed, c).
    pub fn dropout(&mut self, x: Var, p: f64) -> Result<Var> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::Invalid(format!(
                "dropout: p = {p} is outside [0, 1)"
            )));
        }
        if !self.is_training() {
            return Ok(x);
        }
        let (numel, rows) = (self.value(x).numel(), self.shape(x).first().copied());
        let dims = DropoutDims {
            p,
            seed: self.dropout_seed,
            call: self.dropout_counter,
            offset: match rows {
                Some(rows) if rows > 0 => (self.first_row * (numel / rows)) as u64,
                _ => 0,
            },
        };
        self.dropout_counter += 1;
        if p == 0.0 {
            return Ok(x);
        }
        let (value, keep) = match self.value(x).device() {
            Device::Cpu => {
                let mut y = vec![T::ZERO; self.value(x).numel()];
                let keep = cpu::dropout_forward(&dims, self.data(x)?, &mut y);
                (Tensor::from_vec(y, self.shape(x))?, keep)
            }
            dev => (
                on_gpu!(dev, be => gpu_apply(be, &dims, self.value(x)))?,
                Vec::new(),
            ),
        };
        Ok(self.push(value, Op::Dropout(DropoutSaved { x, dims, keep })))
    }
}

/// The gradient to x of a dropout node, on the device of the gradient `g`.
pub(crate) fn backward<T: Float>(s: &DropoutSaved, g: &Tensor<T>) -> Result<Tensor<T>> {
    match g.device() {
        Device::Cpu => {
            let mut dx = vec![T::ZERO; g.numel()];
            cpu::dropout_backward(s.dims.p, &s.keep, g.as_slice()?, &mut dx);
            Tensor::from_vec(dx, g.shape())
        }
        dev => on_gpu!(dev, be => gpu_apply(be, &s.dims, g)),
    }
}

/// The mask of `d` applied to x: the forward, and on the gradient the backward.
fn gpu_apply<E: GpuExec, T: Float>(be: &E, d: &DropoutDims, x: &Tensor<T>) -> Result<Tensor<T>> {
    new(be, x.shape(), |y| {
        cuda::dropout(be, d, x.numel(), buf::<E, T>(x)?, y)
    })
}
