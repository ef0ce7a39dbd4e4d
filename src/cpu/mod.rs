//! CPU kernels: pure functions over row-major slices, generic over f32/f64,
//! forward and backward, parallel with rayon. GEMM: the engine's f32 kernel
//! ([`sgemm`]; matrixmultiply for f64), single-threaded, cut into rayon tasks
//! by [`gemm`].
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
pub mod conv1d_nwc;
pub mod dropout;
pub mod elementwise;
pub mod fastmath;
mod lanes;
pub mod layernorm;
pub mod losses;
pub mod matmul;
pub mod sgemm;
pub mod softmax;

pub use attention::{AttentionDims, HeadLayout};
pub use conv1d::Conv1dDims;
pub use layernorm::LayerNormDims;
pub use matmul::{LinearDims, MatmulDims};

use crate::float::Float;
use rayon::prelude::*;

/// Rows per partial sum in reductions over rows (fixed: thread-count independent).
pub const REDUCE_ROWS: usize = 256;

/// Elements per rayon task in elementwise kernels.
pub(crate) const ELEMS_PER_TASK: usize = 1 << 14;

/// Multiply-adds below which a GEMM runs on the calling thread alone.
const GEMM_SPLIT_WORK: usize = 1 << 18;
/// Smallest block of C rows one task computes.
const GEMM_MIN_BLOCK: usize = 32;

thread_local! {
    /// Set while this thread runs work that is already one of several
    /// parallel pieces (a data-parallel shard): GEMMs then stay whole.
    static WITHIN_PARALLEL_PIECE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` as one of several pieces already running in parallel: the GEMMs
/// inside it are not cut into tasks (packing B again per block and handing
/// blocks between threads cost more than they save when every thread is busy).
pub fn as_parallel_piece<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the thread's previous state, on unwinding too.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            WITHIN_PARALLEL_PIECE.with(|w| w.set(self.0));
        }
    }
    let _restore = Restore(WITHIN_PARALLEL_PIECE.with(|w| w.replace(true)));
    f()
}

/// Runs `f` on a thread of the rayon pool. Called from outside the pool, every
/// parallel loop in `f` would otherwise hand its work to the pool and wait for
/// it (a wake-up and a sleep per op); inside, nested loops stay on the thread
/// unless another one is idle.
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

/// C (m×n) ← op(A)·op(B) + beta·C on row-major storage.
///
/// `op(A)` is m×k, stored as [m, k] or, if `a_t`, as [k, m]; `op(B)` is k×n,
/// stored as [k, n] or, if `b_t`, as [n, k]; C is stored as [m, n] or, if `c_t`,
/// as [n, m].
///
/// The kernel runs single-threaded; a large product is cut into blocks of
/// rows of C computed as rayon tasks, so GEMMs share the one rayon pool with
/// every other kernel, unless it runs inside [`as_parallel_piece`]. Each
/// element of C is computed the same way in any block, so the result does not
/// depend on the thread count.
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
    if m < n {
        // Cᵀ = op(B)ᵀ·op(A)ᵀ: the kernel streams the long side past packed
        // panels of the short one, so the wide product runs as a tall one.
        return gemm(n, k, m, b, !b_t, a, !a_t, c, !c_t, beta);
    }
    let a = Strided::new(a.as_ptr(), m, k, a_t);
    let b = Strided::new(b.as_ptr(), k, n, b_t);
    let c = Strided::new(c.as_mut_ptr().cast_const(), m, n, c_t);
    let threads = rayon::current_num_threads();
    let blocks = (m * n * k / GEMM_SPLIT_WORK)
        .min(4 * threads)
        .min(m / GEMM_MIN_BLOCK)
        .max(1);
    if blocks == 1 || threads == 1 || WITHIN_PARALLEL_PIECE.with(|w| w.get()) {
        // SAFETY: the lengths were checked above; C is a distinct mutable slice.
        unsafe { gemm_block(0..m, 0..n, k, a, b, c, beta) };
        return;
    }
    // m ≥ n here: blocks of rows.
    let step = m.div_ceil(blocks);
    (0..m.div_ceil(step)).into_par_iter().for_each(|i| {
        let rows = i * step..((i + 1) * step).min(m);
        // SAFETY: as above; the blocks write disjoint rows of C.
        unsafe { gemm_block(rows, 0..n, k, a, b, c, beta) };
    });
}

/// A rows×cols matrix inside a slice: element (r, c) at offset + r·rs + c·cs.
/// Lets a product read or write one head's rows among several heads' without
/// copying them out.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MatView {
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl MatView {
    /// A row-major rows×cols matrix filling a slice from its start.
    pub fn dense(rows: usize, cols: usize) -> Self {
        MatView {
            offset: 0,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The same storage read as the transpose.
    pub fn t(self) -> Self {
        MatView {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// One past the last element's index (the view's offset when it is empty).
    fn end(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            return self.offset;
        }
        self.offset + (self.rows - 1) * self.rs + (self.cols - 1) * self.cs + 1
    }

    fn strided<T>(&self, data: *const T) -> Strided<T> {
        Strided {
            ptr: data.wrapping_add(self.offset),
            rs: self.rs as isize,
            cs: self.cs as isize,
        }
    }
}

/// C ← A·B + beta·C on views (one thread: for the many small products of
/// attention heads). Panics if the shapes disagree or a view leaves its slice.
pub(crate) fn gemm_views<T: Float>(
    (a, av): (&[T], MatView),
    (b, bv): (&[T], MatView),
    (c, cv): (&mut [T], MatView),
    beta: T,
) {
    assert!(
        av.rows == cv.rows && av.cols == bv.rows && bv.cols == cv.cols,
        "gemm_views: {av:?} · {bv:?} -> {cv:?}"
    );
    assert!(av.end() <= a.len() && bv.end() <= b.len() && cv.end() <= c.len());
    if cv.rows == 0 || cv.cols == 0 {
        return;
    }
    let (sa, sb) = (av.strided(a.as_ptr()), bv.strided(b.as_ptr()));
    let sc = cv.strided(c.as_mut_ptr().cast_const());
    // SAFETY: the views were checked to lie inside their slices; C is a distinct
    // mutable slice.
    unsafe { gemm_block(0..cv.rows, 0..cv.cols, av.cols, sa, sb, sc, beta) };
}

/// A row-major matrix seen through (row, column) strides; `Send` so that
/// GEMM blocks can run as rayon tasks on disjoint parts of C.
#[derive(Clone, Copy)]
struct Strided<T> {
    ptr: *const T,
    rs: isize,
    cs: isize,
}

// SAFETY: only used by `gemm`, whose tasks read A and B and write disjoint blocks of C.
unsafe impl<T: Send> Send for Strided<T> {}
unsafe impl<T: Sync> Sync for Strided<T> {}

impl<T> Strided<T> {
    /// A rows×cols matrix stored as [rows, cols], or as [cols, rows] if `transposed`.
    fn new(ptr: *const T, rows: usize, cols: usize, transposed: bool) -> Self {
        let (rs, cs) = if transposed {
            (1, rows as isize)
        } else {
            (cols as isize, 1)
        };
        Strided { ptr, rs, cs }
    }

    /// Element (row, col) onwards.
    fn at(self, row: usize, col: usize) -> *const T {
        self.ptr
            .wrapping_offset(row as isize * self.rs + col as isize * self.cs)
    }
}

/// C[rows, cols] ← A[rows, :]·B[:, cols] + beta·C[rows, cols].
///
/// # Safety
/// The three matrices must be in bounds for the given ranges and C must not
/// alias A or B nor be written by anyone else for these ranges.
unsafe fn gemm_block<T: Float>(
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    k: usize,
    a: Strided<T>,
    b: Strided<T>,
    c: Strided<T>,
    beta: T,
) {
    T::gemm(
        rows.len(),
        k,
        cols.len(),
        T::ONE,
        a.at(rows.start, 0),
        a.rs,
        a.cs,
        b.at(0, cols.start),
        b.rs,
        b.cs,
        beta,
        c.at(rows.start, cols.start).cast_mut(),
        c.rs,
        c.cs,
    );
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
