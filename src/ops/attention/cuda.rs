//! CUDA launches of the attention kernels (`kernels/attention.cu`).

use super::AttentionDims;
use crate::cuda::args::{check_len, dim, f32s, grid_cfg, SHARED_LIMIT};
use crate::cuda::launch::{Arg, Backend, DeviceBuffer, LaunchCfg};
use crate::cuda::shared_constants::{ATT_MAX_DIM, ATT_MAX_SMEM_TK, ATT_WARPS};
use crate::error::{Error, Result};

/// Which forward kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionPath {
    /// The scores row in shared memory while it fits (Tk <= 2048), else online.
    Auto,
    SharedRow,
    Online,
}

impl AttentionDims {
    fn check(&self, op: &'static str) -> Result<()> {
        if self.batch == 0
            || self.heads == 0
            || self.tq == 0
            || self.tk == 0
            || self.d == 0
            || self.dv == 0
        {
            return Err(Error::shape(
                op,
                &[self.batch, self.heads, self.tq, self.d],
                &[self.batch, self.heads, self.tk, self.dv],
                "empty dimension",
            ));
        }
        if self.d > ATT_MAX_DIM || self.dv > ATT_MAX_DIM {
            return Err(Error::shape(
                op,
                &[self.d],
                &[self.dv],
                format!("head dims above {ATT_MAX_DIM} are not supported"),
            ));
        }
        Ok(())
    }
    /// (batch·heads, row blocks): batch·heads goes in x, which has no 65535 limit.
    fn cfg(&self, rows: usize, op: &'static str) -> Result<LaunchCfg> {
        let grid = [self.batch * self.heads, rows.div_ceil(ATT_WARPS), 1];
        grid_cfg(op, grid, [(ATT_WARPS * 32) as u32, 1, 1], 0)
    }
    fn dims(&self, op: &'static str) -> Result<[Arg; 6]> {
        Ok([
            Arg::I32(dim(op, self.heads)?),
            Arg::I32(dim(op, self.tq)?),
            Arg::I32(dim(op, self.tk)?),
            Arg::I32(dim(op, self.d)?),
            Arg::I32(dim(op, self.dv)?),
            Arg::F32(1.0 / (self.d as f32).sqrt()),
        ])
    }
    fn mask_arg<Buf: DeviceBuffer>(&self, op: &'static str, mask: Option<&Buf>) -> Result<Arg> {
        match mask {
            Some(m) => {
                check_len(op, "key_mask", m, self.batch * self.tk, 1)?;
                Ok(Arg::Ptr(m.addr()))
            }
            None => Ok(Arg::Ptr(0)),
        }
    }
}

/// out = softmax(q kᵀ / sqrt(d)) v per (batch, head), masked keys excluded;
/// lse [batch, heads, tq] is saved for [`attention_bwd`]. `key_mask` holds one
/// byte per (batch, key), 1 = attend (see `Backend::upload_mask`).
#[allow(clippy::too_many_arguments)]
pub fn attention_fwd<B: Backend>(
    be: &B,
    s: &AttentionDims,
    path: AttentionPath,
    q: &B::Buffer,
    k: &B::Buffer,
    v: &B::Buffer,
    key_mask: Option<&B::Buffer>,
    out: &B::Buffer,
    lse: &B::Buffer,
) -> Result<()> {
    const OP: &str = "attention_fwd";
    s.check(OP)?;
    let bh = s.batch * s.heads;
    let mut args = vec![
        f32s(OP, "q", q, bh * s.tq * s.d)?,
        f32s(OP, "k", k, bh * s.tk * s.d)?,
        f32s(OP, "v", v, bh * s.tk * s.dv)?,
        s.mask_arg(OP, key_mask)?,
        f32s(OP, "out", out, bh * s.tq * s.dv)?,
        f32s(OP, "lse", lse, bh * s.tq)?,
    ];
    args.extend(s.dims(OP)?);
    let mut cfg = s.cfg(s.tq, OP)?;
    let shared_row = match path {
        AttentionPath::Auto => s.tk <= ATT_MAX_SMEM_TK,
        AttentionPath::SharedRow => true,
        AttentionPath::Online => false,
    };
    if shared_row {
        cfg.shared_bytes = (ATT_WARPS * s.tk * 4) as u32;
        if cfg.shared_bytes as usize > SHARED_LIMIT {
            return Err(Error::Invalid(format!(
                "attention_fwd: {} keys do not fit the shared-memory row",
                s.tk
            )));
        }
        be.launch("attention_fwd_smem", cfg, &args)
    } else {
        be.launch("attention_fwd_online", cfg, &args)
    }
}

/// dq, dk, dv of [`attention_fwd`] from dout, the saved out and lse.
/// `delta` is scratch of batch·heads·tq floats.
#[allow(clippy::too_many_arguments)]
pub fn attention_bwd<B: Backend>(
    be: &B,
    s: &AttentionDims,
    q: &B::Buffer,
    k: &B::Buffer,
    v: &B::Buffer,
    key_mask: Option<&B::Buffer>,
    out: &B::Buffer,
    dout: &B::Buffer,
    lse: &B::Buffer,
    delta: &B::Buffer,
    dq: &B::Buffer,
    dk: &B::Buffer,
    dv: &B::Buffer,
) -> Result<()> {
    const OP: &str = "attention_bwd";
    s.check(OP)?;
    let bh = s.batch * s.heads;
    let (qp, kp, vp) = (
        f32s(OP, "q", q, bh * s.tq * s.d)?,
        f32s(OP, "k", k, bh * s.tk * s.d)?,
        f32s(OP, "v", v, bh * s.tk * s.dv)?,
    );
    let mask = s.mask_arg(OP, key_mask)?;
    let dop = f32s(OP, "dout", dout, bh * s.tq * s.dv)?;
    let lsep = f32s(OP, "lse", lse, bh * s.tq)?;
    let deltap = f32s(OP, "delta", delta, bh * s.tq)?;
    let mut args = vec![
        qp,
        kp,
        vp,
        mask,
        f32s(OP, "out", out, bh * s.tq * s.dv)?,
        dop,
        lsep,
        deltap,
        f32s(OP, "dq", dq, bh * s.tq * s.d)?,
    ];
    args.extend(s.dims(OP)?);
    be.launch("attention_bwd_query", s.cfg(s.tq, OP)?, &args)?;
    let mut args = vec![
        qp,
        kp,
        vp,
        mask,
        dop,
        lsep,
        deltap,
        f32s(OP, "dk", dk, bh * s.tk * s.d)?,
        f32s(OP, "dv", dv, bh * s.tk * s.dv)?,
    ];
    args.extend(s.dims(OP)?);
    be.launch("attention_bwd_key", s.cfg(s.tk, OP)?, &args)
}
