//! Seeded initialisation (Glorot uniform as Keras) and the small RNG behind it.

use crate::error::Result;
use crate::float::Float;
use crate::rng::splitmix64;
use crate::tensor::Tensor;

/// A [`splitmix64`] stream: its whole state is one `u64`, so a checkpoint
/// can store it and a resumed run continues the exact same stream.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SeedRng {
    state: u64,
}

impl SeedRng {
    pub fn new(seed: u64) -> Self {
        SeedRng { state: seed }
    }

    /// Continues a stream from a saved `state()`.
    pub fn from_state(state: u64) -> Self {
        SeedRng { state }
    }

    pub fn state(&self) -> u64 {
        self.state
    }

    pub fn next_u64(&mut self) -> u64 {
        splitmix64(&mut self.state)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in [0, n) (Lemire's multiply-shift; the bias is < n / 2^64).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<X>(&mut self, items: &mut [X]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// Glorot (Xavier) uniform: U(-l, l) with l = sqrt(6 / (fan_in + fan_out)),
/// Keras' default kernel initialiser.
pub fn glorot_uniform<T: Float>(
    shape: &[usize],
    fan_in: usize,
    fan_out: usize,
    rng: &mut SeedRng,
) -> Result<Tensor<T>> {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|_| T::from_f64((2.0 * rng.next_f64() - 1.0) * limit))
        .collect();
    Tensor::from_vec(data, shape)
}
