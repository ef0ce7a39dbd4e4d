//! CUDA launch of the Philox dropout kernel.

use super::DropoutDims;
use crate::cuda::args::{f32s, grid_stride_cfg};
use crate::cuda::launch::{Arg, Backend};
use crate::error::{Error, Result};
use crate::rng::dropout_threshold;

/// y = x * mask / (1 - p) for n elements with the Philox mask of (seed, call);
/// the same call on dy gives the backward pass. p = 1 drops everything.
pub fn dropout<B: Backend>(
    be: &B,
    d: &DropoutDims,
    n: usize,
    x: &B::Buffer,
    y: &B::Buffer,
) -> Result<()> {
    const OP: &str = "dropout";
    let DropoutDims {
        p,
        seed,
        call,
        offset,
    } = *d;
    if offset != 0 {
        return Err(Error::Device(
            "dropout: a tape holding a shard of the batch runs on the CPU only".into(),
        ));
    }
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::Invalid(format!(
            "dropout: probability {p} outside [0, 1]"
        )));
    }
    let keep_scale = if p < 1.0 {
        (1.0 / (1.0 - p)) as f32
    } else {
        0.0
    };
    let args = [
        f32s(OP, "x", x, n)?,
        f32s(OP, "y", y, n)?,
        Arg::I64(n as i64),
        Arg::U32(seed as u32),
        Arg::U32((seed >> 32) as u32),
        Arg::U32(call as u32),
        Arg::U32((call >> 32) as u32),
        Arg::U32(dropout_threshold(p)),
        Arg::F32(keep_scale),
    ];
    be.launch("dropout_apply", grid_stride_cfg(n.div_ceil(4)), &args)
}
