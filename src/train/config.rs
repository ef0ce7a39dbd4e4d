//! Training hyperparameters and the loss choice, serde-readable from a config file.

use std::fmt;
use std::str::FromStr;

use super::reserve::{CalibrationRule, CalibrationScope, MarginForm};
use crate::autograd::LossKind;
use crate::error::{Error, Result};
use crate::nn::ModelConfig;

/// A loss as users write it: `mse`, `mae`, `huber` / `huber:DELTA`, `quantile:Q`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossSpec(pub LossKind);

impl FromStr for LossSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::Invalid(format!(
                "loss '{s}': {why}; expected mse, mae, huber, huber:DELTA or quantile:Q with 0 < Q < 1"
            ))
        };
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        let number = |a: &str| a.trim().parse::<f64>().map_err(|_| bad("not a number"));
        let kind = match (name.trim().to_ascii_lowercase().as_str(), arg) {
            ("mse", None) => LossKind::Mse,
            ("mae", None) => LossKind::Mae,
            ("huber", None) => LossKind::Huber(1.0),
            ("huber", Some(a)) => {
                let d = number(a)?;
                if !(d > 0.0 && d.is_finite()) {
                    return Err(bad("delta must be positive"));
                }
                LossKind::Huber(d)
            }
            ("quantile", Some(a)) => {
                let q = number(a)?;
                if !(q > 0.0 && q < 1.0) {
                    return Err(bad("Q out of range"));
                }
                LossKind::Quantile(q)
            }
            _ => return Err(bad("unknown loss")),
        };
        Ok(LossSpec(kind))
    }
}

impl fmt::Display for LossSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            LossKind::Mse => write!(f, "mse"),
            LossKind::Mae => write!(f, "mae"),
            LossKind::Huber(d) => write!(f, "huber:{d}"),
            LossKind::Quantile(q) => write!(f, "quantile:{q}"),
        }
    }
}

impl serde::Serialize for LossSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for LossSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl LossSpec {
    /// Mean loss of predictions against targets, on the host in f64 (validation).
    pub fn mean(&self, pred: &[f32], target: &[f32]) -> f64 {
        let per = |p: f32, y: f32| -> f64 {
            let e = y as f64 - p as f64;
            match self.0 {
                LossKind::Mse => e * e,
                LossKind::Mae => e.abs(),
                LossKind::Huber(d) if e.abs() <= d => 0.5 * e * e,
                LossKind::Huber(d) => d * (e.abs() - 0.5 * d),
                LossKind::Quantile(q) => (q * e).max((q - 1.0) * e),
            }
        };
        let n = pred.len().max(1) as f64;
        pred.iter()
            .zip(target)
            .map(|(&p, &y)| per(p, y))
            .sum::<f64>()
            / n
    }
}

/// Optimisation settings. The schedule warms up linearly over
/// `warmup_fraction` of all steps to `lr`, then decays by a cosine to `min_lr`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub min_lr: f64,
    pub warmup_fraction: f64,
    /// 0 = Adam; otherwise AdamW's decoupled decay.
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub adam_eps: f64,
    /// Global gradient-norm clip; 0 = off.
    pub clip_norm: f64,
    /// Epochs without a better validation value of the run's loss before
    /// stopping; 0 = never stop early.
    pub patience: usize,
    pub loss: LossSpec,
    pub seed: u64,
    pub eval_batch_size: usize,
    /// The network learns the residual over the naive prediction (last window's
    /// peak for series, average memory for kaggle rows), which is added back.
    pub residual: bool,
    /// Before the first step, set the linear skip (when the model has one) to
    /// the linear fit of the training targets under the run's loss (ridge for
    /// mse, Huber regression otherwise), so the network starts from it.
    pub fit_skip: bool,
    /// Reservation levels Q: each predictor's margin is calibrated on the
    /// validation split to cover a share Q of windows (`--reserve`).
    pub reserve: Vec<f64>,
    /// Pooled over the validation windows, or per validation instance (`--calibrate`).
    pub calibration: CalibrationScope,
    /// The form of the network's margin (`--margin`). By default the forecast,
    /// the window's spread and the forecast's departure from the last value,
    /// weighted as they explain the network's training errors: on instances
    /// never seen it left the least slack of the forms tried on the real series,
    /// and as little as multiplicative on the built-in trace
    /// (`benches/results/reservations.md`).
    pub model_margin: MarginForm,
}

impl TrainConfig {
    pub fn calibration_rule(&self) -> CalibrationRule {
        CalibrationRule {
            scope: self.calibration,
            model_margin: self.model_margin,
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 60,
            batch_size: 64,
            lr: 2e-3,
            min_lr: 1e-5,
            warmup_fraction: 0.05,
            weight_decay: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            adam_eps: 1e-7,
            clip_norm: 1.0,
            patience: 12,
            loss: LossSpec(LossKind::Huber(1.0)),
            seed: 42,
            eval_batch_size: 512,
            residual: true,
            fit_skip: true,
            reserve: vec![0.95, 0.99],
            calibration: CalibrationScope::PerInstance,
            model_margin: MarginForm::ForecastAndSpread,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Invalid(format!("train config: {what}")));
        if self.epochs == 0 {
            return bad("epochs must be at least 1");
        }
        if self.batch_size == 0 || self.eval_batch_size == 0 {
            return bad("batch sizes must be at least 1");
        }
        if !is_positive(self.lr) || !is_non_negative(self.min_lr) {
            return bad("lr must be positive and min_lr non-negative");
        }
        if !(0.0..1.0).contains(&self.warmup_fraction) {
            return bad("warmup_fraction must be in [0, 1)");
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return bad("beta1 and beta2 must be in [0, 1)");
        }
        for &q in &self.reserve {
            super::reserve::check_level(q)?;
        }
        if !is_positive(self.adam_eps)
            || !is_non_negative(self.weight_decay)
            || !is_non_negative(self.clip_norm)
        {
            return bad("adam_eps must be positive, weight_decay and clip_norm non-negative");
        }
        Ok(())
    }
}

/// False for NaN too, which the comparisons alone would let through when negated.
pub(crate) fn is_positive(x: f64) -> bool {
    x > 0.0 && x.is_finite()
}

pub(crate) fn is_non_negative(x: f64) -> bool {
    x >= 0.0 && x.is_finite()
}

/// What a `--config FILE` holds: either section may be left out (defaults).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    pub model: ModelConfig,
    pub train: TrainConfig,
}

impl RunConfig {
    pub fn from_json_file(path: &std::path::Path) -> Result<Self> {
        super::json::read_json(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_specs_parse_and_print() {
        for s in ["mse", "mae", "huber:0.5", "quantile:0.9"] {
            assert_eq!(s.parse::<LossSpec>().unwrap().to_string(), s);
        }
        assert_eq!("huber".parse::<LossSpec>().unwrap().0, LossKind::Huber(1.0));
        for bad in ["quantile:1.5", "quantile", "huber:-1", "l2", "mse:3"] {
            assert!(bad.parse::<LossSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn host_loss_values() {
        let p = [1.0, 2.0];
        let y = [2.0, 0.0];
        assert!((LossSpec(LossKind::Mse).mean(&p, &y) - 2.5).abs() < 1e-12);
        assert!((LossSpec(LossKind::Mae).mean(&p, &y) - 1.5).abs() < 1e-12);
        // errors +1 and −2: huber(1) = 0.5 and 1.5
        assert!((LossSpec(LossKind::Huber(1.0)).mean(&p, &y) - 1.0).abs() < 1e-12);
        // q = 0.9: 0.9·1 and 0.1·2
        assert!((LossSpec(LossKind::Quantile(0.9)).mean(&p, &y) - 0.55).abs() < 1e-12);
    }

    #[test]
    fn config_file_errors_name_line_and_column() {
        let dir = std::env::temp_dir().join(format!("cf-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.json");
        std::fs::write(
            &path,
            "{\"model\": {\"conv_filters\": 32},\n \"train\": {\"epochz\": 3}}",
        )
        .unwrap();
        let err = RunConfig::from_json_file(&path).unwrap_err().to_string();
        assert!(err.contains("c.json:2:"), "{err}");
        assert!(err.contains("epochz"), "{err}");
        std::fs::write(&path, "{\"model\": {\"conv_filters\": 32}}").unwrap();
        let cfg = RunConfig::from_json_file(&path).unwrap();
        assert_eq!(cfg.model.conv_filters, 32);
        assert_eq!(cfg.train, TrainConfig::default());
    }
}
