//! `convformer eval`: a trained run against the baselines on a data set.

use std::path::PathBuf;

use crate::data::{detect_format, Dataset, Format};
use crate::error::Result;
use crate::train::run::{evaluate, forecasts, DataSource, LoadedRun};

use super::device_choice::{resolve, DeviceArg};

/// What `eval` and `predict` both read: a trained run, a data set for it and
/// the device the network runs on.
#[derive(clap::Args, Debug)]
pub struct RunInput {
    /// A run directory written by `convformer train`.
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub data: PathBuf,
    /// Layout of --data (detected from its header when left out).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Where the network runs (auto: CUDA when usable, else the CPU).
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceArg,
}

impl RunInput {
    /// The run with its parameters on the chosen device, and --data loaded
    /// with the run's window and horizon, in its own (or the given) format.
    pub fn open(&self) -> Result<(LoadedRun, Dataset)> {
        let device = resolve(self.device)?;
        let mut run = LoadedRun::open(&self.model)?;
        run.store = run.store.to_device(&device)?;
        let format = match self.format {
            Some(f) => f,
            None => detect_format(&self.data)?,
        };
        let source = DataSource {
            path: Some(self.data.clone()),
            format,
            ..run.run.data.clone()
        };
        let ds = source.load(false)?;
        Ok((run, ds))
    }
}

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub input: RunInput,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Split --data into train/val/test as at training time and report each
    /// (default: every window of --data is evaluated, as new instances).
    #[arg(long)]
    pub split: bool,
    /// Also draw reservation.png (slack against violation rate) into DIR.
    #[arg(long)]
    pub plots: Option<PathBuf>,
}

pub fn run(args: &EvalArgs) -> Result<()> {
    let (run, ds) = args.input.open()?;
    let (data, evaluated) = if args.split {
        (run.prepare(&ds)?, "--data split as at training time")
    } else {
        (
            run.prepare_all(&ds)?,
            "every window of --data (nothing fitted on it)",
        )
    };
    let batch = run.run.train.eval_batch_size;
    let report = evaluate(
        &run.model,
        &run.store,
        &data,
        &run.baselines,
        evaluated,
        &run.run.train.loss.to_string(),
        batch,
    )?;
    if let Some(dir) = &args.plots {
        std::fs::create_dir_all(dir).map_err(|e| {
            crate::error::Error::Invalid(format!("cannot create {}: {e}", dir.display()))
        })?;
        // Margins swept on the run's own validation split, drawn on --data's windows.
        let own = run.prepare(&run.run.data.load(false)?)?;
        let (ridge, spread) = (&run.baselines.ridge, Some(&run.baselines.spread));
        let val = forecasts(&run.model, &run.store, &own, ridge, spread, &own.val, batch)?;
        let test = forecasts(
            &run.model, &run.store, &data, ridge, spread, &data.test, batch,
        )?;
        let path = dir.join("reservation.png");
        crate::train::reservation_plot::tradeoff(&path, &val, &test, run.baselines.rule)?;
        eprintln!("wrote {}", path.display());
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("metrics serialise")
        );
        return Ok(());
    }
    println!("evaluated: {}", report.evaluated);
    for (name, split) in [
        ("train", &report.train),
        ("val", &report.val),
        ("test", &report.test),
    ] {
        if let Some(r) = split {
            super::train::print_table(name, r, &report);
        }
    }
    Ok(())
}
