//! The CPU GEMM every kernel multiplies through: the element kernel (f32: the
//! engine's own, [`super::sgemm`]; f64: matrixmultiply), chosen by element
//! type here rather than by a method on [`Float`], and the cutting of a large
//! product into rayon tasks; [`gemm_views`] for the many small products of
//! attention heads.

use super::sgemm::sgemm;
use crate::float::Float;
use rayon::prelude::*;
use std::any::TypeId;

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
    // SAFETY: the lengths were checked; C is a distinct mutable slice.
    unsafe { gemm_into(m, k, n, a, a_t, b, b_t, c.as_mut_ptr(), c_t, beta) }
}

/// [`gemm`] at beta = 0 into a new row-major [m, n] buffer, without zeroing
/// it first: at beta = 0 the kernels write every element of C and read none
/// (zeroing the linear layer's outputs that were then overwritten took about
/// 3% of a training step's profile at batch 1024, sequence 16).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_new<T: Float>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    a_t: bool,
    b: &[T],
    b_t: bool,
) -> Vec<T> {
    assert!(a.len() >= m * k && b.len() >= k * n);
    let mut c = Vec::with_capacity(m * n);
    // SAFETY: the lengths were checked and C has room for m·n values; at
    // beta = 0 `gemm_into` writes all of them before the length is set.
    unsafe {
        gemm_into(m, k, n, a, a_t, b, b_t, c.as_mut_ptr(), false, T::ZERO);
        c.set_len(m * n);
    }
    c
}

/// C (m×n at `c`, [m, n] or, if `c_t`, [n, m]) ← op(A)·op(B) + beta·C; at
/// beta = 0, C is only written.
///
/// # Safety
/// A and B must hold m·k and k·n values, `c` must be valid for m·n writes (and
/// reads unless beta = 0) and must not alias A or B.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_into<T: Float>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    a_t: bool,
    b: &[T],
    b_t: bool,
    c: *mut T,
    c_t: bool,
    beta: T,
) {
    if m == 0 || n == 0 {
        return;
    }
    if m < n {
        // Cᵀ = op(B)ᵀ·op(A)ᵀ: the kernel streams the long side past packed
        // panels of the short one, so the wide product runs as a tall one.
        return gemm_into(n, k, m, b, !b_t, a, !a_t, c, !c_t, beta);
    }
    let a = Strided::new(a.as_ptr(), m, k, a_t);
    let b = Strided::new(b.as_ptr(), k, n, b_t);
    let c = Strided::new(c.cast_const(), m, n, c_t);
    // SAFETY: as this function's contract; the blocks write disjoint rows of C.
    in_row_blocks(m, n, k, |rows| unsafe {
        gemm_block(rows, 0..n, k, a, b, c, beta)
    });
}

/// Work a GEMM's store does on each element of row-major C after the
/// product, fused into the kernel (see [`gemm_with_epilogue`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct GemmEpilogue<'a, T> {
    /// Added to every row of C (one value per column).
    pub bias: Option<&'a [T]>,
    /// relu, after the bias.
    pub relu: bool,
    /// C's previous value added last (C += the rest): a residual connection.
    pub residual: bool,
}

/// C [m, n] (row-major) ← op(A)·op(B), then `ep` in the GEMM's store: the bits
/// of [`gemm`] at beta = 0 followed by separate passes (C += bias per row,
/// relu, C = C_before + the rest), without those passes over C. Returns
/// false, C untouched, where it does not fuse: f64, a CPU without AVX2 and
/// FMA, a product that [`gemm`] runs transposed (m < n), k = 0, or a
/// residual over more than one block of K; the caller then runs the passes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_with_epilogue<T: Float>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    a_t: bool,
    b: &[T],
    b_t: bool,
    c: &mut [T],
    ep: GemmEpilogue<'_, T>,
) -> bool {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    if !fuses::<T>(m, k, n, ep) {
        return false;
    }
    // SAFETY: the lengths were checked; C is a distinct mutable slice.
    unsafe { fused_into(m, k, n, a, a_t, b, b_t, c.as_mut_ptr(), ep) };
    true
}

/// [`gemm_with_epilogue`] (no residual) into a new [m, n] buffer, not zeroed
/// first (see [`gemm_new`]); None, with nothing allocated, where it does not
/// fuse.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_new_with_epilogue<T: Float>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    a_t: bool,
    b: &[T],
    b_t: bool,
    ep: GemmEpilogue<'_, T>,
) -> Option<Vec<T>> {
    assert!(a.len() >= m * k && b.len() >= k * n);
    assert!(!ep.residual, "a new buffer has no previous value to add");
    if !fuses::<T>(m, k, n, ep) {
        return None;
    }
    let mut c = Vec::with_capacity(m * n);
    // SAFETY: the lengths were checked and C has room for m·n values; without
    // a residual the fused store writes all of them and reads none.
    unsafe {
        fused_into(m, k, n, a, a_t, b, b_t, c.as_mut_ptr(), ep);
        c.set_len(m * n);
    }
    Some(c)
}

/// Whether [`gemm_with_epilogue`] fuses `ep` into this product's store.
fn fuses<T: Float>(m: usize, k: usize, n: usize, ep: GemmEpilogue<'_, T>) -> bool {
    if let Some(bias) = ep.bias {
        assert_eq!(bias.len(), n, "one bias per column of C");
    }
    #[cfg(target_arch = "x86_64")]
    return TypeId::of::<T>() == TypeId::of::<f32>()
        && m >= n
        && n > 0
        && super::sgemm::fuses_epilogue(k, ep.residual);
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// C [m, n] at `c` ← op(A)·op(B), then `ep`, in the store.
///
/// # Safety
/// [`fuses`] must hold; A and B must hold m·k and k·n values, `c` must be
/// valid for m·n writes (and reads, with a residual) and must not alias them.
#[allow(clippy::too_many_arguments)]
unsafe fn fused_into<T: Float>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    a_t: bool,
    b: &[T],
    b_t: bool,
    c: *mut T,
    ep: GemmEpilogue<'_, T>,
) {
    #[cfg(target_arch = "x86_64")]
    {
        use super::sgemm_blocked::{Epilogue, Mats};
        let a = Strided::new(a.as_ptr().cast::<f32>(), m, k, a_t);
        let b = Strided::new(b.as_ptr().cast::<f32>(), k, n, b_t);
        let c = Strided::new(c.cast_const().cast::<f32>(), m, n, false);
        let fused = Epilogue {
            bias: ep.bias.map_or(std::ptr::null(), |v| v.as_ptr().cast()),
            relu: ep.relu,
            residual: ep.residual,
        };
        in_row_blocks(m, n, k, |rows| {
            let mats = Mats {
                a: a.at(rows.start, 0),
                rsa: a.rs,
                csa: a.cs,
                b: b.at(0, 0),
                rsb: b.rs,
                csb: b.cs,
                c: c.at(rows.start, 0).cast_mut(),
                rsc: c.rs,
                csc: c.cs,
            };
            // SAFETY: as this function's contract (the bias holds n values);
            // the blocks write disjoint rows of C.
            let done = unsafe { super::sgemm::sgemm_with_epilogue(rows.len(), k, n, mats, fused) };
            debug_assert!(done);
        });
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (m, k, n, a, a_t, b, b_t, c, ep);
        unreachable!("`fuses` is false off x86_64");
    }
}

/// Runs `block` over the rows [0, m) of an m×n×k product: at once, or cut
/// into rayon tasks of rows when the product is large enough and this thread
/// is not already one of several parallel pieces.
fn in_row_blocks(m: usize, n: usize, k: usize, block: impl Fn(std::ops::Range<usize>) + Sync) {
    let threads = rayon::current_num_threads();
    let blocks = (m * n * k / GEMM_SPLIT_WORK)
        .min(4 * threads)
        .min(m / GEMM_MIN_BLOCK)
        .max(1);
    if blocks == 1 || threads == 1 || WITHIN_PARALLEL_PIECE.with(|w| w.get()) {
        return block(0..m);
    }
    let step = m.div_ceil(blocks);
    (0..m.div_ceil(step))
        .into_par_iter()
        .for_each(|i| block(i * step..((i + 1) * step).min(m)));
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
    element_gemm(
        rows.len(),
        k,
        cols.len(),
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

/// C ← A·B + beta·C with arbitrary (row, column) strides, by the element
/// type's kernel. `Float` is sealed to f32 and f64, the two types tested here.
///
/// # Safety
/// As [`sgemm`]: the pointers and strides must describe valid m×k, k×n and
/// m×n matrices, and C must not alias A or B.
#[allow(clippy::too_many_arguments)]
unsafe fn element_gemm<T: Float>(
    m: usize,
    k: usize,
    n: usize,
    a: *const T,
    rsa: isize,
    csa: isize,
    b: *const T,
    rsb: isize,
    csb: isize,
    beta: T,
    c: *mut T,
    rsc: isize,
    csc: isize,
) {
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        let (a, b, c) = (a.cast::<f32>(), b.cast::<f32>(), c.cast::<f32>());
        sgemm(
            m,
            k,
            n,
            1.0,
            a,
            rsa,
            csa,
            b,
            rsb,
            csb,
            beta.to_f64() as f32,
            c,
            rsc,
            csc,
        );
    } else if TypeId::of::<T>() == TypeId::of::<f64>() {
        let (a, b, c) = (a.cast::<f64>(), b.cast::<f64>(), c.cast::<f64>());
        matrixmultiply::dgemm(
            m,
            k,
            n,
            1.0,
            a,
            rsa,
            csa,
            b,
            rsb,
            csb,
            beta.to_f64(),
            c,
            rsc,
            csc,
        );
    } else {
        unreachable!("Float is implemented for f32 and f64 only");
    }
}
