//! The Borg trace data pipeline: loaders for the Kaggle extract, the
//! per-instance 5-minute series and BigQuery exports of them, features, splits, preprocessing fitted on the
//! training split only, a calibrated trace generator, inspection and charts.
//!
//! Every sample is a `(seq_len, channels)` row-major array of raw trace values
//! (NaN = missing) with a target in trace units (`maximum_usage['memory']` or the
//! next windows' `max_memory_usage`).

pub mod bigquery;
mod cells;
mod error;
pub mod inspect;
mod kaggle;
pub mod plots;
mod preprocess;
mod series;
mod split;
pub mod spreadsheet;
pub mod synth;

pub use error::DataError;
pub use kaggle::KAGGLE_FEATURES;
pub use preprocess::{PreprocessOptions, Preprocessor};
pub use series::{SERIES_CHANNELS, WINDOW_STEP_US};
pub use split::{split, SplitKind, Splits};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// The trace formats the pipeline reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// The tabular Kaggle extract `borg_traces_data.csv` (34 columns, one row = one sample).
    Kaggle,
    /// Raw `instance_usage` rows: one 5-minute window per row, samples are windows of W rows.
    InstanceUsage,
    /// The BigQuery `instance_usage` table exported as NDJSON or Parquet (see
    /// [`bigquery`]); its samples have the `InstanceUsage` layout.
    #[value(name = "bigquery")]
    #[serde(rename = "bigquery")]
    BigQuery,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Kaggle => "kaggle",
            Format::InstanceUsage => "instance-usage",
            Format::BigQuery => "bigquery",
        })
    }
}

/// What to do with a row that cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OnBadRow {
    /// Stop at the first bad row with an error naming file, line, column and text.
    #[default]
    Error,
    /// Drop bad rows and count them by reason in [`LoadReport::dropped`].
    Skip,
}

#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// History length W of a series sample, in 5-minute windows.
    pub window: usize,
    /// The target is the max memory over the next H windows.
    pub horizon: usize,
    pub on_bad_row: OnBadRow,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            window: 12,
            horizon: 1,
            on_bad_row: OnBadRow::Error,
            progress: false,
        }
    }
}

/// What a load read, kept and dropped.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    pub files: Vec<PathBuf>,
    pub bytes: u64,
    /// CSV records read (header excluded), good or bad.
    pub records: usize,
    /// Samples kept in the dataset.
    pub samples: usize,
    /// Rows or samples left out, by reason ("missing target", "malformed cell", ...).
    pub dropped: BTreeMap<String, usize>,
    /// Per feature (kaggle) or channel (series): records read whose value is missing.
    pub missing: Vec<usize>,
    /// Bad rows skipped under `--on-bad-row skip`, by the column that failed and reason;
    /// "(record)" for a record that is not well-formed as a whole.
    #[serde(default)]
    pub bad_cells: BTreeMap<String, BTreeMap<String, usize>>,
    /// Per integer column: values read from a float with fewer significant digits than
    /// the integer (`1.68846E+11`), so ids that differed may have become equal.
    #[serde(default)]
    pub rounded: BTreeMap<String, usize>,
    /// The format of the files when it is not `Dataset::format` (a BigQuery export
    /// loads as instance_usage samples).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_format: Option<Format>,
}

impl LoadReport {
    pub(crate) fn drop_one(&mut self, reason: &str) {
        self.drop_many(reason, 1);
    }

    /// Counts `n` dropped rows or samples under `reason` (nothing when `n` is 0).
    pub(crate) fn drop_many(&mut self, reason: &str, n: usize) {
        if n > 0 {
            *self.dropped.entry(reason.to_string()).or_default() += n;
        }
    }

    /// Counts a skipped bad row under its reason and the column that failed.
    pub(crate) fn drop_bad(&mut self, reason: &str, column: Option<&str>) {
        self.drop_one(reason);
        let column = column.unwrap_or("(record)").to_string();
        *self
            .bad_cells
            .entry(column)
            .or_default()
            .entry(reason.to_string())
            .or_default() += 1;
    }

    pub(crate) fn count_rounded(&mut self, column: &str) {
        *self.rounded.entry(column.to_string()).or_default() += 1;
    }

    /// Adds another part's counts (a file read in parallel) to these.
    pub(crate) fn merge_counts(&mut self, other: LoadReport) {
        self.records += other.records;
        for (reason, n) in other.dropped {
            *self.dropped.entry(reason).or_default() += n;
        }
        for (column, reasons) in other.bad_cells {
            let into = self.bad_cells.entry(column).or_default();
            for (reason, n) in reasons {
                *into.entry(reason).or_default() += n;
            }
        }
        for (m, n) in self.missing.iter_mut().zip(other.missing) {
            *m += n;
        }
        for (column, n) in other.rounded {
            *self.rounded.entry(column).or_default() += n;
        }
    }

    pub fn dropped_total(&self) -> usize {
        self.dropped.values().sum()
    }
}

/// Samples ready for preprocessing; see the module docs for the layout.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub format: Format,
    pub seq_len: usize,
    pub channels: usize,
    /// n × seq_len × channels, raw (unscaled), NaN = missing.
    pub inputs: Vec<f32>,
    /// n targets in trace units.
    pub targets: Vec<f32>,
    /// The naive prediction per sample in trace units (kaggle: average memory; series: last window's max memory).
    pub naive: Vec<f32>,
    /// A printable id per sample ("collection/instance@time").
    pub ids: Vec<String>,
    /// collection_id (kaggle) or instance key (series), for group splits.
    pub groups: Vec<u64>,
    /// Time of the sample (µs), for chronological splits.
    pub order: Vec<u64>,
    /// Kaggle: one name per sequence position; series: one name per channel.
    pub feature_names: Vec<String>,
    pub report: LoadReport,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Values per sample: seq_len × channels.
    pub fn sample_size(&self) -> usize {
        self.seq_len * self.channels
    }

    /// The raw `(seq_len, channels)` array of sample `i`.
    pub fn sample(&self, i: usize) -> &[f32] {
        let n = self.sample_size();
        &self.inputs[i * n..(i + 1) * n]
    }

    /// Number of distinct features: sequence positions for kaggle rows, channels for series.
    pub fn num_features(&self) -> usize {
        self.feature_names.len()
    }

    /// Index of the feature that value `j` of a sample (`j < sample_size`) belongs to.
    pub fn feature_of(&self, j: usize) -> usize {
        match self.format {
            Format::Kaggle => j,
            Format::InstanceUsage | Format::BigQuery => j % self.channels,
        }
    }
}

/// Loads a file, a glob's matches, or every `*.csv` file (BigQuery: export shard) of
/// a directory, sorted by name.
pub fn load(path: &Path, format: Format, opts: &LoadOptions) -> Result<Dataset, DataError> {
    load_paths(&[path.to_path_buf()], format, opts)
}

/// Loads several files (or directories of `*.csv` files) into one dataset, in the given order.
pub fn load_paths(
    paths: &[PathBuf],
    format: Format,
    opts: &LoadOptions,
) -> Result<Dataset, DataError> {
    let mut files = Vec::new();
    for path in paths {
        files.extend(match format {
            Format::BigQuery => bigquery::input_files(path)?,
            _ => csv_files(path)?,
        });
    }
    if files.is_empty() {
        return Err(DataError::Invalid("no input files given".into()));
    }
    match format {
        Format::Kaggle => kaggle::load_files(&files, opts),
        Format::InstanceUsage => series::load_files(&files, opts),
        Format::BigQuery => bigquery::load_files(&files, opts),
    }
}

/// Loads CSV text held in memory (an embedded trace); `label` names it in errors.
pub fn load_from_memory(
    bytes: &[u8],
    label: &Path,
    format: Format,
    opts: &LoadOptions,
) -> Result<Dataset, DataError> {
    let len = bytes.len() as u64;
    match format {
        Format::Kaggle => {
            let mut builder = kaggle::Builder::new();
            builder.read(bytes, label, len, opts)?;
            Ok(builder.finish())
        }
        Format::InstanceUsage => {
            series::load_streams(vec![(label.to_path_buf(), len, bytes)], opts)
        }
        Format::BigQuery => bigquery::load_bytes(bytes, label, opts),
    }
}

/// Tells the format from the content of the file (or of the first file of a
/// directory or glob): a CSV header, or a BigQuery export (Parquet, or NDJSON
/// plain or gzip whose first line has the table's keys).
pub fn detect_format(path: &Path) -> Result<Format, DataError> {
    let files = match csv_files(path) {
        Ok(files) => files,
        // A directory of export shards holds no CSV file.
        Err(e) => bigquery::input_files(path).map_err(|_| match e {
            DataError::File { file, .. } => DataError::file(
                file,
                "directory holds no *.csv file and no BigQuery export shard",
            ),
            other => other,
        })?,
    };
    let file = &files[0];
    if bigquery::is_export(file)? {
        return Ok(Format::BigQuery);
    }
    let f = std::fs::File::open(file).map_err(|e| DataError::io(file, e))?;
    let mut header = Vec::new();
    BufReader::new(f)
        .read_until(b'\n', &mut header)
        .map_err(|e| DataError::io(file, e))?;
    let header = String::from_utf8_lossy(&header);
    let names: Vec<&str> = header.trim_end().split(',').map(str::trim).collect();
    let has = |c: &str| names.contains(&c);
    if has("maximum_usage") && has("average_usage") {
        Ok(Format::Kaggle)
    } else if has("max_memory_usage") && has("avg_memory_usage") {
        Ok(Format::InstanceUsage)
    } else if header.trim().is_empty() {
        Err(DataError::file(
            file,
            "empty file: no header to tell the format from",
        ))
    } else {
        Err(DataError::file(
            file,
            "unknown format: expected a kaggle header (with `maximum_usage`, `average_usage`), \
             an instance_usage header (with `max_memory_usage`, `avg_memory_usage`) \
             or a BigQuery instance_usage export (NDJSON, gzip NDJSON or Parquet)",
        ))
    }
}

/// The file itself, a glob's sorted matches, or the sorted `*.csv` files of a directory.
pub(crate) fn csv_files(path: &Path) -> Result<Vec<PathBuf>, DataError> {
    matching_files(path, &[".csv"], "*.csv file")
}

/// The file itself, a glob's sorted matches, or the sorted files of a directory whose
/// names end in one of `suffixes` (any case); `what` names them when there is none.
pub(crate) fn matching_files(
    path: &Path,
    suffixes: &[&str],
    what: &str,
) -> Result<Vec<PathBuf>, DataError> {
    if let Some(files) = bigquery::glob_files(path)? {
        return Ok(files);
    }
    let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| DataError::io(path, e))? {
        let p = entry.map_err(|e| DataError::io(path, e))?.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase());
        if p.is_file() && name.is_some_and(|n| suffixes.iter().any(|s| n.ends_with(s))) {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(DataError::file(path, format!("directory holds no {what}")));
    }
    Ok(files)
}

/// A progress bar over bytes, hidden unless asked for.
pub(crate) fn byte_progress(total: u64, show: bool, what: &str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// Reads the header and finds the required columns; an empty file names the
/// header it expected (`format`).
pub(crate) fn read_required_columns<R: std::io::Read>(
    csv: &mut csv::Reader<R>,
    file: &Path,
    required: &[&str],
    format: &str,
) -> Result<Vec<usize>, DataError> {
    let header = csv.byte_headers().map_err(|e| record_error(file, e))?;
    if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
        return Err(DataError::file(
            file,
            format!("empty file: expected {format} header"),
        ));
    }
    column_indices(file, header, required)
}

/// Looks up required columns by name; a missing one lists what was expected and found.
fn column_indices(
    file: &Path,
    header: &csv::ByteRecord,
    required: &[&str],
) -> Result<Vec<usize>, DataError> {
    let found: Vec<String> = header
        .iter()
        // A byte-order mark (Excel's UTF-8 export) is not part of the first name.
        .map(|h| {
            String::from_utf8_lossy(h)
                .trim_start_matches('\u{feff}')
                .trim()
                .to_string()
        })
        .collect();
    find_columns(file, &found, required)
}

/// The position of each required column among the `found` names of `file`
/// (a CSV header or a Parquet schema); a missing one lists what was expected
/// and found.
pub(crate) fn find_columns(
    file: &Path,
    found: &[String],
    required: &[&str],
) -> Result<Vec<usize>, DataError> {
    let mut idx = Vec::with_capacity(required.len());
    let mut missing = Vec::new();
    for name in required {
        match found.iter().position(|f| f == name) {
            Some(i) => idx.push(i),
            None => missing.push(name.to_string()),
        }
    }
    if !missing.is_empty() {
        return Err(DataError::MissingColumns {
            file: file.to_path_buf(),
            missing,
            expected: required.iter().map(|s| s.to_string()).collect(),
            found: found.to_vec(),
        });
    }
    Ok(idx)
}

/// Text of a cell for an error message, cut to a readable length.
fn cell_text(cell: &[u8]) -> String {
    let text = String::from_utf8_lossy(cell);
    if text.chars().count() > 120 {
        format!("{}…", text.chars().take(120).collect::<String>())
    } else {
        text.into_owned()
    }
}

/// A cell that failed, located: the physical line where its record starts and, for a
/// record over several lines, the line where the cell itself starts.
pub(crate) fn cell_error(
    file: &Path,
    rec: &csv::ByteRecord,
    field: usize,
    column: &str,
    e: &cells::CellError,
) -> DataError {
    let line = rec.position().map_or(0, |p| p.line());
    // Line breaks can only stand inside quoted fields, and they are kept in the fields.
    let breaks: usize = rec
        .iter()
        .take(field)
        .map(|f| f.iter().filter(|&&b| b == b'\n').count())
        .sum();
    DataError::Cell {
        file: file.to_path_buf(),
        line,
        cell_line: line + breaks as u64,
        column: column.to_string(),
        text: cell_text(rec.get(field).unwrap_or(b"")),
        why: e.why(),
    }
}

/// A csv crate error as a [`DataError`] with the record's line.
pub(crate) fn record_error(file: &Path, e: csv::Error) -> DataError {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
    match e.into_kind() {
        csv::ErrorKind::Io(source) => DataError::io(file, source),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => DataError::Record {
            file: file.to_path_buf(),
            line,
            why: format!("{len} fields where the header has {expected_len}"),
        },
        other => DataError::Record {
            file: file.to_path_buf(),
            line,
            why: format!("{other:?}"),
        },
    }
}

/// FNV-1a: a stable 64-bit group id for a textual instance key.
pub(crate) fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
