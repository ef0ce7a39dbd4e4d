//! The predictors a reservation is compared against, and the calibration of
//! every one of them on the run's own validation split. Fitted once at
//! training time and saved as `calibration.json` in the run directory, so
//! that `eval` and `predict` on new instances fit nothing on them.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error_mix::ErrorMix;
use super::prepared::{PreparedData, SplitData};
use super::reserve::{
    check_level, reserve_metrics, CalibrationRule, CalibrationScope, Margin, MarginForm,
    ReserveMetrics, Spread, WindowStats,
};
use super::ridge::Ridge;
use crate::error::Result;

/// A forecaster whose value, plus a calibrated margin, is a reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Predictor {
    /// The trained network (margin form chosen on validation).
    Convformer,
    /// Last window's peak × (1 + m).
    LastValue,
    /// The history window's maximum × (1 + m): Autopilot's moving-window max.
    WindowMax,
    /// The window's 90th percentile + m: the per-VM percentile predictor of
    /// the Google overcommit simulator, and the Kubernetes VPA's.
    WindowP90,
    /// Mean + n·std of the window, n calibrated: that simulator's main predictor.
    NSigma,
    /// Ridge on the same inputs as the network + the conformal residual quantile.
    Ridge,
    /// The trace's own `memory_limit`, uncalibrated: what Borg reserves without a forecast.
    BorgLimit,
}

impl Predictor {
    pub const ALL: [Predictor; 7] = [
        Predictor::Convformer,
        Predictor::LastValue,
        Predictor::WindowMax,
        Predictor::WindowP90,
        Predictor::NSigma,
        Predictor::Ridge,
        Predictor::BorgLimit,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Predictor::Convformer => "convformer",
            Predictor::LastValue => "last value ×(1+m)",
            Predictor::WindowMax => "window max ×(1+m) (Autopilot)",
            Predictor::WindowP90 => "window p90 + m (VPA)",
            Predictor::NSigma => "N-sigma mean + n·std",
            Predictor::Ridge => "ridge + conformal",
            Predictor::BorgLimit => "Borg memory_limit",
        }
    }

    /// The form of the margin; none for the uncalibrated limit. The network's is
    /// the run's choice (`--margin`), not picked by validation slack, which
    /// follows noise when validation holds a few instances
    /// (`benches/results/reservations.md`).
    fn form(self, model_margin: MarginForm) -> Option<MarginForm> {
        match self {
            Predictor::Convformer => Some(model_margin),
            Predictor::LastValue | Predictor::WindowMax => Some(MarginForm::Multiplicative),
            Predictor::WindowP90 | Predictor::Ridge => Some(MarginForm::Additive),
            Predictor::NSigma => Some(MarginForm::WindowSpread),
            Predictor::BorgLimit => None,
        }
    }

    /// Needs the history window (series data).
    fn needs_window(self) -> bool {
        !matches!(
            self,
            Predictor::Convformer | Predictor::LastValue | Predictor::Ridge
        )
    }
}

/// The point forecasts of one split in trace units, and its windows.
pub struct SplitForecasts<'a> {
    pub split: &'a SplitData,
    pub model: Vec<f32>,
    pub ridge: Vec<f32>,
    /// The network's expected absolute error per window (see [`SpreadModel`]).
    pub learned_spread: Vec<f32>,
    /// The same from the forecast, the window's spread and the forecast's
    /// departure from the last value.
    pub error_mix: ErrorMix,
}

impl SplitForecasts<'_> {
    /// The base value of `p` for every window (NaN where it has none).
    pub fn base(&self, p: Predictor) -> Vec<f32> {
        let w = &self.split.windows;
        let from_window = |f: fn(&WindowStats) -> f32| -> Vec<f32> {
            w.iter().map(|s| s.map_or(f32::NAN, |s| f(&s))).collect()
        };
        match p {
            Predictor::Convformer => self.model.clone(),
            Predictor::LastValue => self.split.naive.clone(),
            Predictor::Ridge => self.ridge.clone(),
            Predictor::WindowMax => from_window(|s| s.max),
            Predictor::WindowP90 => from_window(|s| s.p90),
            Predictor::NSigma => from_window(|s| s.mean),
            Predictor::BorgLimit => from_window(|s| s.limit),
        }
    }

    fn spreads(&self) -> Vec<Spread> {
        (0..self.split.len())
            .map(|i| {
                let window = self.split.window_std(i);
                Spread {
                    window,
                    learned: self.learned_spread.get(i).copied().unwrap_or(f32::NAN),
                    forecast_and_window: self.error_mix.expected(
                        self.model[i],
                        window,
                        self.split.naive[i],
                    ),
                }
            })
            .collect()
    }

    /// Reservations of `p` under `margin` (the base itself when uncalibrated).
    pub fn reserved(&self, p: Predictor, margin: Option<&Margin>) -> Vec<f32> {
        let base = self.base(p);
        let spreads = self.spreads();
        match margin {
            None => base,
            Some(m) => (0..base.len())
                .map(|i| match self.split.groups.get(i) {
                    Some(&g) => m.reserve_for(g, base[i], &spreads[i]),
                    None => m.reserve(base[i], &spreads[i]),
                })
                .collect(),
        }
    }

    fn has_windows(&self) -> bool {
        !self.split.windows.is_empty()
    }
}

/// One predictor's calibrated margin at one level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub predictor: Predictor,
    pub q: f64,
    /// None for the uncalibrated limit.
    pub margin: Option<Margin>,
}

/// The network's expected absolute error as a function of its inputs: ridge
/// on the absolute training residuals, floored at a tenth of their mean so a
/// window never gets a vanishing margin; and as three terms, its forecast,
/// the window's spread and its departure from the last value.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SpreadModel {
    pub ridge: Ridge,
    pub floor: f64,
    /// Runs before the fit: a plain multiplicative scale.
    #[serde(default)]
    pub mix: ErrorMix,
}

impl SpreadModel {
    /// Fitted on the network's training residuals `train_pred` (trace
    /// units), λ chosen on the validation residuals.
    pub fn fit(data: &PreparedData, train_pred: &[f32], val_pred: &[f32]) -> Result<Self> {
        let abs_err = |pred: &[f32], split: &SplitData| -> Vec<f32> {
            pred.iter()
                .zip(&split.actual)
                .map(|(p, a)| (a - p).abs())
                .collect()
        };
        let train = abs_err(train_pred, &data.train);
        let mean = train.iter().map(|&e| e as f64).sum::<f64>() / train.len().max(1) as f64;
        let ridge = Ridge::fit_select(
            &data.train.inputs,
            &train,
            &data.val.inputs,
            &abs_err(val_pred, &data.val),
            data.seq_len * data.channels,
        )?;
        let window_std: Vec<f32> = (0..data.train.len())
            .map(|i| data.train.window_std(i))
            .collect();
        Ok(SpreadModel {
            ridge,
            floor: 0.1 * mean,
            mix: ErrorMix::fit(
                train_pred,
                &data.train.actual,
                &window_std,
                &data.train.naive,
            ),
        })
    }

    /// The expected absolute error of each sample of `inputs` (transformed).
    pub fn predict(&self, inputs: &[f32], d: usize) -> Result<Vec<f32>> {
        Ok(self
            .ridge
            .predict(inputs, d)?
            .into_iter()
            .map(|s| (s as f64).max(self.floor) as f32)
            .collect())
    }
}

/// What `calibration.json` holds: the ridge baseline and the spread model
/// fitted on the run's training split, and every predictor's margins from
/// its validation split.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Baselines {
    pub ridge: Ridge,
    pub spread: SpreadModel,
    pub levels: Vec<f64>,
    pub calibrations: Vec<Calibration>,
    /// Windows of the validation split the margins were calibrated on.
    pub calibrated_on: usize,
    /// Over which of those windows, and the form of the network's margin.
    #[serde(flatten)]
    pub rule: CalibrationRule,
}

pub const FILE_NAME: &str = "calibration.json";

impl Baselines {
    /// Ridge on the network's inputs, fitted on `data.train` (λ on `data.val`).
    pub fn fit_ridge(data: &PreparedData) -> Result<Ridge> {
        Ridge::fit_select(
            &data.train.inputs,
            &data.train.targets,
            &data.val.inputs,
            &data.val.targets,
            data.seq_len * data.channels,
        )
    }

    /// Every predictor calibrated at every level on the validation forecasts `val`.
    pub fn calibrate(
        ridge: Ridge,
        spread: SpreadModel,
        levels: &[f64],
        val: &SplitForecasts,
        rule: CalibrationRule,
    ) -> Result<Self> {
        let mut calibrations = Vec::new();
        for (i, &q) in levels.iter().enumerate() {
            check_level(q)?;
            // Nothing to calibrate on: no reservations rather than no run.
            if val.split.is_empty() {
                continue;
            }
            for p in Predictor::ALL {
                let uncalibrated_again = p == Predictor::BorgLimit && i > 0;
                if (p.needs_window() && !val.has_windows()) || uncalibrated_again {
                    continue;
                }
                calibrations.push(Calibration {
                    predictor: p,
                    q,
                    margin: calibrated_margin(p, q, val, rule),
                });
            }
        }
        Ok(Baselines {
            ridge,
            spread,
            levels: levels.to_vec(),
            calibrations,
            calibrated_on: val.split.len(),
            rule,
        })
    }

    /// The network's reservation rule in words, with its fitted terms (those
    /// fitted to 0 left out) and the scope of `k`.
    pub fn describe_network_margin(&self) -> String {
        let scale = match self.rule.model_margin {
            MarginForm::Additive => "forecast + k".to_string(),
            MarginForm::Multiplicative => "forecast × (1 + k)".to_string(),
            MarginForm::WindowSpread => "forecast + k × window std".to_string(),
            MarginForm::LearnedSpread => {
                "forecast + k × (its expected error, a ridge on its inputs)".to_string()
            }
            MarginForm::ForecastAndSpread => {
                let m = &self.spread.mix;
                let terms: Vec<String> = [
                    (m.per_forecast, "forecast"),
                    (m.per_window_std, "window std"),
                    (m.per_departure, "|forecast − last value|"),
                ]
                .iter()
                .filter(|(w, _)| *w != 0.0)
                .map(|(w, name)| format!("{w:.2e}·{name}"))
                .collect();
                format!("forecast + k × ({})", terms.join(" + "))
            }
        };
        let scope = match self.rule.scope {
            CalibrationScope::Global => "k pooled over validation",
            CalibrationScope::PerInstance => "k per instance (unseen instances: the largest)",
        };
        format!("{scale}; {scope}")
    }

    pub fn margin(&self, p: Predictor, q: f64) -> Option<&Calibration> {
        self.calibrations
            .iter()
            .find(|c| c.predictor == p && c.q == q)
    }

    pub fn save(&self, run_dir: &Path) -> Result<()> {
        super::json::write_json(&run_dir.join(FILE_NAME), self)
    }

    pub fn load(run_dir: &Path) -> Result<Self> {
        super::json::read_json(&run_dir.join(FILE_NAME))
    }

    /// Every calibrated predictor at every level on one split.
    pub fn report(&self, split: &SplitForecasts) -> Vec<ReservationRow> {
        self.calibrations
            .iter()
            .map(|c| ReservationRow {
                predictor: c.predictor,
                label: c.predictor.label().to_string(),
                q: c.q,
                margin: c.margin.clone(),
                metrics: reserve_metrics(
                    &split.reserved(c.predictor, c.margin.as_ref()),
                    &split.split.actual,
                ),
            })
            .collect()
    }
}

/// The margin of `p` at `q` calibrated on validation by `rule`; None for the
/// uncalibrated limit, or where `p` has no finite score (no window statistics).
pub fn calibrated_margin(
    p: Predictor,
    q: f64,
    val: &SplitForecasts,
    rule: CalibrationRule,
) -> Option<Margin> {
    let form = p.form(rule.model_margin)?;
    let split = val.split;
    Margin::calibrate_in(
        rule.scope,
        form,
        q,
        &val.base(p),
        &split.actual,
        &val.spreads(),
        &split.groups,
    )
    .ok()
}

/// One predictor at one level on one split.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReservationRow {
    pub predictor: Predictor,
    pub label: String,
    pub q: f64,
    pub margin: Option<Margin>,
    pub metrics: ReserveMetrics,
}

#[cfg(test)]
mod tests {
    use super::*;

    const GLOBAL: CalibrationRule = CalibrationRule {
        scope: CalibrationScope::Global,
        model_margin: MarginForm::LearnedSpread,
    };

    #[test]
    fn no_validation_windows_means_no_margins_not_an_error() {
        let split = SplitData::default();
        let val = SplitForecasts {
            split: &split,
            model: Vec::new(),
            ridge: Vec::new(),
            learned_spread: Vec::new(),
            error_mix: ErrorMix::default(),
        };
        let ridge = Ridge {
            weights: vec![0.0],
            intercept: 0.0,
            lambda: 1.0,
        };
        let spread = SpreadModel {
            ridge: ridge.clone(),
            floor: 0.0,
            mix: ErrorMix::default(),
        };
        let b = Baselines::calibrate(ridge, spread, &[0.95], &val, GLOBAL).unwrap();
        assert!(b.calibrations.is_empty());
        assert!(b.margin(Predictor::Convformer, 0.95).is_none());
    }

    /// Baselines with a fixed ridge, the rule and spread mix given, and no margins.
    fn no_calibrations(rule: CalibrationRule, mix: ErrorMix) -> Baselines {
        let ridge = Ridge {
            weights: vec![0.5],
            intercept: 0.1,
            lambda: 1.0,
        };
        Baselines {
            spread: SpreadModel {
                ridge: ridge.clone(),
                floor: 0.0,
                mix,
            },
            ridge,
            levels: vec![0.95],
            calibrations: Vec::new(),
            calibrated_on: 3,
            rule,
        }
    }

    #[test]
    fn the_rule_is_stored_flat_and_old_files_read_as_global_learned_spread() {
        let b = no_calibrations(
            CalibrationRule {
                scope: CalibrationScope::PerInstance,
                model_margin: MarginForm::Multiplicative,
            },
            ErrorMix::default(),
        );
        let mut json = serde_json::to_value(&b).unwrap();
        assert_eq!(json["scope"], "per-instance");
        assert_eq!(json["model_margin"], "multiplicative");
        let back: Baselines = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back.rule, b.rule);
        let fields = json.as_object_mut().unwrap();
        fields.remove("scope");
        fields.remove("model_margin");
        let old: Baselines = serde_json::from_value(json).unwrap();
        assert_eq!(old.rule, GLOBAL);
    }

    #[test]
    fn the_network_margin_is_described_with_its_fitted_terms() {
        let mix = ErrorMix {
            per_forecast: 1.4e-3,
            per_window_std: 0.0,
            per_departure: 8.24e-2,
        };
        let rule = CalibrationRule {
            scope: CalibrationScope::PerInstance,
            model_margin: MarginForm::ForecastAndSpread,
        };
        let mut b = no_calibrations(rule, mix);
        assert_eq!(
            b.describe_network_margin(),
            "forecast + k × (1.40e-3·forecast + 8.24e-2·|forecast − last value|); \
             k per instance (unseen instances: the largest)"
        );
        b.rule = CalibrationRule {
            model_margin: MarginForm::Multiplicative,
            ..GLOBAL
        };
        assert_eq!(
            b.describe_network_margin(),
            "forecast × (1 + k); k pooled over validation"
        );
    }

    #[test]
    fn each_predictor_is_calibrated_on_its_own_base() {
        // Validation: last value 1.0 everywhere, actual 1.1; the network says 1.05.
        let split = SplitData {
            actual: vec![1.1; 40],
            naive: vec![1.0; 40],
            targets: vec![0.0; 40],
            windows: vec![WindowStats::of(&[0.9, 1.0], 2.0); 40],
            ..SplitData::default()
        };
        let val = SplitForecasts {
            split: &split,
            model: vec![1.05; 40],
            ridge: vec![1.2; 40],
            learned_spread: vec![0.01; 40],
            error_mix: ErrorMix::default(),
        };
        let reserved = |p: Predictor| {
            let m = calibrated_margin(p, 0.9, &val, GLOBAL);
            val.reserved(p, m.as_ref())[0]
        };
        // Every calibrated reservation lands on the actual peak (all scores equal).
        for p in Predictor::ALL
            .into_iter()
            .filter(|&p| p != Predictor::BorgLimit)
        {
            assert!((reserved(p) - 1.1).abs() < 1e-5, "{p:?}: {}", reserved(p));
        }
        // The limit is not calibrated: it reserves the trace's own limit.
        assert_eq!(reserved(Predictor::BorgLimit), 2.0);
    }
}
