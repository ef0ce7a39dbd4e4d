//! CUDA launches of the loss kernels (`kernels/losses.cu`).

use super::LossKind;
use crate::cuda::args::{f32s, grid_stride_cfg};
use crate::cuda::launch::{Arg, Backend, LaunchCfg};
use crate::cuda::shared_constants::{LOSS_HUBER, LOSS_MAE, LOSS_MSE, LOSS_QUANTILE};
use crate::error::Result;

/// The kernel's loss code and its parameter (delta or q).
fn code(kind: LossKind) -> (i32, f32) {
    match kind {
        LossKind::Mse => (LOSS_MSE, 0.0),
        LossKind::Mae => (LOSS_MAE, 0.0),
        LossKind::Huber(d) => (LOSS_HUBER, d as f32),
        LossKind::Quantile(q) => (LOSS_QUANTILE, q as f32),
    }
}

/// out[0] = mean loss over n elements.
pub fn loss_fwd<B: Backend>(
    be: &B,
    kind: LossKind,
    n: usize,
    pred: &B::Buffer,
    target: &B::Buffer,
    out: &B::Buffer,
) -> Result<()> {
    const OP: &str = "loss_fwd";
    let (code, param) = code(kind);
    let args = [
        f32s(OP, "pred", pred, n)?,
        f32s(OP, "target", target, n)?,
        f32s(OP, "out", out, 1)?,
        Arg::I64(n as i64),
        Arg::I32(code),
        Arg::F32(param),
    ];
    be.launch("loss_fwd", LaunchCfg::linear(1, 256), &args)
}

/// dpred = dloss[0] * d(mean loss)/dpred.
pub fn loss_bwd<B: Backend>(
    be: &B,
    kind: LossKind,
    n: usize,
    pred: &B::Buffer,
    target: &B::Buffer,
    dloss: &B::Buffer,
    dpred: &B::Buffer,
) -> Result<()> {
    const OP: &str = "loss_bwd";
    let (code, param) = code(kind);
    let args = [
        f32s(OP, "pred", pred, n)?,
        f32s(OP, "target", target, n)?,
        f32s(OP, "dloss", dloss, 1)?,
        f32s(OP, "dpred", dpred, n)?,
        Arg::I64(n as i64),
        Arg::I32(code),
        Arg::F32(param),
    ];
    be.launch("loss_bwd", grid_stride_cfg(n), &args)
}
