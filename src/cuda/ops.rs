//! Typed launch wrappers: one function per operation, generic over the executor
//! (GPU or emulator). Each checks its buffers against the shape, picks the
//! launch configuration the kernel's comment states, and enqueues it.

use super::launch::{Arg, Backend, DeviceBuffer, LaunchCfg};
use crate::error::{Error, Result};
/// The one keep threshold, shared with the CPU kernel (the launch below passes it).
pub use crate::rng::dropout_threshold;

const THREADS: u32 = 256;
/// Grid-stride kernels never need more blocks than this to fill a GPU.
const MAX_BLOCKS: u64 = 8192;

fn check_len<Buf: DeviceBuffer>(
    op: &'static str,
    what: &str,
    buf: &Buf,
    elems: usize,
    elem_bytes: usize,
) -> Result<()> {
    if buf.bytes() < elems * elem_bytes {
        return Err(Error::shape(
            op,
            &[buf.bytes() / elem_bytes],
            &[elems],
            format!("buffer {what} holds fewer elements than the shape needs"),
        ));
    }
    Ok(())
}

pub(crate) fn f32s<Buf: DeviceBuffer>(
    op: &'static str,
    what: &str,
    buf: &Buf,
    elems: usize,
) -> Result<Arg> {
    check_len(op, what, buf, elems, 4)?;
    Ok(Arg::Ptr(buf.addr()))
}

fn opt_f32s<Buf: DeviceBuffer>(
    op: &'static str,
    what: &str,
    buf: Option<&Buf>,
    elems: usize,
) -> Result<Arg> {
    match buf {
        Some(b) => f32s(op, what, b, elems),
        None => Ok(Arg::Ptr(0)),
    }
}

pub(crate) fn grid_stride_cfg(n: usize) -> LaunchCfg {
    let blocks = (n as u64).div_ceil(THREADS as u64).clamp(1, MAX_BLOCKS);
    LaunchCfg::linear(blocks as u32, THREADS)
}

pub(crate) fn dim(op: &'static str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::Invalid(format!("{op}: dimension {v} exceeds i32")))
}

fn grid_y(op: &'static str, v: usize) -> Result<u32> {
    if v == 0 || v > 65535 {
        return Err(Error::Invalid(format!(
            "{op}: grid dimension {v} outside 1..=65535"
        )));
    }
    Ok(v as u32)
}

/// Activation fused after the bias in [`sgemm`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Epilogue {
    None = 0,
    Relu = 1,
    Gelu = 2,
}

/// C[b] = alpha op(A[b]) op(B[b]) + beta C[b], then + bias[n] and the epilogue.
/// `batch_a`/`batch_b` false share that operand across the batch.
#[derive(Clone, Copy, Debug)]
pub struct Gemm {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub batch_a: bool,
    pub batch_b: bool,
    pub alpha: f32,
    pub beta: f32,
    pub epilogue: Epilogue,
}

impl Gemm {
    /// A plain (unbatched, untransposed) product: C = A · B.
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        Gemm {
            batch: 1,
            m,
            n,
            k,
            trans_a: false,
            trans_b: false,
            batch_a: true,
            batch_b: true,
            alpha: 1.0,
            beta: 0.0,
            epilogue: Epilogue::None,
        }
    }
}

/// Rows and columns of C per block of `sgemm_tiled`.
const GEMM_TILE: usize = 128;

pub fn sgemm<B: Backend>(
    be: &B,
    g: &Gemm,
    a: &B::Buffer,
    b: &B::Buffer,
    bias: Option<&B::Buffer>,
    c: &B::Buffer,
) -> Result<()> {
    const OP: &str = "sgemm";
    if g.m == 0 || g.n == 0 || g.batch == 0 {
        return Ok(());
    }
    let (sa, sb, sc) = (g.m * g.k, g.k * g.n, g.m * g.n);
    let (stride_a, stride_b) = (
        if g.batch_a { sa } else { 0 },
        if g.batch_b { sb } else { 0 },
    );
    let a = f32s(OP, "A", a, if g.batch_a { g.batch * sa } else { sa })?;
    let b = f32s(OP, "B", b, if g.batch_b { g.batch * sb } else { sb })?;
    let c = f32s(OP, "C", c, g.batch * sc)?;
    let bias = opt_f32s(OP, "bias", bias, g.n)?;
    let at = |arg: Arg, elems: usize| match arg {
        Arg::Ptr(p) => Arg::Ptr(p + 4 * elems as u64),
        other => other,
    };
    // grid.z holds the batch and stops at 65535: larger batches run in chunks.
    for first in (0..g.batch).step_by(65535) {
        let count = (g.batch - first).min(65535);
        let args = [
            at(a, first * stride_a),
            at(b, first * stride_b),
            at(c, first * sc),
            bias,
            Arg::I32(dim(OP, g.m)?),
            Arg::I32(dim(OP, g.n)?),
            Arg::I32(dim(OP, g.k)?),
            Arg::I32(g.trans_a as i32),
            Arg::I32(g.trans_b as i32),
            Arg::I64(stride_a as i64),
            Arg::I64(stride_b as i64),
            Arg::I64(sc as i64),
            Arg::F32(g.alpha),
            Arg::F32(g.beta),
            Arg::I32(g.epilogue as i32),
        ];
        let cfg = LaunchCfg {
            grid: [
                g.n.div_ceil(GEMM_TILE) as u32,
                grid_y(OP, g.m.div_ceil(GEMM_TILE))?,
                count as u32,
            ],
            block: [256, 1, 1],
            shared_bytes: 0,
        };
        be.launch("sgemm_tiled", cfg, &args)?;
    }
    Ok(())
}

/// Zero padding of a stride-1 convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvPadding {
    /// Output length = input length; (K-1)/2 zeros on the left, the rest on the right.
    Same,
    /// No padding: output length L - K + 1.
    Valid,
}

/// x [batch, cin, len], w [cout, cin, k], y [batch, cout, out_len()].
#[derive(Clone, Copy, Debug)]
pub struct Conv1d {
    pub batch: usize,
    pub cin: usize,
    pub len: usize,
    pub cout: usize,
    pub k: usize,
    pub padding: ConvPadding,
}

impl Conv1d {
    pub fn pad_left(&self) -> usize {
        match self.padding {
            ConvPadding::Same => (self.k - 1) / 2,
            ConvPadding::Valid => 0,
        }
    }
    pub fn out_len(&self) -> usize {
        match self.padding {
            ConvPadding::Same => self.len,
            ConvPadding::Valid => (self.len + 1).saturating_sub(self.k),
        }
    }
    fn check(&self) -> Result<()> {
        if self.k == 0 || self.out_len() == 0 || self.batch == 0 || self.cin == 0 || self.cout == 0
        {
            return Err(Error::shape(
                "conv1d",
                &[self.batch, self.cin, self.len],
                &[self.cout, self.cin, self.k],
                "empty input, kernel or output",
            ));
        }
        Ok(())
    }
}

const CONV_TILE: usize = 128;
const CONV_CI_CHUNK: usize = 16;
const SHARED_LIMIT: usize = 48 * 1024;

pub fn conv1d_fwd<B: Backend>(
    be: &B,
    s: &Conv1d,
    x: &B::Buffer,
    w: &B::Buffer,
    bias: Option<&B::Buffer>,
    y: &B::Buffer,
) -> Result<()> {
    const OP: &str = "conv1d_fwd";
    s.check()?;
    let (lout, window) = (s.out_len(), CONV_TILE + s.k - 1);
    let x = f32s(OP, "x", x, s.batch * s.cin * s.len)?;
    let w = f32s(OP, "w", w, s.cout * s.cin * s.k)?;
    let bias = opt_f32s(OP, "bias", bias, s.cout)?;
    let y = f32s(OP, "y", y, s.batch * s.cout * lout)?;
    let tiles = lout.div_ceil(CONV_TILE) as u32;
    let cin1_shared = (window + s.cout * s.k) * 4;
    if s.cin == 1 && cin1_shared <= SHARED_LIMIT {
        let cfg = LaunchCfg {
            grid: [tiles, grid_y(OP, s.batch)?, 1],
            block: [CONV_TILE as u32, 1, 1],
            shared_bytes: cin1_shared as u32,
        };
        let args = [
            x,
            w,
            bias,
            y,
            Arg::I32(dim(OP, s.len)?),
            Arg::I32(dim(OP, s.cout)?),
            Arg::I32(dim(OP, s.k)?),
            Arg::I32(dim(OP, lout)?),
            Arg::I32(s.pad_left() as i32),
        ];
        return be.launch("conv1d_fwd_cin1", cfg, &args);
    }
    let shared = CONV_CI_CHUNK * (window + s.k) * 4;
    if shared > SHARED_LIMIT {
        return Err(Error::Invalid(format!(
            "conv1d_fwd: kernel size {} too large",
            s.k
        )));
    }
    let cfg = LaunchCfg {
        grid: [tiles, grid_y(OP, s.cout)?, grid_y(OP, s.batch)?],
        block: [CONV_TILE as u32, 1, 1],
        shared_bytes: shared as u32,
    };
    let args = [
        x,
        w,
        bias,
        y,
        Arg::I32(dim(OP, s.cin)?),
        Arg::I32(dim(OP, s.len)?),
        Arg::I32(dim(OP, s.cout)?),
        Arg::I32(dim(OP, s.k)?),
        Arg::I32(dim(OP, lout)?),
        Arg::I32(s.pad_left() as i32),
    ];
    be.launch("conv1d_fwd", cfg, &args)
}

/// dx from dy; and, when given, dw and dbias. Every output is overwritten.
#[allow(clippy::too_many_arguments)]
pub fn conv1d_bwd<B: Backend>(
    be: &B,
    s: &Conv1d,
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
    let dyp = f32s(OP, "dy", dy, s.batch * s.cout * lout)?;
    let (cin, len, cout, k, lo) = (
        Arg::I32(dim(OP, s.cin)?),
        Arg::I32(dim(OP, s.len)?),
        Arg::I32(dim(OP, s.cout)?),
        Arg::I32(dim(OP, s.k)?),
        Arg::I32(dim(OP, lout)?),
    );
    let batch = Arg::I32(dim(OP, s.batch)?);
    if let Some(dx) = dx {
        let cfg = LaunchCfg {
            grid: [
                s.len.div_ceil(256) as u32,
                grid_y(OP, s.cin)?,
                grid_y(OP, s.batch)?,
            ],
            block: [256, 1, 1],
            shared_bytes: 0,
        };
        let args = [
            dyp,
            f32s(OP, "w", w, s.cout * s.cin * s.k)?,
            f32s(OP, "dx", dx, s.batch * s.cin * s.len)?,
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
        let cfg = LaunchCfg {
            grid: [s.k as u32, grid_y(OP, s.cin)?, grid_y(OP, s.cout)?],
            block: [256, 1, 1],
            shared_bytes: 0,
        };
        let args = [
            dyp,
            f32s(OP, "x", x, s.batch * s.cin * s.len)?,
            f32s(OP, "dw", dw, s.cout * s.cin * s.k)?,
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
        let cfg = LaunchCfg::linear(s.cout as u32, 256);
        let args = [dyp, f32s(OP, "dbias", db, s.cout)?, batch, cout, lo];
        be.launch("conv1d_bwd_bias", cfg, &args)?;
    }
    Ok(())
}

pub(crate) fn row_cfg(rows: usize, rows_per_block: usize, threads: u32) -> LaunchCfg {
    LaunchCfg::linear(rows.div_ceil(rows_per_block).max(1) as u32, threads)
}

/// y = layer_norm(x) over the last dim (x [rows, c]); saves mean and rstd [rows].
#[allow(clippy::too_many_arguments)]
pub fn layernorm_fwd<B: Backend>(
    be: &B,
    rows: usize,
    c: usize,
    eps: f32,
    x: &B::Buffer,
    w: &B::Buffer,
    b: &B::Buffer,
    y: &B::Buffer,
    mean: &B::Buffer,
    rstd: &B::Buffer,
) -> Result<()> {
    const OP: &str = "layernorm_fwd";
    let args = [
        f32s(OP, "x", x, rows * c)?,
        f32s(OP, "w", w, c)?,
        f32s(OP, "b", b, c)?,
        f32s(OP, "y", y, rows * c)?,
        f32s(OP, "mean", mean, rows)?,
        f32s(OP, "rstd", rstd, rows)?,
        Arg::I32(dim(OP, rows)?),
        Arg::I32(dim(OP, c)?),
        Arg::F32(eps),
    ];
    be.launch("layernorm_fwd", row_cfg(rows, 8, 256), &args)
}

/// dx, dw, db of layer_norm from dy and the saved mean/rstd.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_bwd<B: Backend>(
    be: &B,
    rows: usize,
    c: usize,
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
    be.launch("layernorm_bwd_input", row_cfg(rows, 8, 256), &args)?;
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

/// y = x with its axes reordered: output axis i is input axis perm[i] of x
/// (shape `shape`, rank 1 to 4).
pub fn permute<B: Backend>(
    be: &B,
    shape: &[usize],
    perm: &[usize],
    x: &B::Buffer,
    y: &B::Buffer,
) -> Result<()> {
    const OP: &str = "permute";
    let rank = shape.len();
    let mut sorted = perm.to_vec();
    sorted.sort_unstable();
    if rank == 0 || rank > 4 || sorted != (0..rank).collect::<Vec<_>>() {
        return Err(Error::shape(
            OP,
            shape,
            perm,
            "perm must reorder 1 to 4 axes",
        ));
    }
    let n: usize = shape.iter().product();
    let mut stride = vec![1usize; rank];
    for j in (0..rank - 1).rev() {
        stride[j] = stride[j + 1] * shape[j + 1];
    }
    // Output axes padded in front to 4 with size-1, stride-0 axes.
    let (mut dims, mut strides) = ([1usize; 4], [0usize; 4]);
    for (i, &p) in perm.iter().enumerate() {
        dims[4 - rank + i] = shape[p];
        strides[4 - rank + i] = stride[p];
    }
    let args = [
        f32s(OP, "x", x, n)?,
        f32s(OP, "y", y, n)?,
        Arg::I64(n as i64),
        Arg::I32(dim(OP, dims[1])?),
        Arg::I32(dim(OP, dims[2])?),
        Arg::I32(dim(OP, dims[3])?),
        Arg::I64(strides[0] as i64),
        Arg::I64(strides[1] as i64),
        Arg::I64(strides[2] as i64),
        Arg::I64(strides[3] as i64),
    ];
    be.launch("permute4", grid_stride_cfg(n), &args)
}

/// Rows one block of a column reduction sums before a second pass adds the chunks.
const ROWS_PER_CHUNK: usize = 512;

fn column_cfg(c: usize, chunks: usize) -> Result<LaunchCfg> {
    Ok(LaunchCfg {
        grid: [
            c.div_ceil(32) as u32,
            grid_y("column reduction", chunks)?,
            1,
        ],
        block: [32, 16, 1],
        shared_bytes: 0,
    })
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

/// Attention shapes: q [batch, heads, tq, d], k [.., tk, d], v [.., tk, dv]
/// (the CPU kernels' dims, so both devices describe a call the same way).
pub use crate::cpu::AttentionDims as Attention;

/// Which forward kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionPath {
    /// The scores row in shared memory while it fits (Tk <= 2048), else online.
    Auto,
    SharedRow,
    Online,
}

const ATT_WARPS: usize = 4;
const ATT_MAX_SMEM_TK: usize = 2048;
const ATT_MAX_DIM: usize = 64;

impl Attention {
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
        let bh = u32::try_from(self.batch * self.heads)
            .map_err(|_| Error::Invalid(format!("{op}: batch·heads exceeds u32")))?;
        Ok(LaunchCfg {
            grid: [bh, grid_y(op, rows.div_ceil(ATT_WARPS))?, 1],
            block: [(ATT_WARPS * 32) as u32, 1, 1],
            shared_bytes: 0,
        })
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
    s: &Attention,
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
    s: &Attention,
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

/// y = x * mask / (1 - p) with the Philox mask of (seed, call); the same call on
/// dy gives the backward pass. p = 1 drops everything.
pub fn dropout<B: Backend>(
    be: &B,
    n: usize,
    p: f64,
    seed: u64,
    call: u64,
    x: &B::Buffer,
    y: &B::Buffer,
) -> Result<()> {
    const OP: &str = "dropout";
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

/// The losses, as numbered in kernels/loss.cu; the parameter is delta or q.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Loss {
    Mse,
    Mae,
    Huber(f32),
    Quantile(f32),
}

impl Loss {
    fn code(self) -> (i32, f32) {
        match self {
            Loss::Mse => (0, 0.0),
            Loss::Mae => (1, 0.0),
            Loss::Huber(d) => (2, d),
            Loss::Quantile(q) => (3, q),
        }
    }
}

/// out[0] = mean loss over n elements.
pub fn loss_fwd<B: Backend>(
    be: &B,
    kind: Loss,
    n: usize,
    pred: &B::Buffer,
    target: &B::Buffer,
    out: &B::Buffer,
) -> Result<()> {
    const OP: &str = "loss_fwd";
    let (code, param) = kind.code();
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
    kind: Loss,
    n: usize,
    pred: &B::Buffer,
    target: &B::Buffer,
    dloss: &B::Buffer,
    dpred: &B::Buffer,
) -> Result<()> {
    const OP: &str = "loss_bwd";
    let (code, param) = kind.code();
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
