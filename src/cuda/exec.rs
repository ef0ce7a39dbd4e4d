//! Device memory behind a `Tensor` (f32 only) and the choice of executor:
//! `GpuBuffer` names its backend, `GpuExec` turns it back into that backend's
//! buffer, and [`on_gpu!`] runs generic code on the backend of a device. Enum
//! dispatch once per op, generic (monomorphised) code inside.

use std::sync::Arc;

use super::driver::{self, CudaBackend, CudaBuffer};
use super::emu::{EmuBackend, EmuBuffer};
use super::launch::{Backend, DeviceBuffer};
use crate::device::Device;
use crate::error::{Error, Result};

/// f32 device memory, shared by the tensors that clone it (values on a tape
/// are never written after the op that made them, so sharing is safe).
#[derive(Clone)]
pub enum GpuBuffer {
    Cuda(Arc<CudaBuffer>),
    Emu(Arc<EmuBuffer>),
}

impl std::fmt::Debug for GpuBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuBuffer({}, {} bytes)", self.device(), self.bytes())
    }
}

impl GpuBuffer {
    pub fn device(&self) -> Device {
        match self {
            GpuBuffer::Cuda(_) => Device::Cuda(0),
            GpuBuffer::Emu(_) => Device::CudaEmu,
        }
    }

    pub fn bytes(&self) -> usize {
        match self {
            GpuBuffer::Cuda(b) => b.bytes(),
            GpuBuffer::Emu(b) => b.bytes(),
        }
    }

    /// Whether another tensor holds this memory too (writes in place must
    /// copy it first).
    pub fn is_shared(&self) -> bool {
        match self {
            GpuBuffer::Cuda(b) => Arc::strong_count(b) > 1,
            GpuBuffer::Emu(b) => Arc::strong_count(b) > 1,
        }
    }
}

/// A backend whose buffers can live in a [`GpuBuffer`].
pub trait GpuExec: Backend {
    fn device(&self) -> Device;
    fn unwrap(buf: &GpuBuffer) -> Result<&Self::Buffer>;
    fn wrap(buf: Self::Buffer) -> GpuBuffer;
}

fn wrong_backend(buf: &GpuBuffer, wanted: Device) -> Error {
    Error::Device(format!(
        "a buffer on {} used on {wanted}: move tensors with to_device first",
        buf.device()
    ))
}

impl GpuExec for CudaBackend {
    fn device(&self) -> Device {
        Device::Cuda(0)
    }
    fn unwrap(buf: &GpuBuffer) -> Result<&CudaBuffer> {
        match buf {
            GpuBuffer::Cuda(b) => Ok(b),
            other => Err(wrong_backend(other, Device::Cuda(0))),
        }
    }
    fn wrap(buf: CudaBuffer) -> GpuBuffer {
        GpuBuffer::Cuda(Arc::new(buf))
    }
}

impl GpuExec for EmuBackend {
    fn device(&self) -> Device {
        Device::CudaEmu
    }
    fn unwrap(buf: &GpuBuffer) -> Result<&EmuBuffer> {
        match buf {
            GpuBuffer::Emu(b) => Ok(b),
            other => Err(wrong_backend(other, Device::CudaEmu)),
        }
    }
    fn wrap(buf: EmuBuffer) -> GpuBuffer {
        GpuBuffer::Emu(Arc::new(buf))
    }
}

/// The process-wide CUDA backend of `ordinal` (GPU 0 only for now).
pub fn cuda_backend(ordinal: usize) -> Result<&'static CudaBackend> {
    if ordinal != 0 {
        return Err(Error::Device(format!(
            "cuda:{ordinal}: tensors run on GPU 0 only in this build"
        )));
    }
    driver::global()
}

/// `on_gpu!(device, be => expr)`: evaluates `expr` with `be` bound to the
/// executor of `device` (`&CudaBackend` or `&EmuBackend`); the CPU is an `Err`.
#[macro_export]
#[doc(hidden)]
macro_rules! on_gpu {
    ($device:expr, $be:ident => $body:expr) => {
        match $device {
            $crate::device::Device::Cuda(ordinal) => {
                let $be = $crate::cuda::exec::cuda_backend(ordinal)?;
                $body
            }
            $crate::device::Device::CudaEmu => {
                let $be = &$crate::cuda::EmuBackend;
                $body
            }
            $crate::device::Device::Cpu => Err($crate::error::Error::Device(
                "a GPU operation on a CPU device".into(),
            )),
        }
    };
}

/// Uploads f32 values to `device`.
pub fn upload(device: Device, data: &[f32]) -> Result<GpuBuffer> {
    on_gpu!(device, be => Ok(wrap_for(be, be.upload_f32(data)?)))
}

/// `E::wrap` where `E` is only known through a value (inside `on_gpu!`).
pub fn wrap_for<E: GpuExec>(_: &E, buf: E::Buffer) -> GpuBuffer {
    E::wrap(buf)
}

/// Downloads the first `len` f32 values of `buf`.
pub fn download(buf: &GpuBuffer, len: usize) -> Result<Vec<f32>> {
    match buf {
        GpuBuffer::Cuda(b) => driver::global()?.download_f32(b, len),
        GpuBuffer::Emu(b) => EmuBackend.download_f32(b, len),
    }
}
