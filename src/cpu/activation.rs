//! ReLU and GELU (tanh approximation, as GPT-2 / llm.c).

use super::elementwise::{map, map_inplace, zip_map, zip_map_inplace};
use super::fastmath::{as_f32, as_f32_mut, exp_f32};
use crate::float::Float;

pub fn relu_forward<T: Float>(x: &[T], y: &mut [T]) {
    map(x, y, |v| if v > T::ZERO { v } else { T::ZERO });
}

/// dx ← g where x > 0, else 0.
pub fn relu_backward<T: Float>(x: &[T], g: &[T], dx: &mut [T]) {
    zip_map(x, g, dx, |v, g| if v > T::ZERO { g } else { T::ZERO });
}

/// y ← relu(y), for an op that applies relu to its own fresh output.
pub fn relu_inplace<T: Float>(y: &mut [T]) {
    map_inplace(y, |v| if v > T::ZERO { v } else { T::ZERO });
}

/// g ← g where y > 0, else 0: relu's backward from its output y = relu(x)
/// (y > 0 exactly where x > 0).
pub fn relu_backward_inplace<T: Float>(y: &[T], g: &mut [T]) {
    zip_map_inplace(g, y, |g, v| if v > T::ZERO { g } else { T::ZERO });
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
