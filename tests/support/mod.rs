//! What the integration tests share: the naive f64 references
//! ([`reference`]), the closeness check, and seeded inputs.

#![allow(dead_code)]

pub mod reference;

/// Deterministic inputs (xorshift64*), uniform in [-1, 1).
pub struct TestRng(u64);

impl TestRng {
    pub fn new(seed: u64) -> Self {
        TestRng(seed.wrapping_mul(0x9E3779B97F4A7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.uniform()).collect()
    }
}

/// Values uniform in [0, 1) with 53 random bits, from the crate's SplitMix64
/// stream started at `seed`: reproducible test inputs.
pub fn unit_stream(seed: u64) -> impl Iterator<Item = f64> {
    let mut state = seed;
    std::iter::repeat_with(move || {
        (convformer::rng::splitmix64(&mut state) >> 11) as f64 / (1u64 << 53) as f64
    })
}

/// The first element where |got − want| exceeds `bound(want)` (NaN, an
/// unwritten poisoned element, always does), described; `None` if all are
/// close. The caller checks the lengths.
pub fn mismatch(
    what: &str,
    got: impl IntoIterator<Item = f64>,
    want: &[f64],
    bound: impl Fn(f64) -> f64,
) -> Option<String> {
    got.into_iter()
        .zip(want)
        .enumerate()
        .find_map(|(i, (g, &w))| {
            let err = (g - w).abs();
            let within = matches!(
                err.partial_cmp(&bound(w)),
                Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
            );
            (!within).then(|| {
                format!(
                    "{what}[{i}]: got {g}, want {w} (|diff| {err:.3e} > {:.3e})",
                    bound(w)
                )
            })
        })
}

/// |got - want| <= atol + rtol |want| elementwise; NaN always fails. Panics
/// with the first offending index.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(m) = mismatch(what, got.iter().map(|&g| g as f64), want, |w| {
        atol + rtol * w.abs()
    }) {
        panic!("{m} (atol {atol:.0e} + rtol {rtol:.0e}·|want|)");
    }
}

/// Every parameter's values on the host, in the store's order.
pub fn param_values(store: &convformer::ParamStore<f32>) -> Vec<Vec<f32>> {
    store
        .ids()
        .map(|id| store.get(id).to_vec().unwrap())
        .collect()
}

pub fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}
