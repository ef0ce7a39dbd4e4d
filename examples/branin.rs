//! BOHB on the Branin function: best value found in a fixed budget, per
//! seed, against the optimum 0.397887, with every BOHB setting at its default.
//!
//! `cargo run --release --example branin -- [--seeds 20] [--iterations 2000]
//! [--min-budget 1] [--max-budget 1] [--min-bandwidth 0.001] [--random-fraction 0.333]`
//!
//! Branin ignores the budget, so the default min = max budget makes every
//! bracket one model-guided configuration: `--iterations` is the number of
//! evaluations. `--min-bandwidth` and `--random-fraction` are there to
//! compare against the defaults (`--random-fraction 1` is random search).

use convformer::bohb::objectives::{Branin, BRANIN_MINIMUM};
use convformer::bohb::{self, ModelSettings, RunOptions, Schedule, TuneSettings};
use std::sync::Arc;

#[path = "support/args.rs"]
mod args;
use args::arg;

fn main() {
    let seeds: u64 = arg("--seeds", 20);
    let iterations: usize = arg("--iterations", 2000);
    let min_budget: f64 = arg("--min-budget", 1.0);
    let max_budget: f64 = arg("--max-budget", 1.0);
    let defaults = ModelSettings::default();
    let min_bandwidth: f64 = arg("--min-bandwidth", defaults.min_bandwidth);
    let random_fraction: f64 = arg("--random-fraction", defaults.random_fraction);
    println!(
        "Branin, {iterations} brackets, budgets {min_budget} to {max_budget}, \
         min_bandwidth {min_bandwidth}, random_fraction {random_fraction:.3}, other BOHB settings default"
    );
    let mut within = 0;
    let mut best_values = Vec::new();
    for seed in 0..seeds {
        let settings = TuneSettings {
            objective: "branin".into(),
            space: Branin::space(),
            min_budget,
            max_budget,
            eta: 3,
            iterations,
            workers: 1,
            seed,
            model: ModelSettings {
                min_bandwidth,
                random_fraction,
                ..ModelSettings::default()
            },
            schedule: Schedule::Async,
        };
        let outcome = bohb::run(
            &settings,
            Arc::new(Branin::default()),
            RunOptions::default(),
        )
        .expect("Branin cannot fail");
        let best = outcome.incumbent.expect("at least one evaluation").loss;
        let ok = best <= BRANIN_MINIMUM * 1.01;
        within += ok as usize;
        best_values.push(best);
        println!(
            "seed {seed:>3}: {} evaluations, best {best:.6} ({:+.3}%){}",
            outcome.evaluations.len(),
            (best / BRANIN_MINIMUM - 1.0) * 100.0,
            if ok { "" } else { "  > 1%" }
        );
    }
    best_values.sort_by(f64::total_cmp);
    println!(
        "within 1% of {BRANIN_MINIMUM:.6}: {within}/{seeds} seeds; median best {:.6}, worst {:.6}",
        best_values[best_values.len() / 2],
        best_values[best_values.len() - 1]
    );
}
