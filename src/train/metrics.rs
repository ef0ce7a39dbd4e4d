//! Regression metrics, accumulated in f64.

/// Errors of a prediction against the truth, plus quantile coverage: the share
/// of samples whose actual value is at most the prediction (what a memory
/// reservation at quantile q should hold for a share q of windows).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Metrics {
    pub n: usize,
    pub mae: f64,
    pub rmse: f64,
    pub r2: f64,
    pub coverage: f64,
}

/// `r2` is 1 − SSE/SST; with a constant truth (SST = 0) it is 1 for a perfect
/// prediction and −∞ otherwise, as scikit-learn reports.
pub fn regression_metrics(pred: &[f32], actual: &[f32]) -> Metrics {
    assert_eq!(
        pred.len(),
        actual.len(),
        "prediction and truth differ in length"
    );
    let n = pred.len();
    if n == 0 {
        return Metrics {
            n,
            mae: f64::NAN,
            rmse: f64::NAN,
            r2: f64::NAN,
            coverage: f64::NAN,
        };
    }
    let nf = n as f64;
    let mean = actual.iter().map(|&a| a as f64).sum::<f64>() / nf;
    let (mut abs, mut sse, mut sst, mut covered) = (0.0, 0.0, 0.0, 0usize);
    for (&p, &a) in pred.iter().zip(actual) {
        let (p, a) = (p as f64, a as f64);
        abs += (p - a).abs();
        sse += (p - a) * (p - a);
        sst += (a - mean) * (a - mean);
        covered += usize::from(a <= p);
    }
    let r2 = if sst > 0.0 {
        1.0 - sse / sst
    } else if sse == 0.0 {
        1.0
    } else {
        f64::NEG_INFINITY
    };
    Metrics {
        n,
        mae: abs / nf,
        rmse: (sse / nf).sqrt(),
        r2,
        coverage: covered as f64 / nf,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_values() {
        let m = regression_metrics(&[1.0, 2.0, 4.0], &[1.0, 3.0, 3.0]);
        assert!((m.mae - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.rmse - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        // mean 7/3, SST = 16/9 + 4/9 + 4/9 = 24/9, SSE = 2
        assert!((m.r2 - (1.0 - 2.0 / (24.0 / 9.0))).abs() < 1e-12);
        assert!((m.coverage - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn constant_truth() {
        assert_eq!(regression_metrics(&[2.0, 2.0], &[2.0, 2.0]).r2, 1.0);
        assert_eq!(
            regression_metrics(&[2.0, 3.0], &[2.0, 2.0]).r2,
            f64::NEG_INFINITY
        );
    }
}
