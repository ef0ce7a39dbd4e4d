//! Regression losses averaged over all elements: the [`LossKind`] descriptor,
//! the CPU kernels (`cpu`), the CUDA launches (`cuda`), and the tape's forward
//! and backward.

pub mod cpu;
pub mod cuda;
mod dims;

pub use dims::LossKind;

use crate::autograd::node::Op;
use crate::autograd::{Tape, Var};
use crate::cuda::exec::GpuExec;
use crate::cuda::tensors::{buf, new};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::on_gpu;
use crate::ops::elementwise::scaled;
use crate::tensor::Tensor;

impl<T: Float> Tape<'_, T> {
    /// Mean loss over all elements; pred and target have the same shape.
    pub fn loss(&mut self, pred: Var, target: Var, kind: LossKind) -> Result<Var> {
        self.same_shape("loss", pred, target)?;
        match kind {
            LossKind::Huber(d) if d.is_nan() || d <= 0.0 => {
                return Err(Error::Invalid(format!("loss: Huber delta {d} must be > 0")))
            }
            LossKind::Quantile(q) if q.is_nan() || q <= 0.0 || q >= 1.0 => {
                return Err(Error::Invalid(format!(
                    "loss: quantile {q} must be in (0, 1)"
                )))
            }
            _ => {}
        }
        let value = match self.device_of("loss", &[pred, target])? {
            Device::Cpu => Tensor::scalar(cpu::loss_forward(
                kind,
                self.data(pred)?,
                self.data(target)?,
            )),
            dev => on_gpu!(dev, be => gpu_forward(be, kind, self.value(pred), self.value(target)))?,
        };
        Ok(self.push(value, Op::Loss { pred, target, kind }))
    }
}

fn gpu_forward<E: GpuExec, T: Float>(
    be: &E,
    kind: LossKind,
    pred: &Tensor<T>,
    target: &Tensor<T>,
) -> Result<Tensor<T>> {
    new(be, &[1], |out| {
        cuda::loss_fwd(
            be,
            kind,
            pred.numel(),
            buf::<E, T>(pred)?,
            buf::<E, T>(target)?,
            out,
        )
    })
}

/// The gradients to pred and to target (its negation) of a loss node, on the
/// device of the gradient `g`.
pub(crate) fn backward<T: Float>(
    kind: LossKind,
    pred: &Tensor<T>,
    target: &Tensor<T>,
    g: &Tensor<T>,
) -> Result<[Tensor<T>; 2]> {
    let dp = match g.device() {
        Device::Cpu => {
            let mut dp = vec![T::ZERO; pred.numel()];
            let g = g.as_slice()?[0];
            cpu::loss_backward(kind, pred.as_slice()?, target.as_slice()?, g, &mut dp);
            Tensor::from_vec(dp, pred.shape())?
        }
        dev => on_gpu!(dev, be => gpu_backward(be, kind, pred, target, g))?,
    };
    let dt = scaled(&dp, T::from_f64(-1.0))?.reshape(target.shape())?;
    Ok([dp, dt])
}

fn gpu_backward<E: GpuExec, T: Float>(
    be: &E,
    kind: LossKind,
    pred: &Tensor<T>,
    target: &Tensor<T>,
    g: &Tensor<T>,
) -> Result<Tensor<T>> {
    new(be, pred.shape(), |dp| {
        cuda::loss_bwd(
            be,
            kind,
            pred.numel(),
            buf::<E, T>(pred)?,
            buf::<E, T>(target)?,
            buf::<E, T>(g)?,
            dp,
        )
    })
}
