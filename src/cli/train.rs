//! `convformer train`: train ConvFormerNet and write a run directory.

use std::path::PathBuf;

use super::device_choice::{resolve, DeviceArg};
use super::source_args::SourceArgs;
use crate::error::{Error, Result};
use crate::train::run::{read_run_file, train_run, EvalReport, SplitReport};
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
    /// Reserve memory for a share Q of windows (0 < Q < 1), e.g. 0.95; may be
    /// given several times. Margins are calibrated on the validation split.
    /// Default: 0.95 and 0.99.
    #[arg(long = "reserve", value_name = "Q", allow_negative_numbers = true)]
    pub reserve: Vec<f64>,
    /// Calibrate each margin to cover Q of each validation instance's windows
    /// (per-instance, the default: an instance seen in validation gets its own
    /// margin, any other the largest, which holds on instances never seen) or of
    /// all validation windows pooled (global: narrower, covers less on new instances).
    #[arg(long, value_enum)]
    pub calibrate: Option<crate::train::reserve::CalibrationScope>,
    /// How the network's margin scales: forecast-and-spread (the default, + k ×
    /// (a × forecast + b × the window's std + c × |forecast − last value|), a, b
    /// and c fitted to its training errors), multiplicative (forecast × (1 + m)),
    /// additive (+ m), learned-spread (+ k × its expected error, a ridge on its
    /// inputs fitted to its training errors) or window-spread (+ k × the
    /// window's std).
    #[arg(long, value_enum)]
    pub margin: Option<crate::train::reserve::MarginForm>,
    /// How samples are split: group = whole instances on one side (test on
    /// instances training never saw); default: chronological per instance
    /// for series, random for kaggle rows.
    #[arg(long, value_enum)]
    pub split: Option<crate::data::SplitKind>,
    /// Replace a run already in --out.
    #[arg(long)]
    pub force: bool,
    /// The run directory to write.
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Continue an interrupted run from its last checkpoint (its own config and data).
    #[arg(long, conflicts_with_all = ["data", "format", "config", "epochs", "seed", "loss", "batch_size", "lr", "out", "reserve", "calibrate", "margin", "split", "force"])]
    pub resume: Option<PathBuf>,
    /// Log lines instead of progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Per epoch, also log the output's spread, the gradient norm, the share
    /// of clipped steps and each module's gradient norm.
    #[arg(long)]
    pub verbose: bool,
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
    if !args.reserve.is_empty() {
        for &q in &args.reserve {
            crate::train::reserve::check_level(q)?;
        }
        cfg.train.reserve = args.reserve.clone();
    }
    if let Some(scope) = args.calibrate {
        cfg.train.calibration = scope;
    }
    if let Some(form) = args.margin {
        cfg.train.model_margin = form;
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
        let mut source = args.source.source(cfg.train.seed)?;
        source.split = args.split;
        let out = args
            .out
            .clone()
            .ok_or_else(|| Error::Invalid("--out is required".into()))?;
        if !args.force && out.join("config.json").exists() {
            return Err(Error::Invalid(format!(
                "{} already holds a run: pass --force to replace it, or `--resume {}` to continue it",
                out.display(),
                out.display()
            )));
        }
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
        verbose: args.verbose,
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
        print_table(name, r, &metrics.eval);
    }
    Ok(())
}

/// Model against the baselines on one split, in trace units: the point
/// forecasts, then the reservations at each level.
pub fn print_table(split: &str, r: &SplitReport, report: &EvalReport) {
    println!("{split} split, {} samples, trace units:", r.n);
    println!(
        "  {:<14} {:>12} {:>12} {:>9}",
        "predictor", "MAE", "RMSE", "R2"
    );
    for (name, m) in [
        ("convformer", &r.model_trace),
        ("naive", &r.naive_trace),
        ("ridge", &r.ridge_trace),
    ] {
        println!(
            "  {:<14} {:>12.4e} {:>12.4e} {:>9.4}",
            name, m.mae, m.rmse, m.r2
        );
    }
    let Some(rows) = report.reservations.iter().find(|s| s.split == split) else {
        return;
    };
    println!("{split} split, reservations (margins calibrated on the validation split):");
    println!(
        "  {:<31} {:>6} {:>9} {:>9} {:>11} {:>8} {:>11} {:>11}",
        "predictor", "Q", "coverage", "violate", "mean slack", "slack %", "shortfall", "reserved"
    );
    for row in &rows.rows {
        let m = &row.metrics;
        let q = if row.margin.is_some() {
            format!("{}", row.q)
        } else {
            "-".into()
        };
        println!(
            "  {:<31} {:>6} {:>9.4} {:>9.4} {:>11.3e} {:>7.2}% {:>11.3e} {:>11.4e}",
            row.label,
            q,
            m.coverage,
            m.violation_rate,
            m.mean_slack,
            m.slack_pct,
            m.mean_shortfall,
            m.total_reserved
        );
    }
    if !report.network_margin.is_empty() {
        println!("  convformer's margin: {}", report.network_margin);
    }
}
