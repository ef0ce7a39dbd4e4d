//! Product kernel density estimators over encoded configurations.
//!
//! Continuous dimensions use a Gaussian kernel, categorical ones the
//! Aitchison–Aitken kernel with the space's true number of choices, ordinal
//! ones a Wang–Ryzin kernel normalised over the finite set of values.
//! Bandwidths follow the normal-reference rule `1.06 σ n^(-1/(4+d))` per
//! dimension (as statsmodels' `KDEMultivariate(bw="normal_reference")`, which
//! hpbandster uses), clipped below at `min_bandwidth` and, for discrete
//! kernels, above at the kernel's valid range.

use super::rng::Rng;
use super::space::DimKind;

/// Largest useful Wang–Ryzin λ (λ = 1 would be a flat kernel with 0 weight
/// at the centre).
const MAX_ORDINAL_LAMBDA: f64 = 0.99;

#[derive(Clone, Debug)]
pub struct Kde {
    kinds: Vec<DimKind>,
    /// Row-major `n × d`.
    data: Vec<f64>,
    bandwidths: Vec<f64>,
}

impl Kde {
    /// Fits bandwidths by the normal-reference rule. `rows` must be non-empty
    /// and each row must have one entry per kind.
    pub fn fit(kinds: &[DimKind], rows: &[&[f64]], min_bandwidth: f64) -> Self {
        assert!(!rows.is_empty(), "a KDE needs at least one point");
        let d = kinds.len();
        let n = rows.len() as f64;
        let shrink = 1.06 * n.powf(-1.0 / (4.0 + d as f64));
        let bandwidths = kinds
            .iter()
            .enumerate()
            .map(|(j, kind)| {
                let mean = rows.iter().map(|r| r[j]).sum::<f64>() / n;
                let var = rows.iter().map(|r| (r[j] - mean).powi(2)).sum::<f64>() / n;
                let bw = (shrink * var.sqrt()).max(min_bandwidth);
                match kind {
                    DimKind::Continuous => bw,
                    DimKind::Categorical(c) => bw.min(max_aitchison_aitken(*c)),
                    DimKind::Ordinal(_) => bw.min(MAX_ORDINAL_LAMBDA),
                }
            })
            .collect();
        Self::with_bandwidths(kinds, rows, bandwidths)
    }

    pub fn with_bandwidths(kinds: &[DimKind], rows: &[&[f64]], bandwidths: Vec<f64>) -> Self {
        assert_eq!(bandwidths.len(), kinds.len());
        let mut data = Vec::with_capacity(rows.len() * kinds.len());
        for r in rows {
            assert_eq!(r.len(), kinds.len(), "row length must match the dimensions");
            data.extend_from_slice(r);
        }
        Kde {
            kinds: kinds.to_vec(),
            data,
            bandwidths,
        }
    }

    pub fn len(&self) -> usize {
        self.data.len() / self.kinds.len().max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn bandwidths(&self) -> &[f64] {
        &self.bandwidths
    }

    pub fn point(&self, i: usize) -> &[f64] {
        let d = self.kinds.len();
        &self.data[i * d..(i + 1) * d]
    }

    /// The density at `x`: the mean over data points of the product kernel.
    pub fn pdf(&self, x: &[f64]) -> f64 {
        let n = self.len();
        let total: f64 = (0..n)
            .map(|i| {
                let p = self.point(i);
                let mut k = 1.0;
                for (j, kind) in self.kinds.iter().enumerate() {
                    k *= kernel(*kind, x[j], p[j], self.bandwidths[j]);
                }
                k
            })
            .sum();
        total / n as f64
    }

    /// Draws a point near data point `i`: a Gaussian with bandwidth scaled by
    /// `factor`, truncated to [0, 1], for continuous dimensions (as
    /// hpbandster); an exact draw from the (unscaled) kernel for discrete ones.
    pub fn sample_near(&self, i: usize, factor: f64, rng: &mut Rng) -> Vec<f64> {
        let p = self.point(i);
        self.kinds
            .iter()
            .enumerate()
            .map(|(j, kind)| {
                let bw = self.bandwidths[j];
                match *kind {
                    DimKind::Continuous => truncated_normal(p[j], bw * factor, rng),
                    DimKind::Categorical(c) | DimKind::Ordinal(c) => {
                        let u = rng.uniform();
                        let mut acc = 0.0;
                        for v in 0..c {
                            acc += kernel(*kind, v as f64, p[j], bw);
                            if u < acc {
                                return v as f64;
                            }
                        }
                        (c - 1) as f64
                    }
                }
            })
            .collect()
    }
}

/// Aitchison–Aitken's λ is meaningful up to (c-1)/c, where it is uniform.
fn max_aitchison_aitken(choices: usize) -> f64 {
    (choices.saturating_sub(1)) as f64 / choices.max(1) as f64
}

/// One-dimensional kernel value of `x` around centre `c` with bandwidth `h`.
pub fn kernel(kind: DimKind, x: f64, c: f64, h: f64) -> f64 {
    match kind {
        DimKind::Continuous => {
            let z = (x - c) / h;
            (-0.5 * z * z).exp() / (h * (std::f64::consts::TAU).sqrt())
        }
        DimKind::Categorical(choices) => {
            if choices <= 1 {
                1.0
            } else if x == c {
                1.0 - h
            } else {
                h / (choices - 1) as f64
            }
        }
        DimKind::Ordinal(levels) => {
            let wang_ryzin = |x: f64| {
                if x == c {
                    1.0 - h
                } else {
                    0.5 * (1.0 - h) * h.powf((x - c).abs())
                }
            };
            let norm: f64 = (0..levels).map(|v| wang_ryzin(v as f64)).sum();
            wang_ryzin(x) / norm
        }
    }
}

/// A normal draw around `mean` restricted to [0, 1] by rejection; after many
/// rejections (a centre far outside, which encoding never produces) it clamps.
fn truncated_normal(mean: f64, sd: f64, rng: &mut Rng) -> f64 {
    for _ in 0..100 {
        let x = mean + sd * rng.normal();
        if (0.0..=1.0).contains(&x) {
            return x;
        }
    }
    mean.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    #[test]
    fn gaussian_density_matches_the_direct_formula() {
        let kinds = [DimKind::Continuous, DimKind::Continuous];
        let rows: Vec<Vec<f64>> = vec![vec![0.1, 0.7], vec![0.4, 0.2], vec![0.9, 0.5]];
        let refs: Vec<&[f64]> = rows.iter().map(|r| r.as_slice()).collect();
        let kde = Kde::fit(&kinds, &refs, 1e-3);
        // Bandwidth by hand: population sd times 1.06 * 3^(-1/6).
        let sd0 = {
            let m = (0.1 + 0.4 + 0.9) / 3.0;
            (((0.1f64 - m).powi(2) + (0.4f64 - m).powi(2) + (0.9f64 - m).powi(2)) / 3.0).sqrt()
        };
        let h0 = 1.06 * sd0 * 3f64.powf(-1.0 / 6.0);
        assert!((kde.bandwidths()[0] - h0).abs() < 1e-15);
        let h = kde.bandwidths().to_vec();
        let x = [0.3, 0.45];
        let direct: f64 = rows
            .iter()
            .map(|r| {
                (0..2)
                    .map(|j| {
                        (-(x[j] - r[j]).powi(2) / (2.0 * h[j] * h[j])).exp()
                            / ((2.0 * PI).sqrt() * h[j])
                    })
                    .product::<f64>()
            })
            .sum::<f64>()
            / 3.0;
        assert!((kde.pdf(&x) - direct).abs() < 1e-12 * direct);
    }

    #[test]
    fn discrete_kernels_match_their_formulas_and_sum_to_one() {
        let aa = DimKind::Categorical(4);
        assert!((kernel(aa, 2.0, 2.0, 0.3) - 0.7).abs() < 1e-15);
        assert!((kernel(aa, 1.0, 2.0, 0.3) - 0.1).abs() < 1e-15);
        let wr = DimKind::Ordinal(5);
        let (h, c): (f64, f64) = (0.4, 1.0);
        let raw = |x: f64| {
            if x == c {
                1.0 - h
            } else {
                0.5 * (1.0 - h) * h.powf((x - c).abs())
            }
        };
        let norm: f64 = (0..5).map(|v| raw(v as f64)).sum();
        assert!((kernel(wr, 3.0, c, h) - raw(3.0) / norm).abs() < 1e-15);
        for kind in [aa, wr] {
            let total: f64 = (0..4)
                .map(|v| kernel(kind, v as f64, 1.0, 0.25))
                .sum::<f64>()
                + if kind == wr {
                    kernel(wr, 4.0, 1.0, 0.25)
                } else {
                    0.0
                };
            assert!((total - 1.0).abs() < 1e-12, "{kind:?}: {total}");
        }
        // Nearer ordinal values weigh more.
        assert!(kernel(wr, 2.0, 1.0, 0.4) > kernel(wr, 3.0, 1.0, 0.4));
    }

    #[test]
    fn bandwidths_are_clipped_to_valid_ranges() {
        let kinds = [
            DimKind::Continuous,
            DimKind::Categorical(2),
            DimKind::Ordinal(3),
        ];
        let same: Vec<Vec<f64>> = vec![vec![0.5, 1.0, 2.0]; 4];
        let refs: Vec<&[f64]> = same.iter().map(|r| r.as_slice()).collect();
        assert_eq!(Kde::fit(&kinds, &refs, 1e-3).bandwidths(), [1e-3; 3]);
        let spread: Vec<Vec<f64>> = vec![vec![0.0, 0.0, 0.0], vec![1.0, 1.0, 2.0]];
        let refs: Vec<&[f64]> = spread.iter().map(|r| r.as_slice()).collect();
        let bw = Kde::fit(&kinds, &refs, 1e-3).bandwidths().to_vec();
        assert!(bw[1] <= 0.5 && bw[2] <= MAX_ORDINAL_LAMBDA, "{bw:?}");
    }

    #[test]
    fn samples_follow_the_kernel() {
        let kinds = [DimKind::Continuous, DimKind::Categorical(3)];
        let rows: Vec<Vec<f64>> = vec![vec![0.5, 2.0]];
        let refs: Vec<&[f64]> = rows.iter().map(|r| r.as_slice()).collect();
        let kde = Kde::with_bandwidths(&kinds, &refs, vec![0.05, 0.3]);
        let mut rng = Rng::new(9);
        let n = 20_000;
        let (mut kept, mut sum, mut sq) = (0usize, 0.0, 0.0);
        for _ in 0..n {
            let x = kde.sample_near(0, 2.0, &mut rng);
            assert!((0.0..=1.0).contains(&x[0]));
            sum += x[0];
            sq += (x[0] - 0.5).powi(2);
            kept += (x[1] == 2.0) as usize;
        }
        let n = n as f64;
        assert!((sum / n - 0.5).abs() < 0.003);
        assert!(((sq / n).sqrt() - 0.1).abs() < 0.003, "scaled sd");
        assert!((kept as f64 / n - 0.7).abs() < 0.01);
    }
}
