//! The CPU AdamW update and the sum of squares behind gradient clipping: the
//! host counterparts of the launches in `cuda.rs`.

use crate::error::{Error, Result};
use crate::float::Float;

/// The coefficients of one AdamW step in the parameters' type, computed once
/// per step from the f64 hyper-parameters (t counts from 1).
#[derive(Clone, Copy, Debug)]
pub struct AdamCoefs<T> {
    pub beta1: T,
    pub beta2: T,
    /// 1 − lr·weight_decay.
    pub decay: T,
    /// lr / (1 − β1ᵗ).
    pub step_size: T,
    /// 1 / (1 − β2ᵗ).
    pub inv_c2: T,
    pub eps: T,
}

impl<T: Float> AdamCoefs<T> {
    pub fn new(lr: f64, beta1: f64, beta2: f64, eps: f64, weight_decay: f64, t: i32) -> Self {
        let (c1, c2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
        AdamCoefs {
            beta1: T::from_f64(beta1),
            beta2: T::from_f64(beta2),
            decay: T::from_f64(1.0 - lr * weight_decay),
            step_size: T::from_f64(lr / c1),
            inv_c2: T::from_f64(1.0 / c2),
            eps: T::from_f64(eps),
        }
    }
}

/// One AdamW update of the parameters p with gradients g and moments m, v
/// (all of one length): p ← p·decay − step_size·m / (√(v·inv_c2) + eps).
pub fn adamw_step<T: Float>(
    c: &AdamCoefs<T>,
    p: &mut [T],
    g: &[T],
    m: &mut [T],
    v: &mut [T],
) -> Result<()> {
    if g.len() != p.len() || m.len() != p.len() || v.len() != p.len() {
        return Err(Error::shape(
            "adamw_step",
            &[p.len(), g.len()],
            &[m.len(), v.len()],
            "params, grads and moments differ in length",
        ));
    }
    let (b1, b2) = (c.beta1, c.beta2);
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        *m = b1 * *m + (T::ONE - b1) * g;
        *v = b2 * *v + (T::ONE - b2) * g * g;
        *p = *p * c.decay - c.step_size * *m / ((*v * c.inv_c2).sqrt() + c.eps);
    }
    Ok(())
}

/// Σ x², accumulated in f64 (for the global gradient norm).
pub fn sum_squares<T: Float>(x: &[T]) -> f64 {
    x.iter().map(|&v| v.to_f64() * v.to_f64()).sum()
}
