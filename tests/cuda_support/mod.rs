//! The CUDA tests' shared runs: kernels against the CPU kernels (`vs_cpu`) and a
//! short training run on the CPU and on a GPU device (`training`). The
//! references and checks they use are in tests/support.

// Each test file that includes this uses a part of it.
#![allow(dead_code)]

pub mod training;
pub mod vs_cpu;
