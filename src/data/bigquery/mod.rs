//! Reader of the raw BigQuery `instance_usage` table of the 2019 trace, as users
//! export it: newline-delimited JSON (plain or gzip, as `bq extract` writes it) or
//! Parquet (snappy, gzip, zstd or uncompressed), one file, a directory of shards or a
//! glob. The rows become the same samples as the flattened instance_usage CSV: the
//! 26 [`SERIES_CHANNELS`](super::SERIES_CHANNELS), windows cut by `series::windows`.
//!
//! # Mapping
//!
//! | channel | BigQuery field |
//! |---|---|
//! | instance key | (`collection_id`, `instance_index`) |
//! | time | `start_time` (µs; rows are sorted by it per instance) |
//! | avg_cpu_usage, max_cpu_usage | `average_usage.cpus`, `maximum_usage.cpus` |
//! | avg_memory_usage, max_memory_usage | `average_usage.memory`, `maximum_usage.memory` |
//! | assigned_memory | `assigned_memory` |
//! | p0, p10 … p90_cpu_usage | `cpu_usage_distribution[0..10]` (its 11th value, p100, is no channel) |
//! | p91 … p99_cpu_usage | `tail_cpu_usage_distribution[0..9]` |
//! | memory_limit, cpu_limit | `resource_request.memory`, `.cpus` when the export joins them from `instance_events`, else missing |
//!
//! A null or absent value is missing (NaN), and so is every percentile of a null or
//! empty distribution; a distribution of another length is an error. INT64 values may
//! be JSON strings (as BigQuery writes them) or numbers; floats may be numbers or
//! numeric strings (NaN and `"NaN"` are missing, `"Infinity"` an error). Fields that no channel
//! uses are skipped unparsed, so nothing in them can reject a row. Used values are
//! checked like the CSV cells (`cells::plausible`: finite, not negative, at most 1.0).
//!
//! # Memory
//!
//! Files are read one after the other, NDJSON in blocks of 4 MiB of whole lines and
//! Parquet one row group per thread, so no file's text is ever held whole. What stays
//! is one `series::Row` (8 + 26 × 4 bytes) per 5-minute window per instance, until
//! the windows are cut; besides, the rows of the block or row groups being parsed.
//! The `Dataset` then materialises every window: W × 104 bytes per sample (1.2 kB at
//! W = 12, about the size of the row's JSON text), so it is the samples, not the
//! reading, that must fit in memory.
//!
//! # Dataset format
//!
//! The samples have the instance_usage layout, so `Dataset::format` is
//! [`Format::InstanceUsage`]: a model trained on CSV rows evaluates a BigQuery export
//! and vice versa. `LoadReport::source_format` records that the rows came from a
//! BigQuery export.

mod ndjson;
mod parquet;
pub mod write;

use super::cells::{self, CellError};
use super::series::{self, instance_key, Instances, Row, C, PERCENTILES};
use super::{DataError, Dataset, Format, LoadOptions, LoadReport, OnBadRow};
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Field paths of the table, as errors and skip counts name them.
pub(crate) mod field {
    pub const START_TIME: &str = "start_time";
    pub const COLLECTION_ID: &str = "collection_id";
    pub const INSTANCE_INDEX: &str = "instance_index";
    pub const AVERAGE_USAGE: &str = "average_usage";
    pub const MAXIMUM_USAGE: &str = "maximum_usage";
    pub const ASSIGNED_MEMORY: &str = "assigned_memory";
    pub const CPU_DISTRIBUTION: &str = "cpu_usage_distribution";
    pub const TAIL_DISTRIBUTION: &str = "tail_cpu_usage_distribution";
    pub const RESOURCE_REQUEST: &str = "resource_request";
    /// `[record, record.cpus, record.memory]` of the usage records.
    pub const AVERAGE: [&str; 3] = [AVERAGE_USAGE, "average_usage.cpus", "average_usage.memory"];
    pub const MAXIMUM: [&str; 3] = [MAXIMUM_USAGE, "maximum_usage.cpus", "maximum_usage.memory"];
    pub const REQUEST: [&str; 3] = [
        RESOURCE_REQUEST,
        "resource_request.cpus",
        "resource_request.memory",
    ];
}

/// Values in `cpu_usage_distribution` (p0, p10 … p100) and `tail_cpu_usage_distribution` (p91 … p99).
pub(crate) const DISTRIBUTION_LEN: usize = 11;
pub(crate) const TAIL_LEN: usize = 9;

/// Extensions of export shards in a directory.
const SHARD_EXTENSIONS: [&str; 5] = [".json", ".ndjson", ".json.gz", ".ndjson.gz", ".parquet"];

/// One value of a used field as either encoding holds it, before any check.
#[derive(Clone, Debug, Default)]
pub(crate) enum Value<'a> {
    #[default]
    Null,
    Int(u64),
    Negative(i64),
    Float(f64),
    Text(Cow<'a, str>),
    /// A value of another JSON type (an object where a number belongs), by its name.
    Wrong(&'static str),
}

/// A `RECORD { cpus, memory }` field; `Wrong` when the value is not a record.
#[derive(Clone, Debug, Default)]
pub(crate) struct Usage<'a> {
    pub(crate) cpus: Value<'a>,
    pub(crate) memory: Value<'a>,
    pub(crate) wrong: Option<&'static str>,
}

/// A `REPEATED FLOAT` field: the first `N` values and how many there were.
#[derive(Clone, Debug)]
pub(crate) struct Distribution<'a, const N: usize> {
    pub(crate) values: [Value<'a>; N],
    pub(crate) len: usize,
    pub(crate) wrong: Option<&'static str>,
}

impl<const N: usize> Default for Distribution<'_, N> {
    fn default() -> Self {
        Distribution {
            values: std::array::from_fn(|_| Value::Null),
            len: 0,
            wrong: None,
        }
    }
}

impl<'a, const N: usize> Distribution<'a, N> {
    pub(crate) fn push(&mut self, v: Value<'a>) {
        if self.len < N {
            self.values[self.len] = v;
        }
        self.len += 1;
    }
}

/// The used fields of one table row, from NDJSON or Parquet.
#[derive(Default)]
pub(crate) struct RawRow<'a> {
    pub(crate) start_time: Value<'a>,
    pub(crate) collection_id: Value<'a>,
    pub(crate) instance_index: Value<'a>,
    pub(crate) average_usage: Usage<'a>,
    pub(crate) maximum_usage: Usage<'a>,
    pub(crate) assigned_memory: Value<'a>,
    pub(crate) cpu_usage_distribution: Distribution<'a, DISTRIBUTION_LEN>,
    pub(crate) tail_cpu_usage_distribution: Distribution<'a, TAIL_LEN>,
    pub(crate) resource_request: Usage<'a>,
}

/// A used field that failed its check.
#[derive(Debug)]
pub(crate) struct BadField {
    pub(crate) column: String,
    pub(crate) text: String,
    pub(crate) error: CellError,
}

impl BadField {
    fn new(column: impl Into<String>, value: &Value, error: CellError) -> Self {
        BadField {
            column: column.into(),
            text: value_text(value),
            error,
        }
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Int(i) => i.to_string(),
        Value::Negative(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Text(t) => super::cell_text(t.as_bytes()),
        Value::Wrong(kind) => kind.to_string(),
    }
}

fn wrong_type(kind: &str, expected: &str) -> CellError {
    CellError::Malformed(format!("expected {expected}, found {kind}"))
}

/// An INT64 key or time: present, non-negative, integral.
fn unsigned(column: &str, v: &Value) -> Result<u64, BadField> {
    let bad = |e| BadField::new(column, v, e);
    match v {
        Value::Int(i) => Ok(*i),
        Value::Text(t) => cells::parse_u64(t.as_bytes()).map(|i| i.value).map_err(bad),
        Value::Float(f) => cells::parse_u64(f.to_string().as_bytes())
            .map(|i| i.value)
            .map_err(bad),
        Value::Negative(_) => Err(bad(CellError::Malformed(
            "expected an unsigned INT64".into(),
        ))),
        Value::Null => Err(bad(CellError::Malformed(
            "required INT64, found null or no value".into(),
        ))),
        Value::Wrong(kind) => Err(bad(wrong_type(kind, "an INT64"))),
    }
}

/// A usage, size or limit in trace units; NaN when null.
fn usage(column: &str, v: &Value) -> Result<f32, BadField> {
    let bad = |e| BadField::new(column, v, e);
    let x = match v {
        // NaN is missing, as the CSV's `nan` text is (BigQuery's FLOAT can hold it).
        Value::Null => return Ok(f32::NAN),
        Value::Float(f) if f.is_nan() => return Ok(f32::NAN),
        Value::Int(i) => *i as f64,
        Value::Negative(_) => return Err(bad(CellError::Negative)),
        Value::Float(f) => *f,
        Value::Text(t) => return cells::parse_usage(t.as_bytes()).map_err(bad),
        Value::Wrong(kind) => return Err(bad(wrong_type(kind, "a FLOAT"))),
    };
    if !x.is_finite() {
        return Err(bad(CellError::NonFinite));
    }
    if x < 0.0 {
        return Err(bad(CellError::Negative));
    }
    // Checked in f64: 1e300 is implausible, not an f32 overflow.
    if x > cells::MAX_NORMALISED as f64 {
        return Err(bad(CellError::Implausible(x as f32)));
    }
    Ok(x as f32)
}

/// `record.cpus` and `record.memory` into `[cpus, memory]`; `paths` as in [`field::AVERAGE`].
fn record(paths: [&str; 3], r: &Usage) -> Result<[f32; 2], BadField> {
    let [column, cpus, memory] = paths;
    if let Some(kind) = r.wrong {
        return Err(BadField::new(
            column,
            &Value::Wrong(kind),
            wrong_type(kind, "a RECORD {cpus, memory}"),
        ));
    }
    Ok([usage(cpus, &r.cpus)?, usage(memory, &r.memory)?])
}

/// The first `out.len()` values of a distribution of exactly `N`; all NaN when null or empty.
fn distribution<const N: usize>(
    column: &str,
    d: &Distribution<N>,
    out: &mut [f32],
) -> Result<(), BadField> {
    if let Some(kind) = d.wrong {
        return Err(BadField::new(
            column,
            &Value::Wrong(kind),
            wrong_type(kind, "a REPEATED FLOAT array"),
        ));
    }
    if d.len == 0 {
        out.fill(f32::NAN);
        return Ok(());
    }
    if d.len != N {
        return Err(BadField {
            column: column.into(),
            text: format!("{} values", d.len),
            error: CellError::Malformed(format!("expected {N} values or none")),
        });
    }
    for (k, (slot, v)) in out.iter_mut().zip(&d.values).enumerate() {
        *slot = usage(column, v).map_err(|mut bad| {
            bad.text = format!("[{k}] = {}", bad.text);
            bad
        })?;
    }
    Ok(())
}

/// Checks a row's used fields and maps them to its instance and channels (module docs).
pub(crate) fn to_row(raw: &RawRow) -> Result<((u64, u64), Row), BadField> {
    let time = unsigned(field::START_TIME, &raw.start_time)?;
    let collection = unsigned(field::COLLECTION_ID, &raw.collection_id)?;
    let instance = unsigned(field::INSTANCE_INDEX, &raw.instance_index)?;
    let [avg_cpu, avg_memory] = record(field::AVERAGE, &raw.average_usage)?;
    let [max_cpu, max_memory] = record(field::MAXIMUM, &raw.maximum_usage)?;
    let [cpu_limit, memory_limit] = record(field::REQUEST, &raw.resource_request)?;
    let mut values = [f32::NAN; C];
    values[..5].copy_from_slice(&[
        avg_cpu,
        max_cpu,
        avg_memory,
        max_memory,
        usage(field::ASSIGNED_MEMORY, &raw.assigned_memory)?,
    ]);
    let (head, tail) = values[PERCENTILES].split_at_mut(DISTRIBUTION_LEN - 1);
    distribution(field::CPU_DISTRIBUTION, &raw.cpu_usage_distribution, head)?;
    distribution(
        field::TAIL_DISTRIBUTION,
        &raw.tail_cpu_usage_distribution,
        tail,
    )?;
    values[PERCENTILES.end] = memory_limit;
    values[PERCENTILES.end + 1] = cpu_limit;
    Ok(((collection, instance), Row { time, values }))
}

/// What one record of a file became.
pub(crate) enum Parsed {
    Row((u64, u64), Row),
    /// A row that cannot be used: its skip reason, failed column (None: the whole
    /// record) and the located error.
    Bad {
        reason: &'static str,
        column: Option<String>,
        error: DataError,
    },
}

impl Parsed {
    /// `to_row`'s answer, with a bad field located by `locate(column, text, why)`.
    pub(crate) fn from_raw(
        raw: &RawRow,
        locate: impl FnOnce(String, String, String) -> DataError,
    ) -> Parsed {
        match to_row(raw) {
            Ok((key, row)) => Parsed::Row(key, row),
            Err(bad) => Parsed::Bad {
                reason: bad.error.reason(),
                column: Some(bad.column.clone()),
                error: locate(bad.column, bad.text, bad.error.why()),
            },
        }
    }
}

/// Rows of every file read so far, by instance, and the counts of the load.
pub(crate) struct Collector<'a> {
    instances: HashMap<(u64, u64), Vec<Row>>,
    report: LoadReport,
    opts: &'a LoadOptions,
}

impl<'a> Collector<'a> {
    fn new(opts: &'a LoadOptions) -> Self {
        Collector {
            instances: HashMap::new(),
            report: LoadReport {
                missing: vec![0; C],
                source_format: Some(Format::BigQuery),
                ..LoadReport::default()
            },
            opts,
        }
    }

    /// Takes a file's records in file order: rows are kept, a bad one stops the load
    /// (or is counted under `--on-bad-row skip`).
    pub(crate) fn take(&mut self, parsed: Vec<Parsed>) -> Result<(), DataError> {
        for p in parsed {
            self.report.records += 1;
            match p {
                Parsed::Row(key, row) => {
                    for (m, v) in self.report.missing.iter_mut().zip(&row.values) {
                        *m += v.is_nan() as usize;
                    }
                    self.instances.entry(key).or_default().push(row);
                }
                Parsed::Bad {
                    reason,
                    column,
                    error,
                } => match self.opts.on_bad_row {
                    OnBadRow::Error => return Err(error),
                    OnBadRow::Skip => self.report.drop_bad(reason, column.as_deref()),
                },
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<Dataset, DataError> {
        if self.report.records == 0 {
            return Err(DataError::Invalid(format!(
                "no rows in the BigQuery export ({} files)",
                self.report.files.len()
            )));
        }
        let instances: Instances = self
            .instances
            .into_iter()
            .map(|((collection, instance), rows)| (instance_key(collection, instance), rows))
            .collect();
        Ok(series::windows(instances, self.report, self.opts))
    }
}

/// How a file is encoded, told from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Ndjson,
    GzipNdjson,
    Parquet,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const PARQUET_MAGIC: &[u8; 4] = b"PAR1";

fn encoding_of(file: &Path) -> Result<Encoding, DataError> {
    let mut head = [0u8; 4];
    let mut f = std::fs::File::open(file).map_err(|e| DataError::io(file, e))?;
    let n = read_up_to(&mut f, &mut head).map_err(|e| DataError::io(file, e))?;
    Ok(if head[..n].starts_with(&GZIP_MAGIC) {
        Encoding::GzipNdjson
    } else if head[..n] == PARQUET_MAGIC[..] {
        Encoding::Parquet
    } else {
        Encoding::Ndjson
    })
}

/// Reads until `buf` is full or the stream ends; the count read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Whether a file holds a BigQuery `instance_usage` export: Parquet, or a first
/// (decompressed) line that is a JSON object with the table's keys.
pub(crate) fn is_export(file: &Path) -> Result<bool, DataError> {
    let first_line = match encoding_of(file)? {
        Encoding::Parquet => return Ok(true),
        Encoding::Ndjson => ndjson::first_line(file, false)?,
        Encoding::GzipNdjson => ndjson::first_line(file, true)?,
    };
    let Ok(serde_json::Value::Object(keys)) = serde_json::from_slice(&first_line) else {
        return Ok(false);
    };
    Ok([
        field::START_TIME,
        field::COLLECTION_ID,
        field::INSTANCE_INDEX,
    ]
    .iter()
    .all(|k| keys.contains_key(*k))
        && (keys.contains_key(field::MAXIMUM_USAGE) || keys.contains_key(field::AVERAGE_USAGE)))
}

/// Whether `path` is a glob pattern rather than a file name.
fn is_glob(path: &Path) -> bool {
    !path.exists() && path.to_string_lossy().contains(['*', '?', '['])
}

/// The sorted matches of a glob pattern, or None when `path` is no pattern.
pub(crate) fn glob_files(path: &Path) -> Result<Option<Vec<PathBuf>>, DataError> {
    if !is_glob(path) {
        return Ok(None);
    }
    let pattern = path.to_string_lossy();
    let matches = glob::glob(&pattern)
        .map_err(|e| DataError::Invalid(format!("bad glob pattern {pattern:?}: {e}")))?;
    let mut files = Vec::new();
    for m in matches {
        let p = m.map_err(|e| DataError::io(e.path().to_path_buf(), e.into()))?;
        if p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(DataError::Invalid(format!("no file matches {pattern:?}")));
    }
    Ok(Some(files))
}

/// The file itself, a glob's matches, or the sorted export shards of a directory
/// (`*.json`, `*.ndjson`, `*.json.gz`, `*.ndjson.gz`, `*.parquet`).
pub(crate) fn input_files(path: &Path) -> Result<Vec<PathBuf>, DataError> {
    super::matching_files(
        path,
        &SHARD_EXTENSIONS,
        "export shard (*.json, *.ndjson, *.json.gz, *.ndjson.gz, *.parquet)",
    )
}

/// Loads export files in the given order (each one's encoding told from its content).
pub(crate) fn load_files(files: &[PathBuf], opts: &LoadOptions) -> Result<Dataset, DataError> {
    series::check_layout(opts)?;
    let mut collector = Collector::new(opts);
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let bar = super::byte_progress(total, opts.progress, "loading BigQuery export");
    for file in files {
        match encoding_of(file)? {
            Encoding::Parquet => parquet::read_file(file, &mut collector)?,
            encoding => {
                let f = std::fs::File::open(file).map_err(|e| DataError::io(file, e))?;
                let reader = std::io::BufReader::with_capacity(1 << 16, f);
                if encoding == Encoding::GzipNdjson {
                    let gz = flate2::bufread::MultiGzDecoder::new(reader);
                    ndjson::read(gz, file, &mut collector)?;
                } else {
                    ndjson::read(reader, file, &mut collector)?;
                }
            }
        }
        bar.inc(std::fs::metadata(file).map(|m| m.len()).unwrap_or(0));
        collector.report.files.push(file.clone());
    }
    bar.finish_and_clear();
    collector.report.bytes = total;
    collector.finish()
}

/// Loads NDJSON (plain or gzip) held in memory; `label` names it in errors.
pub(crate) fn load_bytes(
    bytes: &[u8],
    label: &Path,
    opts: &LoadOptions,
) -> Result<Dataset, DataError> {
    series::check_layout(opts)?;
    let mut collector = Collector::new(opts);
    if bytes.starts_with(PARQUET_MAGIC) {
        return Err(DataError::file(
            label,
            "Parquet is read from files only: write it to a file first",
        ));
    }
    if bytes.starts_with(&GZIP_MAGIC) {
        ndjson::read(
            flate2::bufread::MultiGzDecoder::new(bytes),
            label,
            &mut collector,
        )?;
    } else {
        ndjson::read(bytes, label, &mut collector)?;
    }
    collector.report.files.push(label.to_path_buf());
    collector.report.bytes = bytes.len() as u64;
    collector.finish()
}
