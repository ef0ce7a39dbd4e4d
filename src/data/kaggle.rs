//! Loader of the Kaggle extract (`borg_traces_data.csv`): one record = one sample,
//! a sequence of 36 features with one channel, target `maximum_usage['memory']`.
//!
//! A reader thread splits the quote-aware CSV stream into batches of records while
//! rayon featurises the previous batches, so parsing and featurising overlap.

use super::cells::{self, CellError};
use super::{
    byte_progress, cell_error, read_required_columns, record_error, DataError, Dataset, Format,
    LoadOptions, LoadReport, OnBadRow,
};
use csv::ByteRecord;
use rayon::prelude::*;
use std::io::Read;
use std::path::Path;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender};

/// Feature names in sequence order. Left out on purpose: `maximum_usage['memory']`
/// (the target), `random_sample_usage['memory']` (always None), the row index,
/// identifiers and hashes (collection/machine/user ids, names), `time` (kept as the
/// sample's order), and `event`/`failed` (how the instance ended: known only afterwards).
pub const KAGGLE_FEATURES: [&str; N_FEATURES] = [
    "average_usage.cpus",
    "average_usage.memory",
    "maximum_usage.cpus",
    "random_sample_usage.cpus",
    "resource_request.cpus",
    "resource_request.memory",
    "assigned_memory",
    "page_cache_memory",
    "cycles_per_instruction",
    "memory_accesses_per_instruction",
    "sample_rate",
    "priority",
    "scheduling_class",
    "collection_type",
    "instance_events_type",
    "duration_s",
    "cpu_usage_distribution[0]",
    "cpu_usage_distribution[1]",
    "cpu_usage_distribution[2]",
    "cpu_usage_distribution[3]",
    "cpu_usage_distribution[4]",
    "cpu_usage_distribution[5]",
    "cpu_usage_distribution[6]",
    "cpu_usage_distribution[7]",
    "cpu_usage_distribution[8]",
    "cpu_usage_distribution[9]",
    "cpu_usage_distribution[10]",
    "tail_cpu_usage_distribution[0]",
    "tail_cpu_usage_distribution[1]",
    "tail_cpu_usage_distribution[2]",
    "tail_cpu_usage_distribution[3]",
    "tail_cpu_usage_distribution[4]",
    "tail_cpu_usage_distribution[5]",
    "tail_cpu_usage_distribution[6]",
    "tail_cpu_usage_distribution[7]",
    "tail_cpu_usage_distribution[8]",
];
const N_FEATURES: usize = 36;
const CPU_DIST_LEN: usize = 11;
const TAIL_DIST_LEN: usize = 9;
/// Position of average memory in the sequence: the naive predictor.
const AVG_MEMORY: usize = 1;

/// Columns the loader reads, in the order of the `Col` constants below.
pub(crate) const REQUIRED: [&str; 20] = [
    "time",
    "collection_id",
    "instance_index",
    "average_usage",
    "maximum_usage",
    "random_sample_usage",
    "resource_request",
    "assigned_memory",
    "page_cache_memory",
    "cycles_per_instruction",
    "memory_accesses_per_instruction",
    "sample_rate",
    "priority",
    "scheduling_class",
    "collection_type",
    "instance_events_type",
    "start_time",
    "end_time",
    "cpu_usage_distribution",
    "tail_cpu_usage_distribution",
];
const TIME: usize = 0;
const COLLECTION: usize = 1;
const INSTANCE: usize = 2;
const AVERAGE: usize = 3;
const MAXIMUM: usize = 4;
const RANDOM: usize = 5;
const REQUEST: usize = 6;
/// Plain numeric columns copied to features 6..=14, in order.
const PLAIN: std::ops::Range<usize> = 7..16;
/// Of those, the sizes (assigned and page-cache memory), bounded like usage.
const SIZES: std::ops::Range<usize> = 7..9;
const START: usize = 16;
const END: usize = 17;
const CPU_DIST: usize = 18;
/// The integer columns, in the order they are read.
const INTEGERS: [usize; 5] = [START, END, COLLECTION, INSTANCE, TIME];
const TAIL_DIST: usize = 19;

const BATCH: usize = 2048;

struct Row {
    features: [f32; N_FEATURES],
    target: f32,
    collection: u64,
    time: u64,
    /// "collection/instance@time", formatted here so it runs on the featurising pool.
    id: String,
    /// Bit k: `INTEGERS[k]`'s text was a rounded float.
    rounded: u8,
}

/// Which required column (index into REQUIRED) failed and why.
type CellFailure = (usize, CellError);

fn featurise(rec: &ByteRecord, cols: &[usize]) -> Result<Row, CellFailure> {
    let cell = |c: usize| rec.get(cols[c]).unwrap_or(b"");
    let at = |c: usize| move |e: CellError| (c, e);
    let mut f = [f32::NAN; N_FEATURES];
    let [avg_cpu, avg_mem] = cells::parse_usage_dict(cell(AVERAGE)).map_err(at(AVERAGE))?;
    let [max_cpu, max_mem] = cells::parse_usage_dict(cell(MAXIMUM)).map_err(at(MAXIMUM))?;
    let [rnd_cpu, _always_none] = cells::parse_usage_dict(cell(RANDOM)).map_err(at(RANDOM))?;
    let [req_cpu, req_mem] = cells::parse_usage_dict(cell(REQUEST)).map_err(at(REQUEST))?;
    f[..6].copy_from_slice(&[avg_cpu, avg_mem, max_cpu, rnd_cpu, req_cpu, req_mem]);
    for (k, c) in PLAIN.enumerate() {
        let parse = if SIZES.contains(&c) {
            cells::parse_usage
        } else {
            cells::parse_feature
        };
        f[6 + k] = parse(cell(c)).map_err(at(c))?;
    }
    // Bit k set: INTEGERS[k] was written as a rounded float.
    let mut rounded = 0u8;
    let mut integer = |k: usize| {
        let c = INTEGERS[k];
        let read = cells::parse_u64(cell(c)).map_err(at(c))?;
        rounded |= (read.rounded as u8) << k;
        Ok::<u64, CellFailure>(read.value)
    };
    let start = integer(0)?;
    let end = integer(1)?;
    if end < start {
        return Err((END, CellError::Negative));
    }
    f[15] = (end - start) as f32 * 1e-6;
    let (dist, tail) = f[16..].split_at_mut(CPU_DIST_LEN);
    cells::parse_array(cell(CPU_DIST), dist).map_err(at(CPU_DIST))?;
    cells::parse_array(cell(TAIL_DIST), &mut tail[..TAIL_DIST_LEN]).map_err(at(TAIL_DIST))?;
    let collection = integer(2)?;
    let instance = integer(3)?;
    let time = integer(4)?;
    Ok(Row {
        features: f,
        target: max_mem,
        collection,
        time,
        rounded,
        id: format!("{collection}/{instance}@{time}"),
    })
}

/// Accumulates rows of one or several files into a dataset.
pub(crate) struct Builder {
    ds: Dataset,
}

impl Builder {
    pub(crate) fn new() -> Self {
        Builder {
            ds: Dataset {
                format: Format::Kaggle,
                seq_len: N_FEATURES,
                channels: 1,
                inputs: Vec::new(),
                targets: Vec::new(),
                naive: Vec::new(),
                ids: Vec::new(),
                groups: Vec::new(),
                order: Vec::new(),
                feature_names: KAGGLE_FEATURES.iter().map(|s| s.to_string()).collect(),
                report: LoadReport {
                    missing: vec![0; N_FEATURES],
                    ..LoadReport::default()
                },
            },
        }
    }

    fn push(&mut self, row: Row) {
        let ds = &mut self.ds;
        for (k, &c) in INTEGERS.iter().enumerate() {
            if row.rounded >> k & 1 == 1 {
                ds.report.count_rounded(REQUIRED[c]);
            }
        }
        for (m, v) in ds.report.missing.iter_mut().zip(&row.features) {
            *m += v.is_nan() as usize;
        }
        if row.target.is_nan() {
            ds.report.drop_one("missing target");
            return;
        }
        ds.inputs.extend_from_slice(&row.features);
        ds.targets.push(row.target);
        ds.naive.push(row.features[AVG_MEMORY]);
        ds.ids.push(row.id);
        ds.groups.push(row.collection);
        ds.order.push(row.time);
    }

    /// Room for about `rows` more samples (real rows average ~800 bytes), so the vectors
    /// are not copied while they grow.
    fn reserve(&mut self, rows: usize) {
        let ds = &mut self.ds;
        ds.inputs.reserve(rows * N_FEATURES);
        ds.targets.reserve(rows);
        ds.naive.reserve(rows);
        ds.ids.reserve(rows);
        ds.groups.reserve(rows);
        ds.order.reserve(rows);
    }

    pub(crate) fn finish(mut self) -> Dataset {
        self.ds.report.samples = self.ds.targets.len();
        self.ds
    }

    /// Reads one CSV stream; `file` names it in errors.
    pub(crate) fn read<R: Read + Send>(
        &mut self,
        reader: R,
        file: &Path,
        bytes: u64,
        opts: &LoadOptions,
    ) -> Result<(), DataError> {
        self.ds.report.files.push(file.to_path_buf());
        self.ds.report.bytes += bytes;
        let mut csv = csv::ReaderBuilder::new()
            .buffer_capacity(1 << 20)
            .from_reader(reader);
        let cols = read_required_columns(&mut csv, file, &REQUIRED, "a kaggle")?;
        self.reserve((bytes / 700) as usize);
        let bar = byte_progress(bytes, opts.progress, "loading kaggle rows");
        let records_before = self.ds.report.records;
        std::thread::scope(|scope| {
            let (tx, rx) = sync_channel::<Message>(4);
            // Processed batches come back so their records' buffers are reused.
            let (recycle, recycled) = channel::<Batch>();
            let bar_reader = bar.clone();
            scope.spawn(move || {
                let fresh = || {
                    let mut batch: Batch = recycled.try_recv().unwrap_or_default();
                    batch.len = 0;
                    batch
                };
                let mut batch = fresh();
                loop {
                    if batch.len == batch.records.len() {
                        batch.records.push(ByteRecord::new());
                    }
                    match csv.read_byte_record(&mut batch.records[batch.len]) {
                        Ok(true) => {
                            batch.len += 1;
                            if batch.len == BATCH {
                                bar_reader.set_position(csv.position().byte());
                                let full = std::mem::replace(&mut batch, fresh());
                                if tx.send(Message::Batch(full)).is_err() {
                                    return;
                                }
                            }
                        }
                        Ok(false) => break,
                        Err(e) => {
                            // Flush first so errors reach the consumer in file order.
                            let full = std::mem::replace(&mut batch, fresh());
                            let fatal = !matches!(e.kind(), csv::ErrorKind::UnequalLengths { .. });
                            let err = record_error(file, e);
                            let msg = if fatal {
                                Message::Fatal(err)
                            } else {
                                Message::BadRecord(err)
                            };
                            if tx.send(Message::Batch(full)).is_err()
                                || tx.send(msg).is_err()
                                || fatal
                            {
                                return;
                            }
                        }
                    }
                }
                let _ = tx.send(Message::Batch(batch));
            });
            self.consume(rx, recycle, &cols, file, opts)
        })?;
        bar.finish_and_clear();
        if self.ds.report.records == records_before {
            return Err(DataError::file(
                file,
                "header only: the file holds no records",
            ));
        }
        Ok(())
    }

    fn consume(
        &mut self,
        rx: Receiver<Message>,
        recycle: Sender<Batch>,
        cols: &[usize],
        file: &Path,
        opts: &LoadOptions,
    ) -> Result<(), DataError> {
        for msg in rx {
            match msg {
                Message::Batch(batch) => {
                    let records = &batch.records[..batch.len];
                    self.ds.report.records += records.len();
                    let rows: Vec<Result<Row, CellFailure>> =
                        records.par_iter().map(|r| featurise(r, cols)).collect();
                    for (rec, row) in records.iter().zip(rows) {
                        match row {
                            Ok(row) => self.push(row),
                            Err((c, e)) => {
                                let err = cell_error(file, rec, cols[c], REQUIRED[c], &e);
                                self.bad_row(opts, e.reason(), Some(REQUIRED[c]), err)?;
                            }
                        }
                    }
                    // The reader may have finished already; then the batch is simply dropped.
                    let _ = recycle.send(batch);
                }
                Message::BadRecord(err) => {
                    self.ds.report.records += 1;
                    self.bad_row(opts, "malformed record", None, err)?;
                }
                Message::Fatal(err) => return Err(err),
            }
        }
        Ok(())
    }

    fn bad_row(
        &mut self,
        opts: &LoadOptions,
        reason: &str,
        column: Option<&str>,
        err: DataError,
    ) -> Result<(), DataError> {
        match opts.on_bad_row {
            OnBadRow::Error => Err(err),
            OnBadRow::Skip => {
                self.ds.report.drop_bad(reason, column);
                Ok(())
            }
        }
    }
}

/// Records read by the reader thread; only the first `len` are filled.
#[derive(Default)]
struct Batch {
    records: Vec<ByteRecord>,
    len: usize,
}

enum Message {
    Batch(Batch),
    /// A record the CSV reader rejected but could read past.
    BadRecord(DataError),
    /// A failure that ends the stream (I/O).
    Fatal(DataError),
}

pub(crate) fn load_files(
    files: &[std::path::PathBuf],
    opts: &LoadOptions,
) -> Result<Dataset, DataError> {
    let mut builder = Builder::new();
    for file in files {
        let f = std::fs::File::open(file).map_err(|e| DataError::io(file, e))?;
        let bytes = f.metadata().map_err(|e| DataError::io(file, e))?.len();
        builder.read(f, file, bytes, opts)?;
    }
    Ok(builder.finish())
}
