//! BOHB on the Branin function: best value found in a fixed number of
//! evaluations, per seed, against the optimum 0.397887.
//!
//! `cargo run --release --example branin -- [--seeds 20] [--evaluations 1000]`

use convformer::bohb::objectives::{Branin, BRANIN_MINIMUM};
use convformer::bohb::{self, ModelSettings, RunOptions, TuneSettings};
use std::sync::Arc;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number, got {v}"))
        })
        .unwrap_or(default)
}

fn main() {
    let seeds = arg("--seeds", 20) as u64;
    let evaluations = arg("--evaluations", 1000);
    println!("Branin, {evaluations} evaluations (min budget = max budget: one configuration per bracket), default BOHB settings");
    let mut within = 0;
    let mut best_values = Vec::new();
    for seed in 0..seeds {
        let settings = TuneSettings {
            objective: "branin".into(),
            space: Branin::space(),
            min_budget: 1.0,
            max_budget: 1.0,
            eta: 3,
            iterations: evaluations,
            workers: 1,
            seed,
            model: ModelSettings::default(),
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
            "seed {seed:>3}: best {best:.6} ({:+.3}%){}",
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
