//! The CUDA backend: hand-written kernels (`kernels/*.cu`) and the runtime that
//! launches them.
//!
//! One launch layer serves two executors: the GPU through cudarc
//! ([`driver::CudaBackend`]) and the CUDA-execution emulator that runs the same
//! kernels on the CPU ([`emu::EmuBackend`]), so the tests exercise the very
//! launch configurations the GPU gets.

pub(crate) mod args;
pub mod driver;
pub mod emu;
pub mod exec;
pub mod launch;
pub mod libs;
pub mod modules;
pub mod shared_constants;
pub(crate) mod tensors;

pub use driver::CudaBackend;
pub use emu::EmuBackend;
pub use exec::{GpuBuffer, GpuExec};
pub use launch::{Arg, Backend, DeviceBuffer, LaunchCfg};
pub use modules::Module;

use crate::device::Device;
use crate::error::Result;

impl Device {
    /// GPU `ordinal`, checked: without the NVIDIA driver or that GPU this is an
    /// `Err` saying what is missing (never a panic).
    pub fn cuda(ordinal: usize) -> Result<Device> {
        driver::cuda_device(ordinal)
    }

    /// GPU 0 when it can be used, else the CPU; the fallback is reported once
    /// per process on stderr.
    pub fn auto() -> Device {
        match driver::cuda_device(0) {
            Ok(d) => d,
            Err(e) => {
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| eprintln!("--device auto: using the CPU ({e})"));
                Device::Cpu
            }
        }
    }
}
