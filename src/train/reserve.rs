//! Memory reservations: a forecaster's value plus a margin calibrated on the
//! validation split (split-conformal), and the metrics a migration planner
//! reads: coverage, violations, slack and shortfall.
//!
//! Every predictor, the network and each operator heuristic alike, is a *base*
//! value per window and a *scale* per window; the reservation is
//! `base + k · scale`, with `k` the conformal quantile of the validation
//! scores `(actual − base) / scale`. The scale picks the margin's form:
//! 1 (additive, "+ m"), the base itself (multiplicative, "× (1 + m)"), the
//! spread of the history window (N-sigma), or the network's expected error
//! learned from its training residuals (normalised conformal, Lei et al.
//! 2018): a margin that grows where the workload is hard to forecast, either
//! from every input (a ridge) or from three terms: the forecast, the window's
//! spread and the forecast's departure from the last value
//! ([`crate::train::error_mix`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a margin scales with the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum MarginForm {
    /// reserved = base + k
    Additive,
    /// reserved = base · (1 + k)
    Multiplicative,
    /// reserved = base + k · (standard deviation of the window's peaks)
    WindowSpread,
    /// reserved = base + k · (the forecaster's expected absolute error here)
    LearnedSpread,
    /// reserved = base + k · (a · base + b · window std + c · |base − last
    /// value|), a, b and c fitted to the network's absolute training errors: a
    /// multiplicative margin that narrows on quiet windows where the network keeps
    /// to the last value.
    ForecastAndSpread,
}

/// The per-window spreads a margin may scale with (NaN where unknown).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    /// Standard deviation of the history window's peaks.
    pub window: f32,
    /// The expected absolute error of the network on this window.
    pub learned: f32,
    /// The same from the forecast, the window's std and the forecast's departure
    /// from the last value alone.
    pub forecast_and_window: f32,
}

impl Spread {
    pub const UNKNOWN: Spread = Spread {
        window: f32::NAN,
        learned: f32::NAN,
        forecast_and_window: f32::NAN,
    };
}

/// The history window of one sample, in trace units (series data only).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowStats {
    pub last: f32,
    pub max: f32,
    pub mean: f32,
    pub std: f32,
    /// 90th percentile of the window's peaks (linear interpolation).
    pub p90: f32,
    /// The trace's own `memory_limit` at the last step (NaN when absent).
    pub limit: f32,
}

impl WindowStats {
    /// A window with no usable step: every predictor built on it gives NaN.
    pub const MISSING: WindowStats = WindowStats {
        last: f32::NAN,
        max: f32::NAN,
        mean: f32::NAN,
        std: f32::NAN,
        p90: f32::NAN,
        limit: f32::NAN,
    };

    /// Statistics of a window's per-step peaks (NaN steps left out); None
    /// when every step is missing.
    pub fn of(peaks: &[f32], limit: f32) -> Option<Self> {
        let mut v: Vec<f32> = peaks.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        let last = *v.last().expect("not empty");
        v.sort_by(f32::total_cmp);
        let pos = 0.9 * (v.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        let p90 = v[lo] as f64 + (pos - lo as f64) * (v[hi] as f64 - v[lo] as f64);
        Some(WindowStats {
            last,
            max: *v.last().expect("not empty"),
            mean: mean as f32,
            std: var.sqrt() as f32,
            p90: p90 as f32,
            limit,
        })
    }
}

/// The scale of a margin for one window (NaN where its spread is unknown).
/// Scales are floored so that a flat window (std 0) still gets a margin:
/// 1e-6 is far below any memory step of the trace (its values are
/// normalised to the largest machine).
fn scale(form: MarginForm, base: f32, spread: &Spread) -> f64 {
    let s = match form {
        MarginForm::Additive => return 1.0,
        MarginForm::Multiplicative => (base as f64).abs(),
        MarginForm::WindowSpread => spread.window as f64,
        MarginForm::LearnedSpread => spread.learned as f64,
        MarginForm::ForecastAndSpread => spread.forecast_and_window as f64,
    };
    if s.is_nan() {
        s
    } else {
        s.max(SCALE_FLOOR)
    }
}

const SCALE_FLOOR: f64 = 1e-6;

/// Which validation windows a margin is calibrated to cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum CalibrationScope {
    /// A share Q of all validation windows, pooled (calibration files written before
    /// the choice existed).
    #[default]
    Global,
    /// A share Q of each validation instance's windows. An instance seen in
    /// validation gets its own margin, never below the pooled one; any other
    /// instance gets the largest of them, so that it holds for the hardest instance
    /// seen. Instances with too few windows for a quantile of their own are pooled.
    PerInstance,
}

impl std::fmt::Display for CalibrationScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CalibrationScope::Global => "global",
            CalibrationScope::PerInstance => "per-instance",
        })
    }
}

/// How a run calibrates its margins: over which validation windows, and the
/// form of the network's margin (each heuristic's form is its own, fixed).
/// The defaults are what calibration files written before either choice used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalibrationRule {
    #[serde(default)]
    pub scope: CalibrationScope,
    #[serde(default = "learned_spread")]
    pub model_margin: MarginForm,
}

fn learned_spread() -> MarginForm {
    MarginForm::LearnedSpread
}

/// A calibrated margin: reserved = base + k · scale(form), with `k` of the
/// window's instance where validation gave it one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Margin {
    pub form: MarginForm,
    /// The margin of an instance validation did not see (of every instance
    /// when calibrated globally).
    pub k: f64,
    /// Each validation instance's own k (by its group), per-instance scope only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_instance: BTreeMap<u64, f64>,
}

impl Margin {
    /// The reservation of a window of an instance validation did not see.
    pub fn reserve(&self, base: f32, spread: &Spread) -> f32 {
        self.reserve_with(self.k, base, spread)
    }

    /// The reservation of a window of instance `group`.
    pub fn reserve_for(&self, group: u64, base: f32, spread: &Spread) -> f32 {
        let k = self.per_instance.get(&group).copied().unwrap_or(self.k);
        self.reserve_with(k, base, spread)
    }

    fn reserve_with(&self, k: f64, base: f32, spread: &Spread) -> f32 {
        (base as f64 + k * scale(self.form, base, spread)) as f32
    }

    /// Split-conformal calibration at level `q`: `k` is the ⌈(n+1)·q⌉-th
    /// smallest score, so on exchangeable new windows P(actual ≤ reserved) ≥ q.
    /// Windows without a finite score (base, actual and scale) are left out.
    pub fn calibrate(
        form: MarginForm,
        q: f64,
        base: &[f32],
        actual: &[f32],
        spreads: &[Spread],
    ) -> Result<Self> {
        check_level(q)?;
        let mut scores: Vec<f64> = (0..base.len())
            .map(|i| (actual[i] as f64 - base[i] as f64) / scale(form, base[i], &spreads[i]))
            .filter(|s| s.is_finite())
            .collect();
        if scores.is_empty() {
            return Err(Error::Invalid(
                "reservation: no validation windows to calibrate on".into(),
            ));
        }
        scores.sort_by(f64::total_cmp);
        let n = scores.len();
        let rank = ((n + 1) as f64 * q).ceil() as usize;
        Ok(Margin {
            form,
            k: scores[rank.clamp(1, n) - 1],
            per_instance: BTreeMap::new(),
        })
    }

    /// [`Margin::calibrate`] over the windows `scope` asks for; `groups` names
    /// each window's instance.
    pub fn calibrate_in(
        scope: CalibrationScope,
        form: MarginForm,
        q: f64,
        base: &[f32],
        actual: &[f32],
        spreads: &[Spread],
        groups: &[u64],
    ) -> Result<Self> {
        let global = Margin::calibrate(form, q, base, actual, spreads)?;
        if scope == CalibrationScope::Global {
            return Ok(global);
        }
        // ⌈(n+1)·q⌉ ≤ n needs n ≥ q/(1−q) windows: fewer cannot hold a quantile.
        let enough = (q / (1.0 - q)).ceil() as usize;
        let mut by_group: BTreeMap<u64, Vec<usize>> = Default::default();
        for (i, &g) in groups.iter().enumerate() {
            by_group.entry(g).or_default().push(i);
        }
        // (instance, its windows); the pooled small instances have no instance.
        let mut large: Vec<(Option<u64>, Vec<usize>)> = Vec::new();
        let mut pooled: Vec<usize> = Vec::new();
        for (g, idx) in by_group {
            if idx.len() >= enough {
                large.push((Some(g), idx));
            } else {
                pooled.extend(idx);
            }
        }
        if pooled.len() >= enough {
            large.push((None, pooled));
        }
        let (mut k, mut per_instance) = (global.k, BTreeMap::new());
        for (g, idx) in large {
            let pick = |v: &[f32]| -> Vec<f32> { idx.iter().map(|&i| v[i]).collect() };
            let s: Vec<Spread> = idx.iter().map(|&i| spreads[i]).collect();
            // A group with no finite score (no window of its spread) has no say.
            if let Ok(m) = Margin::calibrate(form, q, &pick(base), &pick(actual), &s) {
                k = k.max(m.k);
                if let Some(g) = g {
                    per_instance.insert(g, m.k.max(global.k));
                }
            }
        }
        Ok(Margin {
            form,
            k,
            per_instance,
        })
    }
}

/// Q must lie strictly between 0 and 1.
pub fn check_level(q: f64) -> Result<()> {
    if q > 0.0 && q < 1.0 {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "--reserve {q}: the level must be strictly between 0 and 1 (e.g. 0.95 or 0.99)"
        )))
    }
}

/// The column name of a level in `predict`'s CSV: 0.95 → `reserved_q95`,
/// 0.99 → `reserved_q99`, 0.999 → `reserved_q999`, 0.9 → `reserved_q90`.
pub fn column_name(q: f64) -> String {
    let mut digits = format!("{q:.6}")
        .trim_start_matches("0.")
        .trim_end_matches('0')
        .to_string();
    if digits.len() < 2 {
        digits.push('0');
    }
    format!("reserved_q{digits}")
}

/// How a set of reservations served the actual peaks.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReserveMetrics {
    pub n: usize,
    /// Share of windows with actual ≤ reserved.
    pub coverage: f64,
    pub violation_rate: f64,
    /// Mean of (reserved − actual) where positive, over all windows (trace units).
    pub mean_slack: f64,
    /// `mean_slack` as a percentage of the mean actual peak.
    pub slack_pct: f64,
    /// Mean of (actual − reserved) where positive, over all windows.
    pub mean_shortfall: f64,
    pub total_reserved: f64,
}

/// Metrics over the windows whose reservation and actual are both finite.
pub fn reserve_metrics(reserved: &[f32], actual: &[f32]) -> ReserveMetrics {
    let mut n = 0usize;
    let (mut covered, mut slack, mut short, mut total, mut peak) = (0usize, 0.0, 0.0, 0.0, 0.0);
    for (&r, &a) in reserved.iter().zip(actual) {
        if !(r.is_finite() && a.is_finite()) {
            continue;
        }
        let (r, a) = (r as f64, a as f64);
        n += 1;
        covered += (a <= r) as usize;
        slack += (r - a).max(0.0);
        short += (a - r).max(0.0);
        total += r;
        peak += a;
    }
    let per = |x: f64| if n == 0 { f64::NAN } else { x / n as f64 };
    let coverage = per(covered as f64);
    let mean_peak = per(peak);
    ReserveMetrics {
        n,
        coverage,
        violation_rate: 1.0 - coverage,
        mean_slack: per(slack),
        slack_pct: 100.0 * per(slack) / mean_peak,
        mean_shortfall: per(short),
        total_reserved: total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_match_a_hand_computed_case() {
        // actual 1, 2, 3, 4; reserved 1.5, 1.0, 3.0, 5.0:
        // covered 1, 3, 4 → 0.75; slack 0.5 + 0 + 0 + 1 = 1.5 → 0.375;
        // shortfall 1 → 0.25; total 10.5; mean peak 2.5 → slack 15%.
        let m = reserve_metrics(&[1.5, 1.0, 3.0, 5.0], &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m.n, 4);
        assert!((m.coverage - 0.75).abs() < 1e-12);
        assert!((m.violation_rate - 0.25).abs() < 1e-12);
        assert!((m.mean_slack - 0.375).abs() < 1e-12);
        assert!((m.mean_shortfall - 0.25).abs() < 1e-12);
        assert!((m.total_reserved - 10.5).abs() < 1e-12);
        assert!((m.slack_pct - 15.0).abs() < 1e-9);
    }

    #[test]
    fn conformal_rank_and_forms() {
        // Scores 1..=9 (additive): q 0.8 → rank ceil(10·0.8) = 8 → k = 8.
        let base = [0.0f32; 9];
        let actual: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let none = [Spread::UNKNOWN; 9];
        let m = Margin::calibrate(MarginForm::Additive, 0.8, &base, &actual, &none).unwrap();
        assert_eq!(m.k, 8.0);
        // Past the last rank the largest score is taken.
        let m = Margin::calibrate(MarginForm::Additive, 0.99, &base, &actual, &none).unwrap();
        assert_eq!(m.k, 9.0);
        // Multiplicative: base 2, actual 3 → score 0.5; reserve(4) = 6.
        let m =
            Margin::calibrate(MarginForm::Multiplicative, 0.5, &[2.0], &[3.0], &none[..1]).unwrap();
        assert!((m.reserve(4.0, &Spread::UNKNOWN) - 6.0).abs() < 1e-6);
        let w = WindowStats::of(&[1.0, 3.0], f32::NAN).unwrap();
        assert_eq!((w.mean, w.std, w.max, w.last), (2.0, 1.0, 3.0, 3.0));
        let spread = Spread {
            window: w.std,
            learned: 0.5,
            forecast_and_window: 0.25,
        };
        let by_window = Margin {
            form: MarginForm::WindowSpread,
            k: 2.0,
            per_instance: BTreeMap::new(),
        };
        assert_eq!(by_window.reserve(1.0, &spread), 3.0);
        let learned = Margin {
            form: MarginForm::LearnedSpread,
            k: 2.0,
            per_instance: BTreeMap::new(),
        };
        assert_eq!(learned.reserve(1.0, &spread), 2.0);
        let two_terms = Margin {
            form: MarginForm::ForecastAndSpread,
            k: 2.0,
            per_instance: BTreeMap::new(),
        };
        assert_eq!(two_terms.reserve(1.0, &spread), 1.5);
        // An unknown spread gives no reservation rather than a wrong one.
        assert!(learned.reserve(1.0, &Spread::UNKNOWN).is_nan());
    }

    #[test]
    fn percentile_interpolates() {
        let peaks: Vec<f32> = (0..11).map(|v| v as f32).collect();
        assert!((WindowStats::of(&peaks, 0.0).unwrap().p90 - 9.0).abs() < 1e-6);
        let w = WindowStats::of(&[0.0, 10.0], 0.0).unwrap();
        assert!((w.p90 - 9.0).abs() < 1e-6);
        assert!(WindowStats::of(&[f32::NAN], 0.0).is_none());
    }

    #[test]
    fn levels_and_column_names() {
        for bad in [0.0, 1.0, -0.5, 1.5, f64::NAN] {
            let e = check_level(bad).unwrap_err().to_string();
            assert!(e.contains("strictly between 0 and 1"), "{e}");
        }
        assert_eq!(column_name(0.95), "reserved_q95");
        assert_eq!(column_name(0.99), "reserved_q99");
        assert_eq!(column_name(0.999), "reserved_q999");
        assert_eq!(column_name(0.9), "reserved_q90");
        assert_eq!(column_name(0.5), "reserved_q50");
    }

    /// Noise of a known law around a known base: Gaussian, or Student-t with
    /// 2 degrees of freedom (infinite variance) for heavy tails.
    fn noisy_series(seed: u64, n: usize, heavy: bool) -> (Vec<f32>, Vec<f32>) {
        let mut rng = crate::nn::SeedRng::new(seed);
        let mut normal = || {
            let (u, v) = (rng.next_f64().max(1e-300), rng.next_f64());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        };
        let mut base = Vec::with_capacity(n);
        let mut actual = Vec::with_capacity(n);
        for i in 0..n {
            let b = 1.0 + 0.5 * ((i as f64) * 0.01).sin();
            let e = if heavy {
                let z = normal();
                let chi2 = normal().powi(2) + normal().powi(2);
                z / (chi2 / 2.0).sqrt()
            } else {
                normal()
            };
            base.push(b as f32);
            actual.push((b + 0.05 * e) as f32);
        }
        (base, actual)
    }

    /// Two instances of one law but unequal noise (×1 and ×3), as validation would
    /// hold them: `n` windows each, groups 1 and 2.
    fn two_instances(seed: u64, n: usize) -> (Vec<f32>, Vec<f32>, Vec<u64>) {
        let (base, mut actual) = noisy_series(seed, 2 * n, false);
        for i in n..2 * n {
            actual[i] = base[i] + 3.0 * (actual[i] - base[i]);
        }
        let groups = (0..2 * n).map(|i| 1 + (i >= n) as u64).collect();
        (base, actual, groups)
    }

    /// The per-instance and the pooled additive margins of windows without spreads.
    fn per_instance_and_pooled(
        q: f64,
        base: &[f32],
        actual: &[f32],
        groups: &[u64],
    ) -> (Margin, Margin) {
        let unknown = vec![Spread::UNKNOWN; base.len()];
        let margins = |scope| {
            Margin::calibrate_in(
                scope,
                MarginForm::Additive,
                q,
                base,
                actual,
                &unknown,
                groups,
            )
            .unwrap()
        };
        (
            margins(CalibrationScope::PerInstance),
            margins(CalibrationScope::Global),
        )
    }

    #[test]
    fn per_instance_calibration_covers_the_hardest_instance_and_pools_small_ones() {
        let q = 0.95;
        for seed in 0..5u64 {
            let (base, actual, groups) = two_instances(seed, 2000);
            let (per, global) = per_instance_and_pooled(q, &base, &actual, &groups);
            // New windows of the noisier instance alone.
            let (b_new, a_new, g_new) = two_instances(seed + 100, 20000);
            let noisy: Vec<usize> = (0..b_new.len()).filter(|&i| g_new[i] == 2).collect();
            let coverage = |m: &Margin| {
                let reserved: Vec<f32> = noisy
                    .iter()
                    .map(|&i| m.reserve(b_new[i], &Spread::UNKNOWN))
                    .collect();
                let a: Vec<f32> = noisy.iter().map(|&i| a_new[i]).collect();
                reserve_metrics(&reserved, &a).coverage
            };
            let (cov_global, cov_per) = (coverage(&global), coverage(&per));
            assert!(
                cov_global < q - 0.02,
                "seed {seed}: pooled margin covers the noisy instance {cov_global}"
            );
            assert!(
                (cov_per - q).abs() < 0.01,
                "seed {seed}: per-instance {cov_per}"
            );
            assert!(per.k > global.k);
        }
        // Instances of a few windows each (kaggle collections) cannot hold a 95%
        // quantile of their own: they are pooled, which is the global margin.
        let (base, actual) = noisy_series(7, 3000, true);
        let groups: Vec<u64> = (0..3000).map(|i| i / 5).collect();
        let (per, global) = per_instance_and_pooled(q, &base, &actual, &groups);
        assert_eq!(per, global);
    }

    #[test]
    fn a_validation_instance_gets_its_own_margin_and_an_unseen_one_the_largest() {
        let q = 0.95;
        for seed in 0..5u64 {
            let (base, actual, groups) = two_instances(seed, 2000);
            let (per, global) = per_instance_and_pooled(q, &base, &actual, &groups);
            let (quiet, noisy) = (per.per_instance[&1], per.per_instance[&2]);
            assert!(quiet >= global.k && quiet < 0.8 * noisy, "{per:?}");
            assert_eq!(per.k, noisy);
            // New windows of each instance: its own margin covers Q of them.
            let (b_new, a_new, g_new) = two_instances(seed + 100, 20000);
            for g in [1, 2] {
                let idx: Vec<usize> = (0..b_new.len()).filter(|&i| g_new[i] == g).collect();
                let reserved: Vec<f32> = idx
                    .iter()
                    .map(|&i| per.reserve_for(g, b_new[i], &Spread::UNKNOWN))
                    .collect();
                let a: Vec<f32> = idx.iter().map(|&i| a_new[i]).collect();
                let cov = reserve_metrics(&reserved, &a).coverage;
                if g == 2 {
                    assert!((cov - q).abs() < 0.01, "seed {seed} noisy instance: {cov}");
                } else {
                    // Its own margin is floored at the pooled one: it covers more.
                    assert!(cov >= q - 0.01, "seed {seed} quiet instance: {cov}");
                }
            }
            // Saved in calibration.json and read back as it was.
            let json = serde_json::to_string(&per).unwrap();
            assert_eq!(serde_json::from_str::<Margin>(&json).unwrap(), per);
            // An instance validation never saw gets the largest margin.
            assert_eq!(
                per.reserve_for(99, 1.0, &Spread::UNKNOWN),
                per.reserve(1.0, &Spread::UNKNOWN)
            );
            assert!((per.reserve(1.0, &Spread::UNKNOWN) as f64 - (1.0 + noisy)).abs() < 1e-6);
        }
    }

    #[test]
    fn calibration_reaches_its_coverage_on_known_noise() {
        for heavy in [false, true] {
            for q in [0.95, 0.99] {
                for seed in 0..5u64 {
                    let (b_cal, a_cal) = noisy_series(seed, 4000, heavy);
                    let (b_new, a_new) = noisy_series(seed + 100, 20000, heavy);
                    let unknown = vec![Spread::UNKNOWN; b_cal.len()];
                    for form in [MarginForm::Additive, MarginForm::Multiplicative] {
                        let m = Margin::calibrate(form, q, &b_cal, &a_cal, &unknown).unwrap();
                        let reserved: Vec<f32> = b_new
                            .iter()
                            .map(|&b| m.reserve(b, &Spread::UNKNOWN))
                            .collect();
                        let cov = reserve_metrics(&reserved, &a_new).coverage;
                        assert!(
                            (cov - q).abs() < 0.01,
                            "heavy {heavy} q {q} seed {seed} {form:?}: coverage {cov}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_learned_spread_keeps_coverage_and_saves_slack_where_noise_varies() {
        // Noise whose scale varies 20-fold along the series; both learned
        // spreads are that scale (as a perfect error model would give).
        let noise = |seed: u64, n: usize| {
            let (base, actual) = noisy_series(seed, n, false);
            let scale: Vec<f32> = (0..n).map(|i| 0.05 + (i % 20) as f32 * 0.05).collect();
            let actual: Vec<f32> = (0..n)
                .map(|i| base[i] + (actual[i] - base[i]) * scale[i] / 0.05)
                .collect();
            let spreads: Vec<Spread> = scale
                .iter()
                .map(|&s| Spread {
                    window: f32::NAN,
                    learned: s,
                    forecast_and_window: s,
                })
                .collect();
            (base, actual, spreads)
        };
        for seed in 0..3u64 {
            let (b, a, s) = noise(seed, 4000);
            let (bn, an, sn) = noise(seed + 50, 20000);
            let slack = |form| {
                let m = Margin::calibrate(form, 0.95, &b, &a, &s).unwrap();
                let r: Vec<f32> = bn.iter().zip(&sn).map(|(&b, s)| m.reserve(b, s)).collect();
                reserve_metrics(&r, &an)
            };
            let additive = slack(MarginForm::Additive);
            for form in [MarginForm::LearnedSpread, MarginForm::ForecastAndSpread] {
                let learned = slack(form);
                assert!(
                    (learned.coverage - 0.95).abs() < 0.01,
                    "{form:?} {learned:?}"
                );
                assert!(
                    learned.mean_slack < 0.9 * additive.mean_slack,
                    "{form:?} {learned:?} vs {additive:?}"
                );
            }
        }
    }

    #[test]
    fn empty_calibration_is_an_error() {
        let none = [Spread::UNKNOWN];
        assert!(Margin::calibrate(MarginForm::Additive, 0.9, &[f32::NAN], &[1.0], &none).is_err());
        // No window spreads (kaggle rows): that form cannot be calibrated.
        assert!(Margin::calibrate(MarginForm::WindowSpread, 0.9, &[1.0], &[1.0], &none).is_err());
    }
}
