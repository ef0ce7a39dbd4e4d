//! convformer: a CNN+Transformer engine that predicts the peak memory of cloud
//! workloads, with hand-written CPU kernels (rayon; f32 GEMM by the engine's own
//! AVX2/FMA kernel, matrixmultiply for f64 and CPUs without AVX2), CUDA kernels
//! loaded through cudarc, a define-by-run autograd tape, and a BOHB tuner.

pub mod autograd;
pub mod bohb;
pub mod cli;
pub mod cpu;
pub mod cuda;
pub mod data;
pub mod device;
pub mod error;
pub mod float;
pub mod font;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod rng;
pub mod tensor;
pub mod ticks;
pub mod train;

pub use autograd::{ParamId, ParamStore, Tape, Var};
pub use device::Device;
pub use error::{Error, Result};
pub use float::Float;
pub use tensor::Tensor;
