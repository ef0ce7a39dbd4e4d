//! The CPU backend the op families' kernels (`crate::ops::<family>::cpu`)
//! share: pure functions over row-major slices, generic over f32/f64,
//! parallel with rayon. GEMM: the engine's f32 kernel ([`sgemm`];
//! matrixmultiply for f64), single-threaded, cut into rayon tasks by
//! [`gemm::gemm`]; the vectorised exp and AVX2 dispatch (`fastmath`) and lane
//! sums (`lanes`); the fixed-partition row reductions below.
//!
//! Reproducibility: every reduction over the batch (weight and bias gradients)
//! sums partial results of a *fixed* partition ([`REDUCE_ROWS`] rows, or
//! [`crate::ops::conv1d::cpu::CONV_CHUNK`] samples) in a fixed order, so
//! results are bit-for-bit identical whatever the number of rayon threads.

pub mod fastmath;
pub mod gemm;
pub(crate) mod lanes;
pub mod sgemm;
#[cfg(target_arch = "x86_64")]
mod sgemm_avx512;
#[cfg(target_arch = "x86_64")]
mod sgemm_blocked;

pub use gemm::as_parallel_piece;

use crate::float::Float;
use rayon::prelude::*;

/// Rows per partial sum in reductions over rows (fixed: thread-count independent).
pub const REDUCE_ROWS: usize = 256;

/// Elements per rayon task in elementwise kernels.
pub(crate) const ELEMS_PER_TASK: usize = 1 << 14;

/// Runs `f` on a thread of the rayon pool. Called from outside the pool, every
/// parallel loop in `f` would otherwise hand its work to the pool and wait for
/// it (a wake-up and a sleep per op); inside, nested loops stay on the thread
/// unless another one is idle.
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

/// Column sums of a [rows, cols] matrix, written to `out` (cols). Partial sums
/// over fixed blocks of [`REDUCE_ROWS`] rows run in parallel and are added in
/// block order, so the result does not depend on the thread count.
pub fn sum_rows<T: Float>(x: &[T], rows: usize, cols: usize, out: &mut [T]) {
    assert_eq!(x.len(), rows * cols);
    assert_eq!(out.len(), cols);
    let partials = partial_sums(rows, cols, |r0, r1, acc| {
        for row in x[r0 * cols..r1 * cols].chunks_exact(cols) {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += v;
            }
        }
    });
    reduce_in_order(&partials, out);
}

/// Runs `block(r0, r1, acc)` for each fixed block of rows in parallel, each
/// filling its own zeroed accumulator of `width` values.
pub(crate) fn partial_sums<T: Float>(
    rows: usize,
    width: usize,
    block: impl Fn(usize, usize, &mut [T]) + Sync,
) -> Vec<Vec<T>> {
    let blocks = rows.div_ceil(REDUCE_ROWS).max(1);
    (0..blocks)
        .into_par_iter()
        .map(|i| {
            let mut acc = vec![T::ZERO; width];
            let r0 = i * REDUCE_ROWS;
            block(r0, (r0 + REDUCE_ROWS).min(rows), &mut acc);
            acc
        })
        .collect()
}

/// out ← Σ partials, added in index order.
pub(crate) fn reduce_in_order<T: Float>(partials: &[Vec<T>], out: &mut [T]) {
    out.fill(T::ZERO);
    for p in partials {
        for (o, &v) in out.iter_mut().zip(p) {
            *o += v;
        }
    }
}
