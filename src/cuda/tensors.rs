//! Tensors in device memory as the launches see them: the executor's buffer
//! behind a tensor, and a new tensor whose buffer a launch fills.

use super::exec::GpuExec;
use crate::error::Result;
use crate::float::Float;
use crate::tensor::Tensor;

/// The executor's buffer behind a tensor.
pub(crate) fn buf<E: GpuExec, T: Float>(t: &Tensor<T>) -> Result<&E::Buffer> {
    E::unwrap(t.gpu_buffer()?)
}

pub(crate) fn opt_buf<E: GpuExec, T: Float>(t: Option<&Tensor<T>>) -> Result<Option<&E::Buffer>> {
    t.map(buf::<E, T>).transpose()
}

/// Uninitialised device memory for `n` floats (at least one: the emulator and
/// the allocator refuse empty buffers).
pub(crate) fn alloc<E: GpuExec>(be: &E, n: usize) -> Result<E::Buffer> {
    be.alloc(n.max(1) * 4)
}

/// A new tensor of `shape` whose buffer `fill` writes completely.
pub(crate) fn new<E: GpuExec, T: Float>(
    be: &E,
    shape: &[usize],
    fill: impl FnOnce(&E::Buffer) -> Result<()>,
) -> Result<Tensor<T>> {
    let y = alloc(be, shape.iter().product())?;
    fill(&y)?;
    Tensor::from_gpu(E::wrap(y), shape)
}
