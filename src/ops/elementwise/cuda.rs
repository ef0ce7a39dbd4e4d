//! CUDA launches of the pointwise kernels and the column sum (the gradient of
//! a bias) in `kernels/elementwise.cu`.

use crate::cuda::args::{column_cfg, dim, f32s, grid_stride_cfg, ROWS_PER_CHUNK};
use crate::cuda::launch::{Arg, Backend, DeviceBuffer};
use crate::error::Result;

/// Pointwise ops of two inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    Add,
    Mul,
}

/// y = a op b; y may be the same buffer as a or b.
pub fn binary<B: Backend>(
    be: &B,
    op: Binary,
    n: usize,
    a: &B::Buffer,
    b: &B::Buffer,
    y: &B::Buffer,
) -> Result<()> {
    const OP: &str = "binary";
    let kernel = match op {
        Binary::Add => "add",
        Binary::Mul => "mul",
    };
    let args = [
        f32s(OP, "a", a, n)?,
        f32s(OP, "b", b, n)?,
        f32s(OP, "y", y, n)?,
        Arg::I64(n as i64),
    ];
    be.launch(kernel, grid_stride_cfg(n), &args)
}

/// y = s x (in place allowed).
pub fn scale<B: Backend>(be: &B, n: usize, s: f32, x: &B::Buffer, y: &B::Buffer) -> Result<()> {
    const OP: &str = "scale";
    let args = [
        f32s(OP, "x", x, n)?,
        f32s(OP, "y", y, n)?,
        Arg::F32(s),
        Arg::I64(n as i64),
    ];
    be.launch("scale", grid_stride_cfg(n), &args)
}

/// y[r, c] = x[r, c] + bias[c], x [rows, c].
pub fn add_bias<B: Backend>(
    be: &B,
    rows: usize,
    c: usize,
    x: &B::Buffer,
    bias: &B::Buffer,
    y: &B::Buffer,
) -> Result<()> {
    const OP: &str = "add_bias";
    let n = rows * c;
    let args = [
        f32s(OP, "x", x, n)?,
        f32s(OP, "bias", bias, c)?,
        f32s(OP, "y", y, n)?,
        Arg::I64(n as i64),
        Arg::I32(dim(OP, c)?),
    ];
    be.launch("add_bias", grid_stride_cfg(n), &args)
}

/// out[c] = sum over rows of x [rows, c]; tall inputs are summed per chunk of
/// rows first (enough blocks to fill a GPU), then over the chunks.
pub fn column_sum<B: Backend>(
    be: &B,
    rows: usize,
    c: usize,
    x: &B::Buffer,
    out: &B::Buffer,
) -> Result<()> {
    const OP: &str = "column_sum";
    let xp = f32s(OP, "x", x, rows * c)?;
    let outp = f32s(OP, "out", out, c)?;
    let (r, cc) = (Arg::I32(dim(OP, rows)?), Arg::I32(dim(OP, c)?));
    let chunks = rows.div_ceil(ROWS_PER_CHUNK).max(1);
    if chunks == 1 {
        return be.launch(
            "column_sum",
            column_cfg(c, 1)?,
            &[xp, outp, r, cc, Arg::I32(ROWS_PER_CHUNK as i32)],
        );
    }
    let partial = be.alloc(chunks * c * 4)?;
    be.launch(
        "column_sum",
        column_cfg(c, chunks)?,
        &[
            xp,
            Arg::Ptr(partial.addr()),
            r,
            cc,
            Arg::I32(ROWS_PER_CHUNK as i32),
        ],
    )?;
    let args = [
        Arg::Ptr(partial.addr()),
        outp,
        Arg::I32(chunks as i32),
        cc,
        Arg::I32(chunks as i32),
    ];
    be.launch("column_sum", column_cfg(c, 1)?, &args)
}
