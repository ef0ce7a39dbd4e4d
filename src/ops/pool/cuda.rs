//! CUDA launches of the mean-pool kernels (`kernels/pool.cu`).

use super::PoolDims;
use crate::cuda::args::{dim, f32s, grid_stride_cfg};
use crate::cuda::launch::{Arg, Backend};
use crate::error::Result;

/// y [outer, inner] = mean over the pooled axis of x [outer, n, inner].
pub fn mean_pool_fwd<B: Backend>(be: &B, d: &PoolDims, x: &B::Buffer, y: &B::Buffer) -> Result<()> {
    const OP: &str = "mean_pool_fwd";
    let PoolDims { outer, n, inner } = *d;
    let args = [
        f32s(OP, "x", x, outer * n * inner)?,
        f32s(OP, "y", y, outer * inner)?,
        Arg::I64(outer as i64),
        Arg::I32(dim(OP, n)?),
        Arg::I64(inner as i64),
    ];
    be.launch("mean_pool_fwd", grid_stride_cfg(outer * inner), &args)
}

/// dx [outer, n, inner] = dy [outer, inner] / n.
pub fn mean_pool_bwd<B: Backend>(
    be: &B,
    d: &PoolDims,
    dy: &B::Buffer,
    dx: &B::Buffer,
) -> Result<()> {
    const OP: &str = "mean_pool_bwd";
    let PoolDims { outer, n, inner } = *d;
    let args = [
        f32s(OP, "dy", dy, outer * inner)?,
        f32s(OP, "dx", dx, outer * n * inner)?,
        Arg::I64(outer as i64),
        Arg::I32(dim(OP, n)?),
        Arg::I64(inner as i64),
    ];
    be.launch("mean_pool_bwd", grid_stride_cfg(outer * n * inner), &args)
}
