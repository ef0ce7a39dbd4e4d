//! CUDA launches of the layer-norm kernels (`kernels/layer_norm.cu`).

use super::LayerNormDims;
use crate::cuda::args::{column_cfg, dim, f32s, warp_rows_cfg, ROWS_PER_CHUNK};
use crate::cuda::launch::{Arg, Backend, DeviceBuffer};
use crate::cuda::shared_constants::LN_WARPS;
use crate::error::Result;
use crate::ops::elementwise::cuda::column_sum;

/// y = layer_norm(x) over the last dim (x [rows, c]); saves mean and rstd [rows].
#[allow(clippy::too_many_arguments)]
pub fn layernorm_fwd<B: Backend>(
    be: &B,
    d: &LayerNormDims,
    x: &B::Buffer,
    w: &B::Buffer,
    b: &B::Buffer,
    y: &B::Buffer,
    mean: &B::Buffer,
    rstd: &B::Buffer,
) -> Result<()> {
    const OP: &str = "layernorm_fwd";
    let (rows, c) = (d.rows, d.dim);
    let args = [
        f32s(OP, "x", x, rows * c)?,
        f32s(OP, "w", w, c)?,
        f32s(OP, "b", b, c)?,
        f32s(OP, "y", y, rows * c)?,
        f32s(OP, "mean", mean, rows)?,
        f32s(OP, "rstd", rstd, rows)?,
        Arg::I32(dim(OP, rows)?),
        Arg::I32(dim(OP, c)?),
        Arg::F32(d.eps as f32),
    ];
    be.launch("layernorm_fwd", warp_rows_cfg(rows, LN_WARPS), &args)
}

/// dx, dw, db of layer_norm from dy and the saved mean/rstd.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_bwd<B: Backend>(
    be: &B,
    d: &LayerNormDims,
    x: &B::Buffer,
    w: &B::Buffer,
    mean: &B::Buffer,
    rstd: &B::Buffer,
    dy: &B::Buffer,
    dx: &B::Buffer,
    dw: &B::Buffer,
    db: &B::Buffer,
) -> Result<()> {
    const OP: &str = "layernorm_bwd";
    let (rows, c) = (d.rows, d.dim);
    let (xp, dyp) = (f32s(OP, "x", x, rows * c)?, f32s(OP, "dy", dy, rows * c)?);
    let (mp, rp) = (f32s(OP, "mean", mean, rows)?, f32s(OP, "rstd", rstd, rows)?);
    let (r, cc) = (Arg::I32(dim(OP, rows)?), Arg::I32(dim(OP, c)?));
    let args = [
        dyp,
        xp,
        f32s(OP, "w", w, c)?,
        mp,
        rp,
        f32s(OP, "dx", dx, rows * c)?,
        r,
        cc,
    ];
    be.launch("layernorm_bwd_input", warp_rows_cfg(rows, LN_WARPS), &args)?;
    let chunks = rows.div_ceil(ROWS_PER_CHUNK).max(1);
    if chunks == 1 {
        let args = [
            dyp,
            xp,
            mp,
            rp,
            f32s(OP, "dw", dw, c)?,
            f32s(OP, "db", db, c)?,
            r,
            cc,
            Arg::I32(ROWS_PER_CHUNK as i32),
        ];
        return be.launch("layernorm_bwd_params", column_cfg(c, 1)?, &args);
    }
    // Per-chunk sums first (many blocks), then one pass over the chunks.
    let (part_w, part_b) = (be.alloc(chunks * c * 4)?, be.alloc(chunks * c * 4)?);
    let args = [
        dyp,
        xp,
        mp,
        rp,
        Arg::Ptr(part_w.addr()),
        Arg::Ptr(part_b.addr()),
        r,
        cc,
        Arg::I32(ROWS_PER_CHUNK as i32),
    ];
    be.launch("layernorm_bwd_params", column_cfg(c, chunks)?, &args)?;
    column_sum(be, chunks, c, &part_w, dw)?;
    column_sum(be, chunks, c, &part_b, db)
}
