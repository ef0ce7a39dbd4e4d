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
    /// `log_pdf`'s layout: continuous and discrete dimensions apart, so its
    /// inner loops are branch-free.
    fast: LogLayout,
}

#[derive(Clone, Debug)]
struct LogLayout {
    /// Indices of the continuous dimensions and 1 / bandwidth for each.
    continuous: Vec<usize>,
    inv_h: Vec<f64>,
    /// Row-major `n × continuous.len()` centres.
    centres: Vec<f64>,
    /// Indices and level counts of the discrete dimensions.
    discrete: Vec<(usize, usize)>,
    /// All discrete dimensions' tables of ln k(x = v | centre = u), concatenated.
    log_k: Vec<f64>,
    /// Row-major `n × discrete.len()`: where each point's table row starts.
    rows: Vec<usize>,
    /// Σ over continuous dimensions of -ln(h √(2π)).
    log_norm: f64,
}

impl LogLayout {
    fn new(kinds: &[DimKind], data: &[f64], bandwidths: &[f64]) -> Self {
        let d = kinds.len();
        let mut layout = LogLayout {
            continuous: Vec::new(),
            inv_h: Vec::new(),
            centres: Vec::new(),
            discrete: Vec::new(),
            log_k: Vec::new(),
            rows: Vec::new(),
            log_norm: 0.0,
        };
        let mut table_starts = Vec::new();
        for (j, (kind, &h)) in kinds.iter().zip(bandwidths).enumerate() {
            match *kind {
                DimKind::Continuous => {
                    layout.continuous.push(j);
                    layout.inv_h.push(1.0 / h);
                    layout.log_norm -= (h * std::f64::consts::TAU.sqrt()).ln();
                }
                DimKind::Categorical(levels) | DimKind::Ordinal(levels) => {
                    layout.discrete.push((j, levels));
                    table_starts.push(layout.log_k.len());
                    layout.log_k.extend(
                        (0..levels * levels).map(|i| {
                            kernel(*kind, (i % levels) as f64, (i / levels) as f64, h).ln()
                        }),
                    );
                }
            }
        }
        for p in data.chunks_exact(d.max(1)) {
            layout
                .centres
                .extend(layout.continuous.iter().map(|&j| p[j]));
            for (&(j, levels), start) in layout.discrete.iter().zip(&table_starts) {
                layout.rows.push(start + level(p[j], levels) * levels);
            }
        }
        layout
    }
}

/// A discrete coordinate as a table index (encodings hold exact indices).
fn level(x: f64, levels: usize) -> usize {
    (x.round().max(0.0) as usize).min(levels - 1)
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
        let fast = LogLayout::new(kinds, &data, &bandwidths);
        Kde {
            kinds: kinds.to_vec(),
            data,
            bandwidths,
            fast,
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
        self.log_pdf(x).exp()
    }

    /// ln of the density, computed in log space (a product of many narrow
    /// kernels under- or overflows) with one `exp` per data point.
    pub fn log_pdf(&self, x: &[f64]) -> f64 {
        let f = &self.fast;
        let xc: Vec<f64> = f.continuous.iter().map(|&j| x[j]).collect();
        let xd: Vec<usize> = f
            .discrete
            .iter()
            .map(|&(j, levels)| level(x[j], levels))
            .collect();
        let (nc, nd) = (xc.len(), xd.len());
        // Online log-sum-exp over data points.
        let (mut max, mut sum) = (f64::NEG_INFINITY, 0.0);
        for i in 0..self.len() {
            let centres = &f.centres[i * nc..(i + 1) * nc];
            let squares: f64 = xc
                .iter()
                .zip(centres)
                .zip(&f.inv_h)
                .map(|((x, c), inv_h)| ((x - c) * inv_h).powi(2))
                .sum();
            let rows = &f.rows[i * nd..(i + 1) * nd];
            let discrete: f64 = rows.iter().zip(&xd).map(|(row, v)| f.log_k[row + v]).sum();
            let log_k = discrete - 0.5 * squares;
            if log_k > max {
                sum = sum * (max - log_k).exp() + 1.0;
                max = log_k;
            } else {
                sum += (log_k - max).exp();
            }
        }
        max + sum.ln() + f.log_norm - (self.len() as f64).ln()
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
    fn mixed_product_density_matches_the_direct_formula() {
        let kinds = [
            DimKind::Continuous,
            DimKind::Categorical(3),
            DimKind::Ordinal(4),
        ];
        let rows: Vec<Vec<f64>> = vec![
            vec![0.2, 0.0, 3.0],
            vec![0.7, 2.0, 1.0],
            vec![0.5, 2.0, 0.0],
            vec![0.9, 1.0, 2.0],
        ];
        let refs: Vec<&[f64]> = rows.iter().map(|r| r.as_slice()).collect();
        let h = vec![0.15, 0.2, 0.35];
        let kde = Kde::with_bandwidths(&kinds, &refs, h.clone());
        for x in [[0.3, 2.0, 1.0], [0.95, 0.0, 3.0], [0.0, 1.0, 0.0]] {
            let direct: f64 = rows
                .iter()
                .map(|r| {
                    let gauss = (-(x[0] - r[0]).powi(2) / (2.0 * h[0] * h[0])).exp()
                        / ((2.0 * PI).sqrt() * h[0]);
                    let aa = if x[1] == r[1] { 1.0 - h[1] } else { h[1] / 2.0 };
                    let wr = |v: f64| {
                        if v == r[2] {
                            1.0 - h[2]
                        } else {
                            0.5 * (1.0 - h[2]) * h[2].powf((v - r[2]).abs())
                        }
                    };
                    let wr_norm: f64 = (0..4).map(|v| wr(v as f64)).sum();
                    gauss * aa * wr(x[2]) / wr_norm
                })
                .sum::<f64>()
                / 4.0;
            assert!((kde.pdf(&x) - direct).abs() < 1e-12 * direct, "{x:?}");
            assert!((kde.log_pdf(&x) - direct.ln()).abs() < 1e-12);
        }
    }

    #[test]
    fn log_density_stays_finite_where_the_density_underflows() {
        let kinds = [DimKind::Continuous; 40];
        let rows: Vec<Vec<f64>> = vec![vec![0.0; 40], vec![0.01; 40]];
        let refs: Vec<&[f64]> = rows.iter().map(|r| r.as_slice()).collect();
        let kde = Kde::with_bandwidths(&kinds, &refs, vec![1e-3; 40]);
        let far = [1.0; 40];
        assert_eq!(kde.pdf(&far), 0.0);
        let log = kde.log_pdf(&far);
        // Nearest centre 0.01: 40 dims of z = 990 plus the normalisation.
        let expected =
            -0.5 * 40.0 * 990f64.powi(2) - 40.0 * (1e-3 * (2.0 * PI).sqrt()).ln() - 2f64.ln();
        assert!(
            (log - expected).abs() < 1e-6 * expected.abs(),
            "{log} vs {expected}"
        );
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
