//! Newline-delimited JSON exports: one table row per line, read in blocks of whole
//! lines that rayon parses in parallel while the next block is read (and inflated).
//! Only the used fields are deserialised; the others are skipped as `IgnoredAny`.

use super::{field, Collector, Distribution, Parsed, RawRow, Usage, Value};
use crate::data::DataError;
use rayon::prelude::*;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Bytes read per block: big enough to feed every thread, small enough to hold twice.
const BLOCK: usize = 4 << 20;

/// Lines per rayon task: a row is a few µs of work.
const LINES_PER_TASK: usize = 512;

/// Reads every line of `reader` into `collector`, in order. Two buffers are reused:
/// the block being parsed and the chunk being read meanwhile.
pub(super) fn read<R: Read + Send>(
    mut reader: R,
    file: &Path,
    collector: &mut Collector,
) -> Result<(), DataError> {
    let mut next_line = 1u64;
    let mut block: Vec<u8> = Vec::with_capacity(2 * BLOCK);
    let mut chunk: Vec<u8> = Vec::with_capacity(BLOCK);
    read_chunk(&mut reader, &mut chunk, file, next_line)?;
    loop {
        let at_end = chunk.is_empty();
        block.extend_from_slice(&chunk);
        // Whole lines only; a partial last one waits for the next chunk.
        let cut = match at_end {
            true => block.len(),
            false => match block.iter().rposition(|&b| b == b'\n') {
                Some(pos) => pos + 1,
                None => {
                    read_chunk(&mut reader, &mut chunk, file, next_line)?;
                    continue;
                }
            },
        };
        if cut == 0 {
            return Ok(());
        }
        let (parsed, read) = rayon::join(
            || parse_block(&block[..cut], next_line, file),
            || match at_end {
                true => Ok(()),
                false => read_chunk(&mut reader, &mut chunk, file, next_line),
            },
        );
        collector.take(parsed)?;
        if at_end {
            return Ok(());
        }
        next_line += block[..cut].iter().filter(|&&b| b == b'\n').count() as u64;
        block.drain(..cut);
        read?;
    }
}

/// Refills `chunk` with up to [`BLOCK`] bytes; empty at the end of the stream.
fn read_chunk(
    reader: &mut impl Read,
    chunk: &mut Vec<u8>,
    file: &Path,
    line: u64,
) -> Result<(), DataError> {
    chunk.resize(BLOCK, 0);
    let n = super::read_up_to(reader, chunk)
        .map_err(|e| DataError::file(file, format!("cannot read near line {line}: {e}")))?;
    chunk.truncate(n);
    Ok(())
}

/// The first line of a file (inflated when `gzip`), at most one block long.
pub(super) fn first_line(file: &Path, gzip: bool) -> Result<Vec<u8>, DataError> {
    let f = std::fs::File::open(file).map_err(|e| DataError::io(file, e))?;
    let f = BufReader::new(f);
    let mut reader: Box<dyn BufRead> = match gzip {
        true => Box::new(BufReader::new(flate2::bufread::MultiGzDecoder::new(f))),
        false => Box::new(f),
    };
    let mut line = Vec::new();
    (&mut reader)
        .take(BLOCK as u64)
        .read_until(b'\n', &mut line)
        .map_err(|e| DataError::file(file, format!("cannot read the first line: {e}")))?;
    Ok(line)
}

/// Parses the lines of `block` (first line number `first`) in parallel, in order.
fn parse_block(block: &[u8], first: u64, file: &Path) -> Vec<Parsed> {
    let lines: Vec<(u64, &[u8])> = block
        .strip_suffix(b"\n")
        .unwrap_or(block)
        .split(|&b| b == b'\n')
        .zip(first..)
        .map(|(text, n)| (n, text))
        .filter(|(_, text)| !text.iter().all(u8::is_ascii_whitespace))
        .collect();
    lines
        .par_iter()
        .with_min_len(LINES_PER_TASK)
        .map(|&(line, text)| parse_line(text, line, file))
        .collect()
}

fn parse_line(text: &[u8], line: u64, file: &Path) -> Parsed {
    // A byte-order mark may open the first line of a file.
    let text = text.strip_prefix("\u{feff}".as_bytes()).unwrap_or(text);
    match serde_json::from_slice::<RawRow>(text) {
        Ok(raw) => Parsed::from_raw(&raw, |column, text, why| DataError::Cell {
            file: file.to_path_buf(),
            line,
            cell_line: line,
            column,
            text,
            why,
        }),
        Err(e) => Parsed::Bad {
            reason: "malformed record",
            column: None,
            error: DataError::Record {
                file: file.to_path_buf(),
                line,
                why: json_error(&e),
            },
        },
    }
}

/// serde_json's message, placed by column only: its own "line 1" is the line's, not the file's.
fn json_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let what = msg
        .rsplit_once(" at line ")
        .map_or(msg.as_str(), |(m, _)| m);
    format!(
        "not a JSON row of instance_usage: {what} (column {})",
        e.column()
    )
}

/// The used fields of a row, by key.
enum Key {
    StartTime,
    CollectionId,
    InstanceIndex,
    AverageUsage,
    MaximumUsage,
    AssignedMemory,
    CpuDistribution,
    TailDistribution,
    ResourceRequest,
    Unused,
}

impl Key {
    fn of(key: &str) -> Key {
        match key {
            field::START_TIME => Key::StartTime,
            field::COLLECTION_ID => Key::CollectionId,
            field::INSTANCE_INDEX => Key::InstanceIndex,
            field::AVERAGE_USAGE => Key::AverageUsage,
            field::MAXIMUM_USAGE => Key::MaximumUsage,
            field::ASSIGNED_MEMORY => Key::AssignedMemory,
            field::CPU_DISTRIBUTION => Key::CpuDistribution,
            field::TAIL_DISTRIBUTION => Key::TailDistribution,
            field::RESOURCE_REQUEST => Key::ResourceRequest,
            _ => Key::Unused,
        }
    }
}

/// Reads an object key as what `pick` makes of it, without allocating.
struct KeyVisitor<K>(fn(&str) -> K);

impl<K> Visitor<'_> for KeyVisitor<K> {
    type Value = K;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<K, E> {
        Ok((self.0)(key))
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor(Key::of))
    }
}

impl<'de> Deserialize<'de> for RawRow<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RowVisitor;
        impl<'de> Visitor<'de> for RowVisitor {
            type Value = RawRow<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object (one table row)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawRow<'de>, A::Error> {
                let mut row = RawRow::default();
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::StartTime => row.start_time = map.next_value()?,
                        Key::CollectionId => row.collection_id = map.next_value()?,
                        Key::InstanceIndex => row.instance_index = map.next_value()?,
                        Key::AverageUsage => row.average_usage = map.next_value()?,
                        Key::MaximumUsage => row.maximum_usage = map.next_value()?,
                        Key::AssignedMemory => row.assigned_memory = map.next_value()?,
                        Key::CpuDistribution => row.cpu_usage_distribution = map.next_value()?,
                        Key::TailDistribution => {
                            row.tail_cpu_usage_distribution = map.next_value()?
                        }
                        Key::ResourceRequest => row.resource_request = map.next_value()?,
                        Key::Unused => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(row)
            }
        }
        d.deserialize_map(RowVisitor)
    }
}

/// Consumes an object or array that stands where another type belongs.
fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Visits any JSON value; `T` says what the wrong kinds become.
trait Lenient<'de>: Default + Sized {
    fn wrong(kind: &'static str) -> Self;
    fn visit_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        drain_map(map)?;
        Ok(Self::wrong("an object"))
    }
    fn visit_seq<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        drain_seq(seq)?;
        Ok(Self::wrong("an array"))
    }
    fn visit_scalar(v: Value<'de>) -> Self {
        Self::wrong(match v {
            Value::Text(_) => "a string",
            _ => "a number",
        })
    }
}

struct LenientVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Lenient<'de>> Visitor<'de> for LenientVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_none<E: de::Error>(self) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<T, E> {
        Ok(T::wrong("a boolean"))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Ok(T::visit_scalar(Value::Int(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        Ok(T::visit_scalar(match u64::try_from(v) {
            Ok(u) => Value::Int(u),
            Err(_) => Value::Negative(v),
        }))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        Ok(T::visit_scalar(Value::Float(v)))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<T, E> {
        Ok(T::visit_scalar(Value::Text(Cow::Borrowed(v))))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        Ok(T::visit_scalar(Value::Text(Cow::Owned(v.to_owned()))))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::visit_map(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::visit_seq(seq)
    }
}

fn lenient<'de, D: Deserializer<'de>, T: Lenient<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_any(LenientVisitor(std::marker::PhantomData))
}

impl<'de> Lenient<'de> for Value<'de> {
    fn wrong(kind: &'static str) -> Self {
        Value::Wrong(kind)
    }
    fn visit_scalar(v: Value<'de>) -> Self {
        v
    }
}

impl<'de> Deserialize<'de> for Value<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient(d)
    }
}

impl<'de> Lenient<'de> for Usage<'de> {
    fn wrong(kind: &'static str) -> Self {
        Usage {
            wrong: Some(kind),
            ..Usage::default()
        }
    }
    fn visit_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut usage = Usage::default();
        while let Some(key) = map.next_key::<UsageKey>()? {
            match key {
                UsageKey::Cpus => usage.cpus = map.next_value()?,
                UsageKey::Memory => usage.memory = map.next_value()?,
                UsageKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(usage)
    }
}

impl<'de> Deserialize<'de> for Usage<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient(d)
    }
}

enum UsageKey {
    Cpus,
    Memory,
    Other,
}

impl<'de> Deserialize<'de> for UsageKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor(|key| match key {
            "cpus" => UsageKey::Cpus,
            "memory" => UsageKey::Memory,
            _ => UsageKey::Other,
        }))
    }
}

impl<'de, const N: usize> Lenient<'de> for Distribution<'de, N> {
    fn wrong(kind: &'static str) -> Self {
        Distribution {
            wrong: Some(kind),
            ..Distribution::default()
        }
    }
    fn visit_seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut d = Distribution::default();
        while let Some(v) = seq.next_element::<Value>()? {
            d.push(v);
        }
        Ok(d)
    }
}

impl<'de, const N: usize> Deserialize<'de> for Distribution<'de, N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient(d)
    }
}
