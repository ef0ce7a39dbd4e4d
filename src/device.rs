//! Where a tensor lives. Enum dispatch (as candle's `Storage`): no trait objects
//! on hot paths.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Device {
    /// Host memory; kernels run on rayon's thread pool.
    #[default]
    Cpu,
    /// CUDA device with this ordinal; filled in by the CUDA backend.
    Cuda(usize),
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}
