//! Loader of raw `instance_usage` rows (5-minute windows): samples are the last W
//! windows of one instance, the target the max of `max_memory_usage` over the next H.
//! Windows never cross an instance boundary or a gap in time.

use super::cells::{self, CellError};
use super::{
    byte_progress, cell_error, read_required_columns, record_error, stable_hash, DataError,
    Dataset, Format, LoadOptions, LoadReport, OnBadRow,
};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Channels of a time step, in order.
pub const SERIES_CHANNELS: [&str; 26] = [
    "avg_cpu_usage",
    "max_cpu_usage",
    "avg_memory_usage",
    "max_memory_usage",
    "assigned_memory",
    "p0_cpu_usage",
    "p10_cpu_usage",
    "p20_cpu_usage",
    "p30_cpu_usage",
    "p40_cpu_usage",
    "p50_cpu_usage",
    "p60_cpu_usage",
    "p70_cpu_usage",
    "p80_cpu_usage",
    "p90_cpu_usage",
    "p91_cpu_usage",
    "p92_cpu_usage",
    "p93_cpu_usage",
    "p94_cpu_usage",
    "p95_cpu_usage",
    "p96_cpu_usage",
    "p97_cpu_usage",
    "p98_cpu_usage",
    "p99_cpu_usage",
    "memory_limit",
    "cpu_limit",
];
pub(crate) const C: usize = SERIES_CHANNELS.len();
const MAX_MEMORY: usize = 3;
/// Channels p0_cpu_usage ..= p99_cpu_usage.
pub(crate) const PERCENTILES: std::ops::Range<usize> = 5..24;

/// The trace's window length in µs.
pub const WINDOW_STEP_US: u64 = 300_000_000;
/// Rows further apart than 1.5 windows have a window missing between them: a gap.
/// (Closer rows are the trace's shortened windows around restarts, not gaps.)
const MAX_STEP_US: u64 = WINDOW_STEP_US * 3 / 2;

/// One 5-minute window of one instance: what is held per row while a load streams
/// (8 + 26 × 4 bytes, whatever the size of the text it came from).
#[derive(Clone)]
pub(crate) struct Row {
    /// Start of the window, µs.
    pub(crate) time: u64,
    /// The [`SERIES_CHANNELS`], NaN = missing.
    pub(crate) values: [f32; C],
}

/// Rows of each instance, keyed "collection-instance"; any reader of instance rows
/// (CSV here, BigQuery exports) fills one and hands it to [`windows`].
pub(crate) type Instances = BTreeMap<String, Vec<Row>>;

/// The key of an instance in [`Instances`] and in sample ids.
pub(crate) fn instance_key(collection: u64, instance: u64) -> String {
    format!("{collection}-{instance}")
}

fn parse_row(
    rec: &csv::ByteRecord,
    cols: &[usize],
    report: &mut LoadReport,
) -> Result<(String, Row), (usize, CellError)> {
    let cell = |c: usize| rec.get(cols[c]).unwrap_or(b"");
    let integer = |c: usize| cells::parse_u64(cell(c)).map_err(|e| (c, e));
    let [time, collection, instance] = [integer(0)?, integer(1)?, integer(2)?];
    let mut values = [f32::NAN; C];
    for (k, v) in values.iter_mut().enumerate() {
        let parse = if PERCENTILES.contains(&k) {
            cells::parse_percentile
        } else {
            cells::parse_usage
        };
        *v = parse(cell(3 + k)).map_err(|e| (3 + k, e))?;
    }
    // Counted once the row is known to be kept.
    for (column, read) in ["time", "collection_id", "instance_index"]
        .into_iter()
        .zip([time, collection, instance])
    {
        if read.rounded {
            report.count_rounded(column);
        }
    }
    let time = time.value;
    Ok((
        instance_key(collection.value, instance.value),
        Row { time, values },
    ))
}

/// Reads one CSV stream of rows into `instances`, counting into `report`.
fn read_rows<R: Read>(
    reader: R,
    file: &Path,
    opts: &LoadOptions,
    report: &mut LoadReport,
    instances: &mut Instances,
) -> Result<(), DataError> {
    let required: Vec<&str> = ["time", "collection_id", "instance_index"]
        .into_iter()
        .chain(SERIES_CHANNELS)
        .collect();
    let mut csv = csv::ReaderBuilder::new().from_reader(reader);
    let cols = read_required_columns(&mut csv, file, &required, "an instance_usage")?;
    let skip =
        |report: &mut LoadReport, reason: &str, column: Option<&str>, err: DataError| match opts
            .on_bad_row
        {
            OnBadRow::Error => Err(err),
            OnBadRow::Skip => {
                report.drop_bad(reason, column);
                Ok(())
            }
        };
    let mut rec = csv::ByteRecord::new();
    let mut records = 0;
    loop {
        match csv.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) if matches!(e.kind(), csv::ErrorKind::UnequalLengths { .. }) => {
                records += 1;
                skip(report, "malformed record", None, record_error(file, e))?;
                continue;
            }
            Err(e) => return Err(record_error(file, e)),
        }
        records += 1;
        match parse_row(&rec, &cols, report) {
            Ok((key, row)) => {
                for (m, v) in report.missing.iter_mut().zip(&row.values) {
                    *m += v.is_nan() as usize;
                }
                instances.entry(key).or_default().push(row);
            }
            Err((c, e)) => {
                let err = cell_error(file, &rec, cols[c], required[c], &e);
                skip(report, e.reason(), Some(required[c]), err)?;
            }
        }
    }
    if records == 0 {
        return Err(DataError::file(
            file,
            "header only: the file holds no records",
        ));
    }
    report.records += records;
    Ok(())
}

/// A window and a horizon of at least one row each; checked before any file is read.
pub(crate) fn check_layout(opts: &LoadOptions) -> Result<(), DataError> {
    if opts.window == 0 || opts.horizon == 0 {
        return Err(DataError::Invalid(format!(
            "window ({}) and horizon ({}) must be at least 1",
            opts.window, opts.horizon
        )));
    }
    Ok(())
}

/// Reads every stream, then cuts windows. Files are parsed in parallel.
pub(crate) fn load_streams<R: Read + Send>(
    streams: Vec<(PathBuf, u64, R)>,
    opts: &LoadOptions,
) -> Result<Dataset, DataError> {
    check_layout(opts)?;
    let total: u64 = streams.iter().map(|s| s.1).sum();
    let bar = byte_progress(total, opts.progress, "loading instance_usage files");
    let files: Vec<PathBuf> = streams.iter().map(|s| s.0.clone()).collect();
    let parsed: Vec<Result<(LoadReport, Instances), DataError>> = streams
        .into_par_iter()
        .map(|(file, bytes, reader)| {
            let mut report = LoadReport {
                missing: vec![0; C],
                ..LoadReport::default()
            };
            let mut instances = Instances::new();
            read_rows(reader, &file, opts, &mut report, &mut instances)?;
            bar.inc(bytes);
            Ok((report, instances))
        })
        .collect();
    bar.finish_and_clear();
    let mut report = LoadReport {
        files,
        bytes: total,
        missing: vec![0; C],
        ..LoadReport::default()
    };
    let mut instances = Instances::new();
    for part in parsed {
        let (r, inst) = part?;
        report.merge_counts(r);
        for (key, rows) in inst {
            instances.entry(key).or_default().extend(rows);
        }
    }
    Ok(windows(instances, report, opts))
}

pub(crate) fn load_files(files: &[PathBuf], opts: &LoadOptions) -> Result<Dataset, DataError> {
    let mut streams = Vec::with_capacity(files.len());
    for file in files {
        let f = std::fs::File::open(file).map_err(|e| DataError::io(file, e))?;
        let bytes = f.metadata().map_err(|e| DataError::io(file, e))?.len();
        streams.push((file.clone(), bytes, std::io::BufReader::new(f)));
    }
    load_streams(streams, opts)
}

/// Splits an instance's time-sorted rows into runs without gaps.
pub(crate) fn runs(times: &[u64]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=times.len() {
        if i == times.len() || times[i] - times[i - 1] > MAX_STEP_US {
            out.push(start..i);
            start = i;
        }
    }
    out
}

/// One instance's rows, sorted and deduplicated, and where its samples end.
struct Cut<'a> {
    key: &'a str,
    rows: &'a [Row],
    /// The index `t` of each sample's first future row: its inputs are rows
    /// `t - w .. t`, its target the peak of rows `t .. t + h`.
    targets_at: Vec<usize>,
    duplicates: usize,
    missing_targets: usize,
}

/// Sorts and deduplicates one instance's rows and finds its samples: a window of
/// `w` rows and the `h` after it, all within one run of consecutive windows.
fn cut<'a>(key: &'a str, rows: &'a mut Vec<Row>, w: usize, h: usize) -> Cut<'a> {
    rows.sort_by_key(|r| r.time);
    let before = rows.len();
    rows.dedup_by_key(|r| r.time);
    let duplicates = before - rows.len();
    let times: Vec<u64> = rows.iter().map(|r| r.time).collect();
    let (mut targets_at, mut missing_targets) = (Vec::new(), 0);
    for run in runs(&times) {
        for t in run.start + w..run.end.saturating_sub(h - 1) {
            // Any missing future value makes the target unknown.
            if rows[t..t + h].iter().any(|r| r.values[MAX_MEMORY].is_nan()) {
                missing_targets += 1;
            } else {
                targets_at.push(t);
            }
        }
    }
    Cut {
        key,
        rows,
        targets_at,
        duplicates,
        missing_targets,
    }
}

/// Cuts every instance's rows (any order, duplicates dropped) into samples, in
/// the instances' key order. The instances are cut in parallel, and each writes
/// its samples' inputs into its own slice of one allocation sized up front (the
/// inputs are most of a dataset's memory: writing them once, from every core,
/// is most of the speed of a load).
pub(crate) fn windows(
    mut instances: Instances,
    mut report: LoadReport,
    opts: &LoadOptions,
) -> Dataset {
    let (w, h) = (opts.window, opts.horizon);
    let cuts: Vec<Cut> = instances
        .iter_mut()
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|(key, rows)| cut(key, rows, w, h))
        .collect();
    for c in &cuts {
        report.drop_many("duplicate time", c.duplicates);
        report.drop_many("missing target", c.missing_targets);
    }
    let n: usize = cuts.iter().map(|c| c.targets_at.len()).sum();
    let sample_len = w * C;
    let mut inputs = vec![0.0f32; n * sample_len];
    let mut slices = Vec::with_capacity(cuts.len());
    let mut rest = inputs.as_mut_slice();
    for c in &cuts {
        let (mine, after) = rest.split_at_mut(c.targets_at.len() * sample_len);
        slices.push(mine);
        rest = after;
    }
    cuts.par_iter().zip(slices).for_each(|(c, out)| {
        for (&t, sample) in c.targets_at.iter().zip(out.chunks_exact_mut(sample_len)) {
            for (r, dst) in c.rows[t - w..t].iter().zip(sample.chunks_exact_mut(C)) {
                dst.copy_from_slice(&r.values);
            }
        }
    });
    let per_sample = |f: &(dyn Fn(&Cut, usize) -> f32 + Sync)| -> Vec<f32> {
        cuts.iter()
            .flat_map(|c| c.targets_at.iter().map(move |&t| f(c, t)))
            .collect()
    };
    let targets = per_sample(&|c, t| {
        c.rows[t..t + h]
            .iter()
            .map(|r| r.values[MAX_MEMORY])
            .fold(f32::NEG_INFINITY, f32::max)
    });
    let naive = per_sample(&|c, t| c.rows[t - 1].values[MAX_MEMORY]);
    let ids: Vec<String> = cuts
        .par_iter()
        .flat_map_iter(|c| {
            c.targets_at
                .iter()
                .map(move |&t| format!("{}@{}", c.key, c.rows[t].time))
        })
        .collect();
    let groups = cuts
        .iter()
        .flat_map(|c| std::iter::repeat_n(stable_hash(c.key), c.targets_at.len()))
        .collect();
    let order = cuts
        .iter()
        .flat_map(|c| c.targets_at.iter().map(|&t| c.rows[t].time))
        .collect();
    report.samples = n;
    Dataset {
        format: Format::InstanceUsage,
        seq_len: w,
        channels: C,
        inputs,
        targets,
        naive,
        ids,
        groups,
        order,
        feature_names: SERIES_CHANNELS.iter().map(|s| s.to_string()).collect(),
        report,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The cut written the plain way: one instance after another, one sample after
    /// another, each pushed as it is found.
    fn naive_windows(
        mut instances: Instances,
        w: usize,
        h: usize,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<String>, Vec<u64>, usize) {
        let (mut inputs, mut targets, mut naive, mut ids, mut order, mut dropped) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            0,
        );
        for (key, rows) in instances.iter_mut() {
            rows.sort_by_key(|r| r.time);
            let before = rows.len();
            rows.dedup_by_key(|r| r.time);
            dropped += before - rows.len();
            let times: Vec<u64> = rows.iter().map(|r| r.time).collect();
            for run in runs(&times) {
                let run = &rows[run];
                for t in w..run.len().saturating_sub(h - 1) {
                    let future = &run[t..t + h];
                    if future.iter().any(|r| r.values[MAX_MEMORY].is_nan()) {
                        dropped += 1;
                        continue;
                    }
                    run[t - w..t]
                        .iter()
                        .for_each(|r| inputs.extend_from_slice(&r.values));
                    targets.push(
                        future
                            .iter()
                            .map(|r| r.values[MAX_MEMORY])
                            .fold(f32::MIN, f32::max),
                    );
                    naive.push(run[t - 1].values[MAX_MEMORY]);
                    ids.push(format!("{key}@{}", run[t].time));
                    order.push(run[t].time);
                }
            }
        }
        (inputs, targets, naive, ids, order, dropped)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn parallel_cut_equals_the_naive_one(
            // Per instance: (time step index, a value seed) rows, with repeats
            // (duplicates), gaps (runs) and missing maxima (dropped targets).
            instances in prop::collection::vec(prop::collection::vec((0u64..40, 0u32..1000), 0..60), 0..7),
            w in 1usize..5,
            h in 1usize..4,
        ) {
            let mut map = Instances::new();
            for (i, rows) in instances.iter().enumerate() {
                let rows = rows.iter().map(|&(step, v)| {
                    let mut values = [0.0f32; C];
                    for (c, x) in values.iter_mut().enumerate() {
                        *x = (v as f32 + c as f32 * 0.25 + step as f32) * 1e-3;
                    }
                    if v % 17 == 0 {
                        values[MAX_MEMORY] = f32::NAN;
                    }
                    // Every 13th step is 2.5 windows after the one before: a new run.
                    Row { time: step * WINDOW_STEP_US + (step / 13) * 2 * WINDOW_STEP_US, values }
                });
                map.insert(instance_key(7, i as u64), rows.collect());
            }
            let (inputs, targets, naive, ids, order, dropped) = naive_windows(map.clone(), w, h);
            let opts = LoadOptions { window: w, horizon: h, ..LoadOptions::default() };
            let ds = windows(map, LoadReport::default(), &opts);
            prop_assert_eq!(bytemuck::cast_slice::<f32, u32>(&ds.inputs), bytemuck::cast_slice::<f32, u32>(&inputs));
            prop_assert_eq!(&ds.targets, &targets);
            prop_assert_eq!(bytemuck::cast_slice::<f32, u32>(&ds.naive), bytemuck::cast_slice::<f32, u32>(&naive));
            prop_assert_eq!(&ds.ids, &ids);
            prop_assert_eq!(&ds.order, &order);
            prop_assert_eq!(ds.report.samples, targets.len());
            prop_assert_eq!(ds.report.dropped.values().sum::<usize>(), dropped);
            let groups: Vec<u64> = ds.ids.iter().map(|id| stable_hash(id.split('@').next().unwrap())).collect();
            prop_assert_eq!(&ds.groups, &groups);
        }
    }
}
