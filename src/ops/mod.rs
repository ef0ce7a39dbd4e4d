//! Op families, one folder each: the descriptor shared by the CPU kernel, the
//! CUDA launch and the tape node, the kernels of both devices, and the tape's
//! forward and backward side by side. The `.cu` file of a family is
//! `kernels/<family>.cu`. (Op families not moved here yet live in `cpu/`,
//! `cuda/ops.rs` and `autograd/ops.rs`.)

pub mod pool;
pub mod softmax;
pub mod unary;
