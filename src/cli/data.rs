//! `convformer data inspect|plots|synth`.

use super::source_args::LayoutArgs;
use crate::data::{self, Format, LoadOptions, OnBadRow};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum DataCmd {
    /// Prints records, dropped rows, missing values per column and per-feature min/mean/max.
    Inspect {
        /// A CSV file or a directory of CSV files.
        path: PathBuf,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Writes feature histograms, an assigned-memory vs CPU scatter and a correlation heatmap (PNG).
    Plots {
        path: PathBuf,
        /// Directory for the PNG files (created if needed).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Writes a generated trace calibrated on the real rows.
    Synth {
        #[arg(long, value_enum)]
        format: Format,
        #[arg(long, default_value_t = 10_000)]
        rows: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub layout: LayoutArgs,
    #[arg(long, value_enum, default_value_t = OnBadRow::Error)]
    pub on_bad_row: OnBadRow,
}

impl LoadArgs {
    /// Loads `path` with a progress bar, printing what `--on-bad-row skip` skipped.
    pub fn load(&self, path: &Path) -> crate::Result<data::Dataset> {
        let format = match self.layout.format {
            Some(f) => f,
            None => data::detect_format(path)?,
        };
        let opts = LoadOptions {
            window: self.layout.window,
            horizon: self.layout.horizon,
            on_bad_row: self.on_bad_row,
            progress: true,
        };
        let ds = data::load(path, format, &opts)?;
        let skipped: usize = ds
            .report
            .dropped
            .iter()
            .filter(|(reason, _)| reason.as_str() != "missing target")
            .map(|(_, n)| n)
            .sum();
        if self.on_bad_row == OnBadRow::Skip {
            let by_column = data::inspect::bad_row_lines(&ds.report);
            eprintln!("skipped {skipped} bad rows. {}", by_column.join("; "));
        }
        Ok(ds)
    }
}

pub fn run(cmd: DataCmd) -> crate::Result<()> {
    match cmd {
        DataCmd::Inspect { path, load } => {
            let ds = load.load(&path)?;
            print!("{}", data::inspect::summarize(&ds));
        }
        DataCmd::Plots { path, out, load } => {
            let ds = load.load(&path)?;
            for file in data::plots::write_all(&ds, &out)? {
                println!("{}", file.display());
            }
        }
        DataCmd::Synth {
            format,
            rows,
            seed,
            out,
        } => {
            data::synth::write(format, rows, seed, &out)?;
            let bytes = std::fs::metadata(&out)?.len();
            println!(
                "wrote {rows} {format} rows ({bytes} bytes) to {}",
                out.display()
            );
        }
    }
    Ok(())
}
