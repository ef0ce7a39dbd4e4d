//! Direct GEMM for small products (attention's per-head matrices): row-axpy
//! loops over contiguous rows, which vectorise, with B (and C, when stored
//! transposed) staged through a per-thread row-major scratch buffer.

use crate::float::Float;
use std::any::Any;
use std::cell::RefCell;

thread_local! {
    /// Per-thread scratch (one Vec<f32> or Vec<f64>), reused across calls.
    static SCRATCH: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with two scratch buffers of T (for B and C), reused per thread.
fn with_scratch<T: Float, R>(f: impl FnOnce(&mut Vec<T>, &mut Vec<T>) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut slots = cell.borrow_mut();
        let pos = slots.iter().position(|s| s.is::<(Vec<T>, Vec<T>)>());
        let idx = pos.unwrap_or_else(|| {
            slots.push(Box::new((Vec::<T>::new(), Vec::<T>::new())));
            slots.len() - 1
        });
        let (b, c) = slots[idx]
            .downcast_mut::<(Vec<T>, Vec<T>)>()
            .expect("slot holds this type");
        f(b, c)
    })
}

/// Same contract as [`super::gemm`].
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm<T: Float>(
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
    with_scratch::<T, ()>(|b_rows, c_rows| {
        // B as row-major [k, n].
        let b_rm: &[T] = if b_t {
            b_rows.clear();
            b_rows.extend((0..k * n).map(|i| b[(i % n) * k + i / n]));
            b_rows
        } else {
            &b[..k * n]
        };
        let a_at = |i: usize, p: usize| if a_t { a[p * m + i] } else { a[i * k + p] };
        if c_t {
            c_rows.clear();
            c_rows.resize(m * n, T::ZERO);
            axpy_rows(m, k, n, &a_at, b_rm, c_rows);
            for i in 0..m {
                for j in 0..n {
                    let dst = &mut c[j * m + i];
                    *dst = c_rows[i * n + j]
                        + if beta == T::ZERO {
                            T::ZERO
                        } else {
                            beta * *dst
                        };
                }
            }
        } else {
            let c = &mut c[..m * n];
            if beta == T::ZERO {
                c.fill(T::ZERO);
            } else if beta != T::ONE {
                c.iter_mut().for_each(|v| *v *= beta);
            }
            axpy_rows(m, k, n, &a_at, b_rm, c);
        }
    })
}

/// c[i, :] += Σ_p a(i, p) · b[p, :] (c and b row-major, contiguous rows).
#[inline(always)]
fn axpy_rows<T: Float>(
    m: usize,
    k: usize,
    n: usize,
    a_at: &impl Fn(usize, usize) -> T,
    b: &[T],
    c: &mut [T],
) {
    for (i, c_row) in c.chunks_exact_mut(n).enumerate().take(m) {
        for (p, b_row) in b.chunks_exact(n).enumerate().take(k) {
            let s = a_at(i, p);
            for (cv, &bv) in c_row.iter_mut().zip(b_row) {
                *cv += s * bv;
            }
        }
    }
}
