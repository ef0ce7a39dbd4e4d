//! The optimizer's kernels: the AdamW step and the sum of squares used by
//! gradient clipping, on the CPU (`cpu`) and fused on a GPU (`cuda`). The
//! optimizer's state, its API and the schedules live in [`crate::optim`],
//! which calls these on each parameter's device.

pub mod cpu;
pub mod cuda;

pub use cuda::AdamStep;

use crate::cuda::exec::GpuExec;
use crate::cuda::tensors::buf;
use crate::error::Result;
use crate::float::Float;
use crate::on_gpu;
use crate::tensor::Tensor;

/// Σ x² of a device tensor (for the global gradient norm).
pub(crate) fn sum_squares<T: Float>(t: &Tensor<T>) -> Result<f64> {
    on_gpu!(t.device(), be => {
        let norm = cuda::l2_norm(be, t.numel(), buf_of(be, t)?)?;
        Ok(norm * norm)
    })
}

/// One AdamW update of a device parameter with its gradient and moments.
pub(crate) fn step_on_gpu<T: Float>(
    step: &AdamStep,
    p: &Tensor<T>,
    g: &Tensor<T>,
    m: &Tensor<T>,
    v: &Tensor<T>,
) -> Result<()> {
    on_gpu!(p.device(), be => cuda::adamw_step(
        be,
        p.numel(),
        step,
        buf_of(be, p)?,
        buf_of(be, g)?,
        buf_of(be, m)?,
        buf_of(be, v)?,
    ))
}

/// The buffer of `t` on the executor `on_gpu!` picked (names its type).
fn buf_of<'a, E: GpuExec, T: Float>(_: &E, t: &'a Tensor<T>) -> Result<&'a E::Buffer> {
    buf::<E, T>(t)
}
