//! Branin at BOHB's default settings (those of the paper and hpbandster,
//! min_bandwidth 1e-3), 1000 evaluations (min budget = max budget: one
//! model-guided configuration per bracket), seeds 0-7.
//!
//! What the defaults give, honestly: a seed either homes in on a minimum
//! (within 1% of 0.397887) or its good density collapses early (bandwidths at
//! the 1e-3 floor, candidates drawn a few 1e-3 of the range from the good
//! points, l/g picking the one nearest their mode) and crawls. A Python
//! replica of hpbandster's proposal code (statsmodels KDEs, scipy truncnorm)
//! reaches 1% on 4/20 seeds at 500 evaluations, as this crate does; rates
//! per budget are in benches/results/bohb.md. The test pins that behaviour:
//! BOHB reaches the 1% band where random search with the same budget does not.

use convformer::bohb::objectives::{Branin, BRANIN_MINIMUM};
use convformer::bohb::{self, ModelSettings, RunOptions, Schedule, TuneSettings};
use std::sync::Arc;

fn best_values(random_fraction: f64) -> Vec<f64> {
    (0..8)
        .map(|seed| {
            let settings = TuneSettings {
                objective: "branin".into(),
                space: Branin::space(),
                min_budget: 1.0,
                max_budget: 1.0,
                eta: 3,
                iterations: 1000,
                workers: 1,
                schedule: Schedule::Async,
                seed,
                model: ModelSettings {
                    random_fraction,
                    ..ModelSettings::default()
                },
            };
            let outcome = bohb::run(
                &settings,
                Arc::new(Branin::default()),
                RunOptions::default(),
            )
            .unwrap();
            assert_eq!(outcome.evaluations.len(), 1000);
            outcome.incumbent.unwrap().loss
        })
        .collect()
}

fn within_one_percent(best: &[f64]) -> usize {
    best.iter().filter(|b| **b <= BRANIN_MINIMUM * 1.01).count()
}

#[test]
fn bohb_at_defaults_reaches_the_one_percent_band_where_random_search_does_not() {
    let bohb = best_values(ModelSettings::default().random_fraction);
    let random_search = best_values(1.0);
    // Every value is a real Branin value, never below the optimum.
    assert!(
        bohb.iter()
            .chain(&random_search)
            .all(|b| *b >= BRANIN_MINIMUM - 1e-9),
        "{bohb:?} {random_search:?}"
    );
    // Measured: 3/8 seeds within 1% (worst +32%); random search 0/8.
    assert!(within_one_percent(&bohb) >= 2, "{bohb:?}");
    assert!(
        within_one_percent(&random_search) < within_one_percent(&bohb),
        "{random_search:?} vs {bohb:?}"
    );
    assert!(bohb.iter().all(|b| *b <= BRANIN_MINIMUM * 1.5), "{bohb:?}");
}
