//! The network's expected absolute error as two terms, one growing with the
//! forecast and one with the spread of the history window:
//! `a · forecast + b · window std` (a, b ≥ 0), fitted by least squares to
//! its absolute training errors. As a margin's scale it is a multiplicative
//! margin that narrows on quiet windows and widens on volatile ones; two
//! coefficients, so unlike a model of every input it carries over to
//! instances the run never saw (`benches/results/reservations.md`).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorMix {
    /// a: expected error per unit of forecast.
    pub per_forecast: f64,
    /// b: expected error per unit of the window's standard deviation.
    pub per_window_std: f64,
}

impl Default for ErrorMix {
    /// A plain multiplicative scale (calibration files written before the fit).
    fn default() -> Self {
        ErrorMix {
            per_forecast: 1.0,
            per_window_std: 0.0,
        }
    }
}

impl ErrorMix {
    /// Non-negative least squares of `|actual − forecast|` on the forecast and
    /// the window's std, over the windows where all three are finite. Where no
    /// window has a spread (kaggle rows) the fit has the forecast term only;
    /// where nothing can be fitted, the default.
    pub fn fit(forecast: &[f32], actual: &[f32], window_std: &[f32]) -> Self {
        let mut sums = Sums::default();
        let mut forecast_only = Sums::default();
        for ((&f, &y), &s) in forecast.iter().zip(actual).zip(window_std) {
            let (f, e) = ((f as f64).abs(), (y as f64 - f as f64).abs());
            if !e.is_finite() {
                continue;
            }
            forecast_only.add(f, 0.0, e);
            if s.is_finite() {
                sums.add(f, s as f64, e);
            }
        }
        let fitted = if sums.ss > 0.0 {
            sums.solve()
        } else {
            forecast_only.solve()
        };
        fitted.unwrap_or_default()
    }

    /// The expected absolute error of a window; a spread that is not needed
    /// (b = 0) is not asked for, so windows without one keep a reservation.
    pub fn expected(&self, forecast: f32, window_std: f32) -> f32 {
        let by_forecast = self.per_forecast * (forecast as f64).abs();
        if self.per_window_std == 0.0 {
            by_forecast as f32
        } else {
            (by_forecast + self.per_window_std * window_std as f64) as f32
        }
    }
}

/// The normal equations of `e ≈ a·f + b·s`.
#[derive(Default)]
struct Sums {
    ff: f64,
    fs: f64,
    ss: f64,
    fe: f64,
    se: f64,
}

impl Sums {
    fn add(&mut self, f: f64, s: f64, e: f64) {
        self.ff += f * f;
        self.fs += f * s;
        self.ss += s * s;
        self.fe += f * e;
        self.se += s * e;
    }

    /// The least-squares (a, b) with both ≥ 0: the joint solution when it is
    /// non-negative, else the better of the two one-term fits.
    fn solve(&self) -> Option<ErrorMix> {
        let det = self.ff * self.ss - self.fs * self.fs;
        if det > 1e-12 * self.ff * self.ss {
            let a = (self.fe * self.ss - self.se * self.fs) / det;
            let b = (self.ff * self.se - self.fs * self.fe) / det;
            if a >= 0.0 && b >= 0.0 {
                return Some(ErrorMix {
                    per_forecast: a,
                    per_window_std: b,
                });
            }
        }
        // One term alone: the residual sum of squares falls by fe²/ff or se²/ss.
        let by_forecast = (self.ff > 0.0 && self.fe > 0.0).then(|| self.fe * self.fe / self.ff);
        let by_std = (self.ss > 0.0 && self.se > 0.0).then(|| self.se * self.se / self.ss);
        match (by_forecast, by_std) {
            (Some(gf), gs) if gs.is_none_or(|gs| gf >= gs) => Some(ErrorMix {
                per_forecast: self.fe / self.ff,
                per_window_std: 0.0,
            }),
            (_, Some(_)) => Some(ErrorMix {
                per_forecast: 0.0,
                per_window_std: self.se / self.ss,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::SeedRng;

    /// Windows with forecasts in [0.5, 1.5] and stds in [0, 0.2], and actual
    /// peaks whose absolute error is exactly `a·f + b·s`, above or below.
    fn windows(seed: u64, n: usize, a: f64, b: f64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let mut rng = SeedRng::new(seed);
        let (mut f, mut y, mut s) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let fi = 0.5 + rng.next_f64();
            let si = 0.2 * rng.next_f64();
            let sign = if rng.next_f64() < 0.5 { -1.0 } else { 1.0 };
            f.push(fi as f32);
            s.push(si as f32);
            y.push((fi + sign * (a * fi + b * si)) as f32);
        }
        (f, y, s)
    }

    #[test]
    fn recovers_both_terms_and_clamps_a_negative_one_to_zero() {
        for seed in 0..3 {
            let (f, y, s) = windows(seed, 500, 0.02, 1.5);
            let m = ErrorMix::fit(&f, &y, &s);
            assert!((m.per_forecast - 0.02).abs() < 1e-4, "{m:?}");
            assert!((m.per_window_std - 1.5).abs() < 1e-3, "{m:?}");
            assert!((m.expected(1.0, 0.1) - 0.17).abs() < 1e-4);
            // Errors that shrink as the forecast grows: no negative forecast term.
            let (f, y, s) = windows(seed, 500, 0.0, 1.0);
            let y: Vec<f32> = (0..f.len())
                .map(|i| y[i] - (y[i] - f[i]).signum() * 0.05 * (f[i] - 0.5))
                .collect();
            let m = ErrorMix::fit(&f, &y, &s);
            assert_eq!(m.per_forecast, 0.0, "{m:?}");
            assert!(m.per_window_std > 0.5, "{m:?}");
        }
    }

    #[test]
    fn without_window_spreads_it_is_multiplicative_and_needs_none() {
        let (f, y, _) = windows(4, 300, 0.03, 0.0);
        let m = ErrorMix::fit(&f, &y, &vec![f32::NAN; f.len()]);
        assert!((m.per_forecast - 0.03).abs() < 1e-5, "{m:?}");
        assert_eq!(m.per_window_std, 0.0);
        assert!((m.expected(2.0, f32::NAN) - 0.06).abs() < 1e-5);
        // Nothing to fit on: the plain multiplicative default.
        assert_eq!(ErrorMix::fit(&[], &[], &[]), ErrorMix::default());
        assert_eq!(ErrorMix::fit(&[1.0], &[1.0], &[0.5]), ErrorMix::default());
    }
}
