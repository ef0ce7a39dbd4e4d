//! Where a tensor lives. Enum dispatch (as candle's `Storage`): no trait objects
//! on hot paths.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Device {
    /// Host memory; kernels run on rayon's thread pool.
    #[default]
    Cpu,
    /// CUDA device with this ordinal (`Device::cuda` checks that it exists).
    Cuda(usize),
    /// The CUDA-execution emulator: the same kernels and launches run on the
    /// CPU; for the tests of the GPU path on machines without a GPU.
    CudaEmu,
}

impl Device {
    pub fn is_gpu(self) -> bool {
        !matches!(self, Device::Cpu)
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
            Device::CudaEmu => write!(f, "cuda-emulator"),
        }
    }
}
