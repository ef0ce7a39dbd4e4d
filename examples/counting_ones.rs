//! The BOHB paper's counting-ones comparison: random search, Hyperband and
//! BOHB at 8+8 and 16+16 dimensions, budgets 9..729 (eta 3), mean regret of
//! the incumbent over seeds against cumulative budget.
//!
//! `cargo run --release --example counting_ones -- [--seeds 20] [--rounds 24]`
//! (one round = one full Hyperband cycle of 5 brackets).

use convformer::bohb::objectives::CountingOnes;
use convformer::bohb::{
    self, ModelSettings, Objective, RunOptions, Schedule, TuneOutcome, TuneSettings,
};
use rayon::prelude::*;
use std::sync::Arc;

#[path = "support/args.rs"]
mod args;
use args::arg;

const MIN_BUDGET: f64 = 9.0;
const MAX_BUDGET: f64 = 729.0;
const ETA: u32 = 3;
/// Brackets in one Hyperband cycle for 9..729 at eta 3.
const BRACKETS_PER_ROUND: usize = 5;
/// Cumulative budget checkpoints, in units of the max budget.
const CHECKPOINTS: [f64; 6] = [10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0];

#[derive(Clone, Copy, PartialEq)]
enum Method {
    RandomSearch,
    Hyperband,
    Bohb,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::RandomSearch => "RS",
            Method::Hyperband => "HB",
            Method::Bohb => "BOHB",
        }
    }
}

/// Budget one Hyperband round spends (all methods get the same total).
fn round_budget() -> f64 {
    let ladder = bohb::hyperband::budget_ladder(MIN_BUDGET, MAX_BUDGET, ETA).expect("valid ladder");
    (0..BRACKETS_PER_ROUND)
        .map(|i| {
            let plan = bohb::hyperband::bracket_plan(&ladder, ETA, i);
            plan.sizes
                .iter()
                .zip(&plan.budgets)
                .map(|(n, b)| *n as f64 * b)
                .sum::<f64>()
        })
        .sum()
}

fn run_once(problem: &CountingOnes, method: Method, seed: u64, rounds: usize) -> TuneOutcome {
    let random_search = method == Method::RandomSearch;
    let settings = TuneSettings {
        objective: "counting-ones".into(),
        space: problem.space(),
        // Random search: one random configuration per bracket, at the max budget.
        min_budget: if random_search {
            MAX_BUDGET
        } else {
            MIN_BUDGET
        },
        max_budget: MAX_BUDGET,
        eta: ETA,
        iterations: if random_search {
            (rounds as f64 * round_budget() / MAX_BUDGET).ceil() as usize
        } else {
            rounds * BRACKETS_PER_ROUND
        },
        workers: 1,
        schedule: Schedule::Async,
        seed,
        model: ModelSettings {
            random_fraction: if method == Method::Bohb {
                1.0 / 3.0
            } else {
                1.0
            },
            ..ModelSettings::default()
        },
    };
    let objective: Arc<dyn Objective> = Arc::new(problem.clone());
    bohb::run(&settings, objective, RunOptions::default()).expect("synthetic runs cannot fail")
}

/// Regret of the incumbent after `budget` cumulative budget (1.0 before any).
fn regret_at(problem: &CountingOnes, outcome: &TuneOutcome, budget: f64) -> f64 {
    outcome
        .trajectory
        .iter()
        .take_while(|p| p.cumulative_budget <= budget * (1.0 + 1e-12))
        .last()
        .map_or(1.0, |p| {
            problem.regret(&outcome.evaluations[p.job as usize].config)
        })
}

fn main() {
    let seeds: u64 = arg("--seeds", 20);
    let rounds: usize = arg("--rounds", 24);
    let total = rounds as f64 * round_budget() / MAX_BUDGET;
    println!("counting ones, budgets {MIN_BUDGET}..{MAX_BUDGET}, eta {ETA}, {rounds} Hyperband rounds ({total:.1} max budgets), {seeds} seeds");
    println!("regret = true loss / dims + 1 of the incumbent; mean ± sd over seeds at cumulative budget (x max budget)\n");
    for (n_cat, n_cont) in [(8, 8), (16, 16)] {
        let problem = CountingOnes::new(n_cat, n_cont);
        let mut header = format!("| {n_cat}+{n_cont} | method |");
        let mut rule = "|---|---|".to_string();
        let checkpoints: Vec<f64> = CHECKPOINTS
            .iter()
            .copied()
            .filter(|c| *c < total)
            .chain([total])
            .collect();
        for c in &checkpoints {
            header += &format!(" {c:.0} |");
            rule += "---|";
        }
        println!("{header}\n{rule}");
        let mut finals = Vec::new();
        for method in [Method::RandomSearch, Method::Hyperband, Method::Bohb] {
            let start = std::time::Instant::now();
            let outcomes: Vec<TuneOutcome> = (0..seeds)
                .into_par_iter()
                .map(|seed| run_once(&problem, method, seed, rounds))
                .collect();
            let mut row = format!("| | {} |", method.name());
            for &c in &checkpoints {
                let r: Vec<f64> = outcomes
                    .iter()
                    .map(|o| regret_at(&problem, o, c * MAX_BUDGET))
                    .collect();
                let (mean, sd) = mean_sd(&r);
                row += &format!(" {mean:.4} ± {sd:.4} |");
            }
            println!("{row}  ({:.1} s)", start.elapsed().as_secs_f64());
            let last: Vec<f64> = outcomes
                .iter()
                .map(|o| regret_at(&problem, o, total * MAX_BUDGET))
                .collect();
            finals.push((method.name(), last));
        }
        let (bohb_mean, _) = mean_sd(&finals[2].1);
        for (name, r) in &finals[..2] {
            let (m, _) = mean_sd(r);
            let wins = finals[2].1.iter().zip(r).filter(|(b, o)| b < o).count();
            println!(
                "final regret: BOHB {bohb_mean:.4} vs {name} {m:.4} ({:.1}x lower; BOHB lower on {wins}/{} seeds)",
                m / bohb_mean,
                r.len()
            );
        }
        println!();
    }
}

fn mean_sd(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}
