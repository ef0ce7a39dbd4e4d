//! Parquet exports (nested struct and list columns, any of the codecs `bq extract`
//! writes): only the used top-level columns are decoded, one row group per rayon
//! task, a wave of row groups per thread count at a time so that memory stays bounded.

use super::{field, Collector, Distribution, Parsed, RawRow, Usage, Value};
use crate::data::{find_columns, DataError};
use ::parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use ::parquet::arrow::ProjectionMask;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type, UInt64Type};
use arrow_array::{Array, ArrayRef, PrimitiveArray, RecordBatch, StructArray};
use arrow_schema::DataType;
use rayon::prelude::*;
use std::borrow::Cow;
use std::fs::File;
use std::path::Path;

/// Rows decoded at a time within a row group.
const BATCH_ROWS: usize = 8192;
/// Rows checked per rayon task.
const ROWS_PER_TASK: usize = 1024;

const REQUIRED: [&str; 8] = [
    field::START_TIME,
    field::COLLECTION_ID,
    field::INSTANCE_INDEX,
    field::AVERAGE_USAGE,
    field::MAXIMUM_USAGE,
    field::ASSIGNED_MEMORY,
    field::CPU_DISTRIBUTION,
    field::TAIL_DISTRIBUTION,
];

thread_local! {
    /// Set while this thread runs the decoder under [`guarded`].
    static DECODING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Keeps the decoder's panics (answered as errors by [`guarded`]) off stderr; every
/// other panic goes to the hook that was there before.
fn quiet_decoder_panics() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !DECODING.with(|d| d.get()) {
                previous(info);
            }
        }));
    });
}

/// Runs the decoder on untrusted bytes: a panic inside the parquet crate on a corrupt
/// file (an index out of bounds in its RLE decoder, for one) becomes an error naming
/// the file, not an abort of the load.
fn guarded<T>(
    file: &Path,
    what: &str,
    f: impl FnOnce() -> Result<T, DataError>,
) -> Result<T, DataError> {
    quiet_decoder_panics();
    let was = DECODING.with(|d| d.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    DECODING.with(|d| d.set(was));
    result.unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("unknown failure");
        Err(DataError::file(
            file,
            format!("corrupt Parquet file: {what}: the decoder failed: {msg}"),
        ))
    })
}

pub(super) fn read_file(file: &Path, collector: &mut Collector) -> Result<(), DataError> {
    let meta = guarded(file, "footer", || {
        let f = File::open(file).map_err(|e| DataError::io(file, e))?;
        ArrowReaderMetadata::load(&f, ArrowReaderOptions::new())
            .map_err(|e| DataError::file(file, format!("not a readable Parquet file: {e}")))
    })?;
    let schema = meta.schema();
    let found: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    find_columns(file, &found, &REQUIRED)?;
    let roots = found
        .iter()
        .enumerate()
        .filter(|(_, name)| REQUIRED.contains(&name.as_str()) || *name == field::RESOURCE_REQUEST)
        .map(|(i, _)| i);
    let mask = ProjectionMask::roots(meta.parquet_schema(), roots);
    let groups = meta.metadata().row_groups();
    let first_rows: Vec<u64> = groups
        .iter()
        .scan(1u64, |next, g| {
            let first = *next;
            *next += g.num_rows().max(0) as u64;
            Some(first)
        })
        .collect();
    let decode = |g: usize| {
        guarded(file, &format!("row group {g}"), || {
            read_group(file, &meta, &mask, g, first_rows[g])
        })
    };
    in_order_pipelined(groups.len(), decode, |part| collector.take(part?))
}

/// Runs `produce(0..n)` on the rayon pool, a task per thread taking the next
/// index as it frees, while this thread hands the results to `consume` in index
/// order as soon as each is next: collecting one row group overlaps decoding the
/// following ones, and no thread waits for a wave to end. Stops producing at the
/// first error `consume` returns.
fn in_order_pipelined<T: Send>(
    n: usize,
    produce: impl Fn(usize) -> T + Sync,
    mut consume: impl FnMut(T) -> Result<(), DataError>,
) -> Result<(), DataError> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let (next, stop) = (AtomicUsize::new(0), AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel::<(usize, T)>();
    std::thread::scope(|scope| {
        let (produce, next, stop) = (&produce, &next, &stop);
        scope.spawn(move || {
            rayon::scope(|tasks| {
                for _ in 0..rayon::current_num_threads().clamp(1, n.max(1)) {
                    let tx = tx.clone();
                    tasks.spawn(move |_| loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n || stop.load(Ordering::Relaxed) {
                            break;
                        }
                        if tx.send((i, produce(i))).is_err() {
                            break;
                        }
                    });
                }
            });
        });
        let mut waiting = std::collections::BTreeMap::new();
        let mut due = 0;
        let result = (|| {
            for (i, item) in &rx {
                waiting.insert(i, item);
                while let Some(item) = waiting.remove(&due) {
                    consume(item)?;
                    due += 1;
                }
            }
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        drop(rx);
        result
    })
}

/// Decodes row group `group`, whose first row is row `first_row` of the file (from 1).
fn read_group(
    file: &Path,
    meta: &ArrowReaderMetadata,
    mask: &ProjectionMask,
    group: usize,
    first_row: u64,
) -> Result<Vec<Parsed>, DataError> {
    // Each task opens the file: clones of one handle would share its read position.
    let f = File::open(file).map_err(|e| DataError::io(file, e))?;
    let decode_error =
        |e: &dyn std::fmt::Display| DataError::file(file, format!("row group {group}: {e}"));
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(f, meta.clone())
        .with_row_groups(vec![group])
        .with_projection(mask.clone())
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| decode_error(&e))?;
    let rows = meta.metadata().row_group(group).num_rows().max(0) as usize;
    let mut out = Vec::with_capacity(rows);
    let mut first = first_row;
    for batch in reader {
        let batch = batch.map_err(|e| decode_error(&e))?;
        let columns = Columns::of(&batch).map_err(|why| decode_error(&why))?;
        // Checking and mapping the rows costs about what decoding them does: in parallel.
        let parsed: Vec<Parsed> = (0..batch.num_rows())
            .into_par_iter()
            .with_min_len(ROWS_PER_TASK)
            .map(|i| {
                let row = first + i as u64;
                Parsed::from_raw(&columns.row(i), |column, text, why| {
                    DataError::ParquetCell {
                        file: file.to_path_buf(),
                        row_group: group,
                        row,
                        column,
                        text,
                        why,
                    }
                })
            })
            .collect();
        out.extend(parsed);
        first += batch.num_rows() as u64;
    }
    Ok(out)
}

/// A column of scalars of any type an export may give a used field.
enum Scalars<'a> {
    I64(&'a PrimitiveArray<Int64Type>),
    I32(&'a PrimitiveArray<Int32Type>),
    U64(&'a PrimitiveArray<UInt64Type>),
    F64(&'a PrimitiveArray<Float64Type>),
    F32(&'a PrimitiveArray<Float32Type>),
    Text(&'a arrow_array::StringArray),
    LargeText(&'a arrow_array::LargeStringArray),
    Null,
}

impl<'a> Scalars<'a> {
    fn of(name: &str, a: &'a ArrayRef) -> Result<Self, String> {
        Ok(match a.data_type() {
            DataType::Int64 => Scalars::I64(a.as_primitive()),
            DataType::Int32 => Scalars::I32(a.as_primitive()),
            DataType::UInt64 => Scalars::U64(a.as_primitive()),
            DataType::Float64 => Scalars::F64(a.as_primitive()),
            DataType::Float32 => Scalars::F32(a.as_primitive()),
            DataType::Utf8 => Scalars::Text(a.as_string()),
            DataType::LargeUtf8 => Scalars::LargeText(a.as_string()),
            DataType::Null => Scalars::Null,
            other => {
                return Err(format!(
                    "column `{name}`: expected INT64, FLOAT or STRING values, found {other}"
                ))
            }
        })
    }

    fn value(&self, i: usize) -> Value<'a> {
        fn int(v: i64) -> Value<'static> {
            match u64::try_from(v) {
                Ok(u) => Value::Int(u),
                Err(_) => Value::Negative(v),
            }
        }
        match self {
            Scalars::I64(a) if a.is_valid(i) => int(a.value(i)),
            Scalars::I32(a) if a.is_valid(i) => int(a.value(i) as i64),
            Scalars::U64(a) if a.is_valid(i) => Value::Int(a.value(i)),
            Scalars::F64(a) if a.is_valid(i) => Value::Float(a.value(i)),
            Scalars::F32(a) if a.is_valid(i) => Value::Float(a.value(i) as f64),
            Scalars::Text(a) if a.is_valid(i) => Value::Text(Cow::Borrowed(a.value(i))),
            Scalars::LargeText(a) if a.is_valid(i) => Value::Text(Cow::Borrowed(a.value(i))),
            _ => Value::Null,
        }
    }
}

/// A `RECORD { cpus, memory }` column.
struct UsageColumn<'a> {
    array: &'a StructArray,
    cpus: Option<Scalars<'a>>,
    memory: Option<Scalars<'a>>,
}

impl<'a> UsageColumn<'a> {
    fn of(name: &str, a: &'a ArrayRef) -> Result<Self, String> {
        let Some(array) = a.as_struct_opt() else {
            return Err(format!(
                "column `{name}`: expected a RECORD (struct) of cpus and memory, found {}",
                a.data_type()
            ));
        };
        let child = |key: &str| {
            array
                .column_by_name(key)
                .map(|c| Scalars::of(&format!("{name}.{key}"), c))
                .transpose()
        };
        Ok(UsageColumn {
            array,
            cpus: child("cpus")?,
            memory: child("memory")?,
        })
    }

    fn value(&self, i: usize) -> Usage<'a> {
        if self.array.is_null(i) {
            return Usage::default();
        }
        let get = |c: &Option<Scalars<'a>>| c.as_ref().map_or(Value::Null, |c| c.value(i));
        Usage {
            cpus: get(&self.cpus),
            memory: get(&self.memory),
            wrong: None,
        }
    }
}

/// A `REPEATED FLOAT` column (a list or large list).
struct ListColumn<'a> {
    list: &'a dyn Array,
    offsets: Vec<usize>,
    values: Scalars<'a>,
}

impl<'a> ListColumn<'a> {
    fn of(name: &str, a: &'a ArrayRef) -> Result<Self, String> {
        let (offsets, values): (Vec<usize>, &ArrayRef) = match a.data_type() {
            DataType::List(_) => {
                let l = a.as_list::<i32>();
                (
                    l.offsets().iter().map(|&o| o as usize).collect(),
                    l.values(),
                )
            }
            DataType::LargeList(_) => {
                let l = a.as_list::<i64>();
                (
                    l.offsets().iter().map(|&o| o as usize).collect(),
                    l.values(),
                )
            }
            other => {
                return Err(format!(
                    "column `{name}`: expected a REPEATED FLOAT (list), found {other}"
                ))
            }
        };
        Ok(ListColumn {
            list: a.as_ref(),
            offsets,
            values: Scalars::of(name, values)?,
        })
    }

    fn value<const N: usize>(&self, i: usize) -> Distribution<'a, N> {
        let mut d = Distribution::default();
        if self.list.is_valid(i) {
            for j in self.offsets[i]..self.offsets[i + 1] {
                d.push(self.values.value(j));
            }
        }
        d
    }
}

/// The used columns of a record batch.
struct Columns<'a> {
    start_time: Scalars<'a>,
    collection_id: Scalars<'a>,
    instance_index: Scalars<'a>,
    average_usage: UsageColumn<'a>,
    maximum_usage: UsageColumn<'a>,
    assigned_memory: Scalars<'a>,
    cpu_usage_distribution: ListColumn<'a>,
    tail_cpu_usage_distribution: ListColumn<'a>,
    resource_request: Option<UsageColumn<'a>>,
}

impl<'a> Columns<'a> {
    fn of(batch: &'a RecordBatch) -> Result<Self, String> {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| format!("column `{name}` is missing from a batch"))
        };
        Ok(Columns {
            start_time: Scalars::of(field::START_TIME, column(field::START_TIME)?)?,
            collection_id: Scalars::of(field::COLLECTION_ID, column(field::COLLECTION_ID)?)?,
            instance_index: Scalars::of(field::INSTANCE_INDEX, column(field::INSTANCE_INDEX)?)?,
            average_usage: UsageColumn::of(field::AVERAGE_USAGE, column(field::AVERAGE_USAGE)?)?,
            maximum_usage: UsageColumn::of(field::MAXIMUM_USAGE, column(field::MAXIMUM_USAGE)?)?,
            assigned_memory: Scalars::of(field::ASSIGNED_MEMORY, column(field::ASSIGNED_MEMORY)?)?,
            cpu_usage_distribution: ListColumn::of(
                field::CPU_DISTRIBUTION,
                column(field::CPU_DISTRIBUTION)?,
            )?,
            tail_cpu_usage_distribution: ListColumn::of(
                field::TAIL_DISTRIBUTION,
                column(field::TAIL_DISTRIBUTION)?,
            )?,
            resource_request: batch
                .column_by_name(field::RESOURCE_REQUEST)
                .map(|c| UsageColumn::of(field::RESOURCE_REQUEST, c))
                .transpose()?,
        })
    }

    fn row(&self, i: usize) -> RawRow<'a> {
        RawRow {
            start_time: self.start_time.value(i),
            collection_id: self.collection_id.value(i),
            instance_index: self.instance_index.value(i),
            average_usage: self.average_usage.value(i),
            maximum_usage: self.maximum_usage.value(i),
            assigned_memory: self.assigned_memory.value(i),
            cpu_usage_distribution: self.cpu_usage_distribution.value(i),
            tail_cpu_usage_distribution: self.tail_cpu_usage_distribution.value(i),
            resource_request: self
                .resource_request
                .as_ref()
                .map_or_else(Usage::default, |c| c.value(i)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn pipelined_results_arrive_in_index_order_and_stop_at_the_first_error() {
        // Uneven task times, so that later indices finish first.
        let slow = |i: usize| {
            std::thread::sleep(Duration::from_millis(((7 * i) % 5) as u64));
            i * 10
        };
        let mut seen = Vec::new();
        in_order_pipelined(40, slow, |v| {
            seen.push(v);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, (0..40).map(|i| i * 10).collect::<Vec<_>>());

        let produced = AtomicUsize::new(0);
        let mut taken = Vec::new();
        let err = in_order_pipelined(
            1000,
            |i| {
                produced.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
                i
            },
            |i| {
                taken.push(i);
                if i == 3 {
                    Err(DataError::Invalid(format!("bad item {i}")))
                } else {
                    Ok(())
                }
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("bad item 3"), "{err}");
        assert_eq!(taken, vec![0, 1, 2, 3]);
        // Production stopped soon after the error, not at the end.
        assert!(produced.load(Ordering::Relaxed) < 1000);
        // Nothing to produce: nothing consumed, no error.
        in_order_pipelined(0, |i| i, |_| panic!("nothing to consume")).unwrap();
    }
}
