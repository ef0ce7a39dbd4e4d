//! CUDA launches of the stride-1 convolution kernels (`kernels/conv1d.cu`).

use super::Conv1dDims;
use crate::cuda::args::{dim, f32s, grid_cfg, opt_f32s, SHARED_LIMIT};
use crate::cuda::launch::{Arg, Backend, LaunchCfg};
use crate::cuda::shared_constants::{CONV_CI_CHUNK, CONV_TILE};
use crate::error::{Error, Result};

impl Conv1dDims {
    fn check(&self) -> Result<()> {
        if self.kernel == 0
            || self.out_len() == 0
            || self.batch == 0
            || self.c_in == 0
            || self.c_out == 0
        {
            return Err(Error::shape(
                "conv1d",
                &[self.batch, self.c_in, self.len],
                &[self.c_out, self.c_in, self.kernel],
                "empty input, kernel or output",
            ));
        }
        Ok(())
    }
}

pub fn conv1d_fwd<B: Backend>(
    be: &B,
    s: &Conv1dDims,
    x: &B::Buffer,
    w: &B::Buffer,
    bias: Option<&B::Buffer>,
    y: &B::Buffer,
) -> Result<()> {
    const OP: &str = "conv1d_fwd";
    s.check()?;
    let (lout, window) = (s.out_len(), CONV_TILE + s.kernel - 1);
    let x = f32s(OP, "x", x, s.batch * s.c_in * s.len)?;
    let w = f32s(OP, "w", w, s.c_out * s.c_in * s.kernel)?;
    let bias = opt_f32s(OP, "bias", bias, s.c_out)?;
    let y = f32s(OP, "y", y, s.batch * s.c_out * lout)?;
    let tiles = lout.div_ceil(CONV_TILE);
    let cin1_shared = (window + s.c_out * s.kernel) * 4;
    if s.c_in == 1 && cin1_shared <= SHARED_LIMIT {
        let cfg = grid_cfg(
            OP,
            [tiles, s.batch, 1],
            [CONV_TILE as u32, 1, 1],
            cin1_shared,
        )?;
        let args = [
            x,
            w,
            bias,
            y,
            Arg::I32(dim(OP, s.len)?),
            Arg::I32(dim(OP, s.c_out)?),
            Arg::I32(dim(OP, s.kernel)?),
            Arg::I32(dim(OP, lout)?),
            Arg::I32(s.pad_left() as i32),
        ];
        return be.launch("conv1d_fwd_cin1", cfg, &args);
    }
    let shared = CONV_CI_CHUNK * (window + s.kernel) * 4;
    if shared > SHARED_LIMIT {
        return Err(Error::Invalid(format!(
            "conv1d_fwd: kernel size {} too large",
            s.kernel
        )));
    }
    let cfg = grid_cfg(
        OP,
        [tiles, s.c_out, s.batch],
        [CONV_TILE as u32, 1, 1],
        shared,
    )?;
    let args = [
        x,
        w,
        bias,
        y,
        Arg::I32(dim(OP, s.c_in)?),
        Arg::I32(dim(OP, s.len)?),
        Arg::I32(dim(OP, s.c_out)?),
        Arg::I32(dim(OP, s.kernel)?),
        Arg::I32(dim(OP, lout)?),
        Arg::I32(s.pad_left() as i32),
    ];
    be.launch("conv1d_fwd", cfg, &args)
}

/// dx from dy; and, when given, dw and dbias. Every output is overwritten.
#[allow(clippy::too_many_arguments)]
pub fn conv1d_bwd<B: Backend>(
    be: &B,
    s: &Conv1dDims,
    x: &B::Buffer,
    w: &B::Buffer,
    dy: &B::Buffer,
    dx: Option<&B::Buffer>,
    dw: Option<&B::Buffer>,
    dbias: Option<&B::Buffer>,
) -> Result<()> {
    const OP: &str = "conv1d_bwd";
    s.check()?;
    let lout = s.out_len();
    let pad = Arg::I32(s.pad_left() as i32);
    let dyp = f32s(OP, "dy", dy, s.batch * s.c_out * lout)?;
    let (cin, len, cout, k, lo) = (
        Arg::I32(dim(OP, s.c_in)?),
        Arg::I32(dim(OP, s.len)?),
        Arg::I32(dim(OP, s.c_out)?),
        Arg::I32(dim(OP, s.kernel)?),
        Arg::I32(dim(OP, lout)?),
    );
    let batch = Arg::I32(dim(OP, s.batch)?);
    if let Some(dx) = dx {
        let cfg = grid_cfg(OP, [s.len.div_ceil(256), s.c_in, s.batch], [256, 1, 1], 0)?;
        let args = [
            dyp,
            f32s(OP, "w", w, s.c_out * s.c_in * s.kernel)?,
            f32s(OP, "dx", dx, s.batch * s.c_in * s.len)?,
            cin,
            len,
            cout,
            k,
            lo,
            pad,
        ];
        be.launch("conv1d_bwd_input", cfg, &args)?;
    }
    if let Some(dw) = dw {
        let cfg = grid_cfg(OP, [s.kernel, s.c_in, s.c_out], [256, 1, 1], 0)?;
        let args = [
            dyp,
            f32s(OP, "x", x, s.batch * s.c_in * s.len)?,
            f32s(OP, "dw", dw, s.c_out * s.c_in * s.kernel)?,
            batch,
            cin,
            len,
            cout,
            k,
            lo,
            pad,
        ];
        be.launch("conv1d_bwd_weight", cfg, &args)?;
    }
    if let Some(db) = dbias {
        let cfg = LaunchCfg::linear(s.c_out as u32, 256);
        let args = [dyp, f32s(OP, "dbias", db, s.c_out)?, batch, cout, lo];
        be.launch("conv1d_bwd_bias", cfg, &args)?;
    }
    Ok(())
}
