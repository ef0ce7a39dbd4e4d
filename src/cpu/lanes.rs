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

/// Σ term(rows[0][i], rows[1][i], ..) over the rows (as long as the first),
/// element i into lane i mod [`LANES`] as in [`fold_lanes`]. A whole chunk is
/// sliced at once, so no bounds check is left inside it and the terms
/// vectorise (an indexing closure stayed scalar: 8% of an inference pass
/// went to layer norm's variance).
#[inline(always)]
pub(crate) fn sum_zip_lanes<T: Float, const N: usize>(
    rows: [&[T]; N],
    term: impl Fn([T; N]) -> T,
) -> T {
    let n = rows[0].len();
    let mut lanes = [T::ZERO; LANES];
    let full = n / LANES * LANES;
    for base in (0..full).step_by(LANES) {
        let chunk = rows.map(|r| &r[base..base + LANES]);
        for (l, s) in lanes.iter_mut().enumerate() {
            *s += term(chunk.map(|c| c[l]));
        }
    }
    for (s, i) in lanes.iter_mut().zip(full..n) {
        *s += term(rows.map(|r| r[i]));
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
    use super::{fold_lanes, sum_zip_lanes};

    #[test]
    fn lane_reductions_match_plain_ones_on_ragged_lengths() {
        for n in [0usize, 1, 7, 8, 9, 13, 48, 243] {
            let x: Vec<f64> = (0..n).map(|i| ((i * 37 % 11) as f64) - 4.5).collect();
            let plain: f64 = x.iter().sum();
            assert!(
                (fold_lanes(&x, 0.0, |a, b| a + b) - plain).abs() < 1e-12,
                "n {n}"
            );
            // A term of two rows sums in fold_lanes' order, to the bit.
            let y: Vec<f64> = x.iter().map(|v| 1.0 / (3.0 + v)).collect();
            let xy: Vec<f64> = x.iter().zip(&y).map(|(a, b)| a * b).collect();
            assert_eq!(
                sum_zip_lanes([&x, &y], |[a, b]| a * b).to_bits(),
                fold_lanes(&xy, 0.0, |a, b| a + b).to_bits(),
                "n {n}"
            );
            let max = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            assert_eq!(fold_lanes(&x, f64::NEG_INFINITY, f64::max), max, "n {n}");
        }
    }
}
