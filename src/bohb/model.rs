//! BOHB's model: per-budget good/bad KDEs and the l(x)/g(x) proposal.

use super::kde::Kde;
use super::rng::Rng;
use super::space::{Config, DimKind, Space};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The model's knobs; defaults are those of the BOHB paper and hpbandster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSettings {
    /// Finished results a budget needs before it gets a model; `None` = d + 1.
    pub min_points_in_model: Option<usize>,
    /// Percentage of the best results that make the "good" set.
    pub top_n_percent: usize,
    /// Candidates drawn from the good KDE per model-based proposal.
    pub num_samples: usize,
    /// Fraction of proposals drawn uniformly at random (1 = Hyperband).
    pub random_fraction: f64,
    /// Factor on the good KDE's bandwidths when drawing candidates.
    pub bandwidth_factor: f64,
    pub min_bandwidth: f64,
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            min_points_in_model: None,
            top_n_percent: 15,
            num_samples: 64,
            random_fraction: 1.0 / 3.0,
            bandwidth_factor: 3.0,
            min_bandwidth: 1e-3,
        }
    }
}

/// How a configuration came about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Random,
    /// Maximiser of l/g from the model fitted on this budget.
    Model,
    /// Promoted from the previous successive-halving stage.
    Promoted,
}

/// The good and bad densities fitted on one budget.
pub struct FittedModel {
    pub budget: f64,
    pub good: Kde,
    pub bad: Kde,
}

/// Finished results, grouped by budget (budgets are compared bit-exactly:
/// they all come from one ladder).
pub struct Model {
    space: Space,
    kinds: Vec<DimKind>,
    settings: ModelSettings,
    observations: BTreeMap<u64, Observations>,
}

/// Encoded configurations with their losses (+inf for failures).
type Observations = Vec<(Vec<f64>, f64)>;

impl Model {
    pub fn new(space: Space, settings: ModelSettings) -> Self {
        Model {
            kinds: space.dims(),
            space,
            settings,
            observations: BTreeMap::new(),
        }
    }

    pub fn space(&self) -> &Space {
        &self.space
    }

    /// Records a finished result; failed ones enter as +inf (the worst), so the
    /// model learns to avoid them. Configs come from the space, so encoding
    /// cannot fail.
    pub fn observe(&mut self, config: &Config, budget: f64, loss: Option<f64>) {
        let vector = self
            .space
            .encode(config)
            .expect("configs come from this space");
        let loss = loss.filter(|l| l.is_finite()).unwrap_or(f64::INFINITY);
        self.observations
            .entry(budget.to_bits())
            .or_default()
            .push((vector, loss));
    }

    fn min_points(&self) -> usize {
        self.settings
            .min_points_in_model
            .unwrap_or(self.kinds.len() + 1)
    }

    /// The model of the largest budget that has enough results, if any.
    /// `rng` imputes inactive (NaN) dimensions of conditional spaces.
    pub fn fit(&self, rng: &mut Rng) -> Option<FittedModel> {
        let d = self.kinds.len();
        if d == 0 {
            return None;
        }
        let min_points = self.min_points();
        let mut by_budget: Vec<(f64, &Observations)> = self
            .observations
            .iter()
            .map(|(b, o)| (f64::from_bits(*b), o))
            .collect();
        by_budget.sort_by(|a, b| b.0.total_cmp(&a.0));
        by_budget.into_iter().find_map(|(budget, obs)| {
            let n = obs.len();
            if n < min_points {
                return None;
            }
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| obs[a].1.total_cmp(&obs[b].1).then(a.cmp(&b)));
            let top = self.settings.top_n_percent;
            let n_good = min_points.max(top * n / 100);
            let n_bad = min_points.max((100 - top.min(100)) * n / 100);
            let good: Vec<&[f64]> = order
                .iter()
                .take(n_good)
                .map(|&i| obs[i].0.as_slice())
                .collect();
            let bad: Vec<&[f64]> = order
                .iter()
                .skip(n_good)
                .take(n_bad)
                .map(|&i| obs[i].0.as_slice())
                .collect();
            let good = impute_inactive(&good, &self.kinds, rng);
            let bad = impute_inactive(&bad, &self.kinds, rng);
            let good: Vec<&[f64]> = good.iter().map(Vec::as_slice).collect();
            let bad: Vec<&[f64]> = bad.iter().map(Vec::as_slice).collect();
            // Each KDE needs more points than dimensions (hpbandster's rule).
            if good.len() <= d || bad.len() <= d {
                return None;
            }
            Some(FittedModel {
                budget,
                good: Kde::fit(&self.kinds, &good, self.settings.min_bandwidth),
                bad: Kde::fit(&self.kinds, &bad, self.settings.min_bandwidth),
            })
        })
    }

    /// One new configuration: uniform with probability `random_fraction` or
    /// while no budget has a model, otherwise the best of `num_samples`
    /// candidates drawn around good points by l(x)/g(x).
    pub fn propose(&self, rng: &mut Rng) -> (Config, Origin) {
        let random = rng.uniform() < self.settings.random_fraction;
        let fitted = if random { None } else { self.fit(rng) };
        let Some(fitted) = fitted else {
            return (self.space.sample_uniform(rng), Origin::Random);
        };
        let mut best: Option<(f64, Vec<f64>)> = None;
        for _ in 0..self.settings.num_samples {
            let centre = rng.below(fitted.good.len());
            let candidate = fitted
                .good
                .sample_near(centre, self.settings.bandwidth_factor, rng);
            // l / g with both floored at 1e-32 as hpbandster does, in logs.
            let floor = 1e-32f64.ln();
            let l = fitted.good.log_pdf(&candidate).max(floor);
            let g = fitted.bad.log_pdf(&candidate).max(floor);
            let score = l - g;
            if score.is_finite() && best.as_ref().is_none_or(|(s, _)| score > *s) {
                best = Some((score, candidate));
            }
        }
        match best {
            Some((_, vector)) => (self.space.decode(&vector), Origin::Model),
            None => (self.space.sample_uniform(rng), Origin::Random),
        }
    }
}

/// Fills the inactive (NaN) entries of `rows` as hpbandster's
/// `impute_conditional_data` does: from a random row of the same set where
/// the first missing dimension is active (copying every entry that row has
/// for the missing dimensions), else with a random valid value; repeated
/// until the row is complete. Rows without NaN come back unchanged and draw
/// nothing from `rng`.
pub fn impute_inactive(rows: &[&[f64]], kinds: &[DimKind], rng: &mut Rng) -> Vec<Vec<f64>> {
    rows.iter()
        .map(|row| {
            let mut datum = row.to_vec();
            while let Some(j) = datum.iter().position(|v| v.is_nan()) {
                let donors: Vec<&[f64]> = rows.iter().copied().filter(|r| !r[j].is_nan()).collect();
                if donors.is_empty() {
                    datum[j] = match kinds[j] {
                        DimKind::Continuous => rng.uniform(),
                        DimKind::Categorical(n) | DimKind::Ordinal(n) => rng.below(n) as f64,
                    };
                } else {
                    let donor = donors[rng.below(donors.len())];
                    for (d, v) in datum.iter_mut().zip(donor) {
                        if d.is_nan() {
                            *d = *v;
                        }
                    }
                }
            }
            datum
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bohb::space::{Domain, Param, Value};

    fn unit_space(d: usize) -> Space {
        Space::new(
            (0..d)
                .map(|i| Param {
                    name: format!("x{i}"),
                    domain: Domain::Float {
                        low: 0.0,
                        high: 1.0,
                        log: false,
                    },
                    condition: None,
                })
                .collect(),
        )
        .unwrap()
    }

    fn config(x: &[f64]) -> Config {
        x.iter()
            .enumerate()
            .map(|(i, v)| (format!("x{i}"), Value::Float(*v)))
            .collect()
    }

    #[test]
    fn a_model_needs_enough_points_and_uses_the_largest_budget() {
        let mut model = Model::new(unit_space(2), ModelSettings::default());
        let mut rng = Rng::new(1);
        // d = 2: min points 3, and the bad set needs 3 too -> 6 results.
        for i in 0..5 {
            let x = [rng.uniform(), rng.uniform()];
            model.observe(&config(&x), 1.0, Some(i as f64));
        }
        assert!(model.fit(&mut Rng::new(0)).is_none());
        model.observe(&config(&[0.5, 0.5]), 1.0, None);
        assert_eq!(model.fit(&mut Rng::new(0)).unwrap().budget, 1.0);
        for i in 0..6 {
            model.observe(&config(&[0.1 * i as f64, 0.2]), 3.0, Some(i as f64));
        }
        let fitted = model.fit(&mut Rng::new(0)).unwrap();
        assert_eq!(fitted.budget, 3.0);
        assert_eq!((fitted.good.len(), fitted.bad.len()), (3, 3));
        // Good = the three lowest losses at budget 3: x0 in {0, 0.1, 0.2}.
        let mut good_x: Vec<f64> = (0..3).map(|i| fitted.good.point(i)[0]).collect();
        good_x.sort_by(f64::total_cmp);
        assert_eq!(good_x, [0.0, 0.1, 0.2]);
    }

    #[test]
    fn model_proposals_concentrate_where_losses_are_low() {
        let settings = ModelSettings {
            random_fraction: 0.0,
            ..ModelSettings::default()
        };
        let mut model = Model::new(unit_space(2), settings);
        let mut rng = Rng::new(2);
        for _ in 0..60 {
            let x = [rng.uniform(), rng.uniform()];
            let loss = (x[0] - 0.2).powi(2) + (x[1] - 0.8).powi(2);
            model.observe(&config(&x), 1.0, Some(loss));
        }
        let mut dist = 0.0;
        for _ in 0..50 {
            let (c, origin) = model.propose(&mut rng);
            assert_eq!(origin, Origin::Model);
            dist += ((c["x0"].as_f64().unwrap() - 0.2).powi(2)
                + (c["x1"].as_f64().unwrap() - 0.8).powi(2))
            .sqrt();
        }
        // Uniform proposals would average about 0.5 from (0.2, 0.8).
        assert!(dist / 50.0 < 0.2, "mean distance {}", dist / 50.0);
    }

    #[test]
    fn proposals_are_reproducible_from_the_seed() {
        let mut model = Model::new(unit_space(3), ModelSettings::default());
        let mut rng = Rng::new(3);
        for i in 0..30 {
            let x = [rng.uniform(), rng.uniform(), rng.uniform()];
            model.observe(&config(&x), 1.0, Some(i as f64));
        }
        let a: Vec<Config> = (0..10)
            .map(|i| model.propose(&mut Rng::stream(5, i)).0)
            .collect();
        let b: Vec<Config> = (0..10)
            .map(|i| model.propose(&mut Rng::stream(5, i)).0)
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn imputation_fills_inactive_entries_from_rows_of_the_same_set() {
        let kinds = [
            DimKind::Categorical(2),
            DimKind::Continuous,
            DimKind::Continuous,
        ];
        let nan = f64::NAN;
        let rows: Vec<Vec<f64>> = vec![
            vec![0.0, 0.25, nan],
            vec![1.0, nan, nan],
            vec![0.0, 0.75, nan],
        ];
        let refs: Vec<&[f64]> = rows.iter().map(Vec::as_slice).collect();
        let mut rng = Rng::new(3);
        let mut donors_seen = [false; 2];
        for _ in 0..50 {
            let filled = impute_inactive(&refs, &kinds, &mut rng);
            // Active entries are kept.
            assert_eq!((filled[0][0], filled[0][1]), (0.0, 0.25));
            assert_eq!((filled[2][0], filled[2][1]), (0.0, 0.75));
            // Dimension 1 of row 1 comes from a row where it is active.
            let v = filled[1][1];
            assert!(v == 0.25 || v == 0.75, "{v}");
            donors_seen[(v == 0.75) as usize] = true;
            // Dimension 2 is active nowhere: a random valid value per row.
            for row in &filled {
                assert!((0.0..1.0).contains(&row[2]));
            }
            assert_ne!(filled[0][2], filled[2][2]);
        }
        assert!(donors_seen.iter().all(|&s| s), "both donors drawn");
        // Complete rows draw nothing.
        let complete = [[1.0, 0.5, 0.5]];
        let refs: Vec<&[f64]> = complete.iter().map(|r| r.as_slice()).collect();
        let (mut a, b) = (Rng::new(9), Rng::new(9));
        assert_eq!(
            impute_inactive(&refs, &kinds, &mut a),
            vec![complete[0].to_vec()]
        );
        assert_eq!(a.clone().next_u64(), b.clone().next_u64());
    }

    #[test]
    fn a_conditional_space_gets_a_model_and_valid_proposals() {
        let space = crate::bohb::space::tests::conditional();
        let settings = ModelSettings {
            random_fraction: 0.0,
            ..ModelSettings::default()
        };
        let mut model = Model::new(space.clone(), settings);
        let mut rng = Rng::new(5);
        // sgd with momentum near 0.9 is best; adam configs are mediocre.
        for _ in 0..60 {
            let c = space.sample_uniform(&mut rng);
            let loss = match c.get("momentum").and_then(Value::as_f64) {
                Some(m) => (m - 0.9).abs(),
                None => 0.5,
            };
            model.observe(&c, 1.0, Some(loss));
        }
        let fitted = model.fit(&mut rng).unwrap();
        assert!((0..fitted.good.len()).all(|i| fitted.good.point(i).iter().all(|v| v.is_finite())));
        let mut sgd = 0;
        for _ in 0..40 {
            let (c, origin) = model.propose(&mut rng);
            assert_eq!(origin, Origin::Model);
            assert!(space.encode(&c).is_ok(), "{c:?}");
            if let Some(m) = c.get("momentum").and_then(Value::as_f64) {
                sgd += 1;
                assert!((m - 0.9).abs() < 0.3, "{m}");
            }
        }
        assert!(sgd >= 30, "the model prefers the sgd branch: {sgd}/40");
    }
}
