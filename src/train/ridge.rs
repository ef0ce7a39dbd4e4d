//! Ridge regression baseline in closed form: w = (XᵀX + λI)⁻¹ Xᵀy with an
//! unpenalised intercept, solved by Cholesky in f64 on the engine's GEMM.

use crate::error::{Error, Result};

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Ridge {
    pub weights: Vec<f64>,
    pub intercept: f64,
    pub lambda: f64,
}

impl Ridge {
    /// Fits on `x` (n rows × d features, row-major) and `y` (n). Features and
    /// target are centred first so the intercept is not shrunk.
    pub fn fit(x: &[f32], y: &[f32], d: usize, lambda: f64) -> Result<Self> {
        let gram = Gram::new(x, y, None, d)?;
        gram.solve(lambda)
    }

    /// The linear fit under the Huber loss with threshold `delta` (same
    /// penalty λ as `self`), by iteratively reweighted least squares started
    /// from `self`: a sample whose residual exceeds δ gets weight δ/|r|.
    pub fn refit_huber(&self, x: &[f32], y: &[f32], d: usize, delta: f64) -> Result<Self> {
        let mut model = self.clone();
        for _ in 0..HUBER_IRLS_ITERATIONS {
            let pred = model.predict(x, d)?;
            let weights: Vec<f64> = pred
                .iter()
                .zip(y)
                .map(|(&p, &y)| {
                    let r = (y as f64 - p as f64).abs();
                    if r <= delta {
                        1.0
                    } else {
                        delta / r
                    }
                })
                .collect();
            model = Gram::new(x, y, Some(&weights), d)?.solve(self.lambda)?;
        }
        Ok(model)
    }

    /// Picks λ from a grid (relative to the mean feature variance) by the MAE
    /// on a validation set, then returns that fit.
    pub fn fit_select(
        x: &[f32],
        y: &[f32],
        x_val: &[f32],
        y_val: &[f32],
        d: usize,
    ) -> Result<Self> {
        let gram = Gram::new(x, y, None, d)?;
        let scale = (0..d).map(|i| gram.xtx[i * d + i]).sum::<f64>() / d.max(1) as f64;
        let scale = if scale > 0.0 { scale } else { 1.0 };
        let mut best: Option<(f64, Ridge)> = None;
        for rel in [1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0] {
            let model = gram.solve(rel * scale)?;
            let mae = if y_val.is_empty() {
                0.0
            } else {
                let p = model.predict(x_val, d)?;
                p.iter()
                    .zip(y_val)
                    .map(|(a, b)| (a - b).abs() as f64)
                    .sum::<f64>()
                    / y_val.len() as f64
            };
            if best.as_ref().is_none_or(|(m, _)| mae < *m) {
                best = Some((mae, model));
            }
        }
        Ok(best.expect("the grid is not empty").1)
    }

    pub fn predict(&self, x: &[f32], d: usize) -> Result<Vec<f32>> {
        if d != self.weights.len() || !x.len().is_multiple_of(d.max(1)) {
            return Err(Error::shape(
                "Ridge::predict",
                &[x.len(), d],
                &[self.weights.len()],
                "feature count differs from the fitted model",
            ));
        }
        Ok(x.chunks(d)
            .map(|row| {
                let dot: f64 = row
                    .iter()
                    .zip(&self.weights)
                    .map(|(&a, w)| a as f64 * w)
                    .sum();
                (dot + self.intercept) as f32
            })
            .collect())
    }
}

/// Reweighting rounds of `refit_huber`: the fit moves little after a handful.
const HUBER_IRLS_ITERATIONS: usize = 8;

/// Centred (optionally sample-weighted) normal equations, computed once and
/// solved for several λ.
struct Gram {
    d: usize,
    xtx: Vec<f64>,
    xty: Vec<f64>,
    x_mean: Vec<f64>,
    y_mean: f64,
}

impl Gram {
    fn new(x: &[f32], y: &[f32], weights: Option<&[f64]>, d: usize) -> Result<Self> {
        let n = y.len();
        if d == 0 || n == 0 || x.len() != n * d || weights.is_some_and(|w| w.len() != n) {
            return Err(Error::shape(
                "Ridge::fit",
                &[x.len()],
                &[n, d],
                "x must hold n rows of d features, n > 0",
            ));
        }
        if x.iter().chain(y).any(|v| !v.is_finite()) {
            return Err(Error::Invalid(
                "ridge: inputs hold NaN or infinite values (impute first)".into(),
            ));
        }
        let weight = |i: usize| weights.map_or(1.0, |w| w[i]);
        let total: f64 = (0..n).map(weight).sum();
        let mut x_mean = vec![0.0; d];
        for (i, row) in x.chunks(d).enumerate() {
            for (m, &v) in x_mean.iter_mut().zip(row) {
                *m += weight(i) * v as f64;
            }
        }
        x_mean.iter_mut().for_each(|m| *m /= total);
        let y_mean = (0..n).map(|i| weight(i) * y[i] as f64).sum::<f64>() / total;
        // Rows scaled by √w, so XᵀX and Xᵀy below are the weighted sums.
        let xc: Vec<f64> = x
            .chunks(d)
            .enumerate()
            .flat_map(|(i, row)| {
                let s = weight(i).sqrt();
                row.iter()
                    .zip(&x_mean)
                    .map(move |(&v, m)| s * (v as f64 - m))
            })
            .collect();
        let yc: Vec<f64> = (0..n)
            .map(|i| weight(i).sqrt() * (y[i] as f64 - y_mean))
            .collect();
        let mut xtx = vec![0.0; d * d];
        let mut xty = vec![0.0; d];
        // SAFETY: the strides describe xc as n×d row-major (read transposed as
        // d×n), yc as n×1 and the outputs as d×d and d×1, all fully in bounds.
        unsafe {
            matrixmultiply::dgemm(
                d,
                n,
                d,
                1.0,
                xc.as_ptr(),
                1,
                d as isize,
                xc.as_ptr(),
                d as isize,
                1,
                0.0,
                xtx.as_mut_ptr(),
                d as isize,
                1,
            );
            matrixmultiply::dgemm(
                d,
                n,
                1,
                1.0,
                xc.as_ptr(),
                1,
                d as isize,
                yc.as_ptr(),
                1,
                1,
                0.0,
                xty.as_mut_ptr(),
                1,
                1,
            );
        }
        Ok(Gram {
            d,
            xtx,
            xty,
            x_mean,
            y_mean,
        })
    }

    fn solve(&self, lambda: f64) -> Result<Ridge> {
        let d = self.d;
        let mut a = self.xtx.clone();
        for i in 0..d {
            // A tiny floor keeps constant (zero-variance) features solvable.
            a[i * d + i] += lambda.max(1e-12);
        }
        let w = cholesky_solve(&mut a, &self.xty, d)?;
        let intercept = self.y_mean - w.iter().zip(&self.x_mean).map(|(w, m)| w * m).sum::<f64>();
        Ok(Ridge {
            weights: w,
            intercept,
            lambda,
        })
    }
}

/// Solves A·w = b for symmetric positive definite A (overwritten by its factor).
fn cholesky_solve(a: &mut [f64], b: &[f64], d: usize) -> Result<Vec<f64>> {
    for j in 0..d {
        let mut diag = a[j * d + j];
        for k in 0..j {
            diag -= a[j * d + k] * a[j * d + k];
        }
        if diag <= 0.0 || !diag.is_finite() {
            return Err(Error::Invalid(format!(
                "ridge: normal equations are not positive definite at column {j}"
            )));
        }
        let l = diag.sqrt();
        a[j * d + j] = l;
        for i in j + 1..d {
            let mut s = a[i * d + j];
            for k in 0..j {
                s -= a[i * d + k] * a[j * d + k];
            }
            a[i * d + j] = s / l;
        }
    }
    let mut z = b.to_vec();
    for i in 0..d {
        for k in 0..i {
            z[i] -= a[i * d + k] * z[k];
        }
        z[i] /= a[i * d + i];
    }
    for i in (0..d).rev() {
        for k in i + 1..d {
            z[i] -= a[k * d + i] * z[k];
        }
        z[i] /= a[i * d + i];
    }
    Ok(z)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_linear_law() {
        // y = 2·x0 − 3·x1 + 0.5 on ragged, non-trivial inputs.
        let n = 37;
        let x: Vec<f32> = (0..n * 2)
            .map(|i| ((i * 7919) % 101) as f32 / 13.0)
            .collect();
        let y: Vec<f32> = x.chunks(2).map(|r| 2.0 * r[0] - 3.0 * r[1] + 0.5).collect();
        let r = Ridge::fit(&x, &y, 2, 1e-9).unwrap();
        assert!((r.weights[0] - 2.0).abs() < 1e-4, "{:?}", r.weights);
        assert!((r.weights[1] + 3.0).abs() < 1e-4, "{:?}", r.weights);
        assert!((r.intercept - 0.5).abs() < 1e-3, "{}", r.intercept);
        let p = r.predict(&x, 2).unwrap();
        for (p, y) in p.iter().zip(&y) {
            assert!((p - y).abs() < 1e-3);
        }
    }

    #[test]
    fn shrinks_with_large_lambda() {
        let x: Vec<f32> = (0..20).map(|i| i as f32).collect();
        let y: Vec<f32> = x.iter().map(|v| 3.0 * v).collect();
        let small = Ridge::fit(&x, &y, 1, 1e-9).unwrap();
        let big = Ridge::fit(&x, &y, 1, 1e6).unwrap();
        assert!(big.weights[0].abs() < small.weights[0].abs() / 2.0);
    }

    #[test]
    fn the_huber_refit_resists_outliers() {
        // y = 2·x + 1 with one sample in ten thrown far off: ridge is pulled
        // away, the Huber refit recovers the law.
        let n = 200;
        let x: Vec<f32> = (0..n).map(|i| ((i * 37) % 101) as f32 / 10.0).collect();
        let y: Vec<f32> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| 2.0 * v + 1.0 + if i % 10 == 3 { 40.0 } else { 0.0 })
            .collect();
        let ridge = Ridge::fit(&x, &y, 1, 1e-9).unwrap();
        let huber = ridge.refit_huber(&x, &y, 1, 1.0).unwrap();
        assert!((huber.weights[0] - 2.0).abs() < 0.05, "{huber:?}");
        assert!((huber.intercept - 1.0).abs() < 0.5, "{huber:?}");
        assert!((ridge.intercept - 1.0).abs() > 2.0, "{ridge:?}");
    }

    #[test]
    fn rejects_nan_and_bad_shapes() {
        assert!(Ridge::fit(&[1.0, f32::NAN], &[1.0, 2.0], 1, 1.0).is_err());
        assert!(Ridge::fit(&[1.0, 2.0, 3.0], &[1.0, 2.0], 1, 1.0).is_err());
    }
}
