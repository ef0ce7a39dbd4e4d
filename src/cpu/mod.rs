//! CPU kernels: pure functions over row-major slices, generic over f32/f64,
//! forward and backward, parallel with rayon, GEMM through `matrixmultiply`.
//!
//! Every kernel takes its sizes in an explicit dims struct (or plain counts), so
//! that the CUDA backend can compare its kernels against these on the same
//! slices. Outputs are overwritten, never accumulated into, unless a function
//! says otherwise.
//!
//! Reproducibility: every reduction over the batch (weight and bias gradients)
//! sums partial results of a *fixed* partition ([`REDUCE_ROWS`] rows, or
//! [`conv1d::CONV_CHUNK`] samples) in a fixed order, so results are bit-for-bit
//! identical whatever the number of rayon threads.

pub mod activation;
pub mod attention;
pub mod conv1d;
pub mod dropout;
pub mod elementwise;
pub mod fastmath;
pub mod layernorm;
pub mod losses;
pub mod matmul;
pub mod softmax;

pub use attention::AttentionDims;
pub use conv1d::Conv1dDims;
pub use layernorm::LayerNormDims;
pub use matmul::{LinearDims, MatmulDims};

use crate::float::Float;
use rayon::prelude::*;

/// Rows per partial sum in reductions over rows (fixed: thread-count independent).
pub const REDUCE_ROWS: usize = 256;

/// Elements per rayon task in elementwise kernels.
pub(crate) const ELEMS_PER_TASK: usize = 1 << 14;

/// C (m×n) ← op(A)·op(B) + beta·C on row-major storage.
///
/// `op(A)` is m×k, stored as [m, k] or, if `a_t`, as [k, m]; `op(B)` is k×n,
/// stored as [k, n] or, if `b_t`, as [n, k]; C is stored as [m, n] or, if `c_t`,
/// as [n, m].
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm<T: Float>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    a_t: bool,
    b: &[T],
    b_t: bool,
    c: &mut [T],
    c_t: bool,
    beta: T,
) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    let (rsa, csa) = if a_t {
        (1, m as isize)
    } else {
        (k as isize, 1)
    };
    let (rsb, csb) = if b_t {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    let (rsc, csc) = if c_t {
        (1, m as isize)
    } else {
        (n as isize, 1)
    };
    // SAFETY: the lengths were checked above; strides describe in-bounds matrices,
    // and C is a distinct mutable slice.
    unsafe {
        T::gemm(
            m,
            k,
            n,
            T::ONE,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            rsc,
            csc,
        );
    }
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
