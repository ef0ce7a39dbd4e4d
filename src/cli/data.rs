//! `convformer data inspect|plots|synth`.

use super::source_args::LayoutArgs;
use crate::data::bigquery::write::{ExportOptions, ParquetCompression};
use crate::data::{self, Format, LoadOptions, OnBadRow};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum DataCmd {
    /// Prints records, dropped rows, missing values per column and per-feature min/mean/max.
    Inspect {
        /// A trace file, a directory of them, or a glob of export shards.
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
    /// Writes a generated trace calibrated on the real rows; `--format bigquery`
    /// writes a raw-table export (*.json, *.json.gz or *.parquet by the extension of --out).
    Synth {
        #[arg(long, value_enum)]
        format: Format,
        #[arg(long, default_value_t = 10_000)]
        rows: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
        /// With `--format bigquery`: re-encode these instance_usage CSV rows (a file or
        /// directory) instead of generating rows.
        #[arg(long)]
        from: Option<PathBuf>,
        /// Codec of a Parquet export.
        #[arg(long, value_enum, default_value_t = ParquetCompression::Snappy)]
        parquet_compression: ParquetCompression,
        /// Write the CSV as a spreadsheet re-saves it: integers as `d.ddddE+nn` (ids and
        /// timestamps lose digits), other numbers to nine significant digits.
        #[arg(long)]
        spreadsheet: bool,
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
            from,
            parquet_compression,
            spreadsheet,
        } => {
            if spreadsheet && (format == Format::BigQuery || from.is_some()) {
                return Err(crate::Error::Invalid(
                    "--spreadsheet rewrites a generated CSV (--format kaggle or instance-usage); \
                     a BigQuery export has typed cells"
                        .into(),
                ));
            }
            let rows = match (format, from) {
                (Format::BigQuery, Some(from)) => {
                    let opts = ExportOptions {
                        compression: parquet_compression,
                        quirks: None,
                    };
                    data::bigquery::write::reencode(&from, &out, &opts)?
                }
                (Format::BigQuery, None) => {
                    data::synth::write_bigquery(rows, seed, &out, parquet_compression)?
                }
                (_, Some(_)) => return Err(crate::Error::Invalid(
                    "--from re-encodes CSV rows as a BigQuery export: it needs --format bigquery"
                        .into(),
                )),
                (_, None) if spreadsheet => {
                    data::synth::write_spreadsheet(format, rows, seed, &out)?;
                    rows
                }
                (_, None) => {
                    data::synth::write(format, rows, seed, &out)?;
                    rows
                }
            };
            let bytes = std::fs::metadata(&out)?.len();
            println!(
                "wrote {rows} {format} rows ({bytes} bytes) to {}",
                out.display()
            );
        }
    }
    Ok(())
}
