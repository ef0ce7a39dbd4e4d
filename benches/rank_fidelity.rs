//! Rank fidelity of the tuner's budgets: N random configurations of the
//! default search space, each trained at 1, 3, 9 and 27 epochs (a whole run
//! per budget, as BOHB runs them), and the Spearman rank correlation of
//! their validation losses between budgets 1 and 9 and between 3 and 27.
//!
//!   cargo bench --bench rank_fidelity -- [--data PATH] [--configs 20] [--seed 0] [--original]
//!
//! `--original` trains the original recipe (post-norm blocks, mse) instead of
//! the default one, for comparison. Prints one row per configuration and the
//! correlations last.

use convformer::bohb::rng::Rng;
use convformer::bohb::Space;
use convformer::train::run::DataSource;
use convformer::train::tuning::ConvFormerObjective;
use convformer::train::{train_and_validate, LossSpec, RunConfig};
use convformer::Device;

const BUDGETS: [usize; 4] = [1, 3, 9, 27];

struct Args {
    data: Option<std::path::PathBuf>,
    configs: usize,
    seed: u64,
    original: bool,
}

fn args() -> Args {
    let mut a = Args {
        data: None,
        configs: 20,
        seed: 0,
        original: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => a.data = Some(value().into()),
            "--configs" => a.configs = value().parse().expect("--configs N"),
            "--seed" => a.seed = value().parse().expect("--seed N"),
            "--original" => a.original = true,
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// Ranks with ties averaged, then Pearson on the ranks.
fn spearman(a: &[f64], b: &[f64]) -> f64 {
    fn ranks(v: &[f64]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
                j += 1;
            }
            let mean_rank = (i + j) as f64 / 2.0;
            for k in i..=j {
                r[idx[k]] = mean_rank;
            }
            i = j + 1;
        }
        r
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

fn main() {
    let a = args();
    let mut base = RunConfig::default();
    if a.original {
        base.model.norm_first = false;
        base.model.linear_skip = false;
        base.train.loss = LossSpec(convformer::autograd::LossKind::Mse);
    }
    let source = DataSource::choose(a.data.clone(), None, 12, 1, 42).expect("a data source");
    let objective = ConvFormerObjective::new(source, base, Device::Cpu).expect("the data loads");
    let space = Space::convformer_default();
    let mut rng = Rng::new(a.seed);
    let recipe = if a.original { "original" } else { "default" };
    let data_name = a
        .data
        .as_ref()
        .map_or("built-in trace".to_string(), |p| p.display().to_string());
    println!(
        "rank fidelity, {recipe} recipe, {data_name}, {} configurations, space seed {}",
        a.configs, a.seed
    );
    println!("| # | config | loss@1 | loss@3 | loss@9 | loss@27 |");
    println!("|---|---|---|---|---|---|");
    let mut losses: Vec<[f64; 4]> = Vec::new();
    for i in 0..a.configs {
        let config = space.sample_uniform(&mut rng);
        let mut row = [0.0; 4];
        for (slot, &epochs) in row.iter_mut().zip(&BUDGETS) {
            let cfg = objective
                .run_config(&config, epochs, 42)
                .expect("a valid configuration");
            *slot = train_and_validate(
                &cfg.model,
                &cfg.train,
                objective.data(),
                epochs,
                Device::Cpu,
            )
            .expect("training runs");
        }
        let text = serde_json::to_string(&config).unwrap();
        println!(
            "| {i} | `{text}` | {:.4e} | {:.4e} | {:.4e} | {:.4e} |",
            row[0], row[1], row[2], row[3]
        );
        losses.push(row);
    }
    let column = |k: usize| losses.iter().map(|r| r[k]).collect::<Vec<f64>>();
    println!();
    println!(
        "Spearman(budget 1, budget 9)  = {:.3}",
        spearman(&column(0), &column(2))
    );
    println!(
        "Spearman(budget 3, budget 27) = {:.3}",
        spearman(&column(1), &column(3))
    );
}
