//! CUDA launches of the fused AdamW step and the L2 norm (gradient clipping).

use crate::cuda::args::{f32s, grid_stride_cfg, THREADS};
use crate::cuda::launch::{Arg, Backend, DeviceBuffer, LaunchCfg};
use crate::error::Result;

/// AdamW hyper-parameters of one step (t counts from 1).
#[derive(Clone, Copy, Debug)]
pub struct AdamStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub t: u32,
}

/// One fused AdamW update of all n parameters (one flat buffer each for
/// params, grads and the two moments).
#[allow(clippy::too_many_arguments)]
pub fn adamw_step<B: Backend>(
    be: &B,
    n: usize,
    s: &AdamStep,
    p: &B::Buffer,
    g: &B::Buffer,
    m: &B::Buffer,
    v: &B::Buffer,
) -> Result<()> {
    const OP: &str = "adamw_step";
    let bc1 = 1.0 - (s.beta1 as f64).powi(s.t as i32);
    let bc2 = 1.0 - (s.beta2 as f64).powi(s.t as i32);
    let args = [
        f32s(OP, "params", p, n)?,
        f32s(OP, "grads", g, n)?,
        f32s(OP, "m", m, n)?,
        f32s(OP, "v", v, n)?,
        Arg::I64(n as i64),
        Arg::F32(s.lr),
        Arg::F32(s.beta1),
        Arg::F32(s.beta2),
        Arg::F32(s.eps),
        Arg::F32(s.weight_decay),
        Arg::F32(bc1 as f32),
        Arg::F32(bc2 as f32),
    ];
    be.launch("adamw_step", grid_stride_cfg(n), &args)
}

/// The L2 norm of x (n floats), for gradient clipping. Two launches and one
/// read-back of a single float.
pub fn l2_norm<B: Backend>(be: &B, n: usize, x: &B::Buffer) -> Result<f64> {
    const OP: &str = "l2_norm";
    let blocks = (n as u64).div_ceil(THREADS as u64).clamp(1, 1024) as usize;
    let partial = be.alloc(blocks * 4)?;
    let total = be.alloc(4)?;
    let args = [
        f32s(OP, "x", x, n)?,
        Arg::Ptr(partial.addr()),
        Arg::I64(n as i64),
        Arg::I32(1),
    ];
    be.launch(
        "sum_squares",
        LaunchCfg::linear(blocks as u32, THREADS),
        &args,
    )?;
    let args = [
        Arg::Ptr(partial.addr()),
        Arg::Ptr(total.addr()),
        Arg::I64(blocks as i64),
        Arg::I32(0),
    ];
    be.launch("sum_squares", LaunchCfg::linear(1, THREADS), &args)?;
    let sum = be.download_f32(&total, 1)?[0];
    Ok((sum as f64).sqrt())
}
