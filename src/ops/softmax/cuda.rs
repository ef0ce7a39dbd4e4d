//! CUDA launches of the softmax kernels (`kernels/softmax.cu`).

use crate::cuda::args::{dim, f32s, warp_rows_cfg};
use crate::cuda::launch::{Arg, Backend};
use crate::cuda::shared_constants::SOFTMAX_WARPS;
use crate::error::Result;

/// Softmax over the last dim of [rows, c].
pub fn softmax_fwd<B: Backend>(
    be: &B,
    rows: usize,
    c: usize,
    x: &B::Buffer,
    y: &B::Buffer,
) -> Result<()> {
    const OP: &str = "softmax_fwd";
    let args = [
        f32s(OP, "x", x, rows * c)?,
        f32s(OP, "y", y, rows * c)?,
        Arg::I32(dim(OP, rows)?),
        Arg::I32(dim(OP, c)?),
    ];
    be.launch("softmax_fwd", warp_rows_cfg(rows, SOFTMAX_WARPS), &args)
}

pub fn softmax_bwd<B: Backend>(
    be: &B,
    rows: usize,
    c: usize,
    y: &B::Buffer,
    dy: &B::Buffer,
    dx: &B::Buffer,
) -> Result<()> {
    const OP: &str = "softmax_bwd";
    let n = rows * c;
    let args = [
        f32s(OP, "y", y, n)?,
        f32s(OP, "dy", dy, n)?,
        f32s(OP, "dx", dx, n)?,
        Arg::I32(dim(OP, rows)?),
        Arg::I32(dim(OP, c)?),
    ];
    be.launch("softmax_bwd", warp_rows_cfg(rows, SOFTMAX_WARPS), &args)
}
