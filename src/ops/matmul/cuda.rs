//! CUDA launch of the tiled SGEMM (`kernels/matmul.cu`) with its fused bias and
//! activation epilogue: the GPU backend of matmul and linear.

use crate::cuda::args::{dim, f32s, grid_cfg, opt_f32s};
use crate::cuda::launch::{Arg, Backend};
use crate::error::Result;

/// Activation fused after the bias in [`sgemm`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Epilogue {
    None = EPILOGUE_NONE,
    Relu = EPILOGUE_RELU,
    Gelu = EPILOGUE_GELU,
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
use crate::cuda::shared_constants::{
    EPILOGUE_GELU, EPILOGUE_NONE, EPILOGUE_RELU, GEMM_THREADS, GEMM_TILE,
};

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
        let grid = [g.n.div_ceil(GEMM_TILE), g.m.div_ceil(GEMM_TILE), count];
        let cfg = grid_cfg(OP, grid, [GEMM_THREADS, 1, 1], 0)?;
        be.launch("sgemm_tiled", cfg, &args)?;
    }
    Ok(())
}
