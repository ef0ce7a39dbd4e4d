//! ReLU and GELU (tanh approximation, as GPT-2 / llm.c).

use super::elementwise::{map, zip_map};
use crate::float::Float;

pub fn relu_forward<T: Float>(x: &[T], y: &mut [T]) {
    map(x, y, |v| if v > T::ZERO { v } else { T::ZERO });
}

/// dx ← g where x > 0, else 0.
pub fn relu_backward<T: Float>(x: &[T], g: &[T], dx: &mut [T]) {
    zip_map(x, g, dx, |v, g| if v > T::ZERO { g } else { T::ZERO });
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

pub fn gelu_forward<T: Float>(x: &[T], y: &mut [T]) {
    map(x, y, gelu);
}

pub fn gelu_backward<T: Float>(x: &[T], g: &[T], dx: &mut [T]) {
    zip_map(x, g, dx, |v, g| g * gelu_grad(v));
}
