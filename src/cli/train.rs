//! `convformer train`: train ConvFormerNet and write a run directory.

use std::path::PathBuf;

use super::device_choice::{resolve, DeviceArg};
use super::source_args::SourceArgs;
use crate::error::{Error, Result};
use crate::train::run::{read_run_file, train_run, SplitReport};
use crate::train::{FitOptions, Progress, RunConfig};

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// JSON file with `model` and/or `train` sections (any field may be left out).
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceArg,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// mse, mae, huber[:DELTA] or quantile:Q.
    #[arg(long)]
    pub loss: Option<String>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub lr: Option<f64>,
    /// The run directory to write.
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Continue an interrupted run from its last checkpoint (its own config and data).
    #[arg(long, conflicts_with_all = ["data", "format", "config", "epochs", "seed", "loss", "batch_size", "lr", "out"])]
    pub resume: Option<PathBuf>,
    /// Log lines instead of progress bars.
    #[arg(long)]
    pub quiet: bool,
}

fn run_config(args: &TrainArgs) -> Result<RunConfig> {
    let mut cfg = match &args.config {
        Some(path) => RunConfig::from_json_file(path)?,
        None => RunConfig::default(),
    };
    if let Some(e) = args.epochs {
        cfg.train.epochs = e;
    }
    if let Some(s) = args.seed {
        cfg.train.seed = s;
    }
    if let Some(l) = &args.loss {
        cfg.train.loss = l.parse()?;
    }
    if let Some(b) = args.batch_size {
        cfg.train.batch_size = b;
    }
    if let Some(lr) = args.lr {
        cfg.train.lr = lr;
    }
    Ok(cfg)
}

pub fn run(args: &TrainArgs) -> Result<()> {
    let device = resolve(args.device)?;
    let progress = if args.quiet {
        Progress::Log
    } else {
        Progress::Bar
    };
    let (run_dir, cfg, source, resume) = if let Some(dir) = &args.resume {
        let saved = read_run_file(dir)?;
        let cfg = RunConfig {
            model: saved.model,
            train: saved.train,
        };
        (dir.clone(), cfg, saved.data, true)
    } else {
        let cfg = run_config(args)?;
        let source = args.source.source(cfg.train.seed)?;
        let out = args
            .out
            .clone()
            .ok_or_else(|| Error::Invalid("--out is required".into()))?;
        (out, cfg, source, false)
    };
    if source.path.is_none() && !args.quiet {
        eprintln!(
            "data: the built-in generated {} trace (seed {})",
            source.format, source.seed
        );
    }
    let opts = FitOptions {
        progress,
        resume,
        device,
        ..FitOptions::default()
    };
    let (outcome, metrics) = train_run(&run_dir, &cfg, &source, &opts)?;
    println!(
        "trained {} epochs (best {}), wrote {}",
        outcome.history.len(),
        outcome.best_epoch,
        run_dir.display()
    );
    let held_out = metrics.eval.test.as_ref().map(|r| ("test", r));
    if let Some((name, r)) = held_out.or(metrics.eval.val.as_ref().map(|r| ("val", r))) {
        print_table(name, r);
    }
    Ok(())
}

/// Model against the baselines on one split, in trace units.
pub fn print_table(split: &str, r: &SplitReport) {
    println!("{split} split, {} samples, trace units:", r.n);
    println!(
        "  {:<14} {:>12} {:>12} {:>9} {:>9}",
        "predictor", "MAE", "RMSE", "R2", "coverage"
    );
    for (name, m) in [
        ("convformer", &r.model_trace),
        ("naive", &r.naive_trace),
        ("ridge", &r.ridge_trace),
    ] {
        println!(
            "  {:<14} {:>12.4e} {:>12.4e} {:>9.4} {:>9.3}",
            name, m.mae, m.rmse, m.r2, m.coverage
        );
    }
}
