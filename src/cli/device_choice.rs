//! `--device auto|cpu|cuda` for the commands that run the model.

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceArg {
    /// CUDA when this build can train on it, otherwise the CPU (said once).
    Auto,
    Cpu,
    Cuda,
}

/// The device to run on. This build trains on the CPU only: the CUDA training
/// backend is a separate piece, so `cuda` is refused with the reason.
pub fn resolve(arg: DeviceArg, quiet: bool) -> Result<crate::Device> {
    match arg {
        DeviceArg::Cpu => Ok(crate::Device::Cpu),
        DeviceArg::Cuda => Err(Error::Device(
            "this build has no CUDA training backend yet; use --device cpu (or auto)".into(),
        )),
        DeviceArg::Auto => {
            if !quiet {
                eprintln!("device: no CUDA training backend in this build, running on the CPU");
            }
            Ok(crate::Device::Cpu)
        }
    }
}
