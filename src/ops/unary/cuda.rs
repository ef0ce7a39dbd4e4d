//! CUDA launches of the unary kernels (`kernels/unary.cu`).

use super::Unary;
use crate::cuda::args::{f32s, grid_stride_cfg};
use crate::cuda::launch::{Arg, Backend};
use crate::error::Result;

/// The forward and backward kernels of `op`.
fn kernels(op: Unary) -> [&'static str; 2] {
    match op {
        Unary::Relu => ["relu_fwd", "relu_bwd"],
        Unary::Gelu => ["gelu_fwd", "gelu_bwd"],
    }
}

/// y = op(x).
pub fn unary_fwd<B: Backend>(
    be: &B,
    op: Unary,
    n: usize,
    x: &B::Buffer,
    y: &B::Buffer,
) -> Result<()> {
    const OP: &str = "unary_fwd";
    be.launch(
        kernels(op)[0],
        grid_stride_cfg(n),
        &[
            f32s(OP, "x", x, n)?,
            f32s(OP, "y", y, n)?,
            Arg::I64(n as i64),
        ],
    )
}

/// dx = dy * op'(x).
pub fn unary_bwd<B: Backend>(
    be: &B,
    op: Unary,
    n: usize,
    x: &B::Buffer,
    dy: &B::Buffer,
    dx: &B::Buffer,
) -> Result<()> {
    const OP: &str = "unary_bwd";
    let args = [
        f32s(OP, "x", x, n)?,
        f32s(OP, "dy", dy, n)?,
        f32s(OP, "dx", dx, n)?,
        Arg::I64(n as i64),
    ];
    be.launch(kernels(op)[1], grid_stride_cfg(n), &args)
}
