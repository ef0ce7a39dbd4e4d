//! The CUDA backend: hand-written kernels (`kernels/*.cu`) and the runtime that
//! launches them.
//!
//! One launch layer serves two executors: the GPU through cudarc
//! ([`driver::CudaBackend`]) and the CUDA-execution emulator that runs the same
//! kernels on the CPU ([`emu::EmuBackend`]), so the tests exercise the very
//! launch configurations the GPU gets.

pub mod driver;
pub mod emu;
pub mod launch;
pub mod modules;
pub mod ops;

pub use driver::CudaBackend;
pub use emu::EmuBackend;
pub use launch::{Arg, Backend, DeviceBuffer, LaunchCfg};
pub use modules::Module;
