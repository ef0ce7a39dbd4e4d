//! Op families, one folder each: the descriptor shared by the CPU kernel, the
//! CUDA launch and the tape node, the kernels of both devices, and the tape's
//! forward and backward side by side. The `.cu` file of a family is under
//! `kernels/`. The shared machinery stays outside: the CPU GEMM and SIMD
//! helpers in `crate::cpu`, the CUDA runtime and launch helpers in
//! `crate::cuda`.

pub mod adamw;
pub mod attention;
pub mod conv1d;
pub mod dropout;
pub mod elementwise;
pub mod layer_norm;
pub mod losses;
pub mod matmul;
pub mod permute;
pub mod pool;
pub mod softmax;
pub mod unary;
