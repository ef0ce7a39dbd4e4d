//! Writes instance_usage CSV rows (the generator's, or files such as the shared
//! series) as a BigQuery `instance_usage` export, in the table's schema: INT64 as
//! JSON strings (as BigQuery writes them), nested records, repeated distributions
//! with their p100 value, null fields left out. The output's extension chooses the
//! encoding: `.json`/`.ndjson`, `.json.gz`/`.ndjson.gz` or `.parquet`.
//!
//! What the CSV lacks is filled in: `end_time` = `time` + 5 minutes, the p100 value is
//! the largest of `max_cpu_usage` and the percentiles, `resource_request` holds
//! `memory_limit` and `cpu_limit`; a window whose percentiles are all -1 (the CSV's
//! "no distribution") has empty distributions.

use super::DISTRIBUTION_LEN;
use crate::data::cells::{self, CellError};
use crate::data::series::PERCENTILES;
use crate::data::split::SplitMix64;
use crate::data::{cell_text, csv_files, read_required_columns, record_error, DataError};
use crate::data::{SERIES_CHANNELS, WINDOW_STEP_US};
use arrow_array::builder::{Float64Builder, ListBuilder};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StructArray};
use arrow_schema::{DataType, Field};
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;

/// The codec of a Parquet export (BigQuery's default is snappy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ParquetCompression {
    #[default]
    Snappy,
    Gzip,
    Zstd,
    Uncompressed,
}

#[derive(Clone, Debug, Default)]
pub struct ExportOptions {
    pub compression: ParquetCompression,
    /// Seed for the generator's extra cases (null and empty distributions, null
    /// records, CPI figures); None re-encodes the rows exactly as they are.
    pub quirks: Option<u64>,
}

/// Rows per Parquet row group (and record batch): several groups per file let the
/// reader decode them in parallel.
const ROWS_PER_GROUP: usize = 65_536;

/// One table row as written; None = null.
#[derive(Clone, Debug, Default)]
struct ExportRow {
    start_time: i64,
    end_time: i64,
    collection_id: i64,
    instance_index: i64,
    machine_id: Option<i64>,
    alloc_collection_id: Option<i64>,
    alloc_instance_index: Option<i64>,
    collection_type: Option<i64>,
    /// `[cpus, memory]`.
    average_usage: [Option<f64>; 2],
    maximum_usage: [Option<f64>; 2],
    /// None: a null `random_sample_usage` record; Some(None): a record with null cpus.
    random_sample_cpus: Option<Option<f64>>,
    assigned_memory: Option<f64>,
    page_cache_memory: Option<f64>,
    cycles_per_instruction: Option<f64>,
    memory_accesses_per_instruction: Option<f64>,
    sample_rate: Option<f64>,
    cpu_usage_distribution: Option<Vec<Option<f64>>>,
    tail_cpu_usage_distribution: Option<Vec<Option<f64>>>,
    /// `[cpus, memory]` of the latest request, when joined.
    resource_request: Option<[Option<f64>; 2]>,
}

/// Re-encodes the instance_usage CSV rows of `from` (a file or a directory of them)
/// into `out`; the number of rows written.
pub fn reencode(from: &Path, out: &Path, opts: &ExportOptions) -> Result<usize, DataError> {
    let mut sink = Sink::create(out, opts.compression)?;
    let mut rows = 0;
    for file in csv_files(from)? {
        let f = std::fs::File::open(&file).map_err(|e| DataError::io(&file, e))?;
        rows += copy_rows(std::io::BufReader::new(f), &file, &mut sink, opts)?;
    }
    sink.finish(out)?;
    Ok(rows)
}

/// Re-encodes instance_usage CSV text (`label` names it in errors) into `out`.
pub fn export_csv(
    csv: impl Read,
    label: &Path,
    out: &Path,
    opts: &ExportOptions,
) -> Result<usize, DataError> {
    let mut sink = Sink::create(out, opts.compression)?;
    let rows = copy_rows(csv, label, &mut sink, opts)?;
    sink.finish(out)?;
    Ok(rows)
}

/// Columns read from the CSV: these keys, then the [`SERIES_CHANNELS`].
const KEY_COLUMNS: [&str; 3] = ["time", "collection_id", "instance_index"];
/// INT64 and FLOAT columns copied when the CSV has them.
const OPTIONAL_INTS: [&str; 4] = [
    "machine_id",
    "alloc_collection_id",
    "alloc_instance_index",
    "collection_type",
];
const OPTIONAL_FLOATS: [&str; 2] = ["random_sample_cpu_usage", "sample_rate"];

/// What one CSV record holds for the export.
struct CsvRow {
    keys: [i64; 3],
    channels: [Option<f64>; SERIES_CHANNELS.len()],
    ints: [Option<i64>; OPTIONAL_INTS.len()],
    floats: [Option<f64>; OPTIONAL_FLOATS.len()],
}

fn copy_rows(
    csv: impl Read,
    file: &Path,
    sink: &mut Sink,
    opts: &ExportOptions,
) -> Result<usize, DataError> {
    let mut reader = csv::ReaderBuilder::new().from_reader(csv);
    let required: Vec<&str> = KEY_COLUMNS.into_iter().chain(SERIES_CHANNELS).collect();
    let cols = read_required_columns(&mut reader, file, &required, "an instance_usage")?;
    let header = reader.byte_headers().map_err(|e| record_error(file, e))?;
    let position = |name: &&str| header.iter().position(|h| h == name.as_bytes());
    let int_cols: Vec<Option<usize>> = OPTIONAL_INTS.iter().map(position).collect();
    let float_cols: Vec<Option<usize>> = OPTIONAL_FLOATS.iter().map(position).collect();
    let mut quirks = opts
        .quirks
        .map(|seed| SplitMix64::new(seed ^ 0x6271_7565_7279));
    let mut rec = csv::ByteRecord::new();
    let mut rows = 0;
    while reader
        .read_byte_record(&mut rec)
        .map_err(|e| record_error(file, e))?
    {
        let line = rec.position().map_or(0, |p| p.line());
        let cell = |i: Option<usize>| i.and_then(|i| rec.get(i)).unwrap_or(b"");
        let located = |column: &'static str, i: Option<usize>| {
            let text = cell_text(cell(i));
            move |e: CellError| DataError::Cell {
                file: file.to_path_buf(),
                line,
                cell_line: line,
                column: column.to_string(),
                text,
                why: e.why(),
            }
        };
        let mut row = CsvRow {
            keys: [0; 3],
            channels: [None; SERIES_CHANNELS.len()],
            ints: [None; OPTIONAL_INTS.len()],
            floats: [None; OPTIONAL_FLOATS.len()],
        };
        for (k, name) in KEY_COLUMNS.iter().enumerate() {
            let i = Some(cols[k]);
            row.keys[k] = int64(cell(i)).map_err(located(name, i))?;
        }
        for (k, name) in SERIES_CHANNELS.iter().enumerate() {
            let i = Some(cols[KEY_COLUMNS.len() + k]);
            row.channels[k] = float(cell(i), name.starts_with('p')).map_err(located(name, i))?;
        }
        for (k, (name, &i)) in OPTIONAL_INTS.iter().zip(&int_cols).enumerate() {
            row.ints[k] = signed(cell(i)).map_err(located(name, i))?;
        }
        for (k, (name, &i)) in OPTIONAL_FLOATS.iter().zip(&float_cols).enumerate() {
            row.floats[k] = float(cell(i), false).map_err(located(name, i))?;
        }
        let mut row = export_row(&row);
        if let Some(rng) = quirks.as_mut() {
            add_quirks(&mut row, rng);
        }
        sink.push(row)
            .map_err(|e| DataError::file(file, format!("cannot write the export: {e}")))?;
        rows += 1;
    }
    Ok(rows)
}

/// An unsigned INT64 as the CSV writes it (an integral float too).
fn int64(cell: &[u8]) -> Result<i64, CellError> {
    let v = cells::parse_u64(cell)?.value;
    i64::try_from(v).map_err(|_| CellError::Malformed(format!("{v} does not fit BigQuery's INT64")))
}

/// A signed INT64 (`alloc_instance_index` is -1 outside an alloc set); None when empty.
fn signed(cell: &[u8]) -> Result<Option<i64>, CellError> {
    let t = std::str::from_utf8(cell)
        .map_err(|_| CellError::NotUtf8)?
        .trim();
    if t.is_empty() {
        return Ok(None);
    }
    t.parse::<i64>()
        .map(Some)
        .map_err(|_| CellError::Malformed(format!("`{t}` is not an integer")))
}

/// A FLOAT; None when missing (and, for a percentile, when it is the CSV's -1).
fn float(cell: &[u8], percentile: bool) -> Result<Option<f64>, CellError> {
    let t = std::str::from_utf8(cell)
        .map_err(|_| CellError::NotUtf8)?
        .trim();
    if t.is_empty() || t == "None" || t.eq_ignore_ascii_case("nan") {
        return Ok(None);
    }
    let v: f64 = t
        .parse()
        .map_err(|_| CellError::Malformed(format!("`{t}` is not a number")))?;
    Ok((!(percentile && v == -1.0)).then_some(v))
}

fn export_row(csv: &CsvRow) -> ExportRow {
    let channel = |name: &str| {
        let k = SERIES_CHANNELS
            .iter()
            .position(|c| *c == name)
            .expect("a series channel");
        csv.channels[k]
    };
    let percentiles = &csv.channels[PERCENTILES];
    let (head, tail) = percentiles.split_at(DISTRIBUTION_LEN - 1);
    let max_cpu = channel("max_cpu_usage");
    let p100 = percentiles
        .iter()
        .chain([&max_cpu])
        .flatten()
        .copied()
        .reduce(f64::max);
    let distribution = |values: &[Option<f64>], extra: Option<Option<f64>>| {
        if values.iter().all(Option::is_none) {
            return Vec::new();
        }
        values.iter().copied().chain(extra).collect()
    };
    let (memory_limit, cpu_limit) = (channel("memory_limit"), channel("cpu_limit"));
    let [start_time, collection_id, instance_index] = csv.keys;
    let [machine_id, alloc_collection_id, alloc_instance_index, collection_type] = csv.ints;
    let [random_sample_cpus, sample_rate] = csv.floats;
    ExportRow {
        start_time,
        end_time: start_time.saturating_add(WINDOW_STEP_US as i64),
        collection_id,
        instance_index,
        machine_id,
        alloc_collection_id,
        alloc_instance_index,
        collection_type,
        average_usage: [channel("avg_cpu_usage"), channel("avg_memory_usage")],
        maximum_usage: [max_cpu, channel("max_memory_usage")],
        random_sample_cpus: Some(random_sample_cpus),
        assigned_memory: channel("assigned_memory"),
        sample_rate,
        cpu_usage_distribution: Some(distribution(head, Some(p100))),
        tail_cpu_usage_distribution: Some(distribution(tail, None)),
        resource_request: (memory_limit.is_some() || cpu_limit.is_some())
            .then_some([cpu_limit, memory_limit]),
        ..ExportRow::default()
    }
}

/// The generator's extra cases, in about the real table's shares: 4% of windows
/// without a CPU distribution (half null, half empty), 3% without a random sample,
/// CPI and memory accesses per instruction in 70%, page cache in all.
fn add_quirks(row: &mut ExportRow, rng: &mut SplitMix64) {
    let u = rng.next_f64();
    if u < 0.02 {
        row.cpu_usage_distribution = None;
        row.tail_cpu_usage_distribution = None;
    } else if u < 0.04 {
        row.cpu_usage_distribution = Some(Vec::new());
        row.tail_cpu_usage_distribution = Some(Vec::new());
    }
    if rng.next_f64() < 0.03 {
        row.random_sample_cpus = None;
    }
    if rng.next_f64() < 0.7 {
        row.cycles_per_instruction = Some(0.5 + 3.0 * rng.next_f64());
        row.memory_accesses_per_instruction = Some(0.02 * rng.next_f64());
    }
    let assigned = row.assigned_memory.unwrap_or(0.0);
    row.page_cache_memory = Some(assigned * 0.1 * rng.next_f64());
}

/// Where rows go: NDJSON text (plain or gzip) or Parquet row groups.
enum Sink {
    Json(Box<dyn Write>),
    Parquet {
        /// Created with the first row group; until then `file` holds the output.
        writer: Option<Box<::parquet::arrow::ArrowWriter<BufWriter<std::fs::File>>>>,
        file: Option<std::fs::File>,
        rows: Vec<ExportRow>,
        compression: ParquetCompression,
    },
}

fn io_error(out: &Path) -> impl Fn(std::io::Error) -> DataError + '_ {
    move |e| DataError::io(out, e)
}

fn parquet_error(out: &Path) -> impl Fn(::parquet::errors::ParquetError) -> DataError + '_ {
    move |e| DataError::file(out, format!("cannot write Parquet: {e}"))
}

impl Sink {
    fn create(out: &Path, compression: ParquetCompression) -> Result<Sink, DataError> {
        let name = out.to_string_lossy().to_ascii_lowercase();
        let encoding = if name.ends_with(".parquet") {
            "parquet"
        } else if name.ends_with(".json.gz") || name.ends_with(".ndjson.gz") {
            "gzip"
        } else if name.ends_with(".json") || name.ends_with(".ndjson") {
            "json"
        } else {
            return Err(DataError::file(
                out,
                "a BigQuery export is named *.json, *.ndjson, *.json.gz, *.ndjson.gz or *.parquet",
            ));
        };
        let file = std::fs::File::create(out).map_err(io_error(out))?;
        if encoding == "parquet" {
            return Ok(Sink::Parquet {
                writer: None,
                file: Some(file),
                rows: Vec::with_capacity(ROWS_PER_GROUP),
                compression,
            });
        }
        let file = BufWriter::with_capacity(1 << 20, file);
        Ok(match encoding {
            "gzip" => Sink::Json(Box::new(flate2::write::GzEncoder::new(
                file,
                flate2::Compression::default(),
            ))),
            _ => Sink::Json(Box::new(file)),
        })
    }

    fn push(&mut self, row: ExportRow) -> Result<(), String> {
        match self {
            Sink::Json(w) => write_json(w, &row).map_err(|e| e.to_string()),
            Sink::Parquet { rows, .. } => {
                rows.push(row);
                if rows.len() == ROWS_PER_GROUP {
                    self.flush_group()?;
                }
                Ok(())
            }
        }
    }

    /// Writes the buffered rows as one record batch (a row group).
    fn flush_group(&mut self) -> Result<(), String> {
        let Sink::Parquet {
            writer,
            file,
            rows,
            compression,
        } = self
        else {
            return Ok(());
        };
        if rows.is_empty() && writer.is_some() {
            return Ok(());
        }
        let batch = record_batch(rows).map_err(|e| e.to_string())?;
        rows.clear();
        if let Some(target) = file.take() {
            let props = ::parquet::file::properties::WriterProperties::builder()
                .set_compression(codec(*compression))
                .set_max_row_group_size(ROWS_PER_GROUP)
                .build();
            *writer = Some(Box::new(
                ::parquet::arrow::ArrowWriter::try_new(
                    BufWriter::with_capacity(1 << 20, target),
                    batch.schema(),
                    Some(props),
                )
                .map_err(|e| e.to_string())?,
            ));
        }
        let w = writer.as_mut().ok_or("the Parquet writer is gone")?;
        w.write(&batch).map_err(|e| e.to_string())?;
        w.flush().map_err(|e| e.to_string())
    }

    fn finish(mut self, out: &Path) -> Result<(), DataError> {
        // Parquet: the last group, or the schema of an empty export.
        self.flush_group()
            .map_err(|e| DataError::file(out, format!("cannot write Parquet: {e}")))?;
        match self {
            Sink::Json(mut w) => w.flush().map_err(io_error(out)),
            Sink::Parquet { writer, .. } => match writer {
                Some(writer) => writer.close().map(drop).map_err(parquet_error(out)),
                None => Err(DataError::file(out, "the Parquet writer is gone")),
            },
        }
    }
}

fn codec(c: ParquetCompression) -> ::parquet::basic::Compression {
    use ::parquet::basic::{Compression, GzipLevel, ZstdLevel};
    match c {
        ParquetCompression::Snappy => Compression::SNAPPY,
        ParquetCompression::Gzip => Compression::GZIP(GzipLevel::default()),
        ParquetCompression::Zstd => Compression::ZSTD(ZstdLevel::default()),
        ParquetCompression::Uncompressed => Compression::UNCOMPRESSED,
    }
}

/// A FLOAT as BigQuery writes it in JSON: a number, or a string for the non-finite.
fn json_float(w: &mut dyn Write, v: f64) -> std::io::Result<()> {
    if v.is_finite() {
        write!(w, "{v:?}")
    } else if v.is_nan() {
        w.write_all(b"\"NaN\"")
    } else if v > 0.0 {
        w.write_all(b"\"Infinity\"")
    } else {
        w.write_all(b"\"-Infinity\"")
    }
}

/// `,"key":value` when the value is not null.
fn json_field(w: &mut dyn Write, key: &str, v: Option<f64>) -> std::io::Result<()> {
    if let Some(v) = v {
        write!(w, ",\"{key}\":")?;
        json_float(w, v)?;
    }
    Ok(())
}

fn json_int(w: &mut dyn Write, key: &str, v: Option<i64>) -> std::io::Result<()> {
    match v {
        Some(v) => write!(w, ",\"{key}\":\"{v}\""),
        None => Ok(()),
    }
}

fn json_record(
    w: &mut dyn Write,
    key: &str,
    names: &[&str],
    v: &[Option<f64>],
) -> std::io::Result<()> {
    write!(w, ",\"{key}\":{{")?;
    let mut first = true;
    for (name, v) in names.iter().zip(v) {
        if let Some(v) = v {
            write!(w, "{}\"{name}\":", if first { "" } else { "," })?;
            json_float(w, *v)?;
            first = false;
        }
    }
    w.write_all(b"}")
}

fn json_array(w: &mut dyn Write, key: &str, v: &Option<Vec<Option<f64>>>) -> std::io::Result<()> {
    let Some(values) = v else { return Ok(()) };
    write!(w, ",\"{key}\":[")?;
    for (k, v) in values.iter().enumerate() {
        if k > 0 {
            w.write_all(b",")?;
        }
        match v {
            Some(v) => json_float(w, *v)?,
            None => w.write_all(b"null")?,
        }
    }
    w.write_all(b"]")
}

/// One row in the schema's field order, nulls left out, as `bq extract` writes it.
fn write_json(w: &mut dyn Write, r: &ExportRow) -> std::io::Result<()> {
    write!(w, "{{\"start_time\":\"{}\"", r.start_time)?;
    json_int(w, "end_time", Some(r.end_time))?;
    json_int(w, "collection_id", Some(r.collection_id))?;
    json_int(w, "instance_index", Some(r.instance_index))?;
    json_int(w, "machine_id", r.machine_id)?;
    json_int(w, "alloc_collection_id", r.alloc_collection_id)?;
    json_int(w, "alloc_instance_index", r.alloc_instance_index)?;
    json_int(w, "collection_type", r.collection_type)?;
    json_record(w, "average_usage", &["cpus", "memory"], &r.average_usage)?;
    json_record(w, "maximum_usage", &["cpus", "memory"], &r.maximum_usage)?;
    if let Some(cpus) = r.random_sample_cpus {
        json_record(w, "random_sample_usage", &["cpus"], &[cpus])?;
    }
    json_field(w, "assigned_memory", r.assigned_memory)?;
    json_field(w, "page_cache_memory", r.page_cache_memory)?;
    json_field(w, "cycles_per_instruction", r.cycles_per_instruction)?;
    json_field(
        w,
        "memory_accesses_per_instruction",
        r.memory_accesses_per_instruction,
    )?;
    json_field(w, "sample_rate", r.sample_rate)?;
    json_array(w, "cpu_usage_distribution", &r.cpu_usage_distribution)?;
    json_array(
        w,
        "tail_cpu_usage_distribution",
        &r.tail_cpu_usage_distribution,
    )?;
    if let Some(request) = &r.resource_request {
        json_record(w, "resource_request", &["cpus", "memory"], request)?;
    }
    w.write_all(b"}\n")
}

fn ints(rows: &[ExportRow], f: impl Fn(&ExportRow) -> Option<i64>) -> ArrayRef {
    Arc::new(rows.iter().map(f).collect::<Int64Array>())
}

fn floats(rows: &[ExportRow], f: impl Fn(&ExportRow) -> Option<f64>) -> ArrayRef {
    Arc::new(rows.iter().map(f).collect::<Float64Array>())
}

/// A `RECORD` of FLOAT fields; a row without one (`get` None) is a null record.
fn record<const N: usize>(
    rows: &[ExportRow],
    names: [&str; N],
    get: impl Fn(&ExportRow) -> Option<[Option<f64>; N]>,
) -> Result<ArrayRef, arrow_schema::ArrowError> {
    let fields: Vec<Field> = names
        .iter()
        .map(|n| Field::new(*n, DataType::Float64, true))
        .collect();
    let children: Vec<ArrayRef> = (0..N)
        .map(|k| floats(rows, |r| get(r).and_then(|v| v[k])))
        .collect();
    let valid: Vec<bool> = rows.iter().map(|r| get(r).is_some()).collect();
    Ok(Arc::new(StructArray::try_new(
        fields.into(),
        children,
        Some(valid.into()),
    )?))
}

fn list(rows: &[ExportRow], get: impl Fn(&ExportRow) -> &Option<Vec<Option<f64>>>) -> ArrayRef {
    let mut builder = ListBuilder::new(Float64Builder::new());
    for r in rows {
        match get(r) {
            Some(values) => {
                builder.values().extend(values.iter().copied());
                builder.append(true);
            }
            None => builder.append(false),
        }
    }
    Arc::new(builder.finish())
}

fn record_batch(rows: &[ExportRow]) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("start_time", ints(rows, |r| Some(r.start_time))),
        ("end_time", ints(rows, |r| Some(r.end_time))),
        ("collection_id", ints(rows, |r| Some(r.collection_id))),
        ("instance_index", ints(rows, |r| Some(r.instance_index))),
        ("machine_id", ints(rows, |r| r.machine_id)),
        ("alloc_collection_id", ints(rows, |r| r.alloc_collection_id)),
        (
            "alloc_instance_index",
            ints(rows, |r| r.alloc_instance_index),
        ),
        ("collection_type", ints(rows, |r| r.collection_type)),
        (
            "average_usage",
            record(rows, ["cpus", "memory"], |r| Some(r.average_usage))?,
        ),
        (
            "maximum_usage",
            record(rows, ["cpus", "memory"], |r| Some(r.maximum_usage))?,
        ),
        (
            "random_sample_usage",
            record(rows, ["cpus"], |r| r.random_sample_cpus.map(|c| [c]))?,
        ),
        ("assigned_memory", floats(rows, |r| r.assigned_memory)),
        ("page_cache_memory", floats(rows, |r| r.page_cache_memory)),
        (
            "cycles_per_instruction",
            floats(rows, |r| r.cycles_per_instruction),
        ),
        (
            "memory_accesses_per_instruction",
            floats(rows, |r| r.memory_accesses_per_instruction),
        ),
        ("sample_rate", floats(rows, |r| r.sample_rate)),
        (
            "cpu_usage_distribution",
            list(rows, |r| &r.cpu_usage_distribution),
        ),
        (
            "tail_cpu_usage_distribution",
            list(rows, |r| &r.tail_cpu_usage_distribution),
        ),
        (
            "resource_request",
            record(rows, ["cpus", "memory"], |r| r.resource_request)?,
        ),
    ];
    RecordBatch::try_from_iter_with_nullable(columns.into_iter().map(|(n, a)| (n, a, true)))
}
