//! Row reductions that the compiler vectorises. Rust never reorders float
//! additions, so a plain `sum()` is one long chain of dependent adds; these keep
//! [`LANES`] partial results instead (element i goes to lane i mod LANES, in
//! order) and combine the lanes pairwise at the end. The order depends on the
//! length alone, so results do not depend on the vector width or the thread count.

use crate::float::Float;

/// Partial results per reduction: 8 f32 fill an AVX2 register.
pub(crate) const LANES: usize = 8;

/// Folds x with `f` (associative up to rounding, e.g. + or max).
#[inline(always)]
pub(crate) fn fold_lanes<T: Float>(x: &[T], init: T, f: impl Fn(T, T) -> T) -> T {
    let mut lanes = [init; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (l, &v) in lanes.iter_mut().zip(chunk) {
            *l = f(*l, v);
        }
    }
    for (l, &v) in lanes.iter_mut().zip(tail) {
        *l = f(*l, v);
    }
    fold_pairs(lanes, f)
}

/// Σ term(i) for i in 0..n.
#[inline(always)]
pub(crate) fn sum_lanes<T: Float>(n: usize, term: impl Fn(usize) -> T) -> T {
    let mut lanes = [T::ZERO; LANES];
    let full = n / LANES * LANES;
    for base in (0..full).step_by(LANES) {
        for (l, s) in lanes.iter_mut().enumerate() {
            *s += term(base + l);
        }
    }
    for (s, i) in lanes.iter_mut().zip(full..n) {
        *s += term(i);
    }
    fold_pairs(lanes, |a, b| a + b)
}

/// The lanes combined pairwise ((0·1)·(2·3))·((4·5)·(6·7)): three dependent
/// steps instead of seven, which matters on short rows (a softmax row of 16).
#[inline(always)]
fn fold_pairs<T: Float>(l: [T; LANES], f: impl Fn(T, T) -> T) -> T {
    f(
        f(f(l[0], l[1]), f(l[2], l[3])),
        f(f(l[4], l[5]), f(l[6], l[7])),
    )
}

#[cfg(test)]
mod tests {
    use super::{fold_lanes, sum_lanes};

    #[test]
    fn lane_reductions_match_plain_ones_on_ragged_lengths() {
        for n in [0usize, 1, 7, 8, 9, 13, 48, 243] {
            let x: Vec<f64> = (0..n).map(|i| ((i * 37 % 11) as f64) - 4.5).collect();
            let plain: f64 = x.iter().sum();
            assert!(
                (fold_lanes(&x, 0.0, |a, b| a + b) - plain).abs() < 1e-12,
                "n {n}"
            );
            assert!((sum_lanes(n, |i| x[i]) - plain).abs() < 1e-12, "n {n}");
            let max = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            assert_eq!(fold_lanes(&x, f64::NEG_INFINITY, f64::max), max, "n {n}");
        }
    }
}
