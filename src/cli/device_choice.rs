//! `--device auto|cpu|cuda` for the commands that run the model.

use crate::device::Device;
use crate::error::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceArg {
    /// CUDA when this build can train on it, otherwise the CPU (said once).
    Auto,
    Cpu,
    Cuda,
}

/// The device to run on: `cuda` is GPU 0 or an error saying what is missing
/// (no driver, no GPU); `auto` falls back to the CPU and says so once on stderr.
pub fn resolve(arg: DeviceArg) -> Result<Device> {
    match arg {
        DeviceArg::Cpu => Ok(Device::Cpu),
        DeviceArg::Cuda => Device::cuda(0),
        DeviceArg::Auto => Ok(Device::auto()),
    }
}
