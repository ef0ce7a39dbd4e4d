//! The numbers a kernel and its launcher must agree on: tile sizes, rows per
//! block, and the codes of the loss and the GEMM epilogue. This file is their
//! one source: build.rs writes each `pub const` below as a `#define` into the
//! header `shared_constants.cuh` that `kernels/common.cuh` includes, so a
//! kernel and its launch cannot disagree. build.rs reads only lines of the form
//! `pub const NAME: TYPE = INTEGER;` (and the `///` lines above them).

/// Threads of a warp (the row kernels give each row one warp).
pub const WARP_SIZE: u32 = 32;

/// sgemm_tiled: rows and columns of C per block.
pub const GEMM_TILE: usize = 128;
/// sgemm_tiled: 16 x 16 threads, each owning an 8 x 8 micro-tile of C.
pub const GEMM_THREADS: u32 = 256;
/// sgemm_tiled epilogues, applied after the bias.
pub const EPILOGUE_NONE: i32 = 0;
pub const EPILOGUE_RELU: i32 = 1;
pub const EPILOGUE_GELU: i32 = 2;

/// conv1d_fwd: output positions per block.
pub const CONV_TILE: usize = 128;
/// conv1d_fwd: input channels staged in shared memory at once.
pub const CONV_CI_CHUNK: usize = 16;

/// Layer norm row kernels: rows per block, one warp each.
pub const LN_WARPS: usize = 8;
/// Softmax: rows per block, one warp each.
pub const SOFTMAX_WARPS: usize = 8;

/// Attention: query rows per block, one warp each.
pub const ATT_WARPS: usize = 4;
/// Attention: the shared-memory kernel keeps ATT_WARPS rows of Tk floats.
pub const ATT_MAX_SMEM_TK: usize = 2048;
/// Attention: lanes own output dims d and d + 32.
pub const ATT_MAX_DIM: usize = 64;

/// The losses of loss_fwd / loss_bwd.
pub const LOSS_MSE: i32 = 0;
pub const LOSS_MAE: i32 = 1;
pub const LOSS_HUBER: i32 = 2;
pub const LOSS_QUANTILE: i32 = 3;
