//! CPU kernels of ReLU and GELU (tanh approximation, as GPT-2 / llm.c).

use super::Unary;
#[cfg(target_arch = "x86_64")]
use crate::cpu::fastmath::has_avx2_fma;
use crate::cpu::fastmath::{as_f32, as_f32_mut, exp_f32};
use crate::cpu::ELEMS_PER_TASK;
use crate::float::Float;
use crate::ops::elementwise::cpu::{map, zip_map};
use rayon::prelude::*;

/// y ← op(x).
pub fn forward<T: Float>(op: Unary, x: &[T], y: &mut [T]) {
    match op {
        Unary::Relu => relu_forward(x, y),
        Unary::Gelu => gelu_forward(x, y),
    }
}

/// dx ← g · op'(x).
pub fn backward<T: Float>(op: Unary, x: &[T], g: &[T], dx: &mut [T]) {
    match op {
        Unary::Relu => relu_backward(x, g, dx),
        Unary::Gelu => gelu_backward(x, g, dx),
    }
}

pub fn relu_forward<T: Float>(x: &[T], y: &mut [T]) {
    map(x, y, |v| if v > T::ZERO { v } else { T::ZERO });
}

/// dx ← g where x > 0, else 0.
pub fn relu_backward<T: Float>(x: &[T], g: &[T], dx: &mut [T]) {
    zip_map(x, g, dx, |v, g| if v > T::ZERO { g } else { T::ZERO });
}

/// y ← relu(y), for an op that applies relu to its own fresh output.
pub fn relu_inplace<T: Float>(y: &mut [T]) {
    y.par_chunks_mut(ELEMS_PER_TASK).for_each(|y| {
        #[cfg(target_arch = "x86_64")]
        if let (Some(y), true) = (as_f32_mut(y), has_avx2_fma()) {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { avx2::keep_where_positive(None, y) };
        }
        y.iter_mut()
            .for_each(|v| *v = if *v > T::ZERO { *v } else { T::ZERO });
    });
}

/// g ← g where y > 0, else 0: relu's backward from its output y = relu(x)
/// (y > 0 exactly where x > 0).
pub fn relu_backward_inplace<T: Float>(y: &[T], g: &mut [T]) {
    assert_eq!(y.len(), g.len());
    g.par_chunks_mut(ELEMS_PER_TASK)
        .zip(y.par_chunks(ELEMS_PER_TASK))
        .for_each(|(g, y)| {
            #[cfg(target_arch = "x86_64")]
            if let (Some(y), Some(g), true) = (as_f32(y), as_f32_mut(g), has_avx2_fma()) {
                // SAFETY: the CPU has AVX2 (checked just above).
                return unsafe { avx2::keep_where_positive(Some(y), g) };
            }
            for (g, &v) in g.iter_mut().zip(y) {
                *g = if v > T::ZERO { *g } else { T::ZERO };
            }
        });
}

/// The in-place relu kernels in AVX2. Written out because the compiler turns
/// `*x = if gate > 0 { *x } else { 0 }` into a masked store of the zeros,
/// which is microcoded on AMD (relu ran at 2 cycles per element).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// x[i] ← x[i] where gate[i] > 0, else +0 (NaN gates give 0); the gate
    /// is x itself when `gate` is None.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn keep_where_positive(gate: Option<&[f32]>, x: &mut [f32]) {
        let n = x.len();
        let xp = x.as_mut_ptr();
        let gp = gate.map_or(xp.cast_const(), |g| {
            assert_eq!(g.len(), n);
            g.as_ptr()
        });
        let zero = _mm256_setzero_ps();
        let full = n / 8 * 8;
        for i in (0..full).step_by(8) {
            let keep = _mm256_cmp_ps::<_CMP_GT_OQ>(_mm256_loadu_ps(gp.add(i)), zero);
            _mm256_storeu_ps(xp.add(i), _mm256_and_ps(_mm256_loadu_ps(xp.add(i)), keep));
        }
        for i in full..n {
            if (*gp.add(i)).partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                *xp.add(i) = 0.0;
            }
        }
    }
}

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const GELU_CUBIC: f64 = 0.044_715;

/// gelu(x) = x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³))).
#[inline]
pub fn gelu<T: Float>(x: T) -> T {
    let (s, c, half) = (
        T::from_f64(SQRT_2_OVER_PI),
        T::from_f64(GELU_CUBIC),
        T::from_f64(0.5),
    );
    half * x * (T::ONE + (s * (x + c * x * x * x)).tanh())
}

/// d gelu / dx.
#[inline]
pub fn gelu_grad<T: Float>(x: T) -> T {
    let (s, c, half) = (
        T::from_f64(SQRT_2_OVER_PI),
        T::from_f64(GELU_CUBIC),
        T::from_f64(0.5),
    );
    let t = (s * (x + c * x * x * x)).tanh();
    let inner_grad = s * (T::ONE + T::from_f64(3.0) * c * x * x);
    half * (T::ONE + t) + half * x * (T::ONE - t * t) * inner_grad
}

/// f32 gelu in the equivalent sigmoid form x·σ(2u), u = √(2/π)(x + 0.044715x³)
/// (since ½(1 + tanh u) = σ(2u)), with the vectorised exp.
#[inline(always)]
fn gelu_f32(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI as f32 * (x + GELU_CUBIC as f32 * x * x * x);
    x / (1.0 + exp_f32(-2.0 * u))
}

/// d/dx x·σ(2u) = σ + 2x·σ(1 − σ)·u'.
#[inline(always)]
fn gelu_grad_f32(x: f32) -> f32 {
    let (s, c) = (SQRT_2_OVER_PI as f32, GELU_CUBIC as f32);
    let sig = 1.0 / (1.0 + exp_f32(-2.0 * s * (x + c * x * x * x)));
    sig + 2.0 * x * sig * (1.0 - sig) * s * (1.0 + 3.0 * c * x * x)
}

pub fn gelu_forward<T: Float>(x: &[T], y: &mut [T]) {
    match (as_f32(x), as_f32_mut(y)) {
        (Some(x), Some(y)) => map(x, y, gelu_f32),
        _ => map(x, y, gelu),
    }
}

pub fn gelu_backward<T: Float>(x: &[T], g: &[T], dx: &mut [T]) {
    match (as_f32(x), as_f32(g), as_f32_mut(dx)) {
        (Some(x), Some(g), Some(dx)) => zip_map(x, g, dx, |v, g| g * gelu_grad_f32(v)),
        _ => zip_map(x, g, dx, |v, g| g * gelu_grad(v)),
    }
}
