//! The network's expected absolute error as three terms: one growing with the
//! forecast, one with the spread of the history window and one with how far
//! the forecast departs from the last value,
//! `a · forecast + b · window std + c · |forecast − last value|` (a, b, c ≥ 0),
//! fitted by least squares to its absolute training errors. As a margin's
//! scale it is a multiplicative margin that narrows on quiet windows where the
//! network keeps to the last value, and widens on volatile ones and where it
//! predicts a change. Three coefficients, so unlike a model of every input it
//! carries over to instances the run never saw (`benches/results/reservations.md`).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorMix {
    /// a: expected error per unit of forecast.
    pub per_forecast: f64,
    /// b: expected error per unit of the window's standard deviation.
    pub per_window_std: f64,
    /// c: expected error per unit of |forecast − last value| (files written
    /// before the term: 0).
    #[serde(default)]
    pub per_departure: f64,
}

impl Default for ErrorMix {
    /// A plain multiplicative scale (calibration files written before the fit).
    fn default() -> Self {
        ErrorMix {
            per_forecast: 1.0,
            per_window_std: 0.0,
            per_departure: 0.0,
        }
    }
}

/// The terms of one window: forecast, window std, departure from the last value.
type Terms = [f64; 3];

impl ErrorMix {
    /// Non-negative least squares of `|actual − forecast|` on the three terms.
    /// A term that is unknown on every window (the window spread of kaggle rows)
    /// is left out; of the others, windows where one is unknown are passed over.
    /// Where nothing can be fitted, the default.
    pub fn fit(forecast: &[f32], actual: &[f32], window_std: &[f32], last: &[f32]) -> Self {
        let windows: Vec<(Terms, f64)> = (0..forecast.len())
            .map(|i| {
                let f = forecast[i] as f64;
                let terms = [f.abs(), window_std[i] as f64, (f - last[i] as f64).abs()];
                (terms, (actual[i] as f64 - f).abs())
            })
            .filter(|(_, e)| e.is_finite())
            .collect();
        let known: Vec<usize> = (0..3)
            .filter(|&j| windows.iter().any(|(t, _)| t[j].is_finite()))
            .collect();
        let mut sums = NormalEquations::default();
        for (t, e) in &windows {
            if known.iter().all(|&j| t[j].is_finite()) {
                // An unknown term counts as 0, so that it cannot poison the sums.
                let t = t.map(|x| if x.is_finite() { x } else { 0.0 });
                sums.add(&t, *e);
            }
        }
        match sums.solve_non_negative(&known) {
            Some([a, b, c]) => ErrorMix {
                per_forecast: a,
                per_window_std: b,
                per_departure: c,
            },
            None => ErrorMix::default(),
        }
    }

    /// The expected absolute error of a window. A term with a zero
    /// coefficient is not asked for, so windows without a spread (kaggle rows)
    /// keep a reservation when the fit needs none.
    pub fn expected(&self, forecast: f32, window_std: f32, last: f32) -> f32 {
        let f = forecast as f64;
        let terms = [
            (self.per_forecast, f.abs()),
            (self.per_window_std, window_std as f64),
            (self.per_departure, (f - last as f64).abs()),
        ];
        terms
            .iter()
            .filter(|(w, _)| *w != 0.0)
            .map(|(w, x)| w * x)
            .sum::<f64>() as f32
    }
}

/// XᵀX and Xᵀe of `e ≈ w · terms`.
#[derive(Default)]
struct NormalEquations {
    xx: [[f64; 3]; 3],
    xe: [f64; 3],
    ee: f64,
}

impl NormalEquations {
    fn add(&mut self, t: &Terms, e: f64) {
        for p in 0..3 {
            for q in 0..3 {
                self.xx[p][q] += t[p] * t[q];
            }
            self.xe[p] += t[p] * e;
        }
        self.ee += e * e;
    }

    /// The least-squares weights over `terms`, all ≥ 0: of the subsets of terms
    /// whose unconstrained fit is non-negative, the one of least residual (the
    /// constrained optimum is one of them). None when no subset fits (no
    /// windows, or errors all zero).
    fn solve_non_negative(&self, terms: &[usize]) -> Option<Terms> {
        let mut best: Option<(Terms, f64)> = None;
        for mask in 1u32..(1 << terms.len()) {
            let subset: Vec<usize> = (0..terms.len())
                .filter(|&i| mask & (1 << i) != 0)
                .map(|i| terms[i])
                .collect();
            let Some(w) = self.solve(&subset) else {
                continue;
            };
            if w.iter().any(|&v| v < 0.0) || w.iter().all(|&v| v == 0.0) {
                continue;
            }
            let rss = self.residual(&w);
            if best.is_none_or(|(_, r)| rss < r) {
                best = Some((w, rss));
            }
        }
        best.map(|(w, _)| w)
    }

    /// The unconstrained least squares on `subset` (Gaussian elimination with
    /// partial pivoting); None when its terms are collinear.
    fn solve(&self, subset: &[usize]) -> Option<Terms> {
        let k = subset.len();
        let mut a: Vec<Vec<f64>> = subset
            .iter()
            .map(|&p| {
                let mut row: Vec<f64> = subset.iter().map(|&q| self.xx[p][q]).collect();
                row.push(self.xe[p]);
                row
            })
            .collect();
        let scale = subset.iter().map(|&p| self.xx[p][p]).fold(0.0, f64::max);
        for c in 0..k {
            let pivot = (c..k).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))?;
            a.swap(c, pivot);
            if a[c][c].abs() <= 1e-12 * scale {
                return None;
            }
            let pivot_row = a[c].clone();
            for (r, row) in a.iter_mut().enumerate() {
                if r != c {
                    let f = row[c] / pivot_row[c];
                    for (x, p) in row[c..].iter_mut().zip(&pivot_row[c..]) {
                        *x -= f * p;
                    }
                }
            }
        }
        let mut w = [0.0; 3];
        for (i, &p) in subset.iter().enumerate() {
            w[p] = a[i][k] / a[i][i];
        }
        Some(w)
    }

    /// Σ (e − w · terms)², from the sums.
    fn residual(&self, w: &Terms) -> f64 {
        let mut quad = 0.0;
        for p in 0..3 {
            for q in 0..3 {
                quad += w[p] * self.xx[p][q] * w[q];
            }
        }
        let cross: f64 = (0..3).map(|p| w[p] * self.xe[p]).sum();
        self.ee - 2.0 * cross + quad
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::SeedRng;

    struct Windows {
        forecast: Vec<f32>,
        actual: Vec<f32>,
        std: Vec<f32>,
        last: Vec<f32>,
    }

    impl Windows {
        fn fit(&self) -> ErrorMix {
            ErrorMix::fit(&self.forecast, &self.actual, &self.std, &self.last)
        }
    }

    /// Windows with forecasts in [0.5, 1.5], stds in [0, 0.2] and last values
    /// within 0.1 of the forecast, and actual peaks whose absolute error is
    /// exactly `a·f + b·s + c·|f − last|`, above or below.
    fn windows(seed: u64, n: usize, [a, b, c]: Terms) -> Windows {
        let mut rng = SeedRng::new(seed);
        let mut w = Windows {
            forecast: Vec::new(),
            actual: Vec::new(),
            std: Vec::new(),
            last: Vec::new(),
        };
        for _ in 0..n {
            let f = 0.5 + rng.next_f64();
            let s = 0.2 * rng.next_f64();
            let last = f + 0.2 * (rng.next_f64() - 0.5);
            let sign = if rng.next_f64() < 0.5 { -1.0 } else { 1.0 };
            let e = a * f + b * s + c * (f - last).abs();
            w.forecast.push(f as f32);
            w.std.push(s as f32);
            w.last.push(last as f32);
            w.actual.push((f + sign * e) as f32);
        }
        w
    }

    #[test]
    fn recovers_every_term_and_clamps_a_negative_one_to_zero() {
        for seed in 0..3 {
            let w = windows(seed, 500, [0.02, 1.5, 0.8]);
            let m = w.fit();
            assert!((m.per_forecast - 0.02).abs() < 1e-4, "{m:?}");
            assert!((m.per_window_std - 1.5).abs() < 1e-3, "{m:?}");
            assert!((m.per_departure - 0.8).abs() < 1e-3, "{m:?}");
            // 0.02·1 + 1.5·0.1 + 0.8·0.05
            assert!((m.expected(1.0, 0.1, 0.95) - 0.21).abs() < 1e-4);
            // Errors that shrink as the forecast grows: no negative forecast term.
            let mut w = windows(seed, 500, [0.0, 1.0, 0.0]);
            for i in 0..w.actual.len() {
                let f = w.forecast[i];
                w.actual[i] -= (w.actual[i] - f).signum() * 0.05 * (f - 0.5);
            }
            let m = w.fit();
            assert_eq!(m.per_forecast, 0.0, "{m:?}");
            assert!(m.per_window_std > 0.5, "{m:?}");
        }
    }

    #[test]
    fn without_window_spreads_the_other_terms_are_fitted_and_no_spread_is_needed() {
        let mut w = windows(4, 300, [0.03, 0.0, 0.5]);
        w.std = vec![f32::NAN; w.std.len()];
        let m = w.fit();
        assert!((m.per_forecast - 0.03).abs() < 1e-5, "{m:?}");
        assert!((m.per_departure - 0.5).abs() < 1e-4, "{m:?}");
        assert_eq!(m.per_window_std, 0.0);
        assert!((m.expected(2.0, f32::NAN, 1.9) - 0.11).abs() < 1e-5);
        // Nothing to fit on: the plain multiplicative default.
        assert_eq!(ErrorMix::fit(&[], &[], &[], &[]), ErrorMix::default());
        assert_eq!(
            ErrorMix::fit(&[1.0], &[1.0], &[0.5], &[0.9]),
            ErrorMix::default()
        );
    }

    #[test]
    fn the_constrained_fit_is_no_worse_than_any_non_negative_alternative() {
        // Noisy errors: compare the fit's residual with nearby non-negative weights.
        let mut rng = SeedRng::new(9);
        let mut w = windows(9, 400, [0.01, 0.7, 0.2]);
        for a in w.actual.iter_mut() {
            *a += 0.05 * (rng.next_f64() as f32 - 0.5);
        }
        let m = w.fit();
        let rss = |v: Terms| -> f64 {
            (0..w.forecast.len())
                .map(|i| {
                    let mix = ErrorMix {
                        per_forecast: v[0],
                        per_window_std: v[1],
                        per_departure: v[2],
                    };
                    let pred = mix.expected(w.forecast[i], w.std[i], w.last[i]) as f64;
                    ((w.actual[i] - w.forecast[i]).abs() as f64 - pred).powi(2)
                })
                .sum()
        };
        let fitted = [m.per_forecast, m.per_window_std, m.per_departure];
        let at = rss(fitted);
        for j in 0..3 {
            for step in [-0.01, 0.01] {
                let mut v = fitted;
                v[j] = (v[j] + step).max(0.0);
                assert!(rss(v) >= at - 1e-9, "{v:?} beats {fitted:?}");
            }
        }
    }
}
